/* Loading a CLIP tokenizer folder: vocab.json, merges.txt,
 * tokenizer_config.json and special_tokens_map.json.
 *
 * Follows transformers v4.38: CLIPTokenizer.__init__ (merges.txt lines 1 ..
 * 49152-256-2 after strip(), split on whitespace; later duplicates win, as
 * in the dict it builds), PreTrainedTokenizerBase._from_pretrained (the
 * special tokens come from tokenizer_config.json; special_tokens_map.json
 * overrides them only when the config has no added_tokens_decoder, the
 * "legacy" path that SD 2.x folders take to get pad_token "!"), and
 * PreTrainedTokenizer.__init__ (every special token becomes an added token,
 * with its vocabulary id). Stricter than Python where Python would load a
 * broken tokenizer silently: a merges line that is not two symbols, a merge
 * whose result is not in the vocabulary, a special token missing from both
 * the vocabulary and added_tokens_decoder, and single_word added tokens are
 * refused with the file, line or field named. lstrip/rstrip of added tokens
 * are accepted and ignored: they strip whitespace next to the token, and
 * BasicTokenizer strips it from those pieces anyway. do_lower_case is
 * ignored as CLIPTokenizer ignores it: its BasicTokenizer always lower-cases. */
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/text/tokenizer_impl.h"
#include "engine/text/unicode.h"

/* merges.txt is read whole; CLIP's is 0.5 MB. */
#define TOKENIZER_MAX_MERGES_BYTES (64u << 20)
/* Largest id accepted in vocab.json or added_tokens_decoder. */
#define TOKENIZER_MAX_ID ((int64_t)INT32_MAX)

/* The special token attributes, in transformers' SPECIAL_TOKENS_ATTRIBUTES
 * order, with CLIPTokenizer's defaults. */
enum { SPECIAL_BOS, SPECIAL_EOS, SPECIAL_UNK, SPECIAL_PAD, SPECIAL_COUNT };
static const char *const special_names[SPECIAL_COUNT] = {"bos_token", "eos_token", "unk_token",
                                                         "pad_token"};
static const char *const special_defaults[SPECIAL_COUNT] = {"<|startoftext|>", "<|endoftext|>",
                                                            "<|endoftext|>", "<|endoftext|>"};

static int join_path(char *buf, size_t cap, const char *dir, const char *name, cnet_error *err) {
    int len = snprintf(buf, cap, "%s/%s", dir, name);
    if (len < 0 || (size_t)len >= cap)
        return cnet_fail(err, CNET_ELIMIT, "%s/%s: path longer than %zu bytes", dir, name, cap - 1);
    return 0;
}

static int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Parses path into *out (caller json_decref's it). */
static int read_json(const char *path, json_t **out, cnet_error *err) {
    if (!file_exists(path)) return cnet_fail(err, CNET_ENOTFOUND, "%s: file not found", path);
    json_error_t je;
    *out = json_load_file(path, 0, &je);
    if (!*out)
        return cnet_fail(err, CNET_EFORMAT, "%s:%d:%d: malformed JSON: %s", path, je.line,
                         je.column, je.text);
    if (!json_is_object(*out)) {
        json_decref(*out);
        return cnet_fail(err, CNET_EFORMAT, "%s: expected a JSON object at the top level", path);
    }
    return 0;
}

static int load_vocab(tokenizer *tok, const char *path, cnet_error *err) {
    json_t *root;
    int rc = read_json(path, &root, err);
    if (rc) return rc;
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        json_int_t id = json_is_integer(v) ? json_integer_value(v) : -1;
        if (id < 0 || id > TOKENIZER_MAX_ID) {
            rc =
                cnet_fail(err, CNET_EFORMAT, "%s: token \"%s\": id must be an integer in [0, %lld]",
                          path, key, (long long)TOKENIZER_MAX_ID);
            break;
        }
        if (strmap_put(&tok->vocab, key, strlen(key), id)) {
            rc = cnet_fail(err, CNET_ENOMEM, "%s: out of memory", path);
            break;
        }
    }
    tok->vocab_size = (int64_t)json_object_size(root);
    json_decref(root);
    if (!rc && tok->vocab_size == 0)
        rc = cnet_fail(err, CNET_EFORMAT, "%s: empty vocabulary", path);
    return rc;
}

static int read_file(const char *path, char **data, size_t *len, cnet_error *err) {
    if (!file_exists(path)) return cnet_fail(err, CNET_ENOTFOUND, "%s: file not found", path);
    FILE *f = fopen(path, "rb");
    if (!f) return cnet_fail(err, CNET_EIO, "%s: cannot open", path);
    struct stat st;
    if (fstat(fileno(f), &st) || (size_t)st.st_size > TOKENIZER_MAX_MERGES_BYTES) {
        fclose(f);
        return cnet_fail(err, CNET_ELIMIT, "%s: larger than %u bytes", path,
                         TOKENIZER_MAX_MERGES_BYTES);
    }
    *len = (size_t)st.st_size;
    *data = malloc(*len + 1);
    if (!*data) {
        fclose(f);
        return cnet_fail(err, CNET_ENOMEM, "%s: out of memory", path);
    }
    size_t got = fread(*data, 1, *len, f);
    fclose(f);
    if (got != *len) {
        free(*data);
        return cnet_fail(err, CNET_EIO, "%s: read %zu of %zu bytes", path, got, *len);
    }
    return 0;
}

static int is_space(uint32_t cp) { return (uni_flags(cp) & UNI_F_SPACE) != 0; }

/* One merges line cps[0..n) (file line `line`): two symbols separated by
 * whitespace, whose concatenation is in the vocabulary. key receives
 * "first second". */
static int add_merge(tokenizer *tok, const char *path, size_t line, const uint32_t *cps, size_t n,
                     int64_t rank, char *key, cnet_error *err) {
    size_t part_start[3], part_len[3], parts = 0;
    for (size_t i = 0; i < n;) {
        if (is_space(cps[i])) {
            i++;
            continue;
        }
        size_t j = i;
        while (j < n && !is_space(cps[j])) j++;
        if (parts < 3) part_start[parts] = i, part_len[parts] = j - i;
        parts++;
        i = j;
    }
    if (parts != 2)
        return cnet_fail(err, CNET_EFORMAT,
                         "%s:%zu: expected two symbols separated by a space, found %zu", path, line,
                         parts);
    size_t k = 0, sep = 0;
    for (size_t p = 0; p < 2; p++) {
        if (p) sep = k, key[k++] = ' ';
        for (size_t i = 0; i < part_len[p]; i++)
            k += (size_t)uni_utf8_encode(cps[part_start[p] + i], key + k);
    }
    /* The result: key without the separator. */
    char *joined = malloc(k);
    if (!joined) return cnet_fail(err, CNET_ENOMEM, "%s: out of memory", path);
    memcpy(joined, key, sep);
    memcpy(joined + sep, key + sep + 1, k - sep - 1);
    int64_t id;
    int found = strmap_get(&tok->vocab, joined, k - 1, &id);
    if (!found) {
        int rc = cnet_fail(err, CNET_EFORMAT, "%s:%zu: merge result \"%.*s\" is not in vocab.json",
                           path, line, (int)(k - 1), joined);
        free(joined);
        return rc;
    }
    free(joined);
    if (strmap_put(&tok->merges, key, k, rank))
        return cnet_fail(err, CNET_ENOMEM, "%s: out of memory", path);
    return 0;
}

static int load_merges(tokenizer *tok, const char *path, cnet_error *err) {
    char *data = NULL;
    size_t len = 0;
    int rc = read_file(path, &data, &len, err);
    if (rc) return rc;
    uint32_t *cps = malloc((len + 1) * sizeof *cps);
    char *key = malloc(4 * len + 2);
    size_t n = 0;
    if (!cps || !key) {
        rc = cnet_fail(err, CNET_ENOMEM, "%s: out of memory", path);
    } else if (uni_utf8_decode(data, len, cps, &n, NULL)) {
        /* Name the first line that does not decode. */
        size_t line = 1;
        for (size_t i = 0; i < len; line++) {
            const char *nl = memchr(data + i, '\n', len - i);
            size_t end = nl ? (size_t)(nl - data) : len, dummy;
            cnet_error e;
            if (uni_utf8_decode(data + i, end - i, cps, &dummy, &e)) {
                rc = cnet_fail(err, CNET_EFORMAT, "%s:%zu: %s", path, line, e.msg);
                break;
            }
            i = end + 1;
        }
    }
    /* Python: read().strip().split("\n")[1 : TOKENIZER_MAX_MERGES + 1]. */
    size_t begin = 0, end = n, line = 1;
    while (!rc && begin < end && is_space(cps[begin])) line += cps[begin++] == '\n';
    while (!rc && end > begin && is_space(cps[end - 1])) end--;
    int64_t rank = -1; /* the first line is the "#version" header */
    for (size_t i = begin; !rc && i < end && rank < TOKENIZER_MAX_MERGES; line++) {
        size_t j = i;
        while (j < end && cps[j] != '\n') j++;
        if (rank >= 0) rc = add_merge(tok, path, line, cps + i, j - i, rank, key, err);
        rank++;
        i = j + 1;
    }
    free(data), free(cps), free(key);
    return rc;
}

/* A token value: a string, or an AddedToken object with "content". Sets
 * *content to NULL for JSON null. *single_word gets its single_word flag. */
static int token_content(const char *path, const char *field, const json_t *v, const char **content,
                         int *single_word, cnet_error *err) {
    *single_word = 0;
    if (json_is_null(v)) {
        *content = NULL;
        return 0;
    }
    if (json_is_string(v)) {
        *content = json_string_value(v);
        return 0;
    }
    const json_t *c = json_is_object(v) ? json_object_get(v, "content") : NULL;
    if (!json_is_string(c))
        return cnet_fail(err, CNET_EFORMAT,
                         "%s: %s must be a string or an object with a string \"content\"", path,
                         field);
    *content = json_string_value(c);
    *single_word = json_is_true(json_object_get(v, "single_word"));
    return 0;
}

static int add_added(tokenizer *tok, const char *content, int64_t id, cnet_error *err) {
    size_t len = strlen(content);
    int64_t old;
    if (len == 0 || strmap_get(&tok->added, content, len, &old)) return 0;
    tok_added *list = realloc(tok->added_list, (size_t)(tok->n_added + 1) * sizeof *list);
    if (!list) return cnet_fail(err, CNET_ENOMEM, "tokenizer: out of memory");
    tok->added_list = list;
    char *copy = strdup(content);
    if (!copy || strmap_put(&tok->added, content, len, id)) {
        free(copy);
        return cnet_fail(err, CNET_ENOMEM, "tokenizer: out of memory");
    }
    list[tok->n_added++] = (tok_added){copy, len, id};
    return 0;
}

static int load_added_decoder(tokenizer *tok, const char *path, const json_t *dec,
                              cnet_error *err) {
    if (!json_is_object(dec))
        return cnet_fail(err, CNET_EFORMAT, "%s: added_tokens_decoder must be an object", path);
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)dec, key, v) {
        char *end;
        long long id = strtoll(key, &end, 10);
        if (*key == '\0' || *end != '\0' || id < 0 || id > TOKENIZER_MAX_ID)
            return cnet_fail(err, CNET_EFORMAT,
                             "%s: added_tokens_decoder key \"%s\" is not a token id", path, key);
        char field[64];
        snprintf(field, sizeof field, "added_tokens_decoder[\"%.32s\"]", key);
        const char *content;
        int single_word, rc = token_content(path, field, v, &content, &single_word, err);
        if (rc) return rc;
        if (!content) return cnet_fail(err, CNET_EFORMAT, "%s: %s is null", path, field);
        if (single_word)
            return cnet_fail(err, CNET_EFORMAT,
                             "%s: %s (\"%s\") has single_word=true, which is not supported", path,
                             field, content);
        if ((rc = add_added(tok, content, id, err))) return rc;
    }
    return 0;
}

/* The id of a special token: its added_tokens_decoder id, else its vocab id. */
static int special_id(tokenizer *tok, const char *path, const char *field, const char *content,
                      int64_t *id, cnet_error *err) {
    size_t len = strlen(content);
    if (strmap_get(&tok->added, content, len, id) || strmap_get(&tok->vocab, content, len, id))
        return add_added(tok, content, *id, err);
    return cnet_fail(err, CNET_EFORMAT,
                     "%s: %s \"%s\" is neither in vocab.json nor in added_tokens_decoder", path,
                     field, content);
}

static int side_is_left(const char *path, const json_t *cfg, const char *field, int *left,
                        cnet_error *err) {
    const json_t *v = json_object_get(cfg, field);
    *left = 0;
    if (!v) return 0;
    const char *s = json_is_string(v) ? json_string_value(v) : "";
    if (strcmp(s, "left") && strcmp(s, "right"))
        return cnet_fail(err, CNET_EFORMAT, "%s: %s must be \"left\" or \"right\"", path, field);
    *left = strcmp(s, "left") == 0;
    return 0;
}

static int load_config(tokenizer *tok, const char *dir, cnet_error *err) {
    char cfg_path[PATH_MAX], map_path[PATH_MAX];
    int rc = join_path(cfg_path, sizeof cfg_path, dir, "tokenizer_config.json", err);
    if (!rc) rc = join_path(map_path, sizeof map_path, dir, "special_tokens_map.json", err);
    json_t *cfg = NULL, *map = NULL;
    if (!rc) rc = read_json(cfg_path, &cfg, err);
    if (rc) return rc;

    const json_t *mml = json_object_get(cfg, "model_max_length");
    if (!json_is_integer(mml) || json_integer_value(mml) < 2 ||
        json_integer_value(mml) > TOKENIZER_MAX_LENGTH) {
        rc = cnet_fail(err, CNET_EFORMAT, "%s: model_max_length must be an integer in [2, %d]",
                       cfg_path, TOKENIZER_MAX_LENGTH);
        goto done;
    }
    tok->max_length = (int)json_integer_value(mml);
    if ((rc = side_is_left(cfg_path, cfg, "padding_side", &tok->pad_left, err)) ||
        (rc = side_is_left(cfg_path, cfg, "truncation_side", &tok->truncate_left, err)))
        goto done;

    const json_t *dec = json_object_get(cfg, "added_tokens_decoder");
    if (dec && (rc = load_added_decoder(tok, cfg_path, dec, err))) goto done;
    if (!dec && file_exists(map_path) && (rc = read_json(map_path, &map, err))) goto done;

    int64_t *ids[SPECIAL_COUNT] = {&tok->bos_id, &tok->eos_id, &tok->unk_id, &tok->pad_id};
    for (int s = 0; s < SPECIAL_COUNT; s++) {
        const char *content = special_defaults[s], *from = cfg_path;
        const json_t *v = json_object_get(cfg, special_names[s]);
        if (map && json_object_get(map, special_names[s]))
            v = json_object_get(map, special_names[s]), from = map_path;
        int single_word = 0;
        if (v && (rc = token_content(from, special_names[s], v, &content, &single_word, err)))
            goto done;
        if (!content) {
            rc = cnet_fail(err, CNET_EFORMAT, "%s: %s is null; CLIP needs all four special tokens",
                           from, special_names[s]);
            goto done;
        }
        if (single_word) {
            rc = cnet_fail(err, CNET_EFORMAT, "%s: %s has single_word=true, not supported", from,
                           special_names[s]);
            goto done;
        }
        if ((rc = special_id(tok, from, special_names[s], content, ids[s], err))) goto done;
    }
    /* additional_special_tokens: the map's list wins over the config's. */
    const json_t *extra = json_object_get(cfg, "additional_special_tokens");
    if (map && json_object_get(map, "additional_special_tokens"))
        extra = json_object_get(map, "additional_special_tokens");
    if (extra && !json_is_array(extra) && !json_is_null(extra)) {
        rc = cnet_fail(err, CNET_EFORMAT, "%s: additional_special_tokens must be a list", cfg_path);
        goto done;
    }
    size_t i;
    const json_t *v;
    json_array_foreach(extra, i, v) {
        const char *content;
        int single_word;
        if ((rc = token_content(cfg_path, "additional_special_tokens", v, &content, &single_word,
                                err)))
            goto done;
        int64_t id;
        if (content &&
            (rc = special_id(tok, cfg_path, "additional_special_tokens", content, &id, err)))
            goto done;
    }
done:
    json_decref(cfg);
    json_decref(map);
    return rc;
}

int tokenizer_load(tokenizer **out, const char *dir, cnet_error *err) {
    *out = NULL;
    tokenizer *tok = calloc(1, sizeof *tok);
    if (!tok) return cnet_fail(err, CNET_ENOMEM, "tokenizer: out of memory");
    pthread_mutex_init(&tok->cache_lock, NULL);
    for (unsigned b = 0; b < 256; b++)
        tok->byte_utf8_len[b] =
            (unsigned char)uni_utf8_encode(tok_byte_to_unicode(b), tok->byte_utf8[b]);
    char path[PATH_MAX];
    int rc = join_path(path, sizeof path, dir, "vocab.json", err);
    if (!rc) rc = load_vocab(tok, path, err);
    if (!rc) rc = join_path(path, sizeof path, dir, "merges.txt", err);
    if (!rc) rc = load_merges(tok, path, err);
    if (!rc) rc = load_config(tok, dir, err);
    if (rc) {
        tokenizer_free(tok);
        return rc;
    }
    *out = tok;
    return 0;
}

void tokenizer_free(tokenizer *tok) {
    if (!tok) return;
    strmap_free(&tok->vocab);
    strmap_free(&tok->merges);
    strmap_free(&tok->added);
    strmap_free(&tok->cache);
    for (int i = 0; i < tok->n_added; i++) free(tok->added_list[i].content);
    free(tok->added_list);
    free(tok->cache_store.v);
    pthread_mutex_destroy(&tok->cache_lock);
    free(tok);
}
