/* DPTForDepthEstimation's forward (transformers v4.38 modeling_dpt.py):
 * DPTViTEmbeddings, DPTViTLayer x layers, DPTReassembleStage ("project"),
 * DPTNeck's convs, DPTFeatureFusionStage, DPTDepthEstimationHead; see
 * dpt.h. Buffers are allocated per call (an annotator runs once per
 * picture) and freed before it returns. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/annotators/dpt.h"
#include "engine/annotators/dpt_host.h"

/* Backend buffers one forward holds at most (see forward_all). */
#define DPT_BUFS_MAX 96
/* Largest side of the input accepted (pixels). */
#define DPT_SIDE_MAX 8192

typedef struct bufs {
    cnet_backend *be;
    void *ptr[DPT_BUFS_MAX];
    int n;
    cnet_error *err;
    int rc; /* the status of the allocation that failed */
} bufs;

static float *bufs_get(bufs *b, size_t floats) {
    if (b->n == DPT_BUFS_MAX) {
        b->rc = cnet_fail(b->err, CNET_ELIMIT, "dpt: more than %d buffers", DPT_BUFS_MAX);
        return NULL;
    }
    float *p = b->be->alloc(b->be, floats * sizeof(float));
    if (!p) {
        b->rc = cnet_fail(b->err, CNET_ENOMEM, "dpt: out of backend memory (%zu floats)", floats);
        return NULL;
    }
    return b->ptr[b->n++] = p;
}

static void bufs_free(bufs *b) {
    for (int i = 0; i < b->n; i++) b->be->free(b->be, b->ptr[i]);
    b->n = 0;
}

/* Side of stage i's feature map for a grid side g. */
static int stage_side(const dpt_config *c, int i, int g) {
    if (c->up[i] > 1) return g * c->up[i];
    if (c->down[i] > 1) return (g - 1) / c->down[i] + 1; /* 3x3, padding 1 */
    return g;
}

int dpt_output_size(const dpt_model *m, int H, int W, int *out_h, int *out_w, cnet_error *err) {
    const int P = m->cfg.patch;
    if (H < P || W < P || H > DPT_SIDE_MAX || W > DPT_SIDE_MAX || H % P || W % P)
        return cnet_fail(err, CNET_EINVAL,
                         "dpt: a %dx%d input; the sides must be multiples of the patch size %d "
                         "in [%d, %d]",
                         W, H, P, P, DPT_SIDE_MAX);
    /* Each fusion layer doubles the last stage's map, then the head. */
    *out_h = stage_side(&m->cfg, DPT_STAGES - 1, H / P) << (DPT_STAGES + 1);
    *out_w = stage_side(&m->cfg, DPT_STAGES - 1, W / P) << (DPT_STAGES + 1);
    return 0;
}

static void tap(cnet_backend *be, float *host, const float *dev, size_t n) {
    if (host) be->download(be, host, dev, n * sizeof(float));
}

/* h [T, D] = [cls; patches] + the position table interpolated to gh x gw. */
static int embed(dpt_model *m, bufs *b, float *h, const float *pixels, int H, int W) {
    cnet_backend *be = m->params.be;
    const cnet_params *p = &m->params;
    const int D = m->cfg.hidden, gh = H / m->cfg.patch, gw = W / m->cfg.patch, n0 = m->pos_grid;
    const size_t N = (size_t)gh * gw;
    float *px = bufs_get(b, (size_t)H * W * 3), *x = px ? bufs_get(b, N * D) : NULL;
    if (!x) return b->rc;
    be->upload(be, px, pixels, (size_t)H * W * 3 * sizeof(float));
    nn_conv_forward(&m->patch, p, x, px, 1, H, W);
    const size_t n_pos = (1 + (size_t)n0 * n0) * D;
    float *host = malloc(((N + 1) * D + n_pos + N * D + D) * sizeof *host);
    if (!host) return cnet_fail(b->err, CNET_ENOMEM, "dpt: out of memory (embeddings)");
    float *pos = host + (N + 1) * D, *grid = pos + n_pos, *cls = grid + N * D;
    be->download(be, host + D, x, N * D * sizeof *host);
    be->download(be, pos, nn_param(p, m->position), n_pos * sizeof *host);
    be->download(be, cls, nn_param(p, m->cls_token), (size_t)D * sizeof *host);
    dpt_bilinear(grid, gh, gw, pos + D, n0, n0, D, 0);
    for (int k = 0; k < D; k++) host[k] = cls[k] + pos[k];
    for (size_t i = 0; i < N * D; i++) host[D + i] += grid[i];
    be->upload(be, h, host, (N + 1) * D * sizeof *host);
    free(host);
    return 0;
}

/* The encoder's activations. */
typedef struct enc_acts {
    float *x, *q, *k, *v, *att, *mlp;
} enc_acts;

/* h = DPTViTLayer l (h), pre-norm. */
static void layer_forward(dpt_model *m, int l, float *h, const enc_acts *a, int T) {
    cnet_backend *be = m->params.be;
    const cnet_params *p = &m->params;
    const int D = m->cfg.hidden, H = m->cfg.heads;
    const dpt_layer *L = &m->layers[l];
    nn_layer_norm_forward(&L->ln_before, p, a->x, h, T);
    nn_linear_forward(&L->q, p, a->q, a->x, T);
    nn_linear_forward(&L->k, p, a->k, a->x, T);
    nn_linear_forward(&L->v, p, a->v, a->x, T);
    be->attention_forward(be, a->att, NULL, a->q, a->k, a->v, 1, T, T, H, D / H,
                          1.0f / sqrtf((float)(D / H)), 0);
    nn_linear_forward(&L->out, p, a->x, a->att, T);
    be->add(be, h, h, a->x, (long)T * D);
    nn_layer_norm_forward(&L->ln_after, p, a->x, h, T);
    nn_linear_forward(&L->fc1, p, a->mlp, a->x, T);
    be->gelu_forward(be, a->mlp, a->mlp, (long)T * m->cfg.intermediate);
    nn_linear_forward(&L->fc2, p, a->x, a->mlp, T);
    be->add(be, h, h, a->x, (long)T * D);
}

/* feats[i] [T, D]: the outputs of the layers backbone_out_indices names. */
static int encode(dpt_model *m, bufs *b, float *feats[DPT_STAGES], const float *pixels, int H,
                  int W, dpt_taps *taps) {
    cnet_backend *be = m->params.be;
    const int D = m->cfg.hidden, T = 1 + (H / m->cfg.patch) * (W / m->cfg.patch);
    const size_t act = (size_t)T * D;
    enc_acts a;
    float *h = bufs_get(b, act);
    if (!h || !(a.x = bufs_get(b, act)) || !(a.q = bufs_get(b, act)) || !(a.k = bufs_get(b, act)) ||
        !(a.v = bufs_get(b, act)) || !(a.att = bufs_get(b, act)) ||
        !(a.mlp = bufs_get(b, (size_t)T * m->cfg.intermediate)))
        return b->rc;
    for (int i = 0; i < DPT_STAGES; i++)
        if (!(feats[i] = bufs_get(b, act))) return b->rc;
    int rc = embed(m, b, h, pixels, H, W);
    if (rc) return rc;
    tap(be, taps ? taps->embeddings : NULL, h, act);
    for (int l = 0; l < m->cfg.layers; l++) {
        layer_forward(m, l, h, &a, T);
        for (int i = 0; i < DPT_STAGES; i++)
            if (m->cfg.out_indices[i] == l) be->copy(be, feats[i], h, act * sizeof(float));
    }
    for (int i = 0; taps && i < DPT_STAGES; i++) tap(be, taps->backbone[i], feats[i], act);
    return 0;
}

/* out [s*s', F]: DPTReassembleLayer i of tokens [T, D] (readout "project"),
 * then neck.convs[i]. *side_h, *side_w: the map's size. */
static int reassemble(dpt_model *m, bufs *b, int i, float **out, const float *tokens, int gh,
                      int gw, int *side_h, int *side_w, dpt_taps *taps) {
    cnet_backend *be = m->params.be;
    const cnet_params *p = &m->params;
    const dpt_config *c = &m->cfg;
    const int D = c->hidden, ch = c->neck[i], N = gh * gw;
    const int sh = stage_side(c, i, gh), sw = stage_side(c, i, gw);
    float *rep = bufs_get(b, (size_t)N * D), *cat = rep ? bufs_get(b, (size_t)N * 2 * D) : NULL;
    float *r = cat ? bufs_get(b, (size_t)N * D) : NULL;
    float *proj = r ? bufs_get(b, (size_t)N * ch) : NULL;
    float *map = proj ? bufs_get(b, (size_t)sh * sw * ch) : NULL;
    float *tmp = map ? bufs_get(b, (size_t)sh * sw * ch) : NULL;
    *out = tmp ? bufs_get(b, (size_t)sh * sw * c->fusion) : NULL;
    if (!*out) return b->rc;
    /* The CLS token beside every patch token: [tokens | cls]. */
    for (int t = 0; t < N; t++)
        be->copy(be, rep + (size_t)t * D, tokens, (size_t)D * sizeof(float));
    be->concat_channels(be, cat, tokens + D, rep, N, D, D);
    nn_linear_forward(&m->readout[i], p, r, cat, N);
    be->gelu_forward(be, r, r, (long)N * D);
    nn_conv_forward(&m->reassemble[i], p, proj, r, 1, gh, gw);
    int rc = 0;
    if (c->up[i] > 1)
        rc = dpt_conv_transpose_dev(be, map, tmp, proj, nn_param(p, m->resize_weight[i]),
                                    nn_param(p, m->resize_bias[i]), gh, gw, ch, ch, c->up[i],
                                    b->err);
    else if (c->down[i] > 1)
        nn_conv_forward(&m->resize_down[i], p, map, proj, 1, gh, gw);
    else
        be->copy(be, map, proj, (size_t)N * ch * sizeof(float));
    if (rc) return rc;
    tap(be, taps ? taps->reassemble[i] : NULL, map, (size_t)sh * sw * ch);
    nn_conv_forward(&m->neck_conv[i], p, *out, map, 1, sh, sw);
    *side_h = sh, *side_w = sw;
    return 0;
}

/* out = in + conv2(relu(conv1(relu(in)))): DPTPreActResidualLayer. t1, t2
 * scratch of the same size. */
static int residual(dpt_model *m, const dpt_residual *r, float *out, const float *in, float *t1,
                    float *t2, int h, int w, cnet_error *err) {
    cnet_backend *be = m->params.be;
    const long n = (long)h * w * m->cfg.fusion;
    int rc = dpt_relu_dev(be, t1, in, n, err);
    if (rc) return rc;
    nn_conv_forward(&r->conv1, &m->params, t2, t1, 1, h, w);
    if ((rc = dpt_relu_dev(be, t2, t2, n, err))) return rc;
    nn_conv_forward(&r->conv2, &m->params, t1, t2, 1, h, w);
    be->add(be, out, in, t1, n);
    return 0;
}

/* DPTFeatureFusionLayer j: fused (h x w, or NULL for the first) and the
 * stage's map (fh x fw) into *out (2h x 2w). */
static int fuse(dpt_model *m, bufs *b, int j, float **out, const float *fused, int *h, int *w,
                const float *feature, int fh, int fw, dpt_taps *taps) {
    cnet_backend *be = m->params.be;
    const int F = m->cfg.fusion;
    const dpt_fusion *L = &m->fusion[j];
    if (!fused) *h = fh, *w = fw;
    const size_t n = (size_t)*h * *w * F, n2 = 4 * n;
    float *x = bufs_get(b, n), *t1 = x ? bufs_get(b, n) : NULL, *t2 = t1 ? bufs_get(b, n) : NULL;
    float *res = t2 ? bufs_get(b, n) : NULL, *up = res ? bufs_get(b, n2) : NULL;
    *out = up ? bufs_get(b, n2) : NULL;
    if (!*out) return b->rc;
    int rc = 0;
    if (!fused)
        be->copy(be, x, feature, n * sizeof(float));
    else {
        if (fh != *h || fw != *w)
            rc = dpt_bilinear_dev(be, res, *h, *w, feature, fh, fw, F, 0, b->err);
        else
            be->copy(be, res, feature, n * sizeof(float));
        if (!rc) rc = residual(m, &L->res1, res, res, t1, t2, *h, *w, b->err);
        if (!rc) be->add(be, x, fused, res, (long)n);
    }
    if (!rc) rc = residual(m, &L->res2, x, x, t1, t2, *h, *w, b->err);
    if (!rc) rc = dpt_bilinear_dev(be, up, 2 * *h, 2 * *w, x, *h, *w, F, 1, b->err);
    if (rc) return rc;
    *h *= 2, *w *= 2;
    nn_conv_forward(&L->projection, &m->params, *out, up, 1, *h, *w);
    tap(be, taps ? taps->fused[j] : NULL, *out, n2);
    return 0;
}

/* depth [2h, 2w] (host) from the last fused map [h, w, F]. */
static int head(dpt_model *m, bufs *b, float *depth, float *x, int h, int w) {
    cnet_backend *be = m->params.be;
    const cnet_params *p = &m->params;
    const int F = m->cfg.fusion;
    const size_t n = (size_t)h * w;
    float *y = bufs_get(b, n * F), *a = y ? bufs_get(b, n * F / 2) : NULL;
    float *up = a ? bufs_get(b, 4 * n * F / 2) : NULL, *c = up ? bufs_get(b, 4 * n * 32) : NULL;
    float *d = c ? bufs_get(b, 4 * n) : NULL;
    if (!d) return b->rc;
    int rc = 0;
    if (m->cfg.add_projection) {
        nn_conv_forward(&m->head_projection, p, y, x, 1, h, w);
        if ((rc = dpt_relu_dev(be, y, y, (long)(n * F), b->err))) return rc;
        x = y;
    }
    nn_conv_forward(&m->head0, p, a, x, 1, h, w);
    if ((rc = dpt_bilinear_dev(be, up, 2 * h, 2 * w, a, h, w, F / 2, 1, b->err))) return rc;
    nn_conv_forward(&m->head2, p, c, up, 1, 2 * h, 2 * w);
    if ((rc = dpt_relu_dev(be, c, c, (long)(4 * n * 32), b->err))) return rc;
    nn_conv_forward(&m->head4, p, d, c, 1, 2 * h, 2 * w);
    if ((rc = dpt_relu_dev(be, d, d, (long)(4 * n), b->err))) return rc;
    be->download(be, depth, d, 4 * n * sizeof(float));
    return 0;
}

static int forward_all(dpt_model *m, bufs *b, float *depth, const float *pixels, int H, int W,
                       dpt_taps *taps) {
    const int gh = H / m->cfg.patch, gw = W / m->cfg.patch;
    float *feats[DPT_STAGES], *maps[DPT_STAGES], *fused = NULL;
    int sh[DPT_STAGES], sw[DPT_STAGES], h = 0, w = 0;
    int rc = encode(m, b, feats, pixels, H, W, taps);
    for (int i = 0; !rc && i < DPT_STAGES; i++)
        rc = reassemble(m, b, i, &maps[i], feats[i], gh, gw, &sh[i], &sw[i], taps);
    /* The fusion stage runs from the deepest stage up. */
    for (int j = 0; !rc && j < DPT_STAGES; j++) {
        const int i = DPT_STAGES - 1 - j;
        rc = fuse(m, b, j, &fused, fused, &h, &w, maps[i], sh[i], sw[i], taps);
    }
    return rc ? rc : head(m, b, depth, fused, h, w);
}

int dpt_forward(dpt_model *m, float *depth, const float *pixels, int H, int W, dpt_taps *taps,
                cnet_error *err) {
    int oh, ow, rc = dpt_output_size(m, H, W, &oh, &ow, err);
    if (rc) return rc;
    bufs b = {.be = m->params.be, .err = err};
    rc = forward_all(m, &b, depth, pixels, H, W, taps);
    bufs_free(&b);
    return rc;
}
