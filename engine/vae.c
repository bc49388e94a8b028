/* AutoencoderKL encoder / decoder forward; see vae.h. */
#include "vae.h"

#include <stdio.h>
#include <string.h>

#define VAE_EPS 1e-6f

static int mid_declare(vae_mid *m, cnet_params *p, const char *half, const vae_layout *L,
                       cnet_error *err) {
    char pre[NN_NAME_BUF];
    const int C = L->channels[L->levels - 1];
    int rc;
    m->channels = C, m->has_attn = L->mid_attention;
    snprintf(pre, sizeof pre, "%s.mid_block.resnets.0", half);
    if ((rc = resnet_declare(&m->res0, p, pre, C, C, 0, L->groups, VAE_EPS, 1.0f, err))) return rc;
    if (m->has_attn) {
        snprintf(pre, sizeof pre, "%s.mid_block.attentions.0.group_norm", half);
        if ((rc = nn_group_norm_declare(&m->attn_norm, p, pre, C, L->groups, VAE_EPS, err)))
            return rc;
        snprintf(pre, sizeof pre, "%s.mid_block.attentions.0", half);
        if ((rc = attn_declare(&m->attn, p, pre, C, C, 1, C, 1, err))) return rc;
    }
    snprintf(pre, sizeof pre, "%s.mid_block.resnets.1", half);
    return resnet_declare(&m->res1, p, pre, C, C, 0, L->groups, VAE_EPS, 1.0f, err);
}

static int encoder_declare(vae_half *e, cnet_params *p, const vae_layout *L, cnet_error *err) {
    char pre[NN_NAME_BUF];
    int rc;
    if ((rc = nn_conv_declare(&e->conv_in, p, "encoder.conv_in", L->in_channels, L->channels[0], 3,
                              1, 1, err)))
        return rc;
    for (int i = 0; i < L->levels; i++) {
        int in = i == 0 ? L->channels[0] : L->channels[i - 1], out = L->channels[i];
        for (int j = 0; j < L->layers; j++) {
            snprintf(pre, sizeof pre, "encoder.down_blocks.%d.resnets.%d", i, j);
            if ((rc = resnet_declare(&e->res[i][j], p, pre, j == 0 ? in : out, out, 0, L->groups,
                                     VAE_EPS, 1.0f, err)))
                return rc;
        }
        if (i < L->levels - 1) {
            snprintf(pre, sizeof pre, "encoder.down_blocks.%d.downsamplers.0.conv", i);
            if ((rc = nn_conv_declare(&e->resample[i], p, pre, out, out, 3, 2, 0, err))) return rc;
            /* Downsample2D(padding=0) pads (left 0, right 1, top 0, bottom 1). */
            e->resample[i].pad_bottom = e->resample[i].pad_right = 1;
        }
    }
    const int top = L->channels[L->levels - 1], L2 = 2 * L->latent_channels;
    if ((rc = mid_declare(&e->mid, p, "encoder", L, err)) ||
        (rc = nn_group_norm_declare(&e->norm_out, p, "encoder.conv_norm_out", top, L->groups,
                                    VAE_EPS, err)) ||
        (rc = nn_conv_declare(&e->conv_out, p, "encoder.conv_out", top, L2, 3, 1, 1, err)) ||
        (rc = nn_conv_declare(&e->sample, p, "quant_conv", L2, L2, 1, 1, 0, err)))
        return rc;
    return 0;
}

static int decoder_declare(vae_half *d, cnet_params *p, const vae_layout *L, cnet_error *err) {
    char pre[NN_NAME_BUF];
    const int n = L->levels, top = L->channels[n - 1], Lc = L->latent_channels;
    int rc;
    if ((rc = nn_conv_declare(&d->sample, p, "post_quant_conv", Lc, Lc, 1, 1, 0, err)) ||
        (rc = nn_conv_declare(&d->conv_in, p, "decoder.conv_in", Lc, top, 3, 1, 1, err)) ||
        (rc = mid_declare(&d->mid, p, "decoder", L, err)))
        return rc;
    int prev = top;
    for (int i = 0; i < n; i++) {
        int out = L->channels[n - 1 - i];
        for (int j = 0; j <= L->layers; j++) {
            snprintf(pre, sizeof pre, "decoder.up_blocks.%d.resnets.%d", i, j);
            if ((rc = resnet_declare(&d->res[i][j], p, pre, j == 0 ? prev : out, out, 0, L->groups,
                                     VAE_EPS, 1.0f, err)))
                return rc;
        }
        if (i < n - 1) {
            snprintf(pre, sizeof pre, "decoder.up_blocks.%d.upsamplers.0.conv", i);
            if ((rc = nn_conv_declare(&d->resample[i], p, pre, out, out, 3, 1, 1, err))) return rc;
        }
        prev = out;
    }
    if ((rc = nn_group_norm_declare(&d->norm_out, p, "decoder.conv_norm_out", L->channels[0],
                                    L->groups, VAE_EPS, err)) ||
        (rc = nn_conv_declare(&d->conv_out, p, "decoder.conv_out", L->channels[0], L->out_channels,
                              3, 1, 1, err)))
        return rc;
    return 0;
}

int vae_init(vae_model *m, cnet_backend *be, const vae_layout *L, cnet_error *err) {
    int rc;
    memset(m, 0, sizeof *m);
    params_init(&m->params, be);
    if (L->levels < 1 || L->levels > VAE_MAX_LEVELS || L->layers < 1 || L->layers > VAE_MAX_LAYERS)
        return cnet_fail(err, CNET_EINVAL, "vae: %d levels of %d layers (supported 1..%d, 1..%d)",
                         L->levels, L->layers, VAE_MAX_LEVELS, VAE_MAX_LAYERS);
    m->layout = *L;
    if ((rc = encoder_declare(&m->enc, &m->params, L, err)) ||
        (rc = decoder_declare(&m->dec, &m->params, L, err)))
        return rc;
    return params_alloc(&m->params, err);
}

void vae_free(vae_model *m) { params_free(&m->params); }

int vae_load(vae_model *m, const char *path, cnet_error *err) {
    return params_load(&m->params, path, err);
}

int vae_factor(const vae_model *m) { return 1 << (m->layout.levels - 1); }

size_t vae_scratch_bytes(const vae_model *m, int B, int H, int W) {
    const vae_layout *L = &m->layout;
    size_t widest = L->in_channels > L->out_channels ? L->in_channels : L->out_channels;
    for (int i = 0; i < L->levels; i++)
        if ((size_t)L->channels[i] > widest) widest = L->channels[i];
    /* Resolution only shrinks from the image size: bound every activation
     * by the full-resolution widest one; 8 of them at once at most
     * (ping-pong, resnet temporaries, attention q/k/v/out). */
    size_t act = (size_t)B * H * W * widest;
    return 8 * act * sizeof(float) + 64 * CNET_ARENA_ALIGN;
}

static int mid_forward(const vae_mid *m, const cnet_params *p, cnet_arena *scratch, float *out,
                       const float *x, int B, int H, int W, cnet_error *err) {
    cnet_backend *be = p->be;
    const long n = (long)B * H * W * m->channels;
    size_t mark = cnet_arena_mark(scratch);
    float *a = cnet_arena_alloc(scratch, (size_t)n * sizeof(float), err);
    float *b = cnet_arena_alloc(scratch, (size_t)n * sizeof(float), err);
    int rc = !a || !b ? (err ? err->code : CNET_ENOMEM) : 0;
    if (!rc) rc = resnet_forward(&m->res0, p, scratch, a, x, NULL, B, H, W, err);
    if (!rc && m->has_attn) {
        nn_group_norm_forward(&m->attn_norm, p, b, a, B, H * W, 0);
        rc = attn_forward(&m->attn, p, scratch, out, b, NULL, B, H * W, 0, err);
        if (!rc) be->add(be, a, a, out, n); /* residual_connection */
    }
    if (!rc) rc = resnet_forward(&m->res1, p, scratch, out, a, NULL, B, H, W, err);
    cnet_arena_restore(scratch, mark);
    return rc;
}

/* The widest activation of the half, for ping-pong buffers. */
static size_t widest_floats(const vae_layout *L, int B, int H, int W) {
    size_t c = L->in_channels > L->out_channels ? L->in_channels : L->out_channels;
    for (int i = 0; i < L->levels; i++)
        if ((size_t)L->channels[i] > c) c = L->channels[i];
    return (size_t)B * H * W * c;
}

int vae_encode(vae_model *m, cnet_arena *scratch, float *moments, const float *x, int B, int H,
               int W, cnet_error *err) {
    const vae_layout *L = &m->layout;
    const vae_half *e = &m->enc;
    const cnet_params *p = &m->params;
    const int f = vae_factor(m);
    if (H % f || W % f)
        return cnet_fail(err, CNET_EINVAL, "vae: image %dx%d is not a multiple of %d", W, H, f);
    size_t mark = cnet_arena_mark(scratch);
    size_t cap = widest_floats(L, B, H, W);
    float *a = cnet_arena_alloc(scratch, cap * sizeof(float), err);
    float *b = cnet_arena_alloc(scratch, cap * sizeof(float), err);
    int rc = !a || !b ? (err ? err->code : CNET_ENOMEM) : 0;
    if (rc) goto done;
    nn_conv_forward(&e->conv_in, p, a, x, B, H, W);
    for (int i = 0; i < L->levels && !rc; i++) {
        for (int j = 0; j < L->layers && !rc; j++) {
            rc = resnet_forward(&e->res[i][j], p, scratch, b, a, NULL, B, H, W, err);
            float *t = a;
            a = b, b = t;
        }
        if (!rc && i < L->levels - 1) {
            nn_conv_forward(&e->resample[i], p, b, a, B, H, W);
            float *t = a;
            a = b, b = t;
            H /= 2, W /= 2;
        }
    }
    if (!rc) rc = mid_forward(&e->mid, p, scratch, b, a, B, H, W, err);
    if (rc) goto done;
    nn_group_norm_forward(&e->norm_out, p, a, b, B, H * W, 1);
    nn_conv_forward(&e->conv_out, p, b, a, B, H, W);
    nn_conv_forward(&e->sample, p, moments, b, B, H, W);
done:
    cnet_arena_restore(scratch, mark);
    return rc;
}

int vae_decode(vae_model *m, cnet_arena *scratch, float *x, const float *z, int B, int h, int w,
               cnet_error *err) {
    const vae_layout *L = &m->layout;
    const vae_half *d = &m->dec;
    const cnet_params *p = &m->params;
    cnet_backend *be = p->be;
    const int f = vae_factor(m), n = L->levels;
    size_t mark = cnet_arena_mark(scratch);
    size_t cap = widest_floats(L, B, h * f, w * f);
    float *a = cnet_arena_alloc(scratch, cap * sizeof(float), err);
    float *b = cnet_arena_alloc(scratch, cap * sizeof(float), err);
    int rc = !a || !b ? (err ? err->code : CNET_ENOMEM) : 0;
    int H = h, W = w;
    if (rc) goto done;
    nn_conv_forward(&d->sample, p, b, z, B, H, W);
    nn_conv_forward(&d->conv_in, p, a, b, B, H, W);
    rc = mid_forward(&d->mid, p, scratch, b, a, B, H, W, err);
    {
        float *t = a;
        a = b, b = t;
    }
    for (int i = 0; i < n && !rc; i++) {
        const int C = L->channels[n - 1 - i];
        for (int j = 0; j <= L->layers && !rc; j++) {
            rc = resnet_forward(&d->res[i][j], p, scratch, b, a, NULL, B, H, W, err);
            float *t = a;
            a = b, b = t;
        }
        if (!rc && i < n - 1) {
            be->upsample2x_forward(be, b, a, B, H, W, C);
            H *= 2, W *= 2;
            nn_conv_forward(&d->resample[i], p, a, b, B, H, W);
        }
    }
    if (rc) goto done;
    nn_group_norm_forward(&d->norm_out, p, b, a, B, H * W, 1);
    nn_conv_forward(&d->conv_out, p, x, b, B, H, W);
done:
    cnet_arena_restore(scratch, mark);
    return rc;
}
