/* Helpers of the model golden checks: a CPU backend with a scratch arena,
 * golden tensors uploaded in the engine's layout (4-d NCHW -> NHWC) and
 * results compared back in PyTorch layout. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/layout.h"
#include "golden_io.h"

int golden_env_init(golden_env *env, cnet_error *err) {
    memset(env, 0, sizeof *env);
    return cnet_backend_cpu_init(&env->be, err);
}

int golden_env_scratch(golden_env *env, size_t bytes, cnet_error *err) {
    if (env->scratch.capacity >= bytes) return 0;
    cnet_arena_free(&env->scratch);
    return cnet_arena_init(&env->scratch, &env->be, bytes, "golden scratch", err);
}

void golden_env_free(golden_env *env) {
    cnet_arena_free(&env->scratch);
    cnet_backend_free(&env->be);
}

int golden_need(const st_file *f, const char *name, cnet_dtype dtype, int ndim,
                const st_entry **out, cnet_error *err) {
    const st_entry *e = st_find(f, name);
    if (!e) return cnet_fail(err, CNET_ENOTFOUND, "%s: no tensor '%s'", f->path, name);
    if (e->view.dtype != dtype || (ndim >= 0 && e->view.ndim != ndim))
        return cnet_fail(
            err, CNET_EFORMAT, "%s: tensor '%s' is %s with %d dims; expected %s with %d", f->path,
            name, cnet_dtype_name(e->view.dtype), e->view.ndim, cnet_dtype_name(dtype), ndim);
    *out = e;
    return 0;
}

/* A golden f32 tensor on the device, NCHW -> NHWC when 4-d. NULL on error. */
float *golden_upload(golden_env *env, const st_entry *e, cnet_error *err) {
    const cnet_tensor *t = &e->view;
    size_t n = (size_t)cnet_tensor_numel(t);
    float *host = malloc((n ? n : 1) * sizeof(float)), *conv = NULL;
    float *dev = env->be.alloc(&env->be, (n ? n : 1) * sizeof(float));
    if (!host || !dev) goto oom;
    cnet_to_f32(host, t->data, t->dtype, n);
    if (t->ndim == 4) {
        if (!(conv = malloc(n * sizeof(float)))) goto oom;
        layout_nchw_to_nhwc(conv, host, (int)t->shape[0], (int)t->shape[1], (int)t->shape[2],
                            (int)t->shape[3]);
    }
    env->be.upload(&env->be, dev, conv ? conv : host, n * sizeof(float));
    free(host);
    free(conv);
    return dev;
oom:
    free(host);
    free(conv);
    if (dev) env->be.free(&env->be, dev);
    cnet_fail(err, CNET_ENOMEM, "golden: out of memory for '%s'", e->name);
    return NULL;
}

/* Downloads an NHWC [B,H,W,C] (or any non-4-d) result and compares it in
 * PyTorch layout with the golden `name`, whose shape gives the layout. */
void golden_compare_nhwc(golden_ctx *ctx, golden_env *env, const st_file *f, const char *name,
                         const float *dev, int ndim, const int64_t *shape) {
    cnet_tensor got = {CNET_F32, ndim, {0}, NULL, -1};
    size_t n = 1;
    for (int d = 0; d < ndim; d++) got.shape[d] = shape[d], n *= (size_t)shape[d];
    float *host = malloc((n ? n : 1) * sizeof(float)), *nchw = malloc((n ? n : 1) * sizeof(float));
    if (!host || !nchw) {
        golden_report(ctx, name, "?", INFINITY, 0, 0, "out of memory");
        free(host);
        free(nchw);
        return;
    }
    env->be.download(&env->be, host, dev, n * sizeof(float));
    if (ndim == 4) {
        layout_nhwc_to_nchw(nchw, host, (int)shape[0], (int)shape[1], (int)shape[2], (int)shape[3]);
        got.data = nchw;
    } else {
        got.data = host;
    }
    golden_compare(ctx, f, name, &got);
    free(host);
    free(nchw);
}
