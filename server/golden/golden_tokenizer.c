/* Golden check of goldens/tokenizer.safetensors: the prompts in its
 * metadata ("prompts", a JSON list) through the model folder's tokenizer/,
 * as StableDiffusionPipeline.encode_prompt tokenises them (padding to
 * model_max_length, truncation), plus the untruncated ids of each prompt
 * and, when the metadata has "special_ids", the bos/eos/pad ids and the
 * vocabulary size. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/text/tokenizer.h"
#include "server/golden/golden.h"

/* Compares the metadata's special ids with the tokenizer's, one line each. */
static void check_special_ids(golden_ctx *ctx, const tokenizer *tok, const json_t *special) {
    static const char *const keys[] = {"bos", "eos", "pad", "vocab_size"};
    int64_t got[] = {tokenizer_bos_id(tok), tokenizer_eos_id(tok), tokenizer_pad_id(tok),
                     tokenizer_vocab_size(tok)};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        const json_t *v = json_object_get(special, keys[i]);
        if (!v) continue;
        char name[64], note[96];
        snprintf(name, sizeof name, "tokenizer.special_ids.%s", keys[i]);
        int pass = json_is_integer(v) && json_integer_value(v) == got[i];
        snprintf(note, sizeof note, "got %lld, golden %lld", (long long)got[i],
                 json_is_integer(v) ? (long long)json_integer_value(v) : -1LL);
        golden_report(ctx, name, "[]", pass ? 0 : 1, 0, pass, pass ? NULL : note);
    }
}

static int check_prompts(golden_ctx *ctx, const st_file *f, tokenizer *tok, const json_t *prompts,
                         cnet_error *err) {
    size_t p = json_array_size(prompts);
    int64_t L = tokenizer_max_length(tok);
    int64_t *ids = malloc(p * (size_t)L * sizeof *ids),
            *mask = malloc(p * (size_t)L * sizeof *mask);
    int rc = ids && mask ? 0 : cnet_fail(err, CNET_ENOMEM, "golden: out of memory");
    for (size_t i = 0; i < p && !rc; i++) {
        const json_t *s = json_array_get(prompts, i);
        if (!json_is_string(s)) {
            rc = cnet_fail(err, CNET_EFORMAT, "%s: metadata prompts[%zu] is not a string", f->path,
                           i);
            break;
        }
        rc = tokenizer_encode(tok, json_string_value(s), json_string_length(s), ids + i * L,
                              mask + i * L, err);
        if (rc) {
            cnet_error_prefix(err, "prompts[%zu]", i);
            break;
        }
        int64_t *full;
        size_t n;
        rc =
            tokenizer_encode_full(tok, json_string_value(s), json_string_length(s), &full, &n, err);
        if (rc) break;
        char name[64];
        snprintf(name, sizeof name, "tokenizer.untruncated_ids.%zu", i);
        cnet_tensor t = {CNET_I64, 1, {(int64_t)n}, full, -1};
        golden_compare(ctx, f, name, &t);
        free(full);
    }
    if (!rc) {
        cnet_tensor t = {CNET_I64, 2, {(int64_t)p, L}, ids, -1};
        golden_compare(ctx, f, "tokenizer.input_ids", &t);
        t.data = mask;
        golden_compare(ctx, f, "tokenizer.attention_mask", &t);
    }
    free(ids), free(mask);
    return rc;
}

int golden_check_tokenizer(golden_ctx *ctx, const st_file *f, cnet_error *err) {
    const char *meta = st_meta(f, "prompts");
    json_t *prompts = meta ? json_loads(meta, JSON_ALLOW_NUL, NULL) : NULL;
    if (!json_is_array(prompts)) {
        json_decref(prompts);
        return cnet_fail(err, CNET_EFORMAT, "%s: metadata \"prompts\" is %s", f->path,
                         meta ? "not a JSON list" : "missing");
    }
    char dir[PATH_MAX + 16];
    snprintf(dir, sizeof dir, "%s/tokenizer", ctx->model_dir);
    tokenizer *tok;
    int rc = tokenizer_load(&tok, dir, err);
    if (!rc) {
        rc = check_prompts(ctx, f, tok, prompts, err);
        meta = st_meta(f, "special_ids");
        json_t *special = meta ? json_loads(meta, 0, NULL) : NULL;
        if (!rc && special) check_special_ids(ctx, tok, special);
        json_decref(special);
        tokenizer_free(tok);
    }
    json_decref(prompts);
    return rc;
}
