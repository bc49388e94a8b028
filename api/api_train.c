/* Validation of a training job request. The field names, meanings and
 * defaults are those of diffusers examples/controlnet/train_controlnet.py's
 * command-line options (so `cnet train --x` and {"x": ...} agree); the
 * ranges are ours and reject what the engine could not run.
 *
 * What it is not: the engine's own checks (shapes against the model's config
 * happen when the job runs) or the validator itself (api_fields.c). */
#include "api/api_fields.h"

static const char *const schedulers[] = {"constant", "constant_with_warmup", "linear",
                                         "cosine",   "cosine_with_restarts", "polynomial",
                                         NULL};
/* train_controlnet.py's --mixed_precision values (no fp8): the names of
 * engine/core/backend.h's cnet_precision. */
static const char *const precisions[] = {"no", "fp16", "bf16", NULL};
/* What engine/train/trainer.c can train. */
static const char *const prediction_types[] = {"epsilon", "v_prediction", NULL};

static const api_field train_fields[] = {
    {"kind", AF_ENUM, 0, 0, 0, 0, (const char *const[]){"train", NULL}, "\"train\""},
    {"pretrained_model_name_or_path", AF_MODEL, AF_REQUIRED, 0, 0, 0, NULL, NULL},
    {"controlnet_model_name_or_path", AF_CONTROLNET, AF_JOB_REF, 0, 0, 0, NULL, NULL},
    {"dataset", AF_DATASET, AF_REQUIRED, 0, 0, 0, NULL, NULL},
    {"resolution", AF_INT, 0, 8, 1024, 8, NULL, "512"},
    {"train_batch_size", AF_INT, 0, 1, 64, 0, NULL, "4"},
    {"num_train_epochs", AF_INT, 0, 1, 100000, 0, NULL, "1"},
    {"max_train_steps", AF_INT, 0, 1, 1000000, 0, NULL, NULL},
    {"checkpointing_steps", AF_INT, 0, 1, 1000000, 0, NULL, "500"},
    {"checkpoints_total_limit", AF_INT, 0, 1, 10000, 0, NULL, NULL},
    {"gradient_accumulation_steps", AF_INT, 0, 1, 1024, 0, NULL, "1"},
    {"learning_rate", AF_NUM, AF_LO_OPEN, 0, 1, 0, NULL, "5e-06"},
    {"scale_lr", AF_BOOL, 0, 0, 0, 0, NULL, "false"},
    {"gradient_checkpointing", AF_BOOL, 0, 0, 0, 0, NULL, "false"},
    {"set_grads_to_none", AF_BOOL, 0, 0, 0, 0, NULL, "false"},
    {"lr_scheduler", AF_ENUM, 0, 0, 0, 0, schedulers, "\"constant\""},
    {"lr_warmup_steps", AF_INT, 0, 0, 1000000, 0, NULL, "500"},
    {"lr_num_cycles", AF_INT, 0, 1, 10000, 0, NULL, "1"},
    {"lr_power", AF_NUM, AF_LO_OPEN, 0, 100, 0, NULL, "1.0"},
    {"adam_beta1", AF_NUM, AF_HI_OPEN, 0, 1, 0, NULL, "0.9"},
    {"adam_beta2", AF_NUM, AF_HI_OPEN, 0, 1, 0, NULL, "0.999"},
    {"adam_weight_decay", AF_NUM, 0, 0, 1, 0, NULL, "0.01"},
    {"adam_epsilon", AF_NUM, AF_LO_OPEN, 0, 1, 0, NULL, "1e-08"},
    {"max_grad_norm", AF_NUM, AF_LO_OPEN, 0, 1e6, 0, NULL, "1.0"},
    {"use_8bit_adam", AF_BOOL, 0, 0, 0, 0, NULL, "false"},
    {"seed", AF_INT, 0, 0, 4294967295.0, 0, NULL, NULL},
    {"proportion_empty_prompts", AF_NUM, 0, 0, 1, 0, NULL, "0.0"},
    {"snr_gamma", AF_NUM, AF_LO_OPEN, 0, 100, 0, NULL, NULL},
    {"validation_prompt", AF_PROMPTS, 0, 0, 0, 0, NULL, NULL},
    {"validation_image", AF_PATHS, 0, 0, 0, 0, NULL, NULL},
    {"num_validation_images", AF_INT, 0, 1, 16, 0, NULL, "4"},
    {"validation_steps", AF_INT, 0, 1, 1000000, 0, NULL, "100"},
    {"mixed_precision", AF_ENUM, 0, 0, 0, 0, precisions, "\"no\""},
    {"prediction_type", AF_ENUM, 0, 0, 0, 0, prediction_types, NULL},
    {"push_to_hub", AF_HUB, 0, 0, 0, 0, NULL, NULL},
};

int api_train_spec(const json_t *req, const api_roots *roots, json_t **spec, api_error *e) {
    int rc = api_fields_check(train_fields, (int)(sizeof train_fields / sizeof train_fields[0]),
                              req, roots, spec, e);
    if (rc) return rc;
    /* The script's pairing rule: one of either or as many of each. Prompts
     * alone take the conditioning images of the dataset's first samples. */
    size_t np = json_array_size(json_object_get(*spec, "validation_prompt"));
    size_t ni = json_array_size(json_object_get(*spec, "validation_image"));
    if ((ni && !np) || (np > 1 && ni > 1 && np != ni)) {
        json_decref(*spec);
        *spec = NULL;
        return api_fail(e, 400, "invalid_field",
                        ni && !np ? "validation_prompt" : "validation_image",
                        "validation_prompt (%zu) and validation_image (%zu): give prompts with "
                        "one image, as many images, or none (the dataset's)",
                        np, ni);
    }
    return 0;
}
