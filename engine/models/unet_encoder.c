/* The shared UNet / ControlNet encoder, forward and backward; see
 * unet_encoder.h. */
#include "engine/models/unet_encoder.h"

#include <string.h>

/* diffusers get_timestep_embedding's max_period. */
#define TIMESTEP_MAX_PERIOD 10000.0f

int unet_encoder_declare(unet_encoder *e, cnet_params *p, const cnet_unet_config *L,
                         cnet_error *err) {
    int rc;
    memset(e, 0, sizeof *e);
    e->cfg = *L;
    const int C0 = L->block_out_channels[0];
    e->temb_channels = 4 * C0;
    if ((rc = nn_conv_declare(&e->conv_in, p, "conv_in", L->in_channels, C0, L->conv_in_kernel, 1,
                              (L->conv_in_kernel - 1) / 2, err)) ||
        (rc = nn_linear_declare(&e->time_linear_1, p, "time_embedding.linear_1", C0,
                                e->temb_channels, 1, err)) ||
        (rc = nn_linear_declare(&e->time_linear_2, p, "time_embedding.linear_2", e->temb_channels,
                                e->temb_channels, 1, err)))
        return rc;
    if (L->add_text_time && ((rc = nn_linear_declare(&e->add_linear_1, p, "add_embedding.linear_1",
                                                     L->projection_class_embeddings_input_dim,
                                                     e->temb_channels, 1, err)) ||
                             (rc = nn_linear_declare(&e->add_linear_2, p, "add_embedding.linear_2",
                                                     e->temb_channels, e->temb_channels, 1, err))))
        return rc;
    for (int i = 0; i < L->n_blocks; i++)
        if ((rc = unet_down_declare(&e->down[i], p, L, i, e->temb_channels, err))) return rc;
    return unet_mid_declare(&e->mid, p, L, e->temb_channels, err);
}

void unet_encoder_free(unet_encoder *e) {
    for (int i = 0; i < UNET_MAX_LEVELS; i++) unet_down_free(&e->down[i]);
    unet_mid_free(&e->mid);
}

int unet_encoder_sizes(const unet_encoder *e, int B, int h, int w, unet_sizes *s, cnet_error *err) {
    const cnet_unet_config *L = &e->cfg;
    int factor = 1 << (L->n_blocks - 1);
    if (h < 1 || w < 1 || h % factor || w % factor)
        return cnet_fail(err, CNET_EINVAL,
                         "latent size %dx%d: height and width must be multiples of %d for a "
                         "%d-level UNet (image size multiples of %d with an 8x VAE)",
                         h, w, factor, L->n_blocks, 8 * factor);
    memset(s, 0, sizeof *s);
    int H = h, W = w, n = 0;
#define PUSH_SKIP(C)                                                                               \
    (s->skip_h[n] = H, s->skip_w[n] = W, s->skip_floats[n++] = (size_t)B * H * W * (C))
    PUSH_SKIP(L->block_out_channels[0]);
    s->max_floats =
        (size_t)B * H * W *
        (L->block_out_channels[0] > L->in_channels ? L->block_out_channels[0] : L->in_channels);
    for (int lv = 0; lv < L->n_blocks; lv++) {
        for (int j = 0; j < L->layers_per_block[lv]; j++) PUSH_SKIP(L->block_out_channels[lv]);
        /* An up block concatenates up to two level widths at this size. */
        size_t cat = (size_t)B * H * W * 2 * L->block_out_channels[lv > 0 ? lv - 1 : 0];
        size_t own = (size_t)B * H * W * 2 * L->block_out_channels[lv];
        if (cat > s->max_floats) s->max_floats = cat;
        if (own > s->max_floats) s->max_floats = own;
        if (lv < L->n_blocks - 1) {
            H /= 2, W /= 2;
            PUSH_SKIP(L->block_out_channels[lv]);
        }
    }
#undef PUSH_SKIP
    s->n_skips = n;
    s->mid_h = H, s->mid_w = W;
    s->mid_floats = (size_t)B * H * W * L->block_out_channels[L->n_blocks - 1];
    return 0;
}

size_t unet_encoder_time_floats(const unet_encoder *e, int B) {
    const cnet_unet_config *L = &e->cfg;
    const size_t T = (size_t)e->temb_channels;
    size_t n = (size_t)B * (1 + L->block_out_channels[0] + 2 * T);
    if (L->add_text_time) /* add_embeds, a1, a1_act, aug, time ids, time_embeds */
        n += (size_t)B * (L->projection_class_embeddings_input_dim + 3 * T +
                          CNET_TIME_IDS * (1 + (size_t)L->addition_time_embed_dim));
    return n;
}

int unet_encoder_added(const unet_encoder *e, const cnet_params *p, cnet_arena *scratch, float *aug,
                       float *add_embeds, float *a1, float *a1_act, const unet_added_cond *added,
                       int B, cnet_error *err) {
    cnet_backend *be = p->be;
    const cnet_unet_config *L = &e->cfg;
    if (!L->add_text_time)
        return cnet_fail(err, CNET_EINVAL, "the model has no addition_embed_type \"text_time\"");
    if (!added || !added->text_embeds || !added->time_ids)
        return cnet_fail(err, CNET_EINVAL,
                         "an SDXL (addition_embed_type \"text_time\") model needs text_embeds "
                         "and time_ids");
    const int A = L->addition_time_embed_dim, P = L->projection_class_embeddings_input_dim;
    const int TA = CNET_TIME_IDS * A, Dp = P - TA, T = e->temb_channels;
    size_t mark = cnet_arena_mark(scratch);
    float *ids = cnet_arena_alloc(scratch, (size_t)B * CNET_TIME_IDS * sizeof(float), err);
    float *time_embeds = cnet_arena_alloc(scratch, (size_t)B * TA * sizeof(float), err);
    if (!ids || !time_embeds) {
        cnet_arena_restore(scratch, mark);
        return err ? err->code : CNET_ENOMEM;
    }
    /* add_time_proj(time_ids.flatten()) [B*6, A] = [B, 6*A], float32 as in
     * diffusers (Timesteps with the config's flip_sin_to_cos, freq_shift). */
    be->upload(be, ids, added->time_ids, (size_t)B * CNET_TIME_IDS * sizeof(float));
    be->timestep_embedding(be, time_embeds, ids, B * CNET_TIME_IDS, A, L->flip_sin_to_cos,
                           L->freq_shift, TIMESTEP_MAX_PERIOD);
    be->concat_channels(be, add_embeds, added->text_embeds, time_embeds, B, Dp, TA);
    nn_linear_forward(&e->add_linear_1, p, a1, add_embeds, B);
    be->silu_forward(be, a1_act, a1, (long)B * T);
    nn_linear_forward(&e->add_linear_2, p, aug, a1_act, B);
    cnet_arena_restore(scratch, mark);
    return 0;
}

int unet_encoder_time(const unet_encoder *e, const cnet_params *p, cnet_arena *scratch,
                      float *temb_act, float *temb, float *proj_out, const float *timesteps,
                      const unet_added_cond *added, int B, cnet_arena *keep, unet_time_acts *acts,
                      cnet_error *err) {
    cnet_backend *be = p->be;
    const cnet_unet_config *L = &e->cfg;
    const int C0 = L->block_out_channels[0], T = e->temb_channels;
    const int with_add = L->add_text_time, P = L->projection_class_embeddings_input_dim;
    cnet_arena *save = acts ? keep : scratch;
    size_t mark = cnet_arena_mark(scratch);
    float *t_dev = cnet_arena_alloc(scratch, (size_t)B * sizeof(float), err);
    float *proj = cnet_arena_alloc(save, (size_t)B * C0 * sizeof(float), err);
    float *h1 = cnet_arena_alloc(save, (size_t)B * T * sizeof(float), err);
    float *h1_act = cnet_arena_alloc(save, (size_t)B * T * sizeof(float), err);
    float *add_embeds = NULL, *a1 = NULL, *a1_act = NULL, *aug = NULL;
    int rc = !t_dev || !proj || !h1 || !h1_act ? (err ? err->code : CNET_ENOMEM) : 0;
    if (!rc && with_add) {
        add_embeds = cnet_arena_alloc(save, (size_t)B * P * sizeof(float), err);
        a1 = cnet_arena_alloc(save, (size_t)B * T * sizeof(float), err);
        a1_act = cnet_arena_alloc(save, (size_t)B * T * sizeof(float), err);
        aug = cnet_arena_alloc(scratch, (size_t)B * T * sizeof(float), err);
        rc = !add_embeds || !a1 || !a1_act || !aug ? (err ? err->code : CNET_ENOMEM) : 0;
    }
    if (!rc && with_add)
        rc = unet_encoder_added(e, p, scratch, aug, add_embeds, a1, a1_act, added, B, err);
    if (rc) {
        cnet_arena_restore(scratch, mark);
        return rc;
    }
    be->upload(be, t_dev, timesteps, (size_t)B * sizeof(float));
    be->timestep_embedding(be, proj, t_dev, B, C0, L->flip_sin_to_cos, L->freq_shift,
                           TIMESTEP_MAX_PERIOD);
    if (proj_out) be->copy(be, proj_out, proj, (size_t)B * C0 * sizeof(float));
    nn_linear_forward(&e->time_linear_1, p, h1, proj, B);
    be->silu_forward(be, h1_act, h1, (long)B * T);
    nn_linear_forward(&e->time_linear_2, p, temb, h1_act, B);
    if (with_add) be->add(be, temb, temb, aug, (long)B * T); /* emb = time_emb + aug_emb */
    be->silu_forward(be, temb_act, temb, (long)B * T);
    if (acts)
        *acts = (unet_time_acts){.proj = proj,
                                 .h1 = h1,
                                 .h1_act = h1_act,
                                 .temb = temb,
                                 .add_embeds = add_embeds,
                                 .a1 = a1,
                                 .a1_act = a1_act};
    cnet_arena_restore(scratch, mark);
    return 0;
}

int unet_encoder_time_backward(const unet_encoder *e, const cnet_params *p, const cnet_params *g,
                               cnet_arena *scratch, const float *dtemb_act,
                               const unet_time_acts *acts, int B, cnet_error *err) {
    cnet_backend *be = p->be;
    const int T = e->temb_channels;
    size_t mark = cnet_arena_mark(scratch);
    float *d1 = cnet_arena_alloc(scratch, (size_t)B * T * sizeof(float), err);
    float *d2 = cnet_arena_alloc(scratch, (size_t)B * T * sizeof(float), err);
    if (!d1 || !d2) {
        cnet_arena_restore(scratch, mark);
        return err ? err->code : CNET_ENOMEM;
    }
    be->silu_backward(be, d1, dtemb_act, acts->temb, (long)B * T); /* d(emb) */
    if (e->cfg.add_text_time) { /* emb = time_emb + add_embedding(add_embeds) */
        nn_linear_backward(&e->add_linear_2, p, g, d2, d1, acts->a1_act, B);
        be->silu_backward(be, d2, d2, acts->a1, (long)B * T);
        nn_linear_backward(&e->add_linear_1, p, g, NULL, d2, acts->add_embeds, B);
    }
    nn_linear_backward(&e->time_linear_2, p, g, d2, d1, acts->h1_act, B);
    be->silu_backward(be, d1, d2, acts->h1, (long)B * T);
    nn_linear_backward(&e->time_linear_1, p, g, NULL, d1, acts->proj, B);
    cnet_arena_restore(scratch, mark);
    return 0;
}

int unet_encoder_forward(const unet_encoder *e, const cnet_params *p, cnet_arena *scratch,
                         float *const *skips, float *mid, const float *sample, const float *cond,
                         const float *temb_act, const float *text, int B, int h, int w, int Nt,
                         cnet_arena *keep, unet_encoder_acts *acts, cnet_error *err) {
    cnet_backend *be = p->be;
    const cnet_unet_config *L = &e->cfg;
    nn_conv_forward(&e->conv_in, p, skips[0], sample, B, h, w);
    if (cond) be->add(be, skips[0], skips[0], cond, (long)B * h * w * L->block_out_channels[0]);
    int n = 1, H = h, W = w, rc;
    const int checkpoint = acts && acts->checkpoint;
    if (acts) acts->keep = keep, acts->temb_act = temb_act, acts->text = text, acts->Nt = Nt;
    for (int i = 0; i < L->n_blocks; i++) {
        const float *x = skips[n - 1];
        const size_t keep_mark = keep ? cnet_arena_mark(keep) : 0;
        rc = unet_down_forward(&e->down[i], p, scratch, x, temb_act, text, B, &H, &W, Nt, skips, &n,
                               keep, acts ? &acts->down[i] : NULL, err);
        if (checkpoint) cnet_arena_restore(keep, keep_mark); /* backward recomputes them */
        if (rc) return rc;
    }
    const size_t keep_mark = keep ? cnet_arena_mark(keep) : 0;
    rc = unet_mid_forward(&e->mid, p, scratch, mid, skips[n - 1], temb_act, text, B, H, W, Nt, keep,
                          acts ? &acts->mid : NULL, err);
    if (checkpoint) cnet_arena_restore(keep, keep_mark);
    return rc;
}

int unet_encoder_backward(const unet_encoder *e, const cnet_params *p, const cnet_params *g,
                          cnet_arena *scratch, float *const *dskips, float *dtemb_act,
                          const float *dmid, float *const *skips, const float *sample,
                          const unet_encoder_acts *acts, int B, int h, int w, cnet_error *err) {
    const cnet_unet_config *L = &e->cfg;
    unet_sizes s;
    int rc = unet_encoder_sizes(e, B, h, w, &s, err);
    if (rc) return rc;
    size_t mark = cnet_arena_mark(scratch);
    float *dx = cnet_arena_alloc(scratch, s.skip_floats[s.n_skips - 1] * sizeof(float), err);
    if (!dx) return err ? err->code : CNET_ENOMEM;
    /* mid = mid_block(last skip) */
    const unet_mid_acts *mid = &acts->mid;
    unet_mid_acts mid_again;
    size_t keep_mark = acts->checkpoint ? cnet_arena_mark(acts->keep) : 0;
    if (acts->checkpoint) {
        float *out = cnet_arena_alloc(acts->keep, s.mid_floats * sizeof(float), err);
        rc = out ? unet_mid_forward(&e->mid, p, scratch, out, skips[s.n_skips - 1], acts->temb_act,
                                    acts->text, B, s.mid_h, s.mid_w, acts->Nt, acts->keep,
                                    &mid_again, err)
                 : (err ? err->code : CNET_ENOMEM);
        mid = &mid_again;
    }
    if (!rc) rc = unet_mid_backward(&e->mid, p, g, scratch, dx, dtemb_act, dmid, mid, B, err);
    if (!rc)
        p->be->add(p->be, dskips[s.n_skips - 1], dskips[s.n_skips - 1], dx,
                   (long)s.skip_floats[s.n_skips - 1]);
    if (acts->checkpoint) cnet_arena_restore(acts->keep, keep_mark);
    cnet_arena_restore(scratch, mark);
    /* Block i's input is the skip before its first one; its gradient
     * accumulates there. */
    for (int i = L->n_blocks - 1; i >= 0 && !rc; i--) {
        const unet_down_acts *down = &acts->down[i];
        unet_down_acts down_again;
        const int in = down->first_skip - 1;
        keep_mark = acts->checkpoint ? cnet_arena_mark(acts->keep) : 0;
        if (acts->checkpoint) { /* rewrites the block's skips with the same values */
            int H = down->H, W = down->W, n = down->first_skip;
            rc = unet_down_forward(&e->down[i], p, scratch, skips[in], acts->temb_act, acts->text,
                                   B, &H, &W, acts->Nt, skips, &n, acts->keep, &down_again, err);
            down = &down_again;
        }
        if (!rc)
            rc = unet_down_backward(&e->down[i], p, g, scratch, dskips[in], dtemb_act, dskips,
                                    skips, down, B, err);
        if (acts->checkpoint) cnet_arena_restore(acts->keep, keep_mark);
    }
    /* skips[0] = conv_in(sample) (+ cond): weight gradients only. */
    if (!rc) nn_conv_backward(&e->conv_in, p, g, NULL, dskips[0], sample, B, h, w);
    return rc;
}
