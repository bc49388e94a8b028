/* ResnetBlock2D forward; see resnet.h. */
#include "resnet.h"

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
                   const float *x, const float *temb_act, int B, int H, int W, cnet_error *err) {
    cnet_backend *be = p->be;
    const int HW = H * W;
    const long n_in = (long)B * HW * r->in, n_out = (long)B * HW * r->out;
    size_t mark = cnet_arena_mark(scratch);
    float *a =
        cnet_arena_alloc(scratch, (size_t)(n_in > n_out ? n_in : n_out) * sizeof(float), err);
    float *t =
        r->has_time ? cnet_arena_alloc(scratch, (size_t)B * r->out * sizeof(float), err) : NULL;
    if (!a || (r->has_time && !t)) {
        cnet_arena_restore(scratch, mark);
        return err ? err->code : CNET_ENOMEM;
    }
    nn_group_norm_forward(&r->norm1, p, a, x, B, HW, 1);
    nn_conv_forward(&r->conv1, p, out, a, B, H, W);
    if (r->has_time) {
        nn_linear_forward(&r->time_proj, p, t, temb_act, B);
        be->add_broadcast(be, out, out, t, B, HW, r->out);
    }
    nn_group_norm_forward(&r->norm2, p, a, out, B, HW, 1);
    nn_conv_forward(&r->conv2, p, out, a, B, H, W);
    if (r->has_shortcut) {
        nn_conv_forward(&r->shortcut, p, a, x, B, H, W);
        be->add(be, out, out, a, n_out);
    } else {
        be->add(be, out, out, x, n_out);
    }
    if (r->output_scale != 1.0f) be->scale(be, out, out, 1.0f / r->output_scale, n_out);
    cnet_arena_restore(scratch, mark);
    return 0;
}
