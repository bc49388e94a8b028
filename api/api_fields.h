/* The option tables of generate and train, and the validator of the JSON
 * requests that follow them. Each field names its option (the JSON member
 * and, spelled --snake_case or --kebab-case, the CLI flag), type, range,
 * default and help; api_fields_check walks a request against a table
 * (unknown members, missing required ones, types, ranges, references under
 * the allowed roots) and returns the normalized spec with every default
 * filled in. The CLI parsers (server/cli/gen_args.c, cmd_train.c) read the
 * same tables, so a limit or a default is written once: an entry point that
 * needs a stricter cap says so in its field (api_hi), never by a second
 * number elsewhere. The tables live next to their routes (api_train.c,
 * api_generate.c); api/openapi.yaml is checked against them by
 * tests/unit/test_api_contract.c. */
#ifndef CNET_API_FIELDS_H
#define CNET_API_FIELDS_H

#include "api/api.h"

typedef enum {
    AF_INT,
    AF_NUM,
    AF_BOOL,
    AF_ENUM,
    AF_PROMPTS,
    AF_MODEL,
    AF_CONTROLNET,
    AF_DATASET,
    AF_HUB,
    AF_TEXT,   /* one string of at most API_PROMPT_MAX bytes */
    AF_BASE64, /* a non-empty string (decoded by its route); never copied into the spec */
    AF_PATHS,  /* 1..API_PROMPTS_MAX relative paths (segments of [A-Za-z0-9._-]) */
    /* A (height, width) pair in diffusers' tuple order: JSON [h, w], CLI
     * "H,W"; each an integer in [lo, hi]. */
    AF_SIZE,
    /* A list of 1..hi objects, each holding the table's AF_PER_CONTROLNET
     * fields (and only those), validated and defaulted as the flat fields
     * are; the flat per-ControlNet fields and the list exclude each other. */
    AF_CONTROLNETS,
} api_ftype;

enum {
    AF_REQUIRED = 1,
    AF_LO_OPEN = 2,  /* lo itself is out of range */
    AF_HI_OPEN = 4,  /* hi itself is out of range */
    AF_HUB_REF = 8,  /* AF_MODEL: an hf://namespace/name[@revision] reference is allowed too */
    AF_JOB_REF = 16, /* AF_CONTROLNET: a train job's id names the ControlNet it trained */
    /* An option of the command line only (a file, a device): unknown to the API. */
    AF_CLI_ONLY = 32,
    /* A member of the API only (a stored dataset, async): unknown to the CLI. */
    AF_API_ONLY = 64,
    /* CLI: a comma-separated list, one value for all or one each; API: a
     * member of each AF_CONTROLNETS item too. */
    AF_PER_CONTROLNET = 128,
    /* AF_TEXT, API: a list of 1..API_PROMPTS_MAX such strings too (a batch:
     * diffusers' list of prompts). */
    AF_TEXT_LIST = 256,
};

typedef struct api_field {
    const char *name;
    api_ftype type;
    int flags;
    double lo, hi;
    int multiple_of;            /* AF_INT: 0 = any */
    const char *const *choices; /* AF_ENUM */
    const char *def;            /* default as JSON text; NULL: none (absent stays absent) */
    const char *help;           /* one line for --help and the API's description */
    /* AF_INT/AF_NUM: the API's own cap below hi (0: hi) — what one HTTP
     * request may cost where the command line may ask for more. */
    double api_hi;
    const char *alias; /* CLI: a shorter flag also accepted (--start for control_guidance_start) */
} api_field;

/* The exported tables (api_generate.c, api_train.c). */
extern const api_field api_generate_fields[];
extern const int api_generate_n_fields;
extern const api_field api_train_fields[];
extern const int api_train_n_fields;

/* The generate fields POST /v1/preprocess and `cnet preprocess` take (a
 * picture through one annotator): image, preprocess, threshold_a/b,
 * processor_res, canny_low/high_threshold, seed and the CLI's out, copied
 * from api_generate_fields so their limits are written once; and the CLI's
 * preprocess_model (a network annotator's weights folder, not in the API
 * yet: a client may not name server paths). */
#define API_PREPROCESS_FIELDS 10
int api_preprocess_fields(api_field out[API_PREPROCESS_FIELDS]);

/* The field called name in fields[0..n), or NULL. */
const api_field *api_field_find(const api_field *fields, int n, const char *name);
/* The upper bound of an AF_INT/AF_NUM field for the API (api_hi when set). */
double api_field_api_hi(const api_field *f);

/* Validates req against fields[0..n) and returns the normalized spec
 * (*spec owned by the caller). */
int api_fields_check(const api_field *fields, int n, const json_t *req, const api_roots *roots,
                     json_t **spec, api_error *e);

#endif
