/* Golden check of goldens-img2img/img2img.safetensors and inpaint.safetensors:
 * every recorded run of StableDiffusionControlNetImg2ImgPipeline ("i2i.")
 * and StableDiffusionControlNetInpaintPipeline ("inp.") through
 * engine/pipeline/pipeline.c with its init image (and mask). A run is the
 * metadata "<kind>.<run>.args" (scheduler class, steps, strength, guidance,
 * conditioning scale, guidance window, guess mode, negative prompt, size,
 * input files, padding_mask_crop); the input pixels are read from the PNGs
 * under goldens-img2img/images/ that 'input_files' names and compared with
 * in.*_uint8; then the processed inputs, the prompt ids and embeddings, the
 * timesteps, the VAE moments and draws, the initial latents, every step's
 * UNet output, latents (and for inpainting the scheduler's result and the
 * re-noised image latents of the blend), and the image. The random draws
 * are injected from the file ('random_draws'), as the README says.
 * Nothing about a run is built in: held-out configurations with other
 * sizes, steps and strengths run the same way. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/core/layout.h"
#include "engine/image/inpaint_crop.h"
#include "engine/image/inpaint_image.h"
#include "engine/image/preprocess.h"
#include "engine/pipeline/generate.h"
#include "engine/pipeline/pipeline.h"
#include "engine/pipeline/sd_base.h"
#include "server/golden/golden.h"
#include "server/golden/golden_io.h"
#include "server/golden/model_io.h"

/* Images of one kind a run may give (N <= the batch). */
#define I2I_MAX_INPUTS PIPE_MAX_IMAGES
/* Longest schedule a run may record: num_train_timesteps + 1 (PNDM). */
#define I2I_MAX_STEPS 1024

typedef struct i2i_check {
    golden_ctx *ctx;
    golden_env *env;
    const st_file *f;
    char prefix[GOLDEN_RUN_MAX + 8]; /* "<kind>.<run>." */
    float scales[I2I_MAX_STEPS];     /* step i's ControlNet 0 scale */
    float t0;                        /* the first timestep run */
    int n_scales;
} i2i_check;

static void tname(const i2i_check *c, char *out, const char *what) {
    snprintf(out, GOLDEN_NAME_MAX, "%s%s", c->prefix, what);
}

/* Host NHWC [n, h, w, C] compared as NCHW. */
static void compare_host_nhwc(i2i_check *c, const char *what, const float *x, int n, int h, int w,
                              int C) {
    char name[GOLDEN_NAME_MAX];
    tname(c, name, what);
    float *t = malloc((size_t)n * h * w * C * sizeof(float));
    if (!t) {
        golden_report(c->ctx, name, "?", INFINITY, 0, 0, "out of memory");
        return;
    }
    layout_nhwc_to_nchw(t, x, n, C, h, w);
    cnet_tensor got = {CNET_F32, 4, {n, C, h, w}, t, -1};
    golden_compare(c->ctx, c->f, name, &got);
    free(t);
}

static void on_init(void *user, const char *what, const float *x, int n, int h, int w, int C) {
    compare_host_nhwc(user, what, x, n, h, w, C);
}

static void on_embeds(void *user, const float *embeds, int rows, int Nt, int D) {
    i2i_check *c = user;
    char name[GOLDEN_NAME_MAX];
    tname(c, name, "prompt_embeds");
    const int64_t shape[3] = {rows, Nt, D};
    golden_compare_nhwc(c->ctx, c->env, c->f, name, embeds, 3, shape);
}

/* Integer timesteps as int64 (Euler's float32 ones as they are). */
static void compare_timesteps(i2i_check *c, const char *what, const float *ts, int n) {
    char name[GOLDEN_NAME_MAX];
    tname(c, name, what);
    const st_entry *e = st_find(c->f, name);
    if (e && e->view.dtype == CNET_F32) {
        cnet_tensor t = {CNET_F32, 1, {n}, (void *)ts, -1};
        golden_compare(c->ctx, c->f, name, &t);
        return;
    }
    int64_t ids[I2I_MAX_STEPS];
    if (n > (int)(sizeof ids / sizeof ids[0])) n = (int)(sizeof ids / sizeof ids[0]);
    for (int i = 0; i < n; i++) ids[i] = (int64_t)ts[i];
    cnet_tensor t = {CNET_I64, 1, {n}, ids, -1};
    golden_compare(c->ctx, c->f, name, &t);
}

static void on_timesteps(void *user, const float *timesteps, int n) {
    i2i_check *c = user;
    c->t0 = n > 0 ? timesteps[0] : NAN;
    compare_timesteps(c, "timesteps", timesteps, n);
}

static void on_control(void *user, int i, int k, float scale, const float *const *down, int n_skips,
                       const float *mid) {
    i2i_check *c = user;
    (void)down, (void)n_skips, (void)mid;
    if (k == 0 && i < (int)(sizeof c->scales / sizeof c->scales[0])) {
        c->scales[i] = scale;
        if (i + 1 > c->n_scales) c->n_scales = i + 1;
    }
}

static void on_blend(void *user, int i, const float *step_latents, const float *proper, int N,
                     int h, int w, int C) {
    i2i_check *c = user;
    char name[GOLDEN_NAME_MAX], what[48];
    const int64_t shape[4] = {N, C, h, w};
    snprintf(what, sizeof what, "step_latents.%d", i);
    tname(c, name, what);
    golden_compare_nhwc(c->ctx, c->env, c->f, name, step_latents, 4, shape);
    if (!proper) return;
    snprintf(what, sizeof what, "init_latents_proper.%d", i);
    tname(c, name, what);
    golden_compare_nhwc(c->ctx, c->env, c->f, name, proper, 4, shape);
}

static int on_step(void *user, int i, int n, const float *noise_pred, int rows,
                   const float *latents, int N, int h, int w, int C) {
    i2i_check *c = user;
    char name[GOLDEN_NAME_MAX], what[48];
    (void)n;
    const int64_t ns[4] = {rows, C, h, w}, ls[4] = {N, C, h, w};
    snprintf(what, sizeof what, "noise_pred.%d", i);
    tname(c, name, what);
    golden_compare_nhwc(c->ctx, c->env, c->f, name, noise_pred, 4, ns);
    snprintf(what, sizeof what, "latents.%d", i);
    tname(c, name, what);
    golden_compare_nhwc(c->ctx, c->env, c->f, name, latents, 4, ls);
    return 0;
}

/* One kind of input image of a run: the PNGs its 'input_files' names. */
typedef struct i2i_inputs {
    image_rgb8 img[I2I_MAX_INPUTS];
    int n;
} i2i_inputs;

static void inputs_free(i2i_inputs *in) {
    for (int i = 0; i < I2I_MAX_INPUTS; i++) image_free(&in->img[i]);
    in->n = 0;
}

/* Loads input_files[key] and compares the pixels with in.<tensor>: RGB
 * [N, H, W, 3], or a gray mask [N, H, W] as PIL 'L' (convert('L') of the
 * decoded pixels, which a gray PNG decodes to R = G = B). */
static int load_inputs(i2i_check *c, const json_t *args, const char *key, const char *tensor,
                       i2i_inputs *in, cnet_error *err) {
    const json_t *files = json_object_get(json_object_get(args, "input_files"), key);
    const int n = (int)json_array_size(files);
    if (n < 1 || n > I2I_MAX_INPUTS)
        return cnet_fail(err, CNET_EFORMAT, "%s: %sargs: input_files.%s has %d files (1..%d)",
                         c->f->path, c->prefix, key, n, I2I_MAX_INPUTS);
    for (int i = 0; i < n; i++) {
        char path[PATH_MAX + 64];
        const char *file = json_string_value(json_array_get(files, (size_t)i));
        snprintf(path, sizeof path, "%s/%s/images/%s", c->ctx->fixtures, c->ctx->goldens,
                 file ? file : "?");
        int rc = image_load(&in->img[i], path, 0, err);
        if (rc) return rc;
        in->n = i + 1;
    }
    char name[GOLDEN_NAME_MAX];
    tname(c, name, tensor);
    const st_entry *e = st_find(c->f, name);
    const int gray = e && e->view.ndim == 3;
    const image_rgb8 *im0 = &in->img[0];
    const size_t px = (size_t)im0->width * im0->height, per = gray ? px : px * 3;
    uint8_t *all = malloc((size_t)n * per);
    if (!all) return cnet_fail(err, CNET_ENOMEM, "out of memory");
    for (int i = 0; i < n; i++) {
        const image_rgb8 *im = &in->img[i];
        if (im->width != im0->width || im->height != im0->height) {
            free(all);
            return cnet_fail(err, CNET_EFORMAT, "%s: input_files.%s differ in size", c->prefix,
                             key);
        }
        for (size_t p = 0; p < px; p++) {
            if (gray)
                all[i * per + p] = inpaint_gray(im->data + p * 3);
            else
                memcpy(all + i * per + p * 3, im->data + p * 3, 3);
        }
    }
    cnet_tensor t = {CNET_U8, gray ? 3 : 4, {n, im0->height, im0->width, 3}, all, -1};
    golden_compare(c->ctx, c->f, name, &t);
    free(all);
    return 0;
}

/* A file tensor [n, ...] float32 (NULL when absent). */
static const float *draw(const i2i_check *c, const char *what) {
    char name[GOLDEN_NAME_MAX];
    tname(c, name, what);
    const st_entry *e = st_find(c->f, name);
    return e && e->view.dtype == CNET_F32 ? (const float *)e->view.data : NULL;
}

/* What one run prepares on the host. */
typedef struct i2i_run {
    i2i_inputs image, control, mask;
    image_rgb8 cropped[3]; /* padding_mask_crop: image, control, mask at W x H */
    float *init, *ctrl, *maskf, *masked, *out;
    int crop[4], have_crop;
} i2i_run;

static void run_free(i2i_run *r) {
    inputs_free(&r->image), inputs_free(&r->control), inputs_free(&r->mask);
    for (int i = 0; i < 3; i++) image_free(&r->cropped[i]);
    free(r->init), free(r->ctrl), free(r->maskf), free(r->masked), free(r->out);
}

/* The run's inputs at W x H (after padding_mask_crop when given) into the
 * float tensors, compared as the processors' outputs. */
static int process_inputs(i2i_check *c, i2i_run *q, const json_t *args, int inpaint, int W, int H,
                          cnet_error *err) {
    const int N = q->image.n, Nc = q->control.n;
    const size_t px = (size_t)W * H;
    q->init = malloc((size_t)N * px * 3 * sizeof(float));
    q->ctrl = malloc((size_t)Nc * px * 3 * sizeof(float));
    q->maskf = malloc((size_t)N * px * sizeof(float));
    q->masked = malloc((size_t)N * px * 3 * sizeof(float));
    if (!q->init || !q->ctrl || !q->maskf || !q->masked)
        return cnet_fail(err, CNET_ENOMEM, "out of memory");
    const json_t *pad = json_object_get(args, "padding_mask_crop");
    int rc = 0;
    if (inpaint && json_is_integer(pad)) {
        if (N != 1 || Nc != 1 || q->mask.n != 1)
            return cnet_fail(err, CNET_EFORMAT, "%s: padding_mask_crop with %d images", c->prefix,
                             N);
        if ((rc = inpaint_crop_region(&q->mask.img[0], W, H, (int)json_integer_value(pad), q->crop,
                                      err)))
            return rc;
        q->have_crop = 1;
        int64_t coords[4] = {q->crop[0], q->crop[1], q->crop[2], q->crop[3]};
        char name[GOLDEN_NAME_MAX];
        tname(c, name, "crops_coords");
        cnet_tensor t = {CNET_I64, 1, {4}, coords, -1};
        golden_compare(c->ctx, c->f, name, &t);
        const image_rgb8 *src[3] = {&q->image.img[0], &q->control.img[0], &q->mask.img[0]};
        for (int i = 0; i < 3 && !rc; i++)
            rc = inpaint_crop_fill(&q->cropped[i], src[i], q->crop, W, H, err);
        if (rc) return rc;
    }
    for (int i = 0; i < N && !rc; i++)
        rc = inpaint_init_image(q->init + i * px * 3,
                                q->have_crop ? &q->cropped[0] : &q->image.img[i], W, H, err);
    for (int i = 0; i < Nc && !rc; i++)
        rc = preprocess_control(q->ctrl + i * px * 3,
                                q->have_crop ? &q->cropped[1] : &q->control.img[i], W, H, err);
    for (int i = 0; i < (inpaint ? N : 0) && !rc; i++)
        rc = inpaint_mask(q->maskf + i * px, NULL, q->have_crop ? &q->cropped[2] : &q->mask.img[i],
                          W, H, err);
    if (rc) return rc;
    compare_host_nhwc(c, "init_image", q->init, N, H, W, 3);
    compare_host_nhwc(c, "control_image", q->ctrl, Nc, H, W, 3);
    if (!inpaint) return 0;
    compare_host_nhwc(c, "mask", q->maskf, N, H, W, 1);
    for (size_t p = 0; p < (size_t)N * px; p++)
        for (int k = 0; k < 3; k++)
            q->masked[p * 3 + k] = q->init[p * 3 + k] * (q->maskf[p] < 0.5f ? 1.0f : 0.0f);
    compare_host_nhwc(c, "masked_image", q->masked, N, H, W, 3);
    return 0;
}

/* The schedule's own timesteps and init_noise_sigma. */
static int check_schedule(i2i_check *c, const cnet_sched_config *sc, int steps, cnet_error *err) {
    sched s;
    int rc = sched_init(&s, &c->env->be, sc, 0, err);
    if (!rc && !(rc = sched_set_timesteps(&s, steps, err))) {
        compare_timesteps(c, "timesteps_all", s.timesteps, s.num_steps);
        char name[GOLDEN_NAME_MAX];
        tname(c, name, "init_noise_sigma");
        if (st_find(c->f, name)) {
            cnet_tensor t = {CNET_F32, 0, {0}, &s.init_noise_sigma, -1};
            golden_compare(c->ctx, c->f, name, &t);
        }
    }
    sched_free(&s);
    return rc;
}

static int run_one(i2i_check *c, golden_pipe_models *l, const json_t *args, char *const *prompts,
                   char *const *negatives, int B, int inpaint, cnet_error *err) {
    const char *cls = json_string_value(json_object_get(args, "scheduler"));
    const int kind = cls ? golden_sched_kind(cls) : -1;
    if (kind < 0)
        return cnet_fail(err, CNET_EFORMAT, "%s: %sargs: unknown scheduler '%s'", c->f->path,
                         c->prefix, cls ? cls : "(none)");
    const int W = (int)json_integer_value(json_object_get(args, "width"));
    const int H = (int)json_integer_value(json_object_get(args, "height"));
    const int steps = (int)json_integer_value(json_object_get(args, "num_inference_steps"));
    cnet_sched_config sc;
    int rc = sd_base_scheduler(&l->base, kind, &sc, err);
    if (rc) return rc;
    i2i_run q;
    memset(&q, 0, sizeof q);
    if ((rc = load_inputs(c, args, "image", "in.image_uint8", &q.image, err)) ||
        (rc = load_inputs(c, args, "control_image", "in.control_image_uint8", &q.control, err)) ||
        (inpaint && (rc = load_inputs(c, args, "mask_image", "in.mask_uint8", &q.mask, err))) ||
        (rc = process_inputs(c, &q, args, inpaint, W, H, err)) ||
        (rc = check_schedule(c, &sc, steps, err)))
        goto out;
    const double strength = json_number_value(json_object_get(args, "strength"));
    pipe_request r = {
        .prompts = (const char *const *)prompts,
        .negative_prompts = json_is_true(json_object_get(args, "negative_prompt"))
                                ? (const char *const *)negatives
                                : NULL,
        .n_prompts = B,
        .steps = steps,
        .guidance = (float)json_number_value(json_object_get(args, "guidance_scale")),
        .latents = draw(c, "noise.latents"),
        .width = W,
        .height = H,
        .num_images = 1,
        .guess_mode = json_is_true(json_object_get(args, "guess_mode")),
        .eta = (float)json_number_value(json_object_get(args, "eta")),
        .n_controlnets = 1,
        .init = {.image = q.init,
                 .n_images = q.image.n,
                 .mask = inpaint ? q.maskf : NULL,
                 .strength = strength,
                 .vae_noise = {draw(c, "noise.vae_sample.0"), draw(c, "noise.vae_sample.1")}},
    };
    r.controlnets[0] = (pipe_controlnet){
        .model = &l->cn,
        .image = q.ctrl,
        .n_images = q.control.n,
        .scale = (float)json_number_value(json_object_get(args, "controlnet_conditioning_scale")),
        .start = json_number_value(json_object_get(args, "control_guidance_start")),
        .end = json_number_value(json_object_get(args, "control_guidance_end"))};
    pipe_models models = sd_base_models(&l->base);
    pipe_observer obs = {.user = c,
                         .on_embeds = on_embeds,
                         .on_timesteps = on_timesteps,
                         .on_control = on_control,
                         .on_init = on_init,
                         .on_blend = on_blend,
                         .on_step = on_step};
    if (!(q.out = malloc((size_t)B * H * W * 3 * sizeof(float)))) {
        rc = cnet_fail(err, CNET_ENOMEM, "out of memory");
        goto out;
    }
    c->n_scales = 0;
    if ((rc = pipeline_generate(&models, &sc, &r, q.out, &obs, err))) {
        cnet_error_prefix(err, "%s", c->prefix);
        goto out;
    }
    char name[GOLDEN_NAME_MAX];
    tname(c, name, "image");
    cnet_tensor img = {CNET_F32, 4, {B, H, W, 3}, q.out, -1};
    golden_compare(c->ctx, c->f, name, &img);
    tname(c, name, "cond_scale");
    cnet_tensor cs = {CNET_F32, 1, {c->n_scales}, c->scales, -1};
    golden_compare(c->ctx, c->f, name, &cs);
    tname(c, name, "latent_timestep"); /* timesteps[:1] repeated to the batch */
    const st_entry *lte = st_find(c->f, name);
    if (lte) {
        float lf[PIPE_MAX_IMAGES];
        int64_t li[PIPE_MAX_IMAGES];
        for (int i = 0; i < B; i++) lf[i] = c->t0, li[i] = (int64_t)c->t0;
        const int f32 = lte->view.dtype == CNET_F32;
        cnet_tensor t = {f32 ? CNET_F32 : CNET_I64, 1, {B}, f32 ? (void *)lf : (void *)li, -1};
        golden_compare(c->ctx, c->f, name, &t);
    }
    if (q.have_crop) {
        image_rgb8 gen = {W, H, NULL}, over = {0};
        if (!(rc = image_alloc(&gen, W, H, err))) {
            generate_to_rgb8(gen.data, q.out, (size_t)W * H * 3);
            rc = inpaint_apply_overlay(&over, &q.mask.img[0], &q.image.img[0], &gen, q.crop, err);
        }
        if (!rc) {
            tname(c, name, "image_overlay_uint8");
            cnet_tensor t = {CNET_U8, 4, {1, H, W, 3}, over.data, -1};
            golden_compare(c->ctx, c->f, name, &t);
        }
        image_free(&gen), image_free(&over);
    }
out:
    run_free(&q);
    cnet_sched_config_free(&sc);
    return rc;
}

/* The prompt ids of "<kind>.in.<which>_ids" from the base's tokenizer. */
static void check_ids(golden_ctx *ctx, const st_file *f, tokenizer *tok, const char *kind,
                      const char *which, char *const *texts, int B) {
    char name[GOLDEN_NAME_MAX];
    snprintf(name, sizeof name, "%s.in.%s_ids", kind, which);
    if (!st_find(f, name) || !texts[0]) return;
    const int L = tokenizer_max_length(tok);
    int64_t *ids = malloc((size_t)B * 2 * L * sizeof *ids);
    cnet_error err;
    int ok = ids != NULL;
    for (int b = 0; b < B && ok; b++)
        ok = !tokenizer_encode(tok, texts[b], strlen(texts[b]), ids + (size_t)b * L,
                               ids + (size_t)(B + b) * L, &err);
    if (ok) {
        cnet_tensor t = {CNET_I64, 2, {B, L}, ids, -1};
        golden_compare(ctx, f, name, &t);
    } else {
        golden_report(ctx, name, "?", INFINITY, 0, 0, "tokenizer failed");
    }
    free(ids);
}

/* 1 with the run of "<kind>.<run>.args" in run, 0 when key is not one. */
static int run_of_key(const char *kind, const char *key, char run[GOLDEN_RUN_MAX + 1]) {
    const size_t nk = strlen(kind), len = strlen(key), ns = strlen(".args");
    if (len <= nk + 1 + ns || strncmp(key, kind, nk) || key[nk] != '.' ||
        strcmp(key + len - ns, ".args") || len - nk - 1 - ns > GOLDEN_RUN_MAX)
        return 0;
    snprintf(run, GOLDEN_RUN_MAX + 1, "%.*s", (int)(len - nk - 1 - ns), key + nk + 1);
    return strcmp(run, "in") != 0;
}

static int check_file(golden_ctx *ctx, const st_file *f, const char *kind, int inpaint,
                      cnet_error *err) {
    char key[64];
    snprintf(key, sizeof key, "%s.prompts", kind);
    const char *meta = st_meta(f, key);
    json_t *pj = meta ? json_loads(meta, 0, NULL) : NULL;
    const int B = (int)json_array_size(pj);
    json_decref(pj);
    if (B < 1 || B > PIPE_MAX_IMAGES)
        return cnet_fail(err, CNET_EFORMAT, "%s: metadata \"%s\" is not a list of 1..%d prompts",
                         f->path, key, PIPE_MAX_IMAGES);
    char *prompts[PIPE_MAX_IMAGES] = {0}, *negatives[PIPE_MAX_IMAGES] = {0};
    golden_env env;
    golden_pipe_models l;
    memset(&l, 0, sizeof l);
    int rc = golden_meta_strings(f, key, prompts, B);
    snprintf(key, sizeof key, "%s.negative_prompts", kind);
    golden_meta_strings(f, key, negatives, B); /* runs without negative prompts never read them */
    if (rc) {
        rc = cnet_fail(err, CNET_EFORMAT, "%s: cannot read the prompts", f->path);
        goto out;
    }
    if ((rc = golden_env_init(&env, ctx, err))) goto out;
    if (!(rc = golden_pipe_models_open(&l, &env.be, ctx->model_dir, err))) {
        check_ids(ctx, f, l.base.tok, kind, "prompt", prompts, B);
        check_ids(ctx, f, l.base.tok, kind, "negative_prompt", negatives, B);
        for (int i = 0; i < f->n_meta && !rc; i++) {
            char run[GOLDEN_RUN_MAX + 1];
            if (!run_of_key(kind, f->meta_keys[i], run)) continue;
            json_t *args = json_loads(f->meta_values[i], 0, NULL);
            i2i_check *c = calloc(1, sizeof *c);
            if (!c) {
                rc = cnet_fail(err, CNET_ENOMEM, "out of memory");
            } else {
                *c = (i2i_check){.ctx = ctx, .env = &env, .f = f};
                snprintf(c->prefix, sizeof c->prefix, "%s.%s.", kind, run);
                rc = json_is_object(args)
                         ? run_one(c, &l, args, prompts, negatives, B, inpaint, err)
                         : cnet_fail(err, CNET_EFORMAT, "%s: %s is not JSON", f->path,
                                     f->meta_keys[i]);
            }
            free(c);
            json_decref(args);
        }
    }
    golden_pipe_models_free(&l);
    golden_env_free(&env);
out:
    for (int i = 0; i < PIPE_MAX_IMAGES; i++) free(prompts[i]), free(negatives[i]);
    return rc;
}

int golden_check_img2img(golden_ctx *ctx, const st_file *f, cnet_error *err) {
    return check_file(ctx, f, "i2i", 0, err);
}

int golden_check_inpaint(golden_ctx *ctx, const st_file *f, cnet_error *err) {
    return check_file(ctx, f, "inp", 1, err);
}
