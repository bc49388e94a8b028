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

#include "server/workers/worker.h"

typedef struct gen_spec {
    generate_request req; /* strings borrowed from the spec JSON and from the paths below */
    char model[PATH_MAX], controlnet[PATH_MAX];
    const char *not_cached_field; /* "model" or "controlnet": its hf:// ref is not cached */
} gen_spec;

/* Fills out from spec (which must outlive out): one ControlNet, whose
 * decoded control image (req.controls[0].image) is left NULL for the
 * caller, as are the init image and mask (req.init_image, req.mask_image)
 * of an img2img / inpainting request. models_dir, jobs_dir: the allowed roots. An hf:// model or
 * ControlNet not in
 * the Hub cache is CNET_ENOTFOUND with out->not_cached_field naming it. */
int gen_spec_resolve(gen_spec *out, const json_t *spec, const char *models_dir,
                     const char *jobs_dir, cnet_error *err);

/* The PNG "parameters" text of the images res made from gs (one text for
 * all), in the A1111 layout `cnet generate` writes
 * (engine/pipeline/generate_infotext.c); malloc'd, NULL on OOM. */
char *gen_spec_parameters(const gen_spec *gs, const generate_result *res);

#endif
