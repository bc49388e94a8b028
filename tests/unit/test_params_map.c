/* Weights read in place from a mapped safetensors file (engine/core/params.h,
 * on a backend with reads_host): the values equal a copying load bit for bit
 * (the same CPU backend with reads_host cleared is the copying path, and the
 * values written are the truth); a second process that loads the file shares
 * its pages (/proc/self/smaps: Shared_Clean of its own mapping, no anonymous
 * memory); params_own gives a table its own copy, whose writes never reach the
 * file and into which later loads copy, params_like refuses a table still
 * mapped and makes tables that copy; unaligned F32, F16 and
 * conv weights are copied as before; params_store16 narrows mapped weights. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine/core/params.h"
#include "engine/core/safetensors.h"
#include "tests/lib/harness.h"

static char dir[] = "/tmp/cnet_params_map_XXXXXX";

/* lin.weight: large enough to span many pages. */
#define MAP_LIN_OUT 512
#define MAP_LIN_IN 1024
#define MAP_LIN_NUMEL ((size_t)MAP_LIN_OUT * MAP_LIN_IN)
#define MAP_CONV_NUMEL ((size_t)8 * 4 * 3 * 3)
#define MAP_BIAS_NUMEL ((size_t)MAP_LIN_OUT)

/* The PyTorch-layout value of element i of tensor k (exact in f16). */
static float value(int k, size_t i) {
    return (float)((int)((size_t)k * 37 + i * 11) % 256 - 128) / 16.0f;
}

static int declare(cnet_params *p, cnet_backend *be, cnet_error *err) {
    params_init(p, be);
    const int64_t conv[4] = {8, 4, 3, 3}, lin[2] = {MAP_LIN_OUT, MAP_LIN_IN},
                  bias[1] = {MAP_LIN_OUT};
    if (params_add(p, "conv.weight", 4, conv, PARAM_CONV, err) < 0 ||
        params_add(p, "lin.weight", 2, lin, PARAM_PLAIN, err) < 0 ||
        params_add(p, "lin.bias", 1, bias, PARAM_PLAIN, err) < 0)
        return -1;
    return params_alloc(p, err);
}

static const size_t numels[3] = {MAP_CONV_NUMEL, MAP_LIN_NUMEL, MAP_BIAS_NUMEL};

static int write_file(const char *path, cnet_dtype dt) {
    const char *names[3] = {"conv.weight", "lin.weight", "lin.bias"};
    const int64_t shapes[3][4] = {{8, 4, 3, 3}, {MAP_LIN_OUT, MAP_LIN_IN}, {MAP_LIN_OUT}};
    const int ndims[3] = {4, 2, 1};
    st_write_item items[3];
    void *bufs[3];
    for (int k = 0; k < 3; k++) {
        bufs[k] = malloc(numels[k] * cnet_dtype_size(dt));
        for (size_t i = 0; i < numels[k]; i++)
            if (dt == CNET_F32)
                ((float *)bufs[k])[i] = value(k, i);
            else
                ((uint16_t *)bufs[k])[i] = cnet_f32_to_f16(value(k, i));
        items[k].name = names[k];
        items[k].view = (cnet_tensor){dt, ndims[k], {0}, bufs[k], -1};
        memcpy(items[k].view.shape, shapes[k], sizeof shapes[k]);
    }
    cnet_error err;
    int rc = st_write(path, items, 3, NULL, NULL, 0, &err);
    for (int k = 0; k < 3; k++) free(bufs[k]);
    return rc;
}

/* Every parameter in PyTorch layout equals value() exactly. */
static int same_as_values(const cnet_params *p) {
    float *host = malloc(MAP_LIN_NUMEL * sizeof *host);
    float *scratch = malloc(MAP_LIN_NUMEL * sizeof *scratch);
    int same = 1;
    for (int k = 0; k < p->n && same; k++) {
        params_read(p, k, host, scratch);
        for (size_t i = 0; i < p->items[k].numel && same; i++) same = host[i] == value(k, i);
    }
    free(host);
    free(scratch);
    return same;
}

/* Whether ptr lies inside one of the table's mapped files. */
static int in_maps(const cnet_params *p, const void *ptr) {
    for (int i = 0; i < p->n_maps; i++)
        if ((const char *)ptr >= (const char *)p->maps[i].map &&
            (const char *)ptr < (const char *)p->maps[i].map + p->maps[i].map_size)
            return 1;
    return 0;
}

static void test_mapped_equals_copied(void) {
    cnet_backend be, copying;
    cnet_error err = {0};
    CHECK(cnet_backend_cpu_init(&be, &err) == 0 && cnet_backend_cpu_init(&copying, &err) == 0, "%s",
          err.msg);
    copying.reads_host = 0;
    char path[128];
    snprintf(path, sizeof path, "%s/f32.safetensors", dir);
    CHECK(write_file(path, CNET_F32) == 0, "cannot write %s", path);
    cnet_params m, c;
    CHECK(declare(&m, &be, &err) == 0 && declare(&c, &copying, &err) == 0, "%s", err.msg);
    CHECK(params_load(&m, path, &err) == 0 && params_load(&c, path, &err) == 0, "%s", err.msg);
    CHECK(m.n_maps == 1 && m.mapped == MAP_LIN_NUMEL + MAP_BIAS_NUMEL,
          "mapped %zu floats from %d files, expected lin.weight and lin.bias from 1", m.mapped,
          m.n_maps);
    CHECK(in_maps(&m, m.items[1].data) && in_maps(&m, m.items[2].data),
          "the float32 linear weight and bias do not point into the file's mapping");
    CHECK(!in_maps(&m, m.items[0].data), "the conv weight (reordered) points into the file");
    CHECK(c.n_maps == 0 && c.mapped == 0, "a backend without reads_host mapped weights");
    for (int k = 0; k < 3; k++)
        CHECK(memcmp(m.items[k].data, c.items[k].data, numels[k] * sizeof(float)) == 0,
              "'%s' differs between the mapped and the copied load", m.items[k].name);
    CHECK(same_as_values(&m), "mapped values differ from the file's");
    /* a reload maps the file again, and frees the old mapping */
    CHECK(params_load(&m, path, &err) == 0 && m.n_maps == 1 && same_as_values(&m), "reload: %s",
          err.msg);
    /* narrowed to bf16 from the mapping as from the copy */
    CHECK(params_store16(&m, CNET_BF16, &err) == 0 && params_store16(&c, CNET_BF16, &err) == 0,
          "%s", err.msg);
    CHECK(m.n_maps == 0 && m.mapped == 0, "store16 kept the mappings");
    float *a = malloc(MAP_LIN_NUMEL * sizeof *a), *b = malloc(MAP_LIN_NUMEL * sizeof *b),
          *s = malloc(MAP_LIN_NUMEL * sizeof *s);
    for (int k = 0; k < 3; k++) {
        params_read(&m, k, a, s);
        params_read(&c, k, b, s);
        CHECK(memcmp(a, b, numels[k] * sizeof(float)) == 0,
              "'%s' differs after store16 (mapped vs copied)", m.items[k].name);
    }
    free(a), free(b), free(s);
    params_free(&m);
    params_free(&c);
    cnet_backend_free(&be);
    cnet_backend_free(&copying);
}

/* kB of `field` in the /proc/self/smaps entry of the mapping holding addr;
 * -1 when not found. */
static long smaps_kb(const void *addr, const char *field) {
    FILE *f = fopen("/proc/self/smaps", "r");
    if (!f) return -1;
    char line[512];
    int inside = 0;
    long kb = -1;
    const uintptr_t a = (uintptr_t)addr;
    while (fgets(line, sizeof line, f)) {
        uintmax_t lo, hi;
        if (sscanf(line, "%jx-%jx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' ')) {
            inside = a >= lo && a < hi;
            continue;
        }
        size_t n = strlen(field);
        if (inside && strncmp(line, field, n) == 0 && line[n] == ':') {
            kb = strtol(line + n + 1, NULL, 10);
            break;
        }
    }
    fclose(f);
    return kb;
}

static double sum_of(const float *x, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += x[i];
    return s;
}

static void test_second_process_shares_pages(void) {
    cnet_backend be;
    cnet_error err = {0};
    CHECK(cnet_backend_cpu_init(&be, &err) == 0, "%s", err.msg);
    char path[128];
    snprintf(path, sizeof path, "%s/shared.safetensors", dir);
    CHECK(write_file(path, CNET_F32) == 0, "cannot write %s", path);
    cnet_params p;
    CHECK(declare(&p, &be, &err) == 0 && params_load(&p, path, &err) == 0, "%s", err.msg);
    const double want = sum_of(p.items[1].data, MAP_LIN_NUMEL); /* every page resident */
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) { /* its own table and mapping of the same file */
        cnet_params q;
        cnet_error cerr = {0};
        if (declare(&q, &be, &cerr) || params_load(&q, path, &cerr) || q.n_maps != 1) _exit(2);
        if (sum_of(q.items[1].data, MAP_LIN_NUMEL) != want) _exit(3);
        const long page_kb = sysconf(_SC_PAGESIZE) / 1024;
        const long need_kb = (long)(MAP_LIN_NUMEL * sizeof(float) / 1024) - 2 * page_kb;
        const long shared = smaps_kb(q.items[1].data, "Shared_Clean");
        const long anon = smaps_kb(q.items[1].data, "Anonymous");
        printf("second process: Shared_Clean %ld kB (weight %zu kB), Anonymous %ld kB\n", shared,
               MAP_LIN_NUMEL * sizeof(float) / 1024, anon);
        fflush(stdout);
        _exit(shared >= need_kb && anon == 0 ? 0 : 4);
    }
    int status = 0;
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid, "fork/wait failed");
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
          "the second process does not share the weight's pages (exit %d: 2 load, 3 values, 4 "
          "smaps)",
          WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    params_free(&p);
    cnet_backend_free(&be);
}

static unsigned char *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    rewind(f);
    unsigned char *buf = malloc(*n ? *n : 1);
    if (buf && fread(buf, 1, *n, f) != *n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    return buf;
}

static void test_own_before_training(void) {
    cnet_backend be;
    cnet_error err = {0};
    CHECK(cnet_backend_cpu_init(&be, &err) == 0, "%s", err.msg);
    char path[128];
    snprintf(path, sizeof path, "%s/own.safetensors", dir);
    CHECK(write_file(path, CNET_F32) == 0, "cannot write %s", path);
    size_t n0 = 0, n1 = 0;
    unsigned char *before = read_all(path, &n0);
    cnet_params p, grads;
    CHECK(declare(&p, &be, &err) == 0 && params_load(&p, path, &err) == 0, "%s", err.msg);
    CHECK(p.n_maps == 1, "nothing mapped");
    CHECK(params_alloc_like(&grads, &p, &err) != 0 && strstr(err.msg, "params_own"),
          "a gradient table was made from a mapped table: %s", err.msg);
    params_free(&grads);
    CHECK(params_own(&p, &err) == 0, "%s", err.msg);
    CHECK(p.n_maps == 0 && p.mapped == 0 && !in_maps(&p, p.items[1].data),
          "params_own left parameters in the mapping");
    CHECK(same_as_values(&p), "params_own changed the values");
    /* a training step's write */
    for (int k = 0; k < p.n; k++)
        for (size_t i = 0; i < p.items[k].numel; i++) p.items[k].data[i] += 1.0f;
    unsigned char *after = read_all(path, &n1);
    CHECK(before && after && n0 == n1 && memcmp(before, after, n0) == 0,
          "writes to owned parameters reached the file");
    CHECK(params_alloc_like(&grads, &p, &err) == 0, "%s", err.msg);
    /* a checkpoint loaded into the trained table, and into a moment table,
     * is copied: both are written */
    CHECK(params_load(&p, path, &err) == 0 && p.n_maps == 0 && same_as_values(&p),
          "an owned table mapped a reload: %s", err.msg);
    CHECK(params_load(&grads, path, &err) == 0 && grads.n_maps == 0 && same_as_values(&grads),
          "a gradient table mapped its file: %s", err.msg);
    params_free(&grads);
    free(before);
    free(after);
    params_free(&p);
    cnet_backend_free(&be);
}

/* A file whose F32 lin.bias starts 2 bytes past a 4-byte boundary. */
static int write_unaligned(const char *path) {
    char header[256];
    const size_t bias_bytes = MAP_BIAS_NUMEL * sizeof(float);
    int len =
        snprintf(header, sizeof header,
                 "{\"lin.bias\":{\"dtype\":\"F32\",\"shape\":[%zu],\"data_offsets\":[2,%zu]}}",
                 MAP_BIAS_NUMEL, 2 + bias_bytes);
    while (len % 8) header[len++] = ' '; /* the data block itself stays 8-aligned */
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    unsigned char prefix[8];
    for (int i = 0; i < 8; i++) prefix[i] = (unsigned char)((uint64_t)len >> (8 * i));
    fwrite(prefix, 1, 8, f);
    fwrite(header, 1, (size_t)len, f);
    fwrite("\0\0", 1, 2, f);
    for (size_t i = 0; i < MAP_BIAS_NUMEL; i++) {
        float v = value(0, i);
        fwrite(&v, sizeof v, 1, f);
    }
    return fclose(f);
}

static void test_unaligned_and_other_dtypes_copy(void) {
    cnet_backend be;
    cnet_error err = {0};
    CHECK(cnet_backend_cpu_init(&be, &err) == 0, "%s", err.msg);
    char path[128];
    snprintf(path, sizeof path, "%s/f16.safetensors", dir);
    CHECK(write_file(path, CNET_F16) == 0, "cannot write %s", path);
    cnet_params p;
    CHECK(declare(&p, &be, &err) == 0 && params_load(&p, path, &err) == 0, "%s", err.msg);
    CHECK(p.n_maps == 0 && p.mapped == 0, "an F16 file was mapped in place");
    CHECK(same_as_values(&p), "F16 values differ");
    params_free(&p);

    snprintf(path, sizeof path, "%s/unaligned.safetensors", dir);
    CHECK(write_unaligned(path) == 0, "cannot write %s", path);
    const int64_t bias[1] = {MAP_BIAS_NUMEL};
    params_init(&p, &be);
    CHECK(params_add(&p, "lin.bias", 1, bias, PARAM_PLAIN, &err) == 0 &&
              params_alloc(&p, &err) == 0 && params_load(&p, path, &err) == 0,
          "%s", err.msg);
    CHECK(p.n_maps == 0 && p.mapped == 0, "an unaligned F32 tensor was mapped in place");
    int same = 1;
    for (size_t i = 0; i < MAP_BIAS_NUMEL && same; i++) same = p.items[0].data[i] == value(0, i);
    CHECK(same, "unaligned F32 values differ");
    params_free(&p);
    cnet_backend_free(&be);
}

int main(int argc, char **argv) {
    harness_init(argc, argv);
    if (!mkdtemp(dir)) return 1;
    RUN(test_mapped_equals_copied);
    RUN(test_second_process_shares_pages);
    RUN(test_own_before_training);
    RUN(test_unaligned_and_other_dtypes_copy);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) return 1;
    return harness_done();
}
