/* DPTForDepthEstimation (transformers v4.38 modeling_dpt.py, the layout of
 * Intel/dpt-large): a ViT encoder (DPTViTEmbeddings with the CLS token and
 * the position table interpolated bilinearly to the image's patch grid,
 * pre-norm DPTViTLayer), the neck (DPTReassembleStage with readout
 * "project", the 3x3 convs, DPTFeatureFusionStage of pre-activation
 * residual units) and DPTDepthEstimationHead, over the backend table. The
 * ops the table lacks (the position table's interpolation, bilinear
 * upsampling, ReLU, the transposed conv's scatter) run on host copies
 * (engine/annotators/dpt_host.c), so the model runs on any backend.
 *
 * Size legend: D hidden, T = 1 + N tokens, N = gh * gw patches of the
 * image's grid (H / patch, W / patch), F fusion channels. Activations are
 * NHWC like the rest of cnet.
 *
 * What it is not: no hybrid (BiT ResNet) backbone: dpt-hybrid-midas's
 * config (is_hybrid) is refused by name; no batch norm in the fusion
 * residuals, no readout "ignore"/"add"; no backward (an annotator is frozen).
 * One generalisation over v4.38: the tokens are reshaped to the image's own
 * patch grid (v4.38's pure-ViT path assumes a square one), the same on
 * square inputs. */
#ifndef CNET_DPT_H
#define CNET_DPT_H

#include "engine/core/backend.h"
#include "engine/core/error.h"
#include "engine/core/nn.h"
#include "engine/core/params.h"

/* The neck's stages (len(neck_hidden_sizes), backbone_out_indices). */
#define DPT_STAGES 4
/* Largest reassemble factor (its inverse for downsampling ones). */
#define DPT_FACTOR_MAX 16

typedef struct dpt_config {
    int hidden, layers, heads, intermediate, patch, image_size;
    float eps;
    int out_indices[DPT_STAGES];
    /* reassemble_factors: up > 1 (ConvTranspose2d k = stride = up), 1, or
     * a downsampling 1/down (Conv2d 3x3, stride down). */
    int up[DPT_STAGES], down[DPT_STAGES];
    int neck[DPT_STAGES]; /* neck_hidden_sizes */
    int fusion;           /* fusion_hidden_size */
    int fusion_bias;      /* use_bias_in_fusion_residual (default: no batch norm -> 1) */
    int add_projection;   /* the head's 3x3 projection + ReLU */
} dpt_config;

/* Reads <dir>/config.json; refuses what the model does not implement,
 * naming the field. */
int dpt_config_read(dpt_config *c, const char *path, cnet_error *err);

typedef struct dpt_layer {
    nn_norm ln_before, ln_after;
    nn_linear q, k, v, out, fc1, fc2;
} dpt_layer;

typedef struct dpt_residual {
    nn_conv conv1, conv2;
} dpt_residual;

typedef struct dpt_fusion {
    dpt_residual res1, res2;
    nn_conv projection;
} dpt_fusion;

typedef struct dpt_model {
    dpt_config cfg;
    cnet_params params;
    int cls_token, position; /* [1, 1, D], [1, 1 + n0*n0, D] */
    int pos_grid;            /* n0: the position table's square grid */
    nn_conv patch;
    dpt_layer *layers;
    nn_linear readout[DPT_STAGES];                          /* 2D -> D, then GELU */
    nn_conv reassemble[DPT_STAGES];                         /* 1x1 D -> neck */
    int resize_weight[DPT_STAGES], resize_bias[DPT_STAGES]; /* ConvTranspose2d [c, c, up, up] */
    nn_conv resize_down[DPT_STAGES];                        /* 3x3 stride down */
    nn_conv neck_conv[DPT_STAGES];                          /* 3x3 neck -> F, no bias */
    dpt_fusion fusion[DPT_STAGES];
    nn_conv head_projection, head0, head2, head4;
} dpt_model;

/* Loads <dir>/config.json and <dir>/model.safetensors onto be (borrowed;
 * it must outlive the model). On failure m holds nothing to free. */
int dpt_load(dpt_model *m, cnet_backend *be, const char *dir, cnet_error *err);
void dpt_free(dpt_model *m);

/* The intermediate tensors a test compares (host buffers, NHWC; any NULL is
 * skipped). Sizes: embeddings [T, D], backbone[i] [T, D], reassemble[i]
 * [gh*f_i, gw*f_i, neck_i], fused[i] [the i-th fusion output, F]. */
typedef struct dpt_taps {
    float *embeddings;
    float *backbone[DPT_STAGES];
    float *reassemble[DPT_STAGES];
    float *fused[DPT_STAGES];
} dpt_taps;

/* The depth map's size for an H x W input: the last stage's map doubled by
 * each fusion layer and by the head (H x W for dpt-large's patch 16 and
 * factor 0.5). Refuses sides that are not multiples of the patch size. */
int dpt_output_size(const dpt_model *m, int H, int W, int *out_h, int *out_w, cnet_error *err);

/* depth [out_h, out_w] (host) from pixels [H, W, 3] (host, already
 * normalised: (x / 255 - 0.5) / 0.5). H and W must be multiples of the
 * patch size. taps may be NULL. */
int dpt_forward(dpt_model *m, float *depth, const float *pixels, int H, int W, dpt_taps *taps,
                cnet_error *err);

#endif
