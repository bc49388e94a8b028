/* SDXL prompt embeddings and added conditions (see pipeline_sdxl.h). */
#include "engine/pipeline/pipeline_sdxl.h"

#include <string.h>

#include "engine/pipeline/prompt_sdxl.h"

int pipeline_is_sdxl(const pipe_models *m) { return m->text_encoder_2 != NULL; }

int pipeline_sdxl_pooled_dim(const pipe_models *m) {
    return pipeline_is_sdxl(m) ? m->text_encoder_2->projection_dim : 0;
}

static prompt_sdxl_models sdxl_models(const pipe_models *m) {
    prompt_sdxl_models p = {
        .tok = m->tok, .tok_2 = m->tok_2, .te = m->text_encoder, .te_2 = m->text_encoder_2};
    return p;
}

size_t pipeline_sdxl_scratch_bytes(const pipe_models *m, int n_prompts) {
    prompt_sdxl_models pm = sdxl_models(m);
    return prompt_sdxl_scratch_bytes(&pm, n_prompts);
}

static int is_set(const int *size) { return size[0] != 0 || size[1] != 0; }

static const char *empty_is_none(const char *s) { return s && s[0] ? s : NULL; }

int pipeline_sdxl_check(const pipe_models *m, const pipe_request *r, cnet_error *err) {
    const pipe_micro *u = &r->micro;
    const int any = r->prompt_2 || r->negative_prompt_2 || r->prompts_2 || r->negative_prompts_2 ||
                    is_set(u->original_size) || is_set(u->target_size) ||
                    is_set(u->crops_coords_top_left) || is_set(u->negative_original_size) ||
                    is_set(u->negative_target_size) || is_set(u->negative_crops_coords_top_left);
    if (!pipeline_is_sdxl(m))
        return any ? cnet_fail(err, CNET_EINVAL,
                               "prompt_2, negative_prompt_2 and the original_size / "
                               "crops_coords_top_left / target_size conditions are SDXL's; this "
                               "base model is not SDXL")
                   : 0;
    const int *sizes[] = {u->original_size, u->target_size, u->negative_original_size,
                          u->negative_target_size};
    const char *names[] = {"original_size", "target_size", "negative_original_size",
                           "negative_target_size"};
    for (int k = 0; k < 4; k++)
        if (is_set(sizes[k]) && (sizes[k][0] < 1 || sizes[k][1] < 1))
            return cnet_fail(err, CNET_EINVAL, "%s must be two positive numbers (got %d, %d)",
                             names[k], sizes[k][0], sizes[k][1]);
    const int *crops[] = {u->crops_coords_top_left, u->negative_crops_coords_top_left};
    for (int k = 0; k < 2; k++)
        if (crops[k][0] < 0 || crops[k][1] < 0)
            return cnet_fail(err, CNET_EINVAL, "%scrops_coords_top_left must be >= 0 (got %d, %d)",
                             k ? "negative_" : "", crops[k][0], crops[k][1]);
    return 0;
}

/* [orig_h, orig_w, crop_top, crop_left, target_h, target_w] */
static void ids_of(float *ids, const int *orig, const int *crop, const int *target) {
    const int v[6] = {orig[0], orig[1], crop[0], crop[1], target[0], target[1]};
    for (int k = 0; k < 6; k++) ids[k] = (float)v[k];
}

void pipeline_sdxl_time_ids(const pipe_micro *u, int height, int width, int cfg, int N,
                            float *time_ids) {
    const int hw[2] = {height, width};
    const int *orig = is_set(u->original_size) ? u->original_size : hw;
    const int *target = is_set(u->target_size) ? u->target_size : hw;
    float pos[CNET_TIME_IDS], neg[CNET_TIME_IDS];
    ids_of(pos, orig, u->crops_coords_top_left, target);
    if (is_set(u->negative_original_size) && is_set(u->negative_target_size))
        ids_of(neg, u->negative_original_size, u->negative_crops_coords_top_left,
               u->negative_target_size);
    else
        memcpy(neg, pos, sizeof neg);
    /* cat([neg, pos]).repeat(N, 1): rows alternate with CFG */
    const int rows = cfg ? 2 * N : N;
    for (int j = 0; j < rows; j++)
        memcpy(time_ids + (size_t)j * CNET_TIME_IDS, cfg && j % 2 == 0 ? neg : pos, sizeof pos);
}

/* Rows [0, n) of buf (row floats each) become each row repeated per times,
 * prompt-major, in place: backwards, so no source row is overwritten
 * before it is read. */
static void repeat_rows(cnet_backend *be, float *buf, int n, int per, size_t row) {
    for (int p = n - 1; p >= 0; p--)
        for (int i = per - 1; i >= 0; i--)
            if ((size_t)p * per + i != (size_t)p)
                be->copy(be, buf + ((size_t)p * per + i) * row, buf + (size_t)p * row,
                         row * sizeof(float));
}

int pipeline_sdxl_encode(const pipe_models *m, cnet_arena *scratch, const pipe_request *r, int cfg,
                         int per, float *embeds, float *pooled, cnet_error *err) {
    prompt_sdxl_models pm = sdxl_models(m);
    int L, D, P, rc = prompt_sdxl_dims(&pm, &L, &D, &P, err);
    if (rc) return rc;
    const int n = r->n_prompts > 0 ? r->n_prompts : 1;
    const char *one[1] = {r->prompt}, *one_2[1] = {empty_is_none(r->prompt_2)};
    const char *neg[1] = {r->negative_prompt}, *neg_2[1] = {empty_is_none(r->negative_prompt_2)};
    prompt_sdxl_request q = {.n = n,
                             .cfg = cfg,
                             .force_zeros_for_empty_prompt = m->force_zeros_for_empty_prompt,
                             .clip_skip = r->clip_skip};
    if (r->n_prompts > 0) {
        q.prompt = r->prompts, q.prompt_2 = r->prompts_2;
        q.negative = r->negative_prompts, q.negative_2 = r->negative_prompts_2;
    } else {
        q.prompt = one, q.prompt_2 = one_2[0] ? one_2 : NULL;
        q.negative = r->negative_prompt ? neg : NULL, q.negative_2 = neg_2[0] ? neg_2 : NULL;
    }
    const size_t N = (size_t)n * per, row_e = (size_t)L * D;
    prompt_sdxl_out out = {.embeds = embeds + (cfg ? N * row_e : 0),
                           .neg_embeds = embeds,
                           .pooled = pooled + (cfg ? N * P : 0),
                           .neg_pooled = pooled};
    if ((rc = prompt_sdxl_encode(&pm, scratch, &q, &out, err))) return rc;
    cnet_backend *be = m->text_encoder_2->params.be;
    repeat_rows(be, out.embeds, n, per, row_e);
    repeat_rows(be, out.pooled, n, per, (size_t)P);
    if (cfg) {
        repeat_rows(be, out.neg_embeds, n, per, row_e);
        repeat_rows(be, out.neg_pooled, n, per, (size_t)P);
    }
    return 0;
}
