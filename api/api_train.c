/* Validation of a training job request. The field names, meanings and
 * defaults are those of diffusers examples/controlnet/train_controlnet.py's
 * command-line options (so `cnet train --x` and {"x": ...} agree); the
 * ranges are ours and reject what the engine could not run.
 *
 * What it is not: the engine's own checks (shapes against the model's config
 * happen when the job runs). References are resolved only as far as "exists
 * in an allowed place": a base model under the models dir, a dataset by id
 * or under the configured data root, never elsewhere. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "api/api.h"

typedef enum {
    F_INT,
    F_NUM,
    F_BOOL,
    F_ENUM,
    F_PROMPTS,
    F_MODEL,
    F_CONTROLNET,
    F_DATASET,
    F_HUB
} ftype;

enum {
    REQUIRED = 1,
    LO_OPEN = 2, /* lo itself is out of range */
    HI_OPEN = 4, /* hi itself is out of range */
};

typedef struct field {
    const char *name;
    ftype type;
    int flags;
    double lo, hi;
    int multiple_of;            /* F_INT: 0 = any */
    const char *const *choices; /* F_ENUM */
    const char *def;            /* default as JSON text; NULL: none (absent stays absent) */
} field;

static const char *const schedulers[] = {"constant", "constant_with_warmup", "linear",
                                         "cosine",   "cosine_with_restarts", "polynomial",
                                         NULL};
static const char *const precisions[] = {"no", "fp16", "bf16", NULL};
static const char *const prediction_types[] = {"epsilon", "v_prediction", "sample", NULL};

static const field train_fields[] = {
    {"kind", F_ENUM, 0, 0, 0, 0, (const char *const[]){"train", NULL}, "\"train\""},
    {"pretrained_model_name_or_path", F_MODEL, REQUIRED, 0, 0, 0, NULL, NULL},
    {"controlnet_model_name_or_path", F_CONTROLNET, 0, 0, 0, 0, NULL, NULL},
    {"dataset", F_DATASET, REQUIRED, 0, 0, 0, NULL, NULL},
    {"resolution", F_INT, 0, 8, 1024, 8, NULL, "512"},
    {"train_batch_size", F_INT, 0, 1, 64, 0, NULL, "4"},
    {"num_train_epochs", F_INT, 0, 1, 100000, 0, NULL, "1"},
    {"max_train_steps", F_INT, 0, 1, 1000000, 0, NULL, NULL},
    {"checkpointing_steps", F_INT, 0, 1, 1000000, 0, NULL, "500"},
    {"checkpoints_total_limit", F_INT, 0, 1, 10000, 0, NULL, NULL},
    {"gradient_accumulation_steps", F_INT, 0, 1, 1024, 0, NULL, "1"},
    {"learning_rate", F_NUM, LO_OPEN, 0, 1, 0, NULL, "5e-06"},
    {"scale_lr", F_BOOL, 0, 0, 0, 0, NULL, "false"},
    {"lr_scheduler", F_ENUM, 0, 0, 0, 0, schedulers, "\"constant\""},
    {"lr_warmup_steps", F_INT, 0, 0, 1000000, 0, NULL, "500"},
    {"lr_num_cycles", F_INT, 0, 1, 10000, 0, NULL, "1"},
    {"lr_power", F_NUM, LO_OPEN, 0, 100, 0, NULL, "1.0"},
    {"adam_beta1", F_NUM, HI_OPEN, 0, 1, 0, NULL, "0.9"},
    {"adam_beta2", F_NUM, HI_OPEN, 0, 1, 0, NULL, "0.999"},
    {"adam_weight_decay", F_NUM, 0, 0, 1, 0, NULL, "0.01"},
    {"adam_epsilon", F_NUM, LO_OPEN, 0, 1, 0, NULL, "1e-08"},
    {"max_grad_norm", F_NUM, LO_OPEN, 0, 1e6, 0, NULL, "1.0"},
    {"seed", F_INT, 0, 0, 4294967295.0, 0, NULL, NULL},
    {"proportion_empty_prompts", F_NUM, 0, 0, 1, 0, NULL, "0.0"},
    {"snr_gamma", F_NUM, LO_OPEN, 0, 100, 0, NULL, NULL},
    {"validation_prompt", F_PROMPTS, 0, 0, 0, 0, NULL, NULL},
    {"num_validation_images", F_INT, 0, 1, 16, 0, NULL, "4"},
    {"validation_steps", F_INT, 0, 1, 1000000, 0, NULL, "100"},
    {"mixed_precision", F_ENUM, 0, 0, 0, 0, precisions, "\"no\""},
    {"prediction_type", F_ENUM, 0, 0, 0, 0, prediction_types, NULL},
    {"push_to_hub", F_HUB, 0, 0, 0, 0, NULL, NULL},
};

static const char *type_name(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
        return "null";
    }
    return "?";
}

static int in_range(const field *f, double x) {
    if (f->flags & LO_OPEN ? x <= f->lo : x < f->lo) return 0;
    if (f->flags & HI_OPEN ? x >= f->hi : x > f->hi) return 0;
    return 1;
}

static int check_number(const field *f, const json_t *v, api_error *e) {
    if (f->type == F_INT && !json_is_integer(v))
        return api_fail(e, 400, "invalid_field", f->name, "%s must be an integer, got %s", f->name,
                        type_name(v));
    if (!json_is_number(v))
        return api_fail(e, 400, "invalid_field", f->name, "%s must be a number, got %s", f->name,
                        type_name(v));
    double x = json_number_value(v);
    if (!in_range(f, x))
        return api_fail(e, 400, "out_of_range", f->name, "%s must be in %c%g, %g%c, got %g",
                        f->name, f->flags & LO_OPEN ? '(' : '[', f->lo, f->hi,
                        f->flags & HI_OPEN ? ')' : ']', x);
    if (f->type == F_INT && f->multiple_of && json_integer_value(v) % f->multiple_of != 0)
        return api_fail(e, 400, "out_of_range", f->name, "%s must be a multiple of %d, got %lld",
                        f->name, f->multiple_of, (long long)json_integer_value(v));
    return 0;
}

/* A string member: no NUL inside, at most max bytes (jansson has checked UTF-8). */
static int check_text(const char *name, const json_t *v, size_t max, api_error *e) {
    if (!json_is_string(v))
        return api_fail(e, 400, "invalid_field", name, "%s must be a string, got %s", name,
                        type_name(v));
    size_t n = json_string_length(v);
    if (strlen(json_string_value(v)) != n)
        return api_fail(e, 400, "invalid_field", name, "%s contains a NUL character", name);
    if (n > max)
        return api_fail(e, 400, "too_long", name, "%s is %zu bytes, the limit is %zu", name, n,
                        max);
    return 0;
}

/* A relative reference of 1..8 segments of [A-Za-z0-9._-], none starting with '.'. */
static int safe_ref(const char *s) {
    char seg[API_REF_MAX + 1];
    int segments = 0;
    while (*s) {
        size_t n = strcspn(s, "/");
        if (n == 0 || n > API_REF_MAX) return 0;
        memcpy(seg, s, n);
        seg[n] = '\0';
        if (!api_safe_name(seg) || ++segments > 8) return 0;
        s += n;
        if (*s == '/' && !*++s) return 0;
    }
    return segments > 0;
}

static int file_exists(const char *dir, const char *ref, const char *leaf) {
    char path[4096];
    struct stat st;
    if ((size_t)snprintf(path, sizeof path, "%s/%s/%s", dir, ref, leaf) >= sizeof path) return 0;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int check_model(const field *f, const json_t *v, const api_roots *roots, api_error *e) {
    int rc = check_text(f->name, v, API_REF_MAX, e);
    if (rc) return rc;
    const char *ref = json_string_value(v);
    if (!safe_ref(ref))
        return api_fail(e, 400, "invalid_reference", f->name,
                        "%s must name a model under the models dir (segments of [A-Za-z0-9._-], "
                        "no leading dots, no absolute paths)",
                        f->name);
    const char *leaf = f->type == F_MODEL ? "model_index.json" : "config.json";
    if (!file_exists(roots->models_dir, ref, leaf))
        return api_fail(e, 400, "not_found", f->name, "%s: no %s in '%s' under the models dir",
                        f->name, leaf, ref);
    return 0;
}

static int is_dataset_id(const char *s) {
    if (strncmp(s, "d_", 2) != 0 || strlen(s) != 34) return 0;
    for (int i = 2; i < 34; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return 0;
    return 1;
}

static int check_dataset(const field *f, const json_t *v, const api_roots *roots, api_error *e) {
    int rc = check_text(f->name, v, PATH_MAX - 1, e);
    if (rc) return rc;
    const char *s = json_string_value(v);
    if (is_dataset_id(s)) {
        if (!file_exists(roots->datasets_dir, s, "report.json"))
            return api_fail(e, 400, "not_found", f->name, "no uploaded dataset %s", s);
        return 0;
    }
    if (!roots->data_root || s[0] != '/')
        return api_fail(e, 400, "invalid_reference", f->name,
                        "dataset must be an uploaded dataset id (d_...)%s",
                        roots->data_root ? " or an absolute path under the data root" : "");
    char real[PATH_MAX], root[PATH_MAX];
    if (!realpath(s, real) || !realpath(roots->data_root, root))
        return api_fail(e, 400, "not_found", f->name, "dataset path %s does not exist", s);
    size_t n = strlen(root);
    struct stat st;
    if (strncmp(real, root, n) != 0 || real[n] != '/' || stat(real, &st) != 0 ||
        !S_ISDIR(st.st_mode))
        return api_fail(e, 400, "invalid_reference", f->name,
                        "dataset path %s is not a folder under the data root", s);
    return 0;
}

static int check_prompts(const field *f, const json_t *v, api_error *e) {
    if (!json_is_array(v))
        return api_fail(e, 400, "invalid_field", f->name, "%s must be an array of strings, got %s",
                        f->name, type_name(v));
    size_t n = json_array_size(v);
    if (n < 1 || n > API_PROMPTS_MAX)
        return api_fail(e, 400, "out_of_range", f->name, "%s must hold 1..%d prompts, got %zu",
                        f->name, API_PROMPTS_MAX, n);
    for (size_t i = 0; i < n; i++) {
        char name[64];
        snprintf(name, sizeof name, "%s[%zu]", f->name, i);
        int rc = check_text(name, json_array_get(v, i), API_PROMPT_MAX, e);
        if (rc) return rc;
    }
    return 0;
}

/* "owner/name": two segments of [A-Za-z0-9._-], 1..96 bytes each. */
static int valid_repo_id(const char *s) {
    const char *slash = strchr(s, '/');
    if (!slash || strchr(slash + 1, '/') || slash - s > 96 || strlen(slash + 1) > 96) return 0;
    char owner[97];
    memcpy(owner, s, (size_t)(slash - s));
    owner[slash - s] = '\0';
    return api_safe_name(owner) && api_safe_name(slash + 1);
}

static int check_hub(const field *f, const json_t *v, json_t **out, api_error *e) {
    if (!json_is_object(v))
        return api_fail(e, 400, "invalid_field", f->name, "%s must be an object, got %s", f->name,
                        type_name(v));
    const char *key;
    json_t *m;
    json_object_foreach((json_t *)v, key, m) {
        if (strcmp(key, "repo_id") != 0 && strcmp(key, "private") != 0) {
            char name[160];
            snprintf(name, sizeof name, "%s.%.100s", f->name, key);
            return api_fail(e, 400, "unknown_field", name, "unknown field %s", name);
        }
    }
    json_t *repo = json_object_get(v, "repo_id"), *priv = json_object_get(v, "private");
    if (!repo)
        return api_fail(e, 400, "missing_field", "push_to_hub.repo_id",
                        "push_to_hub.repo_id is required");
    int rc = check_text("push_to_hub.repo_id", repo, 193, e);
    if (rc) return rc;
    if (!valid_repo_id(json_string_value(repo)))
        return api_fail(e, 400, "invalid_field", "push_to_hub.repo_id",
                        "push_to_hub.repo_id must look like owner/name");
    if (priv && !json_is_boolean(priv))
        return api_fail(e, 400, "invalid_field", "push_to_hub.private",
                        "push_to_hub.private must be a boolean, got %s", type_name(priv));
    *out = json_pack("{s:O, s:b}", "repo_id", repo, "private", priv ? json_is_true(priv) : 0);
    return *out ? 0 : api_fail(e, 503, "out_of_memory", NULL, "out of memory");
}

static int check_field(const field *f, const json_t *v, const api_roots *roots, json_t **norm,
                       api_error *e) {
    *norm = NULL;
    int rc = 0;
    switch (f->type) {
    case F_INT:
    case F_NUM:
        rc = check_number(f, v, e);
        break;
    case F_BOOL:
        if (!json_is_boolean(v))
            rc = api_fail(e, 400, "invalid_field", f->name, "%s must be a boolean, got %s", f->name,
                          type_name(v));
        break;
    case F_ENUM: {
        rc = check_text(f->name, v, 64, e);
        int found = 0;
        for (int i = 0; !rc && f->choices[i]; i++)
            found |= !strcmp(f->choices[i], json_string_value(v));
        if (!rc && !found) {
            char list[256] = "";
            for (int i = 0; f->choices[i]; i++)
                snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? "|" : "",
                         f->choices[i]);
            rc = api_fail(e, 400, "invalid_field", f->name, "%s must be one of %s, got '%s'",
                          f->name, list, json_string_value(v));
        }
        break;
    }
    case F_PROMPTS:
        rc = check_prompts(f, v, e);
        break;
    case F_MODEL:
    case F_CONTROLNET:
        rc = check_model(f, v, roots, e);
        break;
    case F_DATASET:
        rc = check_dataset(f, v, roots, e);
        break;
    case F_HUB:
        return check_hub(f, v, norm, e);
    }
    if (!rc) *norm = json_deep_copy(v);
    if (!rc && !*norm) rc = api_fail(e, 503, "out_of_memory", NULL, "out of memory");
    return rc;
}

int api_train_spec(const json_t *req, const api_roots *roots, json_t **spec, api_error *e) {
    *spec = NULL;
    enum { N_FIELDS = sizeof train_fields / sizeof train_fields[0] };
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)req, key, v) {
        int known = 0;
        for (int i = 0; i < N_FIELDS && !known; i++) known = !strcmp(key, train_fields[i].name);
        if (!known) return api_fail(e, 400, "unknown_field", key, "unknown field %.100s", key);
    }
    json_t *out = json_object();
    if (!out) return api_fail(e, 503, "out_of_memory", NULL, "out of memory");
    for (int i = 0; i < N_FIELDS; i++) {
        const field *f = &train_fields[i];
        json_t *given = json_object_get(req, f->name), *norm = NULL;
        if (!given && (f->flags & REQUIRED)) {
            json_decref(out);
            return api_fail(e, 400, "missing_field", f->name, "%s is required", f->name);
        }
        if (!given && !f->def) continue;
        if (given) {
            int rc = check_field(f, given, roots, &norm, e);
            if (rc) {
                json_decref(out);
                return rc;
            }
        } else {
            norm = json_loads(f->def, JSON_DECODE_ANY, NULL);
        }
        if (!norm || json_object_set_new(out, f->name, norm)) {
            json_decref(out);
            return api_fail(e, 503, "out_of_memory", NULL, "out of memory");
        }
    }
    *spec = out;
    return 0;
}
