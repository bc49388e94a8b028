/* BPE merges learned from a text and written as a CLIP tokenizer folder; see
 * tokenizer_train.h. Symbols are ids into one table of strings; words are
 * arrays of symbol ids with a count; each round recounts the adjacent pairs
 * (a strmap keyed by the two ids) and merges the best one everywhere. */
#include "engine/text/tokenizer_train.h"

#include <ctype.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/core/atomic_file.h"
#include "engine/core/strmap.h"
#include "engine/text/tokenizer_impl.h"
#include "engine/text/unicode.h"

/* Longest word learned from; longer letter runs are cut into pieces. */
#define TRAIN_MAX_WORD 64

typedef struct train_word {
    int *sym; /* symbol ids */
    int n;
    long count;
} train_word;

typedef struct trainer {
    char **sym_str; /* owned strings, by symbol id */
    int n_sym, cap_sym;
    strmap sym_ids;  /* string -> symbol id */
    strmap word_ids; /* word text -> index in words */
    train_word *words;
    int n_words, cap_words;
} trainer;

static void trainer_free(trainer *t) {
    for (int i = 0; i < t->n_sym; i++) free(t->sym_str[i]);
    free(t->sym_str);
    for (int i = 0; i < t->n_words; i++) free(t->words[i].sym);
    free(t->words);
    strmap_free(&t->sym_ids);
    strmap_free(&t->word_ids);
}

/* The id of symbol s, added when new (*is_new says so). -1 on ENOMEM. */
static int symbol(trainer *t, const char *s, int *is_new) {
    int64_t id;
    if (is_new) *is_new = 0;
    if (strmap_get(&t->sym_ids, s, strlen(s), &id)) return (int)id;
    if (t->n_sym == t->cap_sym) {
        int cap = t->cap_sym ? 2 * t->cap_sym : 1024;
        char **grown = realloc(t->sym_str, (size_t)cap * sizeof *grown);
        if (!grown) return -1;
        t->sym_str = grown, t->cap_sym = cap;
    }
    char *copy = strdup(s);
    if (!copy || strmap_put(&t->sym_ids, s, strlen(s), t->n_sym)) {
        free(copy);
        return -1;
    }
    if (is_new) *is_new = 1;
    t->sym_str[t->n_sym] = copy;
    return t->n_sym++;
}

/* Counts one word (ASCII lower-case letters w[0..len)). */
static int add_word(trainer *t, const char *w, int len) {
    int64_t idx;
    if (strmap_get(&t->word_ids, w, (size_t)len, &idx)) {
        t->words[idx].count++;
        return 0;
    }
    if (t->n_words == t->cap_words) {
        int cap = t->cap_words ? 2 * t->cap_words : 256;
        train_word *grown = realloc(t->words, (size_t)cap * sizeof *grown);
        if (!grown) return CNET_ENOMEM;
        t->words = grown, t->cap_words = cap;
    }
    train_word *tw = &t->words[t->n_words];
    if (!(tw->sym = malloc((size_t)len * sizeof(int)))) return CNET_ENOMEM;
    tw->n = len, tw->count = 1;
    for (int i = 0; i < len; i++) {
        char s[8] = {w[i], '\0'};
        if (i == len - 1) strcat(s, TOKENIZER_EOW);
        if ((tw->sym[i] = symbol(t, s, NULL)) < 0) {
            free(tw->sym);
            return CNET_ENOMEM;
        }
    }
    if (strmap_put(&t->word_ids, w, (size_t)len, t->n_words)) {
        free(tw->sym);
        return CNET_ENOMEM;
    }
    t->n_words++;
    return 0;
}

static int read_words(trainer *t, const char *text) {
    char w[TRAIN_MAX_WORD];
    int len = 0;
    for (const char *p = text;; p++) {
        int letter = isascii((unsigned char)*p) && isalpha((unsigned char)*p);
        if (letter) w[len++] = (char)tolower((unsigned char)*p);
        if ((!letter || len == TRAIN_MAX_WORD) && len > 0) {
            if (add_word(t, w, len)) return CNET_ENOMEM;
            len = 0;
        }
        if (!*p) return 0;
    }
}

typedef struct pair_count {
    int a, b;
    long count;
} pair_count;

/* The most frequent adjacent pair (ties: smaller "a b" string); 0 if none. */
static int best_pair(trainer *t, strmap *index, pair_count **pairs, int *cap, int *a, int *b) {
    strmap_clear(index);
    int n = 0;
    for (int w = 0; w < t->n_words; w++) {
        const train_word *tw = &t->words[w];
        for (int i = 0; i + 1 < tw->n; i++) {
            int key[2] = {tw->sym[i], tw->sym[i + 1]};
            int64_t k;
            if (strmap_get(index, (const char *)key, sizeof key, &k)) {
                (*pairs)[k].count += tw->count;
                continue;
            }
            if (n == *cap) {
                int grown_cap = *cap ? 2 * *cap : 1024;
                pair_count *grown = realloc(*pairs, (size_t)grown_cap * sizeof *grown);
                if (!grown) return -1;
                *pairs = grown, *cap = grown_cap;
            }
            if (strmap_put(index, (const char *)key, sizeof key, n)) return -1;
            (*pairs)[n++] = (pair_count){key[0], key[1], tw->count};
        }
    }
    int best = -1;
    for (int i = 0; i < n; i++) {
        const pair_count *p = &(*pairs)[i];
        if (best >= 0) {
            const pair_count *q = &(*pairs)[best];
            if (p->count < q->count) continue;
            if (p->count == q->count) {
                int c = strcmp(t->sym_str[p->a], t->sym_str[q->a]);
                if (c > 0 || (c == 0 && strcmp(t->sym_str[p->b], t->sym_str[q->b]) >= 0)) continue;
            }
        }
        best = i;
    }
    if (best < 0) return 0;
    *a = (*pairs)[best].a, *b = (*pairs)[best].b;
    return 1;
}

/* Replaces every (a, b) in every word by merged, left to right. */
static void apply_merge(trainer *t, int a, int b, int merged) {
    for (int w = 0; w < t->n_words; w++) {
        train_word *tw = &t->words[w];
        int out = 0;
        for (int i = 0; i < tw->n; i++) {
            if (i + 1 < tw->n && tw->sym[i] == a && tw->sym[i + 1] == b) {
                tw->sym[out++] = merged;
                i++;
            } else {
                tw->sym[out++] = tw->sym[i];
            }
        }
        tw->n = out;
    }
}

/* A growing text buffer for merges.txt. */
typedef struct text_buf {
    char *s;
    size_t len, cap;
} text_buf;

static int buf_add(text_buf *b, const char *a, const char *c) {
    size_t need = b->len + strlen(a) + strlen(c) + 3;
    if (need > b->cap) {
        size_t cap = need * 2;
        char *grown = realloc(b->s, cap);
        if (!grown) return CNET_ENOMEM;
        b->s = grown, b->cap = cap;
    }
    b->len += (size_t)sprintf(b->s + b->len, "%s%s%s\n", a, *c ? " " : "", c);
    return 0;
}

static int put_id(json_t *vocab, const char *token, json_int_t id) {
    return json_object_set_new(vocab, token, json_integer(id)) ? CNET_ENOMEM : 0;
}

/* The 512 base symbols in CLIP's order (bytes sorted by their image). */
static int base_vocab(json_t *vocab) {
    int rc = 0;
    for (int eow = 0; eow < 2 && !rc; eow++) {
        json_int_t id = 256 * eow;
        for (uint32_t cp = 0; cp < 512 && !rc; cp++)
            for (unsigned byte = 0; byte < 256 && !rc; byte++) {
                if (tok_byte_to_unicode(byte) != cp) continue;
                char s[16];
                int n = uni_utf8_encode(cp, s);
                strcpy(s + n, eow ? TOKENIZER_EOW : "");
                rc = put_id(vocab, s, id++);
            }
    }
    return rc;
}

/* A special token's attributes as transformers writes them (special: the
 * added_tokens_decoder form). New reference or NULL. */
static json_t *token_attrs(const char *content, int special) {
    json_t *t = json_pack("{s:s,s:b,s:b,s:b,s:b}", "content", content, "lstrip", 0, "normalized", 1,
                          "rstrip", 0, "single_word", 0);
    if (t && special && json_object_set_new(t, "special", json_true())) {
        json_decref(t);
        return NULL;
    }
    return t;
}

/* tokenizer_config.json and special_tokens_map.json as transformers writes
 * them for an SD 1.x CLIPTokenizer. */
static int write_configs(const char *dir, json_int_t bos, json_int_t eos, cnet_error *err) {
    const char *bos_s = "<|startoftext|>", *eos_s = "<|endoftext|>";
    char path[PATH_MAX], bos_key[32], eos_key[32];
    snprintf(bos_key, sizeof bos_key, "%lld", (long long)bos);
    snprintf(eos_key, sizeof eos_key, "%lld", (long long)eos);
    json_t *cfg =
        json_pack("{s:{s:o*,s:o*},s:s,s:b,s:s,s:s,s:i,s:s,s:s,s:s}", "added_tokens_decoder",
                  bos_key, token_attrs(bos_s, 1), eos_key, token_attrs(eos_s, 1), "bos_token",
                  bos_s, "clean_up_tokenization_spaces", 1, "eos_token", eos_s, "errors", "replace",
                  "model_max_length", 77, "pad_token", eos_s, "tokenizer_class", "CLIPTokenizer",
                  "unk_token", eos_s);
    json_t *map = json_pack("{s:o*,s:o*,s:o*,s:o*}", "bos_token", token_attrs(bos_s, 0),
                            "eos_token", token_attrs(eos_s, 0), "pad_token", token_attrs(eos_s, 0),
                            "unk_token", token_attrs(eos_s, 0));
    int rc = 0;
    if (!cfg || !map || json_object_size(json_object_get(cfg, "added_tokens_decoder")) != 2 ||
        json_object_size(map) != 4)
        rc = cnet_fail(err, CNET_ENOMEM, "out of memory writing the tokenizer config");
    if (!rc) {
        snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
        rc = atomic_write_json(path, cfg, err);
    }
    if (!rc) {
        snprintf(path, sizeof path, "%s/special_tokens_map.json", dir);
        rc = atomic_write_json(path, map, err);
    }
    json_decref(cfg);
    json_decref(map);
    return rc;
}

int tokenizer_train_write(const char *dir, const char *text, int max_merges, int64_t *vocab_size,
                          cnet_error *err) {
    if (max_merges < 0 || max_merges > TOKENIZER_TRAIN_MAX_MERGES)
        return cnet_fail(err, CNET_ELIMIT, "tokenizer: %d merges asked for (at most %d)",
                         max_merges, TOKENIZER_TRAIN_MAX_MERGES);
    trainer t = {0};
    strmap index = {0};
    pair_count *pairs = NULL;
    int cap = 0, rc = read_words(&t, text);
    json_t *vocab = json_object();
    text_buf merges = {0};
    if (!rc && (!vocab || base_vocab(vocab) || buf_add(&merges, "#version: 0.2", "")))
        rc = CNET_ENOMEM;
    json_int_t next_id = 512;
    for (int m = 0; m < max_merges && !rc; m++) {
        int a, b, found = best_pair(&t, &index, &pairs, &cap, &a, &b);
        if (found < 0) rc = CNET_ENOMEM;
        if (found <= 0) break;
        char joined[2 * TRAIN_MAX_WORD + 16];
        snprintf(joined, sizeof joined, "%s%s", t.sym_str[a], t.sym_str[b]);
        int is_new, merged = symbol(&t, joined, &is_new);
        if (merged < 0 || buf_add(&merges, t.sym_str[a], t.sym_str[b]))
            rc = CNET_ENOMEM;
        else if (!json_object_get(vocab, joined) && put_id(vocab, joined, next_id++))
            rc = CNET_ENOMEM;
        if (!rc) apply_merge(&t, a, b, merged);
    }
    const json_int_t bos = next_id, eos = next_id + 1;
    if (!rc && (put_id(vocab, "<|startoftext|>", bos) || put_id(vocab, "<|endoftext|>", eos)))
        rc = CNET_ENOMEM;
    if (rc) rc = cnet_fail(err, CNET_ENOMEM, "out of memory learning the tokenizer");
    char path[PATH_MAX];
    if (!rc) {
        snprintf(path, sizeof path, "%s/vocab.json", dir);
        rc = atomic_write_json(path, vocab, err);
    }
    if (!rc) {
        snprintf(path, sizeof path, "%s/merges.txt", dir);
        rc = atomic_write_file(path, merges.s, merges.len, err);
    }
    if (!rc) rc = write_configs(dir, bos, eos, err);
    if (!rc) *vocab_size = (int64_t)eos + 1;
    json_decref(vocab);
    free(merges.s);
    free(pairs);
    strmap_free(&index);
    trainer_free(&t);
    return rc;
}
