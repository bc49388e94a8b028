/* Choosing a backend from a `--device` string (see backend.h): "cpu",
 * "cuda" or "cuda:N", with the fallback to the CPU when no GPU is visible,
 * so one binary runs on every machine. Not a device scheduler: the server's
 * pool decides which worker gets which ordinal. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/core/backend.h"
#ifdef CNET_HAVE_CUDA
#include "kernels/cuda/cuda_backend.h"
#endif

/* Largest device ordinal a string may name. */
#define CNET_DEVICE_ORDINAL_MAX 1023

/* device -> ordinal (>= 0) for "cuda" / "cuda:N", -1 for "cpu"; -2 when
 * malformed. */
static int parse_device(const char *device) {
    if (strcmp(device, "cpu") == 0) return -1;
    if (strcmp(device, "cuda") == 0) return 0;
    if (strncmp(device, "cuda:", 5) != 0) return -2;
    const char *num = device + 5;
    if (!*num || strlen(num) > 4) return -2;
    for (const char *p = num; *p; p++)
        if (*p < '0' || *p > '9') return -2;
    int n = atoi(num);
    return n <= CNET_DEVICE_ORDINAL_MAX ? n : -2;
}

int cnet_backend_open(cnet_backend *be, const char *device, char *note, size_t note_cap,
                      cnet_error *err) {
    if (note && note_cap) note[0] = '\0';
    const int ordinal = device ? parse_device(device) : -2;
    if (ordinal == -2)
        return cnet_fail(err, CNET_EINVAL,
                         "--device '%s': expected cpu, cuda or cuda:N (N from 0 to %d)",
                         device ? device : "(null)", CNET_DEVICE_ORDINAL_MAX);
    if (ordinal == -1) return cnet_backend_cpu_init(be, err);
#ifdef CNET_HAVE_CUDA
    char why[256];
    const int count = cnet_cuda_device_count(why, sizeof why);
    if (count > 0) {
        if (ordinal >= count)
            return cnet_fail(err, CNET_EINVAL, "--device %s: only %d CUDA device%s visible", device,
                             count, count == 1 ? " is" : "s are");
        return cnet_backend_cuda_init(be, ordinal, err);
    }
#else
    const char *why = "this cnet was built without CUDA (no nvcc at build time)";
#endif
    if (note && note_cap)
        snprintf(note, note_cap, "--device %s: no CUDA device visible (%s); using the CPU", device,
                 why);
    return cnet_backend_cpu_init(be, err);
}

int cnet_backend_status(cnet_backend *be, cnet_error *err) {
    return be->status ? be->status(be, err) : 0;
}

int cnet_backend_recover(cnet_backend *be, cnet_error *err) {
    if (!be->recover) return cnet_backend_status(be, err);
    return be->recover(be, err);
}

void cnet_backend_set_tf32(cnet_backend *be, int on, char *note, size_t note_cap) {
    if (note && note_cap) note[0] = '\0';
#ifdef CNET_HAVE_CUDA
    if (be->name && strcmp(be->name, "cuda") == 0) {
        cnet_backend_cuda_set_tf32(be, on);
        return;
    }
#endif
    (void)be;
    if (on && note && note_cap)
        snprintf(note, note_cap,
                 "--allow_tf32: the cpu computes float32 as float32 (TF32 is a "
                 "cuda tensor-core mode)");
}

int cnet_backend_cuda_count(void) {
#ifdef CNET_HAVE_CUDA
    return cnet_cuda_device_count(NULL, 0);
#else
    return 0;
#endif
}

size_t cnet_backend_peak_device_bytes(cnet_backend *be) {
#ifdef CNET_HAVE_CUDA
    if (be->name && strcmp(be->name, "cuda") == 0) return cnet_backend_cuda_peak_bytes(be);
#endif
    (void)be;
    return 0;
}
