/* Golden check of goldens-sdxl/text_encoders.safetensors: SDXL's two
 * tokenizers and two text encoders, and encode_prompt
 * (engine/pipeline/prompt_sdxl.h), against the model folder's tokenizer/,
 * tokenizer_2/, text_encoder/ and text_encoder_2/.
 *
 * Everything comes from the file's metadata (goldens-sdxl/README.md):
 * "prompts" (tokenised by both tokenizers: text.in.input_ids_<k> and
 * text.untruncated_ids_<k>.<i>), "special_ids", "text.te_prompts" (the rows
 * of input_ids_2 that text_encoder_2 pools: text.te2.*) and one
 * "text.encode.<case>.args" per encode_prompt case, whose JSON arguments
 * (prompt, prompt_2, negative_prompt, negative_prompt_2, clip_skip,
 * do_classifier_free_guidance, force_zeros_for_empty_prompt) are passed on
 * with Python's meaning (a string is one prompt for every row; an empty
 * string or null prompt_2 / negative_prompt_2 falls back). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/models/clip_text.h"
#include "engine/pipeline/prompt_sdxl.h"
#include "engine/text/tokenizer.h"
#include "server/golden/golden.h"
#include "server/golden/golden_io.h"

#define SDXL_TEXT_CASE_PREFIX "text.encode."
#define SDXL_TEXT_CASE_SUFFIX ".args"

typedef struct sdxl_text {
    golden_env env;
    tokenizer *tok[2];
    clip_text_model te[2];
    int n_open; /* text encoders opened */
} sdxl_text;

static void sdxl_text_close(sdxl_text *s) {
    for (int k = 0; k < 2; k++) tokenizer_free(s->tok[k]);
    for (int k = 0; k < s->n_open; k++) clip_text_free(&s->te[k]);
    golden_env_free(&s->env);
}

static int sdxl_text_open(sdxl_text *s, const golden_ctx *ctx, cnet_error *err) {
    static const char *const toks[2] = {"tokenizer", "tokenizer_2"};
    static const char *const tes[2] = {"text_encoder", "text_encoder_2"};
    memset(s, 0, sizeof *s);
    int rc = golden_env_init(&s->env, ctx, err);
    if (rc) return rc;
    for (int k = 0; k < 2 && !rc; k++) {
        char dir[PATH_MAX + 32];
        snprintf(dir, sizeof dir, "%s/%s", ctx->model_dir, toks[k]);
        if ((rc = tokenizer_load(&s->tok[k], dir, err))) break;
        snprintf(dir, sizeof dir, "%s/%s", ctx->model_dir, tes[k]);
        if (!(rc = clip_text_open(&s->te[k], &s->env.be, dir, err))) s->n_open++;
    }
    if (rc) sdxl_text_close(s);
    return rc;
}

/* The JSON metadata value `key` (caller json_decref's it), or an error. */
static int meta_json(const st_file *f, const char *key, json_t **out, cnet_error *err) {
    const char *meta = st_meta(f, key);
    *out = meta ? json_loads(meta, JSON_ALLOW_NUL | JSON_DECODE_ANY, NULL) : NULL;
    if (!*out)
        return cnet_fail(err, CNET_EFORMAT, "%s: metadata \"%s\" is %s", f->path, key,
                         meta ? "not JSON" : "missing");
    return 0;
}

/* Compares the metadata's special ids ({"bos", "eos", "pad_<k>",
 * "vocab_size"}) with both tokenizers', one line each. */
static void check_special_ids(golden_ctx *ctx, const sdxl_text *s, const json_t *special) {
    for (int k = 0; k < 2; k++) {
        const tokenizer *t = s->tok[k];
        char pad[16];
        snprintf(pad, sizeof pad, "pad_%d", k + 1);
        const char *keys[] = {"bos", "eos", pad, "vocab_size"};
        int64_t got[] = {tokenizer_bos_id(t), tokenizer_eos_id(t), tokenizer_pad_id(t),
                         tokenizer_vocab_size(t)};
        for (int i = 0; i < 4; i++) {
            const json_t *v = json_object_get(special, keys[i]);
            if (!v) continue;
            char name[64], note[96];
            snprintf(name, sizeof name, "text.special_ids.%s.tokenizer_%d", keys[i], k + 1);
            int pass = json_is_integer(v) && json_integer_value(v) == got[i];
            snprintf(note, sizeof note, "got %lld, golden %lld", (long long)got[i],
                     json_is_integer(v) ? (long long)json_integer_value(v) : -1LL);
            golden_report(ctx, name, "[]", pass ? 0 : 1, 0, pass, pass ? NULL : note);
        }
    }
}

/* Tokenises the metadata prompts with tokenizer k into ids [P, L] (caller
 * frees) and compares them and each prompt's untruncated ids. */
static int check_ids(golden_ctx *ctx, const st_file *f, tokenizer *tok, int k,
                     const json_t *prompts, int64_t **ids_out, cnet_error *err) {
    size_t P = json_array_size(prompts);
    int64_t L = tokenizer_max_length(tok);
    int64_t *ids = malloc((P ? P : 1) * (size_t)L * sizeof *ids), *mask = malloc(L * sizeof *mask);
    int rc = ids && mask ? 0 : cnet_fail(err, CNET_ENOMEM, "golden: out of memory");
    for (size_t i = 0; i < P && !rc; i++) {
        const json_t *js = json_array_get(prompts, i);
        if (!json_is_string(js)) {
            rc = cnet_fail(err, CNET_EFORMAT, "%s: metadata prompts[%zu] is not a string", f->path,
                           i);
            break;
        }
        const char *text = json_string_value(js);
        size_t len = json_string_length(js), n;
        int64_t *full;
        if ((rc = tokenizer_encode(tok, text, len, ids + i * L, mask, err)) ||
            (rc = tokenizer_encode_full(tok, text, len, &full, &n, err))) {
            cnet_error_prefix(err, "tokenizer_%d: prompts[%zu]", k, i);
            break;
        }
        char name[64];
        snprintf(name, sizeof name, "text.untruncated_ids_%d.%zu", k, i);
        cnet_tensor t = {CNET_I64, 1, {(int64_t)n}, full, -1};
        golden_compare(ctx, f, name, &t);
        free(full);
    }
    free(mask);
    if (rc) {
        free(ids);
        return rc;
    }
    char name[64];
    snprintf(name, sizeof name, "text.in.input_ids_%d", k);
    cnet_tensor t = {CNET_I64, 2, {(int64_t)P, L}, ids, -1};
    golden_compare(ctx, f, name, &t);
    *ids_out = ids;
    return 0;
}

/* text.te2.*: text_encoder_2's pooling of the rows "text.te_prompts" of
 * ids_2 [P, L]. */
static int check_te2(golden_ctx *ctx, const st_file *f, sdxl_text *s, const int64_t *ids_2,
                     size_t P, cnet_error *err) {
    json_t *rows;
    int rc = meta_json(f, "text.te_prompts", &rows, err);
    if (rc) return rc;
    clip_text_model *te = &s->te[1];
    const int L = tokenizer_max_length(s->tok[1]), B = (int)json_array_size(rows);
    const int D = te->hidden, Pj = te->projection_dim;
    int64_t *ids = malloc((B ? B : 1) * (size_t)L * sizeof *ids),
            *eos = malloc((B ? B : 1) * sizeof *eos);
    float *pooled = NULL, *embeds = NULL;
    rc = ids && eos ? 0 : cnet_fail(err, CNET_ENOMEM, "golden: out of memory");
    for (int b = 0; b < B && !rc; b++) {
        const json_t *v = json_array_get(rows, b);
        json_int_t i = json_is_integer(v) ? json_integer_value(v) : -1;
        if (i < 0 || (size_t)i >= P) {
            rc = cnet_fail(err, CNET_EFORMAT, "%s: text.te_prompts[%d] is not a prompt index",
                           f->path, b);
            break;
        }
        memcpy(ids + (size_t)b * L, ids_2 + (size_t)i * L, (size_t)L * sizeof *ids);
        eos[b] = clip_text_eos_index(te, ids + (size_t)b * L, L);
    }
    if (!rc && B > 0) {
        cnet_tensor t = {CNET_I64, 1, {B}, eos, -1};
        golden_compare(ctx, f, "text.te2.eos_index", &t);
        cnet_backend *be = &s->env.be;
        pooled = be->alloc(be, (size_t)B * D * sizeof(float));
        embeds = be->alloc(be, (size_t)B * (Pj ? Pj : 1) * sizeof(float));
        rc = pooled && embeds ? 0 : cnet_fail(err, CNET_ENOMEM, "golden: out of device memory");
        if (!rc) rc = golden_env_scratch(&s->env, clip_text_scratch_bytes(te, B, L), err);
        if (!rc)
            rc = clip_text_forward_states(te, &s->env.scratch, NULL, 0, pooled, embeds, ids, B, L,
                                          err);
        if (!rc) rc = cnet_backend_status(be, err);
        if (!rc) {
            golden_compare_nhwc(ctx, &s->env, f, "text.te2.pooled_pre_projection", pooled, 2,
                                (int64_t[]){B, D});
            golden_compare_nhwc(ctx, &s->env, f, "text.te2.text_embeds", embeds, 2,
                                (int64_t[]){B, Pj});
        }
        if (pooled) be->free(be, pooled);
        if (embeds) be->free(be, embeds);
    }
    free(ids), free(eos);
    json_decref(rows);
    return rc;
}

/* One prompt argument as encode_prompt reads it: absent or null is None
 * (*list NULL); a string is that text for each of the n rows; a list gives
 * n = its length when *n is 0, else must have n entries. `falls_back`: an
 * empty string or list is None too (Python's `x or y`). list[] is malloc'd
 * (caller frees) and borrows the JSON's strings. */
static int prompt_arg(const st_file *f, const char *c, const json_t *args, const char *key,
                      int falls_back, int *n, const char ***list, cnet_error *err) {
    const json_t *v = json_object_get(args, key);
    *list = NULL;
    if (!v || json_is_null(v)) return 0;
    if (falls_back && ((json_is_string(v) && json_string_length(v) == 0) ||
                       (json_is_array(v) && json_array_size(v) == 0)))
        return 0;
    if (json_is_string(v)) {
        if (!*n) *n = 1;
    } else if (json_is_array(v)) {
        if (!*n) *n = (int)json_array_size(v);
        if (json_array_size(v) != (size_t)*n)
            return cnet_fail(err, CNET_EFORMAT, "%s: case %s: %s has %zu entries for %d prompts",
                             f->path, c, key, json_array_size(v), *n);
    } else {
        return cnet_fail(err, CNET_EFORMAT, "%s: case %s: %s is neither a string nor a list",
                         f->path, c, key);
    }
    if (*n < 1)
        return cnet_fail(err, CNET_EFORMAT, "%s: case %s: %s has no prompts", f->path, c, key);
    if (!(*list = malloc((size_t)*n * sizeof **list)))
        return cnet_fail(err, CNET_ENOMEM, "golden: out of memory");
    for (int i = 0; i < *n; i++) {
        const json_t *e = json_is_string(v) ? v : json_array_get(v, (size_t)i);
        if (!json_is_string(e)) {
            free(*list);
            *list = NULL;
            return cnet_fail(err, CNET_EFORMAT, "%s: case %s: %s[%d] is not a string", f->path, c,
                             key, i);
        }
        (*list)[i] = json_string_value(e);
    }
    return 0;
}

/* Runs encode_prompt case c with its arguments and compares its outputs. */
static int check_case(golden_ctx *ctx, const st_file *f, sdxl_text *s, const char *c,
                      const json_t *args, cnet_error *err) {
    const char **lists[4] = {NULL, NULL, NULL, NULL};
    static const char *const keys[4] = {"prompt", "prompt_2", "negative_prompt",
                                        "negative_prompt_2"};
    static const int falls_back[4] = {0, 1, 0, 1};
    int n = 0, rc = 0;
    for (int i = 0; i < 4 && !rc; i++)
        rc = prompt_arg(f, c, args, keys[i], falls_back[i], &n, &lists[i], err);
    if (!rc && !lists[0])
        rc = cnet_fail(err, CNET_EFORMAT, "%s: case %s has no prompt", f->path, c);
    const json_t *skip = json_object_get(args, "clip_skip");
    if (!rc && skip && !json_is_null(skip) && !json_is_integer(skip))
        rc = cnet_fail(err, CNET_EFORMAT, "%s: case %s: clip_skip is not an integer", f->path, c);
    prompt_sdxl_models m = {s->tok[0], s->tok[1], &s->te[0], &s->te[1]};
    prompt_sdxl_request r = {
        .n = n,
        .prompt = lists[0],
        .prompt_2 = lists[1],
        .negative = lists[2],
        .negative_2 = lists[3],
        .cfg = json_is_true(json_object_get(args, "do_classifier_free_guidance")),
        .force_zeros_for_empty_prompt =
            json_is_true(json_object_get(args, "force_zeros_for_empty_prompt")),
        .clip_skip = json_is_integer(skip) ? (int)json_integer_value(skip) : 0,
    };
    int L, D, P;
    if (!rc) rc = prompt_sdxl_dims(&m, &L, &D, &P, err);
    cnet_backend *be = &s->env.be;
    float *bufs[4] = {NULL, NULL, NULL, NULL};
    for (int i = 0; i < 4 && !rc; i++) {
        size_t floats = (size_t)n * (i < 2 ? (size_t)L * D : (size_t)P);
        if (!(bufs[i] = be->alloc(be, floats * sizeof(float))))
            rc = cnet_fail(err, CNET_ENOMEM, "golden: out of device memory");
    }
    if (!rc) rc = golden_env_scratch(&s->env, prompt_sdxl_scratch_bytes(&m, n), err);
    prompt_sdxl_out out = {bufs[0], bufs[1], bufs[2], bufs[3]};
    if (!rc) rc = prompt_sdxl_encode(&m, &s->env.scratch, &r, &out, err);
    if (!rc) rc = cnet_backend_status(be, err);
    static const char *const outs[4] = {"prompt_embeds", "negative_prompt_embeds",
                                        "pooled_prompt_embeds", "negative_pooled_prompt_embeds"};
    for (int i = 0; i < 4 && !rc; i++) {
        if ((i == 1 || i == 3) && !r.cfg) continue;
        char name[GOLDEN_NAME_MAX];
        snprintf(name, sizeof name, SDXL_TEXT_CASE_PREFIX "%s.%s", c, outs[i]);
        const int64_t embeds[3] = {n, L, D}, pooled[2] = {n, P};
        golden_compare_nhwc(ctx, &s->env, f, name, bufs[i], i < 2 ? 3 : 2, i < 2 ? embeds : pooled);
    }
    for (int i = 0; i < 4; i++) {
        free(lists[i]);
        if (bufs[i]) be->free(be, bufs[i]);
    }
    if (rc) cnet_error_prefix(err, "case %s", c);
    return rc;
}

/* Every "text.encode.<case>.args" of the metadata, in file order. */
static int check_cases(golden_ctx *ctx, const st_file *f, sdxl_text *s, cnet_error *err) {
    const size_t pre = strlen(SDXL_TEXT_CASE_PREFIX), suf = strlen(SDXL_TEXT_CASE_SUFFIX);
    int rc = 0;
    for (int i = 0; i < f->n_meta && !rc; i++) {
        const char *key = f->meta_keys[i];
        size_t len = strlen(key);
        if (len <= pre + suf || strncmp(key, SDXL_TEXT_CASE_PREFIX, pre) ||
            strcmp(key + len - suf, SDXL_TEXT_CASE_SUFFIX))
            continue;
        char c[GOLDEN_RUN_MAX + 1];
        if (len - pre - suf > GOLDEN_RUN_MAX)
            return cnet_fail(err, CNET_EFORMAT, "%s: case name of \"%s\" longer than %d bytes",
                             f->path, key, GOLDEN_RUN_MAX);
        snprintf(c, sizeof c, "%.*s", (int)(len - pre - suf), key + pre);
        json_t *args;
        if ((rc = meta_json(f, key, &args, err))) break;
        rc = json_is_object(args)
                 ? check_case(ctx, f, s, c, args, err)
                 : cnet_fail(err, CNET_EFORMAT, "%s: %s is not a JSON object", f->path, key);
        json_decref(args);
    }
    return rc;
}

int golden_check_text_encoders_sdxl(golden_ctx *ctx, const st_file *f, cnet_error *err) {
    json_t *prompts, *special = NULL;
    int rc = meta_json(f, "prompts", &prompts, err);
    if (rc) return rc;
    if (!json_is_array(prompts)) {
        json_decref(prompts);
        return cnet_fail(err, CNET_EFORMAT, "%s: metadata \"prompts\" is not a JSON list", f->path);
    }
    sdxl_text s;
    if ((rc = sdxl_text_open(&s, ctx, err))) {
        json_decref(prompts);
        return rc;
    }
    int64_t *ids[2] = {NULL, NULL};
    for (int k = 0; k < 2 && !rc; k++)
        rc = check_ids(ctx, f, s.tok[k], k + 1, prompts, &ids[k], err);
    if (!rc && st_meta(f, "special_ids") && !(rc = meta_json(f, "special_ids", &special, err)))
        check_special_ids(ctx, &s, special);
    if (!rc) rc = check_te2(ctx, f, &s, ids[1], json_array_size(prompts), err);
    if (!rc) rc = check_cases(ctx, f, &s, err);
    free(ids[0]), free(ids[1]);
    json_decref(special);
    json_decref(prompts);
    sdxl_text_close(&s);
    return rc;
}
