/* tool_dist: engine/dist's collectives checked on the ranks mpirun started
 * (run by tests/integration/train_mpi_test.sh as `mpirun -np N tool_dist`;
 * alone it is a group of one). Each rank fills buffers from its rank by a
 * formula, so the expected sum is known in closed form (the truth is not
 * another collective). Checked: a sum over more than two buckets (the last
 * one short), through host memory (the CPU backend) and through the host
 * bucket a device uses (the same backend with reads_host cleared: its
 * download and upload are copies); a broadcast of rank 0's buffer; and
 * dist_check_same passing on equal buffers and naming the ranks whose
 * buffers differ; the sharded forms over shards that cut a bucket in the
 * middle, in place and staged: a reduce-scatter (each rank's shard holds
 * the sum), an all-gather (every element its owner's) and a gather to rank 0
 * of each rank's shard. Prints "rank R: name ok|FAIL" and exits 1 on a failure. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/core/backend.h"
#include "engine/dist/dist_device.h"

static int failed;

static void report(const dist_comm *c, const char *name, int ok) {
    printf("rank %d: %s %s\n", c->rank, name, ok ? "ok" : "FAIL");
    failed |= !ok;
}

/* Rank r's element i: small integers, whose float sums are exact. */
static float value(int r, size_t i) { return (float)((i % 13) + 100 * (size_t)r); }

static int sums_right(const dist_comm *c, const float *buf, size_t n) {
    const float ranks_sum = 100.0f * (float)(c->size * (c->size - 1) / 2);
    for (size_t i = 0; i < n; i++)
        if (buf[i] != (float)(i % 13) * (float)c->size + ranks_sum) return 0;
    return 1;
}

/* The sharded collectives over bounds (rank r owns [b[r], b[r+1]), cuts
 * off the bucket edges); buf holds n floats, mine a shard's. */
static void sharded(dist_comm *c, dist_stage *stage, cnet_backend *dev, float *buf, float *mine,
                    size_t n, int staged) {
    size_t b[DIST_MAX_RANKS + 1];
    b[0] = 0, b[c->size] = n;
    for (int r = 1; r < c->size; r++) b[r] = n / (size_t)c->size * (size_t)r + 7;
    const size_t lo = b[c->rank], hi = b[c->rank + 1];
    for (size_t i = 0; i < n; i++) buf[i] = value(c->rank, i);
    int rc = dist_reduce_scatter_device(c, stage, dev, buf, b, NULL);
    const float ranks_sum = 100.0f * (float)(c->size * (c->size - 1) / 2);
    int ok = !rc;
    for (size_t i = lo; i < hi && ok; i++)
        ok = buf[i] == (float)(i % 13) * (float)c->size + ranks_sum;
    report(c, staged ? "reduce_scatter_staged" : "reduce_scatter_in_place", ok);

    int owner = 0;
    for (size_t i = 0; i < n; i++) buf[i] = i >= lo && i < hi ? value(c->rank, i) : -1.0f;
    ok = !dist_allgather_device(c, stage, dev, buf, b, NULL);
    for (size_t i = 0; i < n && ok; i++) {
        while (i >= b[owner + 1]) owner++;
        ok = buf[i] == value(owner, i);
    }
    report(c, staged ? "allgather_staged" : "allgather_in_place", ok);

    for (size_t i = lo; i < hi; i++) mine[i - lo] = value(c->rank, i);
    for (size_t i = 0; i < n; i++) buf[i] = -1.0f;
    ok =
        !dist_gather_device(c, stage, dev, mine, c->rank == 0 ? buf : NULL, sizeof(float), b, NULL);
    owner = 0;
    for (size_t i = 0; i < n && ok; i++) {
        while (i >= b[owner + 1]) owner++;
        ok = c->rank == 0 ? buf[i] == value(owner, i) : buf[i] == -1.0f;
    }
    report(c, staged ? "gather_staged" : "gather_to_rank0", ok);
}

int main(void) {
    dist_comm c;
    cnet_error err = {0};
    if (dist_comm_init(&c, &err)) {
        fprintf(stderr, "tool_dist: %s\n", err.msg);
        return 2;
    }
    cnet_backend be;
    char note[256];
    if (cnet_backend_open(&be, "cpu", note, sizeof note, &err)) {
        fprintf(stderr, "tool_dist: %s\n", err.msg);
        dist_comm_free(&c);
        return 2;
    }
    const size_t n = 2 * DIST_BUCKET_FLOATS + 5;
    float *buf = malloc(n * sizeof(float)), *mine = malloc(n * sizeof(float));
    dist_stage stage = {0};
    if (!buf || !mine) {
        fprintf(stderr, "tool_dist: out of memory\n");
        return 2;
    }
    for (int staged = 0; staged < 2; staged++) {
        cnet_backend dev = be;
        dev.reads_host = !staged && be.reads_host;
        for (size_t i = 0; i < n; i++) buf[i] = value(c.rank, i);
        int rc = dist_allreduce_device(&c, &stage, &dev, buf, n, &err);
        report(&c, staged ? "allreduce_staged_buckets" : "allreduce_in_place_buckets",
               !rc && sums_right(&c, buf, n));
        for (size_t i = 0; i < n; i++) buf[i] = value(c.rank, i);
        rc = dist_broadcast_device(&c, &stage, &dev, buf, n, &err);
        int same = !rc;
        for (size_t i = 0; i < n && same; i++) same = buf[i] == value(0, i);
        report(&c, staged ? "broadcast_staged" : "broadcast_in_place", same);
        report(&c, "check_same_equal",
               dist_check_same(&c, &stage, &dev, buf, n, "the buffer", &err) == 0);
        /* the last rank changes one element of the last bucket */
        if (c.rank == c.size - 1) buf[n - 1] += 1;
        rc = dist_check_same(&c, &stage, &dev, buf, n, "the buffer", &err);
        char want[64];
        snprintf(want, sizeof want, "on rank(s) %d", c.size - 1);
        report(&c, "check_same_names_rank",
               c.size == 1 ? rc == 0 : rc == CNET_EINVAL && strstr(err.msg, want) != NULL);
        sharded(&c, &stage, &dev, buf, mine, n, staged);
    }
    free(buf);
    free(mine);
    dist_stage_free(&stage);
    cnet_backend_free(&be);
    dist_comm_free(&c);
    return failed;
}
