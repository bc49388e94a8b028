/* diffusers' Attention module (models/attention_processor.py, AttnProcessor):
 * to_q / to_k / to_v projections, softmax(scale Q K^T) V per head with
 * scale = head_dim^-0.5, then to_out.0. Self-attention when ctx is NULL,
 * cross-attention over ctx (the text states) otherwise. upcast_attention /
 * upcast_softmax change nothing in float32, which is all this engine runs.
 * Sizes: B batch, N query tokens, Nk context tokens, C query dim, Ck
 * context dim, inner = heads * head_dim. */
#ifndef CNET_ATTENTION_H
#define CNET_ATTENTION_H

#include "engine/core/arena.h"
#include "engine/core/nn.h"

typedef struct attn_module {
    nn_linear q, k, v, out;
    int heads, head_dim, query_dim, context_dim, inner;
} attn_module;

/* context_dim = query_dim for self-attention. qkv_bias: the VAE's
 * attention has biases on to_q/k/v, the UNet's does not. */
int attn_declare(attn_module *a, cnet_params *p, const char *prefix, int query_dim, int context_dim,
                 int heads, int head_dim, int qkv_bias, cnet_error *err);

/* What attn_backward reads; x and ctx are borrowed. */
typedef struct attn_acts {
    const float *x, *ctx;
    float *q, *k, *v, *o; /* projections [B, N|Nk, inner] and attention output */
    float *lse;           /* [B, heads, N] */
    int Nk;
} attn_acts;

/* out[B, N, C] = to_out(attention(to_q(x), to_k(c), to_v(c))), c = ctx or x.
 * With acts, the buffers backward reads come from `keep`. */
int attn_forward(const attn_module *a, const cnet_params *p, cnet_arena *scratch, float *out,
                 const float *x, const float *ctx, int B, int N, int Nk, cnet_arena *keep,
                 attn_acts *acts, cnet_error *err);
/* dx[B, N, C] (overwrite) from dout. No gradient flows to ctx (the text
 * states come from the frozen text encoder). */
int attn_backward(const attn_module *a, const cnet_params *p, const cnet_params *g,
                  cnet_arena *scratch, float *dx, const float *dout, const attn_acts *acts, int B,
                  int N, cnet_error *err);

#endif
