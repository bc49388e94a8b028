/* UNet down / mid / up blocks, forward; see unet_blocks.h. */
#include "unet_blocks.h"

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
                                        L->transformer_layers_per_block[level],
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
        (rc = transformer2d_declare(
             &m->attn, p, "mid_block.attentions.0", C, L->heads[top],
             L->transformer_layers_per_block[top], L->cross_attention_dim[top], L->norm_num_groups,
             L->use_linear_projection, L->mid_block_only_cross_attention, err)))
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
        if ((rc = transformer2d_declare(&u->attns[j], p, pre, u->out, L->heads[level],
                                        L->transformer_layers_per_block[level],
                                        L->cross_attention_dim[level], L->norm_num_groups,
                                        L->use_linear_projection, L->only_cross_attention[level],
                                        err)))
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

int unet_down_forward(const unet_down_block *d, const cnet_params *p, cnet_arena *scratch,
                      const float *x, const float *temb_act, const float *text, int B, int *H,
                      int *W, int Nt, float *const *skips, int *n_skips, cnet_error *err) {
    const float *cur = x;
    int rc;
    for (int j = 0; j < d->n_layers; j++) {
        float *out = skips[*n_skips];
        if (d->has_attn) {
            size_t mark = cnet_arena_mark(scratch);
            float *r = cnet_arena_alloc(scratch, (size_t)B * *H * *W * d->out * sizeof(float), err);
            if (!r) return err ? err->code : CNET_ENOMEM;
            rc = resnet_forward(&d->resnets[j], p, scratch, r, cur, temb_act, B, *H, *W, err);
            if (!rc)
                rc = transformer2d_forward(&d->attns[j], p, scratch, out, r, text, B, *H * *W, Nt,
                                           err);
            cnet_arena_restore(scratch, mark);
        } else {
            rc = resnet_forward(&d->resnets[j], p, scratch, out, cur, temb_act, B, *H, *W, err);
        }
        if (rc) return rc;
        cur = out;
        (*n_skips)++;
    }
    if (d->has_downsample) {
        cnet_conv2d s = nn_conv_shape(&d->downsample, B, *H, *W);
        nn_conv_forward(&d->downsample, p, skips[*n_skips], cur, B, *H, *W);
        *H = cnet_conv2d_out_h(&s);
        *W = cnet_conv2d_out_w(&s);
        (*n_skips)++;
    }
    return 0;
}

int unet_mid_forward(const unet_mid_block *m, const cnet_params *p, cnet_arena *scratch, float *out,
                     const float *x, const float *temb_act, const float *text, int B, int H, int W,
                     int Nt, cnet_error *err) {
    size_t mark = cnet_arena_mark(scratch);
    const size_t bytes = (size_t)B * H * W * m->channels * sizeof(float);
    float *a = cnet_arena_alloc(scratch, bytes, err);
    float *b = cnet_arena_alloc(scratch, bytes, err);
    int rc = !a || !b ? (err ? err->code : CNET_ENOMEM) : 0;
    if (!m->has_attn) { /* UNetMidBlock2D: one resnet */
        rc = rc ? rc : resnet_forward(&m->resnets[0], p, scratch, out, x, temb_act, B, H, W, err);
        cnet_arena_restore(scratch, mark);
        return rc;
    }
    if (!rc) rc = resnet_forward(&m->resnets[0], p, scratch, a, x, temb_act, B, H, W, err);
    if (!rc) rc = transformer2d_forward(&m->attn, p, scratch, b, a, text, B, H * W, Nt, err);
    if (!rc) rc = resnet_forward(&m->resnets[1], p, scratch, out, b, temb_act, B, H, W, err);
    cnet_arena_restore(scratch, mark);
    return rc;
}

int unet_up_forward(const unet_up_block *u, const cnet_params *p, cnet_arena *scratch, float *out,
                    const float *x, const float *temb_act, const float *text, int B, int *H, int *W,
                    int Nt, const float *const *skips, int *n_skips, cnet_error *err) {
    cnet_backend *be = p->be;
    const int HW = *H * *W;
    size_t mark = cnet_arena_mark(scratch);
    int max_in = 0;
    for (int j = 0; j < u->n_layers; j++)
        if (u->resnets[j].in > max_in) max_in = u->resnets[j].in;
    float *cat = cnet_arena_alloc(scratch, (size_t)B * HW * max_in * sizeof(float), err);
    float *a = cnet_arena_alloc(scratch, (size_t)B * HW * u->out * sizeof(float), err);
    float *b = cnet_arena_alloc(scratch, (size_t)B * HW * u->out * sizeof(float), err);
    int rc = !cat || !a || !b ? (err ? err->code : CNET_ENOMEM) : 0;
    const float *cur = x;
    int cur_channels = u->resnets[0].in - u->skip_channels[0];
    for (int j = 0; j < u->n_layers && !rc; j++) {
        const float *skip = skips[--(*n_skips)];
        be->concat_channels(be, cat, cur, skip, B * HW, cur_channels, u->skip_channels[j]);
        float *dst = cur == a ? b : a;
        rc = resnet_forward(&u->resnets[j], p, scratch, dst, cat, temb_act, B, *H, *W, err);
        if (!rc && u->has_attn) {
            float *t = dst == a ? b : a;
            rc = transformer2d_forward(&u->attns[j], p, scratch, t, dst, text, B, HW, Nt, err);
            dst = t;
        }
        cur = dst;
        cur_channels = u->out;
    }
    if (!rc && u->has_upsample) {
        float *up = cnet_arena_alloc(scratch, (size_t)B * HW * 4 * u->out * sizeof(float), err);
        if (!up) {
            rc = err ? err->code : CNET_ENOMEM;
        } else {
            be->upsample2x_forward(be, up, cur, B, *H, *W, u->out);
            *H *= 2, *W *= 2;
            nn_conv_forward(&u->upsample, p, out, up, B, *H, *W);
        }
    } else if (!rc) {
        be->copy(be, out, cur, (size_t)B * HW * u->out * sizeof(float));
    }
    cnet_arena_restore(scratch, mark);
    return rc;
}
