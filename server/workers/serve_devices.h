/* Which engines `cnet serve` opens when no --device is given: one per
 * visible GPU in a CUDA build, else one on the CPU. The GPU count is an
 * argument (cnet_backend_cuda_count() in the server) so the choice can be
 * tested without a GPU. */
#ifndef CNET_SERVE_DEVICES_H
#define CNET_SERVE_DEVICES_H

/* Longest device name written ("cuda:1023" and its NUL fit). */
#define SERVE_DEVICE_NAME_MAX 24 /* "cuda:" and any int */

/* Writes "cuda:0" .. "cuda:N-1" for gpu_count = N > 0 (the first max of
 * them when there are more), or "cpu" when gpu_count <= 0, into names;
 * returns how many were written (>= 1; max must be >= 1). */
int serve_default_devices(int gpu_count, char (*names)[SERVE_DEVICE_NAME_MAX], int max);

#endif
