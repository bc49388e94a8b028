/* Golden check of goldens/pipeline.safetensors: every recorded run of
 * StableDiffusionControlNetPipeline (metadata "pipe.<run>.args": scheduler
 * class, steps, guidance, conditioning scale, guess mode, negative prompt or
 * not, eta, size) through engine/pipeline/pipeline.c, comparing the prompt
 * embeddings, the timesteps, every step's raw UNet output and latents, and
 * the final image. Prompts come from the metadata ("pipe.prompts",
 * "pipe.negative_prompts"), the initial latents and control image from
 * pipe.in.*. pipeline_generate checks the backend's status before each
 * observer callback and before the image, so nothing a failed backend left
 * unwritten is compared: the run returns its error instead. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/core/layout.h"
#include "engine/pipeline/pipeline.h"
#include "engine/pipeline/sd_base.h"
#include "server/golden/golden.h"
#include "server/golden/golden_io.h"
#include "server/golden/model_io.h"

typedef struct pipe_check {
    golden_ctx *ctx;
    golden_env *env;
    const st_file *f;
    const char *run;
    int recorded_steps; /* steps the golden file holds */
} pipe_check;

static void on_embeds(void *user, const float *embeds, int rows, int Nt, int D) {
    pipe_check *c = user;
    char name[GOLDEN_NAME_MAX];
    snprintf(name, sizeof name, "pipe.%s.prompt_embeds", c->run);
    const int64_t shape[3] = {rows, Nt, D};
    golden_compare_nhwc(c->ctx, c->env, c->f, name, embeds, 3, shape);
}

/* The timesteps as the golden stores them (int64, or float32 for Euler).
 * PNDM runs num_inference_steps + 1 steps, but the generator recorded only
 * the first num_inference_steps timesteps, noise predictions and latents;
 * the final image covers the extra step. So only the recorded prefix is
 * compared. */
static void on_timesteps(void *user, const float *timesteps, int n) {
    pipe_check *c = user;
    char name[GOLDEN_NAME_MAX];
    snprintf(name, sizeof name, "pipe.%s.timesteps", c->run);
    const st_entry *e = st_find(c->f, name);
    if (e && e->view.ndim == 1 && e->view.shape[0] < n) n = (int)e->view.shape[0];
    c->recorded_steps = n;
    if (e && e->view.dtype == CNET_F32) {
        cnet_tensor t = {CNET_F32, 1, {n}, (void *)timesteps, -1};
        golden_compare(c->ctx, c->f, name, &t);
        return;
    }
    int64_t *ids = malloc((size_t)(n ? n : 1) * sizeof *ids);
    if (!ids) return;
    for (int i = 0; i < n; i++) ids[i] = (int64_t)timesteps[i];
    cnet_tensor t = {CNET_I64, 1, {n}, ids, -1};
    golden_compare(c->ctx, c->f, name, &t);
    free(ids);
}

static int on_step(void *user, int i, int n, const float *noise_pred, int rows,
                   const float *latents, int N, int h, int w, int C) {
    pipe_check *c = user;
    char name[GOLDEN_NAME_MAX];
    (void)n;
    if (i >= c->recorded_steps) return 0;
    snprintf(name, sizeof name, "pipe.%s.noise_pred.%d", c->run, i);
    const int64_t ns[4] = {rows, C, h, w}, ls[4] = {N, C, h, w};
    golden_compare_nhwc(c->ctx, c->env, c->f, name, noise_pred, 4, ns);
    snprintf(name, sizeof name, "pipe.%s.latents.%d", c->run, i);
    golden_compare_nhwc(c->ctx, c->env, c->f, name, latents, 4, ls);
    return 0;
}

static int run_one(pipe_check *c, golden_pipe_models *l, const json_t *args, char *const *prompts,
                   char *const *negatives, const float *latents, const float *control, int B,
                   cnet_error *err) {
    const char *cls = json_string_value(json_object_get(args, "scheduler"));
    int kind = cls ? golden_sched_kind(cls) : -1;
    if (kind < 0)
        return cnet_fail(err, CNET_EFORMAT, "%s: run %s: unknown scheduler '%s'", c->f->path,
                         c->run, cls ? cls : "(none)");
    cnet_sched_config sc;
    int rc = sd_base_scheduler(&l->base, kind, &sc, err);
    if (rc) return rc;
    pipe_request r = {
        .prompts = (const char *const *)prompts,
        .negative_prompts = json_is_true(json_object_get(args, "negative_prompt"))
                                ? (const char *const *)negatives
                                : NULL,
        .n_prompts = B,
        .steps = (int)json_integer_value(json_object_get(args, "num_inference_steps")),
        .guidance = (float)json_number_value(json_object_get(args, "guidance_scale")),
        .latents = latents,
        .width = (int)json_integer_value(json_object_get(args, "width")),
        .height = (int)json_integer_value(json_object_get(args, "height")),
        .num_images = 1,
        .guess_mode = json_is_true(json_object_get(args, "guess_mode")),
        .eta = (float)json_number_value(json_object_get(args, "eta")),
        .n_controlnets = 1,
    };
    r.controlnets[0] = (pipe_controlnet){
        .model = &l->cn,
        .image = control,
        .n_images = B,
        .scale = (float)json_number_value(json_object_get(args, "controlnet_conditioning_scale")),
        .start = 0.0f,
        .end = 1.0f};
    pipe_models models = sd_base_models(&l->base);
    pipe_observer obs = {
        .user = c, .on_embeds = on_embeds, .on_timesteps = on_timesteps, .on_step = on_step};
    float *image = malloc((size_t)B * r.height * r.width * 3 * sizeof(float));
    if (!image) rc = cnet_fail(err, CNET_ENOMEM, "out of memory");
    if (!rc) rc = pipeline_generate(&models, &sc, &r, image, &obs, err);
    if (!rc) {
        char name[GOLDEN_NAME_MAX];
        snprintf(name, sizeof name, "pipe.%s.image", c->run);
        cnet_tensor t = {CNET_F32, 4, {B, r.height, r.width, 3}, image, -1};
        golden_compare(c->ctx, c->f, name, &t);
    } else {
        cnet_error_prefix(err, "run %s", c->run);
    }
    free(image);
    cnet_sched_config_free(&sc);
    return rc;
}

int golden_check_pipeline(golden_ctx *ctx, const st_file *f, cnet_error *err) {
    const st_entry *lat, *img;
    int rc;
    if ((rc = mio_need(f, "pipe.in.latents", CNET_F32, 4, &lat, err)) ||
        (rc = mio_need(f, "pipe.in.control_image", CNET_F32, 4, &img, err)))
        return rc;
    const int B = (int)img->view.shape[0], H = (int)img->view.shape[2], W = (int)img->view.shape[3];
    if (B < 1 || B > PIPE_MAX_IMAGES)
        return cnet_fail(err, CNET_EFORMAT, "%s: %d control images (1..%d)", f->path, B,
                         PIPE_MAX_IMAGES);
    char *prompts[PIPE_MAX_IMAGES] = {0}, *negatives[PIPE_MAX_IMAGES] = {0};
    float *latents = malloc((size_t)cnet_tensor_numel(&lat->view) * sizeof(float));
    float *control = malloc((size_t)B * H * W * 3 * sizeof(float));
    golden_env env;
    golden_pipe_models l;
    memset(&l, 0, sizeof l);
    if (golden_meta_strings(f, "pipe.prompts", prompts, B) != 0) {
        rc = cnet_fail(err, CNET_EFORMAT,
                       "%s: metadata \"pipe.prompts\" is not a list of %d prompts", f->path, B);
        goto out;
    }
    /* Runs without negative prompts never read them. */
    golden_meta_strings(f, "pipe.negative_prompts", negatives, B);
    if (!latents || !control) {
        rc = cnet_fail(err, CNET_ENOMEM, "out of memory");
        goto out;
    }
    memcpy(latents, lat->view.data, (size_t)cnet_tensor_numel(&lat->view) * sizeof(float));
    layout_nchw_to_nhwc(control, (const float *)img->view.data, B, 3, H, W);
    if ((rc = golden_env_init(&env, ctx, err))) goto out;
    if (!(rc = golden_pipe_models_open(&l, &env.be, ctx->model_dir, err))) {
        for (int i = 0; i < f->n_meta && !rc; i++) {
            const char *key = f->meta_keys[i];
            char run[GOLDEN_RUN_MAX + 1];
            const int is_run = golden_pipe_run(f, key, run, err);
            if (is_run < 0) rc = is_run;
            if (is_run <= 0) continue;
            json_t *args = json_loads(f->meta_values[i], 0, NULL);
            pipe_check c = {.ctx = ctx, .env = &env, .f = f, .run = run};
            rc = json_is_object(args)
                     ? run_one(&c, &l, args, prompts, negatives, latents, control, B, err)
                     : cnet_fail(err, CNET_EFORMAT, "%s: %s is not a JSON object", f->path, key);
            json_decref(args);
        }
    }
    golden_pipe_models_free(&l);
    golden_env_free(&env);
out:
    for (int i = 0; i < PIPE_MAX_IMAGES; i++) free(prompts[i]), free(negatives[i]);
    free(latents);
    free(control);
    return rc;
}
