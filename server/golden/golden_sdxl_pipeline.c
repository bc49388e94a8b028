/* Golden check of goldens-sdxl/pipeline_sdxl.safetensors: the
 * EulerDiscreteScheduler tables of every pipe.sched.S<n> the file holds
 * (the model folder's scheduler config), and every recorded run of
 * StableDiffusionXLControlNetPipeline (metadata "pipe.<run>.args": prompts,
 * prompt_2, negatives, guidance, guess mode, conditioning scale and window,
 * clip_skip, the micro-conditioning sizes, the latents and control images
 * it used) through engine/pipeline/pipeline.c, comparing the prompt
 * embeddings, the added conditions, the step-0 model inputs and ControlNet
 * residuals, every step's conditioning scale, UNet output and latents, and
 * the image. Nothing about the fixture is built in: sizes come from the
 * tensors, arguments from the metadata; a tensor a run does not record is
 * not compared. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/pipeline/pipeline.h"
#include "engine/pipeline/sd_base.h"
#include "server/golden/golden.h"
#include "server/golden/golden_io.h"
#include "server/golden/model_io.h"

typedef struct xl_check {
    golden_ctx *ctx;
    golden_env *env;
    const st_file *f;
    const char *run;
    float *cn_scale; /* [steps]: ControlNet 0's scale at each step */
    int n_scales, max_scales;
} xl_check;

/* Compares the device NHWC tensor with golden name (PyTorch layout, shape
 * taken from the golden) when the file records it. */
static void compare_recorded(xl_check *c, const char *name, const float *dev) {
    const st_entry *e = st_find(c->f, name);
    if (!e) return;
    golden_compare_nhwc(c->ctx, c->env, c->f, name, dev, e->view.ndim, e->view.shape);
}

static void on_embeds(void *user, const float *embeds, int rows, int Nt, int D) {
    xl_check *c = user;
    char name[GOLDEN_NAME_MAX];
    snprintf(name, sizeof name, "pipe.%s.prompt_embeds", c->run);
    const int64_t shape[3] = {rows, Nt, D};
    golden_compare_nhwc(c->ctx, c->env, c->f, name, embeds, 3, shape);
}

static void on_added(void *user, const float *text_embeds, int rows, int P, const float *time_ids) {
    xl_check *c = user;
    char name[GOLDEN_NAME_MAX];
    snprintf(name, sizeof name, "pipe.%s.add_text_embeds", c->run);
    const int64_t shape[2] = {rows, P};
    golden_compare_nhwc(c->ctx, c->env, c->f, name, text_embeds, 2, shape);
    snprintf(name, sizeof name, "pipe.%s.add_time_ids", c->run);
    cnet_tensor t = {CNET_F32, 2, {rows, CNET_TIME_IDS}, (void *)time_ids, -1};
    golden_compare(c->ctx, c->f, name, &t);
}

static void on_timesteps(void *user, const float *timesteps, int n) {
    xl_check *c = user;
    char name[GOLDEN_NAME_MAX];
    snprintf(name, sizeof name, "pipe.%s.timesteps", c->run);
    cnet_tensor t = {CNET_F32, 1, {n}, (void *)timesteps, -1};
    golden_compare(c->ctx, c->f, name, &t);
}

static void on_inputs(void *user, int i, const float *x, int rows, const float *cn_x, int cn_rows,
                      int h, int w, int C) {
    xl_check *c = user;
    char name[GOLDEN_NAME_MAX];
    (void)rows, (void)cn_rows, (void)h, (void)w, (void)C;
    snprintf(name, sizeof name, "pipe.%s.latent_model_input.%d", c->run, i);
    compare_recorded(c, name, x);
    snprintf(name, sizeof name, "pipe.%s.cn_input.%d", c->run, i);
    compare_recorded(c, name, cn_x);
}

static void on_control(void *user, int i, int k, float scale, const float *const *down, int n_skips,
                       const float *mid) {
    xl_check *c = user;
    char name[GOLDEN_NAME_MAX];
    if (k != 0) return; /* the goldens run one ControlNet */
    if (i == c->n_scales && i < c->max_scales) c->cn_scale[c->n_scales++] = scale;
    if (!down) return;
    for (int j = 0; j < n_skips; j++) {
        snprintf(name, sizeof name, "pipe.%s.cn_down.%d.%d", c->run, i, j);
        compare_recorded(c, name, down[j]);
    }
    snprintf(name, sizeof name, "pipe.%s.cn_mid.%d", c->run, i);
    compare_recorded(c, name, mid);
}

static int on_step(void *user, int i, int n, const float *noise_pred, int rows,
                   const float *latents, int N, int h, int w, int C) {
    xl_check *c = user;
    char name[GOLDEN_NAME_MAX];
    (void)n, (void)rows, (void)N, (void)h, (void)w, (void)C;
    snprintf(name, sizeof name, "pipe.%s.noise_pred.%d", c->run, i);
    compare_recorded(c, name, noise_pred);
    snprintf(name, sizeof name, "pipe.%s.latents.%d", c->run, i);
    compare_recorded(c, name, latents);
    return 0;
}

/* The strings of a JSON list (borrowed from j) into out[n]; -1 unless j is
 * a list of exactly n strings. */
static int json_strings(const json_t *j, const char **out, int n) {
    if (!json_is_array(j) || (int)json_array_size(j) != n) return -1;
    for (int i = 0; i < n; i++)
        if (!(out[i] = json_string_value(json_array_get(j, (size_t)i)))) return -1;
    return 0;
}

/* A (height, width) pair of the args, left {0, 0} (None) when absent. */
static int json_pair(const json_t *args, const char *key, int *out) {
    const json_t *j = json_object_get(args, key);
    if (!j || json_is_null(j)) return 0;
    if (!json_is_array(j) || json_array_size(j) != 2) return -1;
    out[0] = (int)json_integer_value(json_array_get(j, 0));
    out[1] = (int)json_integer_value(json_array_get(j, 1));
    return 0;
}

static double json_num_or(const json_t *args, const char *key, double def) {
    const json_t *j = json_object_get(args, key);
    return json_is_number(j) ? json_number_value(j) : def;
}

/* The EulerDiscreteScheduler tables of every pipe.sched.S<n>.timesteps. */
static int check_schedules(golden_ctx *ctx, golden_env *env, const st_file *f, sd_base *base,
                           cnet_error *err) {
    cnet_sched_config cfg;
    int rc = sd_base_scheduler(base, -1, &cfg, err);
    if (rc) return rc;
    for (int e = 0; e < f->n && !rc; e++) {
        int n, len = 0;
        if (sscanf(f->entries[e].name, "pipe.sched.S%d.timesteps%n", &n, &len) != 1 ||
            f->entries[e].name[len] != '\0' || n < 1)
            continue;
        sched sc;
        memset(&sc, 0, sizeof sc);
        if (!(rc = sched_init(&sc, &env->be, &cfg, 1, err)) &&
            !(rc = sched_set_timesteps(&sc, n, err))) {
            char name[GOLDEN_NAME_MAX];
            snprintf(name, sizeof name, "pipe.sched.S%d.timesteps", n);
            cnet_tensor t = {CNET_F32, 1, {sc.num_steps}, sc.timesteps, -1};
            golden_compare(ctx, f, name, &t);
            snprintf(name, sizeof name, "pipe.sched.S%d.sigmas", n);
            cnet_tensor s = {CNET_F32, 1, {sc.num_sigmas}, sc.sigmas, -1};
            golden_compare(ctx, f, name, &s);
            snprintf(name, sizeof name, "pipe.sched.S%d.init_noise_sigma", n);
            cnet_tensor z = {CNET_F32, 0, {0}, &sc.init_noise_sigma, -1};
            golden_compare(ctx, f, name, &z);
        }
        sched_free(&sc);
    }
    cnet_sched_config_free(&cfg);
    return rc;
}

/* The request of one run from its args; strings borrowed from args. */
static int read_args(xl_check *c, const json_t *args, pipe_request *r, const char **lists,
                     cnet_error *err) {
    const int n = (int)json_integer_value(json_object_get(args, "n_prompts"));
    if (n < 1 || n > PIPE_MAX_IMAGES)
        return cnet_fail(err, CNET_EFORMAT, "%s: run %s: n_prompts %d (1..%d)", c->f->path, c->run,
                         n, PIPE_MAX_IMAGES);
    const char **prompts = lists, **prompts_2 = lists + n, **neg = lists + 2 * n,
               **neg_2 = lists + 3 * n;
    if (json_strings(json_object_get(args, "prompt"), prompts, n))
        return cnet_fail(err, CNET_EFORMAT, "%s: run %s: prompt is not a list of %d strings",
                         c->f->path, c->run, n);
    /* optional lists: absent is None */
    const int has_2 = !json_strings(json_object_get(args, "prompt_2"), prompts_2, n),
              has_neg = !json_strings(json_object_get(args, "negative_prompt"), neg, n),
              has_neg_2 = !json_strings(json_object_get(args, "negative_prompt_2"), neg_2, n);
    *r = (pipe_request){
        .prompts = prompts,
        .prompts_2 = has_2 ? prompts_2 : NULL,
        .negative_prompts = has_neg ? neg : NULL,
        .negative_prompts_2 = has_neg_2 ? neg_2 : NULL,
        .n_prompts = n,
        .steps = (int)json_integer_value(json_object_get(args, "num_inference_steps")),
        .guidance = (float)json_num_or(args, "guidance_scale", 5.0),
        .width = (int)json_integer_value(json_object_get(args, "width")),
        .height = (int)json_integer_value(json_object_get(args, "height")),
        .num_images = 1,
        .guess_mode = json_is_true(json_object_get(args, "guess_mode")),
        .clip_skip = (int)json_num_or(args, "clip_skip", 0),
        .n_controlnets = 1,
    };
    pipe_micro *u = &r->micro;
    if (json_pair(args, "original_size", u->original_size) ||
        json_pair(args, "crops_coords_top_left", u->crops_coords_top_left) ||
        json_pair(args, "target_size", u->target_size) ||
        json_pair(args, "negative_original_size", u->negative_original_size) ||
        json_pair(args, "negative_crops_coords_top_left", u->negative_crops_coords_top_left) ||
        json_pair(args, "negative_target_size", u->negative_target_size))
        return cnet_fail(err, CNET_EFORMAT, "%s: run %s: a size is not a pair", c->f->path, c->run);
    r->controlnets[0] =
        (pipe_controlnet){.n_images = n,
                          .scale = (float)json_num_or(args, "controlnet_conditioning_scale", 1.0),
                          .start = json_num_or(args, "control_guidance_start", 0.0),
                          .end = json_num_or(args, "control_guidance_end", 1.0)};
    return 0;
}

/* The latents of the run (args "latents" names the tensor, NCHW) and its
 * n control images (the first n of pipe.in.control_image_uint8) as float
 * NHWC in [0, 1]. */
static int read_inputs(xl_check *c, const json_t *args, const pipe_request *r, float **latents,
                       float **control, cnet_error *err) {
    const char *lat_name = json_string_value(json_object_get(args, "latents"));
    const st_entry *lat, *img;
    int rc;
    if (!lat_name)
        return cnet_fail(err, CNET_EFORMAT, "%s: run %s: no latents named", c->f->path, c->run);
    if ((rc = mio_need(c->f, lat_name, CNET_F32, 4, &lat, err)) ||
        (rc = mio_need(c->f, "pipe.in.control_image_uint8", CNET_U8, 4, &img, err)))
        return rc;
    const int n = r->n_prompts, H = r->height, W = r->width;
    if (lat->view.shape[0] != n || img->view.shape[0] < n || img->view.shape[1] != H ||
        img->view.shape[2] != W || img->view.shape[3] != 3)
        return cnet_fail(err, CNET_EFORMAT,
                         "%s: run %s: latents / control images do not fit %d prompts at %dx%d",
                         c->f->path, c->run, n, W, H);
    const size_t n_lat = (size_t)cnet_tensor_numel(&lat->view), n_img = (size_t)n * H * W * 3;
    *latents = malloc(n_lat * sizeof(float));
    *control = malloc(n_img * sizeof(float));
    if (!*latents || !*control) return cnet_fail(err, CNET_ENOMEM, "out of memory");
    memcpy(*latents, lat->view.data, n_lat * sizeof(float));
    const uint8_t *px = img->view.data;
    for (size_t i = 0; i < n_img; i++) (*control)[i] = (float)px[i] / 255.0f;
    return 0;
}

static int run_one(xl_check *c, sd_base *base, controlnet_model *cn, const json_t *args,
                   cnet_error *err) {
    const char *lists[4 * PIPE_MAX_IMAGES];
    pipe_request r = {0};
    float *latents = NULL, *control = NULL, *image = NULL;
    cnet_sched_config sc;
    int have_sc = 0;
    int rc = read_args(c, args, &r, lists, err);
    if (!rc) rc = read_inputs(c, args, &r, &latents, &control, err);
    const char *cls = json_string_value(json_object_get(args, "scheduler"));
    int kind = -1;
    for (int k = 0; cls && k < CNET_SCHED_KIND_COUNT; k++)
        if (strcmp(cnet_sched_kind_name((cnet_sched_kind)k), cls) == 0) kind = k;
    if (!rc && kind < 0)
        rc = cnet_fail(err, CNET_EFORMAT, "%s: run %s: unknown scheduler '%s'", c->f->path, c->run,
                       cls ? cls : "(none)");
    if (!rc && !(rc = sd_base_scheduler(base, kind, &sc, err))) have_sc = 1;
    if (!rc && (!(image = malloc((size_t)r.n_prompts * r.height * r.width * 3 * sizeof(float))) ||
                !(c->cn_scale = malloc((size_t)(r.steps > 0 ? r.steps : 1) * sizeof(float)))))
        rc = cnet_fail(err, CNET_ENOMEM, "out of memory");
    c->max_scales = r.steps;
    if (!rc) {
        r.latents = latents;
        r.controlnets[0].model = cn;
        r.controlnets[0].image = control;
        pipe_models models = sd_base_models(base);
        pipe_observer obs = {.user = c,
                             .on_embeds = on_embeds,
                             .on_added = on_added,
                             .on_timesteps = on_timesteps,
                             .on_inputs = on_inputs,
                             .on_control = on_control,
                             .on_step = on_step};
        rc = pipeline_generate(&models, &sc, &r, image, &obs, err);
    }
    if (!rc) {
        char name[GOLDEN_NAME_MAX];
        snprintf(name, sizeof name, "pipe.%s.cn_scale", c->run);
        cnet_tensor s = {CNET_F32, 1, {c->n_scales}, c->cn_scale, -1};
        golden_compare(c->ctx, c->f, name, &s);
        snprintf(name, sizeof name, "pipe.%s.image", c->run);
        cnet_tensor t = {CNET_F32, 4, {r.n_prompts, r.height, r.width, 3}, image, -1};
        golden_compare(c->ctx, c->f, name, &t);
    } else {
        cnet_error_prefix(err, "run %s", c->run);
    }
    if (have_sc) cnet_sched_config_free(&sc);
    free(latents), free(control), free(image), free(c->cn_scale);
    return rc;
}

int golden_check_pipeline_sdxl(golden_ctx *ctx, const st_file *f, cnet_error *err) {
    golden_env env;
    sd_base base;
    controlnet_model cn;
    char dir[PATH_MAX + 32];
    int rc = golden_env_init(&env, ctx, err);
    if (rc) return rc;
    if ((rc = sd_base_open(&base, &env.be, ctx->model_dir, err))) goto no_base;
    snprintf(dir, sizeof dir, "%s/controlnet", ctx->model_dir);
    if ((rc = controlnet_open(&cn, &env.be, dir, err))) goto no_cn;
    rc = check_schedules(ctx, &env, f, &base, err);
    for (int i = 0; i < f->n_meta && !rc; i++) {
        const char *key = f->meta_keys[i];
        char run[GOLDEN_RUN_MAX + 1];
        const int is_run = golden_pipe_run(f, key, run, err);
        if (is_run < 0) rc = is_run;
        if (is_run <= 0) continue;
        json_t *args = json_loads(f->meta_values[i], 0, NULL);
        xl_check c = {.ctx = ctx, .env = &env, .f = f, .run = run};
        rc = json_is_object(args)
                 ? run_one(&c, &base, &cn, args, err)
                 : cnet_fail(err, CNET_EFORMAT, "%s: %s is not a JSON object", f->path, key);
        json_decref(args);
    }
    controlnet_free(&cn);
no_cn:
    sd_base_free(&base);
no_base:
    golden_env_free(&env);
    return rc;
}
