/* SDXL training conditioning; see train_sdxl.h. */
#include "engine/train/train_sdxl.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

int train_sdxl_is_sdxl(const sd_base *base) { return base->xl; }

int train_sdxl_open(train_sdxl *s, sd_base *base, cnet_error *err) {
    memset(s, 0, sizeof *s);
    s->models = (prompt_sdxl_models){.tok = base->tok,
                                     .tok_2 = base->tok_2,
                                     .te = &base->text_encoder,
                                     .te_2 = &base->text_encoder_2};
    int rc = prompt_sdxl_dims(&s->models, &s->L, &s->D, &s->P, err);
    if (rc) return cnet_error_prefix(err, "SDXL text encoders");
    const cnet_unet_config *uc = &base->unet.enc.cfg;
    const int want_p =
        uc->projection_class_embeddings_input_dim - CNET_TIME_IDS * uc->addition_time_embed_dim;
    if (s->D != uc->cross_attention_dim[0] || s->P != want_p)
        return cnet_fail(err, CNET_EINVAL,
                         "%s: the text encoders give states of width %d and text_embeds of %d, the "
                         "UNet takes %d and %d (cross_attention_dim, projection_class_embeddings_"
                         "input_dim - 6 * addition_time_embed_dim)",
                         base->dir, s->D, s->P, uc->cross_attention_dim[0], want_p);
    return 0;
}

size_t train_sdxl_scratch_bytes(const train_sdxl *s, int n) {
    return prompt_sdxl_scratch_bytes(&s->models, n);
}

int train_sdxl_encode(train_sdxl *s, cnet_arena *scratch, const char *const *captions, int n,
                      float *embeds, float *text_embeds, cnet_error *err) {
    const prompt_sdxl_request r = {.n = n, .prompt = captions};
    const prompt_sdxl_out out = {.embeds = embeds, .pooled = text_embeds};
    return prompt_sdxl_encode(&s->models, scratch, &r, &out, err);
}

void train_sdxl_time_ids(float *time_ids, int n, int resolution, int crops_h, int crops_w) {
    for (int b = 0; b < n; b++) {
        float *r = time_ids + (size_t)b * CNET_TIME_IDS;
        r[0] = r[1] = r[4] = r[5] = (float)resolution;
        r[2] = (float)crops_h, r[3] = (float)crops_w;
    }
}
