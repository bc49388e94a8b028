/* The field-table validator (see api_fields.h). Types, ranges and
 * references are checked here; what each route's fields are is decided by
 * its table. References are resolved only as far as "exists in an allowed
 * place": a model under the models dir (or an hf:// reference where the
 * table allows one), a trained ControlNet by job id, a dataset by id or
 * under the configured data root, never elsewhere. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "api/api_fields.h"
#include "api/hub_ref.h"

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

const api_field *api_field_find(const api_field *fields, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (strcmp(fields[i].name, name) == 0) return &fields[i];
    return NULL;
}

double api_field_api_hi(const api_field *f) { return f->api_hi ? f->api_hi : f->hi; }

static int in_range(const api_field *f, double x) {
    if (f->flags & AF_LO_OPEN ? x <= f->lo : x < f->lo) return 0;
    const double hi = api_field_api_hi(f);
    if (f->flags & AF_HI_OPEN ? x >= hi : x > hi) return 0;
    return 1;
}

static int check_number(const api_field *f, const json_t *v, api_error *e) {
    if (f->type == AF_INT && !json_is_integer(v))
        return api_fail(e, 400, "invalid_field", f->name, "%s must be an integer, got %s", f->name,
                        type_name(v));
    if (!json_is_number(v))
        return api_fail(e, 400, "invalid_field", f->name, "%s must be a number, got %s", f->name,
                        type_name(v));
    double x = json_number_value(v);
    if (!in_range(f, x))
        return api_fail(e, 400, "out_of_range", f->name, "%s must be in %c%g, %g%c, got %g",
                        f->name, f->flags & AF_LO_OPEN ? '(' : '[', f->lo, api_field_api_hi(f),
                        f->flags & AF_HI_OPEN ? ')' : ']', x);
    if (f->type == AF_INT && f->multiple_of && json_integer_value(v) % f->multiple_of != 0)
        return api_fail(e, 400, "out_of_range", f->name, "%s must be a multiple of %d, got %lld",
                        f->name, f->multiple_of, (long long)json_integer_value(v));
    return 0;
}

static int check_size(const api_field *f, const json_t *v, api_error *e) {
    if (!json_is_array(v) || json_array_size(v) != 2)
        return api_fail(e, 400, "invalid_field", f->name,
                        "%s must be a [height, width] pair of integers, got %s", f->name,
                        json_is_array(v) ? "an array of another length" : type_name(v));
    for (size_t i = 0; i < 2; i++) {
        const json_t *x = json_array_get(v, i);
        if (!json_is_integer(x))
            return api_fail(e, 400, "invalid_field", f->name, "%s[%zu] must be an integer, got %s",
                            f->name, i, type_name(x));
        if (!in_range(f, (double)json_integer_value(x)))
            return api_fail(e, 400, "out_of_range", f->name,
                            "%s[%zu] must be in [%g, %g], got %lld", f->name, i, f->lo,
                            api_field_api_hi(f), (long long)json_integer_value(x));
    }
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

static int is_job_id(const char *s) {
    return strncmp(s, "j_", 2) == 0 && strlen(s) == 34 && strspn(s + 2, "0123456789abcdef") == 32;
}

static int check_model(const api_field *f, const json_t *v, const api_roots *roots, api_error *e) {
    int rc = check_text(f->name, v, API_REF_MAX, e);
    if (rc) return rc;
    const char *ref = json_string_value(v);
    if ((f->flags & AF_HUB_REF) && hub_ref_is_hub(ref)) {
        char repo[HUB_REPO_ID_MAX], rev[HUB_REVISION_MAX];
        cnet_error err = {0};
        if (hub_ref_parse(ref, repo, rev, &err))
            return api_fail(e, 400, "invalid_reference", f->name, "%s: %s", f->name, err.msg);
        return 0;
    }
    if ((f->flags & AF_JOB_REF) && is_job_id(ref)) {
        if (!roots->jobs_dir || !file_exists(roots->jobs_dir, ref, "config.json") ||
            !file_exists(roots->jobs_dir, ref, "diffusion_pytorch_model.safetensors"))
            return api_fail(
                e, 400, "not_found", f->name,
                "%s: job %s has no trained ControlNet (not finished, or not a train job)", f->name,
                ref);
        return 0;
    }
    if (!safe_ref(ref))
        return api_fail(e, 400, "invalid_reference", f->name,
                        "%s must name a model under the models dir (segments of [A-Za-z0-9._-], "
                        "no leading dots, no absolute paths)%s",
                        f->name,
                        f->flags & AF_HUB_REF ? " or be hf://namespace/name[@revision]" : "");
    const char *leaf = f->type == AF_MODEL ? "model_index.json" : "config.json";
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

static int check_dataset(const api_field *f, const json_t *v, const api_roots *roots,
                         api_error *e) {
    int rc = check_text(f->name, v, PATH_MAX - 1, e);
    if (rc) return rc;
    const char *s = json_string_value(v);
    if (hub_ref_is_hub(s)) { /* checked here, pulled by the job (never by the request) */
        char repo[HUB_REPO_ID_MAX], rev[HUB_REVISION_MAX];
        cnet_error err = {0};
        if (hub_dataset_ref_parse(s, repo, rev, &err))
            return api_fail(e, 400, "invalid_reference", f->name, "%s: %s", f->name, err.msg);
        return 0;
    }
    if (is_dataset_id(s)) {
        if (!file_exists(roots->datasets_dir, s, "report.json"))
            return api_fail(e, 400, "not_found", f->name, "no uploaded dataset %s", s);
        return 0;
    }
    if (!roots->data_root || s[0] != '/')
        return api_fail(e, 400, "invalid_reference", f->name,
                        "dataset must be an uploaded dataset id (d_...)%s or "
                        "hf://datasets/namespace/name[@revision]",
                        roots->data_root ? ", an absolute path under the data root" : "");
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

static int check_prompts(const api_field *f, const json_t *v, api_error *e) {
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

static int check_hub(const api_field *f, const json_t *v, json_t **out, api_error *e) {
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

static int check_field(const api_field *f, const json_t *v, const api_roots *roots, json_t **norm,
                       api_error *e) {
    *norm = NULL;
    int rc = 0;
    switch (f->type) {
    case AF_INT:
    case AF_NUM:
        rc = check_number(f, v, e);
        break;
    case AF_BOOL:
        if (!json_is_boolean(v))
            rc = api_fail(e, 400, "invalid_field", f->name, "%s must be a boolean, got %s", f->name,
                          type_name(v));
        break;
    case AF_ENUM: {
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
    case AF_PROMPTS:
        rc = check_prompts(f, v, e);
        break;
    case AF_MODEL:
    case AF_CONTROLNET:
        rc = check_model(f, v, roots, e);
        break;
    case AF_DATASET:
        rc = check_dataset(f, v, roots, e);
        break;
    case AF_HUB:
        return check_hub(f, v, norm, e);
    case AF_TEXT:
        if ((f->flags & AF_TEXT_LIST) && json_is_array(v)) {
            rc = check_prompts(f, v, e);
            break;
        }
        rc = check_text(f->name, v, API_PROMPT_MAX, e);
        if (rc && (f->flags & AF_TEXT_LIST) && !json_is_string(v))
            rc = api_fail(e, 400, "invalid_field", f->name,
                          "%s must be a string or an array of strings, got %s", f->name,
                          type_name(v));
        break;
    case AF_SIZE:
        rc = check_size(f, v, e);
        break;
    case AF_PATHS:
        rc = check_prompts(f, v, e);
        for (size_t i = 0; !rc && i < json_array_size(v); i++)
            if (!safe_ref(json_string_value(json_array_get(v, i)))) {
                char name[64];
                snprintf(name, sizeof name, "%s[%zu]", f->name, i);
                rc = api_fail(e, 400, "invalid_reference", name,
                              "%s must be a relative path inside the dataset (segments of "
                              "[A-Za-z0-9._-], no leading dots)",
                              name);
            }
        break;
    case AF_CONTROLNETS: /* api_fields_check's own (it needs the table) */
        rc =
            api_fail(e, 400, "invalid_field", f->name, "%s is not a per-ControlNet field", f->name);
        break;
    case AF_BASE64:
        rc = check_text(f->name, v, SIZE_MAX, e);
        if (!rc && json_string_length(v) == 0)
            rc = api_fail(e, 400, "invalid_field", f->name, "%s is empty", f->name);
        if (!rc) return 0; /* validated, not copied: *norm stays NULL */
        break;
    }
    if (!rc) *norm = json_deep_copy(v);
    if (!rc && !*norm) rc = api_fail(e, 503, "out_of_memory", NULL, "out of memory");
    return rc;
}

/* Fills out[name] from given (checked) or the field's default; 0 or an error. */
static int fill_field(const api_field *f, const char *path, const json_t *given,
                      const api_roots *roots, json_t *out, api_error *e) {
    json_t *norm = NULL;
    if (given) {
        api_field named = *f; /* errors name the member by its path */
        named.name = path;
        int rc = check_field(&named, given, roots, &norm, e);
        if (rc || f->type == AF_BASE64) return rc;
    } else {
        norm = json_loads(f->def, JSON_DECODE_ANY, NULL);
    }
    if (!norm || json_object_set_new(out, f->name, norm))
        return api_fail(e, 503, "out_of_memory", NULL, "out of memory");
    return 0;
}

/* An AF_CONTROLNETS list: 1..hi objects of the table's per-ControlNet
 * fields, each normalized as the flat ones are, into *norm. */
static int check_controlnets(const api_field *list, const api_field *fields, int n, const json_t *v,
                             const api_roots *roots, json_t **norm, api_error *e) {
    *norm = NULL;
    if (!json_is_array(v))
        return api_fail(e, 400, "invalid_field", list->name,
                        "%s must be an array of objects, got %s", list->name, type_name(v));
    const size_t items = json_array_size(v);
    if (items < (size_t)list->lo || items > (size_t)list->hi)
        return api_fail(e, 400, "out_of_range", list->name, "%s must hold %g..%g items, got %zu",
                        list->name, list->lo, list->hi, items);
    json_t *out = json_array();
    int rc = out ? 0 : api_fail(e, 503, "out_of_memory", NULL, "out of memory");
    for (size_t k = 0; !rc && k < items; k++) {
        const json_t *item = json_array_get(v, k);
        char path[160];
        snprintf(path, sizeof path, "%s[%zu]", list->name, k);
        if (!json_is_object(item)) {
            rc = api_fail(e, 400, "invalid_field", path, "%s must be an object, got %s", path,
                          type_name(item));
            break;
        }
        const char *key;
        json_t *m;
        json_object_foreach((json_t *)item, key, m) {
            const api_field *f = api_field_find(fields, n, key);
            if (!f || !(f->flags & AF_PER_CONTROLNET) || (f->flags & AF_CLI_ONLY)) {
                snprintf(path, sizeof path, "%s[%zu].%.100s", list->name, k, key);
                rc = api_fail(e, 400, "unknown_field", path,
                              "unknown field %s (an item holds the per-ControlNet fields)", path);
                break;
            }
        }
        json_t *one = rc ? NULL : json_object();
        if (!rc && !one) rc = api_fail(e, 503, "out_of_memory", NULL, "out of memory");
        for (int i = 0; !rc && i < n; i++) {
            const api_field *f = &fields[i];
            const json_t *given = json_object_get(item, f->name);
            if (!(f->flags & AF_PER_CONTROLNET) || (f->flags & AF_CLI_ONLY) || (!given && !f->def))
                continue;
            snprintf(path, sizeof path, "%s[%zu].%s", list->name, k, f->name);
            rc = fill_field(f, path, given, roots, one, e);
        }
        if (!rc && json_array_append_new(out, one))
            rc = api_fail(e, 503, "out_of_memory", NULL, "out of memory");
        else if (rc)
            json_decref(one);
    }
    if (rc) {
        json_decref(out);
        return rc;
    }
    *norm = out;
    return 0;
}

int api_fields_check(const api_field *fields, int N_FIELDS, const json_t *req,
                     const api_roots *roots, json_t **spec, api_error *e) {
    *spec = NULL;
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)req, key, v) {
        const api_field *f = api_field_find(fields, N_FIELDS, key);
        if (!f || (f->flags & AF_CLI_ONLY))
            return api_fail(e, 400, "unknown_field", key, "unknown field %.100s", key);
    }
    /* a list of ControlNets replaces the flat per-ControlNet fields */
    const api_field *list = NULL;
    for (int i = 0; i < N_FIELDS && !list; i++)
        if (fields[i].type == AF_CONTROLNETS && json_object_get(req, fields[i].name))
            list = &fields[i];
    for (int i = 0; list && i < N_FIELDS; i++)
        if ((fields[i].flags & AF_PER_CONTROLNET) && json_object_get(req, fields[i].name))
            return api_fail(e, 400, "invalid_field", fields[i].name,
                            "%s and %s exclude each other: give %s in each %s item", fields[i].name,
                            list->name, fields[i].name, list->name);
    json_t *out = json_object();
    if (!out) return api_fail(e, 503, "out_of_memory", NULL, "out of memory");
    int rc = 0;
    for (int i = 0; i < N_FIELDS && !rc; i++) {
        const api_field *f = &fields[i];
        if ((f->flags & AF_CLI_ONLY) || (list && (f->flags & AF_PER_CONTROLNET))) continue;
        json_t *given = json_object_get(req, f->name), *norm = NULL;
        if (!given && (f->flags & AF_REQUIRED))
            rc = api_fail(e, 400, "missing_field", f->name, "%s is required", f->name);
        else if (f == list &&
                 !(rc = check_controlnets(f, fields, N_FIELDS, given, roots, &norm, e)))
            rc = json_object_set_new(out, f->name, norm)
                     ? api_fail(e, 503, "out_of_memory", NULL, "out of memory")
                     : 0;
        else if (f != list && (given || f->def))
            rc = fill_field(f, f->name, given, roots, out, e);
    }
    if (rc) {
        json_decref(out);
        return rc;
    }
    *spec = out;
    return 0;
}
