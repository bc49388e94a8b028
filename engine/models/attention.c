/* The Attention module: parameters, forward (keeping what the backward reads)
 * and backward; see attention.h. */
#include "engine/models/attention.h"

#include <math.h>
#include <stdio.h>

/* diffusers' Attention scale: head_dim^-0.5. */
static float attn_scale(const attn_module *a) { return (float)(1.0 / sqrt((double)a->head_dim)); }

int attn_declare(attn_module *a, cnet_params *p, const char *prefix, int query_dim, int context_dim,
                 int heads, int head_dim, int qkv_bias, cnet_error *err) {
    char name[NN_NAME_BUF];
    int rc;
    a->heads = heads, a->head_dim = head_dim, a->inner = heads * head_dim;
    a->query_dim = query_dim, a->context_dim = context_dim;
    if ((rc = nn_linear_declare(&a->q, p, nn_sub(name, prefix, "to_q"), query_dim, a->inner,
                                qkv_bias, err)) ||
        (rc = nn_linear_declare(&a->k, p, nn_sub(name, prefix, "to_k"), context_dim, a->inner,
                                qkv_bias, err)) ||
        (rc = nn_linear_declare(&a->v, p, nn_sub(name, prefix, "to_v"), context_dim, a->inner,
                                qkv_bias, err)) ||
        (rc = nn_linear_declare(&a->out, p, nn_sub(name, prefix, "to_out.0"), a->inner, query_dim,
                                1, err)))
        return rc;
    return 0;
}

int attn_forward(const attn_module *a, const cnet_params *p, cnet_arena *scratch, float *out,
                 const float *x, const float *ctx, int B, int N, int Nk, cnet_arena *keep,
                 attn_acts *acts, cnet_error *err) {
    cnet_backend *be = p->be;
    const float *c = ctx ? ctx : x;
    if (!ctx) Nk = N;
    cnet_arena *save = acts ? keep : scratch;
    size_t mark = cnet_arena_mark(scratch);
    float *q = cnet_arena_alloc(save, (size_t)B * N * a->inner * sizeof(float), err);
    float *k = cnet_arena_alloc(save, (size_t)B * Nk * a->inner * sizeof(float), err);
    float *v = cnet_arena_alloc(save, (size_t)B * Nk * a->inner * sizeof(float), err);
    float *o = cnet_arena_alloc(save, (size_t)B * N * a->inner * sizeof(float), err);
    float *lse =
        acts ? cnet_arena_alloc(keep, (size_t)B * a->heads * N * sizeof(float), err) : NULL;
    if (!q || !k || !v || !o || (acts && !lse)) {
        cnet_arena_restore(scratch, mark);
        return err ? err->code : CNET_ENOMEM;
    }
    nn_linear_forward(&a->q, p, q, x, B * N);
    nn_linear_forward(&a->k, p, k, c, B * Nk);
    nn_linear_forward(&a->v, p, v, c, B * Nk);
    be->attention_forward(be, o, lse, q, k, v, B, N, Nk, a->heads, a->head_dim, attn_scale(a), 0);
    nn_linear_forward(&a->out, p, out, o, B * N);
    if (acts)
        *acts =
            (attn_acts){.x = x, .ctx = ctx, .q = q, .k = k, .v = v, .o = o, .lse = lse, .Nk = Nk};
    cnet_arena_restore(scratch, mark);
    return 0;
}

int attn_backward(const attn_module *a, const cnet_params *p, const cnet_params *g,
                  cnet_arena *scratch, float *dx, const float *dout, const attn_acts *acts, int B,
                  int N, cnet_error *err) {
    cnet_backend *be = p->be;
    const int Nk = acts->Nk, self = acts->ctx == NULL;
    const long nq = (long)B * N * a->inner, nk = (long)B * Nk * a->inner;
    size_t mark = cnet_arena_mark(scratch);
    float *d_o = cnet_arena_alloc(scratch, (size_t)nq * sizeof(float), err);
    float *dq = cnet_arena_alloc(scratch, (size_t)nq * sizeof(float), err);
    float *dk = cnet_arena_alloc(scratch, (size_t)nk * sizeof(float), err);
    float *dv = cnet_arena_alloc(scratch, (size_t)nk * sizeof(float), err);
    float *tmp =
        self ? cnet_arena_alloc(scratch, (size_t)B * N * a->query_dim * sizeof(float), err) : NULL;
    if (!d_o || !dq || !dk || !dv || (self && !tmp)) {
        cnet_arena_restore(scratch, mark);
        return err ? err->code : CNET_ENOMEM;
    }
    nn_linear_backward(&a->out, p, g, d_o, dout, acts->o, B * N);
    be->attention_backward(be, dq, dk, dv, d_o, acts->q, acts->k, acts->v, acts->o, acts->lse, B, N,
                           Nk, a->heads, a->head_dim, attn_scale(a), 0);
    nn_linear_backward(&a->q, p, g, dx, dq, acts->x, B * N);
    const float *c = self ? acts->x : acts->ctx;
    nn_linear_backward(&a->k, p, g, tmp, dk, c, B * Nk);
    if (self) be->add(be, dx, dx, tmp, (long)B * N * a->query_dim);
    nn_linear_backward(&a->v, p, g, tmp, dv, c, B * Nk);
    if (self) be->add(be, dx, dx, tmp, (long)B * N * a->query_dim);
    cnet_arena_restore(scratch, mark);
    return 0;
}
