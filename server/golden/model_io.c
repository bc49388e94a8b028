/* Model tensors at the file boundary; see model_io.h. */
#include "server/golden/model_io.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/core/layout.h"

int mio_need(const st_file *f, const char *name, cnet_dtype dtype, int ndim, const st_entry **out,
             cnet_error *err) {
    const st_entry *e = st_find(f, name);
    if (!e) return cnet_fail(err, CNET_ENOTFOUND, "%s: no tensor '%s'", f->path, name);
    if (e->view.dtype != dtype || (ndim >= 0 && e->view.ndim != ndim))
        return cnet_fail(
            err, CNET_EFORMAT, "%s: tensor '%s' is %s with %d dims; expected %s with %d", f->path,
            name, cnet_dtype_name(e->view.dtype), e->view.ndim, cnet_dtype_name(dtype), ndim);
    *out = e;
    return 0;
}

float *mio_upload(cnet_backend *be, const st_entry *e, cnet_error *err) {
    const cnet_tensor *t = &e->view;
    size_t n = (size_t)cnet_tensor_numel(t);
    float *host = malloc((n ? n : 1) * sizeof(float)), *conv = NULL;
    float *dev = be->alloc(be, (n ? n : 1) * sizeof(float));
    if (!host || !dev) goto oom;
    cnet_to_f32(host, t->data, t->dtype, n);
    if (t->ndim == 4) {
        if (!(conv = malloc((n ? n : 1) * sizeof(float)))) goto oom;
        layout_nchw_to_nhwc(conv, host, (int)t->shape[0], (int)t->shape[1], (int)t->shape[2],
                            (int)t->shape[3]);
    }
    be->upload(be, dev, conv ? conv : host, n * sizeof(float));
    free(host);
    free(conv);
    return dev;
oom:
    free(host);
    free(conv);
    if (dev) be->free(be, dev);
    cnet_fail(err, CNET_ENOMEM, "out of memory for '%s'", e->name);
    return NULL;
}

float *mio_download(cnet_backend *be, const float *dev, int ndim, const int64_t *shape) {
    size_t n = 1;
    for (int d = 0; d < ndim; d++) n *= (size_t)shape[d];
    float *host = malloc((n ? n : 1) * sizeof(float));
    float *nhwc = ndim == 4 ? malloc((n ? n : 1) * sizeof(float)) : NULL;
    if (!host || (ndim == 4 && !nhwc)) {
        free(host);
        free(nhwc);
        return NULL;
    }
    be->download(be, nhwc ? nhwc : host, dev, n * sizeof(float));
    if (nhwc)
        layout_nhwc_to_nchw(host, nhwc, (int)shape[0], (int)shape[1], (int)shape[2], (int)shape[3]);
    free(nhwc);
    return host;
}

int mio_timesteps(const st_file *f, const char *name, int B, float *t, cnet_error *err) {
    const st_entry *e = st_find(f, name);
    if (!e) return cnet_fail(err, CNET_ENOTFOUND, "%s: no tensor '%s'", f->path, name);
    int64_t n = cnet_tensor_numel(&e->view);
    if (e->view.ndim > 1 || (n != 1 && n != B) ||
        (e->view.dtype != CNET_I64 && e->view.dtype != CNET_F32))
        return cnet_fail(err, CNET_EFORMAT, "%s: '%s' is not a scalar or [%d] timestep", f->path,
                         name, B);
    float v[MIO_MAX_BATCH];
    if (B > MIO_MAX_BATCH)
        return cnet_fail(err, CNET_ELIMIT, "%s: batch %d larger than %d", f->path, B,
                         MIO_MAX_BATCH);
    cnet_to_f32(v, e->view.data, e->view.dtype, (size_t)n);
    for (int b = 0; b < B; b++) t[b] = v[n == 1 ? 0 : b];
    return 0;
}

void mio_vae_distribution(float *mean, float *logvar, float *std, const float *moments, int B,
                          int L, size_t hw) {
    for (int b = 0; b < B; b++)
        for (size_t i = 0; i < (size_t)L * hw; i++) {
            size_t o = (size_t)b * L * hw + i, src = (size_t)b * 2 * L * hw + i;
            float lv = moments[src + (size_t)L * hw];
            mean[o] = moments[src];
            logvar[o] = lv < -30.0f ? -30.0f : lv > 20.0f ? 20.0f : lv;
            std[o] = expf(0.5f * logvar[o]);
        }
}
