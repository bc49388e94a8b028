/* UNet2DConditionModel: parameters, loading, forward, the backward to the
 * ControlNet residuals and the backward to every parameter; see unet.h. */
#include "engine/models/unet.h"

#include <limits.h>
#include "engine/config/model_files.h"

#include <string.h>

int unet_declare(unet_model *m, cnet_backend *be, const cnet_unet_config *L, cnet_error *err) {
    int rc;
    memset(m, 0, sizeof *m);
    params_init(&m->params, be);
    cnet_params *p = &m->params;
    if ((rc = unet_encoder_declare(&m->enc, p, L, err))) return rc;
    for (int i = 0; i < L->n_blocks; i++)
        if ((rc = unet_up_declare(&m->up[i], p, L, i, m->enc.temb_channels, err))) return rc;
    if ((rc = nn_group_norm_declare(&m->norm_out, p, "conv_norm_out", L->block_out_channels[0],
                                    L->norm_num_groups, L->norm_eps, err)) ||
        (rc =
             nn_conv_declare(&m->conv_out, p, "conv_out", L->block_out_channels[0], L->out_channels,
                             L->conv_out_kernel, 1, (L->conv_out_kernel - 1) / 2, err)))
        return rc;
    return 0;
}

int unet_init(unet_model *m, cnet_backend *be, const cnet_unet_config *L, cnet_error *err) {
    int rc = unet_declare(m, be, L, err);
    return rc ? rc : params_alloc(&m->params, err);
}

void unet_free(unet_model *m) {
    unet_encoder_free(&m->enc);
    for (int i = 0; i < UNET_MAX_LEVELS; i++) unet_up_free(&m->up[i]);
    params_free(&m->params);
}

/* Loads the weights file at path into the allocated model. */
static int unet_load(unet_model *m, const char *path, cnet_error *err) {
    return params_load(&m->params, path, err);
}

/* A generous bound: every skip, the mid output, two ping-pong activations,
 * and per-block temporaries (each at most a few times the largest
 * activation, plus attention projections over the text). */
size_t unet_scratch_bytes(const unet_model *m, int B, int h, int w, int Nt) {
    unet_sizes s;
    if (unet_encoder_sizes(&m->enc, B, h, w, &s, NULL)) return 0;
    size_t floats = s.mid_floats + 2 * s.max_floats;
    for (int i = 0; i < s.n_skips; i++) floats += s.skip_floats[i];
    const cnet_unet_config *L = &m->enc.cfg;
    size_t text = 0;
    for (int i = 0; i < L->n_blocks; i++) {
        size_t t = (size_t)B * Nt * L->block_out_channels[i] * 2;
        if (t > text) text = t;
    }
    floats += 14 * s.max_floats + text + (size_t)B * m->enc.temb_channels * 4 +
              unet_encoder_time_floats(&m->enc, B);
    return floats * sizeof(float) + 256 * CNET_ARENA_ALIGN;
}

/* Floats of up block u's output for an input of H x W. */
static size_t up_out_floats(const unet_up_block *u, int B, int H, int W) {
    return (size_t)B * H * W * u->out * (u->has_upsample ? 4 : 1);
}

int unet_forward(unet_model *m, cnet_arena *scratch, float *out, const float *sample,
                 const float *timesteps, const float *text, const unet_added_cond *added,
                 const float *const *down_residuals, const float *mid_residual, int B, int h, int w,
                 int Nt, cnet_arena *keep, unet_acts *acts, cnet_error *err) {
    cnet_backend *be = m->params.be;
    const cnet_params *p = &m->params;
    const cnet_unet_config *L = &m->enc.cfg;
    unet_sizes s;
    int rc = unet_encoder_sizes(&m->enc, B, h, w, &s, err);
    if (rc) return rc;
    /* Checkpointing keeps what the up blocks' recompute reads, and training
     * every parameter what the encoder's backward reads (the skips);
     * otherwise the skips and the ping-pong activations are temporaries. */
    const int checkpoint = acts && acts->checkpoint, all = acts && acts->all_params;
    if (all && (down_residuals || mid_residual))
        return cnet_fail(err, CNET_EINVAL, "unet: training every parameter takes no residuals");
    cnet_arena *held = checkpoint || all ? keep : scratch;
    size_t mark = cnet_arena_mark(scratch);
    float *skips[UNET_MAX_SKIPS];
    const size_t T = (size_t)B * m->enc.temb_channels;
    float *temb = cnet_arena_alloc(held, T * sizeof(float), err);
    float *temb_act = cnet_arena_alloc(held, T * sizeof(float), err);
    float *a = checkpoint ? cnet_arena_alloc(keep, s.mid_floats * sizeof(float), err)
                          : cnet_arena_alloc(scratch, s.max_floats * sizeof(float), err);
    float *b = checkpoint ? NULL : cnet_arena_alloc(scratch, s.max_floats * sizeof(float), err);
    rc = !temb || !temb_act || !a || (!checkpoint && !b) ? (err ? err->code : CNET_ENOMEM) : 0;
    for (int i = 0; i < s.n_skips && !rc; i++)
        if (!(skips[i] = cnet_arena_alloc(held, s.skip_floats[i] * sizeof(float), err)))
            rc = err ? err->code : CNET_ENOMEM;
    if (!rc)
        rc = unet_encoder_time(&m->enc, p, scratch, temb_act, temb, NULL, timesteps, added, B,
                               all ? keep : NULL, all ? &acts->time : NULL, err);
    /* The down and mid blocks keep nothing unless every parameter trains:
     * no gradient flows there in ControlNet training. */
    if (all) acts->enc.checkpoint = checkpoint;
    if (!rc)
        rc = unet_encoder_forward(&m->enc, p, scratch, skips, a, sample, NULL, temb_act, text, B, h,
                                  w, Nt, all ? keep : NULL, all ? &acts->enc : NULL, err);
    if (rc) goto done;
    if (down_residuals)
        for (int i = 0; i < s.n_skips; i++)
            be->add(be, skips[i], skips[i], down_residuals[i], (long)s.skip_floats[i]);
    if (mid_residual) be->add(be, a, a, mid_residual, (long)s.mid_floats);
    if (acts) {
        memcpy(acts->skips, skips, sizeof skips);
        acts->keep = keep, acts->temb_act = temb_act, acts->text = text, acts->Nt = Nt;
        acts->sample = sample, acts->sample_h = h, acts->sample_w = w, acts->B = B;
    }

    int H = s.mid_h, W = s.mid_w, n = s.n_skips;
    float *x = a; /* the current up block's input */
    for (int i = 0; i < L->n_blocks && !rc; i++) {
        float *y =
            checkpoint
                ? cnet_arena_alloc(keep, up_out_floats(&m->up[i], B, H, W) * sizeof(float), err)
                : (x == a ? b : a);
        if (!y) {
            rc = err ? err->code : CNET_ENOMEM;
            break;
        }
        if (acts) acts->up_in[i] = x;
        const size_t keep_mark = keep ? cnet_arena_mark(keep) : 0;
        rc =
            unet_up_forward(&m->up[i], p, scratch, y, x, temb_act, text, B, &H, &W, Nt,
                            (const float *const *)skips, &n, keep, acts ? &acts->up[i] : NULL, err);
        if (checkpoint) cnet_arena_restore(keep, keep_mark); /* backward recomputes them */
        x = y;
    }
    if (rc) goto done;
    /* out = conv_out(silu(conv_norm_out(h))) */
    const size_t n0 = (size_t)B * H * W * L->block_out_channels[0];
    float *h_last = x, *act = x == a ? b : a, *mean = NULL, *rstd = NULL;
    if (acts) {
        const size_t stats = (size_t)B * m->norm_out.groups * sizeof(float);
        h_last = cnet_arena_alloc(keep, n0 * sizeof(float), err);
        act = cnet_arena_alloc(keep, n0 * sizeof(float), err);
        mean = cnet_arena_alloc(keep, stats, err);
        rstd = cnet_arena_alloc(keep, stats, err);
        if (!h_last || !act || !mean || !rstd) {
            rc = err ? err->code : CNET_ENOMEM;
            goto done;
        }
        be->copy(be, h_last, x, n0 * sizeof(float));
    }
    nn_group_norm_forward_save(&m->norm_out, p, act, mean, rstd, h_last, B, H * W, 1);
    nn_conv_forward(&m->conv_out, p, out, act, B, H, W);
    if (acts) {
        acts->h = h_last, acts->act = act, acts->mean = mean, acts->rstd = rstd;
        acts->H = H, acts->W = W;
    }
done:
    cnet_arena_restore(scratch, mark);
    return rc;
}

/* conv_out, conv_norm_out and the up blocks in reverse, from dout: every
 * skip's gradient is written (overwrite) to d_down[i], the mid's to d_mid.
 * g and dtemb_act NULL: activation gradients only (the frozen UNet); else
 * parameter gradients accumulate into g and the time embedding's into
 * dtemb_act. */
static int up_path_backward(unet_model *m, const cnet_params *g, cnet_arena *scratch,
                            float *const *d_down, float *d_mid, float *dtemb_act, const float *dout,
                            const unet_acts *acts, int B, cnet_error *err) {
    const cnet_params *p = &m->params;
    const cnet_unet_config *L = &m->enc.cfg;
    const int H = acts->H, W = acts->W;
    unet_sizes s; /* s.max_floats bounds every activation of the up path */
    int rc = unet_encoder_sizes(&m->enc, B, H, W, &s, err);
    if (rc) return rc;
    size_t mark = cnet_arena_mark(scratch);
    float *da = cnet_arena_alloc(scratch, s.max_floats * sizeof(float), err);
    float *db = cnet_arena_alloc(scratch, s.max_floats * sizeof(float), err);
    rc = !da || !db ? (err ? err->code : CNET_ENOMEM) : 0;
    if (!rc) {
        nn_conv_backward(&m->conv_out, p, g, db, dout, acts->act, B, H, W);
        nn_group_norm_backward(&m->norm_out, p, g, da, db, acts->h, acts->mean, acts->rstd, B,
                               H * W, 1);
    }
    /* Up blocks in reverse; the first block's input gradient is the mid's. */
    for (int i = L->n_blocks - 1; i >= 0 && !rc; i--) {
        float *dx = i == 0 ? d_mid : db;
        const unet_up_acts *up = &acts->up[i];
        unet_up_acts up_again;
        const size_t keep_mark = acts->checkpoint ? cnet_arena_mark(acts->keep) : 0;
        if (acts->checkpoint) {
            int h = up->H, w = up->W, n = up->skip_index[0] + 1;
            float *y = cnet_arena_alloc(acts->keep,
                                        up_out_floats(&m->up[i], B, h, w) * sizeof(float), err);
            rc = y ? unet_up_forward(&m->up[i], p, scratch, y, acts->up_in[i], acts->temb_act,
                                     acts->text, B, &h, &w, acts->Nt,
                                     (const float *const *)acts->skips, &n, acts->keep, &up_again,
                                     err)
                   : (err ? err->code : CNET_ENOMEM);
            up = &up_again;
        }
        if (!rc)
            rc = unet_up_backward(&m->up[i], p, g, scratch, dx, dtemb_act, d_down, da, up, B, err);
        if (acts->checkpoint) cnet_arena_restore(acts->keep, keep_mark);
        float *t = da;
        da = db, db = t;
    }
    cnet_arena_restore(scratch, mark);
    return rc;
}

int unet_backward(unet_model *m, cnet_arena *scratch, float *const *d_down, float *d_mid,
                  const float *dout, const unet_acts *acts, int B, cnet_error *err) {
    return up_path_backward(m, NULL, scratch, d_down, d_mid, NULL, dout, acts, B, err);
}

int unet_backward_params(unet_model *m, const cnet_params *g, cnet_arena *scratch,
                         const float *dout, const unet_acts *acts, cnet_error *err) {
    cnet_backend *be = m->params.be;
    const int B = acts->B, h = acts->sample_h, w = acts->sample_w;
    if (!acts->all_params)
        return cnet_fail(err, CNET_EINVAL,
                         "unet: the forward did not keep the encoder's activations (all_params)");
    unet_sizes s;
    int rc = unet_encoder_sizes(&m->enc, B, h, w, &s, err);
    if (rc) return rc;
    size_t mark = cnet_arena_mark(scratch);
    float *dskips[UNET_MAX_SKIPS];
    const size_t T = (size_t)B * m->enc.temb_channels;
    float *dmid = cnet_arena_alloc(scratch, s.mid_floats * sizeof(float), err);
    float *dtemb_act = cnet_arena_alloc(scratch, T * sizeof(float), err);
    rc = !dmid || !dtemb_act ? (err ? err->code : CNET_ENOMEM) : 0;
    for (int i = 0; i < s.n_skips && !rc; i++)
        if (!(dskips[i] = cnet_arena_alloc(scratch, s.skip_floats[i] * sizeof(float), err)))
            rc = err ? err->code : CNET_ENOMEM;
    if (!rc) {
        be->zero(be, dtemb_act, T * sizeof(float));
        rc = up_path_backward(m, g, scratch, dskips, dmid, dtemb_act, dout, acts, B, err);
    }
    /* Every skip was consumed by exactly one up block: dskips are complete. */
    if (!rc)
        rc = unet_encoder_backward(&m->enc, &m->params, g, scratch, dskips, dtemb_act, dmid,
                                   acts->skips, acts->sample, &acts->enc, B, h, w, err);
    if (!rc)
        rc = unet_encoder_time_backward(&m->enc, &m->params, g, scratch, dtemb_act, &acts->time, B,
                                        err);
    cnet_arena_restore(scratch, mark);
    return rc;
}

int unet_open(unet_model *m, cnet_backend *be, const char *dir, cnet_error *err) {
    char config[PATH_MAX], weights[PATH_MAX];
    cnet_unet_config cfg;
    int rc = model_component_files(config, weights, PATH_MAX, dir, err);
    memset(m, 0, sizeof *m);
    if (!rc) rc = cnet_unet_config_load(&cfg, config, err);
    if (!rc && !(rc = unet_init(m, be, &cfg, err))) rc = unet_load(m, weights, err);
    if (rc) unet_free(m);
    return rc;
}
