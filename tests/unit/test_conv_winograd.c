/* The Winograd F(4x4, 3x3) forward convolution (kernels/cpu/conv_winograd.c)
 * against the double-precision reference ref_conv2d_forward.
 *
 * Tolerance: norm-wise relative error (lib_numeric.h) at most 2e-5. F(4,3)
 * rounds more than a direct sum: the input transform multiplies by up to 5
 * and the output transform by up to 8 before the cancellations, so its error
 * is ~10x that of im2col + sgemm (measured up to 5.5e-6 here; im2col ~5e-7).
 *
 * Shapes: odd H and W (partial tiles at the right and bottom edges), batch
 * 2 (tiles of two images in one block), channel counts that are not
 * multiples of the 16-float vector (input and output tails, a last output
 * vector handled by the one-vector micro-kernel), a 1x1 image, no bias, and
 * a larger image whose tiles span several blocks and both threads. Also:
 * a weight changed in place between two calls is used by the second call
 * (nothing cached across calls, which the trainer relies on), the
 * dispatcher sends the VAE's shapes here, and a conv with more output
 * channels than one group of transformed weights fits (the UNet's widest)
 * keeps its scratch under the cap and gives, bit for bit, the outputs of
 * separate calls on slices of its output channels (one group each). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/linalg_util.h"
#include "kernels/cpu/ref_linalg.h"
#include "kernels/cpu/scratch.h"
#include "tests/lib/harness.h"
#include "tests/lib/lib_numeric.h"

#define TOL_WINOGRAD 2e-5

static cnet_backend be; /* zero-initialised: the cpu_* ops only use its scratch */

typedef struct {
    int B, H, W, C_in, C_out, has_bias;
    const char *what;
} wino_case;

static const wino_case cases[] = {
    {2, 7, 9, 5, 3, 1, "odd sizes, batch 2, 5 -> 3 channels"},
    {1, 13, 11, 20, 17, 1, "input tail of 4, output 17 = one vector + 1"},
    {2, 10, 6, 33, 40, 0, "no bias, 40 outputs = two-vector + one-vector kernel"},
    {1, 1, 1, 16, 16, 1, "1x1 image: every tap but the centre is padding"},
    {1, 3, 2, 1, 1, 1, "single channel, image smaller than a tile"},
    {1, 37, 45, 64, 48, 1, "many tiles: several blocks, both threads"},
};

static cnet_conv2d conv_shape(const wino_case *c) {
    return (cnet_conv2d){c->B, c->H, c->W, c->C_in, c->C_out, 3, 3, 1, 1, 1, 1, 1};
}

/* Norm-wise relative error of `forward` against the reference on random
 * inputs in [-1, 1) and weights scaled like a trained layer's. */
static double check_case(const wino_case *c, uint64_t *rng, int via_dispatch) {
    const cnet_conv2d s = conv_shape(c);
    const long ni = (long)s.B * s.H * s.W * s.C_in, nw = (long)s.C_out * 9 * s.C_in;
    const long no = (long)s.B * s.H * s.W * s.C_out;
    const float scale = 1.0f / sqrtf(9.0f * (float)s.C_in);
    float *inp = alloc_uniform((size_t)ni, -1, 1, rng);
    float *w = alloc_uniform((size_t)nw, -scale, scale, rng);
    float *b = c->has_bias ? alloc_uniform((size_t)s.C_out, -1, 1, rng) : NULL;
    float *out = malloc((size_t)no * sizeof *out);
    for (long i = 0; i < no; i++) out[i] = NAN;
    if (via_dispatch)
        cpu_conv2d_forward(&be, out, inp, w, b, &s);
    else
        cpu_conv2d_winograd_forward(&be, out, inp, w, b, &s);
    double *inp_d = to_double(inp, (size_t)ni), *w_d = to_double(w, (size_t)nw);
    double *b_d = b ? to_double(b, (size_t)s.C_out) : NULL;
    double *ref = malloc((size_t)no * sizeof *ref);
    ref_conv2d_forward(ref, inp_d, w_d, b_d, &s);
    double e = rel_err_fd(out, ref, (size_t)no); /* NaN (never written) fails the <= */
    free(inp), free(w), free(b), free(out), free(inp_d), free(w_d), free(b_d), free(ref);
    return e;
}

static void test_winograd_vs_reference(void) {
    uint64_t rng = 41;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        CHECK(cpu_conv2d_winograd_applies(&(cnet_conv2d){cases[i].B, cases[i].H, cases[i].W,
                                                         cases[i].C_in, cases[i].C_out, 3, 3, 1, 1,
                                                         1, 1, 1}),
              "%s: not a Winograd shape", cases[i].what);
        double e = check_case(&cases[i], &rng, 0);
        EXPECT(e <= TOL_WINOGRAD, "%s: rel err %.3g", cases[i].what, e);
    }
}

/* The trainer updates weights in place between forward calls: the second
 * call must see the new values, not a transform of the old ones. */
static void test_winograd_sees_weights_updated_in_place(void) {
    uint64_t rng = 42;
    const cnet_conv2d s = {1, 12, 12, 24, 20, 3, 3, 1, 1, 1, 1, 1};
    const long ni = (long)s.H * s.W * s.C_in, nw = (long)s.C_out * 9 * s.C_in;
    const long no = (long)s.H * s.W * s.C_out;
    float *inp = alloc_uniform((size_t)ni, -1, 1, &rng),
          *w = alloc_uniform((size_t)nw, -1, 1, &rng);
    float *out = malloc((size_t)no * sizeof *out);
    double *ref = malloc((size_t)no * sizeof *ref), *inp_d = to_double(inp, (size_t)ni);
    cpu_conv2d_winograd_forward(&be, out, inp, w, NULL, &s);
    for (long i = 0; i < nw; i++) w[i] = 0.5f - w[i]; /* same pointer, new values */
    cpu_conv2d_winograd_forward(&be, out, inp, w, NULL, &s);
    double *w_d = to_double(w, (size_t)nw);
    ref_conv2d_forward(ref, inp_d, w_d, NULL, &s);
    double e = rel_err_fd(out, ref, (size_t)no);
    free(inp), free(w), free(out), free(ref), free(inp_d), free(w_d);
    CHECK(e <= TOL_WINOGRAD, "after an in-place weight update: rel err %.3g", e);
}

/* The VAE decoder's widest and narrowest 3x3 convs at reduced image sizes,
 * through the backend's conv2d_forward: within the Winograd tolerance of the
 * reference (whichever path the dispatcher takes). */
static void test_dispatch_vae_shapes(void) {
    uint64_t rng = 43;
    const wino_case vae[] = {
        {1, 32, 32, 128, 128, 1, "32x32 128 -> 128"},
        {1, 48, 40, 64, 32, 1, "48x40 64 -> 32"},
        {1, 64, 64, 32, 3, 1, "64x64 32 -> 3 (conv_out)"},
        {1, 32, 32, 4, 128, 1, "32x32 4 -> 128 (conv_in)"},
    };
    for (size_t i = 0; i < sizeof vae / sizeof vae[0]; i++) {
        double e = check_case(&vae[i], &rng, 1);
        EXPECT(e <= TOL_WINOGRAD, "%s: rel err %.3g", vae[i].what, e);
    }
}

/* Largest scratch request seen: the backend's alloc entry records it. */
static size_t largest_alloc;

static void *counting_alloc(cnet_backend *b, size_t bytes) {
    (void)b;
    if (bytes > largest_alloc) largest_alloc = bytes;
    void *p = NULL;
    return posix_memalign(&p, 64, bytes) == 0 ? p : NULL;
}

static void counting_free(cnet_backend *b, void *p) {
    (void)b;
    free(p);
}

/* 1024 -> 200 channels: U would be 36 * 1024 * 208 floats (30.7 MB), over
 * conv_winograd.c's 16 MB cap, so the output channels go in groups (of 96
 * here: 96, 96, 8). Each channel slice [c0, c0 + 32), computed alone with
 * its rows of the weight (one group), must match the grouped call exactly;
 * and the whole against the reference. */
static void test_winograd_groups_bound_scratch(void) {
    uint64_t rng = 44;
    const cnet_conv2d s = {1, 6, 5, 1024, 200, 3, 3, 1, 1, 1, 1, 1};
    const long ni = (long)s.H * s.W * s.C_in, nw = (long)s.C_out * 9 * s.C_in;
    const long px = (long)s.H * s.W, no = px * s.C_out;
    const float scale = 1.0f / sqrtf(9.0f * (float)s.C_in);
    float *inp = alloc_uniform((size_t)ni, -1, 1, &rng);
    float *w = alloc_uniform((size_t)nw, -scale, scale, &rng);
    float *bias = alloc_uniform((size_t)s.C_out, -1, 1, &rng);
    float *out = malloc((size_t)no * sizeof *out), *part = malloc((size_t)px * 32 * sizeof *part);
    cnet_backend counted = {.alloc = counting_alloc, .free = counting_free};
    largest_alloc = 0;
    cpu_conv2d_winograd_forward(&counted, out, inp, w, bias, &s);
    CHECK(cpu_scratch_status(&counted, NULL) == 0, "scratch request failed");
    EXPECT(largest_alloc <= (16u << 20), "largest scratch request %zu bytes, over the 16 MB cap",
           largest_alloc);
    long mismatched = 0;
    for (int c0 = 0; c0 < s.C_out; c0 += 32) {
        const int n = s.C_out - c0 < 32 ? s.C_out - c0 : 32;
        cnet_conv2d slice = s;
        slice.C_out = n;
        cpu_conv2d_winograd_forward(&be, part, inp, w + (long)c0 * 9 * s.C_in, bias + c0, &slice);
        for (long p = 0; p < px; p++)
            for (int c = 0; c < n; c++) mismatched += part[p * n + c] != out[p * s.C_out + c0 + c];
    }
    EXPECT(mismatched == 0, "%ld outputs differ from the per-slice calls", mismatched);
    double *inp_d = to_double(inp, (size_t)ni), *w_d = to_double(w, (size_t)nw);
    double *b_d = to_double(bias, (size_t)s.C_out), *ref = malloc((size_t)no * sizeof *ref);
    ref_conv2d_forward(ref, inp_d, w_d, b_d, &s);
    double e = rel_err_fd(out, ref, (size_t)no);
    EXPECT(e <= TOL_WINOGRAD, "grouped: rel err %.3g", e);
    cpu_scratch_free(&counted);
    free(inp), free(w), free(bias), free(out), free(part), free(inp_d), free(w_d), free(b_d),
        free(ref);
}

int main(int argc, char **argv) {
    harness_init(argc, argv);
    RUN(test_winograd_vs_reference);
    RUN(test_winograd_sees_weights_updated_in_place);
    RUN(test_dispatch_vae_shapes);
    RUN(test_winograd_groups_bound_scratch);
    return harness_done();
}
