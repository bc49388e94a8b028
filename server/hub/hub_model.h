/* A model named the way train_controlnet.py names one: a local folder, or a
 * Hub model id. As diffusers' from_pretrained decides: a name that is an
 * existing local folder is that folder; any other "namespace/name" is a Hub
 * repo, pulled into the huggingface_hub cache (hub_pull.h: --cache_dir,
 * HF_HUB_CACHE / HF_HOME, HF_HUB_OFFLINE, --revision) and answered with its
 * snapshot folder.
 *
 * Only what the pipeline reads is downloaded (diffusers'
 * DiffusionPipeline.download filters the same way): model_index.json, the
 * scheduler's config, the tokenizer's files, and of each model component
 * (text_encoder, unet, vae, controlnet) its config.json and the
 * safetensors weights of the chosen variant — never .bin, .ckpt, .onnx,
 * flax weights, the single-file checkpoints next to the folders, or the
 * safety checker.
 *
 * A variant (--variant fp16) selects <weights>.<variant>.safetensors. The
 * engine's loaders read the plain names, so the answer is then a view
 * folder of symlinks next to the cache's repo folders
 * (<cache>/.cnet-variants/models--ns--name/<commit>.<variant>/) where the
 * variant's weights carry the plain names; the cache itself stays exactly
 * huggingface_hub's.
 *
 * What it is not: a loader (engine/models), or sharded-weights aware (a
 * sharded variant is not selected). Reference: diffusers
 * pipeline_utils.DiffusionPipeline.download and variant_compatible_siblings. */
#ifndef CNET_HUB_MODEL_H
#define CNET_HUB_MODEL_H

#include "server/hub/hub_cache.h"

typedef enum {
    HUB_MODEL_PIPELINE,  /* a diffusers pipeline: model_index.json and its components */
    HUB_MODEL_COMPONENT, /* one model at the repo's top level (a ControlNet) */
    HUB_MODEL_TOKENIZER, /* a tokenizer's files at the repo's top level */
} hub_model_kind;

typedef struct hub_model_opts {
    hub_model_kind kind;
    const char *revision;  /* NULL: main */
    const char *variant;   /* NULL: the plain weights */
    const char *cache_dir; /* NULL: the default root (hub_cache.h) */
    int offline;           /* only the cache, as HF_HUB_OFFLINE=1 (which also counts) */
    /* Each downloaded file's bytes as they land (hub_pull_opts.progress);
     * NULL: quiet. */
    void (*progress)(void *ctx, const char *file, long long done, long long total);
    void *progress_ctx;
    int (*should_stop)(void *ctx); /* hub_pull_opts.should_stop; NULL: never */
} hub_model_opts;

/* Pulls the Hub repo repo_id (no local folder is looked at) and answers
 * its snapshot folder, or its variant view, in out. Token and endpoint
 * from the environment (hub_http.h); HF_HUB_OFFLINE=1 reads the cache. */
int hub_model_pull(const char *repo_id, const hub_model_opts *o, char out[HUB_PATH_MAX],
                   cnet_error *err);

/* A service's model reference: hf://ns/name[@rev] is read from the Hub
 * cache as a model of kind (no request is made: a reference not in the
 * cache is CNET_ENOTFOUND) and its folder returned; any other string is
 * copied unchanged (a folder the caller has placed). What a synchronous
 * request may do, and a job once its download phase has pulled the model. */
int hub_model_cached(const char *ref, hub_model_kind kind, char out[HUB_PATH_MAX], cnet_error *err);

/* name → a local folder in out. *repo_id gets the Hub id when name was
 * pulled, "" when it is a local folder (repo_id may be NULL). A name that is
 * neither an existing folder nor a valid Hub id is CNET_ENOTFOUND naming
 * both readings. */
int hub_model_resolve(const char *name, const hub_model_opts *o, char out[HUB_PATH_MAX],
                      char *repo_id, size_t repo_id_cap, cnet_error *err);

#endif
