/* The training loop of train_controlnet.py; see trainer.h. Outputs (final
 * weights, model card, validation images) are in train_output.c. */
#include "engine/train/trainer.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "engine/train/adam_shard.h"
#include "engine/train/checkpoint.h"
#include "engine/init/controlnet_init.h"
#include "engine/train/lr_schedule.h"
#include "engine/core/philox.h"
#include "engine/dist/comm.h"
#include "engine/train/train_batch.h"
#include "engine/train/train_internal.h"
#include "engine/train/train_metrics.h"
#include "engine/train/train_noise.h"
#include "engine/train/train_vae.h"

/* Philox counter layout of the training randomness: block offset
 * tag << 58 | optimizer step << 26 | micro-batch << 20, leaving 2^20 blocks
 * (4M values) per draw. */
enum {
    RNG_NOISE = 1,
    RNG_TIMESTEP = 2,
    RNG_VAE = 3,
    RNG_NOISE_OFFSET = 4,
    RNG_PERTURBATION = 5,
    RNG_TRANSFORM = 6 /* per sample, not per step: train_transforms (train_decode.h) */
};
/* The key an imagefolder's metadata names its image by (HF's loader). */
#define DATASET_FILE_NAME_KEY "file_name"
#define TRAIN_MAX_DRAW_BLOCKS (1u << 20)

static uint64_t rng_offset(int tag, int step, int micro) {
    return ((uint64_t)tag << 58) | ((uint64_t)(unsigned)step << 26) | ((uint64_t)micro << 20);
}

void train_options_defaults(train_options *o) {
    memset(o, 0, sizeof *o);
    o->resolution = 512;
    o->train_batch_size = 4;
    o->num_train_epochs = 1;
    o->gradient_accumulation_steps = 1;
    o->learning_rate = 5e-6;
    o->lr_scheduler = "constant";
    o->lr_warmup_steps = 500;
    o->lr_num_cycles = 1;
    o->lr_power = 1.0;
    o->adam_beta1 = 0.9, o->adam_beta2 = 0.999;
    o->adam_weight_decay = 1e-2, o->adam_epsilon = 1e-8;
    o->max_grad_norm = 1.0;
    o->checkpointing_steps = 500;
    o->num_validation_images = 4;
    o->validation_steps = 100;
    o->validation_epochs = 5; /* train_text_to_image.py's */
    o->max_bad_fraction = DATASET_BAD_FRACTION_DEFAULT;
    o->report_to = TRAIN_TRACKER_TENSORBOARD;
    o->logging_dir = "logs";
    o->tracker_project_name = "train_controlnet";
}

static int check_options(const train_options *o, const dist_comm *c, cnet_error *err) {
    if (!o->pretrained_model_name_or_path)
        return cnet_fail(err, CNET_EINVAL, "--pretrained_model_name_or_path is required");
    if (!o->train_data_dir) return cnet_fail(err, CNET_EINVAL, "--train_data_dir is required");
    if (!o->output_dir) return cnet_fail(err, CNET_EINVAL, "--output_dir is required");
    if (o->resolution < 8 || o->resolution % 8)
        return cnet_fail(err, CNET_EINVAL, "--resolution must be a positive multiple of 8 (got %d)",
                         o->resolution);
    if (o->train_batch_size < 1 || o->train_batch_size > TRAIN_MAX_BATCH)
        return cnet_fail(err, CNET_EINVAL, "--train_batch_size must be 1..%d (got %d)",
                         TRAIN_MAX_BATCH, o->train_batch_size);
    if (o->gradient_accumulation_steps < 1 ||
        o->gradient_accumulation_steps > TRAIN_MAX_ACCUMULATION)
        return cnet_fail(err, CNET_EINVAL, "--gradient_accumulation_steps must be 1..%d",
                         TRAIN_MAX_ACCUMULATION);
    if (!(o->learning_rate > 0)) return cnet_fail(err, CNET_EINVAL, "--learning_rate must be > 0");
    if (lr_kind_from_name(o->lr_scheduler) < 0)
        return cnet_fail(err, CNET_EINVAL,
                         "--lr_scheduler '%s' is not one of constant, "
                         "constant_with_warmup, linear, cosine, cosine_with_restarts, polynomial",
                         o->lr_scheduler);
    if (o->max_train_steps < 0 || o->num_train_epochs < 1)
        return cnet_fail(err, CNET_EINVAL, "--max_train_steps >= 0 and --num_train_epochs >= 1");
    if (o->prediction_type && strcmp(o->prediction_type, "epsilon") &&
        strcmp(o->prediction_type, "v_prediction"))
        return cnet_fail(err, CNET_EINVAL, "--prediction_type '%s': epsilon or v_prediction",
                         o->prediction_type);
    if (o->n_validation_prompts && o->n_validation_images && o->n_validation_prompts != 1 &&
        o->n_validation_images != 1 && o->n_validation_prompts != o->n_validation_images)
        return cnet_fail(err, CNET_EINVAL,
                         "--validation_image and --validation_prompt: give one of each, one of "
                         "either, or the same number of both (%d images, %d prompts)",
                         o->n_validation_images, o->n_validation_prompts);
    if (o->n_validation_prompts != 0 && o->n_validation_images == 0)
        return cnet_fail(err, CNET_EINVAL, "--validation_prompt needs --validation_image");
    if (o->n_validation_images != 0 && o->n_validation_prompts == 0)
        return cnet_fail(err, CNET_EINVAL, "--validation_image needs --validation_prompt");
    if (!o->train_unet && (o->use_ema || o->noise_offset != 0 || o->input_perturbation != 0))
        return cnet_fail(err, CNET_EINVAL,
                         "--use_ema, --noise_offset and --input_perturbation are "
                         "train_text_to_image.py's (cnet train-unet), not train_controlnet.py's");
    if (o->train_unet && (o->controlnet_model_name_or_path || o->base))
        return cnet_fail(err, CNET_EINVAL,
                         "train-unet trains its own copy of the base's UNet: no "
                         "--controlnet_model_name_or_path, no shared base");
    if (o->train_unet && (o->n_validation_prompts || o->n_validation_images))
        return cnet_fail(err, CNET_EINVAL,
                         "--validation_prompt and --validation_image are train_controlnet.py's "
                         "(cnet train-unet: --validation_prompts)");
    if (!o->train_unet && (o->random_crop || o->random_flip))
        return cnet_fail(err, CNET_EINVAL,
                         "random crops and --random_flip are train_text_to_image.py's (cnet "
                         "train-unet); train_controlnet.py center-crops");
    if ((o->random_crop || o->random_flip) && o->cache_latents)
        return cnet_fail(err, CNET_EINVAL,
                         "--cache_latents keeps one latent per image: it needs --center_crop and "
                         "no --random_flip");
    if (!o->train_unet && o->n_validation_prompts_t2i)
        return cnet_fail(err, CNET_EINVAL,
                         "--validation_prompts is train_text_to_image.py's (cnet train-unet; "
                         "cnet train: --validation_prompt with --validation_image)");
    if (o->validation_epochs < 1)
        return cnet_fail(err, CNET_EINVAL, "--validation_epochs must be >= 1 (got %d)",
                         o->validation_epochs);
    if (!(o->noise_offset >= 0) || !(o->input_perturbation >= 0))
        return cnet_fail(err, CNET_EINVAL, "--noise_offset and --input_perturbation must be >= 0");
    /* a rank with no sample in a short last batch has no gradients to sum */
    if (c->size > 1 && o->set_grads_to_none)
        return cnet_fail(err, CNET_EINVAL, "--set_grads_to_none: one process only (%d ranks)",
                         c->size);
    return 0;
}

static int make_dirs(const char *path, cnet_error *err) {
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return cnet_fail(err, CNET_ELIMIT, "%s: path too long", path);
    for (char *p = buf + 1;; p++) {
        char c = *p;
        if (c == '/' || c == '\0') {
            *p = '\0';
            if (mkdir(buf, 0755) != 0 && errno != EEXIST)
                return cnet_fail(err, CNET_EIO, "cannot create %s: %s", buf, strerror(errno));
            *p = c;
        }
        if (c == '\0') break;
    }
    return 0;
}

/* The ControlNet: loaded from a folder, or ControlNetModel.from_unet. Its
 * config JSON is kept for checkpoints and the final save. */
static int load_controlnet(trainer *t, cnet_error *err) {
    const train_options *o = t->o;
    char path[PATH_MAX];
    json_error_t jerr;
    int rc;
    if (o->controlnet_model_name_or_path) {
        if ((rc = controlnet_open(&t->cn, t->be, o->controlnet_model_name_or_path, err))) return rc;
        t->have_cn = 1;
        snprintf(path, sizeof path, "%s/config.json", o->controlnet_model_name_or_path);
        if (!(t->cn_config = json_load_file(path, 0, &jerr)))
            return cnet_fail(err, CNET_EFORMAT, "%s: %s", path, jerr.text);
        return 0;
    }
    /* from_unet's default conditioning embedding, the levels the VAE has */
    const int cond[] = CONTROLNET_DEFAULT_COND_CHANNELS;
    const int n_cond = controlnet_default_cond_levels(vae_factor(t->vae));
    snprintf(path, sizeof path, "%s/unet/config.json", o->pretrained_model_name_or_path);
    if ((rc = controlnet_config_from_unet(&t->cn_config, path, cond, n_cond, err))) return rc;
    /* The config loader reads files: write the new config where the final
     * save puts it anyway. */
    snprintf(path, sizeof path, "%s/config.json", o->output_dir);
    cnet_unet_config cfg;
    if ((t->comm->rank == 0 && (rc = atomic_write_json(path, t->cn_config, err))) ||
        (rc = dist_barrier(t->comm, err)) || (rc = cnet_controlnet_config_load(&cfg, path, err)) ||
        (rc = controlnet_init(&t->cn, t->be, &cfg, err)))
        return rc;
    t->have_cn = 1;
    return controlnet_from_unet(&t->cn, &t->base->unet, o->seed, err);
}

/* train_unet: the UNet's config.json (checkpoints) and the EMA, which
 * starts from the pretrained weights. */
static int prepare_unet(trainer *t, cnet_error *err) {
    char path[PATH_MAX];
    json_error_t jerr;
    snprintf(path, sizeof path, "%s/unet/config.json", t->o->pretrained_model_name_or_path);
    if (!(t->cn_config = json_load_file(path, 0, &jerr)))
        return cnet_fail(err, CNET_EFORMAT, "%s: %s", path, jerr.text);
    /* trained (the EMA copies it): its own copy, not the file's read-only
     * mapping */
    int rc = params_own(&t->base->unet.params, err);
    if (rc || !t->o->use_ema) return rc;
    const ema_settings es = ema_default_settings();
    rc = ema_init(&t->ema, &t->base->unet.params, &es, err);
    if (!rc) t->have_ema = 1;
    return rc;
}

static int open_data(trainer *t, cnet_error *err) {
    const train_options *o = t->o;
    /* train_unet: the readers yield a conditioning image too; the image
     * column is read as that (decoded, never used): the column named
     * --image_column (default "image"), else an imagefolder's file_name. */
    const char *cond_column = o->train_unet ? (o->image_column ? o->image_column : "image")
                                            : o->conditioning_image_column;
    dataset_options dopt = {.image_column = o->image_column,
                            .conditioning_image_column = cond_column,
                            .caption_column = o->caption_column,
                            .max_train_samples = o->max_train_samples,
                            .proportion_empty_prompts = o->proportion_empty_prompts,
                            .seed = o->seed};
    int rc = dataset_open(&t->ds, o->train_data_dir, &dopt, err);
    if (rc && o->train_unet && !o->image_column) {
        cnet_error first = *err;
        dopt.conditioning_image_column = DATASET_FILE_NAME_KEY;
        if ((rc = dataset_open(&t->ds, o->train_data_dir, &dopt, err))) *err = first;
    }
    if (rc) return rc;
    t->have_ds = 1;
    dataset_report rep;
    if ((rc = dataset_check(&t->ds, 1, 0, &rep, err))) return rc;
    t->skipped_at_check = rep.samples - rep.usable;
    rc = dataset_report_verdict(&rep, o->max_bad_fraction, err);
    if (!rc) rc = dataset_exclude(&t->ds, rep.bad, err);
    dataset_report_free(&rep);
    return rc;
}

/* Steps per epoch and the total, as the script computes them (with ranks,
 * accelerate's: batches of train_batch_size x ranks). */
static void plan_steps(trainer *t) {
    const train_options *o = t->o;
    const int64_t n = dataset_size(&t->ds);
    const int64_t global = (int64_t)o->train_batch_size * t->comm->size;
    const int64_t batches = (n + global - 1) / global;
    t->updates_per_epoch =
        (int)((batches + o->gradient_accumulation_steps - 1) / o->gradient_accumulation_steps);
    if (t->updates_per_epoch < 1) t->updates_per_epoch = 1;
    t->max_steps =
        o->max_train_steps > 0 ? o->max_train_steps : o->num_train_epochs * t->updates_per_epoch;
    t->num_epochs = (t->max_steps + t->updates_per_epoch - 1) / t->updates_per_epoch;
}

/* --tokenizer_name: the base's tokenizer replaced by the folder's, which
 * must fit the text encoder (its ids inside the vocabulary, its padded
 * length inside the position table). */
static int swap_tokenizer(trainer *t, const char *dir, cnet_error *err) {
    if (!t->have_base)
        return cnet_fail(err, CNET_EINVAL,
                         "tokenizer_name %s: only with a base model the trainer loads itself", dir);
    tokenizer *tok;
    int rc = tokenizer_load(&tok, dir, err);
    if (rc) return cnet_error_prefix(err, "tokenizer_name %s", dir);
    const clip_text_model *te = &t->base->text_encoder;
    if (tokenizer_vocab_size(tok) > te->vocab || tokenizer_max_length(tok) > te->max_positions) {
        rc = cnet_fail(err, CNET_EINVAL,
                       "tokenizer_name %s: %lld tokens of length %d do not fit the text "
                       "encoder's %d tokens and %d positions",
                       dir, (long long)tokenizer_vocab_size(tok), tokenizer_max_length(tok),
                       te->vocab, te->max_positions);
        tokenizer_free(tok);
        return rc;
    }
    tokenizer_free(t->base->tok);
    t->base->tok = tok;
    return 0;
}

/* t->adam_bytes_max: the largest of the ranks' AdamW state (each rank's
 * own allocation, gathered to rank 0, which reports it). */
static int adam_bytes_max(trainer *t, cnet_error *err) {
    const dist_comm *c = t->comm;
    const unsigned long long mine = adam_state_bytes(&t->ts.adam);
    unsigned long long *all = calloc((size_t)c->size, sizeof *all);
    int counts[DIST_MAX_RANKS], displs[DIST_MAX_RANKS];
    if (!all) return cnet_fail(err, CNET_ENOMEM, "out of memory");
    for (int r = 0; r < c->size; r++)
        counts[r] = (int)sizeof mine, displs[r] = r * (int)sizeof mine;
    const int rc = dist_gather(t->comm, &mine, all, counts, displs, 0, err);
    for (int r = 0; !rc && r < c->size; r++)
        if (all[r] > t->adam_bytes_max) t->adam_bytes_max = (size_t)all[r];
    free(all);
    return rc;
}

static int setup(trainer *t, cnet_error *err) {
    const train_options *o = t->o;
    char path[PATH_MAX];
    int rc;
    if ((rc = check_options(o, t->comm, err))) return rc;
    snprintf(path, sizeof path, "%s/logs", o->output_dir);
    if (t->comm->rank == 0 && ((rc = make_dirs(o->output_dir, err)) || (rc = make_dirs(path, err))))
        return rc;
    if (o->base) {
        t->base = o->base;
    } else {
        if ((rc = sd_base_open(&t->own_base, t->be, o->pretrained_model_name_or_path, err)))
            return rc;
        t->base = &t->own_base, t->have_base = 1;
    }
    if (o->tokenizer_name && (rc = swap_tokenizer(t, o->tokenizer_name, err))) return rc;
    /* train_controlnet_sdxl.py for an SDXL base: both text encoders */
    if (train_sdxl_is_sdxl(t->base)) {
        if ((rc = train_sdxl_open(&t->sdxl, t->base, err))) return rc;
        t->have_sdxl = 1;
    }
    t->vae = &t->base->vae;
    if (o->pretrained_vae_model_name_or_path) {
        if ((rc = vae_open(&t->own_vae, t->be, o->pretrained_vae_model_name_or_path, err)))
            return cnet_error_prefix(err, "--pretrained_vae_model_name_or_path");
        t->vae = &t->own_vae, t->have_vae = 1;
    }
    if ((rc = sd_base_scheduler(t->base, CNET_SCHED_DDPM, &t->ddpm_cfg, err))) return rc;
    t->have_ddpm_cfg = 1;
    if ((rc = sched_init(&t->ddpm, t->be, &t->ddpm_cfg, 0, err))) return rc;
    if ((rc = o->train_unet ? prepare_unet(t, err) : load_controlnet(t, err)) ||
        (rc = open_data(t, err)))
        return rc;
    /* train_controlnet.py casts the frozen models to weight_dtype after
     * from_unet; a base the caller shares (the service's, used by jobs of
     * every precision) stays float32. train_controlnet_sdxl.py keeps the
     * base's VAE float32 (SDXL's overflows in float16: force_upcast, which
     * sd_base_store16 honours) and casts a --pretrained_vae_model_name_or_path
     * VAE. */
    const cnet_dtype dt = cnet_precision_dtype(t->be->precision);
    if (o->train_unet) { /* the trained UNet keeps float32 master weights */
        if (dt != CNET_F32 && !(rc = params_store16(&t->base->text_encoder.params, dt, err)))
            rc = params_store16(&t->base->vae.params, dt, err);
    } else if (t->have_base) {
        rc = sd_base_store16(t->base, t->be->precision, err);
    }
    if (!rc && t->have_vae) rc = params_store16(&t->own_vae.params, dt, err);
    if (rc) return rc;
    if (t->have_sdxl && o->train_unet)
        return cnet_fail(err, CNET_EINVAL, "train-unet: SDXL bases are not supported");
    if (!o->train_unet && controlnet_image_factor(&t->cn) != vae_factor(t->vae))
        return cnet_fail(err, CNET_EINVAL,
                         "the ControlNet's conditioning embedding downsamples %dx but the VAE %dx: "
                         "conditioning_embedding_out_channels does not fit this base model",
                         controlnet_image_factor(&t->cn), vae_factor(t->vae));
    if (t->vae->cfg.latent_channels != t->base->unet.enc.cfg.in_channels)
        return cnet_fail(err, CNET_EINVAL, "the VAE gives %d latent channels, the UNet takes %d",
                         t->vae->cfg.latent_channels, t->base->unet.enc.cfg.in_channels);
    plan_steps(t);
    const train_transforms tf = {.random_crop = o->random_crop,
                                 .random_flip = o->random_flip,
                                 .seed = o->seed,
                                 .rng_base = rng_offset(RNG_TRANSFORM, 0, 0)};
    if ((rc = train_batcher_init(&t->tb, t->base, &t->ds, o->train_batch_size, t->comm->rank,
                                 t->comm->size, o->resolution, o->seed, o->cache_latents,
                                 o->dataloader_num_workers, t->vae, t->have_sdxl ? &t->sdxl : NULL,
                                 o->crops_coords_top_left_h, o->crops_coords_top_left_w, &tf, err)))
        return rc;
    t->have_tb = 1;
    int v = o->prediction_type ? !strcmp(o->prediction_type, "v_prediction")
                               : t->ddpm_cfg.prediction_type == CNET_PRED_V;
    if (!o->prediction_type && t->ddpm_cfg.prediction_type == CNET_PRED_SAMPLE)
        return cnet_fail(err, CNET_EINVAL,
                         "the scheduler's prediction_type 'sample' cannot be "
                         "trained; give --prediction_type");
    train_step_config sc = {.prediction = v ? TRAIN_PRED_V : TRAIN_PRED_EPSILON,
                            .snr_gamma = (float)o->snr_gamma,
                            .B = o->train_batch_size,
                            .h = t->tb.h,
                            .w = t->tb.w,
                            .Nt = t->tb.Nt,
                            .use_8bit_adam = o->use_8bit_adam,
                            .comm = t->comm,
                            .shard_optimizer = o->shard_optimizer,
                            .gradient_checkpointing = o->gradient_checkpointing,
                            .set_grads_to_none = o->set_grads_to_none,
                            .gradient_accumulation_steps = o->gradient_accumulation_steps};
    if ((rc = train_step_init(&t->ts, &t->base->unet, o->train_unet ? NULL : &t->cn, &t->ddpm, &sc,
                              err)))
        return rc;
    t->have_ts = 1;
    if ((rc = adam_bytes_max(t, err))) return rc;
    t->loss_scaling = o->mixed_precision == CNET_PREC_F16;
    loss_scale_init(&t->scaler);
    const size_t lat = (size_t)o->train_batch_size * t->tb.h * t->tb.w * t->tb.L;
    if ((size_t)(lat * t->comm->size + 3) / 4 >= TRAIN_MAX_DRAW_BLOCKS)
        return cnet_fail(err, CNET_ELIMIT, "a batch of %zu latent values is too large",
                         lat * t->comm->size);
    if (!(t->noise = t->be->alloc(t->be, lat * sizeof(float))) ||
        (o->noise_offset != 0 && !(t->offset = t->be->alloc(t->be, (size_t)o->train_batch_size *
                                                                       t->tb.L * sizeof(float)))) ||
        (o->input_perturbation != 0 && !(t->perturbed = t->be->alloc(t->be, lat * sizeof(float)))))
        return cnet_fail(err, CNET_ENOMEM, "out of memory");
    double lr = o->learning_rate;
    /* accelerate's effective batch: per device x processes x accumulation */
    if (o->scale_lr)
        lr *= (double)o->gradient_accumulation_steps * o->train_batch_size * t->comm->size;
    t->lr = (lr_schedule){.kind = (lr_kind)lr_kind_from_name(o->lr_scheduler),
                          .base_lr = lr,
                          .warmup_steps = o->lr_warmup_steps,
                          .total_steps = t->max_steps,
                          .num_cycles = o->lr_num_cycles,
                          .power = o->lr_power,
                          .lr_end = 1e-7};
    /* rank 0 logs; the others' trackers stay closed (they log nothing) */
    return t->comm->rank == 0 ? train_tracker_open(&t->tracker, o, err) : 0;
}

static void teardown(trainer *t) {
    train_tracker_close(&t->tracker);
    if (t->metrics) fclose(t->metrics);
    if (t->noise) t->be->free(t->be, t->noise);
    if (t->offset) t->be->free(t->be, t->offset);
    if (t->perturbed) t->be->free(t->be, t->perturbed);
    if (t->have_ema) ema_free(&t->ema);
    if (t->have_ts) train_step_free(&t->ts);
    if (t->have_tb) train_batcher_free(&t->tb);
    if (t->have_ds) dataset_free(&t->ds);
    if (t->have_cn) controlnet_free(&t->cn);
    if (t->have_vae) vae_free(&t->own_vae);
    json_decref(t->cn_config);
    sched_free(&t->ddpm);
    if (t->have_ddpm_cfg) cnet_sched_config_free(&t->ddpm_cfg);
    if (t->have_base) sd_base_free(&t->own_base);
    dist_stage_free(&t->stage);
}

/* Rank 0 writes the checkpoint, with whole the optimizer state it holds. */
static int write_checkpoint(trainer *t, adam_state *whole, cnet_error *err) {
    dataset_cursor c = train_decode_tell(&t->tb.decode);
    /* mixed_precision: what the backend computed in (cpu: always "no") */
    json_t *state =
        json_pack("{s:i, s:I, s:I, s:I, s:s, s:i, s:s}", "global_step", t->global_step, "epoch",
                  (json_int_t)c.epoch, "data_index", (json_int_t)c.index, "seed",
                  (json_int_t)t->o->seed, "lr_scheduler", t->o->lr_scheduler, "max_train_steps",
                  t->max_steps, "mixed_precision", cnet_precision_name(t->be->precision));
    if (!state) return cnet_fail(err, CNET_ENOMEM, "out of memory");
    /* skipped steps stay counted if a run goes on without fp16 */
    if ((t->loss_scaling || t->scaler.skipped > 0) && loss_scale_save(&t->scaler, state, err)) {
        json_decref(state);
        return err ? err->code : CNET_ENOMEM;
    }
    checkpoint_tables tables = {t->o->train_unet ? &t->base->unet.params : &t->cn.params, whole,
                                t->o->train_unet ? "unet" : NULL,
                                t->have_ema ? &t->ema.shadow : NULL};
    int rc = checkpoint_save(t->o->output_dir, t->global_step, t->cn_config, &tables, state,
                             t->o->checkpoints_total_limit, err);
    json_decref(state);
    if (!rc && t->hooks && t->hooks->on_checkpoint) {
        char dir[PATH_MAX];
        snprintf(dir, sizeof dir, "%s/" CHECKPOINT_PREFIX "%d", t->o->output_dir, t->global_step);
        t->hooks->on_checkpoint(t->hooks->user, t->global_step, dir);
    }
    return rc;
}

/* The table that trains: the ControlNet's, or the UNet's with train_unet. */
static cnet_params *trained(trainer *t) {
    return t->o->train_unet ? &t->base->unet.params : &t->cn.params;
}

/* Every rank calls it; rank 0 writes. Sharded (--shard_optimizer), the
 * ranks first gather their optimizer shards into a whole state on rank 0,
 * which the checkpoint holds as an unsharded run's (so any number of ranks
 * resumes it); rank 0 holds that whole state for the save. */
static int save_checkpoint(trainer *t, cnet_error *err) {
    const int rank0 = t->comm->rank == 0;
    if (!t->ts.shards) return rank0 ? write_checkpoint(t, &t->ts.adam, err) : 0;
    adam_state whole;
    memset(&whole, 0, sizeof whole);
    int rc = rank0 ? adam_state_init(&whole, trained(t), t->o->use_8bit_adam, err) : 0;
    int made = rc == 0; /* rank 0's word: the others wait in the gather only when it can */
    const int sent = dist_broadcast(t->comm, &made, sizeof made, 0, err);
    if (sent)
        rc = sent;
    else if (!made && !rc)
        rc = cnet_fail(err, CNET_ENOMEM,
                       "rank 0 could not make room for the whole optimizer state of a checkpoint");
    if (!rc)
        rc = adam_shard_gather(t->comm, &t->ts.stage, &t->ts.adam, t->ts.shards,
                               rank0 ? &whole : NULL, err);
    if (!rc && rank0) rc = write_checkpoint(t, &whole, err);
    adam_state_free(&whole);
    return rc;
}

static int is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static void note(trainer *t, const char *line) {
    if (t->comm->rank == 0 && t->hooks && t->hooks->on_note)
        t->hooks->on_note(t->hooks->user, line);
}

/* Every rank holds the same weights: rank 0's at the start, then the same
 * summed gradients and AdamW on each. Checked (a hash of the bits) before
 * each checkpoint and the final save, which rank 0 alone writes. */
static int check_ranks_agree(trainer *t, cnet_error *err) {
    const cnet_params *p = trained(t);
    return dist_check_same(t->comm, &t->stage, t->be, p->block, p->total,
                           t->o->train_unet ? "the UNet's weights" : "the ControlNet's weights",
                           err);
}

/* --resume_from_checkpoint: "latest", or a checkpoint's name looked up under
 * output_dir (the script takes the basename of what it is given); a folder
 * path elsewhere is taken as it is. None found starts a new run with a
 * note, as the script does. */
static int resume(trainer *t, cnet_error *err) {
    const char *from = t->o->resume_from_checkpoint;
    char dir[PATH_MAX], line[PATH_MAX + 96];
    if (!from) return 0;
    if (strcmp(from, "latest") == 0) {
        cnet_error e2;
        if (checkpoint_latest(t->o->output_dir, dir, sizeof dir, &e2) == CNET_ENOTFOUND) {
            note(t, "checkpoint 'latest' does not exist; starting a new training run");
            return 0;
        }
    } else {
        const char *slash = strrchr(from, '/');
        const char *name = slash && slash[1] ? slash + 1 : from;
        if (snprintf(dir, sizeof dir, "%s/%s", t->o->output_dir, name) >= (int)sizeof dir)
            return cnet_fail(err, CNET_ELIMIT, "%s: path too long", from);
        if (!is_dir(dir) && is_dir(from)) snprintf(dir, sizeof dir, "%s", from);
        if (!is_dir(dir)) {
            snprintf(line, sizeof line,
                     "checkpoint '%s' does not exist (not in %s); starting a new training run",
                     from, t->o->output_dir);
            note(t, line);
            return 0;
        }
    }
    json_t *state;
    /* sharded: the whole state read, this rank's shard taken from it */
    adam_state whole;
    memset(&whole, 0, sizeof whole);
    int rc = t->ts.shards ? adam_state_init(&whole, trained(t), t->o->use_8bit_adam, err) : 0;
    checkpoint_tables tables = {trained(t), t->ts.shards ? &whole : &t->ts.adam,
                                t->o->train_unet ? "unet" : NULL,
                                t->have_ema ? &t->ema.shadow : NULL};
    if (!rc) rc = checkpoint_load(dir, &tables, &state, err);
    if (!rc && t->ts.shards && (rc = adam_shard_take(&t->ts.adam, &whole, err))) json_decref(state);
    adam_state_free(&whole);
    if (rc) return cnet_error_prefix(err, "resuming from %s", dir);
    json_int_t step = 0, epoch = 0, index = 0;
    if (json_unpack(state, "{s:I, s:I, s:I}", "global_step", &step, "epoch", &epoch, "data_index",
                    &index) != 0 ||
        step < 0 || step > INT_MAX) {
        json_decref(state);
        return cnet_fail(err, CNET_EFORMAT, "%s/trainer_state.json: missing or bad fields", dir);
    }
    /* A checkpoint of a run without fp16 has no loss scale: start afresh. */
    cnet_error scale_err = {0}; /* "none saved" is no error of the run's */
    if ((rc = loss_scale_load(&t->scaler, state, &scale_err)) != 0 && rc != CNET_ENOTFOUND) {
        json_decref(state);
        if (err) *err = scale_err;
        cnet_error_prefix(err, "%s/trainer_state.json", dir);
        return rc;
    }
    json_decref(state);
    if (t->scaler.skipped > step)
        return cnet_fail(err, CNET_EFORMAT,
                         "%s/trainer_state.json: loss_scale_skipped_steps %lld > global_step %lld",
                         dir, (long long)t->scaler.skipped, (long long)step);
    t->global_step = (int)step;
    t->ema.optimization_step = step; /* one EMA step per optimizer step */
    dataset_cursor at = {epoch, index};
    return dataset_seek(&t->ds, at, err);
}

/* One optimizer step: up to gradient_accumulation_steps micro-batches (fewer
 * when the epoch ends, as accelerate syncs at the end of the dataloader). */
static int optimizer_step(trainer *t, double *loss_out, int *samples_out, int *epoch_end_out,
                          cnet_error *err) {
    const train_options *o = t->o;
    const int accum = o->gradient_accumulation_steps;
    const long per = (long)t->tb.h * t->tb.w * t->tb.L;
    /* this rank's slice starts at sample s of each global micro-batch: its
     * draws are those one process would make for samples s.. (per and L are
     * whole Philox blocks of 4 with ranks, train_batch.h) */
    const int s = t->comm->rank * o->train_batch_size;
    double loss_sum = 0; /* the global micro-batches' mean losses, this rank's share */
    int micro_batches = 0, samples = 0, rc = 0;
    *epoch_end_out = 0;
    for (int micro = 0; micro < accum && !rc; micro++) {
        int n, n_all, epoch_end;
        rc = train_batcher_next(&t->tb, rng_offset(RNG_VAE, t->global_step, micro), &n, &n_all,
                                &epoch_end, err);
        if (rc) break;
        if (n > 0) {
            int64_t ts[TRAIN_MAX_BATCH];
            const uint64_t toff = rng_offset(RNG_TIMESTEP, t->global_step, micro);
            for (int b = 0; b < n; b++)
                ts[b] = philox_u32(o->seed, toff + (uint64_t)(s + b)) %
                        (uint32_t)t->ddpm.cfg.num_train_timesteps;
            t->be->philox_normal(t->be, t->noise, n * per, o->seed,
                                 rng_offset(RNG_NOISE, t->global_step, micro) +
                                     (uint64_t)s * per / 4);
            if (o->noise_offset != 0) {
                t->be->philox_normal(t->be, t->offset, (long)n * t->tb.L, o->seed,
                                     rng_offset(RNG_NOISE_OFFSET, t->global_step, micro) +
                                         (uint64_t)s * t->tb.L / 4);
                train_noise_offset(t->be, t->noise, t->offset, o->noise_offset, n,
                                   t->tb.h * t->tb.w, t->tb.L);
            }
            if (o->input_perturbation != 0) { /* new_noise = noise + ip * randn_like(noise) */
                t->be->philox_normal(t->be, t->perturbed, n * per, o->seed,
                                     rng_offset(RNG_PERTURBATION, t->global_step, micro) +
                                         (uint64_t)s * per / 4);
                t->be->axpby(t->be, t->perturbed, 1.0f, t->noise, (float)o->input_perturbation,
                             t->perturbed, n * per);
            }
            float loss;
            /* the global batch's mean loss: this rank's mean weighted n / n_all
             * (the gradients are summed over the ranks after the step) */
            const float share = (float)n / (float)n_all;
            const float seed =
                1.0f / (float)accum * share * (t->loss_scaling ? t->scaler.scale : 1.0f);
            const unet_added_cond added = {.text_embeds = t->tb.text_embeds,
                                           .time_ids = t->tb.time_ids};
            rc = train_step_accumulate_perturbed(&t->ts, n, t->tb.latents, t->noise, t->perturbed,
                                                 ts, t->tb.text, t->tb.cond,
                                                 t->have_sdxl ? &added : NULL, seed, &loss, err);
            loss_sum += loss * share;
        }
        if (n_all > 0) micro_batches++, samples += n_all;
        if (epoch_end) {
            *epoch_end_out = 1;
            break;
        }
    }
    if (rc) return rc;
    if (micro_batches == 0)
        return cnet_fail(err, CNET_EINVAL, "%s: no readable sample left to train on",
                         o->train_data_dir);
    /* DDP's allreduce (sharded: reduce-scatter): the gradients (and the
     * loss) summed over the ranks */
    if ((rc = train_step_sync_grads(&t->ts, err))) return rc;
    if (t->comm->size > 1) {
        float sum = (float)loss_sum;
        if ((rc = dist_allreduce_sum(t->comm, &sum, 1, err))) return rc;
        loss_sum = sum;
    }
    *loss_out = loss_sum / micro_batches;
    *samples_out = samples;
    return 0;
}

static int train_loop(const train_options *o, cnet_backend *be, const train_hooks *hooks,
                      int *stopped, cnet_error *err) {
    trainer t;
    memset(&t, 0, sizeof t);
    t.o = o, t.be = be, t.hooks = hooks;
    t.solo = (dist_comm){.rank = 0, .size = 1};
    t.comm = o->comm ? o->comm : &t.solo;
    const int rank0 = t.comm->rank == 0;
    if (stopped) *stopped = 0;
    int rc = setup(&t, err);
    if (!rc && rank0) checkpoint_remove_partials(o->output_dir); /* a crashed run's leftovers */
    if (!rc) rc = dist_barrier(t.comm, err);
    if (!rc) rc = resume(&t, err);
    /* DDP's start: every rank from rank 0's weights */
    if (!rc)
        rc = dist_broadcast_device(t.comm, &t.stage, be, trained(&t)->block, trained(&t)->total,
                                   err);
    if (!rc && o->shard_optimizer && t.comm->size == 1)
        note(&t, "--shard_optimizer: one process, nothing to shard (AdamW's state stays whole; "
                 "it shards over the ranks of --num_processes or mpirun)");
    /* the steps after the one it starts from run again: logged once */
    if (!rc && rank0) rc = train_metrics_open(&t.metrics, o->output_dir, t.global_step, err);
    if (!rc) rc = train_tracker_start(&t.tracker, t.global_step + 1, err);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    const int first_step = t.global_step;
    double samples_done = 0;
    while (!rc && t.global_step < t.max_steps) {
        double loss = 0;
        int samples = 0;
        /* of the step's first sample */
        const int epoch = (int)train_decode_tell(&t.tb.decode).epoch;
        int epoch_end;
        if ((rc = optimizer_step(&t, &loss, &samples, &epoch_end, err))) break;
        const int applied = t.global_step - (int)t.scaler.skipped; /* optimizer steps taken */
        const double lr = lr_at(&t.lr, applied);
        train_adamw adam = {.lr = (float)lr,
                            .beta1 = (float)o->adam_beta1,
                            .beta2 = (float)o->adam_beta2,
                            .eps = (float)o->adam_epsilon,
                            .weight_decay = (float)o->adam_weight_decay,
                            .max_grad_norm = (float)o->max_grad_norm};
        float grad_norm;
        const float scale = t.scaler.scale; /* the one this step's backward ran with */
        const int skipped = !train_step_optimize(&t.ts, &adam, applied + 1,
                                                 t.loss_scaling ? &t.scaler : NULL, &grad_norm);
        /* a failed device makes every later op a no-op: stop before more
         * steps, checkpoints or the final weights come from it */
        if ((rc = cnet_backend_status(t.be, err))) break;
        /* ema_unet.step after every synced step, as the script (also one
         * GradScaler skipped) */
        if (t.have_ema) ema_step(&t.ema, &t.base->unet.params);
        t.global_step++;
        samples_done += samples;

        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        const double elapsed = (double)(now.tv_sec - t0.tv_sec) + 1e-9 * (now.tv_nsec - t0.tv_nsec);
        const int done = t.global_step - first_step;
        train_progress p = {.step = t.global_step,
                            .total_steps = t.max_steps,
                            .epoch = epoch,
                            .loss = loss,
                            .lr = lr,
                            .grad_norm = grad_norm,
                            .samples_per_sec = elapsed > 0 ? samples_done / elapsed : 0,
                            .eta_sec =
                                done > 0 ? elapsed / done * (t.max_steps - t.global_step) : 0,
                            .optimizer_bytes = adam_state_bytes(&t.ts.adam),
                            .optimizer_shards = t.ts.shards ? t.comm->size : 1,
                            .optimizer_bytes_max = t.adam_bytes_max};
        if (rank0) train_metrics_write(t.metrics, &p, t.loss_scaling ? scale : -1, skipped);
        if ((rc = train_tracker_log_step(&t.tracker, &p, err))) break;

        /* rank 0's hooks decide for every rank */
        int answer =
            rank0 && hooks && hooks->on_step ? hooks->on_step(hooks->user, &p) : TRAIN_GO_ON;
        if ((rc = dist_broadcast(t.comm, &answer, sizeof answer, 0, err))) break;
        if (answer == TRAIN_ABANDON) { /* another run owns output_dir now */
            if (stopped) *stopped = 1;
            teardown(&t);
            return 0;
        }
        const int want_stop = answer != TRAIN_GO_ON;
        int at_checkpoint =
            o->checkpointing_steps > 0 && t.global_step % o->checkpointing_steps == 0;
        /* the script saves at every multiple, the last step included */
        if ((at_checkpoint || (want_stop && t.global_step < t.max_steps)) &&
            ((rc = check_ranks_agree(&t, err)) || (rc = save_checkpoint(&t, err))))
            break;
        if (rank0 && o->n_validation_prompts && o->validation_steps > 0 &&
            t.global_step % o->validation_steps == 0 && (rc = train_validate(&t, err)))
            break;
        /* train_text_to_image.py: after an epoch's last step (or the last
         * step of all), when epoch % validation_epochs == 0 */
        if (rank0 && o->n_validation_prompts_t2i && (epoch_end || t.global_step == t.max_steps) &&
            epoch % o->validation_epochs == 0 && (rc = train_unet_validate(&t, err)))
            break;
        if (want_stop) {
            if (stopped) *stopped = 1;
            teardown(&t);
            return 0;
        }
    }
    if (!rc) rc = check_ranks_agree(&t, err);
    if (!rc && rank0 && o->train_unet && !(rc = train_unet_save_pipeline(&t, err)))
        rc = train_unet_finish(&t, err);
    else if (!rc && rank0 && !o->train_unet)
        rc = train_save_final(&t, err);
    teardown(&t);
    return rc;
}

int trainer_run(const train_options *o, cnet_backend *be, const train_hooks *hooks, int *stopped,
                cnet_error *err) {
    if (o->train_vae && o->comm && o->comm->size > 1)
        return cnet_fail(err, CNET_EINVAL,
                         "num_processes: train-vae runs in one process (its loop has no "
                         "gradient all-reduce); give --num_processes 1");
    if (o->train_vae) return train_vae_run(o, be, hooks, stopped, err);
    /* the backend may be shared (the service's engine): restore its
     * precision for whatever runs next */
    const cnet_precision prev = cnet_backend_set_precision(be, o->mixed_precision, NULL, 0);
    int rc = train_loop(o, be, hooks, stopped, err);
    cnet_backend_set_precision(be, prev, NULL, 0);
    return rc;
}
