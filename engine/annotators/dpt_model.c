/* DPTForDepthEstimation's parameters, named as transformers' checkpoints
 * name them (dpt.embeddings..., dpt.encoder.layer.N..., neck..., head.head.N),
 * declared from the config and loaded from model.safetensors; see dpt.h. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/annotators/dpt.h"

/* A Conv2d without a bias (neck.convs.N). */
static int conv_declare_nobias(nn_conv *c, cnet_params *p, const char *prefix, int in, int out,
                               int kernel, int pad, cnet_error *err) {
    char name[NN_NAME_BUF];
    const int64_t shape[4] = {out, in, kernel, kernel};
    memset(c, 0, sizeof *c);
    c->in = in, c->out = out, c->kernel = kernel, c->stride = 1, c->bias = -1;
    c->pad_top = c->pad_bottom = c->pad_left = c->pad_right = pad;
    if ((c->weight = params_add(p, nn_sub(name, prefix, "weight"), 4, shape, PARAM_CONV, err)) < 0)
        return c->weight;
    p->items[c->weight].product = 1;
    return 0;
}

static int conv_declare(nn_conv *c, cnet_params *p, const char *prefix, int in, int out, int kernel,
                        int stride, int pad, int bias, cnet_error *err) {
    return bias ? nn_conv_declare(c, p, prefix, in, out, kernel, stride, pad, err)
                : conv_declare_nobias(c, p, prefix, in, out, kernel, pad, err);
}

static int declare_encoder(dpt_model *m, cnet_error *err) {
    cnet_params *p = &m->params;
    const dpt_config *c = &m->cfg;
    const int D = c->hidden, I = c->intermediate;
    const int64_t cls[3] = {1, 1, D}, pos[3] = {1, 1 + (int64_t)m->pos_grid * m->pos_grid, D};
    int rc;
    if ((m->cls_token = params_add(p, "dpt.embeddings.cls_token", 3, cls, PARAM_PLAIN, err)) < 0)
        return m->cls_token;
    if ((m->position =
             params_add(p, "dpt.embeddings.position_embeddings", 3, pos, PARAM_PLAIN, err)) < 0)
        return m->position;
    if ((rc = nn_conv_declare(&m->patch, p, "dpt.embeddings.patch_embeddings.projection", 3, D,
                              c->patch, c->patch, 0, err)))
        return rc;
    for (int l = 0; l < c->layers; l++) {
        char pre[NN_NAME_BUF], name[NN_NAME_BUF];
        dpt_layer *L = &m->layers[l];
        snprintf(pre, sizeof pre, "dpt.encoder.layer.%d", l);
        if ((rc = nn_layer_norm_declare(&L->ln_before, p, nn_sub(name, pre, "layernorm_before"), D,
                                        c->eps, err)) ||
            (rc = nn_linear_declare(&L->q, p, nn_sub(name, pre, "attention.attention.query"), D, D,
                                    1, err)) ||
            (rc = nn_linear_declare(&L->k, p, nn_sub(name, pre, "attention.attention.key"), D, D, 1,
                                    err)) ||
            (rc = nn_linear_declare(&L->v, p, nn_sub(name, pre, "attention.attention.value"), D, D,
                                    1, err)) ||
            (rc = nn_linear_declare(&L->out, p, nn_sub(name, pre, "attention.output.dense"), D, D,
                                    1, err)) ||
            (rc = nn_layer_norm_declare(&L->ln_after, p, nn_sub(name, pre, "layernorm_after"), D,
                                        c->eps, err)) ||
            (rc = nn_linear_declare(&L->fc1, p, nn_sub(name, pre, "intermediate.dense"), D, I, 1,
                                    err)) ||
            (rc = nn_linear_declare(&L->fc2, p, nn_sub(name, pre, "output.dense"), I, D, 1, err)))
            return rc;
    }
    /* DPTModel's final layernorm: in every checkpoint, read by no depth path. */
    if ((rc = params_allow_extra(p, "dpt.layernorm.weight", err)) ||
        (rc = params_allow_extra(p, "dpt.layernorm.bias", err)))
        return rc;
    return 0;
}

static int declare_reassemble(dpt_model *m, int i, cnet_error *err) {
    cnet_params *p = &m->params;
    const dpt_config *c = &m->cfg;
    const int D = c->hidden, ch = c->neck[i];
    char pre[NN_NAME_BUF];
    int rc;
    snprintf(pre, sizeof pre, "neck.reassemble_stage.readout_projects.%d.0", i);
    if ((rc = nn_linear_declare(&m->readout[i], p, pre, 2 * D, D, 1, err))) return rc;
    snprintf(pre, sizeof pre, "neck.reassemble_stage.layers.%d.projection", i);
    if ((rc = nn_conv_declare(&m->reassemble[i], p, pre, D, ch, 1, 1, 0, err))) return rc;
    snprintf(pre, sizeof pre, "neck.reassemble_stage.layers.%d.resize", i);
    m->resize_weight[i] = m->resize_bias[i] = -1;
    if (c->up[i] > 1) {
        char name[NN_NAME_BUF];
        const int64_t w[4] = {ch, ch, c->up[i], c->up[i]}, b[1] = {ch};
        /* ConvTranspose2d's [in, out, k, k] stays as PyTorch stores it. */
        if ((m->resize_weight[i] =
                 params_add(p, nn_sub(name, pre, "weight"), 4, w, PARAM_PLAIN, err)) < 0)
            return m->resize_weight[i];
        if ((m->resize_bias[i] = params_add(p, nn_sub(name, pre, "bias"), 1, b, PARAM_PLAIN, err)) <
            0)
            return m->resize_bias[i];
    } else if (c->down[i] > 1 &&
               (rc = nn_conv_declare(&m->resize_down[i], p, pre, ch, ch, 3, c->down[i], 1, err)))
        return rc;
    snprintf(pre, sizeof pre, "neck.convs.%d", i);
    return conv_declare_nobias(&m->neck_conv[i], p, pre, ch, c->fusion, 3, 1, err);
}

static int declare_fusion(dpt_model *m, int i, cnet_error *err) {
    cnet_params *p = &m->params;
    const int F = m->cfg.fusion, bias = m->cfg.fusion_bias;
    dpt_fusion *L = &m->fusion[i];
    dpt_residual *res[2] = {&L->res1, &L->res2};
    char pre[NN_NAME_BUF];
    int rc;
    for (int r = 0; r < 2; r++) {
        snprintf(pre, sizeof pre, "neck.fusion_stage.layers.%d.residual_layer%d.convolution1", i,
                 r + 1);
        if ((rc = conv_declare(&res[r]->conv1, p, pre, F, F, 3, 1, 1, bias, err))) return rc;
        snprintf(pre, sizeof pre, "neck.fusion_stage.layers.%d.residual_layer%d.convolution2", i,
                 r + 1);
        if ((rc = conv_declare(&res[r]->conv2, p, pre, F, F, 3, 1, 1, bias, err))) return rc;
    }
    snprintf(pre, sizeof pre, "neck.fusion_stage.layers.%d.projection", i);
    return nn_conv_declare(&L->projection, p, pre, F, F, 1, 1, 0, err);
}

static int declare_head(dpt_model *m, cnet_error *err) {
    cnet_params *p = &m->params;
    const int F = m->cfg.fusion;
    int rc;
    if (m->cfg.add_projection &&
        (rc = nn_conv_declare(&m->head_projection, p, "head.projection", F, F, 3, 1, 1, err)))
        return rc;
    if ((rc = nn_conv_declare(&m->head0, p, "head.head.0", F, F / 2, 3, 1, 1, err)) ||
        (rc = nn_conv_declare(&m->head2, p, "head.head.2", F / 2, 32, 3, 1, 1, err)) ||
        (rc = nn_conv_declare(&m->head4, p, "head.head.4", 32, 1, 1, 1, 0, err)))
        return rc;
    return 0;
}

static int declare_all(dpt_model *m, cnet_error *err) {
    int rc = declare_encoder(m, err);
    for (int i = 0; !rc && i < DPT_STAGES; i++) rc = declare_reassemble(m, i, err);
    for (int i = 0; !rc && i < DPT_STAGES; i++) rc = declare_fusion(m, i, err);
    return rc ? rc : declare_head(m, err);
}

int dpt_load(dpt_model *m, cnet_backend *be, const char *dir, cnet_error *err) {
    char path[PATH_MAX];
    memset(m, 0, sizeof *m);
    params_init(&m->params, be);
    if (snprintf(path, sizeof path, "%s/config.json", dir) >= (int)sizeof path)
        return cnet_fail(err, CNET_ELIMIT, "%s: path too long", dir);
    int rc = dpt_config_read(&m->cfg, path, err);
    if (rc) {
        params_free(&m->params);
        return rc;
    }
    m->pos_grid = m->cfg.image_size / m->cfg.patch;
    m->layers = calloc((size_t)m->cfg.layers, sizeof *m->layers);
    if (!m->layers) rc = cnet_fail(err, CNET_ENOMEM, "%s: out of memory", dir);
    if (!rc) rc = declare_all(m, err);
    if (!rc) rc = params_alloc(&m->params, err);
    if (!rc) {
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        rc = params_load(&m->params, path, err);
    }
    if (rc) dpt_free(m);
    return rc;
}

void dpt_free(dpt_model *m) {
    params_free(&m->params);
    free(m->layers);
    memset(m, 0, sizeof *m);
}
