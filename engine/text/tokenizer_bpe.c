/* Byte-pair encoding of one pre-tokenized word, with a cache.
 *
 * Follows CLIPTokenizer.bpe (transformers v4.38): the word's characters are
 * the symbols, the last one carrying "</w>"; repeatedly the adjacent pair
 * with the lowest merge rank is found and every non-overlapping occurrence
 * of it, left to right, is merged; it stops when no pair has a rank or one
 * symbol is left. "<|startoftext|>" and "<|endoftext|>" are pre-seeded in
 * its cache as themselves (no "</w>"), so they are here too. Symbols are
 * byte spans of one buffer (the word followed by "</w>"): a merge only
 * widens a span. */
#include <stdlib.h>
#include <string.h>

#include "engine/text/tokenizer_impl.h"

typedef struct bpe_sym {
    size_t off, len;
} bpe_sym;

int tok_ids_push(tok_ids *ids, int64_t id) {
    if (ids->n == ids->cap) {
        size_t cap = ids->cap ? ids->cap * 2 : 64;
        int64_t *v = realloc(ids->v, cap * sizeof *v);
        if (!v) return CNET_ENOMEM;
        ids->v = v;
        ids->cap = cap;
    }
    ids->v[ids->n++] = id;
    return 0;
}

/* The id of a BPE token or added token: added tokens first, then the
 * vocabulary, else the unknown token's id. */
static int64_t tok_token_id(const tokenizer *tok, const char *s, size_t len) {
    int64_t id;
    if (strmap_get(&tok->added, s, len, &id)) return id;
    if (strmap_get(&tok->vocab, s, len, &id)) return id;
    return tok->unk_id;
}

static int same_sym(const char *buf, bpe_sym a, bpe_sym b) {
    return a.len == b.len && memcmp(buf + a.off, buf + b.off, a.len) == 0;
}

/* Runs the merges over the symbols of buf; returns the final count. */
static size_t bpe_merge(const tokenizer *tok, const char *buf, bpe_sym *sym, size_t n, char *key) {
    while (n > 1) {
        int64_t best = -1;
        size_t best_i = 0;
        for (size_t i = 0; i + 1 < n; i++) {
            memcpy(key, buf + sym[i].off, sym[i].len);
            key[sym[i].len] = ' ';
            memcpy(key + sym[i].len + 1, buf + sym[i + 1].off, sym[i + 1].len);
            int64_t rank;
            if (strmap_get(&tok->merges, key, sym[i].len + 1 + sym[i + 1].len, &rank) &&
                (best < 0 || rank < best))
                best = rank, best_i = i;
        }
        if (best < 0) break;
        bpe_sym first = sym[best_i], second = sym[best_i + 1];
        size_t k = 0;
        for (size_t i = 0; i < n;) {
            if (i + 1 < n && same_sym(buf, sym[i], first) && same_sym(buf, sym[i + 1], second)) {
                sym[k++] = (bpe_sym){sym[i].off, sym[i].len + sym[i + 1].len};
                i += 2;
            } else {
                sym[k++] = sym[i++];
            }
        }
        n = k;
    }
    return n;
}

/* Computes the ids of w into out (appending). */
static int bpe_compute(const tokenizer *tok, const char *w, size_t len, tok_ids *out) {
    if ((len == 15 && memcmp(w, "<|startoftext|>", 15) == 0) ||
        (len == 13 && memcmp(w, "<|endoftext|>", 13) == 0))
        return tok_ids_push(out, tok_token_id(tok, w, len));
    size_t eow = strlen(TOKENIZER_EOW), blen = len + eow;
    char *buf = malloc(blen + 1), *key = malloc(2 * blen + 2);
    bpe_sym *sym = malloc((len + 1) * sizeof *sym);
    if (!buf || !key || !sym) {
        free(buf), free(key), free(sym);
        return CNET_ENOMEM;
    }
    memcpy(buf, w, len);
    memcpy(buf + len, TOKENIZER_EOW, eow);
    /* One symbol per UTF-8 character of w; the last one takes "</w>". */
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        if (((unsigned char)w[i] & 0xC0) != 0x80) sym[n++] = (bpe_sym){i, 0};
    for (size_t i = 0; i < n; i++) sym[i].len = (i + 1 < n ? sym[i + 1].off : blen) - sym[i].off;
    n = bpe_merge(tok, buf, sym, n, key);
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++)
        rc = tok_ids_push(out, tok_token_id(tok, buf + sym[i].off, sym[i].len));
    free(buf), free(key), free(sym);
    return rc;
}

int tok_bpe(tokenizer *tok, const char *w, size_t len, tok_ids *out, cnet_error *err) {
    int64_t off;
    int rc = 0;
    pthread_mutex_lock(&tok->cache_lock);
    if (strmap_get(&tok->cache, w, len, &off)) {
        int64_t count = tok->cache_store.v[off];
        for (int64_t i = 0; i < count && !rc; i++)
            rc = tok_ids_push(out, tok->cache_store.v[off + 1 + i]);
        pthread_mutex_unlock(&tok->cache_lock);
        return rc ? cnet_fail(err, CNET_ENOMEM, "tokenizer: out of memory") : 0;
    }
    pthread_mutex_unlock(&tok->cache_lock);

    size_t first = out->n;
    if (bpe_compute(tok, w, len, out))
        return cnet_fail(err, CNET_ENOMEM, "tokenizer: out of memory in BPE of a %zu-byte word",
                         len);
    size_t count = out->n - first;

    pthread_mutex_lock(&tok->cache_lock);
    if (tok->cache.n >= TOKENIZER_CACHE_MAX_WORDS) {
        strmap_clear(&tok->cache);
        tok->cache_store.n = 0;
    }
    /* A failed insert only loses the cache entry, never the result. */
    size_t at = tok->cache_store.n;
    int ok = tok_ids_push(&tok->cache_store, (int64_t)count) == 0;
    for (size_t i = 0; i < count && ok; i++)
        ok = tok_ids_push(&tok->cache_store, out->v[first + i]) == 0;
    if (!ok || strmap_put(&tok->cache, w, len, (int64_t)at)) tok->cache_store.n = at;
    pthread_mutex_unlock(&tok->cache_lock);
    return 0;
}
