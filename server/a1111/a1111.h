/* The API that existing AUTOMATIC1111 clients speak — /sdapi/v1/txt2img,
 * img2img, options, progress, samplers, sd-models (stable-diffusion-webui's
 * modules/api/api.py and models.py) and the sd-webui-controlnet extension's
 * /controlnet routes and alwayson_scripts.controlnet.args[] units
 * (scripts/api.py, scripts/external_code.py) — translated into cnet's own
 * generate request, which then runs through the same validation and
 * executor as POST /v1/generate (server/http/http_a1111.c). The map header
 * of server/a1111/.
 *
 * What it is not: no HTTP (server/http/http_a1111.c answers the routes), no
 * second validator (every value goes to api/api_generate.c's table, whose
 * limits hold here too) and no second list of annotators
 * (engine/annotators' table). What cnet cannot do the way A1111 does it is
 * refused naming the member and the value (A1111_STATUS), never ignored:
 * "My prompt is more important", Karras sigmas, hires fix, unit masks ...
 * Members that do not change the pixels (saving flags, comments, hires
 * parameters with hires off) are accepted as they are. */
#ifndef CNET_A1111_H
#define CNET_A1111_H

#include <jansson.h>

#include "api/api.h"

/* The status of a request this translation refuses: FastAPI's for a body it
 * cannot process, which A1111 clients already handle; the body carries
 * FastAPI's {"detail": message} beside cnet's {"error"}. */
#define A1111_STATUS 422
/* A1111's defaults where a txt2img/img2img body leaves a member out
 * (StableDiffusionProcessing's). */
#define A1111_DEFAULT_SIZE 512
#define A1111_DEFAULT_STEPS 50
#define A1111_DEFAULT_CFG 7.0
/* The extension's preprocessor resolution where a unit leaves processor_res
 * out or negative (its resolution slider's value, 512 for every module cnet
 * has). */
#define A1111_PROCESSOR_RES_DEFAULT 512

/* A sampler as A1111 names it (and its aliases) and the cnet scheduler
 * (engine/sched's short name) that is its diffusers counterpart. */
typedef struct a1111_sampler {
    const char *name;
    const char *aliases[2];
    const char *scheduler;
} a1111_sampler;
int a1111_sampler_count(void);
const a1111_sampler *a1111_sampler_at(int i);
/* By name or alias; NULL when cnet has no counterpart. */
const a1111_sampler *a1111_sampler_find(const char *name);

/* The translations (api_error e: A1111_STATUS naming the A1111 member, e.g.
 * "alwayson_scripts.controlnet.args[1].control_mode"). roots: where models
 * are; the base model is override_settings.sd_model_checkpoint or
 * a1111_default_model's. *req: a POST /v1/generate body (owned by the
 * caller), its control images still base64. */
int a1111_txt2img_request(const json_t *body, const api_roots *roots, json_t **req, api_error *e);
/* img2img: init_images[0] → init_image, denoising_strength → strength,
 * mask → mask_image, inpaint_full_res_padding → padding_mask_crop (with
 * inpaint_full_res), on top of txt2img's. */
int a1111_img2img_request(const json_t *body, const api_roots *roots, json_t **req, api_error *e);
/* The units of body's alwayson_scripts.controlnet.args[] (enabled ones, in
 * order) into req's "controlnets" (and guess_mode); 0 or e. */
int a1111_units(const json_t *body, json_t *req, api_error *e);

/* Names the A1111 member behind e's cnet field (a generate request's, as
 * api/api_generate.c's validation named it: "guidance" → "cfg_scale",
 * "controlnets[1].scale" → "alwayson_scripts.controlnet.args[2].weight" when
 * args[1] is disabled), in e->field and at the head of e->message; a field
 * with no A1111 member, or the same name, is left as it is. */
void a1111_error_names(const json_t *body, api_error *e);
/* The A1111 name of cnet field `cnet` of controlnets[k] (the k-th enabled
 * unit of body) into out; 0, or -1 when there is none. */
int a1111_unit_field(const json_t *body, int k, const char *cnet, char *out, size_t cap);

/* {"images", "parameters": the request as sent, "info": a JSON string with
 * A1111's infotext members}; images stolen. NULL on OOM. */
json_t *a1111_images_answer(const json_t *body, const json_t *spec, json_t *images,
                            const char *parameters);

/* The base models (folders with model_index.json under models_dir, one
 * level of org/ folders), sorted; the first is the default checkpoint. */
json_t *a1111_sd_models(const char *models_dir);
/* The default checkpoint into out (""): the first of a1111_sd_models. */
void a1111_default_model(const char *models_dir, char *out, size_t cap);
/* {"model_list": [...]}: ControlNet folders under models_dir (a config.json
 * of ControlNetModel, at most two levels down) and trained ControlNets by
 * job id under jobs_dir, sorted. */
json_t *a1111_model_list(const char *models_dir, const char *jobs_dir);
/* {"module_list", "module_detail"} from engine/annotators' table, as the
 * extension's get_modules: the modules' keys (cnet's names, which follow the
 * extension's keys: "canny", "invert"), or with alias_names the names its UI
 * shows ("invert (from white bg & black line)"); a unit's module may be
 * either. */
json_t *a1111_module_list(int alias_names);
/* [{"name", "aliases", "options"}] */
json_t *a1111_samplers(void);
/* GET /sdapi/v1/options: what a client reads (sd_model_checkpoint ...). */
json_t *a1111_options(const char *models_dir);
/* {"progress", "eta_relative", "state", ...}: jobs = generate requests in
 * flight. */
json_t *a1111_progress(int jobs);

/* POST /controlnet/detect: each of controlnet_input_images through
 * controlnet_module → *answer {"images": [base64 PNG], "info"}. */
int a1111_detect(const json_t *body, json_t **answer, api_error *e);

/* A base64 image member as A1111 reads it: an optional
 * "data:image/...;base64," prefix dropped. Borrowed from v. */
const char *a1111_base64(const json_t *v);

#endif
