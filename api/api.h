/* The REST contract in C: request validation and JSON rendering, testable
 * without a socket. The map header of api/; api/openapi.yaml is the source of
 * truth these functions implement.
 *
 * What it is not: no HTTP (server/http/http_*.c calls these) and no storage. Every
 * failure fills an api_error whose `field` names the offending member (JSON
 * path like "push_to_hub.repo_id" or "validation_prompt[2]"), so the client
 * gets {"error": {"code", "message", "field"}} and a 400. */
#ifndef CNET_API_H
#define CNET_API_H

#include <jansson.h>
#include <stddef.h>

#include "api/api_job.h"
#include "engine/core/error.h"

#define API_JSON_BODY_MAX (64 * 1024) /* bytes of a JSON request body; above → 413 */
#define API_PROMPT_MAX 1000           /* bytes of one prompt (UTF-8); above → 400 */
#define API_PROMPTS_MAX 16            /* validation prompts per job; above → 400 */
#define API_REF_MAX 255               /* bytes of a model reference; above → 400 */

typedef struct api_error {
    int status;      /* HTTP status to answer with */
    char code[40];   /* machine-readable: invalid_json, invalid_field, unknown_field, ... */
    char field[128]; /* "" when no single field is at fault */
    char message[512];
} api_error;

/* Fills e and returns CNET_EINVAL (so validators can `return api_fail(...)`). */
int api_fail(api_error *e, int status, const char *code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* {"error": {"code", "message", "field"?}}; NULL on OOM. */
json_t *api_error_json(const api_error *e);

/* Parses a request body strictly (duplicate keys rejected; jansson's depth
 * cap and the body cap bound the work). The top level must be an object. */
int api_parse_body(const char *body, size_t len, json_t **out, api_error *e);

/* Where references in a spec may point. */
typedef struct api_roots {
    const char *models_dir;   /* base models: <models_dir>/<ref>/model_index.json */
    const char *datasets_dir; /* uploaded datasets: <datasets_dir>/<id>/report.json */
    const char *data_root;    /* NULL: datasets by id only; else absolute paths under it */
    const char *jobs_dir;     /* trained ControlNets: <jobs_dir>/<job id>/config.json */
} api_roots;

/* Validates a training job request (diffusers train_controlnet.py's option
 * names) and returns the normalized spec with every default filled in
 * (*spec owned by the caller). */
int api_train_spec(const json_t *req, const api_roots *roots, json_t **spec, api_error *e);
/* Micro-batches per optimizer step (engine/train/trainer.h's TRAIN_MAX_ACCUMULATION) and
 * samples per micro-batch (engine/train/train_step.h's TRAIN_MAX_BATCH): equal, asserted in
 * server/cli/cmd_train.c, where both are visible. */
#define API_TRAIN_ACCUMULATION_MAX 64
#define API_TRAIN_BATCH_MAX 64
/* The largest SDXL crop coordinate a training job takes (--crops_coords_top_left_h/_w):
 * a time id, larger than any image cnet trains on. */
#define API_TRAIN_CROP_MAX 16384
/* --dataloader_num_workers (engine/train/train_decode.h's TRAIN_DECODE_WORKERS_MAX). */
#define API_TRAIN_WORKERS_MAX 64
/* cnet train --num_processes (engine/dist/comm.h's DIST_MAX_RANKS). */
#define API_TRAIN_PROCESSES_MAX 1024

#define API_GENERATE_BODY_MAX                                                                      \
    (20 << 20) /* bytes of a generate request (images inside); above → 413 */
/* The generate options' limits (api_generate.c's table; the CLI's too). */
#define API_GENERATE_SIZE_MAX 1024        /* px per side of an image one HTTP request makes */
#define API_GENERATE_SIDE_MAX 16384       /* px per side of any output (then the pixel limit) */
#define API_GENERATE_IMAGES_MAX 16        /* images per run (engine/pipeline's PIPE_MAX_IMAGES) */
#define API_GENERATE_REQUEST_IMAGES_MAX 4 /* images one HTTP request makes (api_hi) */
#define API_GENERATE_CONTROLNETS_MAX                                                               \
    8                               /* items of "controlnets" (engine's PIPE_MAX_CONTROLNETS)      \
                                     */
#define API_GENERATE_STEPS_MAX 1000 /* denoising steps: a scheduler has 1000 training steps */
#define API_CLIP_SKIP_MAX 64        /* text encoder layers skipped (the encoder checks its depth) */
#define API_CANNY_THRESHOLD_MAX 2040   /* the largest L1 Sobel magnitude of 8-bit pixels */
#define API_MAX_PIXELS_MAX (1LL << 40) /* --max-pixels */
#define API_CONDITIONING_SCALE_MAX 5   /* |controlnet_conditioning_scale|: negatives invert */
/* A seed is any uint64 on the command line (torch.manual_seed's range) and
 * any non-negative JSON integer in the API (jansson's json_int_t). */
#define API_SEED_MAX 18446744073709551615.0     /* 2^64 - 1 (as a double: 2^64) */
#define API_SEED_JSON_MAX 9223372036854775807.0 /* 2^63 - 1 (as a double: 2^63) */

/* Validates a generate request (the dashboard's and `cnet generate`'s
 * option names) and returns the normalized spec with every default filled
 * in, without the control image (member "image", base64, which the route
 * decodes itself) and without "async". */
int api_generate_spec(const json_t *req, const api_roots *roots, json_t **spec, api_error *e);

/* One ControlNet's preprocessor from a request's members (the API's request
 * object, or the CLI's flags gathered in one): preprocess (NULL: "none"),
 * and, each optional, threshold_a / threshold_b (the annotator's first and
 * second parameter), canny_low_threshold / canny_high_threshold (canny's
 * older spelling of the same two) and processor_res. *a and *args are
 * filled (the parameters not given at the annotator's defaults, seed 0).
 * 400 naming the field: an unknown preprocessor, both spellings of one of
 * canny's thresholds, a value outside the annotator's range. A threshold
 * the annotator does not take is ignored, as the extension ignores it
 * (A1111 clients send both always). */
struct annotator;
struct annotator_args;
int api_generate_annotator(const char *preprocess, const json_t *given, const struct annotator **a,
                           struct annotator_args *args, api_error *e);

/* A multipart/form-data part of a generate request as the JSON value the
 * field table expects: integers, numbers and booleans parsed from the text
 * (left a string when they do not parse, so validation names the field),
 * a (height, width) size from "H,W", everything else a string. NULL on
 * OOM. */
json_t *api_generate_form_value(const char *name, const char *text);

/* The largest output one HTTP request may ask for: the width and height
 * fields' API caps (api_hi in the generate table). */
void api_generate_size_caps(int *width_max, int *height_max);

/* Decodes standard base64 (RFC 4648 §4, padding optional, no whitespace) of
 * member `field`; *out is malloc'd. 400 naming the field when malformed. */
int api_base64_decode(const char *text, size_t len, const char *field, unsigned char **out,
                      size_t *out_len, api_error *e);
/* Encodes bytes as standard base64 with padding; malloc'd, NUL-terminated. */
char *api_base64_encode(const unsigned char *data, size_t len);

/* sha256 (hex) of the canonical form of v (sorted keys, compact), for the
 * Idempotency-Key check. 0 ok. */
int api_hash_json(const json_t *v, char hex[65]);

/* A job as the API shows it. artifacts: the file names in the job's dir. */
json_t *api_job_json(const job *j, char *const *artifacts, int n_artifacts);

/* RFC 3339 UTC with milliseconds ("2024-05-01T12:00:00.000Z") into buf[32]. */
void api_time(int64_t ms, char buf[32]);

/* True for names a client may use for a dataset/job file: [A-Za-z0-9._-],
 * 1..128 bytes, not starting with '.'. */
int api_safe_name(const char *s);

/* The OpenAPI document, embedded at build time from api/openapi.yaml. */
extern const char api_openapi_yaml[];
extern const size_t api_openapi_yaml_len;

#endif
