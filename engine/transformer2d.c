/* Transformer2DModel / BasicTransformerBlock forward; see transformer2d.h. */
#include "transformer2d.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* diffusers: GroupNorm(eps=1e-6) before proj_in; LayerNorms eps 1e-5. */
#define TRANSFORMER_GROUP_NORM_EPS 1e-6f
#define TRANSFORMER_LAYER_NORM_EPS 1e-5f
#define TRANSFORMER_FF_MULT 4

static int block_declare(transformer_block *b, cnet_params *p, const char *prefix, int C, int heads,
                         int cross_dim, int only_cross, cnet_error *err) {
    char name[NN_NAME_BUF];
    const int head_dim = C / heads, F = TRANSFORMER_FF_MULT * C;
    int rc;
    if ((rc = nn_layer_norm_declare(&b->norm1, p, nn_sub(name, prefix, "norm1"), C,
                                    TRANSFORMER_LAYER_NORM_EPS, err)) ||
        (rc = attn_declare(&b->attn1, p, nn_sub(name, prefix, "attn1"), C,
                           only_cross ? cross_dim : C, heads, head_dim, 0, err)) ||
        (rc = nn_layer_norm_declare(&b->norm2, p, nn_sub(name, prefix, "norm2"), C,
                                    TRANSFORMER_LAYER_NORM_EPS, err)) ||
        (rc = attn_declare(&b->attn2, p, nn_sub(name, prefix, "attn2"), C, cross_dim, heads,
                           head_dim, 0, err)) ||
        (rc = nn_layer_norm_declare(&b->norm3, p, nn_sub(name, prefix, "norm3"), C,
                                    TRANSFORMER_LAYER_NORM_EPS, err)) ||
        (rc = nn_linear_declare(&b->ff_in, p, nn_sub(name, prefix, "ff.net.0.proj"), C, 2 * F, 1,
                                err)) ||
        (rc = nn_linear_declare(&b->ff_out, p, nn_sub(name, prefix, "ff.net.2"), F, C, 1, err)))
        return rc;
    return 0;
}

int transformer2d_declare(transformer2d *t, cnet_params *p, const char *prefix, int channels,
                          int heads, int n_blocks, int cross_dim, int groups, int linear_projection,
                          int only_cross_attention, cnet_error *err) {
    char name[NN_NAME_BUF], sub[NN_NAME_BUF];
    int rc;
    memset(t, 0, sizeof *t);
    if (heads < 1 || channels % heads != 0)
        return cnet_fail(err, CNET_EINVAL, "%s: %d channels do not split into %d heads", prefix,
                         channels, heads);
    t->channels = channels, t->n_blocks = n_blocks;
    t->linear_projection = linear_projection;
    t->only_cross_attention = only_cross_attention;
    t->blocks = calloc((size_t)(n_blocks ? n_blocks : 1), sizeof *t->blocks);
    if (!t->blocks) return cnet_fail(err, CNET_ENOMEM, "out of memory");
    if ((rc = nn_group_norm_declare(&t->norm, p, nn_sub(name, prefix, "norm"), channels, groups,
                                    TRANSFORMER_GROUP_NORM_EPS, err)))
        return rc;
    rc = linear_projection
             ? nn_linear_declare(&t->proj_in_linear, p, nn_sub(name, prefix, "proj_in"), channels,
                                 channels, 1, err)
             : nn_conv_declare(&t->proj_in_conv, p, nn_sub(name, prefix, "proj_in"), channels,
                               channels, 1, 1, 0, err);
    if (rc) return rc;
    for (int i = 0; i < n_blocks; i++) {
        snprintf(sub, sizeof sub, "%s.transformer_blocks.%d", prefix, i);
        if ((rc = block_declare(&t->blocks[i], p, sub, channels, heads, cross_dim,
                                only_cross_attention, err)))
            return rc;
    }
    return linear_projection
               ? nn_linear_declare(&t->proj_out_linear, p, nn_sub(name, prefix, "proj_out"),
                                   channels, channels, 1, err)
               : nn_conv_declare(&t->proj_out_conv, p, nn_sub(name, prefix, "proj_out"), channels,
                                 channels, 1, 1, 0, err);
}

void transformer2d_free(transformer2d *t) {
    free(t->blocks);
    t->blocks = NULL;
}

/* A 1x1 convolution over [B, HW, C] is a Linear over B*HW rows. */
static void project(const nn_conv *conv, const nn_linear *lin, int linear, const cnet_params *p,
                    float *out, const float *inp, int M) {
    if (linear)
        nn_linear_forward(lin, p, out, inp, M);
    else
        nn_conv_forward(conv, p, out, inp, 1, M, 1);
}

int transformer2d_forward(const transformer2d *t, const cnet_params *p, cnet_arena *scratch,
                          float *out, const float *x, const float *text, int B, int HW, int Nt,
                          cnet_error *err) {
    cnet_backend *be = p->be;
    const int C = t->channels, M = B * HW, F = TRANSFORMER_FF_MULT * C;
    const long n = (long)M * C;
    size_t mark = cnet_arena_mark(scratch);
    float *h = cnet_arena_alloc(scratch, (size_t)n * sizeof(float), err);
    float *a = cnet_arena_alloc(scratch, (size_t)n * sizeof(float), err);
    float *ff = cnet_arena_alloc(scratch, (size_t)M * 2 * F * sizeof(float), err);
    float *g = cnet_arena_alloc(scratch, (size_t)M * F * sizeof(float), err);
    int rc = 0;
    if (!h || !a || !ff || !g) {
        rc = err ? err->code : CNET_ENOMEM;
        goto done;
    }
    nn_group_norm_forward(&t->norm, p, a, x, B, HW, 0);
    project(&t->proj_in_conv, &t->proj_in_linear, t->linear_projection, p, h, a, M);
    for (int i = 0; i < t->n_blocks; i++) {
        const transformer_block *b = &t->blocks[i];
        nn_layer_norm_forward(&b->norm1, p, a, h, M);
        if ((rc = attn_forward(&b->attn1, p, scratch, out, a, t->only_cross_attention ? text : NULL,
                               B, HW, Nt, err)))
            goto done;
        be->add(be, h, h, out, n);
        nn_layer_norm_forward(&b->norm2, p, a, h, M);
        if ((rc = attn_forward(&b->attn2, p, scratch, out, a, text, B, HW, Nt, err))) goto done;
        be->add(be, h, h, out, n);
        nn_layer_norm_forward(&b->norm3, p, a, h, M);
        nn_linear_forward(&b->ff_in, p, ff, a, M);
        be->geglu_forward(be, g, ff, M, F);
        nn_linear_forward(&b->ff_out, p, out, g, M);
        be->add(be, h, h, out, n);
    }
    project(&t->proj_out_conv, &t->proj_out_linear, t->linear_projection, p, out, h, M);
    be->add(be, out, out, x, n);
done:
    cnet_arena_restore(scratch, mark);
    return rc;
}
