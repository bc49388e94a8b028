/* EMAModel's decay schedule and update; see ema.h. */
#include "engine/train/ema.h"

#include <math.h>
#include <string.h>

ema_settings ema_default_settings(void) {
    return (ema_settings){.decay = EMA_DEFAULT_DECAY,
                          .min_decay = 0.0,
                          .inv_gamma = 1.0,
                          .power = EMA_DEFAULT_POWER,
                          .update_after_step = 0,
                          .use_ema_warmup = 0};
}

int ema_init(ema_model *e, const cnet_params *params, const ema_settings *cfg, cnet_error *err) {
    memset(e, 0, sizeof *e);
    e->cfg = *cfg;
    cnet_backend *be = params->be;
    int rc = params_alloc_like(&e->shadow, params, err);
    if (rc) return rc;
    if (!(e->tmp = be->alloc(be, (params->total ? params->total : 1) * sizeof(float)))) {
        params_free(&e->shadow);
        return cnet_fail(err, CNET_ENOMEM, "ema: cannot allocate %zu floats on %s", params->total,
                         be->name);
    }
    be->copy(be, e->shadow.block, params->block, params->total * sizeof(float));
    return 0;
}

void ema_free(ema_model *e) {
    if (e->tmp) e->shadow.be->free(e->shadow.be, e->tmp);
    params_free(&e->shadow);
    memset(e, 0, sizeof *e);
}

double ema_decay_at(const ema_settings *cfg, long optimization_step) {
    const long k = optimization_step - cfg->update_after_step - 1 > 0
                       ? optimization_step - cfg->update_after_step - 1
                       : 0;
    if (k <= 0) return 0.0;
    double decay = cfg->use_ema_warmup ? 1.0 - pow(1.0 + (double)k / cfg->inv_gamma, -cfg->power)
                                       : (1.0 + (double)k) / (10.0 + (double)k);
    decay = decay < cfg->decay ? decay : cfg->decay;
    return decay > cfg->min_decay ? decay : cfg->min_decay;
}

void ema_step(ema_model *e, const cnet_params *params) {
    cnet_backend *be = e->shadow.be;
    const long n = (long)e->shadow.total;
    e->cur_decay = ema_decay_at(&e->cfg, ++e->optimization_step);
    const float c = (float)(1.0 - e->cur_decay); /* torch rounds the Python scalar */
    be->axpby(be, e->tmp, 1.0f, e->shadow.block, -1.0f, params->block, n);   /* d = s - p */
    be->scale(be, e->tmp, e->tmp, c, n);                                     /* m = c * d */
    be->axpby(be, e->shadow.block, 1.0f, e->shadow.block, -1.0f, e->tmp, n); /* s - m */
}
