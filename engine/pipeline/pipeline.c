/* StableDiffusionControlNetPipeline.__call__ and its SDXL twin, and the
 * img2img / inpainting pipelines on the same loop; see pipeline.h (the SDXL
 * embeddings and added conditions: pipeline_sdxl.c; the init image, mask
 * and blend: pipeline_init.c). */
#include "engine/pipeline/pipeline.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/core/layout.h"
#include "engine/pipeline/pipeline_init.h"
#include "engine/pipeline/pipeline_sdxl.h"

/* Device buffers of one run. */
typedef struct pipe_buffers {
    float *embeds;                         /* [rows, Nt, D] */
    float *cond_embeds;                    /* alias into embeds: the rows the ControlNets see */
    float *pooled;                         /* SDXL: [rows, P] text_embeds */
    float *time_ids;                       /* SDXL: host [rows, 6] */
    float *images[PIPE_MAX_CONTROLNETS];   /* [cn_rows, H, W, 3] */
    float *latents;                        /* [N, h, w, C] */
    float *x;                              /* model input [rows, h, w, C] */
    float *eps;                            /* UNet output [rows, h, w, C] */
    float *guided;                         /* CFG result / scratch [N, h, w, C] */
    float *down[UNET_MAX_SKIPS], *mid;     /* summed residuals [rows, ...] */
    float *k_down[UNET_MAX_SKIPS], *k_mid; /* one ControlNet's residuals */
    float *image;                          /* decoded [N, H, W, 3] */
} pipe_buffers;

int pipeline_check_controlnet(const pipe_models *m, const controlnet_model *cn, cnet_error *err) {
    const cnet_unet_config *u = &m->unet->enc.cfg, *c = &cn->enc.cfg;
    if (c->cross_attention_dim[0] != u->cross_attention_dim[0])
        return cnet_fail(err, CNET_EINVAL,
                         "does not fit the base UNet: cross_attention_dim %d vs %d",
                         c->cross_attention_dim[0], u->cross_attention_dim[0]);
    /* the ControlNets see the latents, also beside a 9-channel inpainting UNet */
    if (c->in_channels != m->vae->cfg.latent_channels)
        return cnet_fail(err, CNET_EINVAL,
                         "does not fit the base model: in_channels %d vs the VAE's %d latent "
                         "channels",
                         c->in_channels, m->vae->cfg.latent_channels);
    if (c->n_blocks != u->n_blocks)
        return cnet_fail(err, CNET_EINVAL, "does not fit the base UNet: %d down blocks vs %d",
                         c->n_blocks, u->n_blocks);
    for (int i = 0; i < u->n_blocks; i++)
        if (c->block_out_channels[i] != u->block_out_channels[i] ||
            c->layers_per_block[i] != u->layers_per_block[i])
            return cnet_fail(err, CNET_EINVAL,
                             "does not fit the base UNet: down block %d has %d channels x %d "
                             "layers vs %d x %d",
                             i, c->block_out_channels[i], c->layers_per_block[i],
                             u->block_out_channels[i], u->layers_per_block[i]);
    if (cn->cond_channels != 3)
        return cnet_fail(err, CNET_EINVAL,
                         "conditioning_channels is %d; the pipeline's control images are RGB (3)",
                         cn->cond_channels);
    if (controlnet_image_factor(cn) != vae_factor(m->vae))
        return cnet_fail(err, CNET_EINVAL,
                         "its conditioning embedding downsamples %dx, the base VAE %dx",
                         controlnet_image_factor(cn), vae_factor(m->vae));
    return 0;
}

static int check_request(const pipe_models *m, const pipe_request *r, int factor, cnet_error *err) {
    if (r->steps < 1)
        return cnet_fail(err, CNET_EINVAL, "steps must be at least 1 (got %d)", r->steps);
    if (r->width < 8 || r->height < 8 || r->width % 8 || r->height % 8)
        return cnet_fail(err, CNET_EINVAL,
                         "width and height must be positive multiples of 8 (got %dx%d)", r->width,
                         r->height);
    if (r->width % factor || r->height % factor)
        return cnet_fail(err, CNET_EINVAL,
                         "width and height must be multiples of the VAE factor %d", factor);
    const int P = r->n_prompts > 0 ? r->n_prompts : 1;
    if (r->num_images < 1 || (long)P * r->num_images > PIPE_MAX_IMAGES)
        return cnet_fail(err, CNET_EINVAL, "prompts x num_images must be 1..%d (got %d x %d)",
                         PIPE_MAX_IMAGES, P, r->num_images);
    if (r->n_controlnets < 0 || r->n_controlnets > PIPE_MAX_CONTROLNETS)
        return cnet_fail(err, CNET_EINVAL, "0..%d ControlNets (got %d)", PIPE_MAX_CONTROLNETS,
                         r->n_controlnets);
    if (r->guidance < 0) return cnet_fail(err, CNET_EINVAL, "guidance must be >= 0");
    int rc = pipeline_sdxl_check(m, r, err);
    if (rc || (rc = pipe_init_check(m, r, err))) return rc;
    for (int k = 0; k < r->n_controlnets; k++) {
        const pipe_controlnet *c = &r->controlnets[k];
        if (!c->image) return cnet_fail(err, CNET_EINVAL, "ControlNet %d has no image", k);
        if (c->n_images > 1 && c->n_images != P)
            return cnet_fail(err, CNET_EINVAL,
                             "ControlNet %d: %d control images for %d prompts (give 1 or %d)", k,
                             c->n_images, P, P);
        if (!(c->start >= 0 && c->start < c->end && c->end <= 1))
            return cnet_fail(
                err, CNET_EINVAL,
                "ControlNet %d: need 0 <= control_guidance_start < end <= 1 (got %g, %g)", k,
                c->start, c->end);
        if (c->model->enc.cfg.add_text_time != pipeline_is_sdxl(m))
            return cnet_fail(err, CNET_EINVAL, "ControlNet %d is %s but the base model is %s", k,
                             c->model->enc.cfg.add_text_time ? "an SDXL one (text_time)"
                                                             : "not an SDXL one",
                             pipeline_is_sdxl(m) ? "SDXL" : "not SDXL");
        rc = pipeline_check_controlnet(m, c->model, err);
        if (rc) {
            cnet_error_prefix(err, "ControlNet %d", k);
            return rc;
        }
    }
    return 0;
}

/* Encodes one prompt into row `row` of embeds [*, Nt, D]. */
static int encode_prompt(const pipe_models *m, cnet_arena *scratch, float *row_out,
                         const char *text, int clip_skip, cnet_error *err) {
    const int L = tokenizer_max_length(m->tok);
    int64_t *ids = malloc(2 * (size_t)L * sizeof *ids); /* ids, then the mask */
    if (!ids) return cnet_fail(err, CNET_ENOMEM, "out of memory");
    const char *t = text ? text : "";
    int rc = tokenizer_encode(m->tok, t, strlen(t), ids, ids + L, err);
    if (!rc)
        rc = clip_text_forward(m->text_encoder, scratch, row_out, NULL, ids, 1, L, clip_skip, err);
    free(ids);
    return rc;
}

static float *dev_alloc(cnet_backend *be, size_t floats, int *rc, cnet_error *err) {
    if (*rc) return NULL;
    float *p = be->alloc(be, (floats ? floats : 1) * sizeof(float));
    if (!p) *rc = cnet_fail(err, CNET_ENOMEM, "pipeline: cannot allocate %zu floats", floats);
    return p;
}

static void release(cnet_backend *be, float **p) {
    if (*p) be->free(be, *p);
    *p = NULL;
}

/* What only the text encoders and the denoising loop read: given back
 * before the VAE decode, so its activations do not sit on top of them. */
static void free_step_buffers(cnet_backend *be, pipe_buffers *b) {
    float **list[] = {&b->embeds, &b->pooled, &b->x, &b->eps, &b->guided, &b->mid, &b->k_mid};
    for (size_t i = 0; i < sizeof list / sizeof list[0]; i++) release(be, list[i]);
    for (int i = 0; i < UNET_MAX_SKIPS; i++) {
        release(be, &b->down[i]);
        release(be, &b->k_down[i]);
    }
    for (int k = 0; k < PIPE_MAX_CONTROLNETS; k++) release(be, &b->images[k]);
    b->cond_embeds = NULL; /* an alias into embeds */
}

static void free_buffers(cnet_backend *be, pipe_buffers *b) {
    free_step_buffers(be, b);
    release(be, &b->latents);
    release(be, &b->image);
    free(b->time_ids);
    b->time_ids = NULL;
}

/* Each phase (the text encoders, the denoising loop, the VAE decode) gets
 * an arena of its own, sized for it at this resolution; the previous
 * phase's is given back first, with every page its activations touched. */
static int phase_arena(cnet_arena *a, cnet_backend *be, size_t bytes, const char *name,
                       cnet_error *err) {
    cnet_arena_free(a);
    return cnet_arena_init(a, be, bytes, name, err);
}

int pipeline_generate(const pipe_models *m, const cnet_sched_config *sched_cfg,
                      const pipe_request *r, float *out, const pipe_observer *obs,
                      cnet_error *err) {
    cnet_backend *be = m->unet->params.be;
    const int factor = vae_factor(m->vae);
    int rc = check_request(m, r, factor, err);
    if (rc) return rc;
    const int cfg_on = r->guidance > 1.0f, guess = r->guess_mode;
    const int P = r->n_prompts > 0 ? r->n_prompts : 1, per = r->num_images;
    const int N = P * per, rows = cfg_on ? 2 * N : N;
    const int cn_rows = cfg_on && !guess ? 2 * N : N;
    const int H = r->height, W = r->width, h = H / factor, w = W / factor;
    const int C = m->vae->cfg.latent_channels, Nt = tokenizer_max_length(m->tok);
    const int xl = pipeline_is_sdxl(m), Dp = pipeline_sdxl_pooled_dim(m);
    const int D = m->text_encoder->hidden + (xl ? m->text_encoder_2->hidden : 0);
    const long lat = (long)N * h * w * C, row_lat = (long)h * w * C;
    unet_sizes s;
    if ((rc = unet_encoder_sizes(&m->unet->enc, rows, h, w, &s, err))) return rc;

    /* Scratch of the denoising loop: the largest need of its models at this
     * batch (and of the VAE's encoder for an init image). */
    size_t need = unet_scratch_bytes(m->unet, rows, h, w, Nt);
    for (int k = 0; k < r->n_controlnets; k++) {
        size_t c = controlnet_scratch_bytes(r->controlnets[k].model, cn_rows, h, w, Nt);
        if (c > need) need = c;
    }
    const size_t vae_need = vae_scratch_bytes(m->vae, N, H, W);
    if (r->init.image && vae_need > need) need = vae_need;
    cnet_arena scratch;
    memset(&scratch, 0, sizeof scratch);
    rc = phase_arena(&scratch, be,
                     xl ? pipeline_sdxl_scratch_bytes(m, P)
                        : clip_text_scratch_bytes(m->text_encoder, 1, Nt),
                     "pipeline text scratch", err);

    pipe_buffers b;
    memset(&b, 0, sizeof b);
    pipe_init_state ist;
    memset(&ist, 0, sizeof ist);
    sched sc;
    memset(&sc, 0, sizeof sc);
    b.embeds = dev_alloc(be, (size_t)rows * Nt * D, &rc, err);
    if (xl) {
        b.pooled = dev_alloc(be, (size_t)rows * Dp, &rc, err);
        if (!rc && !(b.time_ids = malloc((size_t)rows * CNET_TIME_IDS * sizeof(float))))
            rc = cnet_fail(err, CNET_ENOMEM, "pipeline: out of memory for the time ids");
    }
    b.latents = dev_alloc(be, (size_t)lat, &rc, err);
    b.x = dev_alloc(be, (size_t)rows * row_lat, &rc, err);
    b.eps = dev_alloc(be, (size_t)rows * row_lat, &rc, err);
    b.guided = dev_alloc(be, (size_t)lat, &rc, err);
    b.mid = dev_alloc(be, s.mid_floats, &rc, err);
    b.k_mid = dev_alloc(be, s.mid_floats, &rc, err);
    for (int i = 0; i < s.n_skips; i++) {
        b.down[i] = dev_alloc(be, s.skip_floats[i], &rc, err);
        b.k_down[i] = dev_alloc(be, s.skip_floats[i], &rc, err);
    }
    for (int k = 0; k < r->n_controlnets; k++)
        b.images[k] = dev_alloc(be, (size_t)cn_rows * H * W * 3, &rc, err);
    if (rc) goto done;

    /* Prompt embeddings: [negatives, positives] with CFG, each prompt's row
     * repeated num_images times (prompt-major, as diffusers repeats them). */
    const size_t row_emb = (size_t)Nt * D;
    float *pos = b.embeds + (cfg_on ? (size_t)N * row_emb : 0);
    if (xl) rc = pipeline_sdxl_encode(m, &scratch, r, cfg_on, per, b.embeds, b.pooled, err);
    for (int half = cfg_on ? 0 : 1; half < 2 && !rc && !xl; half++) {
        float *base = half ? pos : b.embeds;
        for (int p = 0; p < P && !rc; p++) {
            const char *text =
                r->n_prompts > 0
                    ? (half ? r->prompts[p] : (r->negative_prompts ? r->negative_prompts[p] : NULL))
                    : (half ? r->prompt : r->negative_prompt);
            float *row = base + (size_t)p * per * row_emb;
            rc = encode_prompt(m, &scratch, row, text, r->clip_skip, err);
            for (int i = 1; i < per && !rc; i++)
                be->copy(be, row + i * row_emb, row, row_emb * sizeof(float));
        }
    }
    /* A failed backend skips ops instead of failing them (engine/core/backend.h):
     * stop before the denoising loop reads embeddings that were not written. */
    if (rc || (rc = cnet_backend_status(be, err))) goto done;
    if (obs && obs->on_embeds) obs->on_embeds(obs->user, b.embeds, rows, Nt, D);
    b.cond_embeds = guess && cfg_on ? pos : b.embeds;
    /* SDXL: the UNet's added conditions, and the ControlNets' (guess mode
     * with CFG: chunk(2)[1] of each) */
    unet_added_cond added = {0}, cn_added = {0};
    if (xl) {
        pipeline_sdxl_time_ids(&r->micro, H, W, cfg_on, N, b.time_ids);
        added = (unet_added_cond){.text_embeds = b.pooled, .time_ids = b.time_ids};
        cn_added = added;
        if (guess && cfg_on)
            cn_added = (unet_added_cond){.text_embeds = b.pooled + (size_t)N * Dp,
                                         .time_ids = b.time_ids + (size_t)N * CNET_TIME_IDS};
        if (obs && obs->on_added) obs->on_added(obs->user, b.pooled, rows, Dp, b.time_ids);
    }

    /* Control images: row j of each CFG half is prompt j / num_images's image. */
    for (int k = 0; k < r->n_controlnets; k++) {
        const pipe_controlnet *c = &r->controlnets[k];
        for (int j = 0; j < cn_rows; j++) {
            const int p = (j % N) / per, src = c->n_images > 1 ? p : 0;
            be->upload(be, b.images[k] + (size_t)j * H * W * 3, c->image + (size_t)src * H * W * 3,
                       (size_t)H * W * 3 * sizeof(float));
        }
    }

    /* Scheduler and initial latents. */
    if ((rc = phase_arena(&scratch, be, need, "pipeline denoising scratch", err)) ||
        (rc = sched_init(&sc, be, sched_cfg, rows * row_lat, err)) ||
        (rc = sched_set_timesteps(&sc, r->steps, err)))
        goto done;
    uint64_t offset = 0; /* Philox blocks drawn so far */
    if (r->init.image && (rc = pipe_init_begin(&ist, m, r, &scratch, &sc, b.latents, N, rows, h, w,
                                               &offset, obs, err)))
        goto done;
    if (obs && obs->on_timesteps) obs->on_timesteps(obs->user, sc.timesteps, sc.num_steps);
    if (r->init.image) {
        /* the initial latents are pipe_init_begin's */
    } else if (r->latents) {
        float *host = malloc((size_t)lat * sizeof(float));
        if (!host) {
            rc = cnet_fail(err, CNET_ENOMEM, "out of memory");
            goto done;
        }
        layout_nchw_to_nhwc(host, r->latents, N, C, h, w);
        be->upload(be, b.latents, host, (size_t)lat * sizeof(float));
        free(host);
    } else {
        be->philox_normal(be, b.latents, lat, r->seed, 0);
        offset = (uint64_t)(lat + 3) / 4;
    }
    if (!r->init.image) be->scale(be, b.latents, b.latents, sc.init_noise_sigma, lat);
    sc.noise_seed = r->seed;
    sc.noise_offset = offset; /* after the initial draws' blocks */
    sc.eta = r->eta;

    /* no ControlNet: StableDiffusionPipeline's UNet call, without residuals */
    const int with_res = r->n_controlnets > 0;
    const float *const *res_down = with_res ? (const float *const *)b.down : NULL;
    for (int i = 0; i < sc.num_steps && !rc; i++) {
        const float t_i = sc.timesteps[i];
        float ts[2 * PIPE_MAX_IMAGES];
        for (int j = 0; j < rows; j++) ts[j] = t_i;
        /* x = scale_model_input(cat([latents] * 2) or latents) */
        for (int half = 0; half < rows / N; half++)
            be->copy(be, b.x + (size_t)half * lat, b.latents, (size_t)lat * sizeof(float));
        if ((rc = sched_scale_model_input(&sc, b.x, b.x, i, rows * row_lat, err))) break;
        /* Guess mode with CFG: the ControlNets see the conditional half. */
        const float *cn_x = guess && cfg_on ? b.x + lat : b.x;
        if (obs && obs->on_inputs) obs->on_inputs(obs->user, i, b.x, rows, cn_x, cn_rows, h, w, C);
        for (int j = 0; j < s.n_skips; j++)
            be->zero(be, b.down[j], s.skip_floats[j] * sizeof(float));
        be->zero(be, b.mid, s.mid_floats * sizeof(float));
        const int cn_off = guess && cfg_on; /* residuals land in the conditional half */
        for (int k = 0; k < r->n_controlnets && !rc; k++) {
            const pipe_controlnet *c = &r->controlnets[k];
            /* keep_i = 1 - float(i / n < start or (i + 1) / n > end), in Python floats */
            const double n_steps = sc.num_steps;
            const float keep = 1.0f - (float)((double)i / n_steps < c->start ||
                                              (double)(i + 1) / n_steps > c->end);
            const float scale = c->scale * keep;
            if (scale == 0.0f) { /* diffusers multiplies the residuals by 0 */
                if (obs && obs->on_control) obs->on_control(obs->user, i, k, scale, NULL, 0, NULL);
                continue;
            }
            rc = controlnet_forward(c->model, &scratch, b.k_down, b.k_mid, cn_x, b.images[k], ts,
                                    b.cond_embeds, xl ? &cn_added : NULL, scale, guess, cn_rows, h,
                                    w, Nt, NULL, NULL, err);
            if (!rc && obs && obs->on_control)
                obs->on_control(obs->user, i, k, scale, (const float *const *)b.k_down, s.n_skips,
                                b.k_mid);
            for (int j = 0; j < s.n_skips && !rc; j++) {
                const long row_floats = (long)(s.skip_floats[j] / rows);
                float *dst = b.down[j] + (cn_off ? (long)N * row_floats : 0);
                be->add(be, dst, dst, b.k_down[j], (long)cn_rows * row_floats);
            }
            if (!rc) {
                const long row_floats = (long)(s.mid_floats / rows);
                float *dst = b.mid + (cn_off ? (long)N * row_floats : 0);
                be->add(be, dst, dst, b.k_mid, (long)cn_rows * row_floats);
            }
        }
        if (rc) break;
        if ((rc = unet_forward(m->unet, &scratch, b.eps, pipe_init_unet_input(&ist, be, b.x), ts,
                               b.embeds, xl ? &added : NULL, res_down, with_res ? b.mid : NULL,
                               rows, h, w, Nt, NULL, NULL, err)))
            break;
        const float *guided = b.eps;
        if (cfg_on) { /* uncond + g * (cond - uncond), in torch's order */
            be->axpby(be, b.guided, 1.0f, b.eps + lat, -1.0f, b.eps, lat);
            be->axpby(be, b.guided, 1.0f, b.eps, r->guidance, b.guided, lat);
            guided = b.guided;
        }
        if ((rc = sched_step(&sc, b.latents, NULL, guided, b.latents, NULL, i, lat, err)) ||
            (rc = pipe_init_blend(&ist, &sc, b.latents, i, sc.num_steps, obs, err)))
            break;
        /* once per step: a failure at step 1 must not run every later step
         * and the VAE on a backend that skips or garbles them */
        if ((rc = cnet_backend_status(be, err))) break;
        if (obs && obs->on_step &&
            obs->on_step(obs->user, i, sc.num_steps, b.eps, rows, b.latents, N, h, w, C)) {
            rc = cnet_fail(err, CNET_EINVAL, "cancelled at step %d", i);
            break;
        }
    }
    if (rc) goto done;
    pipe_init_free(&ist, be);
    sched_free(&sc);
    free_step_buffers(be, &b);
    b.image = dev_alloc(be, (size_t)N * H * W * 3, &rc, err);
    if (rc || (rc = phase_arena(&scratch, be, vae_need, "pipeline decode scratch", err))) goto done;

    /* image = clamp(decode(latents / scaling_factor) / 2 + 0.5, 0, 1) */
    be->scale(be, b.latents, b.latents, 1.0f / m->vae->cfg.scaling_factor, lat);
    /* force_upcast: diffusers' upcast_vae decodes a 16-bit run in float32 */
    char note[128];
    const cnet_precision prec =
        m->vae_upcast ? cnet_backend_set_precision(be, CNET_PREC_F32, note, sizeof note)
                      : be->precision;
    rc = vae_decode(m->vae, &scratch, b.image, b.latents, N, h, w, err);
    if (m->vae_upcast) cnet_backend_set_precision(be, prec, note, sizeof note);
    if (rc) goto done;
    const long n_img = (long)N * H * W * 3;
    be->download(be, out, b.image, (size_t)n_img * sizeof(float));
    if ((rc = cnet_backend_status(be, err))) goto done; /* no image from a failed device */
    for (long i = 0; i < n_img; i++) {
        float x = out[i] / 2.0f + 0.5f;
        out[i] = x < 0.0f ? 0.0f : x > 1.0f ? 1.0f : x;
    }
done:
    pipe_init_free(&ist, be);
    sched_free(&sc);
    free_buffers(be, &b);
    cnet_arena_free(&scratch);
    return rc;
}
