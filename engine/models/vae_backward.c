/* AutoencoderKL backward (the encoder's and the decoder's, every
 * parameter), from the activations a training forward kept (vae.h): the
 * chain of engine/models/vae.c's forward run in reverse through the block
 * backward passes the UNet uses (resnet_backward, attn_backward,
 * nn_group_norm_backward, nn_conv_backward, upsample2x_backward). Not here:
 * the DiagonalGaussian sample and the loss (engine/train/train_vae_loss.h). */
#include "engine/models/vae.h"

/* Two gradient buffers of n floats each, swapped as the chain runs back. */
typedef struct grad_pair {
    float *cur, *next;
} grad_pair;

static void pair_swap(grad_pair *g) {
    float *t = g->cur;
    g->cur = g->next, g->next = t;
}

static int arena_rc(const cnet_error *err) { return err ? err->code : CNET_ENOMEM; }

/* out = res1(a), a = r0 + attn(gn(r0)), r0 = res0(x): dx from dout. */
static int mid_backward(const vae_mid *m, const cnet_params *p, const cnet_params *g,
                        cnet_arena *scratch, float *dx, const float *dout, const vae_mid_acts *acts,
                        int B, int H, int W, cnet_error *err) {
    cnet_backend *be = p->be;
    const long n = (long)B * H * W * m->channels;
    size_t mark = cnet_arena_mark(scratch);
    float *da = cnet_arena_alloc(scratch, (size_t)n * sizeof(float), err);
    float *dn = cnet_arena_alloc(scratch, (size_t)n * sizeof(float), err);
    float *dr = cnet_arena_alloc(scratch, (size_t)n * sizeof(float), err);
    int rc = !da || !dn || !dr ? arena_rc(err) : 0;
    if (!rc)
        rc = resnet_backward(&m->res1, p, g, scratch, da, NULL, dout, &acts->res1, B, H, W, err);
    if (!rc && m->has_attn) {
        rc = attn_backward(&m->attn, p, g, scratch, dn, da, &acts->attn, B, H * W, err);
        if (!rc) {
            nn_group_norm_backward(&m->attn_norm, p, g, dr, dn, acts->r0, acts->mean, acts->rstd, B,
                                   H * W, 0);
            be->add(be, da, da, dr, n);
        }
    }
    if (!rc) rc = resnet_backward(&m->res0, p, g, scratch, dx, NULL, da, &acts->res0, B, H, W, err);
    cnet_arena_restore(scratch, mark);
    return rc;
}

/* The widest activation of a half at full resolution. */
static size_t widest(const cnet_vae_config *L, int B, int H, int W) {
    size_t c = L->in_channels > L->out_channels ? L->in_channels : L->out_channels;
    if ((size_t)2 * L->latent_channels > c) c = 2 * L->latent_channels;
    for (int i = 0; i < L->n_blocks; i++)
        if ((size_t)L->block_out_channels[i] > c) c = L->block_out_channels[i];
    return (size_t)B * H * W * c;
}

int vae_encoder_backward(vae_model *m, const cnet_params *g, cnet_arena *scratch,
                         const float *dmoments, const vae_half_acts *acts, int B, int H, int W,
                         cnet_error *err) {
    const cnet_vae_config *L = &m->cfg;
    const vae_half *e = &m->enc;
    const cnet_params *p = &m->params;
    const int n = L->n_blocks, f = vae_factor(m);
    const int h = H / f, w = W / f;
    const size_t cap = widest(L, B, H, W);
    size_t mark = cnet_arena_mark(scratch);
    grad_pair d = {cnet_arena_alloc(scratch, cap * sizeof(float), err),
                   cnet_arena_alloc(scratch, cap * sizeof(float), err)};
    int rc = !d.cur || !d.next ? arena_rc(err) : 0;
    if (rc) goto done;
    const float *dconv = dmoments;
    if (e->has_sample) { /* moments = quant_conv(conv_out(act)) */
        nn_conv_backward(&e->sample, p, g, d.cur, dmoments, acts->sample_in, B, h, w);
        dconv = d.cur;
    }
    nn_conv_backward(&e->conv_out, p, g, d.next, dconv, acts->act, B, h, w);
    nn_group_norm_backward(&e->norm_out, p, g, d.cur, d.next, acts->norm_in, acts->norm_mean,
                           acts->norm_rstd, B, h * w, 1);
    rc = mid_backward(&e->mid, p, g, scratch, d.next, d.cur, &acts->mid, B, h, w, err);
    pair_swap(&d);
    for (int i = n - 1; i >= 0 && !rc; i--) {
        const int Hi = H >> i, Wi = W >> i;
        if (i < n - 1) { /* the downsampler runs at level i's resolution */
            nn_conv_backward(&e->resample[i], p, g, d.next, d.cur, acts->resample_in[i], B, Hi, Wi);
            pair_swap(&d);
        }
        for (int j = L->layers_per_block - 1; j >= 0 && !rc; j--) {
            rc = resnet_backward(&e->res[i][j], p, g, scratch, d.next, NULL, d.cur,
                                 &acts->res[i][j], B, Hi, Wi, err);
            pair_swap(&d);
        }
    }
    if (!rc) nn_conv_backward(&e->conv_in, p, g, NULL, d.cur, acts->in, B, H, W);
done:
    cnet_arena_restore(scratch, mark);
    return rc;
}

int vae_decoder_backward(vae_model *m, const cnet_params *g, cnet_arena *scratch, float *dz,
                         const float *dx, const vae_half_acts *acts, int B, int h, int w,
                         cnet_error *err) {
    const cnet_vae_config *L = &m->cfg;
    const vae_half *d = &m->dec;
    const cnet_params *p = &m->params;
    cnet_backend *be = p->be;
    const int n = L->n_blocks, f = vae_factor(m);
    const size_t cap = widest(L, B, h * f, w * f);
    size_t mark = cnet_arena_mark(scratch);
    grad_pair gp = {cnet_arena_alloc(scratch, cap * sizeof(float), err),
                    cnet_arena_alloc(scratch, cap * sizeof(float), err)};
    int rc = !gp.cur || !gp.next ? arena_rc(err) : 0;
    if (rc) goto done;
    nn_conv_backward(&d->conv_out, p, g, gp.next, dx, acts->act, B, h * f, w * f);
    nn_group_norm_backward(&d->norm_out, p, g, gp.cur, gp.next, acts->norm_in, acts->norm_mean,
                           acts->norm_rstd, B, h * f * w * f, 1);
    for (int i = n - 1; i >= 0 && !rc; i--) {
        const int Hi = h << i, Wi = w << i, C = L->block_out_channels[n - 1 - i];
        if (i < n - 1) { /* conv at 2x after the nearest upsample */
            nn_conv_backward(&d->resample[i], p, g, gp.next, gp.cur, acts->resample_in[i], B,
                             2 * Hi, 2 * Wi);
            be->upsample2x_backward(be, gp.cur, gp.next, B, Hi, Wi, C);
        }
        for (int j = L->layers_per_block; j >= 0 && !rc; j--) {
            rc = resnet_backward(&d->res[i][j], p, g, scratch, gp.next, NULL, gp.cur,
                                 &acts->res[i][j], B, Hi, Wi, err);
            pair_swap(&gp);
        }
    }
    if (!rc) rc = mid_backward(&d->mid, p, g, scratch, gp.next, gp.cur, &acts->mid, B, h, w, err);
    if (rc) goto done;
    if (d->has_sample) { /* conv_in(post_quant_conv(z)) */
        nn_conv_backward(&d->conv_in, p, g, gp.cur, gp.next, acts->in, B, h, w);
        nn_conv_backward(&d->sample, p, g, dz, gp.cur, acts->sample_in, B, h, w);
    } else {
        nn_conv_backward(&d->conv_in, p, g, dz, gp.next, acts->in, B, h, w);
    }
done:
    cnet_arena_restore(scratch, mark);
    return rc;
}
