/* The collectives of data-parallel training: a group of ranks (processes)
 * that sum float buffers (whole, or each rank keeping the sum of its own
 * slice: reduce-scatter), broadcast and gather bytes, wait for each other
 * and abort together. On Open MPI (comm_mpi.c) when cnet runs under mpirun (or srun),
 * one process otherwise, where every collective is the identity
 * (comm_single.c, also the whole of it in a build without MPI).
 *
 * The buffers are host memory; dist_device.h moves backend (device) buffers
 * through them. What it is not: a launcher (`cnet train --num_processes N`
 * execs mpirun, server/cli/cmd_train.c) or a transport of its own; NCCL's
 * GPU collectives would be a second implementation of the same calls.
 *
 * Faults follow MPI's: the communicator's errors are fatal (MPI_ERRORS_ARE_
 * FATAL), so a rank that dies ends the whole run through mpirun, which names
 * the rank; a rank that fails on its own calls dist_comm_abort, naming
 * itself, instead of leaving the others waiting in a collective. A rank that
 * hangs (stopped, deadlocked, far slower) neither dies nor fails: every
 * collective waits at most timeout_s ($CNET_DIST_TIMEOUT, default
 * DIST_TIMEOUT_DEFAULT_S, as torch.distributed's default), then the ranks
 * that waited tell each other so and the run is aborted naming the ranks
 * that did not answer. */
#ifndef CNET_DIST_COMM_H
#define CNET_DIST_COMM_H

#include <stddef.h>

#include "engine/core/error.h"

/* The most ranks a run may have (--num_processes above → CNET_EINVAL). */
#define DIST_MAX_RANKS 1024

/* Seconds a collective waits for the other ranks before the run is aborted
 * ($CNET_DIST_TIMEOUT overrides): long enough for rank 0's validation
 * images and checkpoints, which the others wait out in their next
 * collective. */
#define DIST_TIMEOUT_DEFAULT_S 1800.0

typedef struct dist_comm {
    int rank, size;
    int mpi;          /* MPI was initialised by dist_comm_init (finalised by dist_comm_free) */
    double timeout_s; /* a collective's longest wait */
    long long n_collectives; /* entered so far (named when one times out) */
} dist_comm;

/* 1 when cnet was built with MPI (a group may have several ranks). */
int dist_has_mpi(void);

/* 1 when this process was started by an MPI launcher (mpirun, srun), which
 * sets the ranks' environment: dist_comm_init then joins its group. */
int dist_launched(void);

/* *timeout_s = $CNET_DIST_TIMEOUT, else DIST_TIMEOUT_DEFAULT_S; CNET_EINVAL
 * naming the variable when it is not a positive number. */
int dist_timeout_from_env(double *timeout_s, cnet_error *err);

/* Joins the launcher's group (dist_launched), else makes a group of one.
 * CNET_EINVAL when started by a launcher in a build without MPI, naming the
 * package to install, or when $CNET_DIST_TIMEOUT is not a positive number
 * of seconds. */
int dist_comm_init(dist_comm *c, cnet_error *err);
void dist_comm_free(dist_comm *c);

/* buf[0..n) = the sum over the ranks of their buf[0..n) (host memory), the
 * same bits on every rank. */
int dist_allreduce_sum(dist_comm *c, float *buf, size_t n, cnet_error *err);
/* Reduce-scatter in place: buf holds counts[0] + ... + counts[size-1]
 * floats on every rank, rank r's slice after those of the ranks before it;
 * after it buf[0..counts[rank]) = the sum over the ranks of their copy of
 * this rank's slice (the rest of buf is undefined). Every rank passes the
 * same counts (zeros allowed). */
int dist_reduce_scatter_sum(dist_comm *c, float *buf, const int *counts, cnet_error *err);
/* All-gather in place: rank r's counts[r] bytes lie at buf + displs[r] on
 * rank r; after it every rank holds every rank's there. */
int dist_allgather(dist_comm *c, void *buf, const int *counts, const int *displs, cnet_error *err);
/* Gather to root: send[0..counts[rank]) of every rank lands at recv +
 * displs[r] on root (recv is root's; other ranks may pass NULL). */
int dist_gather(dist_comm *c, const void *send, void *recv, const int *counts, const int *displs,
                int root, cnet_error *err);
/* buf[0..bytes) = root's. */
int dist_broadcast(dist_comm *c, void *buf, size_t bytes, int root, cnet_error *err);
int dist_barrier(dist_comm *c, cnet_error *err);
/* Ends every rank's process with status code after printing why (stderr,
 * "rank R: why"); in a group of one, only this process. Never returns. */
_Noreturn void dist_comm_abort(dist_comm *c, int code, const char *why);

#endif
