/* cnet train: train_controlnet.py's command line (same flag names, also
 * spelled --kebab-case; --flag VALUE or --flag=VALUE; list flags take
 * several values or repeat) over engine/train/trainer.h, with a progress
 * bar on a terminal and plain log lines otherwise. The flags, their limits
 * and help are api/api_train.c's option table, the one POST /v1/jobs
 * validates against; this file only says where each lands in
 * train_options. Unknown flags are errors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/train/train_step.h"
#include "engine/train/trainer.h"
#include "server/cli/cli_args.h"
#include "server/cli/commands.h"

/* The API's limits and the engine's, one number each (api/ may not include
 * engine/train; both are visible here). */
_Static_assert(API_PROMPTS_MAX == TRAIN_MAX_VALIDATION, "validation prompts: one limit");
_Static_assert(API_TRAIN_ACCUMULATION_MAX == TRAIN_MAX_ACCUMULATION, "accumulation: one limit");
_Static_assert(API_TRAIN_BATCH_MAX == TRAIN_MAX_BATCH, "batch size: one limit");

typedef enum { SLOT_STR, SLOT_INT, SLOT_I64, SLOT_U64, SLOT_DBL, SLOT_FLAG, SLOT_LIST } slot_kind;

/* Where a table option lands in train_options. */
typedef struct train_slot {
    const char *name;
    slot_kind kind;
    size_t offset; /* lists: the array, count at count_offset */
    size_t count_offset;
} train_slot;

#define O(field) offsetof(train_options, field)
static const train_slot slots[] = {
    {"pretrained_model_name_or_path", SLOT_STR, O(pretrained_model_name_or_path), 0},
    {"controlnet_model_name_or_path", SLOT_STR, O(controlnet_model_name_or_path), 0},
    {"output_dir", SLOT_STR, O(output_dir), 0},
    {"train_data_dir", SLOT_STR, O(train_data_dir), 0},
    {"image_column", SLOT_STR, O(image_column), 0},
    {"conditioning_image_column", SLOT_STR, O(conditioning_image_column), 0},
    {"caption_column", SLOT_STR, O(caption_column), 0},
    {"seed", SLOT_U64, O(seed), 0},
    {"resolution", SLOT_INT, O(resolution), 0},
    {"train_batch_size", SLOT_INT, O(train_batch_size), 0},
    {"num_train_epochs", SLOT_INT, O(num_train_epochs), 0},
    {"max_train_steps", SLOT_INT, O(max_train_steps), 0},
    {"gradient_accumulation_steps", SLOT_INT, O(gradient_accumulation_steps), 0},
    {"learning_rate", SLOT_DBL, O(learning_rate), 0},
    {"scale_lr", SLOT_FLAG, O(scale_lr), 0},
    {"lr_scheduler", SLOT_STR, O(lr_scheduler), 0},
    {"lr_warmup_steps", SLOT_INT, O(lr_warmup_steps), 0},
    {"lr_num_cycles", SLOT_INT, O(lr_num_cycles), 0},
    {"lr_power", SLOT_DBL, O(lr_power), 0},
    {"adam_beta1", SLOT_DBL, O(adam_beta1), 0},
    {"adam_beta2", SLOT_DBL, O(adam_beta2), 0},
    {"adam_weight_decay", SLOT_DBL, O(adam_weight_decay), 0},
    {"adam_epsilon", SLOT_DBL, O(adam_epsilon), 0},
    {"max_grad_norm", SLOT_DBL, O(max_grad_norm), 0},
    {"use_8bit_adam", SLOT_FLAG, O(use_8bit_adam), 0},
    {"snr_gamma", SLOT_DBL, O(snr_gamma), 0},
    {"prediction_type", SLOT_STR, O(prediction_type), 0},
    {"checkpointing_steps", SLOT_INT, O(checkpointing_steps), 0},
    {"checkpoints_total_limit", SLOT_INT, O(checkpoints_total_limit), 0},
    {"resume_from_checkpoint", SLOT_STR, O(resume_from_checkpoint), 0},
    {"validation_prompt", SLOT_LIST, O(validation_prompt), O(n_validation_prompts)},
    {"validation_image", SLOT_LIST, O(validation_image), O(n_validation_images)},
    {"num_validation_images", SLOT_INT, O(num_validation_images), 0},
    {"validation_steps", SLOT_INT, O(validation_steps), 0},
    {"cache_latents", SLOT_FLAG, O(cache_latents), 0},
    {"gradient_checkpointing", SLOT_FLAG, O(gradient_checkpointing), 0},
    {"set_grads_to_none", SLOT_FLAG, O(set_grads_to_none), 0},
    {"max_train_samples", SLOT_I64, O(max_train_samples), 0},
    {"proportion_empty_prompts", SLOT_DBL, O(proportion_empty_prompts), 0},
    {"max_bad_fraction", SLOT_DBL, O(max_bad_fraction), 0},
};
#undef O
static const int n_slots = (int)(sizeof slots / sizeof slots[0]);

static void usage(FILE *out) {
    fprintf(out, "usage: cnet train --pretrained_model_name_or_path DIR --train_data_dir DIR "
                 "--output_dir DIR [options]\n"
                 "  The flags of diffusers' examples/controlnet/train_controlnet.py (also spelled\n"
                 "  --kebab-case; --flag VALUE or --flag=VALUE), with POST /v1/jobs' limits:\n");
    cli_usage(out, api_train_fields, api_train_n_fields);
}

/* Stores one option's value (text) in its slot of o. */
static int store(train_options *o, const cli_opt *a, const char *text, const char **device,
                 cnet_error *err) {
    const api_field *f = a->f;
    if (!strcmp(f->name, "device")) {
        *device = text;
        return 0;
    }
    if (!strcmp(f->name, "mixed_precision"))
        return cnet_precision_parse(text, &o->mixed_precision, err);
    const train_slot *s = NULL;
    for (int k = 0; k < n_slots && !s; k++)
        if (!strcmp(slots[k].name, f->name)) s = &slots[k];
    if (!s) return cnet_fail(err, CNET_EINVAL, "%s: not an option of cnet train", a->flag);
    char *base = (char *)o;
    long long ll = 0;
    int rc = 0, choice;
    switch (s->kind) {
    case SLOT_STR:
        if (f->type == AF_ENUM && (rc = cli_field_enum(f, a->flag, text, &choice, err))) return rc;
        *(const char **)(base + s->offset) = text;
        return 0;
    case SLOT_FLAG:
        *(int *)(base + s->offset) = !strcmp(text, "true");
        return 0;
    case SLOT_DBL:
        return cli_field_double(f, a->flag, text, (double *)(base + s->offset), err);
    case SLOT_LIST: {
        int *count = (int *)(base + s->count_offset);
        if (*count >= TRAIN_MAX_VALIDATION)
            return cnet_fail(err, CNET_EINVAL, "more than %d values for %s", TRAIN_MAX_VALIDATION,
                             a->flag);
        ((const char **)(base + s->offset))[(*count)++] = text;
        return 0;
    }
    case SLOT_INT:
    case SLOT_I64:
    case SLOT_U64:
        if ((rc = cli_field_long(f, a->flag, text, &ll, err))) return rc;
        if (s->kind == SLOT_INT) *(int *)(base + s->offset) = (int)ll;
        if (s->kind == SLOT_I64) *(int64_t *)(base + s->offset) = ll;
        if (s->kind == SLOT_U64) *(uint64_t *)(base + s->offset) = (uint64_t)ll;
        return 0;
    }
    return 0;
}

/* Parses argv into o: 0, or CNET_EINVAL with err naming the flag. A list
 * flag takes the values up to the next --flag (one with --flag=VALUE). */
static int parse(int argc, char **argv, train_options *o, const char **device, int *help,
                 cnet_error *err) {
    int rc = 0;
    for (int i = 1; i < argc && !rc; i++) {
        if (cli_is_help(argv[i])) {
            *help = 1;
            return 0;
        }
        cli_opt a;
        const int inline_value = strchr(argv[i], '=') != NULL;
        if ((rc = cli_next(api_train_fields, api_train_n_fields, argc, argv, &i, &a, err))) break;
        rc = store(o, &a, a.value, device, err);
        if (a.f->type != AF_PROMPTS && a.f->type != AF_PATHS) continue;
        for (; !rc && !inline_value && i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0; i++)
            rc = store(o, &a, argv[i + 1], device, err);
    }
    return rc;
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
    int help = 0;
    cnet_error err = {0};
    int rc = parse(argc, argv, &o, &device, &help, &err);
    if (rc) {
        fprintf(stderr, "cnet train: %s (cnet train --help lists the flags)\n", err.msg);
        return 2;
    }
    if (help) {
        usage(stdout);
        return 0;
    }
    cnet_backend be;
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
