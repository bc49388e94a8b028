/* cnet train: train_controlnet.py's command line (same flag names, also
 * spelled --kebab-case; --flag VALUE or --flag=VALUE; list flags take
 * several values or repeat) over engine/train/trainer.h, with a progress
 * bar on a terminal and plain log lines otherwise. The flags, their limits
 * and help are api/api_train.c's option table, the one POST /v1/jobs
 * validates against; each lands in train_options through the trainer's
 * own option names (engine/train/trainer.h's train_options_set). Unknown
 * flags are errors. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/train/train_step.h"
#include "engine/train/trainer.h"
#include "server/cli/cli_args.h"
#include "server/cli/cmd_train.h"
#include "server/cli/commands.h"

/* The API's limits and the engine's, one number each (api/ may not include
 * engine/train; both are visible here). */
_Static_assert(API_PROMPTS_MAX == TRAIN_MAX_VALIDATION, "validation prompts: one limit");
_Static_assert(API_TRAIN_ACCUMULATION_MAX == TRAIN_MAX_ACCUMULATION, "accumulation: one limit");
_Static_assert(API_TRAIN_BATCH_MAX == TRAIN_MAX_BATCH, "batch size: one limit");

static void usage(FILE *out) {
    fprintf(out, "usage: cnet train --pretrained_model_name_or_path DIR --train_data_dir DIR "
                 "--output_dir DIR [options]\n"
                 "  The flags of diffusers' examples/controlnet/train_controlnet.py (also spelled\n"
                 "  --kebab-case; --flag VALUE or --flag=VALUE), with POST /v1/jobs' limits:\n");
    cli_usage(out, api_train_fields, api_train_n_fields);
}

/* Stores one option's value (text), typed by its field, in o through the
 * trainer's option names; --device picks the backend instead. */
static int store(train_options *o, const cli_opt *a, const char *text, const char **device,
                 cnet_error *err) {
    const api_field *f = a->f;
    if (!strcmp(f->name, "device")) {
        *device = text;
        return 0;
    }
    train_value v = {.type = TRAIN_VALUE_STRING, .s = text};
    int rc = 0, choice;
    switch (f->type) {
    case AF_INT:
        if (f->hi > (double)LLONG_MAX) { /* the 64-bit seed */
            v.type = TRAIN_VALUE_UINT64;
            rc = cli_field_u64(f, a->flag, text, &v.u, err);
        } else {
            v.type = TRAIN_VALUE_INTEGER;
            rc = cli_field_long(f, a->flag, text, &v.i, err);
        }
        break;
    case AF_NUM:
        v.type = TRAIN_VALUE_DOUBLE;
        rc = cli_field_double(f, a->flag, text, &v.d, err);
        break;
    case AF_BOOL:
        v.type = TRAIN_VALUE_BOOL;
        v.b = !strcmp(text, "true");
        break;
    case AF_PROMPTS:
    case AF_PATHS:
        v.type = TRAIN_VALUE_LIST;
        v.list = &text;
        v.n = 1;
        break;
    default:
        break;
    }
    if (!rc) rc = train_options_set(o, f->name, &v, err);
    /* after the trainer's own refusal (--mixed_precision names its values) */
    if (!rc && f->type == AF_ENUM) rc = cli_field_enum(f, a->flag, text, &choice, err);
    return rc;
}

int cmd_train_parse(int argc, char **argv, train_options *o, const char **device, int *help,
                    cnet_error *err) {
    train_options_defaults(o);
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
    const char *device = "cpu";
    int help = 0;
    cnet_error err = {0};
    int rc = cmd_train_parse(argc, argv, &o, &device, &help, &err);
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
