/* Transformer2DModel / BasicTransformerBlock: parameters, forward and
 * backward; see transformer2d.h. */
#include "engine/models/transformer2d.h"

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

static void project_backward(const nn_conv *conv, const nn_linear *lin, int linear,
                             const cnet_params *p, const cnet_params *g, float *dinp,
                             const float *dout, const float *inp, int M) {
    if (linear)
        nn_linear_backward(lin, p, g, dinp, dout, inp, M);
    else
        nn_conv_backward(conv, p, g, dinp, dout, inp, 1, M, 1);
}

/* A buffer that backward reads (from keep) or a temporary (from scratch). */
#define KEEP_OR_SCRATCH(bytes) cnet_arena_alloc(acts ? keep : scratch, (bytes), err)

int transformer2d_forward(const transformer2d *t, const cnet_params *p, cnet_arena *scratch,
                          float *out, const float *x, const float *text, int B, int HW, int Nt,
                          cnet_arena *keep, transformer2d_acts *acts, cnet_error *err) {
    cnet_backend *be = p->be;
    const int C = t->channels, M = B * HW, F = TRANSFORMER_FF_MULT * C;
    const long n = (long)M * C;
    const size_t act = (size_t)n * sizeof(float), row = (size_t)M * sizeof(float);
    size_t mark = cnet_arena_mark(scratch);
    int rc = 0;
    float *gn = KEEP_OR_SCRATCH(act), *h = KEEP_OR_SCRATCH(act);
    float *gmean =
        acts ? cnet_arena_alloc(keep, (size_t)B * t->norm.groups * sizeof(float), err) : NULL;
    float *grstd =
        acts ? cnet_arena_alloc(keep, (size_t)B * t->norm.groups * sizeof(float), err) : NULL;
    transformer_block_acts *ba =
        acts ? cnet_arena_alloc(keep, (size_t)t->n_blocks * sizeof *ba + 1, err) : NULL;
    if (!gn || !h || (acts && (!gmean || !grstd || !ba))) goto oom;
    nn_group_norm_forward_save(&t->norm, p, gn, gmean, grstd, x, B, HW, 0);
    project(&t->proj_in_conv, &t->proj_in_linear, t->linear_projection, p, h, gn, M);
    if (acts)
        *acts = (transformer2d_acts){
            .x = x, .gn = gn, .gmean = gmean, .grstd = grstd, .h_in = h, .blocks = ba};
    for (int i = 0; i < t->n_blocks; i++) {
        const transformer_block *b = &t->blocks[i];
        transformer_block_acts *A = acts ? &ba[i] : NULL;
        const nn_norm *norms[3] = {&b->norm1, &b->norm2, &b->norm3};
        float *nrm[3], *mean[3] = {0}, *rstd[3] = {0}, *hs[3];
        for (int k = 0; k < 3; k++) {
            nrm[k] = KEEP_OR_SCRATCH(act);
            /* Without acts the stream is updated in place. */
            hs[k] = acts ? cnet_arena_alloc(keep, act, err) : h;
            if (acts)
                mean[k] = cnet_arena_alloc(keep, row, err),
                rstd[k] = cnet_arena_alloc(keep, row, err);
            if (!nrm[k] || !hs[k] || (acts && (!mean[k] || !rstd[k]))) goto oom;
        }
        float *ff = KEEP_OR_SCRATCH((size_t)M * 2 * F * sizeof(float));
        float *gg = KEEP_OR_SCRATCH((size_t)M * F * sizeof(float));
        if (!ff || !gg) goto oom;
        const float *h0 = h;
        /* h1 = h0 + attn1(LN1(h0)) */
        nn_layer_norm_forward_save(&b->norm1, p, nrm[0], mean[0], rstd[0], h0, M);
        if ((rc = attn_forward(&b->attn1, p, scratch, out, nrm[0],
                               t->only_cross_attention ? text : NULL, B, HW, Nt, keep,
                               A ? &A->a1 : NULL, err)))
            goto done;
        be->add(be, hs[0], h0, out, n);
        /* h2 = h1 + attn2(LN2(h1), text) */
        nn_layer_norm_forward_save(&b->norm2, p, nrm[1], mean[1], rstd[1], hs[0], M);
        if ((rc = attn_forward(&b->attn2, p, scratch, out, nrm[1], text, B, HW, Nt, keep,
                               A ? &A->a2 : NULL, err)))
            goto done;
        be->add(be, hs[1], hs[0], out, n);
        /* h3 = h2 + ff_out(GEGLU(ff_in(LN3(h2)))) */
        nn_layer_norm_forward_save(&b->norm3, p, nrm[2], mean[2], rstd[2], hs[1], M);
        nn_linear_forward(&b->ff_in, p, ff, nrm[2], M);
        be->geglu_forward(be, gg, ff, M, F);
        nn_linear_forward(&b->ff_out, p, out, gg, M);
        be->add(be, hs[2], hs[1], out, n);
        if (A) {
            A->h0 = h0, A->h1 = hs[0], A->h2 = hs[1];
            for (int k = 0; k < 3; k++) A->mean[k] = mean[k], A->rstd[k] = rstd[k];
            A->n1 = nrm[0], A->n2 = nrm[1], A->n3 = nrm[2], A->ff = ff, A->gg = gg;
        }
        h = hs[2];
        (void)norms;
    }
    if (acts) acts->h_out = h;
    project(&t->proj_out_conv, &t->proj_out_linear, t->linear_projection, p, out, h, M);
    be->add(be, out, out, x, n);
    goto done;
oom:
    rc = err ? err->code : CNET_ENOMEM;
done:
    cnet_arena_restore(scratch, mark);
    return rc;
}

#undef KEEP_OR_SCRATCH

int transformer2d_backward(const transformer2d *t, const cnet_params *p, const cnet_params *g,
                           cnet_arena *scratch, float *dx, const float *dout,
                           const transformer2d_acts *acts, int B, int HW, cnet_error *err) {
    cnet_backend *be = p->be;
    const int C = t->channels, M = B * HW, F = TRANSFORMER_FF_MULT * C;
    const long n = (long)M * C;
    size_t mark = cnet_arena_mark(scratch);
    float *dh = cnet_arena_alloc(scratch, (size_t)n * sizeof(float), err);
    float *dn = cnet_arena_alloc(scratch, (size_t)n * sizeof(float), err);
    float *tmp = cnet_arena_alloc(scratch, (size_t)n * sizeof(float), err);
    float *dff = cnet_arena_alloc(scratch, (size_t)M * 2 * F * sizeof(float), err);
    float *dgg = cnet_arena_alloc(scratch, (size_t)M * F * sizeof(float), err);
    int rc = 0;
    if (!dh || !dn || !tmp || !dff || !dgg) {
        rc = err ? err->code : CNET_ENOMEM;
        goto done;
    }
    /* out = proj_out(h_out) + x */
    project_backward(&t->proj_out_conv, &t->proj_out_linear, t->linear_projection, p, g, dh, dout,
                     acts->h_out, M);
    for (int i = t->n_blocks - 1; i >= 0; i--) {
        const transformer_block *b = &t->blocks[i];
        const transformer_block_acts *A = &acts->blocks[i];
        /* h3 = h2 + ff_out(GEGLU(ff_in(n3))),  n3 = LN3(h2) */
        nn_linear_backward(&b->ff_out, p, g, dgg, dh, A->gg, M);
        be->geglu_backward(be, dff, dgg, A->ff, M, F);
        nn_linear_backward(&b->ff_in, p, g, dn, dff, A->n3, M);
        nn_layer_norm_backward(&b->norm3, p, g, tmp, dn, A->h2, A->mean[2], A->rstd[2], M);
        be->add(be, dh, dh, tmp, n);
        /* h2 = h1 + attn2(n2, text),  n2 = LN2(h1) */
        if ((rc = attn_backward(&b->attn2, p, g, scratch, dn, dh, &A->a2, B, HW, err))) goto done;
        nn_layer_norm_backward(&b->norm2, p, g, tmp, dn, A->h1, A->mean[1], A->rstd[1], M);
        be->add(be, dh, dh, tmp, n);
        /* h1 = h0 + attn1(n1),  n1 = LN1(h0) */
        if ((rc = attn_backward(&b->attn1, p, g, scratch, dn, dh, &A->a1, B, HW, err))) goto done;
        nn_layer_norm_backward(&b->norm1, p, g, tmp, dn, A->h0, A->mean[0], A->rstd[0], M);
        be->add(be, dh, dh, tmp, n);
    }
    /* h_in = proj_in(GroupNorm(x)) */
    project_backward(&t->proj_in_conv, &t->proj_in_linear, t->linear_projection, p, g, dn, dh,
                     acts->gn, M);
    nn_group_norm_backward(&t->norm, p, g, dx, dn, acts->x, acts->gmean, acts->grstd, B, HW, 0);
    be->add(be, dx, dx, dout, n);
done:
    cnet_arena_restore(scratch, mark);
    return rc;
}
