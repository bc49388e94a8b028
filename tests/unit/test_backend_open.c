/* cnet_backend_open: the --device strings it accepts and refuses, and the
 * fallback to the CPU backend with a note when CUDA is asked for but no GPU
 * is visible (or the build has no CUDA) — the path every machine without a
 * GPU takes. On a machine with a GPU the same asks must give the CUDA
 * backend instead. */
#include <string.h>

#include "engine/core/backend.h"
#include "kernels/cpu/gemm_bf16.h"
#include "tests/lib/harness.h"
#ifdef CNET_HAVE_CUDA
#include "kernels/cuda/cuda_backend.h"
#endif

static int visible_gpus(void) {
#ifdef CNET_HAVE_CUDA
    return cnet_cuda_device_count(NULL, 0);
#else
    return 0;
#endif
}

static void test_cpu(void) {
    cnet_backend be;
    cnet_error err = {0};
    char note[256] = "stale";
    CHECK(cnet_backend_open(&be, "cpu", note, sizeof note, &err) == 0, "%s", err.msg);
    EXPECT(strcmp(be.name, "cpu") == 0, "got backend %s", be.name);
    EXPECT(note[0] == '\0', "note '%s' for an explicit cpu", note);
    EXPECT(cnet_backend_status(&be, &err) == 0, "cpu status %s", err.msg);
    cnet_backend_free(&be);
}

static void test_cuda_or_fallback(void) {
    const char *asks[] = {"cuda", "cuda:0"};
    const int gpus = visible_gpus();
    for (int i = 0; i < 2; i++) {
        cnet_backend be;
        cnet_error err = {0};
        char note[256];
        CHECK(cnet_backend_open(&be, asks[i], note, sizeof note, &err) == 0, "%s: %s", asks[i],
              err.msg);
        if (gpus > 0) {
            EXPECT(strcmp(be.name, "cuda") == 0, "%s with %d GPUs gave %s", asks[i], gpus, be.name);
            EXPECT(note[0] == '\0', "note '%s' with a GPU", note);
        } else {
            EXPECT(strcmp(be.name, "cpu") == 0, "%s without a GPU gave %s", asks[i], be.name);
            EXPECT(strstr(note, "no CUDA device visible") && strstr(note, "using the CPU") &&
                       strstr(note, asks[i]),
                   "fallback note '%s'", note);
            /* the fallback backend works */
            float *x = be.alloc(&be, 4 * sizeof(float)), h[4] = {1, -2, 3, -4}, y[4];
            CHECK(x != NULL, "alloc");
            be.upload(&be, x, h, sizeof h);
            be.scale(&be, x, x, 2.0f, 4);
            be.download(&be, y, x, sizeof y);
            EXPECT(y[0] == 2.0f && y[3] == -8.0f, "scale on the fallback gave %g %g", y[0], y[3]);
            be.free(&be, x);
        }
        cnet_backend_free(&be);
    }
}

static void test_refused(void) {
    const char *bad[] = {"",        "gpu",     "CPU",        "cuda:",   "cuda:x",
                         "cuda:-1", "cuda:1a", "cuda:99999", "cuda:0 ", "cpu:0"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cnet_backend be;
        cnet_error err = {0};
        char note[64];
        int rc = cnet_backend_open(&be, bad[i], note, sizeof note, &err);
        EXPECT(rc == CNET_EINVAL, "'%s' gave %d", bad[i], rc);
        EXPECT(strstr(err.msg, "--device") != NULL, "'%s': message '%s'", bad[i], err.msg);
        if (rc == 0) cnet_backend_free(&be);
    }
    cnet_backend be;
    cnet_error err = {0};
    EXPECT(cnet_backend_open(&be, NULL, NULL, 0, &err) == CNET_EINVAL, "NULL device accepted");
}

/* An ordinal past the visible GPUs is an error where GPUs exist, and falls
 * back where none does. */
static void test_ordinal_range(void) {
    const int gpus = visible_gpus();
    cnet_backend be;
    cnet_error err = {0};
    char note[256];
    int rc = cnet_backend_open(&be, "cuda:1000", note, sizeof note, &err);
    if (gpus > 0) {
        EXPECT(rc == CNET_EINVAL && strstr(err.msg, "visible"), "cuda:1000 with %d GPUs: %d %s",
               gpus, rc, err.msg);
    } else {
        EXPECT(rc == 0 && strcmp(be.name, "cpu") == 0 && note[0], "cuda:1000 without a GPU: %d",
               rc);
    }
    if (rc == 0) cnet_backend_free(&be);
}

/* --mixed_precision names: diffusers' three, anything else refused with
 * the accepted values named. */
static void test_precision_names(void) {
    const char *names[] = {"no", "fp16", "bf16"};
    const cnet_precision want[] = {CNET_PREC_F32, CNET_PREC_F16, CNET_PREC_BF16};
    for (int i = 0; i < 3; i++) {
        cnet_precision p = CNET_PREC_COUNT;
        cnet_error err = {0};
        EXPECT(cnet_precision_parse(names[i], &p, &err) == 0 && p == want[i], "%s: %s", names[i],
               err.msg);
        EXPECT(strcmp(cnet_precision_name(want[i]), names[i]) == 0, "name of %d", (int)want[i]);
    }
    const char *bad[] = {"fp8", "BF16", "", "bf16 ", "f32"};
    for (int i = 0; i < 5; i++) {
        cnet_precision p = CNET_PREC_BF16;
        cnet_error err = {0};
        EXPECT(cnet_precision_parse(bad[i], &p, &err) == CNET_EINVAL &&
                   strstr(err.msg, "expected no, fp16 or bf16") && p == CNET_PREC_BF16,
               "'%s' accepted or badly refused: %s", bad[i], err.msg);
    }
}

/* The CPU honours fp16 (and bf16 without AVX512-BF16) as float32 with one note (a CUDA build
 * falling back to the CPU runs the same command line); CUDA, where a GPU is
 * visible, takes it as asked. Both hand back the previous precision. */
static void test_precision_on_backends(void) {
    cnet_backend be;
    cnet_error err = {0};
    char note[256];
    CHECK(cnet_backend_open(&be, "cpu", note, sizeof note, &err) == 0, "%s", err.msg);
    EXPECT(be.precision == CNET_PREC_F32, "cpu opens with precision %d", (int)be.precision);
    cnet_precision prev = cnet_backend_set_precision(&be, CNET_PREC_BF16, note, sizeof note);
    if (cpu_bf16_supported()) /* the cpu's own bf16 products (kernels/cpu/gemm_bf16.c) */
        EXPECT(prev == CNET_PREC_F32 && be.precision == CNET_PREC_BF16 && note[0] == '\0',
               "cpu bf16 with AVX512-BF16: %d -> %d, note '%s'", (int)prev, (int)be.precision,
               note);
    else
        EXPECT(prev == CNET_PREC_F32 && be.precision == CNET_PREC_F32 &&
                   strcmp(note, "cpu backend computes in float32; --mixed_precision bf16 applies "
                                "on cuda and on a cpu with AVX512-BF16") == 0,
               "cpu bf16: %d -> %d, note '%s'", (int)prev, (int)be.precision, note);
    cnet_backend_set_precision(&be, CNET_PREC_F16, note, sizeof note);
    EXPECT(strstr(note, "--mixed_precision fp16 applies on cuda"), "fp16 note '%s'", note);
    cnet_backend_set_precision(&be, CNET_PREC_F32, note, sizeof note);
    EXPECT(note[0] == '\0', "note '%s' for no", note);
    cnet_backend_free(&be);
    if (visible_gpus() == 0) return;
    CHECK(cnet_backend_open(&be, "cuda", note, sizeof note, &err) == 0, "%s", err.msg);
    prev = cnet_backend_set_precision(&be, CNET_PREC_BF16, note, sizeof note);
    EXPECT(prev == CNET_PREC_F32 && be.precision == CNET_PREC_BF16 && note[0] == '\0',
           "cuda bf16: %d -> %d, note '%s'", (int)prev, (int)be.precision, note);
    EXPECT(cnet_backend_set_precision(&be, CNET_PREC_F16, NULL, 0) == CNET_PREC_BF16 &&
               be.precision == CNET_PREC_F16,
           "cuda fp16");
    cnet_backend_free(&be);
}

/* The count the server sizes its pool by agrees with the runtime's; the
 * CPU backend reports no device memory. */
static void test_cuda_count_and_peak(void) {
    EXPECT(cnet_backend_cuda_count() == visible_gpus(), "cnet_backend_cuda_count %d, runtime %d",
           cnet_backend_cuda_count(), visible_gpus());
    cnet_backend be;
    cnet_error err = {0};
    CHECK(cnet_backend_open(&be, "cpu", NULL, 0, &err) == 0, "%s", err.msg);
    float *x = be.alloc(&be, 1 << 20);
    EXPECT(cnet_backend_peak_device_bytes(&be) == 0, "cpu peak device bytes %zu",
           cnet_backend_peak_device_bytes(&be));
    be.free(&be, x);
    cnet_backend_free(&be);
}

int main(int argc, char **argv) {
    harness_init(argc, argv);
    RUN(test_precision_names);
    RUN(test_precision_on_backends);
    RUN(test_cpu);
    RUN(test_cuda_or_fallback);
    RUN(test_refused);
    RUN(test_ordinal_range);
    RUN(test_cuda_count_and_peak);
    return harness_done();
}
