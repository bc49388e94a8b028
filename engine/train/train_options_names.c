/* train_options by name: the table of train_controlnet.py's option names and
 * where each lands in train_options, and train_options_set, which stores a
 * typed value there. `cnet train` (server/cli/cmd_train.c) sets every parsed
 * flag through it and a train job (server/workers/runner_train.c) every
 * member of its spec, so a name cannot land in one place from the command
 * line and another (or nowhere) from the API.
 *
 * What it is not: a validator of values (api/api_train.c's table holds the
 * limits; trainer_run checks what the engine needs) or a parser of text. */
#include <limits.h>
#include <stddef.h>
#include <string.h>

#include "engine/train/train_tracker.h"
#include "engine/train/trainer.h"

#define O(field) offsetof(train_options, field)
const train_opt train_opts[] = {
    {"pretrained_model_name_or_path", TRAIN_OPT_STRING, O(pretrained_model_name_or_path), 0},
    {"controlnet_model_name_or_path", TRAIN_OPT_STRING, O(controlnet_model_name_or_path), 0},
    {"pretrained_vae_model_name_or_path", TRAIN_OPT_STRING, O(pretrained_vae_model_name_or_path),
     0},
    {"crops_coords_top_left_h", TRAIN_OPT_INT, O(crops_coords_top_left_h), 0},
    {"crops_coords_top_left_w", TRAIN_OPT_INT, O(crops_coords_top_left_w), 0},
    {"tokenizer_name", TRAIN_OPT_STRING, O(tokenizer_name), 0},
    {"output_dir", TRAIN_OPT_STRING, O(output_dir), 0},
    {"train_data_dir", TRAIN_OPT_STRING, O(train_data_dir), 0},
    {"image_column", TRAIN_OPT_STRING, O(image_column), 0},
    {"conditioning_image_column", TRAIN_OPT_STRING, O(conditioning_image_column), 0},
    {"caption_column", TRAIN_OPT_STRING, O(caption_column), 0},
    {"seed", TRAIN_OPT_UINT64, O(seed), 0},
    {"resolution", TRAIN_OPT_INT, O(resolution), 0},
    {"train_batch_size", TRAIN_OPT_INT, O(train_batch_size), 0},
    {"dataloader_num_workers", TRAIN_OPT_INT, O(dataloader_num_workers), 0},
    {"num_train_epochs", TRAIN_OPT_INT, O(num_train_epochs), 0},
    {"max_train_steps", TRAIN_OPT_INT, O(max_train_steps), 0},
    {"gradient_accumulation_steps", TRAIN_OPT_INT, O(gradient_accumulation_steps), 0},
    {"learning_rate", TRAIN_OPT_DOUBLE, O(learning_rate), 0},
    {"scale_lr", TRAIN_OPT_BOOL, O(scale_lr), 0},
    {"lr_scheduler", TRAIN_OPT_STRING, O(lr_scheduler), 0},
    {"lr_warmup_steps", TRAIN_OPT_INT, O(lr_warmup_steps), 0},
    {"lr_num_cycles", TRAIN_OPT_INT, O(lr_num_cycles), 0},
    {"lr_power", TRAIN_OPT_DOUBLE, O(lr_power), 0},
    {"adam_beta1", TRAIN_OPT_DOUBLE, O(adam_beta1), 0},
    {"adam_beta2", TRAIN_OPT_DOUBLE, O(adam_beta2), 0},
    {"adam_weight_decay", TRAIN_OPT_DOUBLE, O(adam_weight_decay), 0},
    {"adam_epsilon", TRAIN_OPT_DOUBLE, O(adam_epsilon), 0},
    {"max_grad_norm", TRAIN_OPT_DOUBLE, O(max_grad_norm), 0},
    {"use_8bit_adam", TRAIN_OPT_BOOL, O(use_8bit_adam), 0},
    {"shard_optimizer", TRAIN_OPT_BOOL, O(shard_optimizer), 0},
    {"snr_gamma", TRAIN_OPT_DOUBLE, O(snr_gamma), 0},
    {"prediction_type", TRAIN_OPT_STRING, O(prediction_type), 0},
    {"checkpointing_steps", TRAIN_OPT_INT, O(checkpointing_steps), 0},
    {"checkpoints_total_limit", TRAIN_OPT_INT, O(checkpoints_total_limit), 0},
    {"resume_from_checkpoint", TRAIN_OPT_STRING, O(resume_from_checkpoint), 0},
    {"validation_prompt", TRAIN_OPT_LIST, O(validation_prompt), O(n_validation_prompts)},
    {"validation_image", TRAIN_OPT_LIST, O(validation_image), O(n_validation_images)},
    {"num_validation_images", TRAIN_OPT_INT, O(num_validation_images), 0},
    {"validation_steps", TRAIN_OPT_INT, O(validation_steps), 0},
    {"cache_latents", TRAIN_OPT_BOOL, O(cache_latents), 0},
    {"gradient_checkpointing", TRAIN_OPT_BOOL, O(gradient_checkpointing), 0},
    {"set_grads_to_none", TRAIN_OPT_BOOL, O(set_grads_to_none), 0},
    {"max_train_samples", TRAIN_OPT_INT64, O(max_train_samples), 0},
    {"proportion_empty_prompts", TRAIN_OPT_DOUBLE, O(proportion_empty_prompts), 0},
    {"max_bad_fraction", TRAIN_OPT_DOUBLE, O(max_bad_fraction), 0},
    {"mixed_precision", TRAIN_OPT_PRECISION, O(mixed_precision), 0},
    {"report_to", TRAIN_OPT_TRACKERS, O(report_to), 0},
    {"logging_dir", TRAIN_OPT_STRING, O(logging_dir), 0},
    {"tracker_project_name", TRAIN_OPT_STRING, O(tracker_project_name), 0},
};
#undef O
const int train_n_opts = (int)(sizeof train_opts / sizeof train_opts[0]);

const train_opt *train_opt_find(const char *name) {
    for (int k = 0; k < train_n_opts; k++)
        if (!strcmp(train_opts[k].name, name)) return &train_opts[k];
    return NULL;
}

static const char *value_type_name(train_value_type t) {
    static const char *const names[] = {"a string", "an integer", "a number",
                                        "a bool",   "a list",     "an unsigned integer"};
    return names[t];
}

static int wrong_type(const train_opt *opt, const char *want, const train_value *v,
                      cnet_error *err) {
    return cnet_fail(err, CNET_EINVAL, "option %s takes %s, not %s", opt->name, want,
                     value_type_name(v->type));
}

/* An integer value for an integer field: the field's C type holds it. */
static int set_integer(const train_opt *opt, char *field, const train_value *v, cnet_error *err) {
    if (v->type == TRAIN_VALUE_UINT64 && opt->kind == TRAIN_OPT_UINT64) {
        *(uint64_t *)field = v->u;
        return 0;
    }
    if (v->type != TRAIN_VALUE_INTEGER) return wrong_type(opt, "an integer", v, err);
    const long long x = v->i;
    const int fits = opt->kind == TRAIN_OPT_INT      ? x >= INT_MIN && x <= INT_MAX
                     : opt->kind == TRAIN_OPT_UINT64 ? x >= 0
                                                     : 1;
    if (!fits)
        return cnet_fail(err, CNET_EINVAL, "option %s: %lld is out of its range", opt->name, x);
    if (opt->kind == TRAIN_OPT_INT) *(int *)field = (int)x;
    if (opt->kind == TRAIN_OPT_INT64) *(int64_t *)field = (int64_t)x;
    if (opt->kind == TRAIN_OPT_UINT64) *(uint64_t *)field = (uint64_t)x;
    return 0;
}

/* Appends v's strings to the list at field (its count at count). */
static int append_list(const train_opt *opt, char *field, int *count, const train_value *v,
                       cnet_error *err) {
    if (v->type != TRAIN_VALUE_LIST) return wrong_type(opt, "a list of strings", v, err);
    if (v->n < 0 || v->n > TRAIN_MAX_VALIDATION - *count)
        return cnet_fail(err, CNET_EINVAL, "option %s: more than %d values", opt->name,
                         TRAIN_MAX_VALIDATION);
    for (int k = 0; k < v->n; k++) {
        if (!v->list[k])
            return cnet_fail(err, CNET_EINVAL, "option %s: value %d is not a string", opt->name, k);
        ((const char **)field)[(*count)++] = v->list[k];
    }
    return 0;
}

int train_options_set(train_options *o, const char *name, const train_value *v, cnet_error *err) {
    const train_opt *opt = train_opt_find(name);
    if (!opt) return cnet_fail(err, CNET_EINVAL, "unknown training option '%s'", name);
    char *field = (char *)o + opt->offset;
    switch (opt->kind) {
    case TRAIN_OPT_STRING:
        if (v->type != TRAIN_VALUE_STRING || !v->s) return wrong_type(opt, "a string", v, err);
        *(const char **)field = v->s;
        return 0;
    case TRAIN_OPT_PRECISION:
        if (v->type != TRAIN_VALUE_STRING || !v->s) return wrong_type(opt, "a string", v, err);
        return cnet_precision_parse(v->s, (cnet_precision *)field, err);
    case TRAIN_OPT_TRACKERS:
        if (v->type != TRAIN_VALUE_STRING || !v->s) return wrong_type(opt, "a string", v, err);
        return train_tracker_parse(v->s, (unsigned *)field, err);
    case TRAIN_OPT_INT:
    case TRAIN_OPT_INT64:
    case TRAIN_OPT_UINT64:
        return set_integer(opt, field, v, err);
    case TRAIN_OPT_DOUBLE:
        if (v->type == TRAIN_VALUE_INTEGER)
            *(double *)field = (double)v->i;
        else if (v->type == TRAIN_VALUE_DOUBLE)
            *(double *)field = v->d;
        else
            return wrong_type(opt, "a number", v, err);
        return 0;
    case TRAIN_OPT_BOOL:
        if (v->type != TRAIN_VALUE_BOOL) return wrong_type(opt, "a bool", v, err);
        *(int *)field = v->b != 0;
        return 0;
    case TRAIN_OPT_LIST:
        return append_list(opt, field, (int *)((char *)o + opt->count_offset), v, err);
    }
    return cnet_fail(err, CNET_EINVAL, "option %s: unknown kind %d", name, (int)opt->kind);
}
