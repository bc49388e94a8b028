/* UNet down / mid / up blocks, forward and backward; see unet_blocks.h. */
#include "engine/models/unet_blocks.h"

#include <stdio.h>
#include <string.h>

int unet_n_skips(const cnet_unet_config *L) {
    int n = 1; /* conv_in */
    for (int i = 0; i < L->n_blocks; i++) n += L->layers_per_block[i] + (i < L->n_blocks - 1);
    return n;
}

int unet_skip_channels(const cnet_unet_config *L, int i) {
    if (i == 0) return L->block_out_channels[0];
    i--;
    for (int lv = 0; lv < L->n_blocks; lv++) {
        int here = L->layers_per_block[lv] + (lv < L->n_blocks - 1);
        if (i < here) return L->block_out_channels[lv];
        i -= here;
    }
    return -1;
}

int unet_down_declare(unet_down_block *d, cnet_params *p, const cnet_unet_config *L, int level,
                      int temb_channels, cnet_error *err) {
    char pre[NN_NAME_BUF], name[NN_NAME_BUF];
    int rc;
    memset(d, 0, sizeof *d);
    d->in = level == 0 ? L->block_out_channels[0] : L->block_out_channels[level - 1];
    d->out = L->block_out_channels[level];
    d->n_layers = L->layers_per_block[level];
    d->has_attn = L->down_block_types[level] == CNET_BLOCK_CROSS_ATTN_DOWN;
    d->has_downsample = level < L->n_blocks - 1;
    if (d->n_layers < 1 || d->n_layers > UNET_MAX_LAYERS)
        return cnet_fail(err, CNET_EINVAL, "down block %d: %d layers (supported 1..%d)", level,
                         d->n_layers, UNET_MAX_LAYERS);
    for (int j = 0; j < d->n_layers; j++) {
        snprintf(pre, sizeof pre, "down_blocks.%d.resnets.%d", level, j);
        if ((rc = resnet_declare(&d->resnets[j], p, pre, j == 0 ? d->in : d->out, d->out,
                                 temb_channels, L->norm_num_groups, L->norm_eps, 1.0f, err)))
            return rc;
        if (!d->has_attn) continue;
        snprintf(pre, sizeof pre, "down_blocks.%d.attentions.%d", level, j);
        if ((rc = transformer2d_declare(&d->attns[j], p, pre, d->out, L->heads[level],
                                        L->down_transformer_layers[level][j],
                                        L->cross_attention_dim[level], L->norm_num_groups,
                                        L->use_linear_projection, L->only_cross_attention[level],
                                        err)))
            return rc;
    }
    if (d->has_downsample) {
        snprintf(pre, sizeof pre, "down_blocks.%d.downsamplers.0", level);
        if ((rc = nn_conv_declare(&d->downsample, p, nn_sub(name, pre, "conv"), d->out, d->out, 3,
                                  2, L->downsample_padding, err)))
            return rc;
    }
    return 0;
}

int unet_mid_declare(unet_mid_block *m, cnet_params *p, const cnet_unet_config *L,
                     int temb_channels, cnet_error *err) {
    const int top = L->n_blocks - 1, C = L->block_out_channels[top];
    int rc;
    memset(m, 0, sizeof *m);
    m->channels = C;
    m->has_attn = L->mid_block_type == CNET_BLOCK_MID_CROSS_ATTN;
    if ((rc = resnet_declare(&m->resnets[0], p, "mid_block.resnets.0", C, C, temb_channels,
                             L->norm_num_groups, L->norm_eps, L->mid_block_scale_factor, err)))
        return rc;
    if (m->has_attn &&
        (rc = transformer2d_declare(&m->attn, p, "mid_block.attentions.0", C, L->heads[top],
                                    L->mid_transformer_layers, L->cross_attention_dim[top],
                                    L->norm_num_groups, L->use_linear_projection,
                                    L->mid_block_only_cross_attention, err)))
        return rc;
    if (!m->has_attn) return 0; /* UNetMidBlock2D */
    return resnet_declare(&m->resnets[1], p, "mid_block.resnets.1", C, C, temb_channels,
                          L->norm_num_groups, L->norm_eps, L->mid_block_scale_factor, err);
}

int unet_up_declare(unet_up_block *u, cnet_params *p, const cnet_unet_config *L, int i,
                    int temb_channels, cnet_error *err) {
    char pre[NN_NAME_BUF], name[NN_NAME_BUF];
    const int n = L->n_blocks, level = n - 1 - i; /* the down level this block mirrors */
    const int prev_out = i == 0 ? L->block_out_channels[n - 1] : L->block_out_channels[level + 1];
    const int in = L->block_out_channels[level > 0 ? level - 1 : 0];
    int rc;
    memset(u, 0, sizeof *u);
    u->out = L->block_out_channels[level];
    u->n_layers = L->layers_per_block[level] + 1;
    u->has_attn = L->up_block_types[i] == CNET_BLOCK_CROSS_ATTN_UP;
    u->has_upsample = i < n - 1;
    if (u->n_layers > UNET_MAX_LAYERS + 1)
        return cnet_fail(err, CNET_EINVAL, "up block %d: too many layers", i);
    for (int j = 0; j < u->n_layers; j++) {
        u->skip_channels[j] = j == u->n_layers - 1 ? in : u->out;
        int res_in = (j == 0 ? prev_out : u->out) + u->skip_channels[j];
        snprintf(pre, sizeof pre, "up_blocks.%d.resnets.%d", i, j);
        if ((rc = resnet_declare(&u->resnets[j], p, pre, res_in, u->out, temb_channels,
                                 L->norm_num_groups, L->norm_eps, 1.0f, err)))
            return rc;
        if (!u->has_attn) continue;
        snprintf(pre, sizeof pre, "up_blocks.%d.attentions.%d", i, j);
        if ((rc = transformer2d_declare(
                 &u->attns[j], p, pre, u->out, L->heads[level], L->up_transformer_layers[i][j],
                 L->cross_attention_dim[level], L->norm_num_groups, L->use_linear_projection,
                 L->only_cross_attention[level], err)))
            return rc;
    }
    if (u->has_upsample) {
        snprintf(pre, sizeof pre, "up_blocks.%d.upsamplers.0", i);
        if ((rc = nn_conv_declare(&u->upsample, p, nn_sub(name, pre, "conv"), u->out, u->out, 3, 1,
                                  1, err)))
            return rc;
    }
    return 0;
}

void unet_down_free(unet_down_block *d) {
    for (int j = 0; j < UNET_MAX_LAYERS; j++) transformer2d_free(&d->attns[j]);
}

void unet_mid_free(unet_mid_block *m) { transformer2d_free(&m->attn); }

void unet_up_free(unet_up_block *u) {
    for (int j = 0; j < UNET_MAX_LAYERS + 1; j++) transformer2d_free(&u->attns[j]);
}

/* Allocates from keep when training (acts != NULL), else from scratch. */
static float *act_alloc(cnet_arena *keep, cnet_arena *scratch, int training, size_t floats,
                        cnet_error *err) {
    return cnet_arena_alloc(training ? keep : scratch, floats * sizeof(float), err);
}

int unet_down_forward(const unet_down_block *d, const cnet_params *p, cnet_arena *scratch,
                      const float *x, const float *temb_act, const float *text, int B, int *H,
                      int *W, int Nt, float *const *skips, int *n_skips, cnet_arena *keep,
                      unet_down_acts *acts, cnet_error *err) {
    const float *cur = x;
    int rc = 0;
    if (acts) acts->x = x, acts->H = *H, acts->W = *W, acts->first_skip = *n_skips;
    for (int j = 0; j < d->n_layers && !rc; j++) {
        float *out = skips[*n_skips];
        size_t mark = cnet_arena_mark(scratch);
        if (d->has_attn) {
            float *r = act_alloc(keep, scratch, acts != NULL, (size_t)B * *H * *W * d->out, err);
            if (!r) return err ? err->code : CNET_ENOMEM;
            rc = resnet_forward(&d->resnets[j], p, scratch, r, cur, temb_act, B, *H, *W, keep,
                                acts ? &acts->res[j] : NULL, err);
            if (!rc)
                rc = transformer2d_forward(&d->attns[j], p, scratch, out, r, text, B, *H * *W, Nt,
                                           keep, acts ? &acts->attn[j] : NULL, err);
        } else {
            rc = resnet_forward(&d->resnets[j], p, scratch, out, cur, temb_act, B, *H, *W, keep,
                                acts ? &acts->res[j] : NULL, err);
        }
        cnet_arena_restore(scratch, mark);
        cur = out;
        (*n_skips)++;
    }
    if (!rc && d->has_downsample) {
        cnet_conv2d s = nn_conv_shape(&d->downsample, B, *H, *W);
        nn_conv_forward(&d->downsample, p, skips[*n_skips], cur, B, *H, *W);
        *H = cnet_conv2d_out_h(&s);
        *W = cnet_conv2d_out_w(&s);
        (*n_skips)++;
    }
    return rc;
}

int unet_down_backward(const unet_down_block *d, const cnet_params *p, const cnet_params *g,
                       cnet_arena *scratch, float *dx, float *dtemb_act, float *const *dskips,
                       float *const *skips, const unet_down_acts *acts, int B, cnet_error *err) {
    const int H = acts->H, W = acts->W, first = acts->first_skip;
    const size_t n = (size_t)B * H * W * d->out;
    size_t mark = cnet_arena_mark(scratch);
    float *dr = cnet_arena_alloc(scratch, n * sizeof(float), err);
    float *din = cnet_arena_alloc(
        scratch, (size_t)B * H * W * (d->in > d->out ? d->in : d->out) * sizeof(float), err);
    int rc = !dr || !din ? (err ? err->code : CNET_ENOMEM) : 0;
    if (!rc && d->has_downsample) { /* skip[first+L] = downsample(skip[first+L-1]) */
        const int last = first + d->n_layers - 1;
        nn_conv_backward(&d->downsample, p, g, din, dskips[last + 1], skips[last], B, H, W);
        p->be->add(p->be, dskips[last], dskips[last], din, (long)n);
    }
    for (int j = d->n_layers - 1; j >= 0 && !rc; j--) {
        const float *ds = dskips[first + j]; /* everything that reached this output */
        if (d->has_attn) {
            rc = transformer2d_backward(&d->attns[j], p, g, scratch, dr, ds, &acts->attn[j], B,
                                        H * W, err);
            ds = dr;
        }
        if (!rc)
            rc = resnet_backward(&d->resnets[j], p, g, scratch, din, dtemb_act, ds, &acts->res[j],
                                 B, H, W, err);
        /* The resnet's input: the previous layer's output, or the block input. */
        float *target = j > 0 ? dskips[first + j - 1] : dx;
        const size_t n_in = (size_t)B * H * W * (j > 0 ? d->out : d->in);
        if (!rc) p->be->add(p->be, target, target, din, (long)n_in);
    }
    cnet_arena_restore(scratch, mark);
    return rc;
}

int unet_mid_forward(const unet_mid_block *m, const cnet_params *p, cnet_arena *scratch, float *out,
                     const float *x, const float *temb_act, const float *text, int B, int H, int W,
                     int Nt, cnet_arena *keep, unet_mid_acts *acts, cnet_error *err) {
    size_t mark = cnet_arena_mark(scratch);
    const size_t n = (size_t)B * H * W * m->channels;
    int rc = 0;
    if (acts) acts->H = H, acts->W = W;
    if (!m->has_attn) { /* UNetMidBlock2D: one resnet */
        rc = resnet_forward(&m->resnets[0], p, scratch, out, x, temb_act, B, H, W, keep,
                            acts ? &acts->res[0] : NULL, err);
        cnet_arena_restore(scratch, mark);
        return rc;
    }
    float *a = act_alloc(keep, scratch, acts != NULL, n, err);
    float *b = act_alloc(keep, scratch, acts != NULL, n, err);
    rc = !a || !b ? (err ? err->code : CNET_ENOMEM) : 0;
    if (!rc)
        rc = resnet_forward(&m->resnets[0], p, scratch, a, x, temb_act, B, H, W, keep,
                            acts ? &acts->res[0] : NULL, err);
    if (!rc)
        rc = transformer2d_forward(&m->attn, p, scratch, b, a, text, B, H * W, Nt, keep,
                                   acts ? &acts->attn : NULL, err);
    if (!rc)
        rc = resnet_forward(&m->resnets[1], p, scratch, out, b, temb_act, B, H, W, keep,
                            acts ? &acts->res[1] : NULL, err);
    cnet_arena_restore(scratch, mark);
    return rc;
}

int unet_mid_backward(const unet_mid_block *m, const cnet_params *p, const cnet_params *g,
                      cnet_arena *scratch, float *dx, float *dtemb_act, const float *dout,
                      const unet_mid_acts *acts, int B, cnet_error *err) {
    const int H = acts->H, W = acts->W;
    if (!m->has_attn)
        return resnet_backward(&m->resnets[0], p, g, scratch, dx, dtemb_act, dout, &acts->res[0], B,
                               H, W, err);
    const size_t n = (size_t)B * H * W * m->channels;
    size_t mark = cnet_arena_mark(scratch);
    float *da = cnet_arena_alloc(scratch, n * sizeof(float), err);
    float *db = cnet_arena_alloc(scratch, n * sizeof(float), err);
    int rc = !da || !db ? (err ? err->code : CNET_ENOMEM) : 0;
    if (!rc)
        rc = resnet_backward(&m->resnets[1], p, g, scratch, db, dtemb_act, dout, &acts->res[1], B,
                             H, W, err);
    if (!rc)
        rc = transformer2d_backward(&m->attn, p, g, scratch, da, db, &acts->attn, B, H * W, err);
    if (!rc)
        rc = resnet_backward(&m->resnets[0], p, g, scratch, dx, dtemb_act, da, &acts->res[0], B, H,
                             W, err);
    cnet_arena_restore(scratch, mark);
    return rc;
}

int unet_up_forward(const unet_up_block *u, const cnet_params *p, cnet_arena *scratch, float *out,
                    const float *x, const float *temb_act, const float *text, int B, int *H, int *W,
                    int Nt, const float *const *skips, int *n_skips, cnet_arena *keep,
                    unet_up_acts *acts, cnet_error *err) {
    cnet_backend *be = p->be;
    const int HW = *H * *W, training = acts != NULL;
    size_t mark = cnet_arena_mark(scratch);
    int max_in = 0, rc = 0;
    for (int j = 0; j < u->n_layers; j++)
        if (u->resnets[j].in > max_in) max_in = u->resnets[j].in;
    /* Inference ping-pongs through three buffers; training keeps each layer's. */
    float *cat = NULL, *a = NULL, *b = NULL;
    if (!training) {
        cat = cnet_arena_alloc(scratch, (size_t)B * HW * max_in * sizeof(float), err);
        a = cnet_arena_alloc(scratch, (size_t)B * HW * u->out * sizeof(float), err);
        b = cnet_arena_alloc(scratch, (size_t)B * HW * u->out * sizeof(float), err);
        if (!cat || !a || !b) rc = err ? err->code : CNET_ENOMEM;
    } else {
        acts->H = *H, acts->W = *W;
    }
    const float *cur = x;
    int cur_channels = u->resnets[0].in - u->skip_channels[0];
    for (int j = 0; j < u->n_layers && !rc; j++) {
        const int si = --(*n_skips);
        float *c = cat, *r, *o;
        if (training) {
            c = cnet_arena_alloc(keep, (size_t)B * HW * u->resnets[j].in * sizeof(float), err);
            r = cnet_arena_alloc(keep, (size_t)B * HW * u->out * sizeof(float), err);
            o = u->has_attn ? cnet_arena_alloc(keep, (size_t)B * HW * u->out * sizeof(float), err)
                            : r;
            if (!c || !r || !o) {
                rc = err ? err->code : CNET_ENOMEM;
                break;
            }
            acts->skip_index[j] = si;
        } else {
            r = cur == a ? b : a;
            o = r == a ? b : a;
        }
        be->concat_channels(be, c, cur, skips[si], B * HW, cur_channels, u->skip_channels[j]);
        rc = resnet_forward(&u->resnets[j], p, scratch, r, c, temb_act, B, *H, *W, keep,
                            training ? &acts->res[j] : NULL, err);
        if (!rc && u->has_attn)
            rc = transformer2d_forward(&u->attns[j], p, scratch, o, r, text, B, HW, Nt, keep,
                                       training ? &acts->attn[j] : NULL, err);
        cur = u->has_attn ? o : r;
        cur_channels = u->out;
    }
    if (!rc && u->has_upsample) {
        float *up = act_alloc(keep, scratch, training, (size_t)B * HW * 4 * u->out, err);
        if (!up) {
            rc = err ? err->code : CNET_ENOMEM;
        } else {
            be->upsample2x_forward(be, up, cur, B, *H, *W, u->out);
            *H *= 2, *W *= 2;
            nn_conv_forward(&u->upsample, p, out, up, B, *H, *W);
            if (training) acts->upsampled = up;
        }
    } else if (!rc) {
        be->copy(be, out, cur, (size_t)B * HW * u->out * sizeof(float));
    }
    cnet_arena_restore(scratch, mark);
    return rc;
}

int unet_up_backward(const unet_up_block *u, const cnet_params *p, const cnet_params *g,
                     cnet_arena *scratch, float *dx, float *dtemb_act, float *const *dskips,
                     const float *dout, const unet_up_acts *acts, int B, cnet_error *err) {
    cnet_backend *be = p->be;
    const int H = acts->H, W = acts->W, HW = H * W;
    size_t mark = cnet_arena_mark(scratch);
    int max_in = 0;
    for (int j = 0; j < u->n_layers; j++)
        if (u->resnets[j].in > max_in) max_in = u->resnets[j].in;
    float *dcur = cnet_arena_alloc(scratch, (size_t)B * HW * max_in * sizeof(float), err);
    float *dr = cnet_arena_alloc(scratch, (size_t)B * HW * u->out * sizeof(float), err);
    float *dcat = cnet_arena_alloc(scratch, (size_t)B * HW * max_in * sizeof(float), err);
    float *dup = u->has_upsample
                     ? cnet_arena_alloc(scratch, (size_t)B * HW * 4 * u->out * sizeof(float), err)
                     : NULL;
    int rc =
        !dcur || !dr || !dcat || (u->has_upsample && !dup) ? (err ? err->code : CNET_ENOMEM) : 0;
    if (rc) goto done;
    if (u->has_upsample) {
        nn_conv_backward(&u->upsample, p, g, dup, dout, acts->upsampled, B, 2 * H, 2 * W);
        be->upsample2x_backward(be, dcur, dup, B, H, W, u->out);
    } else {
        be->copy(be, dcur, dout, (size_t)B * HW * u->out * sizeof(float));
    }
    for (int j = u->n_layers - 1; j >= 0 && !rc; j--) {
        const float *d = dcur;
        if (u->has_attn) {
            rc = transformer2d_backward(&u->attns[j], p, g, scratch, dr, dcur, &acts->attn[j], B,
                                        HW, err);
            d = dr;
        }
        if (!rc)
            rc = resnet_backward(&u->resnets[j], p, g, scratch, dcat, dtemb_act, d, &acts->res[j],
                                 B, H, W, err);
        if (rc) break;
        const int prev = u->resnets[j].in - u->skip_channels[j];
        be->split_channels(be, j > 0 ? dcur : dx, dskips[acts->skip_index[j]], dcat, B * HW, prev,
                           u->skip_channels[j]);
    }
done:
    cnet_arena_restore(scratch, mark);
    return rc;
}
