/* CLIP tokenizer: text to ids (see tokenizer.h).
 *
 * Follows PreTrainedTokenizer.tokenize / convert_tokens_to_ids and
 * prepare_for_model (transformers v4.38): split the raw text on the added
 * tokens, tokenize every other piece (tokenizer_text.c, tokenizer_bpe.c),
 * then BOS + ids + EOS, truncation that keeps both, and padding. The added
 * token split takes the leftmost match and, among matches starting there,
 * the longest; transformers' Trie does the same whenever no added token
 * contains another (true of CLIP's special tokens). */
#include <stdlib.h>
#include <string.h>

#include "engine/text/tokenizer_impl.h"
#include "engine/text/unicode.h"

int tokenizer_max_length(const tokenizer *tok) { return tok->max_length; }
int64_t tokenizer_bos_id(const tokenizer *tok) { return tok->bos_id; }
int64_t tokenizer_eos_id(const tokenizer *tok) { return tok->eos_id; }
int64_t tokenizer_pad_id(const tokenizer *tok) { return tok->pad_id; }
int64_t tokenizer_vocab_size(const tokenizer *tok) { return tok->vocab_size; }

/* The added token starting at text[0..len), longest first, or NULL. */
static const tok_added *added_at(const tokenizer *tok, const char *text, size_t len) {
    const tok_added *best = NULL;
    for (int i = 0; i < tok->n_added; i++) {
        const tok_added *a = &tok->added_list[i];
        if (a->len <= len && memcmp(text, a->content, a->len) == 0 && (!best || a->len > best->len))
            best = a;
    }
    return best;
}

/* CLIPTokenizer._tokenize of one piece of valid UTF-8 without added tokens. */
static int tokenize_piece(tokenizer *tok, const char *text, size_t len, tok_ids *out,
                          cnet_error *err) {
    uint32_t *cps = malloc((len + 1) * sizeof *cps), *clean = NULL;
    tok_span *spans = NULL;
    char *word = NULL;
    size_t n, n_clean;
    int rc = cps ? uni_utf8_decode(text, len, cps, &n, err)
                 : cnet_fail(err, CNET_ENOMEM, "tokenizer: out of memory");
    if (!rc) rc = tok_clean(cps, n, &clean, &n_clean, err);
    if (!rc) {
        spans = malloc((n_clean + 1) * sizeof *spans);
        /* A word's byte-encoded UTF-8: <= 4 bytes per code point, each byte
         * encoded to <= 2. */
        word = malloc(8 * n_clean + 1);
        if (!spans || !word) rc = cnet_fail(err, CNET_ENOMEM, "tokenizer: out of memory");
    }
    size_t n_spans = rc ? 0 : tok_split(clean, n_clean, spans);
    for (size_t s = 0; s < n_spans && !rc; s++) {
        size_t w = 0;
        for (size_t i = spans[s].start; i < spans[s].start + spans[s].len; i++) {
            char utf8[4];
            int nb = uni_utf8_encode(clean[i], utf8);
            for (int b = 0; b < nb; b++) {
                unsigned char byte = (unsigned char)utf8[b];
                memcpy(word + w, tok->byte_utf8[byte], tok->byte_utf8_len[byte]);
                w += tok->byte_utf8_len[byte];
            }
        }
        rc = tok_bpe(tok, word, w, out, err);
    }
    free(cps), free(clean), free(spans), free(word);
    return rc;
}

/* The ids of text without BOS/EOS. */
static int tokenize_text(tokenizer *tok, const char *text, size_t len, tok_ids *out,
                         cnet_error *err) {
    if (len > TOKENIZER_MAX_TEXT_BYTES)
        return cnet_fail(err, CNET_ELIMIT, "prompt is %zu bytes, the limit is %u", len,
                         TOKENIZER_MAX_TEXT_BYTES);
    uint32_t *check = malloc((len + 1) * sizeof *check);
    if (!check) return cnet_fail(err, CNET_ENOMEM, "tokenizer: out of memory");
    size_t n;
    int rc = uni_utf8_decode(text, len, check, &n, err);
    free(check);
    if (rc) return cnet_error_prefix(err, "prompt");
    size_t piece = 0;
    for (size_t i = 0; i < len && !rc;) {
        const tok_added *a = added_at(tok, text + i, len - i);
        if (!a) {
            i++;
            continue;
        }
        if (i > piece) rc = tokenize_piece(tok, text + piece, i - piece, out, err);
        if (!rc && tok_ids_push(out, a->id))
            rc = cnet_fail(err, CNET_ENOMEM, "tokenizer: out of memory");
        i += a->len;
        piece = i;
    }
    if (!rc && piece < len) rc = tokenize_piece(tok, text + piece, len - piece, out, err);
    return rc;
}

int tokenizer_encode_full(tokenizer *tok, const char *text, size_t len, int64_t **ids, size_t *n,
                          cnet_error *err) {
    tok_ids out = {0};
    int rc = tok_ids_push(&out, tok->bos_id) ? CNET_ENOMEM : 0;
    if (!rc)
        rc = tokenize_text(tok, text, len, &out, err);
    else
        cnet_fail(err, rc, "tokenizer: out of memory");
    if (!rc && tok_ids_push(&out, tok->eos_id))
        rc = cnet_fail(err, CNET_ENOMEM, "tokenizer: out of memory");
    if (rc) {
        free(out.v);
        return rc;
    }
    *ids = out.v;
    *n = out.n;
    return 0;
}

int tokenizer_encode(tokenizer *tok, const char *text, size_t len, int64_t *ids, int64_t *mask,
                     cnet_error *err) {
    tok_ids body = {0};
    int rc = tokenize_text(tok, text, len, &body, err);
    if (rc) {
        free(body.v);
        return rc;
    }
    /* prepare_for_model: drop tokens beyond max_length - 2 from the
     * truncation side, then BOS + tokens + EOS, then pad. */
    size_t keep = (size_t)tok->max_length - 2, skip = 0;
    if (body.n > keep)
        skip = tok->truncate_left ? body.n - keep : 0;
    else
        keep = body.n;
    size_t used = keep + 2, pad = (size_t)tok->max_length - used;
    size_t at = tok->pad_left ? pad : 0;
    for (size_t i = 0; i < (size_t)tok->max_length; i++) ids[i] = tok->pad_id, mask[i] = 0;
    ids[at] = tok->bos_id;
    if (keep) memcpy(ids + at + 1, body.v + skip, keep * sizeof *ids);
    ids[at + 1 + keep] = tok->eos_id;
    for (size_t i = 0; i < used; i++) mask[at + i] = 1;
    free(body.v);
    return 0;
}
