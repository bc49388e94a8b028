/* AutoencoderKL (diffusers models/autoencoders/autoencoder_kl.py and vae.py:
 * Encoder, Decoder, DiagonalGaussianDistribution), NHWC: the forward, and a
 * training forward that keeps what the backward (vae_backward.c, for
 * cnet train-vae) reads. The DiagonalGaussian sample and its KL term are
 * the trainer's (engine/train/train_vae_loss.h).
 *
 *   encode: moments = quant_conv(conv_out(silu(norm(mid(down(conv_in(x)))))))
 *           mean = moments[..., :L], logvar = clamp(moments[..., L:], -30, 20),
 *           std = exp(logvar / 2)
 *   decode: x = conv_out(silu(norm(up(mid(conv_in(post_quant_conv(z)))))))
 *
 * Down blocks are DownEncoderBlock2D (resnets, then a stride-2 conv padded
 * only right and bottom), up blocks UpDecoderBlock2D (layers+1 resnets, then
 * nearest 2x + conv); the mid block is resnet, single-head attention with
 * its own GroupNorm and residual, resnet. Every norm has eps 1e-6.
 * Sizes: B batch, H/W image, h/w latent (= H / 2^(levels-1)), L latent
 * channels. */
#ifndef CNET_VAE_H
#define CNET_VAE_H

#include "engine/models/attention.h"
#include "engine/config/config.h"
#include "engine/models/resnet.h"

#define VAE_MAX_LEVELS CNET_MAX_BLOCKS
#define VAE_MAX_LAYERS 8

typedef struct vae_mid {
    resnet_block res0, res1;
    nn_norm attn_norm;
    attn_module attn;
    int has_attn, channels;
} vae_mid;

/* What the mid block's backward reads (from a training forward's keep). */
typedef struct vae_mid_acts {
    resnet_acts res0, res1;
    float *r0;          /* res0's output: the attention's GroupNorm input */
    float *mean, *rstd; /* that GroupNorm's statistics [B, groups] */
    attn_acts attn;
} vae_mid_acts;

/* What an encoder's or a decoder's backward reads. in and (the encoder's)
 * input image are borrowed; the rest lives in the keep arena. */
typedef struct vae_half_acts {
    const float *in;        /* conv_in's input */
    const float *sample_in; /* quant_conv's / post_quant_conv's input */
    resnet_acts res[VAE_MAX_LEVELS][VAE_MAX_LAYERS + 1];
    const float *resample_in[VAE_MAX_LEVELS]; /* the downsampler's / upsampled conv's input */
    vae_mid_acts mid;
    const float *norm_in;         /* conv_norm_out's input */
    float *norm_mean, *norm_rstd; /* its statistics */
    float *act;                   /* silu(conv_norm_out(norm_in)): conv_out's input */
} vae_half_acts;

typedef struct vae_half {              /* an encoder or a decoder */
    nn_conv conv_in, conv_out, sample; /* sample: quant_conv / post_quant_conv */
    int has_sample;
    resnet_block res[VAE_MAX_LEVELS][VAE_MAX_LAYERS + 1];
    nn_conv resample[VAE_MAX_LEVELS]; /* downsampler / upsampler conv */
    vae_mid mid;
    nn_norm norm_out;
} vae_half;

typedef struct vae_model {
    cnet_params params;
    cnet_vae_config cfg;
    vae_half enc, dec;
} vae_model;

/* Declares the parameters (names and shapes) without allocating them;
 * vae_init also allocates. */
int vae_declare(vae_model *m, cnet_backend *be, const cnet_vae_config *cfg, cnet_error *err);
int vae_init(vae_model *m, cnet_backend *be, const cnet_vae_config *cfg, cnet_error *err);
void vae_free(vae_model *m);
int vae_factor(const vae_model *m); /* H / h */
size_t vae_scratch_bytes(const vae_model *m, int B, int H, int W);
/* Activations a training forward keeps besides the per-level resnets': the
 * mid block's and conv_norm_out's. */
#define VAE_MID_KEPT 20
/* An upper bound of the keep arena one vae_encode_train + vae_decode_train
 * of images [B, H, W] fill. */
size_t vae_train_keep_bytes(const vae_model *m, int B, int H, int W);

/* x [B,H,W,in] -> moments [B,h,w,2L] (mean | logvar before clamping). */
int vae_encode(vae_model *m, cnet_arena *scratch, float *moments, const float *x, int B, int H,
               int W, cnet_error *err);
/* z [B,h,w,L] (already divided by scaling_factor) -> x [B,H,W,out]. */
int vae_decode(vae_model *m, cnet_arena *scratch, float *x, const float *z, int B, int h, int w,
               cnet_error *err);

/* The same forwards keeping their activations in `keep` (acts records
 * them) for the backward below. */
int vae_encode_train(vae_model *m, cnet_arena *scratch, float *moments, const float *x, int B,
                     int H, int W, cnet_arena *keep, vae_half_acts *acts, cnet_error *err);
int vae_decode_train(vae_model *m, cnet_arena *scratch, float *x, const float *z, int B, int h,
                     int w, cnet_arena *keep, vae_half_acts *acts, cnet_error *err);

/* Backward of vae_encode_train from dmoments [B,h,w,2L] (the gradient of
 * the moments before the logvar clamp) into g, the gradient table of
 * m->params (gradients accumulate); the image gets no gradient. */
int vae_encoder_backward(vae_model *m, const cnet_params *g, cnet_arena *scratch,
                         const float *dmoments, const vae_half_acts *acts, int B, int H, int W,
                         cnet_error *err);
/* Backward of vae_decode_train from dx [B,H,W,out] into g (accumulates) and
 * dz [B,h,w,L] (overwritten). */
int vae_decoder_backward(vae_model *m, const cnet_params *g, cnet_arena *scratch, float *dz,
                         const float *dx, const vae_half_acts *acts, int B, int h, int w,
                         cnet_error *err);

/* Loads a diffusers component folder: config.json and its weights
 * (engine/config/model_files.h). On failure m is left freed. */
int vae_open(vae_model *m, cnet_backend *be, const char *dir, cnet_error *err);

#endif
