/* Collectives over a backend's buffers (engine/core/backend.h): the
 * gradients summed over the ranks (whole, or reduce-scattered to the rank
 * that owns each slice when the optimizer state is sharded), the weights
 * broadcast from rank 0, all-gathered from their owners and checked to be
 * the same bits on every rank, a sharded array gathered to rank 0. A backend whose buffers are
 * host memory (reads_host: the CPU) is summed in place; a device's go
 * through one host bucket of DIST_BUCKET_FLOATS, downloaded, summed and
 * uploaded bucket by bucket (NCCL would sum on the device instead).
 *
 * What it is not: the collectives themselves (comm.h) or when the trainer
 * calls them (engine/train/trainer.c). */
#ifndef CNET_DIST_DEVICE_H
#define CNET_DIST_DEVICE_H

#include <stddef.h>

#include "engine/core/backend.h"
#include "engine/dist/comm.h"

/* Floats per allreduce (16 MB): large enough that MPI's per-call latency
 * is small beside the transfer, small enough to stage through host memory. */
#define DIST_BUCKET_FLOATS ((size_t)1 << 22)

/* A host bucket for device buffers; owned, made on first use. */
typedef struct dist_stage {
    float *host;
} dist_stage;

void dist_stage_free(dist_stage *s);

/* buf[0..n) (be's) = the sum over the ranks, bucket by bucket. */
int dist_allreduce_device(dist_comm *c, dist_stage *s, cnet_backend *be, float *buf, size_t n,
                          cnet_error *err);
/* buf[0..n) (be's) = rank 0's. */
int dist_broadcast_device(dist_comm *c, dist_stage *s, cnet_backend *be, float *buf, size_t n,
                          cnet_error *err);
/* The sharded forms. bounds[0..size] (0 = bounds[0] <= ... = n): rank r
 * owns elements [bounds[r], bounds[r+1]) of an array of n; every rank
 * passes the same bounds. Bucket by bucket, as above.
 *
 * Reduce-scatter: buf[0..n) (be's) holds this rank's whole array; after
 * it, this rank's slice of buf holds the sum over the ranks (the rest is
 * undefined: the collective works in place). */
int dist_reduce_scatter_device(dist_comm *c, dist_stage *s, cnet_backend *be, float *buf,
                               const size_t *bounds, cnet_error *err);
/* All-gather: every rank's slice of buf[0..n) (be's) becomes its owner's. */
int dist_allgather_device(dist_comm *c, dist_stage *s, cnet_backend *be, float *buf,
                          const size_t *bounds, cnet_error *err);
/* Gather to rank 0: mine (be's) holds this rank's slice, elem bytes per
 * element; rank 0's all[0..n) (be's; NULL on the others) receives every
 * rank's slice in place. */
int dist_gather_device(dist_comm *c, dist_stage *s, cnet_backend *be, const void *mine, void *all,
                       size_t elem, const size_t *bounds, cnet_error *err);
/* 0 when buf[0..n) (be's) holds the same bits on every rank (a 64-bit
 * FNV-1a hash of them compared with rank 0's), else CNET_EINVAL naming
 * what (e.g. "the ControlNet's weights") and the ranks that differ. */
int dist_check_same(dist_comm *c, dist_stage *s, cnet_backend *be, const float *buf, size_t n,
                    const char *what, cnet_error *err);

#endif
