/* cnet train-vae: the VAE (AutoencoderKL) trained by cnet (engine/train/
 * train_vae.h): loss = pixel MSE + --kl_weight * KL. The flags it shares
 * with train-unet (--pretrained_model_name_or_path, --train_data_dir /
 * --dataset_name, --image_column, --resolution, --train_batch_size,
 * --max_train_steps (else --num_train_epochs), --scale_lr, the LR
 * schedule, AdamW, --max_grad_norm,
 * --checkpointing_steps, --checkpoints_total_limit,
 * --resume_from_checkpoint, --seed, --mixed_precision, --output_dir) go
 * through `cnet train`'s parser (server/cli/cmd_train.h) with
 * train_text_to_image.py's defaults in front; its own, read here:
 * --kl_weight (default TRAIN_VAE_KL_WEIGHT, 0..TRAIN_VAE_KL_WEIGHT_MAX),
 * --center_crop (else a random
 * crop) and --random_flip. The ControlNet and UNet flags are refused by
 * name. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/train/train_vae.h"
#include "server/cli/cli_args.h"
#include "server/cli/cmd_train.h"
#include "server/cli/commands.h"

/* train_text_to_image.py's defaults where train_controlnet.py's differ. */
static const char *const vae_defaults[] = {
    "--learning_rate",    "1e-4", "--train_batch_size", "16",
    "--num_train_epochs", "100",  "--output_dir",       "vae-trained"};
#define N_DEFAULTS ((int)(sizeof vae_defaults / sizeof vae_defaults[0]))
/* The most arguments a command line may have here. */
#define TRAIN_VAE_MAX_ARGS 1024

/* Flags of the other trainers that mean nothing for a VAE, or that
 * train-vae does not do (accumulation, 8-bit AdamW, gradient checkpointing,
 * trackers). */
static const char *const refused[] = {"controlnet_model_name_or_path",
                                      "conditioning_image_column",
                                      "validation_image",
                                      "validation_prompt",
                                      "validation_prompts",
                                      "validation_steps",
                                      "num_validation_images",
                                      "proportion_empty_prompts",
                                      "use_ema",
                                      "snr_gamma",
                                      "prediction_type",
                                      "noise_offset",
                                      "input_perturbation",
                                      "caption_column",
                                      "tokenizer_name",
                                      "pretrained_vae_model_name_or_path",
                                      "gradient_accumulation_steps",
                                      "use_8bit_adam",
                                      "shard_optimizer",
                                      "gradient_checkpointing",
                                      "cache_latents",
                                      "set_grads_to_none",
                                      "report_to"};

static void usage(FILE *out) {
    fprintf(out, "usage: cnet train-vae --pretrained_model_name_or_path DIR\n"
                 "                      (--train_data_dir DIR | --dataset_name NS/NAME) "
                 "[--output_dir DIR] [options]\n"
                 "  Trains the VAE (AutoencoderKL, encoder and decoder) of DIR (a pipeline\n"
                 "  folder's vae/, or a VAE folder) on the dataset's images: loss = MSE of\n"
                 "  the reconstruction + --kl_weight X (default 1e-6) * KL(q(z|x) || N(0,1))\n"
                 "  (summed per sample, batch mean). The flags of `cnet train --help` that\n"
                 "  apply (--resolution, --train_batch_size, --max_train_steps or\n"
                 "  --num_train_epochs (default 100), --scale_lr, the LR\n"
                 "  schedule, AdamW, --checkpointing_steps, --resume_from_checkpoint latest,\n"
                 "  --seed, --mixed_precision no|fp16|bf16), --center_crop, --random_flip. Writes\n"
                 "  OUTPUT/vae/ (diffusers layout), OUTPUT/loss.csv and the validation\n"
                 "  reconstructions OUTPUT/validation/step_N.png.\n");
}

/* A switch's =VALUE, as Python prints booleans too; none: on. */
static int switch_value(const char *inline_value, int *out) {
    static const struct {
        const char *text;
        int on;
    } spellings[] = {{"true", 1}, {"True", 1}, {"1", 1}, {"false", 0}, {"False", 0}, {"0", 0}};
    if (!inline_value) return *out = 1, 0;
    for (size_t k = 0; k < sizeof spellings / sizeof spellings[0]; k++)
        if (!strcmp(inline_value, spellings[k].text)) return *out = spellings[k].on, 0;
    return -1;
}

int cmd_train_vae(int argc, char **argv) {
    if (argc + N_DEFAULTS + 1 > TRAIN_VAE_MAX_ARGS) {
        fprintf(stderr, "cnet train-vae: more than %d arguments\n", TRAIN_VAE_MAX_ARGS);
        return 2;
    }
    char **args = malloc(TRAIN_VAE_MAX_ARGS * sizeof *args);
    if (!args) return 1;
    int n = 0, rc = 0, center_crop = 0, random_flip = 0;
    double kl_weight = TRAIN_VAE_KL_WEIGHT;
    args[n++] = argv[0];
    for (int i = 0; i < N_DEFAULTS; i++) args[n++] = (char *)vae_defaults[i];
    cnet_error err = {0};
    for (int i = 1; i < argc && !rc; i++) {
        const char *inl = NULL;
        if (cli_is_help(argv[i])) {
            usage(stdout);
            free(args);
            return 0;
        }
        for (size_t k = 0; k < sizeof refused / sizeof refused[0] && !rc; k++)
            if (cli_flag(argv[i], refused[k], &inl)) {
                fprintf(stderr, "cnet train-vae: --%s is not a VAE training flag\n", refused[k]);
                rc = 2;
            }
        if (rc) break;
        if (cli_flag(argv[i], "kl_weight", &inl)) {
            const char *v = cli_value(argc, argv, &i, inl, &err);
            if (!v || cli_double("--kl_weight", v, 0, TRAIN_VAE_KL_WEIGHT_MAX, &kl_weight, &err)) {
                fprintf(stderr, "cnet train-vae: %s\n", err.msg);
                rc = 2;
            }
        } else if (cli_flag(argv[i], "center_crop", &inl) ||
                   cli_flag(argv[i], "random_flip", &inl)) {
            const int crop = cli_flag(argv[i], "center_crop", &inl);
            if (switch_value(inl, crop ? &center_crop : &random_flip)) {
                fprintf(stderr, "cnet train-vae: --%s takes true or false\n",
                        crop ? "center_crop" : "random_flip");
                rc = 2;
            }
        } else {
            args[n++] = argv[i];
        }
    }
    train_options o;
    train_cli cli;
    int help = 0;
    if (!rc && cmd_train_parse(n, args, &o, &cli, &help, &err)) {
        fprintf(stderr, "cnet train-vae: %s (cnet train-vae --help)\n", err.msg);
        rc = 2;
    }
    if (!rc) {
        o.train_vae = 1, o.kl_weight = kl_weight;
        o.random_crop = !center_crop, o.random_flip = random_flip;
        rc = cmd_train_execute(&o, &cli);
    }
    free(args);
    return rc;
}
