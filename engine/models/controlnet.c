/* ControlNetModel: parameters, loading, forward (keeping what the backward
 * reads) and the backward that training uses; see controlnet.h. */
#include "engine/models/controlnet.h"

#include <limits.h>
#include "engine/config/model_files.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

int controlnet_declare(controlnet_model *m, cnet_backend *be, const cnet_unet_config *L,
                       cnet_error *err) {
    const int *cond_out_channels = L->conditioning_embedding_out_channels;
    const int n_cond = L->n_cond_blocks, conditioning_channels = L->conditioning_channels;
    char name[NN_NAME_BUF];
    int rc;
    memset(m, 0, sizeof *m);
    params_init(&m->params, be);
    cnet_params *p = &m->params;
    if (n_cond < 1 || n_cond > CONTROLNET_MAX_COND_LEVELS)
        return cnet_fail(err, CNET_EINVAL,
                         "conditioning_embedding_out_channels has %d entries (supported 1..%d)",
                         n_cond, CONTROLNET_MAX_COND_LEVELS);
    if (L->cond_bgr)
        return cnet_fail(
            err, CNET_EINVAL,
            "controlnet: controlnet_conditioning_channel_order \"bgr\" is not supported");
    if (L->global_pool_conditions)
        return cnet_fail(err, CNET_EINVAL,
                         "controlnet: global_pool_conditions true is not supported");
    m->cond_channels = conditioning_channels;
    /* Same parameter order as the diffusers checkpoint: conv_in, time, cond
     * embedding, down blocks, zero convs, mid block, zero mid. Order only
     * matters for saved files being easy to diff against diffusers'. */
    if ((rc = unet_encoder_declare(&m->enc, p, L, err))) return rc;
    if ((rc = nn_conv_declare(&m->cond_in, p, "controlnet_cond_embedding.conv_in",
                              conditioning_channels, cond_out_channels[0], 3, 1, 1, err)))
        return rc;
    for (int i = 0; i < n_cond - 1; i++) {
        snprintf(name, sizeof name, "controlnet_cond_embedding.blocks.%d", 2 * i);
        if ((rc = nn_conv_declare(&m->cond_blocks[2 * i], p, name, cond_out_channels[i],
                                  cond_out_channels[i], 3, 1, 1, err)))
            return rc;
        snprintf(name, sizeof name, "controlnet_cond_embedding.blocks.%d", 2 * i + 1);
        if ((rc = nn_conv_declare(&m->cond_blocks[2 * i + 1], p, name, cond_out_channels[i],
                                  cond_out_channels[i + 1], 3, 2, 1, err)))
            return rc;
    }
    m->n_cond_blocks = 2 * (n_cond - 1);
    if ((rc = nn_conv_declare(&m->cond_out, p, "controlnet_cond_embedding.conv_out",
                              cond_out_channels[n_cond - 1], L->block_out_channels[0], 3, 1, 1,
                              err)))
        return rc;
    m->n_skips = unet_n_skips(L);
    for (int i = 0; i < m->n_skips; i++) {
        int C = unet_skip_channels(L, i);
        snprintf(name, sizeof name, "controlnet_down_blocks.%d", i);
        if ((rc = nn_conv_declare(&m->zero_down[i], p, name, C, C, 1, 1, 0, err))) return rc;
    }
    const int top = L->block_out_channels[L->n_blocks - 1];
    if ((rc = nn_conv_declare(&m->zero_mid, p, "controlnet_mid_block", top, top, 1, 1, 0, err)))
        return rc;
    return 0;
}

int controlnet_init(controlnet_model *m, cnet_backend *be, const cnet_unet_config *L,
                    cnet_error *err) {
    int rc = controlnet_declare(m, be, L, err);
    return rc ? rc : params_alloc(&m->params, err);
}

void controlnet_free(controlnet_model *m) {
    unet_encoder_free(&m->enc);
    params_free(&m->params);
}

/* Loads the weights file at path into the allocated model. */
static int controlnet_load(controlnet_model *m, const char *path, cnet_error *err) {
    return params_load(&m->params, path, err);
}

int controlnet_image_factor(const controlnet_model *m) { return 1 << (m->n_cond_blocks / 2); }

size_t controlnet_scratch_bytes(const controlnet_model *m, int B, int h, int w, int Nt) {
    unet_sizes s;
    if (unet_encoder_sizes(&m->enc, B, h, w, &s, NULL)) return 0;
    const int f = controlnet_image_factor(m);
    size_t cond = 0;
    for (int i = 0; i <= m->n_cond_blocks; i++) {
        const nn_conv *c = i == 0 ? &m->cond_in : &m->cond_blocks[i - 1];
        cond += (size_t)B * h * w * f * f * c->out;
    }
    size_t floats = s.mid_floats + 16 * s.max_floats + cond + (size_t)B * m->enc.temb_channels * 2 +
                    unet_encoder_time_floats(&m->enc, B);
    for (int i = 0; i < s.n_skips; i++) floats += s.skip_floats[i];
    for (int i = 0; i < m->enc.cfg.n_blocks; i++)
        floats += (size_t)B * Nt * m->enc.cfg.block_out_channels[i] * 2;
    return floats * sizeof(float) + 256 * CNET_ARENA_ALIGN;
}

int controlnet_cond_embedding(const controlnet_model *m, cnet_arena *scratch, float *emb,
                              const float *cond, int B, int H, int W, cnet_arena *keep,
                              controlnet_cond_acts *acts, cnet_error *err) {
    cnet_backend *be = m->params.be;
    const cnet_params *p = &m->params;
    cnet_arena *save = acts ? keep : scratch;
    size_t mark = cnet_arena_mark(scratch);
    const float *cur = cond;
    if (acts) acts->cond = cond, acts->H = H, acts->W = W;
    for (int i = 0; i <= m->n_cond_blocks; i++) {
        const nn_conv *c = i == 0 ? &m->cond_in : &m->cond_blocks[i - 1];
        cnet_conv2d s = nn_conv_shape(c, B, H, W);
        int Ho = cnet_conv2d_out_h(&s), Wo = cnet_conv2d_out_w(&s);
        size_t bytes = (size_t)B * Ho * Wo * c->out * sizeof(float);
        float *y = cnet_arena_alloc(save, bytes, err);
        float *ya = acts ? cnet_arena_alloc(keep, bytes, err) : y;
        if (!y || !ya) {
            cnet_arena_restore(scratch, mark);
            return err ? err->code : CNET_ENOMEM;
        }
        nn_conv_forward(c, p, y, cur, B, H, W);
        be->silu_forward(be, ya, y, (long)B * Ho * Wo * c->out);
        if (acts) acts->pre[i] = y, acts->post[i] = ya;
        cur = ya, H = Ho, W = Wo;
    }
    nn_conv_forward(&m->cond_out, p, emb, cur, B, H, W);
    cnet_arena_restore(scratch, mark);
    return 0;
}

/* Weight gradients of the conditioning embedding from demb [B,h,w,C0]. */
static int cond_embedding_backward(const controlnet_model *m, const cnet_params *g,
                                   cnet_arena *scratch, const float *demb,
                                   const controlnet_cond_acts *acts, int B, cnet_error *err) {
    cnet_backend *be = m->params.be;
    const cnet_params *p = &m->params;
    int Hs[2 * CONTROLNET_MAX_COND_LEVELS + 2], Ws[2 * CONTROLNET_MAX_COND_LEVELS + 2];
    Hs[0] = acts->H, Ws[0] = acts->W;
    size_t biggest = 0;
    for (int i = 0; i <= m->n_cond_blocks; i++) {
        const nn_conv *c = i == 0 ? &m->cond_in : &m->cond_blocks[i - 1];
        cnet_conv2d s = nn_conv_shape(c, B, Hs[i], Ws[i]);
        Hs[i + 1] = cnet_conv2d_out_h(&s), Ws[i + 1] = cnet_conv2d_out_w(&s);
        size_t n = (size_t)B * Hs[i + 1] * Ws[i + 1] * c->out;
        if (n > biggest) biggest = n;
    }
    size_t mark = cnet_arena_mark(scratch);
    float *da = cnet_arena_alloc(scratch, biggest * sizeof(float), err);
    float *db = cnet_arena_alloc(scratch, biggest * sizeof(float), err);
    if (!da || !db) {
        cnet_arena_restore(scratch, mark);
        return err ? err->code : CNET_ENOMEM;
    }
    const int last = m->n_cond_blocks;
    nn_conv_backward(&m->cond_out, p, g, da, demb, acts->post[last], B, Hs[last + 1], Ws[last + 1]);
    for (int i = last; i >= 0; i--) { /* post[i] = silu(pre[i]), pre[i] = conv_i(post[i-1]) */
        const nn_conv *c = i == 0 ? &m->cond_in : &m->cond_blocks[i - 1];
        be->silu_backward(be, db, da, acts->pre[i], (long)B * Hs[i + 1] * Ws[i + 1] * c->out);
        nn_conv_backward(c, p, g, i > 0 ? da : NULL, db, i > 0 ? acts->post[i - 1] : acts->cond, B,
                         Hs[i], Ws[i]);
    }
    cnet_arena_restore(scratch, mark);
    return 0;
}

/* The scale of down residual i (guess mode: logspace(-1, 0, n+1)[i]). */
static float residual_scale(int i, int n, float conditioning_scale, int guess_mode) {
    return guess_mode ? (float)pow(10.0, -1.0 + (double)i / n) * conditioning_scale
                      : conditioning_scale;
}

int controlnet_forward(controlnet_model *m, cnet_arena *scratch, float *const *down, float *mid,
                       const float *sample, const float *cond, const float *timesteps,
                       const float *text, const unet_added_cond *added, float conditioning_scale,
                       int guess_mode, int B, int h, int w, int Nt, cnet_arena *keep,
                       controlnet_acts *acts, cnet_error *err) {
    cnet_backend *be = m->params.be;
    const cnet_params *p = &m->params;
    const cnet_unet_config *L = &m->enc.cfg;
    unet_sizes s;
    int rc = unet_encoder_sizes(&m->enc, B, h, w, &s, err);
    if (rc) return rc;
    const int f = controlnet_image_factor(m);
    cnet_arena *save = acts ? keep : scratch;
    size_t mark = cnet_arena_mark(scratch);
    float *skips[UNET_MAX_SKIPS];
    const size_t T = (size_t)B * m->enc.temb_channels;
    float *temb = cnet_arena_alloc(save, T * sizeof(float), err);
    float *temb_act = cnet_arena_alloc(save, T * sizeof(float), err);
    float *emb = cnet_arena_alloc(
        scratch, (size_t)B * h * w * L->block_out_channels[0] * sizeof(float), err);
    float *mid_h = cnet_arena_alloc(save, s.mid_floats * sizeof(float), err);
    rc = !temb || !temb_act || !emb || !mid_h ? (err ? err->code : CNET_ENOMEM) : 0;
    for (int i = 0; i < s.n_skips && !rc; i++)
        if (!(skips[i] = cnet_arena_alloc(save, s.skip_floats[i] * sizeof(float), err)))
            rc = err ? err->code : CNET_ENOMEM;
    if (!rc)
        rc = unet_encoder_time(&m->enc, p, scratch, temb_act, temb, NULL, timesteps, added, B, keep,
                               acts ? &acts->time : NULL, err);
    const size_t keep_mark = keep ? cnet_arena_mark(keep) : 0;
    if (!rc)
        rc = controlnet_cond_embedding(m, scratch, emb, cond, B, h * f, w * f, keep,
                                       acts ? &acts->cond : NULL, err);
    if (acts && acts->checkpoint) cnet_arena_restore(keep, keep_mark); /* backward recomputes */
    if (acts) acts->enc.checkpoint = acts->checkpoint;
    if (!rc)
        rc = unet_encoder_forward(&m->enc, p, scratch, skips, mid_h, sample, emb, temb_act, text, B,
                                  h, w, Nt, keep, acts ? &acts->enc : NULL, err);
    if (rc) goto done;
    for (int i = 0; i < s.n_skips; i++) {
        float scale = residual_scale(i, s.n_skips, conditioning_scale, guess_mode);
        nn_conv_forward(&m->zero_down[i], p, down[i], skips[i], B, s.skip_h[i], s.skip_w[i]);
        if (scale != 1.0f) be->scale(be, down[i], down[i], scale, (long)s.skip_floats[i]);
    }
    nn_conv_forward(&m->zero_mid, p, mid, mid_h, B, s.mid_h, s.mid_w);
    if (conditioning_scale != 1.0f) be->scale(be, mid, mid, conditioning_scale, (long)s.mid_floats);
    if (acts) {
        memcpy(acts->skips, skips, sizeof skips);
        acts->sample = sample, acts->temb_act = temb_act, acts->mid_h = mid_h;
        acts->scale = conditioning_scale, acts->guess_mode = guess_mode;
        acts->B = B, acts->h = h, acts->w = w;
    }
done:
    cnet_arena_restore(scratch, mark);
    return rc;
}

int controlnet_backward(controlnet_model *m, const cnet_params *g, cnet_arena *scratch,
                        const float *const *d_down, const float *d_mid, const controlnet_acts *acts,
                        cnet_error *err) {
    cnet_backend *be = m->params.be;
    const cnet_params *p = &m->params;
    const int B = acts->B, h = acts->h, w = acts->w;
    unet_sizes s;
    int rc = unet_encoder_sizes(&m->enc, B, h, w, &s, err);
    if (rc) return rc;
    size_t mark = cnet_arena_mark(scratch);
    float *dskips[UNET_MAX_SKIPS];
    size_t biggest = s.mid_floats;
    for (int i = 0; i < s.n_skips; i++)
        if (s.skip_floats[i] > biggest) biggest = s.skip_floats[i];
    const size_t T = (size_t)B * m->enc.temb_channels;
    float *dscaled = cnet_arena_alloc(scratch, biggest * sizeof(float), err);
    float *dmid = cnet_arena_alloc(scratch, s.mid_floats * sizeof(float), err);
    float *dtemb_act = cnet_arena_alloc(scratch, T * sizeof(float), err);
    rc = !dscaled || !dmid || !dtemb_act ? (err ? err->code : CNET_ENOMEM) : 0;
    for (int i = 0; i < s.n_skips && !rc; i++)
        if (!(dskips[i] = cnet_arena_alloc(scratch, s.skip_floats[i] * sizeof(float), err)))
            rc = err ? err->code : CNET_ENOMEM;
    if (rc) goto done;
    /* down[i] = zero_down[i](skips[i]) * scale_i;  mid = zero_mid(mid_h) * scale */
    for (int i = 0; i < s.n_skips; i++) {
        float scale = residual_scale(i, s.n_skips, acts->scale, acts->guess_mode);
        be->scale(be, dscaled, d_down[i], scale, (long)s.skip_floats[i]);
        nn_conv_backward(&m->zero_down[i], p, g, dskips[i], dscaled, acts->skips[i], B, s.skip_h[i],
                         s.skip_w[i]);
    }
    be->scale(be, dscaled, d_mid, acts->scale, (long)s.mid_floats);
    nn_conv_backward(&m->zero_mid, p, g, dmid, dscaled, acts->mid_h, B, s.mid_h, s.mid_w);
    be->zero(be, dtemb_act, T * sizeof(float));
    rc = unet_encoder_backward(&m->enc, p, g, scratch, dskips, dtemb_act, dmid, acts->skips,
                               acts->sample, &acts->enc, B, h, w, err);
    /* skips[0] = conv_in(sample) + cond_embedding(cond) */
    const controlnet_cond_acts *cond = &acts->cond;
    controlnet_cond_acts cond_again;
    cnet_arena *keep = acts->enc.keep;
    const size_t keep_mark = acts->checkpoint ? cnet_arena_mark(keep) : 0;
    if (!rc && acts->checkpoint) {
        float *emb = cnet_arena_alloc(keep, s.skip_floats[0] * sizeof(float), err);
        rc = emb ? controlnet_cond_embedding(m, scratch, emb, cond->cond, B, cond->H, cond->W, keep,
                                             &cond_again, err)
                 : (err ? err->code : CNET_ENOMEM);
        cond = &cond_again;
    }
    if (!rc) rc = cond_embedding_backward(m, g, scratch, dskips[0], cond, B, err);
    if (acts->checkpoint) cnet_arena_restore(keep, keep_mark);
    if (!rc)
        rc = unet_encoder_time_backward(&m->enc, p, g, scratch, dtemb_act, &acts->time, B, err);
done:
    cnet_arena_restore(scratch, mark);
    return rc;
}

int controlnet_open(controlnet_model *m, cnet_backend *be, const char *dir, cnet_error *err) {
    char config[PATH_MAX], weights[PATH_MAX];
    cnet_unet_config cfg;
    int rc = model_component_files(config, weights, PATH_MAX, dir, err);
    memset(m, 0, sizeof *m);
    if (!rc) rc = cnet_controlnet_config_load(&cfg, config, err);
    if (!rc && !(rc = controlnet_init(m, be, &cfg, err))) rc = controlnet_load(m, weights, err);
    if (rc) controlnet_free(m);
    return rc;
}
