/* Parameter tables (engine/core/params.c): save/load round trips in PyTorch
 * layout, F16 and BF16 checkpoints converted on load, sharded checkpoints
 * (*.safetensors.index.json), and the errors of a key in two shards or a
 * shard name that is a path. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/core/params.h"
#include "engine/core/safetensors.h"
#include "tests/lib/harness.h"

static char dir[] = "/tmp/cnet_params_XXXXXX";

/* conv [3,2,3,3] (reordered in memory), linear [4,5], bias [4]. */
static int declare(cnet_params *p, cnet_backend *be, cnet_error *err) {
    params_init(p, be);
    const int64_t conv[4] = {3, 2, 3, 3}, lin[2] = {4, 5}, bias[1] = {4};
    if (params_add(p, "conv.weight", 4, conv, PARAM_CONV, err) < 0 ||
        params_add(p, "lin.weight", 2, lin, PARAM_PLAIN, err) < 0 ||
        params_add(p, "lin.bias", 1, bias, PARAM_PLAIN, err) < 0)
        return -1;
    return params_alloc(p, err);
}

/* The PyTorch-layout value of element i of parameter k (exact in f16/bf16). */
static float value(int k, size_t i) { return (float)((int)(k * 37 + i * 11) % 64 - 32) / 8.0f; }

static void write_file(const char *path, cnet_dtype dt, int first, int last) {
    st_write_item items[3];
    static uint16_t half[3][64];
    static float full[3][64];
    const char *names[3] = {"conv.weight", "lin.weight", "lin.bias"};
    const int64_t shapes[3][4] = {{3, 2, 3, 3}, {4, 5}, {4}};
    const int ndims[3] = {4, 2, 1};
    const size_t numel[3] = {54, 20, 4};
    int n = 0;
    for (int k = first; k <= last; k++, n++) {
        for (size_t i = 0; i < numel[k]; i++) {
            full[k][i] = value(k, i);
            half[k][i] =
                dt == CNET_F16 ? cnet_f32_to_f16(value(k, i)) : cnet_f32_to_bf16(value(k, i));
        }
        items[n].name = names[k];
        items[n].view =
            (cnet_tensor){dt, ndims[k], {0}, dt == CNET_F32 ? (void *)full[k] : half[k], -1};
        memcpy(items[n].view.shape, shapes[k], sizeof shapes[k]);
    }
    cnet_error err;
    st_write(path, items, n, NULL, NULL, 0, &err);
}

static int same_as_values(const cnet_params *p) {
    float host[64], scratch[64];
    for (int k = 0; k < p->n; k++) {
        params_read(p, k, host, scratch);
        for (size_t i = 0; i < p->items[k].numel; i++)
            if (host[i] != value(k, i)) return 0;
    }
    return 1;
}

static void test_dtypes_and_round_trip(void) {
    cnet_backend be;
    cnet_error err = {0};
    CHECK(cnet_backend_cpu_init(&be, &err) == 0, "%s", err.msg);
    const cnet_dtype dts[3] = {CNET_F32, CNET_F16, CNET_BF16};
    for (int d = 0; d < 3; d++) {
        char path[128];
        snprintf(path, sizeof path, "%s/w%d.safetensors", dir, d);
        write_file(path, dts[d], 0, 2);
        cnet_params p;
        CHECK(declare(&p, &be, &err) == 0, "%s", err.msg);
        CHECK(params_load(&p, path, &err) == 0, "%s: %s", cnet_dtype_name(dts[d]), err.msg);
        CHECK(same_as_values(&p), "%s values differ after load", cnet_dtype_name(dts[d]));
        /* In memory the conv is OHWI: element (o=1, i=0, y=2, x=1) moved. */
        const float *w = p.items[0].data;
        CHECK(w[((1 * 3 + 2) * 3 + 1) * 2 + 0] == value(0, ((1 * 2 + 0) * 3 + 2) * 3 + 1),
              "conv weight not reordered to [O, kh, kw, I]");
        snprintf(path, sizeof path, "%s/saved%d.safetensors", dir, d);
        CHECK(params_save(&p, path, NULL, NULL, 0, &err) == 0, "%s", err.msg);
        cnet_params q;
        CHECK(declare(&q, &be, &err) == 0 && params_load(&q, path, &err) == 0, "%s", err.msg);
        CHECK(same_as_values(&q), "save/load round trip differs");
        params_free(&p);
        params_free(&q);
    }
    cnet_backend_free(&be);
}

static int write_index(const char *name, const char *body) {
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fputs(body, f);
    return fclose(f);
}

static void test_sharded(void) {
    cnet_backend be;
    cnet_error err = {0};
    CHECK(cnet_backend_cpu_init(&be, &err) == 0, "%s", err.msg);
    char path[128];
    snprintf(path, sizeof path, "%s/model-00001-of-00002.safetensors", dir);
    write_file(path, CNET_F32, 0, 0);
    snprintf(path, sizeof path, "%s/model-00002-of-00002.safetensors", dir);
    write_file(path, CNET_BF16, 1, 2);
    CHECK(write_index("good.safetensors.index.json",
                      "{\"metadata\": {}, \"weight_map\": {"
                      "\"conv.weight\": \"model-00001-of-00002.safetensors\","
                      "\"lin.weight\": \"model-00002-of-00002.safetensors\","
                      "\"lin.bias\": \"model-00002-of-00002.safetensors\"}}") == 0,
          "index");
    cnet_params p;
    CHECK(declare(&p, &be, &err) == 0, "%s", err.msg);
    snprintf(path, sizeof path, "%s/good.safetensors.index.json", dir);
    CHECK(params_load(&p, path, &err) == 0, "%s", err.msg);
    CHECK(same_as_values(&p), "sharded load differs");
    params_free(&p);

    /* A tensor in two shards; a shard name that is a path. */
    snprintf(path, sizeof path, "%s/dup.safetensors", dir);
    write_file(path, CNET_F32, 0, 2);
    CHECK(write_index("twice.safetensors.index.json",
                      "{\"weight_map\": {\"conv.weight\": \"dup.safetensors\","
                      "\"lin.weight\": \"model-00002-of-00002.safetensors\"}}") == 0,
          "index");
    CHECK(declare(&p, &be, &err) == 0, "%s", err.msg);
    snprintf(path, sizeof path, "%s/twice.safetensors.index.json", dir);
    CHECK(params_load(&p, path, &err) != 0 && strstr(err.msg, "more than one shard"),
          "duplicate across shards accepted: %s", err.msg);
    params_free(&p);
    CHECK(write_index("escape.safetensors.index.json",
                      "{\"weight_map\": {\"conv.weight\": \"../x.safetensors\"}}") == 0,
          "index");
    CHECK(declare(&p, &be, &err) == 0, "%s", err.msg);
    snprintf(path, sizeof path, "%s/escape.safetensors.index.json", dir);
    CHECK(params_load(&p, path, &err) != 0 && strstr(err.msg, "not a shard file name"),
          "path-like shard accepted: %s", err.msg);
    params_free(&p);
    cnet_backend_free(&be);
}

int main(int argc, char **argv) {
    harness_init(argc, argv);
    if (!mkdtemp(dir)) return 1;
    RUN(test_dtypes_and_round_trip);
    RUN(test_sharded);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) return 1;
    return harness_done();
}
