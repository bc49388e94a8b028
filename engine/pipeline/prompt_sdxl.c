/* SDXL encode_prompt (see prompt_sdxl.h). Follows diffusers v0.27.2
 * pipelines/controlnet/pipeline_controlnet_sd_xl.py encode_prompt: each
 * encoder's ids through tokenizer(padding="max_length", truncation=True),
 * hidden_states[-(clip_skip + 2)] of each, concatenated text_encoder first,
 * and the pooled output of the last encoder. Each encoder runs once over
 * the n prompts as one batch. */
#include "engine/pipeline/prompt_sdxl.h"

#include <stdlib.h>
#include <string.h>

int prompt_sdxl_dims(const prompt_sdxl_models *m, int *L, int *D, int *P, cnet_error *err) {
    if (!m->tok_2 || !m->te_2)
        return cnet_fail(err, CNET_EINVAL, "SDXL prompt: tokenizer_2 and text_encoder_2 needed");
    if (!m->tok != !m->te)
        return cnet_fail(err, CNET_EINVAL,
                         "SDXL prompt: tokenizer and text_encoder must both be given or neither");
    if (!m->te_2->projection_dim)
        return cnet_fail(err, CNET_EINVAL,
                         "SDXL prompt: text_encoder_2 has no text_projection (its config's "
                         "architectures must name CLIPTextModelWithProjection)");
    *L = tokenizer_max_length(m->tok_2);
    if (m->tok && tokenizer_max_length(m->tok) != *L)
        return cnet_fail(err, CNET_EINVAL,
                         "SDXL prompt: tokenizer model_max_length %d differs from tokenizer_2's %d",
                         tokenizer_max_length(m->tok), *L);
    *D = m->te_2->hidden + (m->te ? m->te->hidden : 0);
    *P = m->te_2->projection_dim;
    return 0;
}

size_t prompt_sdxl_scratch_bytes(const prompt_sdxl_models *m, int n) {
    int L, D, P;
    if (prompt_sdxl_dims(m, &L, &D, &P, NULL)) return 0;
    size_t run = clip_text_scratch_bytes(m->te_2, n, L);
    if (m->te) {
        size_t run_1 = clip_text_scratch_bytes(m->te, n, L);
        run = run > run_1 ? run : run_1;
    }
    /* The two encoders' hidden states, kept for the concatenation. */
    return run + (size_t)n * L * D * sizeof(float) + 2 * CNET_ARENA_ALIGN;
}

/* hidden [n, L, te.D] = hidden_states[-(clip_skip + 2)] of texts[0..n) and,
 * when text_embeds is not NULL, text_embeds [n, P]. */
static int encode_texts(tokenizer *tok, clip_text_model *te, cnet_arena *scratch,
                        const char *const *texts, int n, int L, int clip_skip, float *hidden,
                        float *text_embeds, cnet_error *err) {
    if (clip_skip < 0 || clip_skip >= te->n_layers)
        return cnet_fail(err, CNET_EINVAL, "clip_skip %d out of range 0..%d", clip_skip,
                         te->n_layers - 1);
    int64_t *ids = malloc((size_t)n * L * sizeof *ids), *mask = malloc((size_t)L * sizeof *mask);
    int rc = ids && mask ? 0 : cnet_fail(err, CNET_ENOMEM, "SDXL prompt: out of memory");
    for (int i = 0; i < n && !rc; i++) {
        const char *t = texts[i] ? texts[i] : "";
        if ((rc = tokenizer_encode(tok, t, strlen(t), ids + (size_t)i * L, mask, err)))
            cnet_error_prefix(err, "prompt %d", i);
    }
    if (!rc)
        rc = clip_text_forward_states(te, scratch, hidden, te->n_layers - 1 - clip_skip, NULL,
                                      text_embeds, ids, n, L, err);
    free(ids), free(mask);
    return rc;
}

/* embeds [n, L, D] and pooled [n, P] of one side (prompts or negatives). */
static int encode_side(const prompt_sdxl_models *m, cnet_arena *scratch, const char *const *texts,
                       const char *const *texts_2, int n, int clip_skip, float *embeds,
                       float *pooled, cnet_error *err) {
    int L, D, P, rc = prompt_sdxl_dims(m, &L, &D, &P, err);
    if (rc) return rc;
    cnet_backend *be = m->te_2->params.be;
    if (!m->te) /* the refiner: zip([prompt, prompt_2], [tokenizer_2]) */
        return encode_texts(m->tok_2, m->te_2, scratch, texts, n, L, clip_skip, embeds, pooled,
                            err);
    const int D1 = m->te->hidden, D2 = m->te_2->hidden;
    size_t mark = cnet_arena_mark(scratch);
    float *h1 = cnet_arena_alloc(scratch, (size_t)n * L * D1 * sizeof(float), err);
    float *h2 = h1 ? cnet_arena_alloc(scratch, (size_t)n * L * D2 * sizeof(float), err) : NULL;
    rc = h2 ? 0 : (err ? err->code : CNET_ENOMEM);
    if (!rc) rc = encode_texts(m->tok, m->te, scratch, texts, n, L, clip_skip, h1, NULL, err);
    if (!rc)
        rc = encode_texts(m->tok_2, m->te_2, scratch, texts_2, n, L, clip_skip, h2, pooled, err);
    if (!rc) be->concat_channels(be, embeds, h1, h2, n * L, D1, D2);
    cnet_arena_restore(scratch, mark);
    return rc;
}

int prompt_sdxl_encode(const prompt_sdxl_models *m, cnet_arena *scratch,
                       const prompt_sdxl_request *r, const prompt_sdxl_out *out, cnet_error *err) {
    int L, D, P, rc = prompt_sdxl_dims(m, &L, &D, &P, err);
    if (rc) return rc;
    if (r->n < 1 || !r->prompt)
        return cnet_fail(err, CNET_EINVAL, "SDXL prompt: %d prompts; at least one needed", r->n);
    const char *const *prompt_2 = r->prompt_2 ? r->prompt_2 : r->prompt;
    rc = encode_side(m, scratch, r->prompt, prompt_2, r->n, r->clip_skip, out->embeds, out->pooled,
                     err);
    if (rc || !r->cfg) return rc;
    cnet_backend *be = m->te_2->params.be;
    if (!r->negative && r->force_zeros_for_empty_prompt) {
        be->zero(be, out->neg_embeds, (size_t)r->n * L * D * sizeof(float));
        be->zero(be, out->neg_pooled, (size_t)r->n * P * sizeof(float));
        return 0;
    }
    /* negative_prompt or "": a NULL entry of texts is encoded as "". */
    const char **empty = NULL;
    const char *const *negative = r->negative;
    if (!negative) {
        if (!(empty = calloc((size_t)r->n, sizeof *empty)))
            return cnet_fail(err, CNET_ENOMEM, "SDXL prompt: out of memory");
        negative = empty;
    }
    const char *const *negative_2 = r->negative_2 ? r->negative_2 : negative;
    rc = encode_side(m, scratch, negative, negative_2, r->n, 0, out->neg_embeds, out->neg_pooled,
                     err);
    if (rc) cnet_error_prefix(err, "negative prompt");
    free(empty);
    return rc;
}
