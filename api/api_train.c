/* The options of a training run, for POST /v1/jobs and `cnet train` alike
 * (api_fields.h). The names, meanings and defaults are those of diffusers
 * examples/controlnet/train_controlnet.py's command-line options (so `cnet
 * train --x` and {"x": ...} agree); the ranges are ours and reject what the
 * engine could not run. The command line names folders and files of its
 * own (output_dir, train_data_dir, resume_from_checkpoint…:
 * AF_CLI_ONLY, as are the Hub's --revision, --variant, --cache_dir and
 * --dataset_name); a job names a stored dataset and may push its result
 * to the Hub (AF_API_ONLY). push_to_hub is both: the job's {repo_id,
 * private} object and the command line's flag, two entries of one name. The defaults equal
 * engine/train/trainer.c's train_options_defaults (test_api_contract checks them).
 *
 * What it is not: the engine's own checks (shapes against the model's config
 * happen when the job runs) or the validator itself (api_fields.c). */
#include "api/api_fields.h"
#include "api/hub_ref.h"

static const char *const schedulers[] = {"constant", "constant_with_warmup", "linear",
                                         "cosine",   "cosine_with_restarts", "polynomial",
                                         NULL};
/* train_controlnet.py's --mixed_precision values (no fp8): the names of
 * engine/core/backend.h's cnet_precision. */
static const char *const precisions[] = {"no", "fp16", "bf16", NULL};
/* What engine/train/trainer.c can train. */
static const char *const prediction_types[] = {"epsilon", "v_prediction", NULL};
static const char *const kinds[] = {"train", NULL};
/* engine/train/train_tracker.h's --report_to names. */
static const char *const trackers[] = {"tensorboard", "all", NULL};

const api_field api_train_fields[] = {
    {.name = "kind",
     .type = AF_ENUM,
     .flags = AF_API_ONLY,
     .choices = kinds,
     .def = "\"train\"",
     .help = "the job's kind"},
    {.name = "pretrained_model_name_or_path",
     .type = AF_MODEL,
     .flags = AF_REQUIRED | AF_HUB_REF,
     .help = "the base pipeline: a diffusers folder or a Hub model id namespace/name (CLI; a "
             "local folder of that name wins); a folder under --models or "
             "hf://namespace/name[@revision], pulled by the job (API)"},
    {.name = "controlnet_model_name_or_path",
     .type = AF_CONTROLNET,
     .flags = AF_JOB_REF | AF_HUB_REF,
     .help = "the ControlNet to start from (default: initialised from the UNet); a folder or a "
             "Hub model id (CLI); a folder under --models, hf://namespace/name[@revision] or a "
             "train job id (API)"},
    {.name = "pretrained_vae_model_name_or_path",
     .type = AF_TEXT,
     .flags = AF_CLI_ONLY,
     .help = "train_controlnet_sdxl.py: a VAE folder to encode the training images with instead "
             "of the base's vae/ (e.g. madebyollin's sdxl-vae-fp16-fix)"},
    {.name = "crops_coords_top_left_h",
     .type = AF_INT,
     .lo = 0,
     .hi = API_TRAIN_CROP_MAX,
     .def = "0",
     .help = "train_controlnet_sdxl.py (SDXL bases): the crop top of the time ids "
             "[R, R, crops_h, crops_w, R, R] every sample is trained with"},
    {.name = "crops_coords_top_left_w",
     .type = AF_INT,
     .lo = 0,
     .hi = API_TRAIN_CROP_MAX,
     .def = "0",
     .help = "train_controlnet_sdxl.py (SDXL bases): the crop left of the time ids"},
    {.name = "revision",
     .type = AF_TEXT,
     .flags = AF_CLI_ONLY,
     .help = "the branch, tag or commit of a Hub base model (default main)"},
    {.name = "variant",
     .type = AF_TEXT,
     .flags = AF_CLI_ONLY,
     .help = "load the base model's <weights>.<variant>.safetensors files, e.g. fp16"},
    {.name = "tokenizer_name",
     .type = AF_TEXT,
     .flags = AF_CLI_ONLY,
     .help = "a tokenizer folder or Hub id, if not the base model's tokenizer/"},
    {.name = "cache_dir",
     .type = AF_TEXT,
     .flags = AF_CLI_ONLY,
     .help = "where Hub models and datasets are cached (default HF_HUB_CACHE, else "
             "$HF_HOME/hub, else ~/.cache/huggingface/hub); HF_HUB_OFFLINE=1 reads only it"},
    {.name = "dataset_name",
     .type = AF_TEXT,
     .flags = AF_CLI_ONLY,
     .help = "a Hub dataset id namespace/name, downloaded into the datasets cache (or a local "
             "dataset folder); give it or --train_data_dir"},
    {.name = "dataset_config_name",
     .type = AF_TEXT,
     .help = "a Hub dataset's config (its data/<config>/ or <config>/ folder, or the "
             "refs/convert/parquet conversion's <config>/; default: the only one, there "
             "\"default\"), if it has several; API: with an hf://datasets/ dataset"},
    {.name = "dataset",
     .type = AF_DATASET,
     .flags = AF_REQUIRED | AF_API_ONLY,
     .help = "an uploaded dataset id (d_...), an absolute path under --data-root, or a Hub "
             "dataset hf://datasets/namespace/name[@revision], whose train split the job pulls "
             "(Parquet, imagefolder, else the refs/convert/parquet conversion)"},
    {.name = "output_dir",
     .type = AF_TEXT,
     .flags = AF_REQUIRED | AF_CLI_ONLY,
     .help = "where the ControlNet, checkpoints and logs are written (a job: its own dir)"},
    {.name = "train_data_dir",
     .type = AF_TEXT,
     .flags = AF_CLI_ONLY,
     .help = "the dataset folder (imagefolder with metadata.jsonl, fill50k or webdataset); give "
             "it or --dataset_name"},
    {.name = "image_column",
     .type = AF_TEXT,
     .help = "the dataset's target image column (default image)"},
    {.name = "conditioning_image_column",
     .type = AF_TEXT,
     .help = "the dataset's control image column (default conditioning_image)"},
    {.name = "caption_column",
     .type = AF_TEXT,
     .help = "the dataset's caption column (default text)"},
    {.name = "resume_from_checkpoint",
     .type = AF_TEXT,
     .flags = AF_CLI_ONLY,
     .help = "a checkpoint folder, or latest (a job resumes by itself)"},
    {.name = "resolution",
     .type = AF_INT,
     .lo = 8,
     .hi = 1024,
     .multiple_of = 8,
     .def = "512",
     .help = "training images are resized and centre-cropped to this size"},
    {.name = "train_batch_size",
     .type = AF_INT,
     .lo = 1,
     .hi = API_TRAIN_BATCH_MAX,
     .def = "4",
     .help = "samples per micro-batch"},
    {.name = "num_train_epochs",
     .type = AF_INT,
     .lo = 1,
     .hi = 100000,
     .def = "1",
     .help = "passes over the dataset (unless max_train_steps)"},
    {.name = "max_train_steps",
     .type = AF_INT,
     .lo = 1,
     .hi = 1000000,
     .help = "optimizer steps in all; overrides num_train_epochs"},
    {.name = "checkpointing_steps",
     .type = AF_INT,
     .lo = 1,
     .hi = 1000000,
     .def = "500",
     .help = "a resumable checkpoint every N steps"},
    {.name = "checkpoints_total_limit",
     .type = AF_INT,
     .lo = 1,
     .hi = 10000,
     .help = "checkpoints kept (the oldest go once a new one is complete)"},
    {.name = "gradient_accumulation_steps",
     .type = AF_INT,
     .lo = 1,
     .hi = API_TRAIN_ACCUMULATION_MAX,
     .def = "1",
     .help = "micro-batches per optimizer step"},
    {.name = "learning_rate",
     .type = AF_NUM,
     .flags = AF_LO_OPEN,
     .lo = 0,
     .hi = 1,
     .def = "5e-06",
     .help = "AdamW's learning rate (after warmup)"},
    {.name = "scale_lr",
     .type = AF_BOOL,
     .def = "false",
     .help = "scale the learning rate by accumulation steps x batch size"},
    {.name = "gradient_checkpointing",
     .type = AF_BOOL,
     .def = "false",
     .help = "recompute each block in the backward: less activation memory, the same gradients"},
    {.name = "set_grads_to_none",
     .type = AF_BOOL,
     .def = "false",
     .help = "no gradient memory between optimizer steps; the same results"},
    {.name = "lr_scheduler",
     .type = AF_ENUM,
     .choices = schedulers,
     .def = "\"constant\"",
     .help = "the learning rate schedule"},
    {.name = "lr_warmup_steps",
     .type = AF_INT,
     .lo = 0,
     .hi = 1000000,
     .def = "500",
     .help = "steps of linear warmup"},
    {.name = "lr_num_cycles",
     .type = AF_INT,
     .lo = 1,
     .hi = 10000,
     .def = "1",
     .help = "hard restarts of cosine_with_restarts"},
    {.name = "lr_power",
     .type = AF_NUM,
     .flags = AF_LO_OPEN,
     .lo = 0,
     .hi = 100,
     .def = "1.0",
     .help = "the power of the polynomial schedule"},
    {.name = "adam_beta1",
     .type = AF_NUM,
     .flags = AF_HI_OPEN,
     .lo = 0,
     .hi = 1,
     .def = "0.9",
     .help = "AdamW's beta1"},
    {.name = "adam_beta2",
     .type = AF_NUM,
     .flags = AF_HI_OPEN,
     .lo = 0,
     .hi = 1,
     .def = "0.999",
     .help = "AdamW's beta2"},
    {.name = "adam_weight_decay",
     .type = AF_NUM,
     .lo = 0,
     .hi = 1,
     .def = "0.01",
     .help = "AdamW's decoupled weight decay"},
    {.name = "adam_epsilon",
     .type = AF_NUM,
     .flags = AF_LO_OPEN,
     .lo = 0,
     .hi = 1,
     .def = "1e-08",
     .help = "AdamW's epsilon"},
    {.name = "max_grad_norm",
     .type = AF_NUM,
     .flags = AF_LO_OPEN,
     .lo = 0,
     .hi = 1e6,
     .def = "1.0",
     .help = "gradients are clipped to this global norm"},
    {.name = "use_8bit_adam",
     .type = AF_BOOL,
     .def = "false",
     .help = "AdamW8bit: block-wise 8-bit m and v (about 1/4 of the optimizer memory)"},
    {.name = "shard_optimizer",
     .type = AF_BOOL,
     .def = "false",
     .help = "ZeRO-1/2: with N data-parallel ranks each keeps AdamW's state (float32 or 8-bit) "
             "for 1/N of the parameters, gradients reduce-scattered, weights all-gathered; "
             "checkpoints hold the whole state (resume on any rank count); one process: no-op"},
    {.name = "seed",
     .type = AF_INT,
     .lo = 0,
     .hi = API_SEED_MAX,
     .api_hi = API_SEED_JSON_MAX,
     .help = "seed of the noise, timesteps and data order"},
    {.name = "proportion_empty_prompts",
     .type = AF_NUM,
     .lo = 0,
     .hi = 1,
     .def = "0.0",
     .help = "share of captions replaced by the empty prompt"},
    {.name = "snr_gamma",
     .type = AF_NUM,
     .flags = AF_LO_OPEN,
     .lo = 0,
     .hi = 100,
     .help = "Min-SNR loss weighting gamma (default off)"},
    {.name = "validation_prompt", .type = AF_PROMPTS, .help = "prompts of the validation images"},
    {.name = "validation_image",
     .type = AF_PATHS,
     .help = "their control images: one, or one per prompt (API: paths inside the dataset)"},
    {.name = "num_validation_images",
     .type = AF_INT,
     .lo = 1,
     .hi = 16,
     .def = "4",
     .help = "images per validation prompt"},
    {.name = "validation_steps",
     .type = AF_INT,
     .lo = 1,
     .hi = 1000000,
     .def = "100",
     .help = "validate every N steps"},
    {.name = "mixed_precision",
     .type = AF_ENUM,
     .choices = precisions,
     .def = "\"no\"",
     .help = "bf16 or fp16 operands with float32 accumulation on a cuda device (a cpu computes "
             "bf16 with AVX512-BF16, float32 otherwise)"},
    {.name = "prediction_type",
     .type = AF_ENUM,
     .choices = prediction_types,
     .help = "the training target (default the noise scheduler's)"},
    {.name = "cache_latents",
     .type = AF_BOOL,
     .flags = AF_CLI_ONLY,
     .def = "false",
     .help = "encode every target image once, before the first step"},
    {.name = "max_train_samples",
     .type = AF_INT,
     .lo = 1,
     .hi = 1e15,
     .help = "train on N samples of the dataset, a subset drawn with the seed (as the script's "
             "shuffle(seed).select(range(N)))"},
    {.name = "max_bad_fraction",
     .type = AF_NUM,
     .flags = AF_CLI_ONLY,
     .lo = 0,
     .hi = 1,
     .def = "0.05",
     .help = "unreadable samples tolerated (skipped) before the dataset is refused"},
    /* The trackers (engine/train/train_tracker.h): the command line's only;
     * a job writes TensorBoard events under its own dir with the defaults. */
    {.name = "report_to",
     .type = AF_ENUM,
     .flags = AF_CLI_ONLY,
     .choices = trackers,
     .def = "\"tensorboard\"",
     .help = "where scalars (loss, lr, grad_norm, samples/s) and validation images are logged: "
             "tensorboard event files, or all (the same: cnet has one tracker); wandb and "
             "comet_ml need a network service and are refused"},
    {.name = "logging_dir",
     .type = AF_TEXT,
     .flags = AF_CLI_ONLY,
     .def = "\"logs\"",
     .help = "TensorBoard's folder, under output_dir unless absolute"},
    {.name = "tracker_project_name",
     .type = AF_TEXT,
     .flags = AF_CLI_ONLY,
     .def = "\"train_controlnet\"",
     .help = "the run's folder under logging_dir (tensorboard --logdir OUTPUT_DIR/logs)"},
    {.name = "dataloader_num_workers",
     .type = AF_INT,
     .flags = AF_CLI_ONLY,
     .lo = 0,
     .hi = API_TRAIN_WORKERS_MAX,
     .def = "0",
     .help = "threads that decode and transform the next batch's images while a step runs "
             "(0: each batch is decoded when the step needs it); the same samples, order and "
             "pixels whatever the value"},
    {.name = "enable_xformers_memory_efficient_attention",
     .type = AF_BOOL,
     .flags = AF_CLI_ONLY,
     .def = "false",
     .help = "accepted: cnet's attention is always memory-efficient (no [N, N] score matrix "
             "is kept), with or without this flag"},
    {.name = "allow_tf32",
     .type = AF_BOOL,
     .flags = AF_CLI_ONLY,
     .def = "false",
     .help = "TF32 tensor-core math for float32 matmuls and convolutions on a cuda device "
             "(the cpu computes in float32)"},
    {.name = "num_processes",
     .type = AF_INT,
     .flags = AF_CLI_ONLY,
     .lo = 1,
     .hi = API_TRAIN_PROCESSES_MAX,
     .def = "1",
     .help = "data-parallel ranks on this machine, started through Open MPI's mpirun (the same "
             "command under `mpirun -np N` spans machines); --train_batch_size is per rank: "
             "the effective batch is train_batch_size x ranks x gradient_accumulation_steps"},
    {.name = "device",
     .type = AF_TEXT,
     .flags = AF_CLI_ONLY,
     .def = "\"cpu\"",
     .help = "cpu|cuda|cuda:N (without a visible GPU, cuda falls back to the cpu with a note)"},
    {.name = "push_to_hub",
     .type = AF_HUB,
     .flags = AF_API_ONLY,
     .help = "push the trained ControlNet to the Hub: {repo_id, private}"},
    /* The command line's spelling of the same wish, as the script's flag;
     * after the API's entry, so api_field_find finds that one. */
    {.name = "push_to_hub",
     .type = AF_BOOL,
     .flags = AF_CLI_ONLY,
     .def = "false",
     .help = "after training, push the ControlNet, model card and validation images to the "
             "Hub repo --hub_model_id in one commit"},
    {.name = "hub_model_id",
     .type = AF_TEXT,
     .flags = AF_CLI_ONLY,
     .help = "the repo --push_to_hub writes: namespace/name, or a name under the token's user "
             "(default: the basename of --output_dir)"},
    {.name = "hub_token",
     .type = AF_TEXT,
     .flags = AF_CLI_ONLY,
     .help = "the Hub token for --push_to_hub and private models; HF_TOKEN or the token file "
             "`hf auth login` writes is safer (a command line is visible to other users)"},
};
const int api_train_n_fields = (int)(sizeof api_train_fields / sizeof api_train_fields[0]);

int api_train_spec(const json_t *req, const api_roots *roots, json_t **spec, api_error *e) {
    int rc = api_fields_check(api_train_fields, api_train_n_fields, req, roots, spec, e);
    if (rc) return rc;
    /* A config names a folder of a Hub dataset's repo (hub_dataset.h). */
    const char *config = json_string_value(json_object_get(*spec, "dataset_config_name"));
    const char *dataset = json_string_value(json_object_get(*spec, "dataset"));
    cnet_error err = {0};
    if (config && (hub_ref_is_dataset(dataset) ? hub_config_check(config, &err) != 0
                                               : cnet_fail(&err, CNET_EINVAL,
                                                           "dataset_config_name: a config is "
                                                           "only for an hf://datasets/ dataset"))) {
        api_fail(e, 400, "invalid_field", "dataset_config_name", "%s", err.msg);
        json_decref(*spec); /* config pointed into it */
        *spec = NULL;
        return CNET_EINVAL;
    }
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
