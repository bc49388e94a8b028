/* The sinusoidal timestep embedding of the CPU backend:
 * 1. against the golden `unet.time_proj.t_batch` of
 *    <fixtures>/goldens/unet.safetensors, produced by diffusers'
 *    get_timestep_embedding in float32 from `unet.in.t_batch`, with
 *    flip_sin_to_cos and freq_shift read from <fixtures>/tiny-sd/unet's
 *    config.json and max_period 10000 (Timesteps' default): max abs error
 *    <= 2e-7 (the float32 steps and torch's exp rounding must be mimicked:
 *    glibc's expf alone is off by 2.7e-6, the exact formula by ~1e-4);
 * 2. against the exact double formula for both flips, shifts 0 and 1, odd
 *    and even widths, within the bound that float32 rounding of the sine's
 *    argument allows: |err| <= 2e-6 * |t * freq| + 2e-7.
 * The safetensors file is read here with a few lines of jansson (the
 * project's reader lives in engine/core/safetensors and is tested there). */
#include <jansson.h>
#include <math.h>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/ref_nn.h"
#include "tests/lib/harness.h"
#include "tests/lib/lib_casemem.h"

#define MAX_PERIOD 10000.0f
#define TOL_GOLDEN 2e-7 /* sin/cos may differ from SLEEF's by an ulp */

static cnet_backend be; /* the op keeps no scratch */

/* Reads a whole file into cm memory; returns NULL when it cannot. */
static unsigned char *read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    unsigned char *buf = NULL;
    if (fseek(f, 0, SEEK_END) == 0) {
        long n = ftell(f);
        if (n > 0 && fseek(f, 0, SEEK_SET) == 0) {
            buf = cm_alloc((size_t)n);
            if (fread(buf, 1, (size_t)n, f) != (size_t)n) buf = NULL;
            *size = (size_t)n;
        }
    }
    fclose(f);
    return buf;
}

/* Data of tensor `name` in a safetensors image (8-byte little-endian header
 * length, JSON header, data); checks dtype and element count. */
static const void *st_tensor(const unsigned char *file, size_t size, const char *name,
                             const char *dtype, long numel) {
    if (size < 8) return NULL;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | file[i];
    if (hlen > size - 8) return NULL;
    json_t *root = json_loadb((const char *)file + 8, (size_t)hlen, 0, NULL);
    json_t *t = json_object_get(root, name);
    json_t *off = json_object_get(t, "data_offsets"), *shape = json_object_get(t, "shape");
    const char *dt = json_string_value(json_object_get(t, "dtype"));
    long count = 1;
    for (size_t i = 0; i < json_array_size(shape); i++)
        count *= (long)json_integer_value(json_array_get(shape, i));
    const long begin = (long)json_integer_value(json_array_get(off, 0));
    const long end = (long)json_integer_value(json_array_get(off, 1));
    const int elem = strcmp(dtype, "F32") == 0 ? 4 : 8;
    const int ok = dt && strcmp(dt, dtype) == 0 && count == numel && end - begin == numel * elem &&
                   (uint64_t)end <= size - 8 - hlen;
    json_decref(root);
    return ok ? file + 8 + hlen + begin : NULL;
}

static void test_timestep_golden(void) {
    const char *fixtures = harness_fixtures();
    char path[4096];
    snprintf(path, sizeof path, "%s/tiny-sd/unet/config.json", fixtures);
    json_t *cfg = json_load_file(path, 0, NULL);
    CHECK(cfg, "cannot read %s", path);
    const int flip = json_is_true(json_object_get(cfg, "flip_sin_to_cos"));
    const double shift = json_number_value(json_object_get(cfg, "freq_shift"));
    const int dim = (int)json_integer_value(
        json_array_get(json_object_get(cfg, "block_out_channels"), 0)); /* time_proj width */
    json_decref(cfg);
    CHECK(dim > 0, "%s: block_out_channels[0] missing", path);

    snprintf(path, sizeof path, "%s/goldens/unet.safetensors", fixtures);
    size_t size = 0;
    const unsigned char *file = read_file(path, &size);
    CHECK(file, "cannot read %s", path);
    const int B = 2;
    const int64_t *t_ids = st_tensor(file, size, "unet.in.t_batch", "I64", B);
    const float *golden = st_tensor(file, size, "unet.time_proj.t_batch", "F32", (long)B * dim);
    CHECK(t_ids && golden,
          "%s: unet.in.t_batch [%d] I64 or unet.time_proj.t_batch [%d,%d] F32 "
          "missing or malformed",
          path, B, B, dim);

    float t[2], out[2 * 4096];
    CHECK(dim <= 4096, "time_proj width %d", dim);
    for (int b = 0; b < B; b++) t[b] = (float)t_ids[b];
    cpu_timestep_embedding(&be, out, t, B, dim, flip, (float)shift, MAX_PERIOD);
    double worst = 0;
    for (int i = 0; i < B * dim; i++) worst = fmax(worst, fabs((double)out[i] - golden[i]));
    printf("    t = [%g, %g], dim %d, flip %d, shift %g: max |cnet - diffusers| = %.3g\n", t[0],
           t[1], dim, flip, shift, worst);
    CHECK(worst <= TOL_GOLDEN, "max abs error vs golden %.3g", worst);
    cm_free_all();
}

static void check_formula(int dim, int flip, float shift) {
    static const float t[] = {0.0f, 1.0f, 17.0f, 0.5f, 500.0f, 946.42105f, 999.0f};
    const int B = (int)(sizeof t / sizeof t[0]);
    float *out = cm_fill((size_t)B * dim, NAN);
    double *ref = cm_dzeros((size_t)B * dim), td[sizeof t / sizeof t[0]];
    for (int b = 0; b < B; b++) td[b] = t[b];
    cpu_timestep_embedding(&be, out, t, B, dim, flip, shift, MAX_PERIOD);
    ref_timestep_embedding(ref, td, B, dim, flip, shift, MAX_PERIOD);
    const int half = dim / 2;
    for (int b = 0; b < B; b++)
        for (int i = 0; i < dim; i++) {
            const int k = i % (half ? half : 1);
            const double arg =
                i < 2 * half ? td[b] * exp(-log(MAX_PERIOD) * k / (half - shift)) : 0.0;
            const double err = fabs((double)out[(long)b * dim + i] - ref[(long)b * dim + i]);
            CHECK(err <= 2e-6 * fabs(arg) + 2e-7,
                  "dim %d flip %d shift %g t %g column %d: got %.9g want %.9g", dim, flip, shift,
                  t[b], i, out[(long)b * dim + i], ref[(long)b * dim + i]);
        }
}

static void test_timestep_formula(void) {
    for (int flip = 0; flip < 2; flip++)
        for (int shift = 0; shift < 2; shift++) {
            check_formula(320, flip, (float)shift);
            check_formula(33, flip, (float)shift); /* odd: one zero column */
            check_formula(7, flip, (float)shift);
        }
    cm_free_all();
}

int main(int argc, char **argv) {
    harness_init(argc, argv);
    RUN(test_timestep_golden);
    RUN(test_timestep_formula);
    return harness_done();
}
