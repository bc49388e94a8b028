/* ResnetBlock2D: parameters, forward and backward; see resnet.h. */
#include "engine/models/resnet.h"

#include <stdio.h>

int resnet_declare(resnet_block *r, cnet_params *p, const char *prefix, int in, int out,
                   int temb_channels, int groups, float eps, float output_scale, cnet_error *err) {
    char name[NN_NAME_BUF];
    int rc;
    r->in = in, r->out = out, r->output_scale = output_scale;
    r->has_time = temb_channels > 0;
    r->has_shortcut = in != out;
    if ((rc = nn_group_norm_declare(&r->norm1, p, nn_sub(name, prefix, "norm1"), in, groups, eps,
                                    err)) ||
        (rc = nn_conv_declare(&r->conv1, p, nn_sub(name, prefix, "conv1"), in, out, 3, 1, 1, err)))
        return rc;
    if (r->has_time &&
        (rc = nn_linear_declare(&r->time_proj, p, nn_sub(name, prefix, "time_emb_proj"),
                                temb_channels, out, 1, err)))
        return rc;
    if ((rc = nn_group_norm_declare(&r->norm2, p, nn_sub(name, prefix, "norm2"), out, groups, eps,
                                    err)) ||
        (rc = nn_conv_declare(&r->conv2, p, nn_sub(name, prefix, "conv2"), out, out, 3, 1, 1, err)))
        return rc;
    if (r->has_shortcut &&
        (rc = nn_conv_declare(&r->shortcut, p, nn_sub(name, prefix, "conv_shortcut"), in, out, 1, 1,
                              0, err)))
        return rc;
    return 0;
}

int resnet_forward(const resnet_block *r, const cnet_params *p, cnet_arena *scratch, float *out,
                   const float *x, const float *temb_act, int B, int H, int W, cnet_arena *keep,
                   resnet_acts *acts, cnet_error *err) {
    cnet_backend *be = p->be;
    const int HW = H * W;
    const long n_in = (long)B * HW * r->in, n_out = (long)B * HW * r->out;
    const size_t stats = (size_t)B * r->norm1.groups * sizeof(float);
    cnet_arena *save = acts ? keep : scratch;
    size_t mark = cnet_arena_mark(scratch);
    /* Without acts to keep, norm1's output, norm2's and the shortcut's share
     * one buffer, each dead before the next is written (the VAE decoder's
     * widest block at 512x512: 268 MB instead of 536 MB). */
    const long n_tmp = acts || n_in > n_out ? n_in : n_out;
    float *a1 = cnet_arena_alloc(save, (size_t)n_tmp * sizeof(float), err);
    float *h1 = acts ? cnet_arena_alloc(keep, (size_t)n_out * sizeof(float), err) : out;
    float *a2 = acts ? cnet_arena_alloc(keep, (size_t)n_out * sizeof(float), err) : a1;
    float *t =
        r->has_time ? cnet_arena_alloc(scratch, (size_t)B * r->out * sizeof(float), err) : NULL;
    float *m1 = NULL, *s1 = NULL, *m2 = NULL, *s2 = NULL;
    if (acts) {
        m1 = cnet_arena_alloc(keep, stats, err), s1 = cnet_arena_alloc(keep, stats, err);
        m2 = cnet_arena_alloc(keep, stats, err), s2 = cnet_arena_alloc(keep, stats, err);
    }
    if (!a1 || !h1 || !a2 || (r->has_time && !t) || (acts && (!m1 || !s1 || !m2 || !s2))) {
        cnet_arena_restore(scratch, mark);
        return err ? err->code : CNET_ENOMEM;
    }
    nn_group_norm_forward_save(&r->norm1, p, a1, m1, s1, x, B, HW, 1);
    nn_conv_forward(&r->conv1, p, h1, a1, B, H, W);
    if (r->has_time) {
        nn_linear_forward(&r->time_proj, p, t, temb_act, B);
        be->add_broadcast(be, h1, h1, t, B, HW, r->out);
    }
    nn_group_norm_forward_save(&r->norm2, p, a2, m2, s2, h1, B, HW, 1);
    nn_conv_forward(&r->conv2, p, out, a2, B, H, W);
    if (r->has_shortcut) {
        float *sc = acts ? cnet_arena_alloc(scratch, (size_t)n_out * sizeof(float), err) : a1;
        if (!sc) {
            cnet_arena_restore(scratch, mark);
            return err ? err->code : CNET_ENOMEM;
        }
        nn_conv_forward(&r->shortcut, p, sc, x, B, H, W);
        be->add(be, out, out, sc, n_out);
    } else {
        be->add(be, out, out, x, n_out);
    }
    if (r->output_scale != 1.0f) be->scale(be, out, out, 1.0f / r->output_scale, n_out);
    if (acts) {
        *acts = (resnet_acts){.x = x,
                              .temb_act = temb_act,
                              .mean1 = m1,
                              .rstd1 = s1,
                              .a1 = a1,
                              .h1 = h1,
                              .mean2 = m2,
                              .rstd2 = s2,
                              .a2 = a2};
    }
    cnet_arena_restore(scratch, mark);
    return 0;
}

int resnet_backward(const resnet_block *r, const cnet_params *p, const cnet_params *g,
                    cnet_arena *scratch, float *dx, float *dtemb_act, const float *dout,
                    const resnet_acts *acts, int B, int H, int W, cnet_error *err) {
    cnet_backend *be = p->be;
    const int HW = H * W;
    const long n_in = (long)B * HW * r->in, n_out = (long)B * HW * r->out;
    size_t mark = cnet_arena_mark(scratch);
    float *d = cnet_arena_alloc(scratch, (size_t)n_out * sizeof(float), err);  /* dout/scale */
    float *dh = cnet_arena_alloc(scratch, (size_t)n_out * sizeof(float), err); /* d a2, d h1 */
    float *da = cnet_arena_alloc(scratch, (size_t)n_out * sizeof(float), err); /* d h1 */
    float *din = cnet_arena_alloc(scratch, (size_t)n_in * sizeof(float), err); /* d a1, sc */
    float *dt = cnet_arena_alloc(scratch, (size_t)B * r->out * sizeof(float), err);
    float *dtemb = r->has_time && dtemb_act
                       ? cnet_arena_alloc(scratch, (size_t)B * r->time_proj.in * sizeof(float), err)
                       : NULL;
    if (!d || !dh || !da || !din || !dt || (r->has_time && dtemb_act && !dtemb)) {
        cnet_arena_restore(scratch, mark);
        return err ? err->code : CNET_ENOMEM;
    }
    /* out = (shortcut(x) + conv2(a2)) / scale */
    be->scale(be, d, dout, 1.0f / r->output_scale, n_out);
    nn_conv_backward(&r->conv2, p, g, dh, d, acts->a2, B, H, W);
    nn_group_norm_backward(&r->norm2, p, g, da, dh, acts->h1, acts->mean2, acts->rstd2, B, HW, 1);
    if (r->has_time) { /* h1 = conv1(a1) + time_proj(temb_act) broadcast over HW */
        be->add_broadcast_backward(be, dt, da, B, HW, r->out);
        nn_linear_backward(&r->time_proj, p, g, dtemb, dt, acts->temb_act, B);
        if (dtemb_act) be->axpy(be, dtemb_act, 1.0f, dtemb, (long)B * r->time_proj.in);
    }
    nn_conv_backward(&r->conv1, p, g, din, da, acts->a1, B, H, W);
    nn_group_norm_backward(&r->norm1, p, g, dx, din, acts->x, acts->mean1, acts->rstd1, B, HW, 1);
    if (r->has_shortcut) {
        nn_conv_backward(&r->shortcut, p, g, din, d, acts->x, B, H, W);
        be->add(be, dx, dx, din, n_in);
    } else {
        be->add(be, dx, dx, d, n_in);
    }
    cnet_arena_restore(scratch, mark);
    return 0;
}
