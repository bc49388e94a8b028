/* cnet train: train_controlnet.py's command line (same flag names, --flag
 * VALUE or --flag=VALUE; list flags take several values or repeat) over
 * engine/train/trainer.h, with a progress bar on a terminal and plain log lines
 * otherwise. Unknown flags are errors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/train/trainer.h"
#include "server/cli/commands.h"

typedef enum {
    OPT_STR,
    OPT_INT,
    OPT_I64,
    OPT_U64,
    OPT_DBL,
    OPT_FLAG,
    OPT_LIST,
    OPT_PRECISION
} opt_kind;

typedef struct opt_spec {
    const char *name;
    opt_kind kind;
    size_t offset; /* in train_options; lists: the array, count at count_offset */
    size_t count_offset;
} opt_spec;

#define O(field) offsetof(train_options, field)
static const opt_spec specs[] = {
    {"pretrained_model_name_or_path", OPT_STR, O(pretrained_model_name_or_path), 0},
    {"controlnet_model_name_or_path", OPT_STR, O(controlnet_model_name_or_path), 0},
    {"output_dir", OPT_STR, O(output_dir), 0},
    {"train_data_dir", OPT_STR, O(train_data_dir), 0},
    {"image_column", OPT_STR, O(image_column), 0},
    {"conditioning_image_column", OPT_STR, O(conditioning_image_column), 0},
    {"caption_column", OPT_STR, O(caption_column), 0},
    {"seed", OPT_U64, O(seed), 0},
    {"resolution", OPT_INT, O(resolution), 0},
    {"train_batch_size", OPT_INT, O(train_batch_size), 0},
    {"num_train_epochs", OPT_INT, O(num_train_epochs), 0},
    {"max_train_steps", OPT_INT, O(max_train_steps), 0},
    {"gradient_accumulation_steps", OPT_INT, O(gradient_accumulation_steps), 0},
    {"learning_rate", OPT_DBL, O(learning_rate), 0},
    {"scale_lr", OPT_FLAG, O(scale_lr), 0},
    {"lr_scheduler", OPT_STR, O(lr_scheduler), 0},
    {"lr_warmup_steps", OPT_INT, O(lr_warmup_steps), 0},
    {"lr_num_cycles", OPT_INT, O(lr_num_cycles), 0},
    {"lr_power", OPT_DBL, O(lr_power), 0},
    {"adam_beta1", OPT_DBL, O(adam_beta1), 0},
    {"adam_beta2", OPT_DBL, O(adam_beta2), 0},
    {"adam_weight_decay", OPT_DBL, O(adam_weight_decay), 0},
    {"adam_epsilon", OPT_DBL, O(adam_epsilon), 0},
    {"max_grad_norm", OPT_DBL, O(max_grad_norm), 0},
    {"use_8bit_adam", OPT_FLAG, O(use_8bit_adam), 0},
    {"snr_gamma", OPT_DBL, O(snr_gamma), 0},
    {"prediction_type", OPT_STR, O(prediction_type), 0},
    {"checkpointing_steps", OPT_INT, O(checkpointing_steps), 0},
    {"checkpoints_total_limit", OPT_INT, O(checkpoints_total_limit), 0},
    {"resume_from_checkpoint", OPT_STR, O(resume_from_checkpoint), 0},
    {"validation_prompt", OPT_LIST, O(validation_prompt), O(n_validation_prompts)},
    {"validation_image", OPT_LIST, O(validation_image), O(n_validation_images)},
    {"num_validation_images", OPT_INT, O(num_validation_images), 0},
    {"validation_steps", OPT_INT, O(validation_steps), 0},
    {"cache_latents", OPT_FLAG, O(cache_latents), 0},
    {"gradient_checkpointing", OPT_FLAG, O(gradient_checkpointing), 0},
    {"set_grads_to_none", OPT_FLAG, O(set_grads_to_none), 0},
    {"max_train_samples", OPT_I64, O(max_train_samples), 0},
    {"proportion_empty_prompts", OPT_DBL, O(proportion_empty_prompts), 0},
    {"mixed_precision", OPT_PRECISION, O(mixed_precision), 0},
    /* cnet's own: unreadable samples tolerated (skipped) before refusing */
    {"max_bad_fraction", OPT_DBL, O(max_bad_fraction), 0},
};
#undef O
static const int n_specs = (int)(sizeof specs / sizeof specs[0]);

static void usage(FILE *out) {
    fprintf(out, "usage: cnet train --pretrained_model_name_or_path DIR --train_data_dir DIR "
                 "--output_dir DIR [options]\n"
                 "  The flags of diffusers' examples/controlnet/train_controlnet.py:\n");
    for (int i = 0; i < n_specs; i++)
        fprintf(out, "    --%s%s\n", specs[i].name,
                specs[i].kind == OPT_FLAG        ? ""
                : specs[i].kind == OPT_LIST      ? " VALUE [VALUE ...]"
                : specs[i].kind == OPT_PRECISION ? " no|fp16|bf16"
                                                 : " VALUE");
    fprintf(out, "  Also: --device cpu|cuda[:N] (default cpu; without a visible GPU, cuda falls "
                 "back to the CPU with a note)\n");
}

static int parse_number(const opt_spec *s, const char *v, void *dst) {
    char *end;
    switch (s->kind) {
    case OPT_INT: {
        long x = strtol(v, &end, 10);
        if (*end || end == v || x < -2147483647L || x > 2147483647L) return -1;
        *(int *)dst = (int)x;
        return 0;
    }
    case OPT_I64: {
        long long x = strtoll(v, &end, 10);
        if (*end || end == v) return -1;
        *(int64_t *)dst = x;
        return 0;
    }
    case OPT_U64: {
        unsigned long long x = strtoull(v, &end, 10);
        if (*end || end == v || *v == '-') return -1;
        *(uint64_t *)dst = x;
        return 0;
    }
    case OPT_DBL: {
        double x = strtod(v, &end);
        if (*end || end == v) return -1;
        *(double *)dst = x;
        return 0;
    }
    default:
        return -1;
    }
}

/* Parses argv into o; returns 0, or 2 after printing the problem. */
static int parse(int argc, char **argv, train_options *o, const char **device) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            exit(0);
        }
        if (strncmp(a, "--", 2) != 0) {
            fprintf(stderr, "cnet train: unexpected argument '%s'\n", a);
            return 2;
        }
        char name[96];
        const char *eq = strchr(a + 2, '=');
        size_t len = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
        if (len >= sizeof name) len = sizeof name - 1;
        memcpy(name, a + 2, len);
        name[len] = '\0';
        if (strcmp(name, "device") == 0) {
            *device = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : "");
            continue;
        }
        const opt_spec *s = NULL;
        for (int k = 0; k < n_specs && !s; k++)
            if (strcmp(specs[k].name, name) == 0) s = &specs[k];
        if (!s) {
            fprintf(stderr, "cnet train: unknown flag --%s (cnet train --help lists them)\n", name);
            return 2;
        }
        char *base = (char *)o;
        if (s->kind == OPT_FLAG) {
            *(int *)(base + s->offset) = 1;
            continue;
        }
        if (s->kind == OPT_LIST) {
            const char **list = (const char **)(base + s->offset);
            int *count = (int *)(base + s->count_offset);
            int took = 0;
            for (int j = eq ? i : i + 1; j < argc && (eq || strncmp(argv[j], "--", 2) != 0);
                 j++, took++) {
                if (*count >= TRAIN_MAX_VALIDATION) {
                    fprintf(stderr, "cnet train: more than %d values for --%s\n",
                            TRAIN_MAX_VALIDATION, name);
                    return 2;
                }
                list[(*count)++] = eq && j == i ? eq + 1 : argv[j];
                if (eq) break;
            }
            if (!took) {
                fprintf(stderr, "cnet train: --%s needs a value\n", name);
                return 2;
            }
            if (!eq) i += took;
            continue;
        }
        const char *v = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
        if (!v) {
            fprintf(stderr, "cnet train: --%s needs a value\n", name);
            return 2;
        }
        if (s->kind == OPT_STR) {
            *(const char **)(base + s->offset) = v;
        } else if (s->kind == OPT_PRECISION) {
            cnet_error e = {0};
            if (cnet_precision_parse(v, (cnet_precision *)(base + s->offset), &e)) {
                fprintf(stderr, "cnet train: %s\n", e.msg);
                return 2;
            }
        } else if (parse_number(s, v, base + s->offset) != 0) {
            fprintf(stderr, "cnet train: --%s: '%s' is not a valid number\n", name, v);
            return 2;
        }
    }
    return 0;
}

/* What the progress hooks need: where they print, and whether the
 * optimizer's memory was reported yet. */
typedef struct progress_out {
    int tty, use_8bit_adam, told_optimizer;
} progress_out;

/* Progress: a bar redrawn in place on a terminal, one line per step in logs,
 * and once, the memory AdamW's state takes. */
static int on_step(void *user, const train_progress *p) {
    progress_out *out = user;
    const int tty = out->tty;
    if (!out->told_optimizer) {
        out->told_optimizer = 1;
        fprintf(stderr, "cnet train: AdamW state %.2f MB (%s)\n", p->optimizer_bytes / 1e6,
                out->use_8bit_adam ? "8-bit, --use_8bit_adam" : "float32");
    }
    if (tty) {
        const int width = 30, fill = p->total_steps ? width * p->step / p->total_steps : width;
        fprintf(stderr, "\rsteps %d/%d [%.*s%*s] loss %.4f lr %.3g %.2f samples/s ETA %.0fs ",
                p->step, p->total_steps, fill, "##############################", width - fill, "",
                p->loss, p->lr, p->samples_per_sec, p->eta_sec);
        if (p->step == p->total_steps) fputc('\n', stderr);
    } else {
        fprintf(stderr, "step %d/%d epoch %d loss %.6f lr %.6g grad_norm %.4g samples/s %.3f\n",
                p->step, p->total_steps, p->epoch, p->loss, p->lr, p->grad_norm,
                p->samples_per_sec);
    }
    return 0;
}

static void on_checkpoint(void *user, int step, const char *dir) {
    const progress_out *out = user;
    fprintf(stderr, "%ssaved checkpoint %d: %s\n", out->tty ? "\n" : "", step, dir);
}

int cmd_train(int argc, char **argv) {
    train_options o;
    train_options_defaults(&o);
    const char *device = "cpu";
    int rc = parse(argc, argv, &o, &device);
    if (rc) return rc;
    cnet_backend be;
    cnet_error err = {0};
    char note[256] = "";
    if (cnet_backend_open(&be, device, note, sizeof note, &err)) {
        fprintf(stderr, "cnet train: %s\n", err.msg);
        return 2;
    }
    if (note[0]) fprintf(stderr, "cnet train: %s\n", note);
    /* trainer_run sets it again; here only for the note (cpu: float32) */
    cnet_backend_set_precision(&be, o.mixed_precision, note, sizeof note);
    if (note[0]) fprintf(stderr, "cnet train: %s\n", note);
    progress_out out = {.tty = isatty(STDERR_FILENO), .use_8bit_adam = o.use_8bit_adam};
    const int tty = out.tty;
    train_hooks hooks = {.user = &out, .on_step = on_step, .on_checkpoint = on_checkpoint};
    int stopped;
    rc = trainer_run(&o, &be, &hooks, &stopped, &err);
    cnet_backend_free(&be);
    if (rc) {
        fprintf(stderr, "%scnet train: %s\n", tty ? "\n" : "", err.msg);
        return 1;
    }
    fprintf(stderr, "cnet train: done; the ControlNet is in %s\n", o.output_dir);
    return 0;
}
