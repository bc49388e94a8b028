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

/* The elements of [at, at + k) that rank r owns: [*lo, *hi). */
static void owned(const size_t *bounds, int r, size_t at, size_t k, size_t *lo, size_t *hi) {
    *lo = bounds[r] > at ? bounds[r] : at;
    *hi = bounds[r + 1] < at + k ? bounds[r + 1] : at + k;
    if (*hi < *lo) *hi = *lo;
}

/* counts[r] and displs[r] of each rank's part of bucket [at, at + k), in
 * elements times unit (1: elements; an element's bytes: bytes). */
static void bucket_parts(const dist_comm *c, const size_t *bounds, size_t at, size_t k, size_t unit,
                         int *counts, int *displs) {
    for (int r = 0; r < c->size; r++) {
        size_t lo, hi;
        owned(bounds, r, at, k, &lo, &hi);
        counts[r] = (int)((hi - lo) * unit), displs[r] = (int)((lo - at) * unit);
    }
}

int dist_reduce_scatter_device(dist_comm *c, dist_stage *s, cnet_backend *be, float *buf,
                               const size_t *bounds, cnet_error *err) {
    if (c->size == 1) return 0;
    int counts[DIST_MAX_RANKS], displs[DIST_MAX_RANKS];
    const size_t n = bounds[c->size];
    int rc = be->reads_host ? 0 : stage_host(s, err);
    for (size_t at = 0; !rc && at < n; at += DIST_BUCKET_FLOATS) {
        const size_t k = n - at < DIST_BUCKET_FLOATS ? n - at : DIST_BUCKET_FLOATS;
        bucket_parts(c, bounds, at, k, 1, counts, displs);
        const int mine = counts[c->rank];
        float *dst = buf + at + displs[c->rank];
        /* in place: the sum of this rank's part lands at the bucket's start */
        if (be->reads_host) {
            if (!(rc = dist_reduce_scatter_sum(c, buf + at, counts, err)) && mine)
                memmove(dst, buf + at, (size_t)mine * sizeof(float));
            continue;
        }
        be->download(be, s->host, buf + at, k * sizeof(float));
        if (!(rc = dist_reduce_scatter_sum(c, s->host, counts, err)) && mine)
            be->upload(be, dst, s->host, (size_t)mine * sizeof(float));
    }
    return rc;
}

int dist_allgather_device(dist_comm *c, dist_stage *s, cnet_backend *be, float *buf,
                          const size_t *bounds, cnet_error *err) {
    if (c->size == 1) return 0;
    int counts[DIST_MAX_RANKS], displs[DIST_MAX_RANKS];
    const size_t n = bounds[c->size];
    int rc = be->reads_host ? 0 : stage_host(s, err);
    for (size_t at = 0; !rc && at < n; at += DIST_BUCKET_FLOATS) {
        const size_t k = n - at < DIST_BUCKET_FLOATS ? n - at : DIST_BUCKET_FLOATS;
        bucket_parts(c, bounds, at, k, sizeof(float), counts, displs);
        if (be->reads_host) {
            rc = dist_allgather(c, buf + at, counts, displs, err);
            continue;
        }
        const size_t mine = (size_t)counts[c->rank];
        if (mine)
            be->download(be, (char *)s->host + displs[c->rank],
                         (const char *)(buf + at) + displs[c->rank], mine);
        if (!(rc = dist_allgather(c, s->host, counts, displs, err)))
            be->upload(be, buf + at, s->host, k * sizeof(float));
    }
    return rc;
}

int dist_gather_device(dist_comm *c, dist_stage *s, cnet_backend *be, const void *mine, void *all,
                       size_t elem, const size_t *bounds, cnet_error *err) {
    int counts[DIST_MAX_RANKS], displs[DIST_MAX_RANKS];
    const size_t n = bounds[c->size], per = DIST_BUCKET_FLOATS * sizeof(float) / elem;
    const int root = c->rank == 0;
    if (c->size == 1) { /* the one shard is the whole array */
        if (n) be->copy(be, all, mine, n * elem);
        return 0;
    }
    int rc = be->reads_host ? 0 : stage_host(s, err);
    for (size_t at = 0; !rc && at < n; at += per) {
        const size_t k = n - at < per ? n - at : per;
        size_t lo, hi;
        owned(bounds, c->rank, at, k, &lo, &hi);
        const char *src = (const char *)mine + (lo - bounds[c->rank]) * elem;
        bucket_parts(c, bounds, at, k, elem, counts, displs);
        if (be->reads_host) {
            rc = dist_gather(c, src, root ? (char *)all + at * elem : NULL, counts, displs, 0, err);
            continue;
        }
        /* a device: rank 0 copies its own part on the device, the others
         * send theirs from the start of their host bucket */
        if (root && hi > lo) be->copy(be, (char *)all + lo * elem, src, (hi - lo) * elem);
        if (!root && hi > lo) be->download(be, s->host, src, (hi - lo) * elem);
        counts[0] = 0;
        const char none = 0;
        rc = dist_gather(c, root ? &none : (const void *)s->host, root ? s->host : NULL, counts,
                         displs, 0, err);
        /* the other ranks' parts: the bucket from where rank 1's shard starts */
        const size_t first = bounds[1] > at ? bounds[1] : at;
        if (!rc && root && first < at + k)
            be->upload(be, (char *)all + first * elem, (char *)s->host + (first - at) * elem,
                       (at + k - first) * elem);
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
