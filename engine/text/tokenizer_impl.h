/* The tokenizer's insides, shared by its files (tokenizer_load.c,
 * tokenizer_text.c, tokenizer_bpe.c, tokenizer.c) and by the unit tests;
 * users include tokenizer.h. */
#ifndef CNET_TOKENIZER_IMPL_H
#define CNET_TOKENIZER_IMPL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/core/error.h"
#include "engine/core/strmap.h"
#include "engine/text/tokenizer.h"

/* transformers keeps merges.txt lines 1 .. 49152-256-2 (line 0 is the
 * "#version" header); later lines are ignored, as there. */
#define TOKENIZER_MAX_MERGES (49152 - 256 - 2)
/* BPE cache size in words; the cache starts over when it is full. */
#define TOKENIZER_CACHE_MAX_WORDS (1 << 16)
/* The BPE end-of-word marker appended to a word's last symbol. */
#define TOKENIZER_EOW "</w>"

/* A token the text is split on before anything else (transformers'
 * added_tokens_decoder plus the special tokens). */
typedef struct tok_added {
    char *content; /* owned, UTF-8 */
    size_t len;
    int64_t id;
} tok_added;

/* A growing list of ids. */
typedef struct tok_ids {
    int64_t *v;
    size_t n, cap;
} tok_ids;

struct tokenizer {
    strmap vocab;  /* token -> id (vocab.json) */
    strmap merges; /* "first second" -> rank (merges.txt) */
    strmap added;  /* added token content -> id, checked before vocab */
    tok_added *added_list;
    int n_added;
    int64_t vocab_size;
    int max_length;
    int pad_left, truncate_left; /* padding_side / truncation_side == "left" */
    int64_t bos_id, eos_id, pad_id, unk_id;
    char byte_utf8[256][3]; /* UTF-8 of the byte-to-unicode image of each byte */
    unsigned char byte_utf8_len[256];
    pthread_mutex_t cache_lock;
    strmap cache;        /* byte-encoded word -> offset in cache_store */
    tok_ids cache_store; /* at an offset: count, then that many ids */
};

int tok_ids_push(tok_ids *ids, int64_t id);

/* The code point bytes_to_unicode() maps byte b to: printable Latin-1
 * bytes to themselves, the other 68 to U+0100.. in byte order. */
uint32_t tok_byte_to_unicode(unsigned b);

/* BasicTokenizer(strip_accents=False, do_split_on_punc=False).tokenize()
 * joined by single spaces, as CLIPTokenizer._tokenize does without ftfy.
 * *out is malloc'd (caller frees). */
int tok_clean(const uint32_t *in, size_t n, uint32_t **out, size_t *out_n, cnet_error *err);

/* One match of the pre-tokenizer regex: code points [start, start + len). */
typedef struct tok_span {
    size_t start, len;
} tok_span;

/* re.findall of the CLIP pattern over in[0..n); spans has room for n.
 * Returns the number of matches. */
size_t tok_split(const uint32_t *in, size_t n, tok_span *spans);

/* Appends the ids of one pre-tokenized word (UTF-8 of its byte-encoded
 * form, w[0..len)) to out, via the BPE cache. */
int tok_bpe(tokenizer *tok, const char *w, size_t len, tok_ids *out, cnet_error *err);

#endif
