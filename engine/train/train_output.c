/* What training leaves behind: validation images, the final ControlNet in
 * diffusers format and the model card, as train_controlnet.py's
 * log_validation, controlnet.save_pretrained and save_model_card do. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/image/image.h"
#include "engine/pipeline/pipeline.h"
#include "engine/image/preprocess.h"
#include "engine/train/train_internal.h"

/* The script's validation: 20 UniPC steps at the default guidance. */
#define VALIDATION_STEPS 20
/* the pipelines' default guidance_scale: StableDiffusionControlNetPipeline's
 * and StableDiffusionXLControlNetPipeline's (the scripts pass none) */
#define VALIDATION_GUIDANCE 7.5f
#define VALIDATION_GUIDANCE_XL 5.0f

/* The (prompt, image) pairs as log_validation pairs them. */
static int validation_pairs(const train_options *o) {
    return o->n_validation_prompts > o->n_validation_images ? o->n_validation_prompts
                                                            : o->n_validation_images;
}

static void float_to_rgb8(uint8_t *dst, const float *src, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float v = src[i] * 255.0f + 0.5f;
        dst[i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
    }
}

/* One grid: the conditioning image, then the generated ones, left to right. */
static int validate_pair(trainer *t, int pair, const char *path, cnet_error *err) {
    const train_options *o = t->o;
    const char *prompt = o->validation_prompt[o->n_validation_prompts == 1 ? 0 : pair];
    const char *image_path = o->validation_image[o->n_validation_images == 1 ? 0 : pair];
    const int R = o->resolution;
    int n = o->num_validation_images > 0 ? o->num_validation_images : 1;
    if (n > PIPE_MAX_IMAGES) n = PIPE_MAX_IMAGES;
    image_rgb8 src = {0}, grid = {0};
    float *control = malloc((size_t)R * R * 3 * sizeof(float));
    float *out = malloc((size_t)n * R * R * 3 * sizeof(float));
    cnet_sched_config sc;
    int have_sc = 0;
    int rc = control && out ? 0 : cnet_fail(err, CNET_ENOMEM, "out of memory");
    if (!rc) rc = image_load(&src, image_path, 0, err);
    if (!rc) rc = preprocess_control(control, &src, R, R, err);
    if (!rc && !(rc = sd_base_scheduler(t->base, CNET_SCHED_UNIPC, &sc, err))) have_sc = 1;
    if (!rc) {
        pipe_request req = {.prompt = prompt,
                            .steps = VALIDATION_STEPS,
                            .guidance = t->have_sdxl ? VALIDATION_GUIDANCE_XL : VALIDATION_GUIDANCE,
                            .seed = o->seed,
                            .width = R,
                            .height = R,
                            .num_images = n,
                            .n_controlnets = 1};
        req.controlnets[0] = (pipe_controlnet){
            .model = &t->cn, .image = control, .scale = 1.0f, .start = 0.0f, .end = 1.0f};
        /* the VAE the images were encoded with, as the scripts' pipeline(vae=vae) */
        pipe_models models = sd_base_models(t->base);
        models.vae = t->vae;
        models.vae_upcast = t->have_sdxl && t->vae->cfg.force_upcast;
        rc = pipeline_generate(&models, &sc, &req, out, NULL, err);
    }
    if (!rc) rc = image_alloc(&grid, R * (n + 1), R, err);
    if (!rc) {
        for (int y = 0; y < R; y++) {
            uint8_t *row = grid.data + (size_t)y * grid.width * 3;
            float_to_rgb8(row, control + (size_t)y * R * 3, (size_t)R * 3);
            for (int i = 0; i < n; i++)
                float_to_rgb8(row + (size_t)(i + 1) * R * 3, out + ((size_t)i * R + y) * R * 3,
                              (size_t)R * 3);
        }
        image_text text = {"parameters", prompt};
        rc = image_save(path, &grid, &text, 1, 0, err);
    }
    if (!rc)
        rc = train_tracker_log_image(&t->tracker, t->global_step, prompt, path, grid.height,
                                     grid.width, err);
    if (have_sc) cnet_sched_config_free(&sc);
    image_free(&src);
    image_free(&grid);
    free(control);
    free(out);
    return rc ? cnet_error_prefix(err, "validation image %d", pair) : 0;
}

int train_validate(trainer *t, cnet_error *err) {
    char dir[PATH_MAX], path[PATH_MAX + 64];
    snprintf(dir, sizeof dir, "%s/logs/validation", t->o->output_dir);
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return cnet_fail(err, CNET_EIO, "cannot create %s: %s", dir, strerror(errno));
    for (int i = 0; i < validation_pairs(t->o); i++) {
        snprintf(path, sizeof path, "%s/step_%d_%d.png", dir, t->global_step, i);
        int rc = validate_pair(t, i, path, err);
        if (rc) return rc;
        if (t->hooks && t->hooks->on_validation)
            t->hooks->on_validation(t->hooks->user, t->global_step, path);
    }
    return 0;
}

/* The model card of save_model_card, with the YAML front matter the Hub reads. */
static int write_model_card(trainer *t, cnet_error *err) {
    const train_options *o = t->o;
    const char *base = strrchr(o->pretrained_model_name_or_path, '/');
    base = base && base[1] ? base + 1 : o->pretrained_model_name_or_path;
    if (o->base_model_id) base = o->base_model_id;
    size_t cap = 4096 + (size_t)validation_pairs(o) * 1200;
    char *card = malloc(cap);
    if (!card) return cnet_fail(err, CNET_ENOMEM, "out of memory");
    /* train_controlnet_sdxl.py's card for an SDXL base: its license and tags */
    const int xl = t->have_sdxl;
    int len =
        snprintf(card, cap,
                 "---\nlicense: %s\nbase_model: %s\nlibrary_name: diffusers\n"
                 "tags:\n- %s\n- %s\n- text-to-image\n"
                 "- diffusers\n- controlnet\n- diffusers-training\n- cnet\ninference: true\n"
                 "---\n\n# controlnet - %s\n\nThese are ControlNet weights trained on %s with "
                 "a new type of conditioning, by cnet (a C implementation of diffusers' "
                 "%s): %d steps at resolution %d, batch size %d, learning "
                 "rate %g (%s), mixed precision %s.\n",
                 xl ? "openrail++" : "creativeml-openrail-m", base,
                 xl ? "stable-diffusion-xl" : "stable-diffusion",
                 xl ? "stable-diffusion-xl-diffusers" : "stable-diffusion-diffusers", base, base,
                 xl ? "train_controlnet_sdxl.py" : "train_controlnet.py", t->global_step,
                 o->resolution, o->train_batch_size, o->learning_rate, o->lr_scheduler,
                 cnet_precision_name(t->be->precision));
    if (validation_pairs(o) > 0 && len > 0 && (size_t)len < cap)
        len +=
            snprintf(card + len, cap - (size_t)len, "\nYou can find some example images below.\n");
    for (int i = 0; i < validation_pairs(o) && len > 0 && (size_t)len < cap; i++)
        len += snprintf(card + len, cap - (size_t)len,
                        "\nprompt: %.1000s\n![images_%d](./images_%d.png)\n",
                        o->validation_prompt[o->n_validation_prompts == 1 ? 0 : i], i, i);
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/README.md", o->output_dir);
    int rc = len > 0 && (size_t)len < cap ? atomic_write_file(path, card, (size_t)len, err)
                                          : cnet_fail(err, CNET_ELIMIT, "model card too long");
    free(card);
    return rc;
}

int train_save_final(trainer *t, cnet_error *err) {
    const train_options *o = t->o;
    char path[PATH_MAX];
    const char *keys[] = {"format"}, *values[] = {"pt"};
    int rc;
    snprintf(path, sizeof path, "%s/config.json", o->output_dir);
    if ((rc = atomic_write_json(path, t->cn_config, err))) return rc;
    snprintf(path, sizeof path, "%s/diffusion_pytorch_model.safetensors", o->output_dir);
    if ((rc = params_save(&t->cn.params, path, keys, values, 1, err))) return rc;
    for (int i = 0; i < validation_pairs(o); i++) {
        snprintf(path, sizeof path, "%s/images_%d.png", o->output_dir, i);
        if ((rc = validate_pair(t, i, path, err))) return rc;
        if (t->hooks && t->hooks->on_validation)
            t->hooks->on_validation(t->hooks->user, t->global_step, path);
    }
    return write_model_card(t, err);
}
