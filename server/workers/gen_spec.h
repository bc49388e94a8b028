/* A validated generate spec (api_generate_spec's output) turned into the
 * executor's request (engine/pipeline/generate.h): model references
 * resolved to folders under the allowed roots — a base model under --models
 * or an hf:// reference read from the Hub cache (never downloaded here: a
 * job pulls it first, in its download phase, runner_pull.c), a ControlNet
 * by train job id (that job's output dir), under --models, or by default the base folder's
 * controlnet/ — and the A1111-style "parameters" text that goes into the PNG. The request's
 * max_pixels is the API's cap on the output (the width and height fields'
 * api_hi), so the executor enforces it on every path. Shared by the
 * synchronous route and the generate job runner. Not a validator
 * (api/api_generate.c) and no model loading (worker.c). */
#ifndef CNET_GEN_SPEC_H
#define CNET_GEN_SPEC_H

#include <jansson.h>
#include <limits.h>

#include "api/api.h"
#include "server/workers/worker.h"

typedef struct gen_spec {
    generate_request req; /* strings borrowed from the spec JSON and from the paths below */
    char model[PATH_MAX], controlnet[PIPE_MAX_CONTROLNETS][PATH_MAX];
    char preprocess_model[PIPE_MAX_CONTROLNETS][PATH_MAX]; /* under models_dir; "" none */
    /* An hf:// ref that is not cached: the field ("model", "controlnet",
     * "controlnets[1].controlnet") and the ref; NULL otherwise. */
    const char *not_cached_field, *not_cached_ref;
    char not_cached_name[48];
    const char *prompts[API_PROMPTS_MAX], *negative_prompts[API_PROMPTS_MAX]; /* a batch */
} gen_spec;

/* The spec's ControlNets: 1 for the flat form (its per-ControlNet fields at
 * the top level), else the length of its "controlnets" list. */
int gen_spec_n_controls(const json_t *spec);
/* The object that holds control k's fields (controlnet, preprocess, scale,
 * ..., and a job's control_image): the spec itself in the flat form, else
 * controlnets[k]; borrowed. */
const json_t *gen_spec_control(const json_t *spec, int k);

/* Fills out from spec (which must outlive out): its ControlNets, whose
 * decoded control images (req.controls[k].image) are left NULL for the
 * caller, as are the init image and mask (req.init_image, req.mask_image)
 * of an img2img / inpainting request. models_dir, jobs_dir: the allowed roots. An hf:// model or
 * ControlNet not in the Hub cache is CNET_ENOTFOUND with
 * out->not_cached_field naming it. */
int gen_spec_resolve(gen_spec *out, const json_t *spec, const char *models_dir,
                     const char *jobs_dir, cnet_error *err);

/* The PNG "parameters" text of image i of res (made from gs; its prompt's),
 * in the A1111 layout `cnet generate` writes
 * (engine/pipeline/generate_infotext.c); malloc'd, NULL on OOM. */
char *gen_spec_parameters(const gen_spec *gs, const generate_result *res, int i);

#endif
