/* Golden checks of goldens-sdxl/unet_sdxl and controlnet_sdxl.safetensors:
 * the SDXL UNet and ControlNet (addition_embed_type "text_time") of the
 * fixture's SDXL model folder. The tensors they share with SD 1.x (time
 * embedding, the UNet outputs, every ControlNet run the file holds, parsed
 * from the tensor names) are golden_check_unet / golden_check_controlnet's,
 * which read the added conditions <stem>.in.text_embeds / time_ids for a
 * text_time model; here come the added embedding's own tensors
 * (goldens-sdxl/README.md):
 *
 *   <stem>.add_time_proj.freqs  [A/2]     the Timesteps frequencies
 *   <stem>.time_embeds          [B, 6*A]  add_time_proj(time_ids), per sample
 *   <stem>.add_embeds           [B, P]    cat(text_embeds, time_embeds)
 *   <stem>.aug_emb              [B, T]    add_embedding(add_embeds)
 *   <stem>.emb.t_batch          [B, T]    time_emb + aug_emb
 *
 * each compared where the file has it. Not here: the SDXL text encoders,
 * pipeline and training goldens (other checks, listed in cmd_golden.c). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/golden/golden.h"
#include "server/golden/golden_io.h"
#include "server/golden/model_io.h"

/* diffusers get_timestep_embedding's max_period (Timesteps' default). */
#define GOLDEN_MAX_PERIOD 10000.0f

/* The Timesteps frequencies of an A-wide embedding, read back from the
 * backend's own timestep embedding of t = 1: freq_k = atan2(sin f_k, cos f_k)
 * (every f_k is in (0, 1], where atan2 is exact to an ulp). */
static int check_freqs(golden_ctx *ctx, golden_env *env, const st_file *f, const char *name,
                       const cnet_unet_config *L, cnet_error *err) {
    cnet_backend *be = &env->be;
    const int A = L->addition_time_embed_dim, half = A / 2;
    const float one = 1.0f;
    float *t = be->alloc(be, sizeof(float)), *emb = be->alloc(be, (size_t)A * sizeof(float));
    float *host = malloc((size_t)(A + half) * sizeof(float));
    int rc = t && emb && host ? 0 : cnet_fail(err, CNET_ENOMEM, "golden: out of memory");
    if (!rc) {
        be->upload(be, t, &one, sizeof one);
        be->timestep_embedding(be, emb, t, 1, A, L->flip_sin_to_cos, (float)L->freq_shift,
                               GOLDEN_MAX_PERIOD);
        rc = cnet_backend_status(be, err);
    }
    if (!rc) {
        be->download(be, host, emb, (size_t)A * sizeof(float));
        const float *sin_half = L->flip_sin_to_cos ? host + half : host;
        const float *cos_half = L->flip_sin_to_cos ? host : host + half;
        float *freqs = host + A;
        for (int k = 0; k < half; k++) freqs[k] = atan2f(sin_half[k], cos_half[k]);
        cnet_tensor got = {CNET_F32, 1, {half}, freqs, -1};
        golden_compare(ctx, f, name, &got);
    }
    if (t) be->free(be, t);
    if (emb) be->free(be, emb);
    free(host);
    return rc;
}

/* <stem>.time_embeds: the time-id columns of add_embeds [B, P]. */
static int check_time_embeds(golden_ctx *ctx, golden_env *env, const st_file *f, const char *name,
                             const cnet_unet_config *L, const float *add_embeds, int B,
                             cnet_error *err) {
    const int P = L->projection_class_embeddings_input_dim;
    const int TA = CNET_TIME_IDS * L->addition_time_embed_dim, Dp = P - TA;
    float *host = malloc((size_t)B * P * sizeof(float)), *cols = malloc((size_t)B * TA * 4);
    if (!host || !cols) {
        free(host);
        free(cols);
        return cnet_fail(err, CNET_ENOMEM, "golden: out of memory");
    }
    env->be.download(&env->be, host, add_embeds, (size_t)B * P * sizeof(float));
    for (int b = 0; b < B; b++)
        memcpy(cols + (size_t)b * TA, host + (size_t)b * P + Dp, (size_t)TA * sizeof(float));
    cnet_tensor got = {CNET_F32, 2, {B, TA}, cols, -1};
    golden_compare(ctx, f, name, &got);
    free(host);
    free(cols);
    return 0;
}

/* The added embedding's tensors of golden file f for the encoder of the
 * loaded component (stem "unet" or "controlnet"). */
static int check_added(golden_ctx *ctx, golden_env *env, mio_model *mm, const unet_encoder *enc,
                       const cnet_params *p, const st_file *f, const char *stem, cnet_error *err) {
    const cnet_unet_config *L = &enc->cfg;
    cnet_backend *be = &env->be;
    char name[GOLDEN_NAME_MAX];
    const st_entry *te;
    snprintf(name, sizeof name, "%s.in.text_embeds", stem);
    int rc = mio_need(f, name, CNET_F32, 2, &te, err);
    if (rc) return rc;
    if (!L->add_text_time)
        return cnet_fail(err, CNET_EINVAL,
                         "%s: the model folder's %s has no addition_embed_type \"text_time\"",
                         ctx->model_dir, stem);
    const int B = (int)te->view.shape[0], T = enc->temb_channels;
    const int P = L->projection_class_embeddings_input_dim, C0 = L->block_out_channels[0];
    const size_t scratch =
        ((size_t)B * (C0 + 4 * T + P + CNET_TIME_IDS * (1 + L->addition_time_embed_dim)) + 1) *
            sizeof(float) +
        16 * CNET_ARENA_ALIGN;
    mio_added added;
    if ((rc = mio_added_load(&added, be, f, stem, L, B, err))) return rc;
    float *aug = be->alloc(be, (size_t)B * T * sizeof(float));
    float *add = be->alloc(be, (size_t)B * P * sizeof(float));
    float *a1 = be->alloc(be, 2 * (size_t)B * T * sizeof(float));
    float *emb = be->alloc(be, 2 * (size_t)B * T * sizeof(float));
    if (!aug || !add || !a1 || !emb) rc = cnet_fail(err, CNET_ENOMEM, "golden: out of memory");
    if (!rc) rc = mio_scratch(mm, scratch, err);
    if (!rc)
        rc = unet_encoder_added(enc, p, &mm->scratch, aug, add, a1, a1 + (size_t)B * T,
                                mio_added_cond(&added), B, err);
    if (!rc) rc = cnet_backend_status(be, err);
    const int64_t as[2] = {B, P}, ts[2] = {B, T};
    if (!rc) {
        snprintf(name, sizeof name, "%s.add_embeds", stem);
        golden_compare_nhwc(ctx, env, f, name, add, 2, as);
        snprintf(name, sizeof name, "%s.aug_emb", stem);
        golden_compare_nhwc(ctx, env, f, name, aug, 2, ts);
        snprintf(name, sizeof name, "%s.time_embeds", stem);
        if (st_find(f, name)) rc = check_time_embeds(ctx, env, f, name, L, add, B, err);
    }
    snprintf(name, sizeof name, "%s.add_time_proj.freqs", stem);
    if (!rc && st_find(f, name)) rc = check_freqs(ctx, env, f, name, L, err);
    snprintf(name, sizeof name, "%s.emb.t_batch", stem);
    if (!rc && st_find(f, name)) {
        char tn[GOLDEN_NAME_MAX];
        float t[MIO_MAX_BATCH];
        snprintf(tn, sizeof tn, "%s.in.t_batch", stem);
        if (!(rc = mio_timesteps(f, tn, B, t, err)) &&
            !(rc = unet_encoder_time(enc, p, &mm->scratch, emb + (size_t)B * T, emb, NULL, t,
                                     mio_added_cond(&added), B, NULL, NULL, err)) &&
            !(rc = cnet_backend_status(be, err)))
            golden_compare_nhwc(ctx, env, f, name, emb, 2, ts);
    }
    float *bufs[] = {aug, add, a1, emb};
    for (int i = 0; i < 4; i++)
        if (bufs[i]) be->free(be, bufs[i]);
    mio_added_free(&added, be);
    return rc;
}

/* Opens component c of the model folder and runs check_added on it. */
static int check_component_added(golden_ctx *ctx, const st_file *f, mio_component c,
                                 cnet_error *err) {
    golden_env env;
    mio_model m;
    int rc = golden_env_init(&env, ctx, err);
    if (rc) return rc;
    if (!(rc = mio_open(&m, &env.be, c, ctx->model_dir, err))) {
        if (c == MIO_UNET)
            rc = check_added(ctx, &env, &m, &m.m.unet.enc, &m.m.unet.params, f, "unet", err);
        else
            rc = check_added(ctx, &env, &m, &m.m.controlnet.enc, &m.m.controlnet.params, f,
                             "controlnet", err);
        mio_close(&m);
    }
    golden_env_free(&env);
    return rc;
}

int golden_check_unet_sdxl(golden_ctx *ctx, const st_file *f, cnet_error *err) {
    int rc = golden_check_unet(ctx, f, err);
    return rc ? rc : check_component_added(ctx, f, MIO_UNET, err);
}

int golden_check_controlnet_sdxl(golden_ctx *ctx, const st_file *f, cnet_error *err) {
    int rc = golden_check_controlnet(ctx, f, err);
    return rc ? rc : check_component_added(ctx, f, MIO_CONTROLNET, err);
}
