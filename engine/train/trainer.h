/* ControlNet training: diffusers' examples/controlnet/train_controlnet.py as
 * a library call, with the script's option names; for an SDXL base (a UNet
 * with addition_embed_type "text_time") train_controlnet_sdxl.py, picked
 * from the model: both text encoders, the added conditions
 * (engine/train/train_sdxl.h) and the SDXL script's extra options. With
 * train_unet set, the same loop is examples/text_to_image/
 * train_text_to_image.py instead: no ControlNet, the whole UNet trains (its
 * --use_ema, --noise_offset and --input_perturbation), checkpoints hold
 * unet/ (and unet_ema/), the validation images are StableDiffusionPipeline's
 * (--validation_prompts every --validation_epochs, engine/train/
 * train_unet_validation.c, with the script's model card), and the output is
 * the whole pipeline folder (engine/train/train_unet_output.c).
 *
 * trainer_run loads the base pipeline (tokenizer, text encoder, VAE, UNet,
 * DDPM noise scheduler) and the ControlNet (from --controlnet_model_name_or_path
 * or ControlNetModel.from_unet), reads the dataset, and runs the loop:
 * gradient accumulation, clip_grad_norm_ + AdamW, the LR schedule,
 * checkpoints (and resume), validation images, metrics and TensorBoard
 * events (train_tracker.h), and the final
 * output_dir/{config.json, diffusion_pytorch_model.safetensors, README.md}.
 *
 * Randomness is Philox keyed by --seed with a fixed counter layout per use
 * (noise, timesteps, VAE sampling, data order), so a run resumed from a
 * checkpoint continues bit-exactly on the CPU backend.
 *
 * Not here: option parsing (server/cli/cmd_train.c), the job queue
 * (server/workers/pool.c), pushing to the Hub. */
#ifndef CNET_TRAINER_H
#define CNET_TRAINER_H

#include <stddef.h>
#include <stdint.h>

#include "engine/core/backend.h"
#include "engine/core/error.h"

#define TRAIN_MAX_VALIDATION 16
/* The most micro-batches per optimizer step (--gradient_accumulation_steps). */
#define TRAIN_MAX_ACCUMULATION 64

struct sd_base;

typedef struct train_options {
    const char *pretrained_model_name_or_path; /* diffusers pipeline folder */
    /* The model card's base_model: the Hub id the folder was pulled from;
     * NULL: the folder's name. Not an option (the caller knows). */
    const char *base_model_id;
    /* NULL: trainer_run loads pretrained_model_name_or_path itself; else
     * that folder already loaded on the same backend (borrowed, only read:
     * the service's model cache shares one base between jobs). */
    struct sd_base *base;
    /* NULL: one process. Else the ranks of a data-parallel run (borrowed,
     * engine/dist/comm.h; not an option: `cnet train --num_processes`
     * starts them): train_batch_size is per rank, each rank trains its
     * slice of every global batch of train_batch_size x ranks samples (one
     * seeded order, the same samples as one process with that batch), the
     * gradients are summed over the ranks before clipping and AdamW, and
     * only rank 0 writes (checkpoints, logs, validation images, the final
     * weights) and calls the hooks. */
    struct dist_comm *comm;
    const char *controlnet_model_name_or_path; /* NULL: from_unet */
    /* train_controlnet_sdxl.py: a VAE folder to encode the images with
     * instead of the base's vae/ (e.g. madebyollin's sdxl-vae-fp16-fix) */
    const char *pretrained_vae_model_name_or_path;
    /* train_controlnet_sdxl.py: the crop of the SDXL time ids */
    int crops_coords_top_left_h, crops_coords_top_left_w;
    /* --tokenizer_name: a tokenizer folder used for training and validation
     * instead of the base's tokenizer/ (the script's
     * AutoTokenizer.from_pretrained(tokenizer_name)); only with a base
     * trainer_run loads itself. NULL: the base's. */
    const char *tokenizer_name;
    const char *output_dir;
    const char *train_data_dir;
    const char *image_column, *conditioning_image_column, *caption_column; /* NULL: defaults */
    uint64_t seed;
    int resolution;
    int train_batch_size;
    int num_train_epochs;
    int max_train_steps; /* 0: num_train_epochs * steps per epoch */
    int gradient_accumulation_steps;
    double learning_rate;
    int scale_lr;
    const char *lr_scheduler;
    int lr_warmup_steps, lr_num_cycles;
    double lr_power;
    double adam_beta1, adam_beta2, adam_weight_decay, adam_epsilon, max_grad_norm;
    int use_8bit_adam; /* bitsandbytes-style AdamW8bit state */
    /* ZeRO-1/2 (engine/train/adam_shard.h): with several ranks each keeps
     * AdamW's state for 1/N of the trained parameters; one process: no-op */
    int shard_optimizer;
    double snr_gamma;            /* 0: off */
    const char *prediction_type; /* NULL: the noise scheduler's */
    int checkpointing_steps, checkpoints_total_limit;
    const char *resume_from_checkpoint; /* NULL, a path, or "latest" */
    const char *validation_prompt[TRAIN_MAX_VALIDATION];
    int n_validation_prompts;
    const char *validation_image[TRAIN_MAX_VALIDATION];
    int n_validation_images;
    int num_validation_images, validation_steps;
    int cache_latents;
    int gradient_checkpointing; /* recompute each block in the backward (less memory) */
    int set_grads_to_none;      /* no gradient memory between optimizer steps */
    int64_t max_train_samples;
    double proportion_empty_prompts;
    /* --dataloader_num_workers: threads that decode the next batch while a
     * step runs (engine/train/train_decode.h); 0 decodes in the step */
    int dataloader_num_workers;
    double max_bad_fraction; /* unreadable samples tolerated before refusing */
    /* --mixed_precision: the compute precision trainer_run sets on the
     * backend for the run (and restores after). The ControlNet's master
     * weights, gradients and AdamW state are float32 at every precision;
     * the CPU backend computes everything in float32. */
    cnet_precision mixed_precision;
    /* cnet train-unet: train_text_to_image.py (see above). Not an option
     * name: the command sets it. SD 1.x / 2.x bases only. */
    int train_unet;
    /* train_text_to_image.py's --use_ema (EMAModel of the UNet with the
     * v0.27.2 defaults, engine/train/ema.h; saved instead of the live
     * weights) and --noise_offset (engine/train/train_noise.h); train_unet
     * only. */
    int use_ema;
    double noise_offset;
    /* --input_perturbation: add_noise takes noise + input_perturbation *
     * N(0,1), the target keeps noise (train_unet only). */
    double input_perturbation;
    /* train_text_to_image.py's --validation_prompts (one image each, by
     * StableDiffusionPipeline) every --validation_epochs epochs (train_unet
     * only; engine/train/train_unet_validation.c). Not option names of
     * train_opts, as use_ema: cnet train-unet sets these. */
    const char *validation_prompts[TRAIN_MAX_VALIDATION];
    /* its RandomCrop (without --center_crop) and --random_flip, drawn from
     * Philox(seed) per sample and epoch (engine/train/train_decode.h) */
    int random_crop, random_flip;
    int n_validation_prompts_t2i;
    int validation_epochs;
    /* cnet train-vae (engine/train/train_vae.h): the VAE trains instead,
     * with --kl_weight. Not option names: the command sets them. */
    int train_vae;
    double kl_weight;
    /* --report_to (TRAIN_TRACKER_* bits, engine/train/train_tracker.h),
     * --logging_dir (under output_dir unless absolute) and
     * --tracker_project_name: where the trackers write. */
    unsigned report_to;
    const char *logging_dir, *tracker_project_name;
} train_options;

/* train_controlnet.py's defaults (resolution 512, batch 4, lr 5e-6, ...). */
void train_options_defaults(train_options *o);

/* --- options by name (train_options_names.c) ------------------------------
 * train_controlnet.py's option names → the fields of train_options: the one
 * mapping `cnet train`'s flags and a train job's spec are both set through. */

/* How a field of train_options stores its value. */
typedef enum {
    TRAIN_OPT_STRING,    /* const char * (borrowed) */
    TRAIN_OPT_INT,       /* int */
    TRAIN_OPT_INT64,     /* int64_t */
    TRAIN_OPT_UINT64,    /* uint64_t */
    TRAIN_OPT_DOUBLE,    /* double */
    TRAIN_OPT_BOOL,      /* int, 0 or 1 */
    TRAIN_OPT_LIST,      /* const char *[TRAIN_MAX_VALIDATION] (borrowed) and an int count */
    TRAIN_OPT_PRECISION, /* cnet_precision, set from its name (no, fp16, bf16) */
    TRAIN_OPT_TRACKERS,  /* unsigned TRAIN_TRACKER_* bits, set from --report_to's name */
} train_opt_kind;

typedef struct train_opt {
    const char *name; /* train_controlnet.py's --name */
    train_opt_kind kind;
    size_t offset;       /* of the field in train_options */
    size_t count_offset; /* TRAIN_OPT_LIST: of its count */
} train_opt;

/* Every option of train_options, by name (base, the loaded pipeline, is not
 * an option). */
extern const train_opt train_opts[];
extern const int train_n_opts;

/* The option called name, or NULL. */
const train_opt *train_opt_find(const char *name);

/* A typed value for train_options_set. */
typedef enum {
    TRAIN_VALUE_STRING,
    TRAIN_VALUE_INTEGER,
    TRAIN_VALUE_DOUBLE,
    TRAIN_VALUE_BOOL,
    TRAIN_VALUE_LIST,
    TRAIN_VALUE_UINT64, /* an integer above LLONG_MAX can be (a 64-bit --seed) */
} train_value_type;

typedef struct train_value {
    train_value_type type;
    const char *s;           /* STRING */
    long long i;             /* INTEGER */
    uint64_t u;              /* UINT64 */
    double d;                /* DOUBLE */
    int b;                   /* BOOL */
    const char *const *list; /* LIST: n strings */
    int n;
} train_value;

/* Sets the option called name from v: a string for a string or a precision,
 * an integer for an integer field (within its C type), a double or an
 * integer for a double, a bool for a flag, and a list for a list, whose
 * strings are appended (a repeated flag) up to TRAIN_MAX_VALIDATION. Strings
 * are borrowed: o points into them. Limits are trainer_run's to check.
 * CNET_EINVAL with err naming the option for an unknown name, a value of
 * the wrong type or out of the field's type. */
int train_options_set(train_options *o, const char *name, const train_value *v, cnet_error *err);

/* What the loop reports after every optimizer step. */
typedef struct train_progress {
    int step, total_steps, epoch;
    double loss, lr, grad_norm, samples_per_sec, eta_sec;
    size_t optimizer_bytes; /* device memory of AdamW's m and v (engine/train/adam_state.h),
                               this rank's */
    /* --shard_optimizer: the ranks the state is split over (1: whole on
     * every rank) and the most bytes of it any rank holds */
    int optimizer_shards;
    size_t optimizer_bytes_max;
} train_progress;

enum { TRAIN_GO_ON = 0, TRAIN_STOP = 1, TRAIN_ABANDON = 2 };

typedef struct train_hooks {
    void *user;
    /* After each optimizer step: TRAIN_GO_ON, TRAIN_STOP (stop at this
     * boundary; a checkpoint is written first) or TRAIN_ABANDON (stop at
     * once, writing nothing more: the run no longer owns output_dir). */
    int (*on_step)(void *user, const train_progress *p);
    /* After a checkpoint was written (dir is complete). */
    void (*on_checkpoint)(void *user, int step, const char *dir);
    /* A validation image file was written. */
    void (*on_validation)(void *user, int step, const char *path);
    /* A line the user should read (a checkpoint to resume from is missing). */
    void (*on_note)(void *user, const char *line);
} train_hooks;

/* Runs the whole training on backend be. Returns 0 when max_train_steps
 * were done or a hook asked to stop (then *stopped is set). */
int trainer_run(const train_options *o, cnet_backend *be, const train_hooks *hooks, int *stopped,
                cnet_error *err);

#endif
