/* See lib_casemem.h. */
#include "tests/lib/lib_casemem.h"

#include <stdio.h>
#include <stdlib.h>

#include "tests/lib/lib_numeric.h"

/* Buffers one test case may hold at once. */
enum { CM_MAX_BUFFERS = 256 };

static void *cm_buf[CM_MAX_BUFFERS];
static int cm_count;

void *cm_alloc(size_t bytes) {
    void *p = calloc(1, bytes ? bytes : 1);
    if (!p || cm_count == CM_MAX_BUFFERS) {
        fprintf(stderr, "casemem: cannot allocate %zu bytes (buffer %d of %d)\n", bytes, cm_count,
                CM_MAX_BUFFERS);
        abort();
    }
    cm_buf[cm_count++] = p;
    return p;
}

float *cm_uniform(size_t n, float lo, float hi, uint64_t *state) {
    float *x = cm_alloc(n * sizeof *x);
    fill_uniform(x, n, lo, hi, state);
    return x;
}

float *cm_fill(size_t n, float value) {
    float *x = cm_alloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++) x[i] = value;
    return x;
}

double *cm_double(const float *x, size_t n) {
    double *d = cm_alloc(n * sizeof *d);
    for (size_t i = 0; i < n; i++) d[i] = x[i];
    return d;
}

double *cm_dzeros(size_t n) { return cm_alloc(n * sizeof(double)); }

void cm_free_all(void) {
    while (cm_count > 0) free(cm_buf[--cm_count]);
}
