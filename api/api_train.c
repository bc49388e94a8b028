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

const api_field api_train_fields[] = {
    {.name = "kind",
     .type = AF_ENUM,
     .choices = (const char *const[]){"train", NULL},
     .def = "\"train\""},
    {.name = "pretrained_model_name_or_path", .type = AF_MODEL, .flags = AF_REQUIRED},
    {.name = "controlnet_model_name_or_path", .type = AF_CONTROLNET, .flags = AF_JOB_REF},
    {.name = "dataset", .type = AF_DATASET, .flags = AF_REQUIRED},
    {.name = "resolution", .type = AF_INT, .lo = 8, .hi = 1024, .multiple_of = 8, .def = "512"},
    {.name = "train_batch_size", .type = AF_INT, .lo = 1, .hi = 64, .def = "4"},
    {.name = "num_train_epochs", .type = AF_INT, .lo = 1, .hi = 100000, .def = "1"},
    {.name = "max_train_steps", .type = AF_INT, .lo = 1, .hi = 1000000},
    {.name = "checkpointing_steps", .type = AF_INT, .lo = 1, .hi = 1000000, .def = "500"},
    {.name = "checkpoints_total_limit", .type = AF_INT, .lo = 1, .hi = 10000},
    {.name = "gradient_accumulation_steps", .type = AF_INT, .lo = 1, .hi = 1024, .def = "1"},
    {.name = "learning_rate", .type = AF_NUM, .flags = AF_LO_OPEN, .hi = 1, .def = "5e-06"},
    {.name = "scale_lr", .type = AF_BOOL, .def = "false"},
    {.name = "gradient_checkpointing", .type = AF_BOOL, .def = "false"},
    {.name = "set_grads_to_none", .type = AF_BOOL, .def = "false"},
    {.name = "lr_scheduler", .type = AF_ENUM, .choices = schedulers, .def = "\"constant\""},
    {.name = "lr_warmup_steps", .type = AF_INT, .hi = 1000000, .def = "500"},
    {.name = "lr_num_cycles", .type = AF_INT, .lo = 1, .hi = 10000, .def = "1"},
    {.name = "lr_power", .type = AF_NUM, .flags = AF_LO_OPEN, .hi = 100, .def = "1.0"},
    {.name = "adam_beta1", .type = AF_NUM, .flags = AF_HI_OPEN, .hi = 1, .def = "0.9"},
    {.name = "adam_beta2", .type = AF_NUM, .flags = AF_HI_OPEN, .hi = 1, .def = "0.999"},
    {.name = "adam_weight_decay", .type = AF_NUM, .hi = 1, .def = "0.01"},
    {.name = "adam_epsilon", .type = AF_NUM, .flags = AF_LO_OPEN, .hi = 1, .def = "1e-08"},
    {.name = "max_grad_norm", .type = AF_NUM, .flags = AF_LO_OPEN, .hi = 1e6, .def = "1.0"},
    {.name = "use_8bit_adam", .type = AF_BOOL, .def = "false"},
    {.name = "seed", .type = AF_INT, .hi = 4294967295.0},
    {.name = "proportion_empty_prompts", .type = AF_NUM, .hi = 1, .def = "0.0"},
    {.name = "snr_gamma", .type = AF_NUM, .flags = AF_LO_OPEN, .hi = 100},
    {.name = "validation_prompt", .type = AF_PROMPTS},
    {.name = "validation_image", .type = AF_PATHS},
    {.name = "num_validation_images", .type = AF_INT, .lo = 1, .hi = 16, .def = "4"},
    {.name = "validation_steps", .type = AF_INT, .lo = 1, .hi = 1000000, .def = "100"},
    {.name = "mixed_precision", .type = AF_ENUM, .choices = precisions, .def = "\"no\""},
    {.name = "prediction_type", .type = AF_ENUM, .choices = prediction_types},
    {.name = "push_to_hub", .type = AF_HUB},
};

const int api_train_n_fields = (int)(sizeof api_train_fields / sizeof api_train_fields[0]);

int api_train_spec(const json_t *req, const api_roots *roots, json_t **spec, api_error *e) {
    int rc = api_fields_check(api_train_fields, api_train_n_fields, req, roots, spec, e);
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
