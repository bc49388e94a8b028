/* cnet train: train_controlnet.py's command line (same flag names, also
 * spelled --kebab-case; --flag VALUE or --flag=VALUE; list flags take
 * several values or repeat) over engine/train/trainer.h, with a progress
 * bar on a terminal and plain log lines otherwise. The flags, their limits
 * and help are api/api_train.c's option table, the one POST /v1/jobs
 * validates against; each lands in train_options through the trainer's
 * own option names (engine/train/trainer.h's train_options_set), but the
 * few this command acts on itself around the run (train_cli): --device,
 * the Hub's (a model or dataset named by Hub id is pulled into the cache
 * first, server/hub/hub_model.h and hub_dataset.h; --push_to_hub pushes the
 * output after, as the script's upload_folder, through server/hub/
 * hub_push.h) and the one accepted for the script's command lines
 * (--enable_xformers_memory_efficient_attention).
 * Unknown flags are errors. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/dist/comm.h"
#include "engine/train/train_decode.h"
#include "engine/train/train_step.h"
#include "engine/train/trainer.h"
#include "server/cli/cli_args.h"
#include "server/cli/cmd_train.h"
#include "server/cli/commands.h"
#include "server/cli/dl_progress.h"
#include "server/hub/hub_dataset.h"
#include "server/hub/hub_model.h"
#include "server/hub/hub_push.h"
#include "server/hub/hub_whoami.h"
#include "server/cli/train_launch.h"

/* The API's limits and the engine's, one number each (api/ may not include
 * engine/train; both are visible here). */
_Static_assert(API_PROMPTS_MAX == TRAIN_MAX_VALIDATION, "validation prompts: one limit");
_Static_assert(API_TRAIN_ACCUMULATION_MAX == TRAIN_MAX_ACCUMULATION, "accumulation: one limit");
_Static_assert(API_TRAIN_BATCH_MAX == TRAIN_MAX_BATCH, "batch size: one limit");
_Static_assert(API_TRAIN_WORKERS_MAX == TRAIN_DECODE_WORKERS_MAX, "decode threads: one limit");
_Static_assert(API_TRAIN_PROCESSES_MAX == DIST_MAX_RANKS, "ranks: one limit");

static void usage(FILE *out) {
    fprintf(out, "usage: cnet train --pretrained_model_name_or_path DIR|NS/NAME\n"
                 "                  (--train_data_dir DIR | --dataset_name NS/NAME) "
                 "--output_dir DIR [options]\n"
                 "  The flags of diffusers' examples/controlnet/train_controlnet.py (also spelled\n"
                 "  --kebab-case; --flag VALUE or --flag=VALUE; a flag may be =true or =false),\n"
                 "  with POST /v1/jobs' limits. --num_processes N starts N data-parallel ranks\n"
                 "  through Open MPI's mpirun; across machines run the same command under\n"
                 "  `mpirun -np N -H host1,host2 cnet train ...` (README: many processes).\n");
    cli_usage(out, api_train_fields, api_train_n_fields);
}

/* The flags cmd_train acts on itself (train_cli), by name. */
static int store_cli(train_cli *cli, const char *name, const char *text) {
    const struct {
        const char *name;
        const char **s;
        int *b, *i; /* i: an integer store() checked against its field */
    } flags[] = {
        {"device", &cli->device, NULL, NULL},
        {"num_processes", NULL, NULL, &cli->num_processes},
        {"revision", &cli->revision, NULL, NULL},
        {"variant", &cli->variant, NULL, NULL},
        {"cache_dir", &cli->cache_dir, NULL, NULL},
        {"dataset_name", &cli->dataset_name, NULL, NULL},
        {"dataset_config_name", &cli->dataset_config_name, NULL, NULL},
        {"hub_model_id", &cli->hub_model_id, NULL, NULL},
        {"hub_token", &cli->hub_token, NULL, NULL},
        {"push_to_hub", NULL, &cli->push_to_hub, NULL},
        {"allow_tf32", NULL, &cli->allow_tf32, NULL},
        {"enable_xformers_memory_efficient_attention", NULL, &cli->xformers, NULL},
    };
    for (size_t k = 0; k < sizeof flags / sizeof flags[0]; k++) {
        if (strcmp(flags[k].name, name) != 0) continue;
        if (flags[k].s) *flags[k].s = text;
        if (flags[k].b) *flags[k].b = !strcmp(text, "true");
        if (flags[k].i) *flags[k].i = atoi(text);
        return 1;
    }
    return 0;
}

int cmd_train_own_flag(const char *name) {
    train_cli scratch = {0};
    return store_cli(&scratch, name, "false");
}

/* Stores one option's value (text), typed by its field, in o through the
 * trainer's option names, or in cli. */
static int store(train_options *o, train_cli *cli, const cli_opt *a, const char *text,
                 cnet_error *err) {
    const api_field *f = a->f;
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
    if (rc || store_cli(cli, f->name, text)) return rc;
    rc = train_options_set(o, f->name, &v, err);
    /* after the trainer's own refusal (--mixed_precision names its values) */
    if (!rc && f->type == AF_ENUM) rc = cli_field_enum(f, a->flag, text, &choice, err);
    return rc;
}

int cmd_train_parse(int argc, char **argv, train_options *o, train_cli *cli, int *help,
                    cnet_error *err) {
    train_options_defaults(o);
    *cli = (train_cli){.device = "cpu", .num_processes = 1, .argc = argc, .argv = argv};
    int rc = 0;
    for (int i = 1; i < argc && !rc; i++) {
        if (cli_is_help(argv[i])) {
            *help = 1;
            return 0;
        }
        cli_opt a;
        const int inline_value = strchr(argv[i], '=') != NULL;
        if ((rc = cli_next(api_train_fields, api_train_n_fields, argc, argv, &i, &a, err))) break;
        rc = store(o, cli, &a, a.value, err);
        if (a.f->type != AF_PROMPTS && a.f->type != AF_PATHS) continue;
        for (; !rc && !inline_value && i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0; i++)
            rc = store(o, cli, &a, argv[i + 1], err);
    }
    if (rc) return rc;
    /* the script's parse_args rules, before anything is loaded */
    if (o->n_validation_images && !o->n_validation_prompts)
        return cnet_fail(err, CNET_EINVAL, "--validation_image needs --validation_prompt");
    if (o->n_validation_prompts && !o->n_validation_images)
        return cnet_fail(err, CNET_EINVAL, "--validation_prompt needs --validation_image");
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
        const char *form = out->use_8bit_adam ? "8-bit, --use_8bit_adam" : "float32";
        if (p->optimizer_shards > 1)
            fprintf(stderr,
                    "cnet train: AdamW state %.2f MB on rank 0, at most %.2f MB on any rank (%s; "
                    "--shard_optimizer: 1/%d of it per rank)\n",
                    p->optimizer_bytes / 1e6, p->optimizer_bytes_max / 1e6, form,
                    p->optimizer_shards);
        else
            fprintf(stderr, "cnet train: AdamW state %.2f MB (%s)\n", p->optimizer_bytes / 1e6,
                    form);
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

static void on_note(void *user, const char *line) {
    (void)user;
    fprintf(stderr, "cnet train: %s\n", line);
}

/* What a Hub pull brings: a bar per file on a terminal, else a line each. */
static dl_progress downloads;

/* Where the run's models and data come from: a Hub id becomes its snapshot
 * folder in the cache (paths: storage for the strings o then points at). */
typedef struct train_sources {
    char model[HUB_PATH_MAX], controlnet[HUB_PATH_MAX], tokenizer[HUB_PATH_MAX], data[HUB_PATH_MAX];
    char model_id[HUB_REPO_ID_MAX];
} train_sources;

static int resolve_sources(train_options *o, const train_cli *cli, train_sources *src,
                           cnet_error *err) {
    hub_model_opts mo = {.kind = HUB_MODEL_PIPELINE,
                         .revision = cli->revision,
                         .variant = cli->variant,
                         .cache_dir = cli->cache_dir,
                         .progress = dl_progress_file,
                         .progress_ctx = &downloads};
    int rc = hub_model_resolve(o->pretrained_model_name_or_path, &mo, src->model, src->model_id,
                               sizeof src->model_id, err);
    if (rc) return rc;
    o->pretrained_model_name_or_path = src->model;
    if (src->model_id[0]) o->base_model_id = src->model_id;
    /* the script loads the ControlNet without --revision or --variant */
    hub_model_opts co = {.kind = HUB_MODEL_COMPONENT,
                         .cache_dir = cli->cache_dir,
                         .progress = dl_progress_file,
                         .progress_ctx = &downloads};
    if (o->controlnet_model_name_or_path) {
        rc =
            hub_model_resolve(o->controlnet_model_name_or_path, &co, src->controlnet, NULL, 0, err);
        if (rc) return rc;
        o->controlnet_model_name_or_path = src->controlnet;
    }
    /* AutoTokenizer.from_pretrained(tokenizer_name, revision=...): the
     * tokenizer files at a Hub repo's top level */
    hub_model_opts to = {.kind = HUB_MODEL_TOKENIZER,
                         .revision = cli->revision,
                         .cache_dir = cli->cache_dir,
                         .progress = dl_progress_file,
                         .progress_ctx = &downloads};
    if (o->tokenizer_name) {
        if ((rc = hub_model_resolve(o->tokenizer_name, &to, src->tokenizer, NULL, 0, err)))
            return cnet_error_prefix(err, "--tokenizer_name");
        o->tokenizer_name = src->tokenizer;
    }
    if (cli->dataset_name) {
        hub_dataset_opts dopt = {.config_name = cli->dataset_config_name,
                                 .cache_dir = cli->cache_dir,
                                 .progress = dl_progress_file,
                                 .progress_ctx = &downloads};
        rc = hub_dataset_resolve(cli->dataset_name, &dopt, src->data, err);
        if (rc) return rc;
        o->train_data_dir = src->data;
    }
    return 0;
}

/* --push_to_hub: the repo's id, settled before training as the script's
 * create_repo is (a bad token fails now, not after the run). */
static int push_repo_id(const train_options *o, const train_cli *cli, char id[HUB_REPO_ID_MAX],
                        cnet_error *err) {
    const char *name = cli->hub_model_id;
    if (!name) {
        const char *slash = strrchr(o->output_dir, '/');
        name = slash && slash[1] ? slash + 1 : o->output_dir;
    }
    hub_client c;
    int rc = hub_client_init(&c, NULL, 1, err);
    if (!rc) rc = hub_repo_id_for(&c, name, id, err);
    hub_client_free(&c);
    return rc ? cnet_error_prefix(err, "--push_to_hub") : 0;
}

static void on_push(void *ctx, const hub_push_progress *p) {
    (void)ctx;
    if (p->phase == HUB_PUSH_UPLOAD && p->file)
        fprintf(stderr, "cnet train: uploading %s (%lld/%lld bytes)\n", p->file, p->done, p->total);
}

/* The push after training, as the script's upload_folder: the service's
 * one exactly-once push (hub_push.h), commit "End of training". */
static int push_output(const char *repo_id, const char *dir, cnet_error *err) {
    hub_push_opts po = {.repo_id = repo_id,
                        .dir = dir,
                        .revision = "main",
                        .message = "End of training",
                        .progress = on_push};
    hub_push_result r;
    hub_client c;
    int rc = hub_client_init(&c, NULL, 1, err);
    if (!rc) rc = hub_push(&c, &po, &r, err);
    hub_client_free(&c);
    if (rc) return cnet_error_prefix(err, "--push_to_hub %s", repo_id);
    fprintf(stderr, "cnet train: pushed to %s: commit %s%s\n", repo_id, r.commit,
            r.created_commit ? "" : " (already identical; no new commit)");
    return 0;
}

/* A failed run: one process prints why and returns status; a rank of
 * several ends them all with the reason, naming itself (dist_comm_abort),
 * so that none waits for it in a collective. */
static int fail_run(dist_comm *comm, int status, const char *line_start, const char *msg) {
    if (comm->size > 1) {
        char why[CNET_ERROR_MSG_MAX + 16];
        snprintf(why, sizeof why, "cnet train: %s", msg);
        dist_comm_abort(comm, status, why);
    }
    fprintf(stderr, "%scnet train: %s\n", line_start, msg);
    dist_comm_free(comm);
    return status;
}

int cmd_train_execute(train_options *opts, const train_cli *cli_in) {
    train_options o = *opts;
    train_cli cli = *cli_in;
    cnet_error err = {0};
    int rc;
    /* --num_processes N: mpirun starts N ranks of this command line, which
     * join the group below */
    if (cli.num_processes > 1 && !dist_launched()) {
        if (dist_has_mpi()) return train_launch_ranks(cli.num_processes, cli.argc, cli.argv);
        fprintf(stderr,
                "cnet train: --num_processes %d: cnet was built without MPI: install "
                "libopenmpi-dev and openmpi-bin, then rebuild\n",
                cli.num_processes);
        return 2;
    }
    dist_comm comm;
    if (dist_comm_init(&comm, &err)) return fail_run(&comm, 2, "", err.msg);
    if (cli.num_processes > 1 && comm.size != cli.num_processes) {
        snprintf(err.msg, sizeof err.msg, "--num_processes %d, but the launcher started %d ranks",
                 cli.num_processes, comm.size);
        return fail_run(&comm, 2, "", err.msg);
    }
    if (comm.size > 1) o.comm = &comm;
    const int rank0 = comm.rank == 0; /* the others print nothing but a failure */
    if (cli.hub_token) {
        if (rank0)
            fprintf(stderr, "cnet train: --hub_token: HF_TOKEN or the token file `hf auth login` "
                            "writes is safer (a command line is visible to other users)\n");
        setenv("HF_TOKEN", cli.hub_token, 1); /* what every Hub client of this run reads */
    }
    if (cli.xformers && rank0)
        fprintf(stderr, "cnet train: --enable_xformers_memory_efficient_attention: cnet's "
                        "attention is always memory-efficient\n");
    if (!cli.dataset_name == !o.train_data_dir) {
        snprintf(err.msg, sizeof err.msg, "give one of --dataset_name and --train_data_dir%s",
                 cli.dataset_name ? ", not both" : "");
        return fail_run(&comm, 2, "", err.msg);
    }
    char repo_id[HUB_REPO_ID_MAX] = "";
    static train_sources src;
    dl_progress_init(&downloads, stderr, "cnet train: ");
    /* rank 0 pulls first; the other ranks of its machine then find the
     * files in the cache */
    if ((!rank0 && dist_barrier(&comm, &err)) ||
        (rank0 && cli.push_to_hub && push_repo_id(&o, &cli, repo_id, &err)) ||
        resolve_sources(&o, &cli, &src, &err) || (rank0 && dist_barrier(&comm, &err))) {
        dl_progress_end(&downloads);
        return fail_run(&comm, 1, "", err.msg);
    }
    cnet_backend be;
    char note[256] = "";
    if (cnet_backend_open(&be, cli.device, note, sizeof note, &err))
        return fail_run(&comm, 2, "", err.msg);
    if (note[0] && rank0) fprintf(stderr, "cnet train: %s\n", note);
    cnet_backend_set_tf32(&be, cli.allow_tf32, note, sizeof note);
    if (note[0] && rank0) fprintf(stderr, "cnet train: %s\n", note);
    /* trainer_run sets it again; here only for the note (cpu: float32) */
    cnet_backend_set_precision(&be, o.mixed_precision, note, sizeof note);
    if (note[0] && rank0) fprintf(stderr, "cnet train: %s\n", note);
    if (comm.size > 1 && rank0)
        fprintf(stderr, "cnet train: %d ranks, %d samples per optimizer step\n", comm.size,
                comm.size * o.train_batch_size * o.gradient_accumulation_steps);
    progress_out out = {.tty = isatty(STDERR_FILENO), .use_8bit_adam = o.use_8bit_adam};
    const int tty = out.tty;
    train_hooks hooks = {
        .user = &out, .on_step = on_step, .on_checkpoint = on_checkpoint, .on_note = on_note};
    int stopped = 0;
    rc = trainer_run(&o, &be, &hooks, &stopped, &err);
    cnet_backend_free(&be);
    if (rc) return fail_run(&comm, 1, tty ? "\n" : "", err.msg);
    if (rank0)
        fprintf(stderr, "cnet train: done; the %s is in %s\n",
                o.train_vae    ? "trained VAE (vae/)"
                : o.train_unet ? "pipeline with the trained UNet"
                               : "ControlNet",
                o.output_dir);
    if (rank0 && cli.push_to_hub && !stopped && push_output(repo_id, o.output_dir, &err))
        return fail_run(&comm, 1, "", err.msg);
    dist_comm_free(&comm);
    return 0;
}

int cmd_train(int argc, char **argv) {
    train_options o;
    train_cli cli;
    int help = 0;
    cnet_error err = {0};
    int rc = cmd_train_parse(argc, argv, &o, &cli, &help, &err);
    if (rc) {
        fprintf(stderr, "cnet train: %s (cnet train --help lists the flags)\n", err.msg);
        return 2;
    }
    if (help) {
        usage(stdout);
        return 0;
    }
    return cmd_train_execute(&o, &cli);
}
