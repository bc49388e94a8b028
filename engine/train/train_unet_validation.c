/* cnet train-unet's validation images and model card, as diffusers'
 * examples/text_to_image/train_text_to_image.py (v0.27.2) makes them:
 *
 *   log_validation: a StableDiffusionPipeline of the base with the trained
 *     UNet (the EMA weights with --use_ema: the script's ema_unet.store,
 *     copy_to, and restore after), the scheduler of the base folder, 20
 *     steps, the pipeline's default guidance 7.5 and size (unet
 *     sample_size x the VAE factor), one image per --validation_prompts
 *     entry; run after the last step of every epoch e with
 *     e % --validation_epochs == 0 (also when training ends mid-epoch).
 *   the final round: the same images from the saved weights, then
 *     save_model_card: val_imgs_grid.png (make_image_grid(images, 1, n),
 *     left to right) and README.md (base, dataset, prompts, the grid, the
 *     hyper-parameters) in output_dir.
 *
 * Where the images go: logs/validation/step_<global_step>_<i>.png and the
 * --report_to trackers (tag = the prompt), as the ControlNet trainer writes
 * its own (engine/train/train_output.c). RNG: the script draws every
 * prompt's latents from one torch.Generator seeded with --seed; cnet seeds
 * each prompt's Philox stream with --seed (as the ControlNet trainer does),
 * so the images are reproducible from --seed but not torch's pixels. The
 * card writes the train_data_dir where the script writes --dataset_name.
 * Not here: the pipeline folder itself (train_unet_output.c). */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/image/image.h"
#include "engine/pipeline/pipeline.h"
#include "engine/pipeline/sd_base.h"
#include "engine/train/train_internal.h"

/* log_validation's num_inference_steps */
#define T2I_VALIDATION_STEPS 20
/* StableDiffusionPipeline.__call__'s default guidance_scale (the script passes none) */
#define T2I_VALIDATION_GUIDANCE 7.5f
/* Bytes of the model card beyond its prompts. */
#define T2I_CARD_BYTES 4096

/* The pipeline's default size: unet.config.sample_size * vae_scale_factor. */
static int validation_size(const trainer *t, int *size, cnet_error *err) {
    const json_t *s = json_object_get(t->cn_config, "sample_size");
    if (!json_is_integer(s) || json_integer_value(s) < 1 || json_integer_value(s) > 1024)
        return cnet_fail(err, CNET_EFORMAT,
                         "unet/config.json: no sample_size in 1..1024 (the validation image "
                         "size is sample_size x the VAE factor)");
    *size = (int)json_integer_value(s) * vae_factor(t->vae);
    return 0;
}

/* StableDiffusionPipeline(prompt, num_inference_steps=20) with the UNet's
 * current weights: out [S, S, 3] in [0, 1]. */
static int render(trainer *t, const char *prompt, int S, float *out, cnet_error *err) {
    cnet_sched_config sc;
    int rc = sd_base_scheduler(t->base, -1, &sc, err);
    if (rc) return rc;
    const pipe_request req = {.prompt = prompt,
                              .steps = T2I_VALIDATION_STEPS,
                              .guidance = T2I_VALIDATION_GUIDANCE,
                              .seed = t->o->seed,
                              .width = S,
                              .height = S,
                              .num_images = 1};
    pipe_models models = sd_base_models(t->base);
    models.vae = t->vae;
    rc = pipeline_generate(&models, &sc, &req, out, NULL, err);
    cnet_sched_config_free(&sc);
    return rc;
}

static void float_to_rgb8(uint8_t *dst, const float *src, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float v = src[i] * 255.0f + 0.5f;
        dst[i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
    }
}

/* Renders every prompt into images [n, S, S, 3] (allocated, the caller frees). */
static int render_all(trainer *t, int *S, float **images, cnet_error *err) {
    const int n = t->o->n_validation_prompts_t2i;
    int rc = validation_size(t, S, err);
    if (rc) return rc;
    const size_t one = (size_t)*S * *S * 3;
    if (!(*images = malloc((size_t)n * one * sizeof(float))))
        return cnet_fail(err, CNET_ENOMEM, "out of memory for %d validation images", n);
    for (int i = 0; i < n && !rc; i++)
        if ((rc = render(t, t->o->validation_prompts[i], *S, *images + i * one, err)))
            cnet_error_prefix(err, "validation prompt %d", i);
    return rc;
}

/* Writes images[i] to path (PNG with the prompt) and logs it to the trackers. */
static int save_one(trainer *t, int i, const float *image, int S, const char *path,
                    cnet_error *err) {
    image_rgb8 img = {0};
    const char *prompt = t->o->validation_prompts[i];
    int rc = image_alloc(&img, S, S, err);
    if (!rc) {
        float_to_rgb8(img.data, image, (size_t)S * S * 3);
        image_text text = {"parameters", prompt};
        rc = image_save(path, &img, &text, 1, 0, err);
    }
    if (!rc) rc = train_tracker_log_image(&t->tracker, t->global_step, prompt, path, S, S, err);
    image_free(&img);
    if (!rc && t->hooks && t->hooks->on_validation)
        t->hooks->on_validation(t->hooks->user, t->global_step, path);
    return rc;
}

/* log_validation with the weights the UNet has now. */
static int log_validation(trainer *t, cnet_error *err) {
    char dir[PATH_MAX], path[PATH_MAX + 64];
    snprintf(dir, sizeof dir, "%s/logs/validation", t->o->output_dir);
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return cnet_fail(err, CNET_EIO, "cannot create %s: %s", dir, strerror(errno));
    float *images = NULL;
    int S = 0, rc = render_all(t, &S, &images, err);
    for (int i = 0; i < t->o->n_validation_prompts_t2i && !rc; i++) {
        snprintf(path, sizeof path, "%s/step_%d_%d.png", dir, t->global_step, i);
        rc = save_one(t, i, images + (size_t)i * S * S * 3, S, path, err);
    }
    free(images);
    return rc;
}

int train_unet_validate(trainer *t, cnet_error *err) {
    if (!t->have_ema) return log_validation(t, err);
    /* ema_unet.store(unet); ema_unet.copy_to(unet); ...; ema_unet.restore(unet)
     * (the EMA's scratch holds the live weights: ema_step overwrites it
     * before it reads it) */
    cnet_params *live = &t->base->unet.params;
    cnet_backend *be = live->be;
    const size_t bytes = live->total * sizeof(float);
    be->copy(be, t->ema.tmp, live->block, bytes);
    be->copy(be, live->block, t->ema.shadow.block, bytes);
    int rc = log_validation(t, err);
    be->copy(be, live->block, t->ema.tmp, bytes);
    return rc;
}

/* Appends Python's repr of the list of strings (single quotes, \ and '
 * escaped) to card at *len; returns nonzero when it does not fit. */
static int append_repr(char *card, size_t cap, int *len, const char *const *s, int n) {
    size_t at = (size_t)*len;
    if (at + 1 >= cap) return -1;
    card[at++] = '[';
    for (int i = 0; i < n; i++) {
        if (at + 4 >= cap) return -1;
        if (i) card[at++] = ',', card[at++] = ' ';
        card[at++] = '\'';
        for (const char *c = s[i]; *c; c++) {
            if (at + 4 >= cap) return -1;
            if (*c == '\\' || *c == '\'') card[at++] = '\\';
            card[at++] = *c;
        }
        card[at++] = '\'';
    }
    card[at++] = ']';
    card[at] = '\0';
    *len = (int)at;
    return 0;
}

/* save_model_card's README.md (with the YAML front matter the Hub reads). */
static int write_model_card(trainer *t, int with_grid, cnet_error *err) {
    const train_options *o = t->o;
    const char *repo = strrchr(o->output_dir, '/');
    repo = repo && repo[1] ? repo + 1 : o->output_dir;
    const int n = o->n_validation_prompts_t2i;
    size_t cap = T2I_CARD_BYTES + 2 * strlen(o->pretrained_model_name_or_path) + 2 * strlen(repo) +
                 strlen(o->train_data_dir);
    for (int i = 0; i < n; i++) cap += 2 * strlen(o->validation_prompts[i]) + 4; /* escaped */
    if (n > 0) cap += strlen(o->validation_prompts[0]);
    char *card = malloc(cap);
    if (!card) return cnet_fail(err, CNET_ENOMEM, "out of memory");
    double lr = o->learning_rate;
    if (o->scale_lr) lr *= (double)o->gradient_accumulation_steps * o->train_batch_size;
    int len = snprintf(card, cap,
                       "---\nlicense: creativeml-openrail-m\nbase_model: %s\n"
                       "library_name: diffusers\ntags:\n- stable-diffusion\n"
                       "- stable-diffusion-diffusers\n- text-to-image\n- diffusers\n"
                       "- diffusers-training\n- cnet\ninference: true\n---\n\n"
                       "# Text-to-image finetuning - %s\n\n"
                       "This pipeline was finetuned from **%s** on the **%s** dataset, by cnet "
                       "(a C implementation of diffusers' train_text_to_image.py). Below are some "
                       "example images generated with the finetuned pipeline using the following "
                       "prompts: ",
                       o->pretrained_model_name_or_path, repo, o->pretrained_model_name_or_path,
                       o->train_data_dir);
    int rc = len > 0 && (size_t)len < cap ? 0 : -1;
    if (!rc && n == 0) len += snprintf(card + len, cap - (size_t)len, "None");
    if (!rc && n > 0) rc = append_repr(card, cap, &len, o->validation_prompts, n);
    if (!rc && (size_t)len < cap)
        len += snprintf(card + len, cap - (size_t)len, ": \n\n%s\n\n## Pipeline usage\n\n",
                        with_grid ? "![val_imgs_grid](./val_imgs_grid.png)\n" : "");
    if (!rc && (size_t)len < cap)
        len += snprintf(card + len, cap - (size_t)len,
                        "You can use the pipeline like so:\n\n```python\nfrom diffusers import "
                        "DiffusionPipeline\nimport torch\n\npipeline = "
                        "DiffusionPipeline.from_pretrained(\"%s\", torch_dtype=torch.float16)\n"
                        "prompt = \"%s\"\nimage = pipeline(prompt).images[0]\n"
                        "image.save(\"my_image.png\")\n```\n\n## Training info\n\n"
                        "These are the key hyperparameters used during training:\n\n"
                        "* Epochs: %d\n* Learning rate: %g\n* Batch size: %d\n"
                        "* Gradient accumulation steps: %d\n* Image resolution: %d\n"
                        "* Mixed-precision: %s\n",
                        repo, n > 0 ? o->validation_prompts[0] : "", t->num_epochs, lr,
                        o->train_batch_size, o->gradient_accumulation_steps, o->resolution,
                        cnet_precision_name(o->mixed_precision));
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/README.md", o->output_dir);
    rc = !rc && len > 0 && (size_t)len < cap
             ? atomic_write_file(path, card, (size_t)len, err)
             : cnet_fail(err, CNET_ELIMIT, "model card longer than %zu bytes", cap);
    free(card);
    return rc;
}

/* make_image_grid(images, rows=1, cols=n) saved as val_imgs_grid.png. */
static int save_grid(trainer *t, const float *images, int S, cnet_error *err) {
    const int n = t->o->n_validation_prompts_t2i;
    image_rgb8 grid = {0};
    char path[PATH_MAX];
    int rc = image_alloc(&grid, S * n, S, err);
    for (int y = 0; y < S && !rc; y++)
        for (int i = 0; i < n; i++)
            float_to_rgb8(grid.data + ((size_t)y * grid.width + (size_t)i * S) * 3,
                          images + (((size_t)i * S + y) * S) * 3, (size_t)S * 3);
    snprintf(path, sizeof path, "%s/val_imgs_grid.png", t->o->output_dir);
    if (!rc) rc = image_save(path, &grid, NULL, 0, 0, err);
    image_free(&grid);
    if (!rc && t->hooks && t->hooks->on_validation)
        t->hooks->on_validation(t->hooks->user, t->global_step, path);
    return rc;
}

int train_unet_finish(trainer *t, cnet_error *err) {
    int rc = 0, S = 0;
    float *images = NULL;
    if (t->o->n_validation_prompts_t2i > 0) {
        /* the saved weights: ema_unet.copy_to(unet) before save_pretrained */
        cnet_params *live = &t->base->unet.params;
        if (t->have_ema)
            live->be->copy(live->be, live->block, t->ema.shadow.block, live->total * sizeof(float));
        rc = render_all(t, &S, &images, err);
        if (!rc) rc = save_grid(t, images, S, err);
    }
    if (!rc) rc = write_model_card(t, t->o->n_validation_prompts_t2i > 0, err);
    free(images);
    return rc;
}
