/* AutoencoderKL encoder / decoder forward; see vae.h. */
#include "engine/models/vae.h"

#include <limits.h>
#include "engine/config/model_files.h"

#include <stdio.h>
#include <string.h>

#define VAE_EPS 1e-6f

/* diffusers' _convert_deprecated_attention_blocks: VAEs saved before
 * diffusers 0.14 (and many SD VAEs still shared) name the mid attention's
 * projections query / key / value / proj_attn; they load as to_q / to_k /
 * to_v / to_out.0. */
static int vae_alias_legacy_attention(cnet_params *p, const char *pre, cnet_error *err) {
    static const char *const names[][2] = {
        {"query", "to_q"}, {"key", "to_k"}, {"value", "to_v"}, {"proj_attn", "to_out.0"}};
    char old_name[NN_NAME_BUF + 32], new_name[NN_NAME_BUF + 32];
    for (int i = 0; i < 4; i++)
        for (int b = 0; b < 2; b++) {
            const char *what = b ? "bias" : "weight";
            snprintf(old_name, sizeof old_name, "%s.%s.%s", pre, names[i][0], what);
            snprintf(new_name, sizeof new_name, "%s.%s.%s", pre, names[i][1], what);
            int rc = params_alias(p, old_name, new_name, err);
            if (rc) return rc;
        }
    return 0;
}

static int mid_declare(vae_mid *m, cnet_params *p, const char *half, const cnet_vae_config *L,
                       cnet_error *err) {
    char pre[NN_NAME_BUF];
    const int C = L->block_out_channels[L->n_blocks - 1];
    int rc;
    m->channels = C, m->has_attn = L->mid_block_add_attention;
    snprintf(pre, sizeof pre, "%s.mid_block.resnets.0", half);
    if ((rc = resnet_declare(&m->res0, p, pre, C, C, 0, L->norm_num_groups, VAE_EPS, 1.0f, err)))
        return rc;
    if (m->has_attn) {
        snprintf(pre, sizeof pre, "%s.mid_block.attentions.0.group_norm", half);
        if ((rc =
                 nn_group_norm_declare(&m->attn_norm, p, pre, C, L->norm_num_groups, VAE_EPS, err)))
            return rc;
        snprintf(pre, sizeof pre, "%s.mid_block.attentions.0", half);
        if ((rc = attn_declare(&m->attn, p, pre, C, C, 1, C, 1, err)) ||
            (rc = vae_alias_legacy_attention(p, pre, err)))
            return rc;
    }
    snprintf(pre, sizeof pre, "%s.mid_block.resnets.1", half);
    return resnet_declare(&m->res1, p, pre, C, C, 0, L->norm_num_groups, VAE_EPS, 1.0f, err);
}

static int encoder_declare(vae_half *e, cnet_params *p, const cnet_vae_config *L, cnet_error *err) {
    char pre[NN_NAME_BUF];
    int rc;
    if ((rc = nn_conv_declare(&e->conv_in, p, "encoder.conv_in", L->in_channels,
                              L->block_out_channels[0], 3, 1, 1, err)))
        return rc;
    for (int i = 0; i < L->n_blocks; i++) {
        int in = i == 0 ? L->block_out_channels[0] : L->block_out_channels[i - 1],
            out = L->block_out_channels[i];
        for (int j = 0; j < L->layers_per_block; j++) {
            snprintf(pre, sizeof pre, "encoder.down_blocks.%d.resnets.%d", i, j);
            if ((rc = resnet_declare(&e->res[i][j], p, pre, j == 0 ? in : out, out, 0,
                                     L->norm_num_groups, VAE_EPS, 1.0f, err)))
                return rc;
        }
        if (i < L->n_blocks - 1) {
            snprintf(pre, sizeof pre, "encoder.down_blocks.%d.downsamplers.0.conv", i);
            if ((rc = nn_conv_declare(&e->resample[i], p, pre, out, out, 3, 2, 0, err))) return rc;
            /* Downsample2D(padding=0) pads (left 0, right 1, top 0, bottom 1). */
            e->resample[i].pad_bottom = e->resample[i].pad_right = 1;
        }
    }
    const int top = L->block_out_channels[L->n_blocks - 1], L2 = 2 * L->latent_channels;
    if ((rc = mid_declare(&e->mid, p, "encoder", L, err)) ||
        (rc = nn_group_norm_declare(&e->norm_out, p, "encoder.conv_norm_out", top,
                                    L->norm_num_groups, VAE_EPS, err)) ||
        (rc = nn_conv_declare(&e->conv_out, p, "encoder.conv_out", top, L2, 3, 1, 1, err)))
        return rc;
    e->has_sample = L->use_quant_conv;
    return e->has_sample ? nn_conv_declare(&e->sample, p, "quant_conv", L2, L2, 1, 1, 0, err) : 0;
}

static int decoder_declare(vae_half *d, cnet_params *p, const cnet_vae_config *L, cnet_error *err) {
    char pre[NN_NAME_BUF];
    const int n = L->n_blocks, top = L->block_out_channels[n - 1], Lc = L->latent_channels;
    int rc;
    d->has_sample = L->use_post_quant_conv;
    if ((d->has_sample &&
         (rc = nn_conv_declare(&d->sample, p, "post_quant_conv", Lc, Lc, 1, 1, 0, err))) ||
        (rc = nn_conv_declare(&d->conv_in, p, "decoder.conv_in", Lc, top, 3, 1, 1, err)) ||
        (rc = mid_declare(&d->mid, p, "decoder", L, err)))
        return rc;
    int prev = top;
    for (int i = 0; i < n; i++) {
        int out = L->block_out_channels[n - 1 - i];
        for (int j = 0; j <= L->layers_per_block; j++) {
            snprintf(pre, sizeof pre, "decoder.up_blocks.%d.resnets.%d", i, j);
            if ((rc = resnet_declare(&d->res[i][j], p, pre, j == 0 ? prev : out, out, 0,
                                     L->norm_num_groups, VAE_EPS, 1.0f, err)))
                return rc;
        }
        if (i < n - 1) {
            snprintf(pre, sizeof pre, "decoder.up_blocks.%d.upsamplers.0.conv", i);
            if ((rc = nn_conv_declare(&d->resample[i], p, pre, out, out, 3, 1, 1, err))) return rc;
        }
        prev = out;
    }
    if ((rc = nn_group_norm_declare(&d->norm_out, p, "decoder.conv_norm_out",
                                    L->block_out_channels[0], L->norm_num_groups, VAE_EPS, err)) ||
        (rc = nn_conv_declare(&d->conv_out, p, "decoder.conv_out", L->block_out_channels[0],
                              L->out_channels, 3, 1, 1, err)))
        return rc;
    return 0;
}

int vae_declare(vae_model *m, cnet_backend *be, const cnet_vae_config *L, cnet_error *err) {
    int rc;
    memset(m, 0, sizeof *m);
    params_init(&m->params, be);
    if (L->n_blocks < 1 || L->n_blocks > VAE_MAX_LEVELS || L->layers_per_block < 1 ||
        L->layers_per_block > VAE_MAX_LAYERS)
        return cnet_fail(err, CNET_EINVAL, "vae: %d levels of %d layers (supported 1..%d, 1..%d)",
                         L->n_blocks, L->layers_per_block, VAE_MAX_LEVELS, VAE_MAX_LAYERS);
    m->cfg = *L;
    if ((rc = encoder_declare(&m->enc, &m->params, L, err)) ||
        (rc = decoder_declare(&m->dec, &m->params, L, err)))
        return rc;
    return 0;
}

int vae_init(vae_model *m, cnet_backend *be, const cnet_vae_config *L, cnet_error *err) {
    int rc = vae_declare(m, be, L, err);
    return rc ? rc : params_alloc(&m->params, err);
}

void vae_free(vae_model *m) { params_free(&m->params); }

/* Loads the weights file at path into the allocated model. */
static int vae_load(vae_model *m, const char *path, cnet_error *err) {
    return params_load(&m->params, path, err);
}

int vae_factor(const vae_model *m) { return 1 << (m->cfg.n_blocks - 1); }

/* Where a forward writes each activation: the next of two ping-pong
 * buffers (inference), or a slice of `keep` that the backward reads later
 * (training). */
typedef struct vae_bufs {
    cnet_arena *keep; /* NULL: ping-pong */
    float *pp[2];
    int k;
    cnet_error *err;
} vae_bufs;

static float *bufs_take(vae_bufs *s, size_t n) {
    if (s->keep) return cnet_arena_alloc(s->keep, n * sizeof(float), s->err);
    s->k ^= 1;
    return s->pp[s->k];
}

/* Arena failure as a status. */
static int arena_rc(const cnet_error *err) { return err ? err->code : CNET_ENOMEM; }

/* act = silu(conv_norm_out(x)) into the next buffer (*act); a training
 * forward keeps its input and statistics. */
static int norm_out_forward(const nn_norm *norm, const cnet_params *p, vae_bufs *s,
                            vae_half_acts *acts, const float *x, int B, int HW, size_t n,
                            float **act, cnet_error *err) {
    const size_t stats = (size_t)B * norm->groups * sizeof(float);
    float *out = bufs_take(s, n);
    float *mean = acts ? cnet_arena_alloc(s->keep, stats, err) : NULL;
    float *rstd = acts ? cnet_arena_alloc(s->keep, stats, err) : NULL;
    if (!out || (acts && (!mean || !rstd))) return arena_rc(err);
    nn_group_norm_forward_save(norm, p, out, mean, rstd, x, B, HW, 1);
    if (acts) acts->norm_in = x, acts->norm_mean = mean, acts->norm_rstd = rstd, acts->act = out;
    *act = out;
    return 0;
}

static int mid_forward(const vae_mid *m, const cnet_params *p, cnet_arena *scratch, float *out,
                       const float *x, int B, int H, int W, cnet_arena *keep, vae_mid_acts *acts,
                       cnet_error *err) {
    cnet_backend *be = p->be;
    const long n = (long)B * H * W * m->channels;
    const size_t bytes = (size_t)n * sizeof(float), stats = (size_t)B * m->attn_norm.groups;
    cnet_arena *kept = acts ? keep : scratch;
    size_t mark = cnet_arena_mark(scratch);
    float *r0 = cnet_arena_alloc(kept, bytes, err);
    float *normed = m->has_attn ? cnet_arena_alloc(kept, bytes, err) : NULL;
    float *sum = m->has_attn && acts ? cnet_arena_alloc(keep, bytes, err) : r0;
    /* the attention's output: in out (free until res1) unless kept */
    float *att = !m->has_attn ? NULL : acts ? cnet_arena_alloc(scratch, bytes, err) : out;
    float *mean = acts && m->has_attn ? cnet_arena_alloc(keep, stats * sizeof(float), err) : NULL;
    float *rstd = acts && m->has_attn ? cnet_arena_alloc(keep, stats * sizeof(float), err) : NULL;
    int rc = !r0 || !sum || (m->has_attn && (!normed || !att || (acts && (!mean || !rstd))))
                 ? arena_rc(err)
                 : 0;
    if (!rc)
        rc = resnet_forward(&m->res0, p, scratch, r0, x, NULL, B, H, W, keep,
                            acts ? &acts->res0 : NULL, err);
    if (!rc && m->has_attn) {
        nn_group_norm_forward_save(&m->attn_norm, p, normed, mean, rstd, r0, B, H * W, 0);
        rc = attn_forward(&m->attn, p, scratch, att, normed, NULL, B, H * W, 0, keep,
                          acts ? &acts->attn : NULL, err);
        if (!rc) be->add(be, sum, r0, att, n); /* residual_connection */
    }
    if (!rc)
        rc = resnet_forward(&m->res1, p, scratch, out, sum, NULL, B, H, W, keep,
                            acts ? &acts->res1 : NULL, err);
    if (!rc && acts) acts->r0 = r0, acts->mean = mean, acts->rstd = rstd;
    cnet_arena_restore(scratch, mark);
    return rc;
}

/* The widest activation of the half, for ping-pong buffers. */
static size_t widest_floats(const cnet_vae_config *L, int B, int H, int W) {
    size_t c = L->in_channels > L->out_channels ? L->in_channels : L->out_channels;
    for (int i = 0; i < L->n_blocks; i++)
        if ((size_t)L->block_out_channels[i] > c) c = L->block_out_channels[i];
    return (size_t)B * H * W * c;
}

size_t vae_scratch_bytes(const vae_model *m, int B, int H, int W) {
    /* Resolution only shrinks from the image size: every activation is
     * bounded by the widest one at full resolution, and at most 8 are alive
     * at once (ping-pong, resnet temporaries, attention q/k/v/out). */
    return 8 * widest_floats(&m->cfg, B, H, W) * sizeof(float) + 64 * CNET_ARENA_ALIGN;
}

size_t vae_train_keep_bytes(const vae_model *m, int B, int H, int W) {
    /* Per level of each half: layers+1 resnets keeping at most 5
     * activations of the level's widest size (input, a1, h1, a2, output)
     * plus the resampler's 2; the mid block and the norm/conv out at most
     * VAE_MID_KEPT more. Resolution halves per level, so the sum of a
     * level's sizes is bounded by 4/3 of the first's (counted as 2). */
    const cnet_vae_config *L = &m->cfg;
    const size_t per_level = (size_t)(L->layers_per_block + 1) * 5 + 2;
    const size_t floats = 2 * (2 * per_level + VAE_MID_KEPT) * widest_floats(L, B, H, W);
    const size_t slices = 2 * ((size_t)L->n_blocks * per_level * 4 + 64);
    return floats * sizeof(float) + slices * (CNET_ARENA_ALIGN + 64 * (size_t)B * sizeof(float));
}

static int encode_run(vae_model *m, cnet_arena *scratch, float *moments, const float *x, int B,
                      int H, int W, cnet_arena *keep, vae_half_acts *acts, cnet_error *err) {
    const cnet_vae_config *L = &m->cfg;
    const vae_half *e = &m->enc;
    const cnet_params *p = &m->params;
    const int f = vae_factor(m), top = L->block_out_channels[L->n_blocks - 1];
    if (H % f || W % f)
        return cnet_fail(err, CNET_EINVAL, "vae: image %dx%d is not a multiple of %d", W, H, f);
    size_t mark = cnet_arena_mark(scratch);
    size_t cap = acts ? 0 : widest_floats(L, B, H, W);
    vae_bufs s = {.keep = acts ? keep : NULL, .err = err};
    if (!acts) {
        s.pp[0] = cnet_arena_alloc(scratch, cap * sizeof(float), err);
        s.pp[1] = cnet_arena_alloc(scratch, cap * sizeof(float), err);
    }
    int rc = !acts && (!s.pp[0] || !s.pp[1]) ? arena_rc(err) : 0;
    float *cur = rc ? NULL : bufs_take(&s, (size_t)B * H * W * L->block_out_channels[0]);
    if (!rc && !cur) rc = arena_rc(err);
    if (rc) goto done;
    if (acts) acts->in = x;
    nn_conv_forward(&e->conv_in, p, cur, x, B, H, W);
    for (int i = 0; i < L->n_blocks && !rc; i++) {
        const size_t n = (size_t)B * H * W * L->block_out_channels[i];
        for (int j = 0; j < L->layers_per_block && !rc; j++) {
            float *t = bufs_take(&s, n);
            rc = !t ? arena_rc(err)
                    : resnet_forward(&e->res[i][j], p, scratch, t, cur, NULL, B, H, W, keep,
                                     acts ? &acts->res[i][j] : NULL, err);
            cur = t;
        }
        if (!rc && i < L->n_blocks - 1) {
            float *t = bufs_take(&s, n / 4);
            if (!t) {
                rc = arena_rc(err);
                break;
            }
            if (acts) acts->resample_in[i] = cur;
            nn_conv_forward(&e->resample[i], p, t, cur, B, H, W);
            cur = t;
            H /= 2, W /= 2;
        }
    }
    const size_t n_top = (size_t)B * H * W * top;
    float *t = rc ? NULL : bufs_take(&s, n_top);
    if (!rc && !t) rc = arena_rc(err);
    if (!rc)
        rc = mid_forward(&e->mid, p, scratch, t, cur, B, H, W, keep, acts ? &acts->mid : NULL, err);
    if (rc) goto done;
    rc = norm_out_forward(&e->norm_out, p, &s, acts, t, B, H * W, n_top, &cur, err);
    if (rc) goto done;
    if (e->has_sample) {
        float *o = bufs_take(&s, (size_t)B * H * W * 2 * L->latent_channels);
        if (!o) {
            rc = arena_rc(err);
            goto done;
        }
        nn_conv_forward(&e->conv_out, p, o, cur, B, H, W);
        nn_conv_forward(&e->sample, p, moments, o, B, H, W);
        if (acts) acts->sample_in = o;
    } else {
        nn_conv_forward(&e->conv_out, p, moments, cur, B, H, W);
    }
done:
    cnet_arena_restore(scratch, mark);
    return rc;
}

int vae_encode(vae_model *m, cnet_arena *scratch, float *moments, const float *x, int B, int H,
               int W, cnet_error *err) {
    return encode_run(m, scratch, moments, x, B, H, W, NULL, NULL, err);
}

int vae_encode_train(vae_model *m, cnet_arena *scratch, float *moments, const float *x, int B,
                     int H, int W, cnet_arena *keep, vae_half_acts *acts, cnet_error *err) {
    return encode_run(m, scratch, moments, x, B, H, W, keep, acts, err);
}

static int decode_run(vae_model *m, cnet_arena *scratch, float *x, const float *z, int B, int h,
                      int w, cnet_arena *keep, vae_half_acts *acts, cnet_error *err) {
    const cnet_vae_config *L = &m->cfg;
    const vae_half *d = &m->dec;
    const cnet_params *p = &m->params;
    cnet_backend *be = p->be;
    const int f = vae_factor(m), n = L->n_blocks, top = L->block_out_channels[n - 1];
    size_t mark = cnet_arena_mark(scratch);
    vae_bufs s = {.keep = acts ? keep : NULL, .err = err};
    if (!acts) {
        size_t cap = widest_floats(L, B, h * f, w * f);
        s.pp[0] = cnet_arena_alloc(scratch, cap * sizeof(float), err);
        s.pp[1] = cnet_arena_alloc(scratch, cap * sizeof(float), err);
    }
    int rc = !acts && (!s.pp[0] || !s.pp[1]) ? arena_rc(err) : 0;
    int H = h, W = w;
    const float *in = z;
    float *cur = NULL;
    if (rc) goto done;
    if (d->has_sample) {
        float *t = bufs_take(&s, (size_t)B * H * W * L->latent_channels);
        if (!t) {
            rc = arena_rc(err);
            goto done;
        }
        nn_conv_forward(&d->sample, p, t, z, B, H, W);
        in = t;
    }
    if (acts) acts->sample_in = z, acts->in = in;
    float *t = bufs_take(&s, (size_t)B * H * W * top);
    if (!t) {
        rc = arena_rc(err);
        goto done;
    }
    nn_conv_forward(&d->conv_in, p, t, in, B, H, W);
    cur = bufs_take(&s, (size_t)B * H * W * top);
    rc = !cur ? arena_rc(err)
              : mid_forward(&d->mid, p, scratch, cur, t, B, H, W, keep, acts ? &acts->mid : NULL,
                            err);
    for (int i = 0; i < n && !rc; i++) {
        const int C = L->block_out_channels[n - 1 - i];
        for (int j = 0; j <= L->layers_per_block && !rc; j++) {
            t = bufs_take(&s, (size_t)B * H * W * C);
            rc = !t ? arena_rc(err)
                    : resnet_forward(&d->res[i][j], p, scratch, t, cur, NULL, B, H, W, keep,
                                     acts ? &acts->res[i][j] : NULL, err);
            cur = t;
        }
        if (!rc && i < n - 1) {
            float *u = bufs_take(&s, (size_t)B * H * W * 4 * C);
            if (!u) {
                rc = arena_rc(err);
                break;
            }
            be->upsample2x_forward(be, u, cur, B, H, W, C);
            H *= 2, W *= 2;
            t = bufs_take(&s, (size_t)B * H * W * C);
            if (!t) {
                rc = arena_rc(err);
                break;
            }
            nn_conv_forward(&d->resample[i], p, t, u, B, H, W);
            if (acts) acts->resample_in[i] = u;
            cur = t;
        }
    }
    if (rc) goto done;
    rc = norm_out_forward(&d->norm_out, p, &s, acts, cur, B, H * W,
                          (size_t)B * H * W * L->block_out_channels[0], &cur, err);
    if (!rc) nn_conv_forward(&d->conv_out, p, x, cur, B, H, W);
done:
    cnet_arena_restore(scratch, mark);
    return rc;
}

int vae_decode(vae_model *m, cnet_arena *scratch, float *x, const float *z, int B, int h, int w,
               cnet_error *err) {
    return decode_run(m, scratch, x, z, B, h, w, NULL, NULL, err);
}

int vae_decode_train(vae_model *m, cnet_arena *scratch, float *x, const float *z, int B, int h,
                     int w, cnet_arena *keep, vae_half_acts *acts, cnet_error *err) {
    return decode_run(m, scratch, x, z, B, h, w, keep, acts, err);
}

int vae_open(vae_model *m, cnet_backend *be, const char *dir, cnet_error *err) {
    char config[PATH_MAX], weights[PATH_MAX];
    cnet_vae_config cfg;
    int rc = model_component_files(config, weights, PATH_MAX, dir, err);
    memset(m, 0, sizeof *m);
    if (!rc) rc = cnet_vae_config_load(&cfg, config, err);
    if (!rc && !(rc = vae_init(m, be, &cfg, err))) rc = vae_load(m, weights, err);
    if (rc) vae_free(m);
    return rc;
}
