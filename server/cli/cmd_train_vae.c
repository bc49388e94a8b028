/* cnet train-vae: the VAE (AutoencoderKL) trained by cnet (engine/train/
 * train_vae.h): loss = pixel MSE + --kl_weight * KL. The flags it shares
 * with train-unet (--pretrained_model_name_or_path, --train_data_dir /
 * --dataset_name, --image_column, --resolution, --train_batch_size,
 * --max_train_steps, the LR schedule, AdamW, --max_grad_norm,
 * --checkpointing_steps, --checkpoints_total_limit,
 * --resume_from_checkpoint, --seed, --mixed_precision, --output_dir) go
 * through `cnet train`'s parser (server/cli/cmd_train.h) with
 * train_text_to_image.py's defaults in front; its own, read here:
 * --kl_weight (default TRAIN_VAE_KL_WEIGHT), --center_crop (else a random
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
    "--learning_rate", "1e-4", "--train_batch_size", "16", "--output_dir", "vae-trained"};
#define N_DEFAULTS ((int)(sizeof vae_defaults / sizeof vae_defaults[0]))
/* The most arguments a command line may have here. */
#define TRAIN_VAE_MAX_ARGS 1024

/* Flags of the other trainers that mean nothing for a VAE. */
static const char *const refused[] = {"controlnet_model_name_or_path",
                                      "conditioning_image_column",
                                      "validation_image",
                                      "validation_prompt",
                                      "validation_prompts",
                                      "proportion_empty_prompts",
                                      "use_ema",
                                      "snr_gamma",
                                      "prediction_type",
                                      "noise_offset",
                                      "input_perturbation",
                                      "caption_column",
                                      "gradient_accumulation_steps",
                                      "use_8bit_adam"};

static void usage(FILE *out) {
    fprintf(out, "usage: cnet train-vae --pretrained_model_name_or_path DIR\n"
                 "                      (--train_data_dir DIR | --dataset_name NS/NAME) "
                 "[--output_dir DIR] [options]\n"
                 "  Trains the VAE (AutoencoderKL, encoder and decoder) of DIR (a pipeline\n"
                 "  folder's vae/, or a VAE folder) on the dataset's images: loss = MSE of\n"
                 "  the reconstruction + --kl_weight X (default 1e-6) * KL(q(z|x) || N(0,1))\n"
                 "  (summed per sample, batch mean). The flags of `cnet train --help` that\n"
                 "  apply (--resolution, --train_batch_size, --max_train_steps, the LR\n"
                 "  schedule, AdamW, --checkpointing_steps, --resume_from_checkpoint latest,\n"
                 "  --seed, --mixed_precision no|bf16), --center_crop, --random_flip. Writes\n"
                 "  OUTPUT/vae/ (diffusers layout), OUTPUT/loss.csv and the validation\n"
                 "  reconstructions OUTPUT/validation/step_N.png.\n");
}

/* "--name", "--name=value" or "--kebab-name" -> name (underscores) in buf. */
static const char *flag_name(const char *arg, char *buf, size_t cap) {
    if (strncmp(arg, "--", 2) != 0) return NULL;
    size_t n = strcspn(arg + 2, "=");
    if (n == 0 || n >= cap) return NULL;
    for (size_t i = 0; i < n; i++) buf[i] = arg[2 + i] == '-' ? '_' : arg[2 + i];
    buf[n] = '\0';
    return buf;
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
    for (int i = 1; i < argc && !rc; i++) {
        char name[64];
        if (cli_is_help(argv[i])) {
            usage(stdout);
            free(args);
            return 0;
        }
        if (!flag_name(argv[i], name, sizeof name)) {
            args[n++] = argv[i];
            continue;
        }
        for (size_t k = 0; k < sizeof refused / sizeof refused[0] && !rc; k++)
            if (!strcmp(name, refused[k])) {
                fprintf(stderr, "cnet train-vae: --%s is not a VAE training flag\n", name);
                rc = 2;
            }
        if (rc) break;
        if (!strcmp(name, "kl_weight")) {
            const char *eq = strchr(argv[i], '=');
            const char *v = eq ? eq + 1 : i + 1 < argc ? argv[++i] : NULL;
            char *end = NULL;
            kl_weight = v ? strtod(v, &end) : -1;
            if (!v || end == v || *end || !(kl_weight >= 0)) {
                fprintf(stderr, "cnet train-vae: --kl_weight takes a number >= 0\n");
                rc = 2;
            }
        } else if (!strcmp(name, "center_crop") || !strcmp(name, "random_flip")) {
            const char *eq = strchr(argv[i], '=');
            int *dst = name[0] == 'c' ? &center_crop : &random_flip;
            *dst =
                !eq || !strcmp(eq + 1, "true") || !strcmp(eq + 1, "True") || !strcmp(eq + 1, "1");
            if (eq && !*dst && strcmp(eq + 1, "false") && strcmp(eq + 1, "False") &&
                strcmp(eq + 1, "0")) {
                fprintf(stderr, "cnet train-vae: --%s takes true or false\n", name);
                rc = 2;
            }
        } else {
            args[n++] = argv[i];
        }
    }
    train_options o;
    train_cli cli;
    int help = 0;
    cnet_error err = {0};
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
