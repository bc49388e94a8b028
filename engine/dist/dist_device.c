/* Collectives over backend buffers; see dist_device.h. */
#include "engine/dist/dist_device.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void dist_stage_free(dist_stage *s) {
    free(s->host);
    s->host = NULL;
}

static int stage_host(dist_stage *s, cnet_error *err) {
    if (!s->host && !(s->host = malloc(DIST_BUCKET_FLOATS * sizeof(float))))
        return cnet_fail(err, CNET_ENOMEM, "out of memory for a %zu-float allreduce bucket",
                         DIST_BUCKET_FLOATS);
    return 0;
}

int dist_allreduce_device(dist_comm *c, dist_stage *s, cnet_backend *be, float *buf, size_t n,
                          cnet_error *err) {
    if (c->size == 1) return 0;
    int rc = be->reads_host ? 0 : stage_host(s, err);
    for (size_t at = 0; !rc && at < n; at += DIST_BUCKET_FLOATS) {
        const size_t k = n - at < DIST_BUCKET_FLOATS ? n - at : DIST_BUCKET_FLOATS;
        if (be->reads_host) {
            rc = dist_allreduce_sum(c, buf + at, k, err);
            continue;
        }
        be->download(be, s->host, buf + at, k * sizeof(float));
        if (!(rc = dist_allreduce_sum(c, s->host, k, err)))
            be->upload(be, buf + at, s->host, k * sizeof(float));
    }
    return rc;
}

int dist_broadcast_device(dist_comm *c, dist_stage *s, cnet_backend *be, float *buf, size_t n,
                          cnet_error *err) {
    if (c->size == 1) return 0;
    int rc = be->reads_host ? 0 : stage_host(s, err);
    for (size_t at = 0; !rc && at < n; at += DIST_BUCKET_FLOATS) {
        const size_t k = n - at < DIST_BUCKET_FLOATS ? n - at : DIST_BUCKET_FLOATS;
        if (be->reads_host) {
            rc = dist_broadcast(c, buf + at, k * sizeof(float), 0, err);
            continue;
        }
        if (c->rank == 0) be->download(be, s->host, buf + at, k * sizeof(float));
        if (!(rc = dist_broadcast(c, s->host, k * sizeof(float), 0, err)) && c->rank != 0)
            be->upload(be, buf + at, s->host, k * sizeof(float));
    }
    return rc;
}

static uint64_t fnv1a(uint64_t h, const void *p, size_t bytes) {
    const unsigned char *b = p;
    for (size_t i = 0; i < bytes; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

int dist_check_same(dist_comm *c, dist_stage *s, cnet_backend *be, const float *buf, size_t n,
                    const char *what, cnet_error *err) {
    if (c->size == 1) return 0;
    uint64_t h = 0xcbf29ce484222325ull, h0;
    int rc = be->reads_host ? 0 : stage_host(s, err);
    for (size_t at = 0; !rc && at < n; at += DIST_BUCKET_FLOATS) {
        const size_t k = n - at < DIST_BUCKET_FLOATS ? n - at : DIST_BUCKET_FLOATS;
        const float *host = buf + at;
        if (!be->reads_host) {
            be->download(be, s->host, buf + at, k * sizeof(float));
            host = s->host;
        }
        h = fnv1a(h, host, k * sizeof(float));
    }
    h0 = h;
    if (rc || (rc = dist_broadcast(c, &h0, sizeof h0, 0, err))) return rc;
    /* differs[r] = 1 on rank r when its hash is not rank 0's */
    float *differs = calloc((size_t)c->size, sizeof(float));
    if (!differs) return cnet_fail(err, CNET_ENOMEM, "out of memory");
    differs[c->rank] = h != h0;
    if (!(rc = dist_allreduce_sum(c, differs, (size_t)c->size, err))) {
        char ranks[256] = "";
        size_t used = 0;
        for (int r = 0; r < c->size && used + 16 < sizeof ranks; r++)
            if (differs[r] != 0)
                used += (size_t)snprintf(ranks + used, sizeof ranks - used, " %d", r);
        if (used)
            rc = cnet_fail(err, CNET_EINVAL, "%s differ from rank 0's on rank(s)%s", what, ranks);
    }
    free(differs);
    return rc;
}
