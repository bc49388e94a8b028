/* The Attention module's forward; see attention.h. */
#include "attention.h"

#include <math.h>
#include <stdio.h>

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
                 const float *x, const float *ctx, int B, int N, int Nk, cnet_error *err) {
    cnet_backend *be = p->be;
    const float *c = ctx ? ctx : x;
    if (!ctx) Nk = N;
    size_t mark = cnet_arena_mark(scratch);
    float *q = cnet_arena_alloc(scratch, (size_t)B * N * a->inner * sizeof(float), err);
    float *k = cnet_arena_alloc(scratch, (size_t)B * Nk * a->inner * sizeof(float), err);
    float *v = cnet_arena_alloc(scratch, (size_t)B * Nk * a->inner * sizeof(float), err);
    float *o = cnet_arena_alloc(scratch, (size_t)B * N * a->inner * sizeof(float), err);
    if (!q || !k || !v || !o) {
        cnet_arena_restore(scratch, mark);
        return err ? err->code : CNET_ENOMEM;
    }
    nn_linear_forward(&a->q, p, q, x, B * N);
    nn_linear_forward(&a->k, p, k, c, B * Nk);
    nn_linear_forward(&a->v, p, v, c, B * Nk);
    float scale = (float)(1.0 / sqrt((double)a->head_dim));
    be->attention_forward(be, o, NULL, q, k, v, B, N, Nk, a->heads, a->head_dim, scale, 0);
    nn_linear_forward(&a->out, p, out, o, B * N);
    cnet_arena_restore(scratch, mark);
    return 0;
}
