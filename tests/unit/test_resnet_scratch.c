/* resnet_forward's inference scratch (engine/models/resnet.c): without acts
 * to keep, norm1's output, norm2's and the shortcut's share one buffer of
 * max(Cin, Cout) channels, which is what bounds the VAE decoder's peak at
 * 512x512 (issue 21 item 4).
 *
 * Truth: the training forward, which gives each of those its own buffer
 * (kept for backward): the output must be the same bit for bit, so no
 * buffer was overwritten while still read. Memory: the scratch arena's
 * high-water mark is one such buffer (plus alignment), not the Cin + 2 Cout
 * channels of three separate ones. Shapes: a shortcut that narrows
 * (24 -> 16), one that widens (16 -> 24), and none (16 -> 16), with a time
 * input on one of them as the UNet's resnets have. */
#include <string.h>

#include "engine/core/arena.h"
#include "engine/core/philox.h"
#include "engine/models/resnet.h"
#include "tests/lib/harness.h"

enum { B = 2, H = 5, W = 6, GROUPS = 8, TEMB = 12 };

typedef struct {
    int in, out, temb;
    const char *what;
} res_case;

static const res_case cases[] = {
    {24, 16, 0, "24 -> 16, shortcut (the VAE decoder's narrowing block)"},
    {16, 24, TEMB, "16 -> 24, shortcut, time input"},
    {16, 16, 0, "16 -> 16, no shortcut"},
};

static void check_case(cnet_backend *be, const res_case *c) {
    cnet_error err = {0};
    cnet_params p;
    params_init(&p, be);
    resnet_block r;
    int rc = resnet_declare(&r, &p, "res", c->in, c->out, c->temb, GROUPS, 1e-6f, 1.0f, &err);
    if (!rc) rc = params_alloc(&p, &err);
    CHECK(rc == 0, "%s: %s", c->what, err.msg);
    for (int k = 0; k < p.n; k++)
        philox_normal_fill(p.items[k].data, (long)p.items[k].numel, 100 + (uint64_t)k, 0);
    const long n_in = (long)B * H * W * c->in, n_out = (long)B * H * W * c->out;
    float *x = be->alloc(be, (size_t)n_in * sizeof(float));
    float *temb = be->alloc(be, (size_t)B * TEMB * sizeof(float));
    float *ref = be->alloc(be, (size_t)n_out * sizeof(float));
    float *out = be->alloc(be, (size_t)n_out * sizeof(float));
    philox_normal_fill(x, n_in, 7, 0);
    philox_normal_fill(temb, (long)B * TEMB, 8, 0);
    const float *t = c->temb ? temb : NULL;

    const size_t big = 64u << 20;
    cnet_arena scratch, keep;
    CHECK(cnet_arena_init(&scratch, be, big, "scratch", &err) == 0, "%s", err.msg);
    CHECK(cnet_arena_init(&keep, be, big, "keep", &err) == 0, "%s", err.msg);
    resnet_acts acts;
    CHECK(resnet_forward(&r, &p, &scratch, ref, x, t, B, H, W, &keep, &acts, &err) == 0, "%s",
          err.msg);
    cnet_arena_free(&scratch);
    CHECK(cnet_arena_init(&scratch, be, big, "scratch", &err) == 0, "%s", err.msg);
    CHECK(resnet_forward(&r, &p, &scratch, out, x, t, B, H, W, NULL, NULL, &err) == 0, "%s",
          err.msg);
    EXPECT(memcmp(out, ref, (size_t)n_out * sizeof(float)) == 0,
           "%s: inference output differs from the training forward's", c->what);
    const size_t one = (size_t)(n_in > n_out ? n_in : n_out) * sizeof(float);
    const size_t slack = 4 * CNET_ARENA_ALIGN + (size_t)B * c->out * sizeof(float); /* time proj */
    EXPECT(scratch.high_water <= one + slack,
           "%s: scratch high-water %zu bytes, one temporary is %zu", c->what, scratch.high_water,
           one);
    cnet_arena_free(&scratch);
    cnet_arena_free(&keep);
    be->free(be, x), be->free(be, temb), be->free(be, ref), be->free(be, out);
    params_free(&p);
}

static void test_inference_shares_one_temporary(void) {
    cnet_backend be;
    cnet_error err = {0};
    CHECK(cnet_backend_cpu_init(&be, &err) == 0, "%s", err.msg);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) check_case(&be, &cases[i]);
    cnet_backend_free(&be);
}

int main(int argc, char **argv) {
    harness_init(argc, argv);
    RUN(test_inference_shares_one_temporary);
    return harness_done();
}
