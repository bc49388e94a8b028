/* cnet train-unet: diffusers' examples/text_to_image/train_text_to_image.py
 * (v0.27.2) command line: the whole UNet trained with the frozen text
 * encoder and VAE (engine/train/trainer.h with train_unet), the output a
 * whole pipeline folder. The flags the two scripts share
 * (--pretrained_model_name_or_path, --train_data_dir / --dataset_name,
 * --image_column, --caption_column, --resolution, --train_batch_size, the
 * epochs and steps, accumulation, checkpointing, the LR schedule, AdamW and
 * --use_8bit_adam, --max_grad_norm, --snr_gamma, --prediction_type,
 * --mixed_precision, checkpoints and resume, --seed, --output_dir, the Hub
 * flags) go through `cnet train`'s parser (server/cli/cmd_train.h), with
 * train_text_to_image.py's defaults in front of the user's flags; the
 * script's own are read here: --use_ema, --noise_offset,
 * --input_perturbation, --validation_prompts (one or more values),
 * --validation_epochs (train_options fields outside the shared option table
 * train_opts: the service runs no train-unet jobs), --center_crop (else
 * the script's RandomCrop) and --random_flip. The flags cnet does not do
 * are refused by name: the other script's (ControlNet), --non_ema_revision. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/cli/cli_args.h"
#include "server/cli/cmd_train.h"
#include "server/cli/commands.h"

/* train_text_to_image.py's defaults where train_controlnet.py's differ. */
static const char *const t2i_defaults[] = {"--learning_rate",        "1e-4",
                                           "--train_batch_size",     "16",
                                           "--num_train_epochs",     "100",
                                           "--output_dir",           "sd-model-finetuned",
                                           "--tracker_project_name", "text2image-fine-tune"};
#define N_DEFAULTS ((int)(sizeof t2i_defaults / sizeof t2i_defaults[0]))
/* The most arguments a command line may have here. */
#define TRAIN_UNET_MAX_ARGS 1024

/* Flags of train_controlnet.py that train_text_to_image.py does not have,
 * and flags of train_text_to_image.py cnet does not do (with why). */
static const struct {
    const char *flag, *why;
} refused[] = {
    {"controlnet_model_name_or_path", "is train_controlnet.py's"},
    {"conditioning_image_column", "is train_controlnet.py's"},
    {"validation_image", "is train_controlnet.py's"},
    {"validation_prompt",
     "is train_controlnet.py's (train_text_to_image.py: --validation_prompts)"},
    {"validation_steps", "is train_controlnet.py's"},
    {"set_grads_to_none", "is train_controlnet.py's"},
    {"non_ema_revision", "is not done by cnet (models load from one revision)"},
};

static void usage(FILE *out) {
    fprintf(out, "usage: cnet train-unet --pretrained_model_name_or_path DIR|NS/NAME\n"
                 "                       (--train_data_dir DIR | --dataset_name NS/NAME) "
                 "[--output_dir DIR] [options]\n"
                 "  Fine-tunes the whole UNet as diffusers' examples/text_to_image/\n"
                 "  train_text_to_image.py (v0.27.2) does, with its flag names: the flags\n"
                 "  `cnet train --help` lists that the script shares, plus --use_ema,\n"
                 "  --noise_offset X, --input_perturbation X, --validation_prompts P [P...],\n"
                 "  --validation_epochs N (default 5), --center_crop (else a random crop)\n"
                 "  and --random_flip (crops and flips drawn from --seed's Philox stream);\n"
                 "  and train_text_to_image_sdxl.py's --proportion_empty_prompts P (that\n"
                 "  share of captions trained as \"\", the unconditional branch of\n"
                 "  classifier-free guidance).\n"
                 "  The dataset needs an image and a caption column (--image_column,\n"
                 "  --caption_column; an imagefolder's file_name is found by itself). The\n"
                 "  output is a whole pipeline folder (the EMA weights with --use_ema).\n");
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

/* A flag's value: after '=', else the next argument (*i advances). */
static const char *flag_value(int argc, char **argv, int *i) {
    const char *eq = strchr(argv[*i], '=');
    if (eq) return eq + 1;
    return *i + 1 < argc && strncmp(argv[*i + 1], "--", 2) != 0 ? argv[++*i] : NULL;
}

/* A boolean flag: bare, or =true/false/1/0 (True/False). */
static int flag_bool(const char *arg, int *out) {
    const char *eq = strchr(arg, '=');
    if (!eq) return *out = 1, 0;
    const char *v = eq + 1;
    if (!strcmp(v, "true") || !strcmp(v, "True") || !strcmp(v, "1")) return *out = 1, 0;
    if (!strcmp(v, "false") || !strcmp(v, "False") || !strcmp(v, "0")) return *out = 0, 0;
    return -1;
}

int cmd_train_unet(int argc, char **argv) {
    if (argc + N_DEFAULTS + 1 > TRAIN_UNET_MAX_ARGS) {
        fprintf(stderr, "cnet train-unet: more than %d arguments\n", TRAIN_UNET_MAX_ARGS);
        return 2;
    }
    char **args = malloc(TRAIN_UNET_MAX_ARGS * sizeof *args);
    if (!args) return 1;
    int n = 0, use_ema = 0, center_crop = 0, random_flip = 0, rc = 0, n_prompts = 0;
    long validation_epochs = 0; /* 0: the trainer's default */
    const char *prompts[TRAIN_MAX_VALIDATION];
    double noise_offset = 0, input_perturbation = 0;
    args[n++] = argv[0];
    for (int i = 0; i < N_DEFAULTS; i++) args[n++] = (char *)t2i_defaults[i];
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
            if (!strcmp(name, refused[k].flag)) {
                fprintf(stderr, "cnet train-unet: --%s %s\n", name, refused[k].why);
                rc = 2;
            }
        if (rc) break;
        if (!strcmp(name, "use_ema") && flag_bool(argv[i], &use_ema)) {
            fprintf(stderr, "cnet train-unet: --use_ema takes true or false\n");
            rc = 2;
        } else if (!strcmp(name, "noise_offset") || !strcmp(name, "input_perturbation")) {
            double *dst = name[0] == 'n' ? &noise_offset : &input_perturbation;
            const char *v = flag_value(argc, argv, &i);
            char *end = NULL;
            *dst = v ? strtod(v, &end) : -1;
            if (!v || end == v || *end || !(*dst >= 0)) {
                fprintf(stderr, "cnet train-unet: --%s takes a number >= 0\n", name);
                rc = 2;
            }
        } else if (!strcmp(name, "validation_prompts")) {
            const int inline_value = strchr(argv[i], '=') != NULL;
            /* nargs="+": the values up to the next flag (one after '=') */
            for (const char *v = flag_value(argc, argv, &i); v && !rc;
                 v = !inline_value && i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0 ? argv[++i]
                                                                                         : NULL)
                if (n_prompts < TRAIN_MAX_VALIDATION)
                    prompts[n_prompts++] = v;
                else
                    rc = 2;
            if (rc || n_prompts == 0) {
                fprintf(stderr, "cnet train-unet: --validation_prompts takes 1..%d prompts\n",
                        TRAIN_MAX_VALIDATION);
                rc = 2;
            }
        } else if (!strcmp(name, "validation_epochs")) {
            const char *v = flag_value(argc, argv, &i);
            char *end = NULL;
            validation_epochs = v ? strtol(v, &end, 10) : 0;
            if (!v || end == v || *end || validation_epochs < 1 || validation_epochs > INT_MAX) {
                fprintf(stderr, "cnet train-unet: --validation_epochs takes an integer >= 1\n");
                rc = 2;
            }
        } else if (!strcmp(name, "center_crop") || !strcmp(name, "random_flip")) {
            if (flag_bool(argv[i], name[0] == 'c' ? &center_crop : &random_flip)) {
                fprintf(stderr, "cnet train-unet: --%s takes true or false\n", name);
                rc = 2;
            }
        } else if (strcmp(name, "use_ema") != 0) {
            args[n++] = argv[i];
        }
    }
    train_options o;
    train_cli cli;
    int help = 0;
    cnet_error err = {0};
    if (!rc && cmd_train_parse(n, args, &o, &cli, &help, &err)) {
        fprintf(stderr, "cnet train-unet: %s (cnet train-unet --help)\n", err.msg);
        rc = 2;
    }
    if (!rc) {
        o.train_unet = 1, o.use_ema = use_ema, o.noise_offset = noise_offset;
        o.input_perturbation = input_perturbation;
        o.random_crop = !center_crop, o.random_flip = random_flip;
        for (int k = 0; k < n_prompts; k++) o.validation_prompts[k] = prompts[k];
        o.n_validation_prompts_t2i = n_prompts;
        cli.argc = argc, cli.argv = argv; /* --num_processes: the ranks get this command line */
        if (validation_epochs) o.validation_epochs = (int)validation_epochs;
        rc = cmd_train_execute(&o, &cli);
    }
    free(args);
    return rc;
}
