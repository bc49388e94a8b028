/* golden_check_text_encoders_sdxl on the fixture's goldens-sdxl: both SDXL
 * tokenizers, text_encoder_2's pooling and projection, and every
 * encode_prompt case of text_encoders.safetensors, each tensor within
 * goldens-sdxl/tolerances.json.
 *
 * Truth: the tensors diffusers v0.27.2 / transformers v4.38 computed
 * (goldens-sdxl/README.md). Also checks that the check compared every
 * tensor of the file, so a case the metadata adds cannot go unchecked.
 * `--device cuda` runs the encoders on the GPU backend instead. */
#include <limits.h>
#include <stdio.h>

#include "server/golden/golden.h"
#include "tests/lib/harness.h"

static void test_sdxl_text_encoders(void) {
    golden_ctx ctx;
    cnet_error err;
    CHECK(golden_init_dir(&ctx, harness_fixtures(), GOLDEN_DIR_SDXL, &err) == 0, "%s", err.msg);
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/goldens-sdxl/text_encoders.safetensors", harness_fixtures());
    st_file f;
    if (st_open(&f, path, &err)) {
        EXPECT(0, "%s", err.msg);
        golden_free(&ctx);
        return;
    }
    ctx.stem = "text_encoders";
    ctx.device = harness_arg("--device", "cpu");
    int rc = golden_check_text_encoders_sdxl(&ctx, &f, &err);
    EXPECT(rc == 0, "check did not run: %s", rc ? err.msg : "");
    EXPECT(ctx.failed == 0, "%d of %d comparisons failed", ctx.failed, ctx.passed + ctx.failed);
    for (int i = 0; i < f.n; i++) {
        int seen = 0;
        for (int j = 0; j < ctx.n_seen && !seen; j++)
            seen = strcmp(ctx.seen[j], f.entries[i].name) == 0;
        EXPECT(seen, "%s: not checked", f.entries[i].name);
    }
    st_close(&f);
    golden_free(&ctx);
}

int main(int argc, char **argv) {
    harness_init(argc, argv);
    RUN(test_sdxl_text_encoders);
    return harness_done();
}
