/* cnet train-vae's loop (train_vae.h): the whole AutoencoderKL trained on a
 * dataset's images. Per optimizer step: the batch's pixels (-1..1, the
 * target images as train_text_to_image.py's transforms make them), the
 * loss's gradient (train_vae_step.h: encoder, latent sample with eps from
 * Philox(seed) at the step's block, decoder, MSE + kl_weight * KL, the
 * backward of both halves), clip_grad_norm_ + AdamW
 * (adam_state.h) at the LR schedule's rate (lr_schedule.h). Checkpoints are
 * checkpoint.h's with the weights in vae/; a resumed run seeks the dataset
 * to the saved position and continues bit-exactly. Validation: the first
 * batch's images over their reconstructions (the encoder's mean decoded),
 * output_dir/validation/step_<N>.png at every checkpoint and at the end.
 * The result: output_dir/vae/{config.json, diffusion_pytorch_model.safetensors}
 * and output_dir/loss.csv (step, reconstruction MSE, KL per step).
 *
 * Not here: the model's passes (engine/models/vae*.c), the command line
 * (server/cli/cmd_train_vae.c). */
#include "engine/train/train_vae.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "engine/config/model_files.h"
#include "engine/core/atomic_file.h"
#include "engine/core/philox.h"
#include "engine/data/dataset.h"
#include "engine/image/image.h"
#include "engine/models/vae.h"
#include "engine/train/adam_state.h"
#include "engine/train/checkpoint.h"
#include "engine/train/loss_scale.h"
#include "engine/train/lr_schedule.h"
#include "engine/train/train_decode.h"
#include "engine/train/train_vae_step.h"

/* The Philox block of step s's latent noise: a tag of its own above any
 * step (trainer.c's layout: tag << 58 | step << 26). */
#define VAE_RNG_TAG 7ull
#define VAE_RNG_TRANSFORM_TAG 8ull
/* Images in a validation grid (the first batch's first ones). */
#define VAE_VALIDATION_IMAGES 4
#define VAE_MODEL_DIR "vae"

typedef struct vae_trainer {
    const train_options *o;
    cnet_backend *be;
    vae_model vae;
    json_t *config; /* the VAE's config.json, saved with it */
    cnet_params grads;
    adam_state adam;
    dataset ds;
    train_decode decode;
    vae_step step;
    lr_schedule lr;
    int B, R, h, L, global_step, max_steps;
    float *pixels, *sumsq; /* device */
    float *h_eps;          /* host */
    float *val;            /* host: the first batch's pixels, [n_val, R, R, 3] */
    int n_val;
    FILE *log;
    int have_vae, have_grads, have_adam, have_ds, have_decode, have_step;
    /* --mixed_precision fp16: GradScaler's dynamic loss scaling, as
     * train-unet: skipped steps count in global_step but neither in AdamW's
     * step nor the LR schedule's (both advance with global_step - skipped) */
    int loss_scaling;
    loss_scale scaler;
} vae_trainer;

static uint64_t vae_rng(uint64_t tag, int step) {
    return tag << 58 | (uint64_t)(unsigned)step << 26;
}

static int oom(cnet_error *err) { return cnet_fail(err, CNET_ENOMEM, "train-vae: out of memory"); }

/* DIR/vae when it is a pipeline folder, else DIR. */
static int open_vae(vae_trainer *t, cnet_error *err) {
    const char *src = t->o->pretrained_model_name_or_path;
    char dir[PATH_MAX], config[PATH_MAX], weights[PATH_MAX];
    struct stat st;
    snprintf(dir, sizeof dir, "%s/" VAE_MODEL_DIR, src);
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) snprintf(dir, sizeof dir, "%s", src);
    int rc = vae_open(&t->vae, t->be, dir, err);
    if (rc) return rc;
    t->have_vae = 1;
    if ((rc = params_own(&t->vae.params, err)) ||
        (rc = model_component_files(config, weights, PATH_MAX, dir, err)))
        return rc;
    json_error_t je;
    if (!(t->config = json_load_file(config, 0, &je)))
        return cnet_fail(err, CNET_EFORMAT, "%s: %s", config, je.text);
    return 0;
}

static int open_data(vae_trainer *t, cnet_error *err) {
    const train_options *o = t->o;
    /* the readers yield a conditioning image too: the image column is read
     * as that (decoded, never used), as train-unet does */
    dataset_options dopt = {.image_column = o->image_column,
                            .conditioning_image_column =
                                o->image_column ? o->image_column : "image",
                            .caption_column = o->caption_column,
                            .max_train_samples = o->max_train_samples,
                            .seed = o->seed};
    int rc = dataset_open(&t->ds, o->train_data_dir, &dopt, err);
    if (rc && !o->image_column) {
        cnet_error first = *err;
        dopt.conditioning_image_column = "file_name"; /* an imagefolder's */
        if ((rc = dataset_open(&t->ds, o->train_data_dir, &dopt, err))) *err = first;
    }
    if (rc) return rc;
    t->have_ds = 1;
    const train_transforms tf = {.random_crop = o->random_crop,
                                 .random_flip = o->random_flip,
                                 .seed = o->seed,
                                 .rng_base = vae_rng(VAE_RNG_TRANSFORM_TAG, 0)};
    rc = train_decode_init(&t->decode, &t->ds, NULL, t->B, t->R, o->dataloader_num_workers, &tf,
                           err);
    t->have_decode = !rc;
    return rc;
}

static int alloc_buffers(vae_trainer *t, cnet_error *err) {
    cnet_backend *be = t->be;
    const size_t img = (size_t)t->B * t->R * t->R * 3, lat = (size_t)t->B * t->h * t->h * t->L;
    t->pixels = be->alloc(be, img * sizeof(float));
    t->sumsq = be->alloc(be, sizeof(float));
    t->h_eps = malloc(lat * sizeof(float));
    t->val = malloc((size_t)VAE_VALIDATION_IMAGES * t->R * t->R * 3 * sizeof(float));
    if (!t->pixels || !t->sumsq || !t->h_eps || !t->val) return oom(err);
    int rc = vae_step_init(&t->step, &t->vae, t->B, t->R, err);
    t->have_step = !rc;
    return rc;
}

static void close_trainer(vae_trainer *t) {
    cnet_backend *be = t->be;
    if (t->pixels) be->free(be, t->pixels);
    if (t->sumsq) be->free(be, t->sumsq);
    free(t->h_eps), free(t->val);
    if (t->have_step) vae_step_free(&t->step);
    if (t->have_decode) train_decode_free(&t->decode);
    if (t->have_ds) dataset_free(&t->ds);
    if (t->have_adam) adam_state_free(&t->adam);
    if (t->have_grads) params_free(&t->grads);
    if (t->have_vae) vae_free(&t->vae);
    if (t->log) fclose(t->log);
    json_decref(t->config);
}

static int make_dir(const char *path, cnet_error *err) {
    if (mkdir(path, 0755) == 0 || errno == EEXIST) return 0;
    return cnet_fail(err, CNET_EIO, "%s: cannot create the folder", path);
}

/* The first VAE_VALIDATION_IMAGES validation images over their
 * reconstructions (the mean latent decoded): validation/step_<step>.png. */
static int validate(vae_trainer *t, cnet_error *err) {
    cnet_backend *be = t->be;
    const int n = t->n_val, R = t->R;
    const size_t img = (size_t)R * R * 3;
    char path[PATH_MAX];
    vae_step *s = &t->step;
    be->upload(be, t->pixels, t->val, n * img * sizeof(float));
    int rc = vae_encode(&t->vae, &s->scratch, s->moments, t->pixels, n, R, R, err);
    const long hw = (long)t->h * t->h;
    if (rc) return rc;
    be->download(be, s->h_mom, s->moments, (size_t)n * hw * 2 * t->L * sizeof(float));
    for (long p = 0; p < n * hw; p++)
        for (int c = 0; c < t->L; c++) s->h_z[p * t->L + c] = s->h_mom[p * 2 * t->L + c];
    be->upload(be, s->z, s->h_z, (size_t)n * hw * t->L * sizeof(float));
    if ((rc = vae_decode(&t->vae, &s->scratch, s->recon, s->z, n, t->h, t->h, err))) return rc;
    float *rec = malloc(n * img * sizeof(float));
    image_rgb8 grid = {0};
    if (!rec || image_alloc(&grid, n * R, 2 * R, err)) {
        free(rec);
        return rc ? rc : oom(err);
    }
    be->download(be, rec, s->recon, n * img * sizeof(float));
    for (int row = 0; row < 2; row++)
        for (int i = 0; i < n; i++)
            for (int y = 0; y < R; y++)
                for (int x = 0; x < R; x++)
                    for (int c = 0; c < 3; c++) {
                        const float *src = row ? rec : t->val;
                        float v = (src[i * img + ((size_t)y * R + x) * 3 + c] + 1.0f) * 127.5f;
                        v = v < 0 ? 0 : v > 255 ? 255 : v;
                        grid.data[(((size_t)row * R + y) * n * R + (size_t)i * R + x) * 3 + c] =
                            (uint8_t)(v + 0.5f);
                    }
    free(rec);
    snprintf(path, sizeof path, "%s/validation", t->o->output_dir);
    rc = make_dir(path, err);
    snprintf(path, sizeof path, "%s/validation/step_%d.png", t->o->output_dir, t->global_step);
    if (!rc) rc = image_save(path, &grid, NULL, 0, 0, err);
    image_free(&grid);
    return rc;
}

static int save_checkpoint(vae_trainer *t, cnet_error *err) {
    dataset_cursor c = train_decode_tell(&t->decode);
    json_t *state =
        json_pack("{s:i, s:I, s:I, s:I, s:s, s:i, s:s}", "global_step", t->global_step, "epoch",
                  (json_int_t)c.epoch, "data_index", (json_int_t)c.index, "seed",
                  (json_int_t)t->o->seed, "lr_scheduler", t->o->lr_scheduler, "max_train_steps",
                  t->max_steps, "mixed_precision", cnet_precision_name(t->be->precision));
    if (!state) return oom(err);
    if (t->loss_scaling && loss_scale_save(&t->scaler, state, err)) {
        json_decref(state);
        return err ? err->code : CNET_ENOMEM;
    }
    checkpoint_tables tables = {&t->vae.params, &t->adam, VAE_MODEL_DIR, NULL};
    int rc = checkpoint_save(t->o->output_dir, t->global_step, t->config, &tables, state,
                             t->o->checkpoints_total_limit, err);
    json_decref(state);
    return rc;
}

/* --resume_from_checkpoint: "latest" or a checkpoint's name under
 * output_dir; none found starts a new run (as train-unet). */
static int resume(vae_trainer *t, const train_hooks *hooks, cnet_error *err) {
    const char *from = t->o->resume_from_checkpoint;
    char dir[PATH_MAX];
    struct stat st;
    if (!from) return 0;
    if (strcmp(from, "latest") == 0) {
        cnet_error e2;
        if (checkpoint_latest(t->o->output_dir, dir, sizeof dir, &e2) == CNET_ENOTFOUND) dir[0] = 0;
    } else {
        const char *slash = strrchr(from, '/');
        snprintf(dir, sizeof dir, "%s/%s", t->o->output_dir, slash && slash[1] ? slash + 1 : from);
        if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) dir[0] = 0;
    }
    if (!dir[0]) {
        if (hooks && hooks->on_note)
            hooks->on_note(hooks->user,
                           "no checkpoint to resume from; starting a new training run");
        return 0;
    }
    json_t *state;
    checkpoint_tables tables = {&t->vae.params, &t->adam, VAE_MODEL_DIR, NULL};
    int rc = checkpoint_load(dir, &tables, &state, err);
    if (rc) return cnet_error_prefix(err, "resuming from %s", dir);
    json_int_t step = 0, epoch = 0, index = 0;
    rc = json_unpack(state, "{s:I, s:I, s:I}", "global_step", &step, "epoch", &epoch, "data_index",
                     &index);
    /* a checkpoint of a run without fp16 has no loss scale: start afresh */
    cnet_error scale_err = {0};
    const int scale_rc = rc == 0 ? loss_scale_load(&t->scaler, state, &scale_err) : 0;
    json_decref(state);
    if (rc != 0 || step < 0 || step > INT_MAX)
        return cnet_fail(err, CNET_EFORMAT, "%s/trainer_state.json: missing or bad fields", dir);
    if (scale_rc && scale_rc != CNET_ENOTFOUND)
        return cnet_fail(err, scale_rc, "%s/trainer_state.json: %s", dir, scale_err.msg);
    if (t->scaler.skipped > step)
        return cnet_fail(err, CNET_EFORMAT, "%s/trainer_state.json: %lld skipped steps > %lld", dir,
                         (long long)t->scaler.skipped, (long long)step);
    t->global_step = (int)step;
    return dataset_seek(&t->ds, (dataset_cursor){epoch, index}, err);
}

/* The next batch of the dataset (the next epoch's first when one ends). */
static int next_batch(vae_trainer *t, int *n, int *epoch, cnet_error *err) {
    for (int tries = 0; tries < 2; tries++) {
        *epoch = (int)train_decode_tell(&t->decode).epoch;
        int rc = train_decode_take(&t->decode, err);
        if (rc) return rc;
        *n = t->decode.n;
        if (*n > 0) return 0;
        train_decode_release(&t->decode);
    }
    return cnet_fail(err, CNET_EINVAL, "train-vae: %s has no usable image", t->o->train_data_dir);
}

/* One optimizer step on n images; *rec and *kl: the step's two losses,
 * *grad_norm: the gradient's norm before clipping. */
static int train_step_vae(vae_trainer *t, int n, double *rec, double *kl, double *grad_norm,
                          cnet_error *err) {
    cnet_backend *be = t->be;
    const train_options *o = t->o;
    const long img = (long)t->R * t->R * 3, total = (long)t->grads.total;
    be->upload(be, t->pixels, t->decode.img, (size_t)n * img * sizeof(float));
    if (t->n_val == 0) { /* the run's first batch is the validation set */
        t->n_val = n < VAE_VALIDATION_IMAGES ? n : VAE_VALIDATION_IMAGES;
        memcpy(t->val, t->decode.img, (size_t)t->n_val * img * sizeof(float));
    }
    train_decode_release(&t->decode);
    philox_normal_fill(t->h_eps, (long)n * t->h * t->h * t->L, o->seed,
                       vae_rng(VAE_RNG_TAG, t->global_step));
    be->zero(be, t->grads.block, t->grads.total * sizeof(float));
    const float scale = t->loss_scaling ? t->scaler.scale : 1.0f;
    int rc = vae_step_grads(&t->step, &t->grads, t->pixels, t->h_eps, n, o->kl_weight, scale, rec,
                            kl, err);
    /* a failed device makes every later op a no-op: stop before a step */
    if (rc || (rc = cnet_backend_status(be, err))) return rc;
    if (t->loss_scaling) /* exact: a power of two */
        be->scale(be, t->grads.block, t->grads.block, 1.0f / scale, total);
    float sumsq;
    be->sum_squares(be, t->sumsq, t->grads.block, total);
    be->download(be, &sumsq, t->sumsq, sizeof sumsq);
    *grad_norm = sqrt(sumsq);
    const int apply = !t->loss_scaling || isfinite(sumsq);
    const int applied = t->global_step - (int)t->scaler.skipped; /* AdamW steps taken */
    const train_adamw opt = {(float)lr_at(&t->lr, applied), (float)o->adam_beta1,
                             (float)o->adam_beta2,          (float)o->adam_epsilon,
                             (float)o->adam_weight_decay,   (float)o->max_grad_norm};
    if (apply)
        adam_state_step(&t->adam, &t->grads, &opt, applied + 1,
                        o->max_grad_norm > 0 ? t->sumsq : NULL);
    if (t->loss_scaling) loss_scale_update(&t->scaler, apply);
    return 0;
}

static int save_final(vae_trainer *t, cnet_error *err) {
    char path[PATH_MAX];
    const char *keys[] = {"format"}, *values[] = {"pt"};
    snprintf(path, sizeof path, "%s/" VAE_MODEL_DIR, t->o->output_dir);
    int rc = make_dir(path, err);
    snprintf(path, sizeof path, "%s/" VAE_MODEL_DIR "/config.json", t->o->output_dir);
    if (!rc) rc = atomic_write_json(path, t->config, err);
    snprintf(path, sizeof path, "%s/" VAE_MODEL_DIR "/diffusion_pytorch_model.safetensors",
             t->o->output_dir);
    if (!rc) rc = params_save(&t->vae.params, path, keys, values, 1, err);
    return rc;
}

static int check_options(const train_options *o, cnet_error *err) {
    if (!o->pretrained_model_name_or_path || !o->train_data_dir || !o->output_dir)
        return cnet_fail(err, CNET_EINVAL,
                         "train-vae: --pretrained_model_name_or_path, --train_data_dir and "
                         "--output_dir are needed");
    if (o->gradient_accumulation_steps > 1 || o->use_8bit_adam)
        return cnet_fail(err, CNET_EINVAL,
                         "train-vae: --gradient_accumulation_steps > 1 and "
                         "--use_8bit_adam are not done by train-vae");
    if (o->max_train_steps < 0 || o->num_train_epochs < 1)
        return cnet_fail(err, CNET_EINVAL,
                         "train-vae: --max_train_steps >= 0 and --num_train_epochs >= 1");
    if (!(o->kl_weight >= 0 && o->kl_weight <= TRAIN_VAE_KL_WEIGHT_MAX))
        return cnet_fail(err, CNET_EINVAL, "train-vae: --kl_weight must be in [0, %g]",
                         TRAIN_VAE_KL_WEIGHT_MAX);
    int kind = lr_kind_from_name(o->lr_scheduler ? o->lr_scheduler : "constant");
    if (kind < 0)
        return cnet_fail(err, CNET_EINVAL, "train-vae: unknown --lr_scheduler %s", o->lr_scheduler);
    return 0;
}

static int run(vae_trainer *t, const train_hooks *hooks, int *stopped, cnet_error *err) {
    const train_options *o = t->o;
    int rc;
    if ((rc = check_options(o, err)) || (rc = open_vae(t, err))) return rc;
    const int f = vae_factor(&t->vae);
    t->B = o->train_batch_size, t->R = o->resolution, t->L = t->vae.cfg.latent_channels;
    t->h = t->R / f;
    if (t->R < f || t->R % f)
        return cnet_fail(err, CNET_EINVAL, "train-vae: --resolution %d is not a multiple of %d",
                         t->R, f);
    if ((rc = make_dir(o->output_dir, err)) || (rc = open_data(t, err))) return rc;
    /* as the scripts: num_train_epochs epochs unless max_train_steps */
    const int64_t per_epoch = (dataset_size(&t->ds) + t->B - 1) / t->B;
    const int64_t steps = o->max_train_steps ? o->max_train_steps : o->num_train_epochs * per_epoch;
    if (steps < 1 || steps > INT_MAX)
        return cnet_fail(err, CNET_EINVAL, "train-vae: %lld steps (supported 1..%d)",
                         (long long)steps, INT_MAX);
    t->max_steps = (int)steps;
    t->lr = (lr_schedule){
        .kind = (lr_kind)lr_kind_from_name(o->lr_scheduler ? o->lr_scheduler : "constant"),
        /* --scale_lr: by the batch (no accumulation here) */
        .base_lr = o->learning_rate * (o->scale_lr ? t->B : 1),
        .warmup_steps = o->lr_warmup_steps,
        .total_steps = t->max_steps,
        .num_cycles = o->lr_num_cycles,
        .power = o->lr_power,
        .lr_end = 1e-7};
    if ((rc = params_alloc_like(&t->grads, &t->vae.params, err))) return rc;
    t->have_grads = 1;
    if ((rc = adam_state_init(&t->adam, &t->vae.params, 0, err))) return rc;
    t->have_adam = 1;
    if ((rc = alloc_buffers(t, err))) return rc;
    t->loss_scaling = o->mixed_precision == CNET_PREC_F16;
    loss_scale_init(&t->scaler);
    checkpoint_remove_partials(o->output_dir);
    if ((rc = resume(t, hooks, err))) return rc;
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/loss.csv", o->output_dir);
    if (!(t->log = fopen(path, t->global_step ? "a" : "w")))
        return cnet_fail(err, CNET_EIO, "%s: cannot write", path);
    if (!t->global_step) fprintf(t->log, "step,reconstruction_mse,kl\n");
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    const int first_step = t->global_step;
    double samples_done = 0;
    while (t->global_step < t->max_steps) {
        int n, epoch;
        double rec, kl, grad_norm;
        if ((rc = next_batch(t, &n, &epoch, err)) ||
            (rc = train_step_vae(t, n, &rec, &kl, &grad_norm, err)))
            return rc;
        t->global_step++;
        samples_done += n;
        clock_gettime(CLOCK_MONOTONIC, &now);
        const double elapsed = (double)(now.tv_sec - t0.tv_sec) + 1e-9 * (now.tv_nsec - t0.tv_nsec);
        const int done = t->global_step - first_step;
        fprintf(t->log, "%d,%.9g,%.9g\n", t->global_step, rec, kl);
        fflush(t->log);
        const train_progress p = {.step = t->global_step,
                                  .total_steps = t->max_steps,
                                  .epoch = epoch,
                                  .loss = rec + o->kl_weight * kl,
                                  .lr = lr_at(&t->lr, t->global_step - 1 - (int)t->scaler.skipped),
                                  .grad_norm = grad_norm,
                                  .samples_per_sec = elapsed > 0 ? samples_done / elapsed : 0,
                                  .eta_sec = elapsed / done * (t->max_steps - t->global_step),
                                  .optimizer_bytes = adam_state_bytes(&t->adam)};
        const int verdict = hooks && hooks->on_step ? hooks->on_step(hooks->user, &p) : TRAIN_GO_ON;
        if (verdict == TRAIN_ABANDON) return *stopped = 1, 0;
        const int stop = verdict == TRAIN_STOP;
        if ((o->checkpointing_steps > 0 && t->global_step % o->checkpointing_steps == 0) || stop) {
            if ((rc = save_checkpoint(t, err)) || (rc = validate(t, err))) return rc;
            if (hooks && hooks->on_checkpoint) {
                snprintf(path, sizeof path, "%s/" CHECKPOINT_PREFIX "%d", o->output_dir,
                         t->global_step);
                hooks->on_checkpoint(hooks->user, t->global_step, path);
            }
        }
        if (stop) return *stopped = 1, 0;
    }
    /* a run resumed at its last step took no batch: no validation set */
    if (t->n_val && (rc = validate(t, err))) return rc;
    return save_final(t, err);
}

int train_vae_run(const train_options *o, cnet_backend *be, const train_hooks *hooks, int *stopped,
                  cnet_error *err) {
    vae_trainer t;
    memset(&t, 0, sizeof t);
    t.o = o, t.be = be;
    if (stopped) *stopped = 0;
    int dummy;
    const cnet_precision prev = cnet_backend_set_precision(be, o->mixed_precision, NULL, 0);
    int rc = run(&t, hooks, stopped ? stopped : &dummy, err);
    cnet_backend_set_precision(be, prev, NULL, 0);
    close_trainer(&t);
    return rc;
}
