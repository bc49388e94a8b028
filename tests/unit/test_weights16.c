/* Frozen weights stored in 16 bits (params_store16, sd_base_store16; issue
 * 8's bf16 / f16 weights of the frozen models):
 *
 * - the table: products narrowed (round to nearest even), biases, norms and
 *   embeddings kept in float32, about half the bytes; params_read and
 *   params_save widen the stored values back; a 16-bit table refuses
 *   params_load, gradient tables and from_unet, each naming why;
 * - the ops: each *_w16 op of the CPU backend equals its float32 twin on the
 *   widened weight, bit for bit (the CPU computes in float32); out of
 *   memory while narrowing leaves the table as it was;
 * - the models: a generation with the fixture pipeline stored in bf16 (and
 *   f16) equals, bit for bit, the generation with float32 weights holding
 *   the same rounded values, and differs from the unrounded one; a training
 *   step through a bf16 UNet gives exactly the ControlNet gradients of the
 *   rounded float32 UNet. So everything between the table and the kernels
 *   (nn dispatch, the backward through the frozen UNet) is the float32
 *   model's, and the CUDA parity suite (tests/cuda/test_cuda_parity.c) has only
 *   the kernels left to check. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/init/controlnet_init.h"
#include "engine/core/nn.h"
#include "engine/core/philox.h"
#include "engine/pipeline/pipeline.h"
#include "engine/pipeline/sd_base.h"
#include "engine/train/train_step.h"
#include "kernels/cpu/cpu_ops.h"
#include "tests/lib/harness.h"
#include "tests/lib/lib_pipe.h"
#include "tests/lib/lib_trainbatch.h"

static const char *fixtures(void) { return harness_fixtures(); }

static uint16_t narrow(cnet_dtype dt, float x) {
    return dt == CNET_F16 ? cnet_f32_to_f16(x) : cnet_f32_to_bf16(x);
}
static float widen(cnet_dtype dt, uint16_t h) {
    return dt == CNET_F16 ? cnet_f16_to_f32(h) : cnet_bf16_to_f32(h);
}
static float rounded(cnet_dtype dt, float x) { return widen(dt, narrow(dt, x)); }

/* Rounds every product weight of p to dt in place, keeping float32
 * storage: the reference a 16-bit table must equal. Written: the table's own
 * copy, not its weights file's read-only mapping. */
static void round_products(cnet_params *p, cnet_dtype dt) {
    if (params_own(p, NULL)) abort();
    for (int i = 0; i < p->n; i++) {
        cnet_param *q = &p->items[i];
        if (!q->product) continue;
        float *h = malloc(q->numel * sizeof(float));
        p->be->download(p->be, h, q->data, q->numel * sizeof(float));
        for (size_t k = 0; k < q->numel; k++) h[k] = rounded(dt, h[k]);
        p->be->upload(p->be, q->data, h, q->numel * sizeof(float));
        free(h);
    }
}

/* conv 3x3 (OHWI in memory), linear with bias, a norm. */
typedef struct small_table {
    cnet_params p;
    nn_conv conv;
    nn_linear lin;
    nn_norm norm;
} small_table;

static float value(int k, size_t i) { return sinf(0.37f * (float)(k * 131 + i)) * 1.2345678f; }

static int small_open(small_table *t, cnet_backend *be, cnet_error *err) {
    params_init(&t->p, be);
    int rc;
    if ((rc = nn_conv_declare(&t->conv, &t->p, "conv", 3, 5, 3, 1, 1, err)) ||
        (rc = nn_linear_declare(&t->lin, &t->p, "lin", 7, 4, 1, err)) ||
        (rc = nn_group_norm_declare(&t->norm, &t->p, "norm", 4, 2, 1e-5f, err)) ||
        (rc = params_alloc(&t->p, err)))
        return rc;
    for (int k = 0; k < t->p.n; k++) {
        const cnet_param *q = &t->p.items[k];
        float *h = malloc(q->numel * sizeof(float));
        for (size_t i = 0; i < q->numel; i++) h[i] = value(k, i);
        be->upload(be, q->data, h, q->numel * sizeof(float));
        free(h);
    }
    return 0;
}

/* params_read of every parameter: products hold dt values, the rest
 * value() exactly (1-D, stored as uploaded). */
static int reads_back(const cnet_params *p, cnet_dtype dt, char *why, size_t cap) {
    int ok = 1;
    for (int k = 0; k < p->n && ok; k++) {
        const cnet_param *q = &p->items[k];
        float *host = malloc(q->numel * sizeof(float)), *scratch = malloc(q->numel * 4);
        params_read(p, k, host, scratch);
        for (size_t i = 0; i < q->numel && ok; i++) {
            const float want = q->product ? rounded(dt, host[i]) : value(k, i);
            if (host[i] != want) {
                snprintf(why, cap, "%s[%zu] = %.9g, want %.9g", q->name, i, host[i], want);
                ok = 0;
            }
        }
        free(host), free(scratch);
    }
    return ok;
}

/* The name of the first parameter whose values (read in PyTorch layout)
 * differ between two tables of the same layout; NULL when none does. */
static const char *first_difference(const cnet_params *a, const cnet_params *b) {
    for (int k = 0; k < a->n; k++) {
        const size_t n = a->items[k].numel;
        float *ha = malloc(n * 4), *hb = malloc(n * 4), *scratch = malloc(n * 4);
        params_read(a, k, ha, scratch);
        params_read(b, k, hb, scratch);
        const int same = memcmp(ha, hb, n * 4) == 0;
        free(ha), free(hb), free(scratch);
        if (!same) return a->items[k].name;
    }
    return NULL;
}

static void test_table(void) {
    const cnet_dtype dts[2] = {CNET_BF16, CNET_F16};
    for (int d = 0; d < 2; d++) {
        const cnet_dtype dt = dts[d];
        cnet_backend be;
        cnet_error err = {0};
        CHECK(cnet_backend_cpu_init(&be, &err) == 0, "%s", err.msg);
        small_table a, b; /* a: float32, rounded in place; b: stored in 16 bits */
        CHECK(small_open(&a, &be, &err) == 0 && small_open(&b, &be, &err) == 0, "%s", err.msg);
        round_products(&a.p, dt);
        const size_t bytes32 = params_bytes(&b.p);
        CHECK(params_store16(&b.p, dt, &err) == 0, "%s", err.msg);
        size_t product = 0, rest = 0;
        for (int k = 0; k < b.p.n; k++) {
            const cnet_param *q = &b.p.items[k];
            EXPECT(q->product ==
                       (strstr(q->name, "norm") == NULL && strstr(q->name, "bias") == NULL),
                   "%s: product flag %d", q->name, q->product);
            EXPECT(q->product ? q->data16 && !q->data : q->data && !q->data16,
                   "%s: stored in the wrong block", q->name);
            *(q->product ? &product : &rest) += q->numel;
        }
        EXPECT(params_bytes(&b.p) < bytes32 && params_bytes(&b.p) >= 2 * product + 4 * rest,
               "%zu bytes after, %zu before (%zu 16-bit + %zu float32 values)", params_bytes(&b.p),
               bytes32, product, rest);
        /* the stored values are a's rounded values, in PyTorch layout */
        const char *diff = first_difference(&a.p, &b.p);
        EXPECT(!diff, "%s %s: read back differs", cnet_dtype_name(dt), diff);
        char why[256] = "";
        EXPECT(reads_back(&b.p, dt, why, sizeof why), "%s", why);
        /* saved, then loaded into a fresh float32 table: the same values */
        char path[] = "/tmp/cnet_w16_XXXXXX";
        const int fd = mkstemp(path);
        CHECK(fd >= 0, "mkstemp");
        close(fd);
        small_table c;
        CHECK(small_open(&c, &be, &err) == 0, "%s", err.msg);
        EXPECT(params_save(&b.p, path, NULL, NULL, 0, &err) == 0, "save: %s", err.msg);
        EXPECT(params_load(&c.p, path, &err) == 0, "load: %s", err.msg);
        diff = first_difference(&a.p, &c.p);
        EXPECT(!diff, "%s saved and loaded differs", diff);
        /* one-way, and it says so */
        EXPECT(params_store16(&b.p, dt, &err) == 0, "storing again: %s", err.msg);
        const cnet_dtype other = dt == CNET_BF16 ? CNET_F16 : CNET_BF16;
        EXPECT(params_store16(&b.p, other, &err) == CNET_EINVAL &&
                   strstr(err.msg, "already stored in"),
               "restoring in the other type: '%s'", err.msg);
        EXPECT(params_store16(&b.p, CNET_F32, &err) == CNET_EINVAL, "widening back accepted");
        EXPECT(params_store16(&c.p, CNET_I64, &err) == CNET_EINVAL && strstr(err.msg, "I64"),
               "I64: '%s'", err.msg);
        EXPECT(params_load(&b.p, path, &err) == CNET_EINVAL && strstr(err.msg, "load first"),
               "load into 16 bits: '%s'", err.msg);
        cnet_params g;
        EXPECT(params_alloc_like(&g, &b.p, &err) == CNET_EINVAL && strstr(err.msg, "frozen"),
               "gradient table: '%s'", err.msg);
        params_free(&g);
        unlink(path);
        params_free(&a.p), params_free(&b.p), params_free(&c.p);
        cnet_backend_free(&be);
    }
}

/* After alloc_passes more allocations succeed, the next alloc_failures
 * fail. */
static int alloc_passes, alloc_failures;
static void *(*cpu_alloc)(cnet_backend *, size_t);
static void *failing_alloc(cnet_backend *be, size_t bytes) {
    if (alloc_passes > 0) {
        alloc_passes--;
    } else if (alloc_failures > 0) {
        alloc_failures--;
        return NULL;
    }
    return cpu_alloc(be, bytes);
}

/* Out of memory while storing in 16 bits: the table is put back as it was
 * (the same float32 values, usable); when even that allocation fails the
 * error says to reload the model and no pointer dangles. */
static void test_store16_out_of_memory(void) {
    cnet_backend be;
    cnet_error err = {0};
    CHECK(cnet_backend_cpu_init(&be, &err) == 0, "%s", err.msg);
    small_table a, b;
    CHECK(small_open(&a, &be, &err) == 0 && small_open(&b, &be, &err) == 0, "%s", err.msg);
    cpu_alloc = be.alloc;
    be.alloc = failing_alloc;
    alloc_passes = 1, alloc_failures = 1; /* the float32 block, then the 16-bit one fails */
    EXPECT(params_store16(&b.p, CNET_BF16, &err) == CNET_ENOMEM &&
               strstr(err.msg, "cannot allocate"),
           "first: '%s'", err.msg);
    EXPECT(!b.p.block16 && b.p.block && params_bytes(&b.p) == params_bytes(&a.p),
           "the table changed");
    const char *diff = first_difference(&a.p, &b.p);
    EXPECT(!diff, "%s differs after the failed store", diff);
    EXPECT(params_store16(&b.p, CNET_BF16, &err) == 0, "retry: %s", err.msg);
    alloc_passes = 0, alloc_failures = 2; /* the new float32 block and the way back */
    EXPECT(params_store16(&a.p, CNET_F16, &err) == CNET_ENOMEM &&
               strstr(err.msg, "reload the model"),
           "lost: '%s'", err.msg);
    int dangling = 0;
    for (int k = 0; k < a.p.n; k++) dangling += a.p.items[k].data != NULL;
    EXPECT(!a.p.block && dangling == 0, "%d pointers into a freed block", dangling);
    be.alloc = cpu_alloc;
    params_free(&a.p), params_free(&b.p);
    cnet_backend_free(&be);
}

/* n values of a 16-bit weight and their float32 widening. */
static void random_weight(uint16_t *w16, float *w32, size_t n, cnet_dtype dt, uint64_t seed) {
    philox_normal_fill(w32, (long)n, seed, 0);
    for (size_t i = 0; i < n; i++) {
        w16[i] = narrow(dt, 0.3f * w32[i]);
        w32[i] = widen(dt, w16[i]);
    }
}

static int same_bits(const float *a, const float *b, size_t n) {
    return memcmp(a, b, n * sizeof(float)) == 0;
}

static void check_conv_w16(cnet_backend *be, cnet_dtype dt, cnet_conv2d s) {
    const size_t nin = (size_t)s.B * s.H * s.W * s.C_in,
                 nw = (size_t)s.C_out * s.kh * s.kw * s.C_in;
    const size_t nout = (size_t)s.B * cnet_conv2d_out_h(&s) * cnet_conv2d_out_w(&s) * s.C_out;
    float *x = malloc(nin * 4), *w32 = malloc(nw * 4), *bias = malloc(s.C_out * 4);
    uint16_t *w16 = malloc(nw * 2);
    float *y[2] = {malloc(nout * 4), malloc(nout * 4)}, *dy = malloc(nout * 4);
    float *dx[2] = {malloc(nin * 4), malloc(nin * 4)};
    philox_normal_fill(x, (long)nin, 1, 0);
    philox_normal_fill(bias, s.C_out, 2, 0);
    philox_normal_fill(dy, (long)nout, 3, 0);
    random_weight(w16, w32, nw, dt, 4);
    be->conv2d_forward(be, y[0], x, w32, bias, &s);
    be->conv2d_forward_w16(be, y[1], x, w16, dt, bias, &s);
    be->conv2d_backward(be, dx[0], NULL, NULL, dy, x, w32, &s);
    be->conv2d_backward_data_w16(be, dx[1], dy, w16, dt, &s);
    EXPECT(same_bits(y[0], y[1], nout), "conv %dx%d stride %d forward differs", s.kh, s.kw,
           s.stride);
    EXPECT(same_bits(dx[0], dx[1], nin), "conv %dx%d stride %d dinp differs", s.kh, s.kw, s.stride);
    free(x), free(w32), free(bias), free(w16), free(y[0]), free(y[1]), free(dy);
    free(dx[0]), free(dx[1]);
}

static void test_cpu_ops_equal_widened(void) {
    cnet_backend be;
    cnet_error err = {0};
    CHECK(cnet_backend_cpu_init(&be, &err) == 0, "%s", err.msg);
    const cnet_dtype dts[2] = {CNET_BF16, CNET_F16};
    for (int d = 0; d < 2; d++) {
        const cnet_dtype dt = dts[d];
        enum { M = 37, K = 70, N = 29 };
        float x[M * K], w32[N * K], bias[N], dy[M * N], y[2][M * N], dx[2][M * K];
        uint16_t w16[N * K];
        philox_normal_fill(x, M * K, 5, 0);
        philox_normal_fill(bias, N, 6, 0);
        philox_normal_fill(dy, M * N, 7, 0);
        random_weight(w16, w32, N * K, dt, 8);
        for (int b = 0; b < 2; b++) {
            be.linear_forward(&be, y[0], x, w32, b ? bias : NULL, M, K, N);
            be.linear_forward_w16(&be, y[1], x, w16, dt, b ? bias : NULL, M, K, N);
            EXPECT(same_bits(y[0], y[1], M * N), "%s linear forward (bias %d) differs",
                   cnet_dtype_name(dt), b);
        }
        be.linear_backward(&be, dx[0], NULL, NULL, dy, x, w32, M, K, N);
        be.linear_backward_data_w16(&be, dx[1], dy, w16, dt, M, K, N);
        EXPECT(same_bits(dx[0], dx[1], M * K), "%s linear dinp differs", cnet_dtype_name(dt));
        check_conv_w16(&be, dt, (cnet_conv2d){2, 9, 11, 6, 8, 3, 3, 1, 1, 1, 1, 1});
        check_conv_w16(&be, dt, (cnet_conv2d){1, 12, 10, 4, 8, 3, 3, 2, 0, 1, 0, 1});
        check_conv_w16(&be, dt, (cnet_conv2d){2, 5, 7, 8, 6, 1, 1, 1, 0, 0, 0, 0});
    }
    cnet_backend_free(&be);
}

static int generate(test_pipe *f, float *img, int H, int W, const float *control, cnet_error *err) {
    cnet_sched_config sc;
    int rc = sd_base_scheduler(&f->base, CNET_SCHED_UNIPC, &sc, err);
    if (rc) return rc;
    pipe_request r;
    memset(&r, 0, sizeof r);
    r.prompt = "a red circle on a navy background", r.negative_prompt = "blurry";
    r.steps = 3, r.guidance = 5.0f, r.seed = 11, r.width = W, r.height = H, r.num_images = 1;
    r.n_controlnets = 1;
    r.controlnets[0] = (pipe_controlnet){
        .model = &f->cn, .image = control, .n_images = 1, .scale = 1, .start = 0, .end = 1};
    pipe_models m = sd_base_models(&f->base);
    rc = pipeline_generate(&m, &sc, &r, img, NULL, err);
    cnet_sched_config_free(&sc);
    return rc;
}

static void round_fixture(test_pipe *f, cnet_dtype dt) {
    round_products(&f->base.text_encoder.params, dt);
    round_products(&f->base.unet.params, dt);
    round_products(&f->base.vae.params, dt);
    round_products(&f->cn.params, dt);
}

static void test_generation_equals_rounded_weights(void) {
    cnet_backend be;
    cnet_error err = {0};
    CHECK(cnet_backend_cpu_init(&be, &err) == 0, "%s", err.msg);
    test_pipe full, ref, half;
    CHECK(test_pipe_open(&full, fixtures(), &be, &err) == 0, "%s", err.msg);
    const int H = 8 * controlnet_image_factor(&full.cn), W = 12 * controlnet_image_factor(&full.cn);
    const size_t n = (size_t)H * W * 3;
    float *control = malloc(n * 4), *img[3] = {malloc(n * 4), malloc(n * 4), malloc(n * 4)};
    for (size_t i = 0; i < n; i++) control[i] = (float)(philox_u32(9, i) % 256) / 255.0f;
    CHECK(generate(&full, img[0], H, W, control, &err) == 0, "float32: %s", err.msg);
    const cnet_precision precs[2] = {CNET_PREC_BF16, CNET_PREC_F16};
    for (int d = 0; d < 2; d++) {
        const cnet_dtype dt = cnet_precision_dtype(precs[d]);
        CHECK(test_pipe_open(&ref, fixtures(), &be, &err) == 0, "%s", err.msg);
        CHECK(test_pipe_open(&half, fixtures(), &be, &err) == 0, "%s", err.msg);
        round_fixture(&ref, dt);
        const size_t before = sd_base_bytes(&half.base);
        EXPECT(sd_base_store16(&half.base, precs[d], &err) == 0, "%s", err.msg);
        EXPECT(params_store16(&half.cn.params, dt, &err) == 0, "%s", err.msg);
        EXPECT(sd_base_bytes(&half.base) < 0.6 * before, "%s: %zu bytes, %zu in float32",
               cnet_dtype_name(dt), sd_base_bytes(&half.base), before);
        EXPECT(generate(&ref, img[1], H, W, control, &err) == 0, "rounded: %s", err.msg);
        EXPECT(generate(&half, img[2], H, W, control, &err) == 0, "16-bit: %s", err.msg);
        EXPECT(same_bits(img[1], img[2], n),
               "%s weights: the image differs from the rounded "
               "float32 model's",
               cnet_dtype_name(dt));
        double worst = 0;
        for (size_t i = 0; i < n; i++) worst = fmax(worst, fabs((double)img[2][i] - img[0][i]));
        /* rounding the weights changed the image, a little */
        EXPECT(worst > 0 && worst < 0.1, "%s: image moved by %g from float32", cnet_dtype_name(dt),
               worst);
        test_pipe_close(&ref);
        test_pipe_close(&half);
    }
    /* the float32 UNet is from_unet's source; a 16-bit one is refused */
    CHECK(test_pipe_open(&half, fixtures(), &be, &err) == 0, "%s", err.msg);
    CHECK(sd_base_store16(&half.base, CNET_PREC_BF16, &err) == 0, "%s", err.msg);
    EXPECT(controlnet_from_unet(&half.cn, &half.base.unet, 1, &err) == CNET_EINVAL &&
               strstr(err.msg, "BF16") && strstr(err.msg, "float32 UNet"),
           "from_unet of a bf16 UNet: '%s'", err.msg);
    EXPECT(sd_base_store16(&half.base, CNET_PREC_F32, &err) == CNET_EINVAL,
           "a bf16 base widened back");
    test_pipe_close(&half);
    test_pipe_close(&full);
    free(control), free(img[0]), free(img[1]), free(img[2]);
    cnet_backend_free(&be);
}

/* One ControlNet training step through a UNet with bf16 weights: the loss
 * and every gradient equal those through the float32 UNet holding the same
 * rounded values (the backward crosses the frozen UNet's up path). */
static void test_train_step_through_bf16_unet(void) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/tiny-sd", fixtures());
    test_models m[2];
    cnet_error err = {0};
    CHECK(test_models_open(&m[0], dir, 0, &err) == 0, "%s", err.msg);
    CHECK(test_models_open(&m[1], dir, 0, &err) == 0, "%s", err.msg);
    round_products(&m[0].unet.params, CNET_BF16);
    CHECK(params_store16(&m[1].unet.params, CNET_BF16, &err) == 0, "%s", err.msg);
    const int B = 2, h = 8, Nt = 9;
    train_step t[2];
    float loss[2];
    for (int k = 0; k < 2; k++) {
        test_batch b;
        test_batch_make(&b, &m[k].be, &m[k].unet, &m[k].cn, B, h, h, Nt, 33);
        train_step_config tc = {.prediction = TRAIN_PRED_EPSILON, .B = B, .h = h, .w = h, .Nt = Nt};
        CHECK(train_step_init(&t[k], &m[k].unet, &m[k].cn, &m[k].ddpm, &tc, &err) == 0, "%s",
              err.msg);
        CHECK(train_step_accumulate(&t[k], B, b.lat, b.noise, b.ts, b.text, b.cond, 1.0f, &loss[k],
                                    &err) == 0,
              "%s", err.msg);
        test_batch_free(&b, &m[k].be);
    }
    EXPECT(loss[0] == loss[1], "loss %.9g vs %.9g", loss[0], loss[1]);
    double energy = 0;
    for (size_t i = 0; i < t[0].grads.total; i++)
        energy += (double)t[0].grads.block[i] * t[0].grads.block[i];
    EXPECT(energy > 0, "all-zero gradients");
    EXPECT(same_bits(t[0].grads.block, t[1].grads.block, t[0].grads.total),
           "ControlNet gradients through the bf16 UNet differ");
    for (int k = 0; k < 2; k++) {
        train_step_free(&t[k]);
        test_models_close(&m[k]);
    }
}

int main(int argc, char **argv) {
    harness_init(argc, argv);
    RUN(test_table);
    RUN(test_store16_out_of_memory);
    RUN(test_cpu_ops_equal_widened);
    RUN(test_generation_equals_rounded_weights);
    RUN(test_train_step_through_bf16_unet);
    return harness_done();
}
