/* The field-table validator behind every JSON request of api/: each field
 * names its JSON member, type, range and default, and api_fields_check
 * walks a request against a table (unknown members, missing required ones,
 * types, ranges, references under the allowed roots) and returns the
 * normalized spec with every default filled in. Internal to api/; the
 * tables live next to their routes (api_train.c, api_generate.c). */
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
} api_ftype;

enum {
    AF_REQUIRED = 1,
    AF_LO_OPEN = 2,  /* lo itself is out of range */
    AF_HI_OPEN = 4,  /* hi itself is out of range */
    AF_HUB_REF = 8,  /* AF_MODEL: an hf://namespace/name[@revision] reference is allowed too */
    AF_JOB_REF = 16, /* AF_CONTROLNET: a train job's id names the ControlNet it trained */
};

typedef struct api_field {
    const char *name;
    api_ftype type;
    int flags;
    double lo, hi;
    int multiple_of;            /* AF_INT: 0 = any */
    const char *const *choices; /* AF_ENUM */
    const char *def;            /* default as JSON text; NULL: none (absent stays absent) */
} api_field;

/* Validates req against fields[0..n) and returns the normalized spec
 * (*spec owned by the caller). */
int api_fields_check(const api_field *fields, int n, const json_t *req, const api_roots *roots,
                     json_t **spec, api_error *e);

#endif
