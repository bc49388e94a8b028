/* Transformer2DModel with BasicTransformerBlocks, as the SD UNet uses it
 * (diffusers models/transformers/transformer_2d.py, models/attention.py),
 * forward and backward, NHWC.
 *
 *   r = x;  h = proj_in(GroupNorm(x, eps 1e-6))   (1x1 conv, or Linear when
 *                                                   use_linear_projection)
 *   per block:  h += attn1(LN1(h))                (self; cross when
 *                                                   only_cross_attention)
 *               h += attn2(LN2(h), text)          (cross-attention)
 *               h += ff(LN3(h)),  ff = Linear(GEGLU(Linear(h)))  (4x inner)
 *   out = proj_out(h) + r
 *
 * Sizes: B batch, HW pixels, C channels (= heads * head_dim), Nt text
 * tokens, Dt text dim. */
#ifndef CNET_TRANSFORMER2D_H
#define CNET_TRANSFORMER2D_H

#include "engine/core/arena.h"
#include "engine/models/attention.h"
#include "engine/core/nn.h"

typedef struct transformer_block {
    nn_norm norm1, norm2, norm3;
    attn_module attn1, attn2;
    nn_linear ff_in, ff_out; /* ff.net.0.proj [C -> 8C] (GEGLU), ff.net.2 [4C -> C] */
} transformer_block;

typedef struct transformer2d {
    nn_norm norm;
    nn_conv proj_in_conv, proj_out_conv;
    nn_linear proj_in_linear, proj_out_linear;
    transformer_block *blocks;
    int n_blocks, channels, linear_projection, only_cross_attention;
} transformer2d;

int transformer2d_declare(transformer2d *t, cnet_params *p, const char *prefix, int channels,
                          int heads, int n_blocks, int cross_dim, int groups, int linear_projection,
                          int only_cross_attention, cnet_error *err);
void transformer2d_free(transformer2d *t);

/* What backward reads from one BasicTransformerBlock: the residual stream
 * before each sub-layer (h0 -> h1 -> h2 -> next block's h0), each
 * LayerNorm's output and statistics, the attention acts and the GEGLU
 * input/output. [M = B*HW, C] unless noted. */
typedef struct transformer_block_acts {
    const float *h0;
    float *h1, *h2;
    float *n1, *n2, *n3;      /* LayerNorm outputs */
    float *mean[3], *rstd[3]; /* [M] */
    attn_acts a1, a2;
    float *ff; /* ff.net.0.proj output [M, 2F] */
    float *gg; /* GEGLU output [M, F] */
} transformer_block_acts;

typedef struct transformer2d_acts {
    const float *x;
    float *gn, *gmean, *grstd;      /* GroupNorm output and statistics [B, G] */
    float *h_in;                    /* proj_in output = block 0's h0 */
    float *h_out;                   /* last block's output = proj_out input */
    transformer_block_acts *blocks; /* n_blocks, allocated from keep */
} transformer2d_acts;

/* out[B, HW, C] from x[B, HW, C] and text[B, Nt, Dt]; out must not alias x.
 * With acts, what backward reads is allocated from `keep`. */
int transformer2d_forward(const transformer2d *t, const cnet_params *p, cnet_arena *scratch,
                          float *out, const float *x, const float *text, int B, int HW, int Nt,
                          cnet_arena *keep, transformer2d_acts *acts, cnet_error *err);
/* dx (overwrite) from dout; no gradient to the text states. */
int transformer2d_backward(const transformer2d *t, const cnet_params *p, const cnet_params *g,
                           cnet_arena *scratch, float *dx, const float *dout,
                           const transformer2d_acts *acts, int B, int HW, cnet_error *err);

#endif
