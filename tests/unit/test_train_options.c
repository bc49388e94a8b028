/* One mapping from option names to train_options for both entry points:
 * every option of api/api_train.c's table (but the job's own members and
 * --device) is a trainer option of engine/train/trainer.h's train_opts and
 * back; `cnet train`'s flags (server/cli/cmd_train.c) and a POST /v1/jobs
 * spec (validated by api_train_spec, mapped by server/workers/runner_train.c)
 * with the same values give equal train_options, field by field, each
 * field away from its default (so neither entry point drops an option);
 * train_options_set refuses unknown names and wrong types. */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "api/api_fields.h"
#include "engine/train/trainer.h"
#include "server/cli/cli_args.h"
#include "server/cli/cmd_train.h"
#include "server/workers/runner_train.h"
#include "tests/lib/harness.h"
#include "tests/lib/lib_fs.h"

#define DATASET_ID "d_00112233445566778899aabbccddeeff"

static char tmp[PATH_MAX], models[PATH_MAX + 16], datasets[PATH_MAX + 16], jobs[PATH_MAX + 16];
static char job_dir[PATH_MAX + 32];

/* Members of a train request that are not trainer options: the job's own
 * (API) and what `cnet train` does itself (the backend, the Hub). */
static int not_a_trainer_option(const char *name) {
    return !strcmp(name, "kind") || !strcmp(name, "dataset") || !strcmp(name, "push_to_hub") ||
           cmd_train_own_flag(name);
}

static int setup(void) {
    if (tmpdir_make(tmp, sizeof tmp, "cnet-trainopts")) return -1;
    snprintf(models, sizeof models, "%s/models", tmp);
    snprintf(datasets, sizeof datasets, "%s/datasets", tmp);
    snprintf(jobs, sizeof jobs, "%s/jobs", tmp);
    snprintf(job_dir, sizeof job_dir, "%s/j_0001", jobs);
    return file_touch_json(models, "base", "model_index.json") ||
           file_touch_json(models, "cn", "config.json") ||
           file_touch_json(datasets, DATASET_ID, "report.json") ||
           file_touch_json(jobs, "j_0001", "spec.json");
}

static int compatible(api_ftype t, train_opt_kind k) {
    switch (t) {
    case AF_INT:
        return k == TRAIN_OPT_INT || k == TRAIN_OPT_INT64 || k == TRAIN_OPT_UINT64;
    case AF_NUM:
        return k == TRAIN_OPT_DOUBLE;
    case AF_BOOL:
        return k == TRAIN_OPT_BOOL;
    case AF_PROMPTS:
    case AF_PATHS:
        return k == TRAIN_OPT_LIST;
    case AF_ENUM:
        return k == TRAIN_OPT_STRING || k == TRAIN_OPT_PRECISION || k == TRAIN_OPT_TRACKERS;
    case AF_MODEL:
    case AF_CONTROLNET:
    case AF_TEXT:
        return k == TRAIN_OPT_STRING;
    default:
        return 0;
    }
}

static void test_table_maps_every_option(void) {
    for (int k = 0; k < api_train_n_fields; k++) {
        const api_field *f = &api_train_fields[k];
        const train_opt *opt = train_opt_find(f->name);
        if (not_a_trainer_option(f->name)) {
            EXPECT(!opt, "%s is handled by its entry point, yet is a trainer option", f->name);
            continue;
        }
        EXPECT(opt, "option %s of api_train_fields lands nowhere in train_options", f->name);
        EXPECT(!opt || compatible(f->type, opt->kind), "%s: table type %d vs field kind %d",
               f->name, (int)f->type, opt ? (int)opt->kind : -1);
    }
    for (int k = 0; k < train_n_opts; k++)
        EXPECT(api_field_find(api_train_fields, api_train_n_fields, train_opts[k].name),
               "trainer option %s is not in api_train_fields: neither entry point sets it",
               train_opts[k].name);
}

/* Whether option opt holds the same value in a and b (strings by content). */
static int same_value(const train_opt *opt, const train_options *a, const train_options *b) {
    const char *pa = (const char *)a + opt->offset, *pb = (const char *)b + opt->offset;
    switch (opt->kind) {
    case TRAIN_OPT_STRING: {
        const char *sa = *(const char *const *)pa, *sb = *(const char *const *)pb;
        return sa == sb || (sa && sb && !strcmp(sa, sb));
    }
    case TRAIN_OPT_LIST: {
        const int na = *(const int *)((const char *)a + opt->count_offset);
        const int nb = *(const int *)((const char *)b + opt->count_offset);
        if (na != nb) return 0;
        for (int i = 0; i < na; i++)
            if (strcmp(((const char *const *)pa)[i], ((const char *const *)pb)[i])) return 0;
        return 1;
    }
    case TRAIN_OPT_INT:
    case TRAIN_OPT_BOOL:
        return *(const int *)pa == *(const int *)pb;
    case TRAIN_OPT_INT64:
        return *(const int64_t *)pa == *(const int64_t *)pb;
    case TRAIN_OPT_UINT64:
        return *(const uint64_t *)pa == *(const uint64_t *)pb;
    case TRAIN_OPT_DOUBLE:
        return *(const double *)pa == *(const double *)pb;
    case TRAIN_OPT_PRECISION:
        return *(const cnet_precision *)pa == *(const cnet_precision *)pb;
    case TRAIN_OPT_TRACKERS:
        return *(const unsigned *)pa == *(const unsigned *)pb;
    }
    return 0;
}

static void test_cli_and_spec_agree(void) {
    char model[PATH_MAX + 32], cn[PATH_MAX + 32], data[PATH_MAX + 64], img0[PATH_MAX + 80],
        img1[PATH_MAX + 80];
    snprintf(model, sizeof model, "%s/base", models);
    snprintf(cn, sizeof cn, "%s/cn", models);
    snprintf(data, sizeof data, "%s/%s/files", datasets, DATASET_ID);
    snprintf(img0, sizeof img0, "%s/cond/a.png", data);
    snprintf(img1, sizeof img1, "%s/cond/b.png", data);
    /* every option a job can set, away from its default, in both spellings */
    char *argv[] = {"train",
                    "--pretrained_model_name_or_path",
                    model,
                    "--controlnet-model-name-or-path",
                    cn,
                    "--train_data_dir",
                    data,
                    "--output_dir",
                    job_dir,
                    "--resume_from_checkpoint",
                    "latest",
                    "--resolution",
                    "256",
                    "--train_batch_size=2",
                    "--num_train_epochs",
                    "3",
                    "--max_train_steps",
                    "7",
                    "--checkpointing_steps",
                    "5",
                    "--checkpoints_total_limit",
                    "2",
                    "--gradient_accumulation_steps",
                    "4",
                    "--learning_rate",
                    "1e-4",
                    "--scale_lr",
                    "--gradient-checkpointing",
                    "--set_grads_to_none=true",
                    "--lr_scheduler",
                    "cosine",
                    "--lr_warmup_steps",
                    "10",
                    "--lr_num_cycles",
                    "3",
                    "--lr_power",
                    "2",
                    "--adam_beta1",
                    "0.8",
                    "--adam_beta2",
                    "0.99",
                    "--adam_weight_decay",
                    "0.02",
                    "--adam_epsilon",
                    "1e-6",
                    "--max_grad_norm",
                    "0.5",
                    "--use_8bit_adam",
                    "--shard_optimizer",
                    "--seed",
                    "4000000000",
                    "--proportion_empty_prompts",
                    "0.25",
                    "--snr_gamma",
                    "5",
                    "--validation_prompt",
                    "a cat",
                    "a dog",
                    "--validation_image",
                    img0,
                    "--validation-image",
                    img1,
                    "--num_validation_images",
                    "2",
                    "--validation_steps",
                    "50",
                    "--mixed_precision",
                    "bf16",
                    "--prediction_type",
                    "v_prediction",
                    "--crops_coords_top_left_h",
                    "2",
                    "--crops-coords-top-left-w=6",
                    "--image_column",
                    "target",
                    "--conditioning_image_column",
                    "source",
                    "--caption_column",
                    "prompt",
                    "--max_train_samples",
                    "5"};
    const int argc = (int)(sizeof argv / sizeof argv[0]);
    train_options cli;
    train_cli tc;
    int help = 0;
    cnet_error err = {0};
    CHECK(!cmd_train_parse(argc, argv, &cli, &tc, &help, &err), "%s", err.msg);

    json_error_t jerr;
    json_t *req = json_loads(
        "{\"pretrained_model_name_or_path\": \"base\", \"controlnet_model_name_or_path\": \"cn\","
        " \"dataset\": \"" DATASET_ID "\", \"resolution\": 256, \"train_batch_size\": 2,"
        " \"num_train_epochs\": 3, \"max_train_steps\": 7, \"checkpointing_steps\": 5,"
        " \"checkpoints_total_limit\": 2, \"gradient_accumulation_steps\": 4,"
        " \"learning_rate\": 1e-4, \"scale_lr\": true, \"gradient_checkpointing\": true,"
        " \"set_grads_to_none\": true, \"lr_scheduler\": \"cosine\", \"lr_warmup_steps\": 10,"
        " \"lr_num_cycles\": 3, \"lr_power\": 2, \"adam_beta1\": 0.8, \"adam_beta2\": 0.99,"
        " \"adam_weight_decay\": 0.02, \"adam_epsilon\": 1e-6, \"max_grad_norm\": 0.5,"
        " \"use_8bit_adam\": true, \"shard_optimizer\": true, \"seed\": 4000000000, "
        "\"proportion_empty_prompts\": 0.25,"
        " \"snr_gamma\": 5.0, \"validation_prompt\": [\"a cat\", \"a dog\"],"
        " \"validation_image\": [\"cond/a.png\", \"cond/b.png\"], \"num_validation_images\": 2,"
        " \"validation_steps\": 50, \"mixed_precision\": \"bf16\","
        " \"prediction_type\": \"v_prediction\", \"crops_coords_top_left_h\": 2,"
        " \"crops_coords_top_left_w\": 6, \"image_column\": \"target\","
        " \"conditioning_image_column\": \"source\", \"caption_column\": \"prompt\","
        " \"max_train_samples\": 5}",
        0, &jerr);
    CHECK(req, "request: %s", jerr.text);
    const api_roots roots = {.models_dir = models, .datasets_dir = datasets, .jobs_dir = jobs};
    json_t *spec = NULL;
    api_error ae = {0};
    const int vrc = api_train_spec(req, &roots, &spec, &ae);
    json_decref(req);
    CHECK(!vrc, "api_train_spec: %s", ae.message);

    const runner_config cfg = {.models_dir = models, .jobs_dir = jobs, .datasets_dir = datasets};
    const pool_job pj = {.id = "j_0001", .kind = "train", .dir = job_dir, .attempt = 1};
    runner_job x = {.cfg = &cfg, .job = &pj, .err = &err};
    static runner_train_paths paths;
    train_options api;
    const int mrc = runner_train_options(&x, spec, &paths, &api);
    if (mrc) json_decref(spec);
    CHECK(!mrc, "runner_train_options: %s", err.msg);

    train_options defaults;
    train_options_defaults(&defaults);
    for (int k = 0; k < train_n_opts; k++) {
        const train_opt *opt = &train_opts[k];
        const api_field *f = api_field_find(api_train_fields, api_train_n_fields, opt->name);
        EXPECT(same_value(opt, &cli, &api), "%s: the CLI and a job disagree", opt->name);
        /* what a job can set, the values above move from the default */
        if (f && !(f->flags & AF_CLI_ONLY))
            EXPECT(!same_value(opt, &cli, &defaults), "%s: the test leaves it at its default",
                   opt->name);
    }
    EXPECT(cli.base == NULL && api.base == NULL, "base is the caller's, not an option");
    json_decref(spec);
}

/* The command line's own options (files, columns, data handling) land too:
 * every AF_CLI_ONLY trainer option, away from its default. */
static void test_cli_only_options(void) {
    char *argv[] = {"train",
                    "--output_dir",
                    "out",
                    "--train-data-dir",
                    "data",
                    "--resume_from_checkpoint",
                    "out/checkpoint-2",
                    "--image_column",
                    "target",
                    "--conditioning-image-column",
                    "hint",
                    "--caption_column",
                    "prompt",
                    "--cache_latents",
                    "--max_train_samples",
                    "5000000000",
                    "--max_bad_fraction",
                    "0.5",
                    "--logging_dir",
                    "tb",
                    "--tracker-project-name",
                    "run1",
                    "--pretrained_vae_model_name_or_path",
                    "vae-fp16-fix",
                    "--tokenizer_name",
                    "tok",
                    "--dataloader-num-workers=3"};
    train_options o, d;
    train_cli tc;
    int help = 0;
    cnet_error err = {0};
    CHECK(!cmd_train_parse((int)(sizeof argv / sizeof argv[0]), argv, &o, &tc, &help, &err), "%s",
          err.msg);
    train_options_defaults(&d);
    for (int k = 0; k < train_n_opts; k++) {
        const api_field *f =
            api_field_find(api_train_fields, api_train_n_fields, train_opts[k].name);
        /* --report_to's every value is the default's one tracker
         * (engine/train/train_tracker.h; test_tensorboard parses them) */
        if (f && (f->flags & AF_CLI_ONLY) && strcmp(f->name, "report_to"))
            EXPECT(!same_value(&train_opts[k], &o, &d), "--%s did not land", f->name);
    }
    EXPECT(o.max_train_samples == 5000000000LL, "max_train_samples %lld",
           (long long)o.max_train_samples);
    EXPECT(!strcmp(o.caption_column, "prompt"), "caption_column %s", o.caption_column);
    EXPECT(o.dataloader_num_workers == 3 && !strcmp(o.tokenizer_name, "tok"),
           "dataloader_num_workers %d tokenizer_name %s", o.dataloader_num_workers,
           o.tokenizer_name);
}

/* A spec member the trainer does not know (a spec stored by another
 * version) fails the job by name instead of being dropped. */
static void test_spec_unknown_member_refused(void) {
    json_t *spec = json_pack("{s:s, s:s, s:i}", "pretrained_model_name_or_path", "base", "dataset",
                             DATASET_ID, "no_such_option", 1);
    CHECK(spec, "json_pack");
    cnet_error err = {0};
    const runner_config cfg = {.models_dir = models, .jobs_dir = jobs, .datasets_dir = datasets};
    const pool_job pj = {.id = "j_0001", .kind = "train", .dir = job_dir, .attempt = 1};
    runner_job x = {.cfg = &cfg, .job = &pj, .err = &err};
    static runner_train_paths paths;
    train_options o;
    const int rc = runner_train_options(&x, spec, &paths, &o);
    json_decref(spec);
    EXPECT(rc == CNET_EINVAL && strstr(err.msg, "j_0001") && strstr(err.msg, "no_such_option"),
           "rc %d: %s", rc, err.msg);
}

static void test_set_refuses(void) {
    train_options o;
    train_options_defaults(&o);
    cnet_error err = {0};
    const train_value s = {.type = TRAIN_VALUE_STRING, .s = "x"};
    EXPECT(train_options_set(&o, "no_such_option", &s, &err) == CNET_EINVAL &&
               strstr(err.msg, "no_such_option"),
           "unknown name: %s", err.msg);
    EXPECT(train_options_set(&o, "resolution", &s, &err) == CNET_EINVAL &&
               strstr(err.msg, "resolution") && strstr(err.msg, "integer"),
           "string for an int: %s", err.msg);
    const train_value big = {.type = TRAIN_VALUE_INTEGER, .i = (long long)INT_MAX + 1};
    EXPECT(train_options_set(&o, "resolution", &big, &err) == CNET_EINVAL &&
               strstr(err.msg, "range"),
           "int overflow: %s", err.msg);
    const train_value neg = {.type = TRAIN_VALUE_INTEGER, .i = -1};
    EXPECT(train_options_set(&o, "seed", &neg, &err) == CNET_EINVAL, "negative seed: %s", err.msg);
    const train_value d = {.type = TRAIN_VALUE_DOUBLE, .d = 0.5};
    EXPECT(train_options_set(&o, "scale_lr", &d, &err) == CNET_EINVAL && strstr(err.msg, "bool"),
           "number for a flag: %s", err.msg);
    const train_value i = {.type = TRAIN_VALUE_INTEGER, .i = 3};
    EXPECT(!train_options_set(&o, "learning_rate", &i, &err) && o.learning_rate == 3.0,
           "an integer for a double: %s", err.msg);
    const train_value p = {.type = TRAIN_VALUE_STRING, .s = "fp8"};
    EXPECT(train_options_set(&o, "mixed_precision", &p, &err) == CNET_EINVAL, "fp8: %s", err.msg);
    const train_value w = {.type = TRAIN_VALUE_STRING, .s = "wandb"};
    EXPECT(train_options_set(&o, "report_to", &w, &err) == CNET_EINVAL &&
               strstr(err.msg, "use --report_to tensorboard"),
           "wandb: %s", err.msg);
    EXPECT(train_options_set(&o, "report_to", &i, &err) == CNET_EINVAL && strstr(err.msg, "string"),
           "an integer for report_to: %s", err.msg);
    const char *items[TRAIN_MAX_VALIDATION + 1];
    for (int k = 0; k <= TRAIN_MAX_VALIDATION; k++) items[k] = "p";
    const train_value many = {.type = TRAIN_VALUE_LIST, .list = items, .n = TRAIN_MAX_VALIDATION};
    EXPECT(!train_options_set(&o, "validation_prompt", &many, &err) &&
               o.n_validation_prompts == TRAIN_MAX_VALIDATION,
           "%d prompts: %s", TRAIN_MAX_VALIDATION, err.msg);
    const train_value one = {.type = TRAIN_VALUE_LIST, .list = items, .n = 1};
    EXPECT(train_options_set(&o, "validation_prompt", &one, &err) == CNET_EINVAL &&
               o.n_validation_prompts == TRAIN_MAX_VALIDATION,
           "one prompt too many: %s", err.msg);
}

/* train_controlnet.py's --seed is any 64-bit value (torch's manual_seed
 * takes them): the CLI keeps every bit up to 2^64-1 and refuses 2^64. */
static void test_seed_64_bits(void) {
    char *top[] = {"train", "--seed", "18446744073709551615"};
    char *over[] = {"train", "--seed=18446744073709551616"};
    train_options o;
    train_cli tc;
    int help = 0;
    cnet_error err = {0};
    CHECK(!cmd_train_parse(3, top, &o, &tc, &help, &err), "%s", err.msg);
    EXPECT(o.seed == UINT64_MAX, "seed %llu", (unsigned long long)o.seed);
    EXPECT(cmd_train_parse(2, over, &o, &tc, &help, &err) == CNET_EINVAL && strstr(err.msg, "seed"),
           "2^64 accepted or not named: %s", err.msg);
}

/* Every flag of diffusers v0.27.2 examples/controlnet/train_controlnet.py's
 * parse_args, copied from the script by hand, then the flags of
 * train_controlnet_sdxl.py's parse_args that train_controlnet.py lacks. */
static const char *const script_flags[] = {
    "pretrained_model_name_or_path", "controlnet_model_name_or_path", "revision", "variant",
    "tokenizer_name", "output_dir", "cache_dir", "logging_dir", "report_to", "tracker_project_name",
    "seed", "resolution", "train_batch_size", "num_train_epochs", "max_train_steps",
    "checkpointing_steps", "checkpoints_total_limit", "resume_from_checkpoint",
    "gradient_accumulation_steps", "gradient_checkpointing", "learning_rate", "scale_lr",
    "lr_scheduler", "lr_warmup_steps", "lr_num_cycles", "lr_power", "use_8bit_adam",
    "dataloader_num_workers", "adam_beta1", "adam_beta2", "adam_weight_decay", "adam_epsilon",
    "max_grad_norm", "push_to_hub", "hub_token", "hub_model_id", "allow_tf32", "mixed_precision",
    "enable_xformers_memory_efficient_attention", "set_grads_to_none", "dataset_name",
    "dataset_config_name", "train_data_dir", "image_column", "conditioning_image_column",
    "caption_column", "max_train_samples", "proportion_empty_prompts", "validation_prompt",
    "validation_image", "num_validation_images", "validation_steps",
    /* and train_controlnet_sdxl.py's own */
    "pretrained_vae_model_name_or_path", "crops_coords_top_left_h", "crops_coords_top_left_w"};

/* Each is a flag of `cnet train` (cli_next finds it) and listed by --help. */
static void test_every_script_flag(void) {
    char *help = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&help, &len);
    CHECK(f, "open_memstream");
    fputc('\n', f); /* every flag's line then starts after a newline */
    cli_usage(f, api_train_fields, api_train_n_fields);
    fclose(f);
    for (size_t k = 0; k < sizeof script_flags / sizeof *script_flags; k++) {
        char flag[128], line[140];
        snprintf(flag, sizeof flag, "--%s", script_flags[k]);
        char *argv[] = {"train", flag, "1"};
        int i = 1;
        cli_opt a;
        cnet_error err = {0};
        EXPECT(!cli_next(api_train_fields, api_train_n_fields, 3, argv, &i, &a, &err), "%s: %s",
               flag, err.msg);
        snprintf(line, sizeof line, "\n  %s", flag);
        const char *at = strstr(help, line);
        EXPECT(at && strchr(" \n", at[strlen(line)]), "%s is not in cnet train --help", flag);
    }
    free(help);
}

/* --flag VALUE and --flag=VALUE, nargs lists and repeated list flags, and
 * booleans written as Python and shells write them, give one result. */
static void test_flag_spellings(void) {
    char *spaced[] = {"train",
                      "--resolution",
                      "64",
                      "--scale_lr=False",
                      "--gradient_checkpointing=0",
                      "--use_8bit_adam=True",
                      "--allow_tf32",
                      "--push_to_hub=false",
                      "--validation_prompt",
                      "a cat",
                      "a dog",
                      "--validation_image",
                      "c.png",
                      "--revision",
                      "v1"};
    char *inline_[] = {"train",
                       "--resolution=64",
                       "--scale_lr=false",
                       "--gradient-checkpointing=false",
                       "--use_8bit_adam=1",
                       "--allow_tf32=true",
                       "--validation_prompt=a cat",
                       "--validation_prompt=a dog",
                       "--validation_image=c.png",
                       "--revision=v1"};
    train_options a, b;
    train_cli ta, tb;
    int help = 0;
    cnet_error err = {0};
    CHECK(!cmd_train_parse((int)(sizeof spaced / sizeof *spaced), spaced, &a, &ta, &help, &err),
          "spaced: %s", err.msg);
    CHECK(!cmd_train_parse((int)(sizeof inline_ / sizeof *inline_), inline_, &b, &tb, &help, &err),
          "inline: %s", err.msg);
    for (int k = 0; k < train_n_opts; k++)
        EXPECT(same_value(&train_opts[k], &a, &b), "%s differs by spelling", train_opts[k].name);
    EXPECT(a.resolution == 64 && !a.scale_lr && !a.gradient_checkpointing && a.use_8bit_adam,
           "values: resolution %d scale_lr %d gradient_checkpointing %d use_8bit_adam %d",
           a.resolution, a.scale_lr, a.gradient_checkpointing, a.use_8bit_adam);
    EXPECT(a.n_validation_prompts == 2 && a.n_validation_images == 1, "lists %d %d",
           a.n_validation_prompts, a.n_validation_images);
    EXPECT(ta.allow_tf32 && tb.allow_tf32 && !ta.push_to_hub && !tb.push_to_hub,
           "flags of cnet train: tf32 %d %d push %d %d", ta.allow_tf32, tb.allow_tf32,
           ta.push_to_hub, tb.push_to_hub);
    EXPECT(!strcmp(ta.revision, "v1") && !strcmp(tb.revision, "v1"), "revision");

    char *maybe[] = {"train", "--scale_lr=maybe"};
    EXPECT(cmd_train_parse(2, maybe, &a, &ta, &help, &err) == CNET_EINVAL &&
               strstr(err.msg, "--scale_lr"),
           "--scale_lr=maybe: %s", err.msg);
    /* the script's parse_args: an image needs a prompt (else it would
     * train to the end and fail at the validation image) */
    char *image_only[] = {"train", "--validation_image", "c.png"};
    EXPECT(cmd_train_parse(3, image_only, &a, &ta, &help, &err) == CNET_EINVAL &&
               strstr(err.msg, "--validation_prompt"),
           "an image without a prompt: %s", err.msg);
}

int main(int argc, char **argv) {
    harness_init(argc, argv);
    if (setup()) {
        printf("setup failed\ntest_train_options: 0 passed, 1 failed\n");
        return 1;
    }
    RUN(test_table_maps_every_option);
    RUN(test_cli_and_spec_agree);
    RUN(test_cli_only_options);
    RUN(test_spec_unknown_member_refused);
    RUN(test_set_refuses);
    RUN(test_seed_64_bits);
    RUN(test_every_script_flag);
    RUN(test_flag_spellings);
    tmpdir_remove(tmp);
    return harness_done();
}
