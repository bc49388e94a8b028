/* CLIP BPE tokenizer, loaded from a diffusers `tokenizer/` folder.
 *
 * Reproduces transformers' CLIPTokenizer (v4.38, the slow Python tokenizer
 * that StableDiffusionPipeline.encode_prompt calls) as it runs WITHOUT ftfy
 * installed, which is how the goldens were made: the text is split on the
 * added/special tokens first (Trie), every other piece goes through
 * BasicTokenizer(strip_accents=False, do_split_on_punc=False) (drop control
 * characters, whitespace to spaces, spaces around CJK ideographs, NFC,
 * lower-case), then the pre-tokenizer regex
 *   <\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
 * (re.IGNORECASE), the byte-to-unicode map, and BPE by merge rank with a
 * `</w>` end-of-word marker. Ids: BOS + tokens + EOS; tokenizer_encode also
 * truncates to model_max_length keeping EOS and pads with the pad token
 * (padding="max_length", truncation=True).
 *
 * Files: vocab.json, merges.txt and tokenizer_config.json are required;
 * special_tokens_map.json is read as transformers does (only when
 * tokenizer_config.json has no added_tokens_decoder; its tokens then win).
 * Unlike Python, which receives a str, we receive bytes: invalid UTF-8 is
 * refused with an error naming the byte offset. Not implemented: decoding
 * ids back to text, sequence pairs, ftfy's fix_text.
 *
 * Thread safety: tokenizer_encode* may be called from several threads on
 * one tokenizer (the BPE cache is behind a mutex). */
#ifndef CNET_TOKENIZER_H
#define CNET_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "engine/core/error.h"

/* Longest prompt accepted, in bytes (CNET_ELIMIT beyond). */
#define TOKENIZER_MAX_TEXT_BYTES (1u << 20)
/* Largest model_max_length accepted from tokenizer_config.json. */
#define TOKENIZER_MAX_LENGTH 8192

typedef struct tokenizer tokenizer;

/* Loads dir/{vocab.json, merges.txt, tokenizer_config.json,
 * special_tokens_map.json}. Errors name the file (and line, field or token).
 * On success *out is owned by the caller (tokenizer_free). */
int tokenizer_load(tokenizer **out, const char *dir, cnet_error *err);
void tokenizer_free(tokenizer *tok);

/* model_max_length (77 for Stable Diffusion). */
int tokenizer_max_length(const tokenizer *tok);
int64_t tokenizer_bos_id(const tokenizer *tok);
int64_t tokenizer_eos_id(const tokenizer *tok);
int64_t tokenizer_pad_id(const tokenizer *tok);
/* Entries in vocab.json (transformers' vocab_size). */
int64_t tokenizer_vocab_size(const tokenizer *tok);

/* BOS + ids + EOS of len bytes of UTF-8 text, untruncated and unpadded.
 * *ids is malloc'd (caller frees) and holds *n ids. */
int tokenizer_encode_full(tokenizer *tok, const char *text, size_t len, int64_t **ids, size_t *n,
                          cnet_error *err);

/* ids and mask, each [tokenizer_max_length]: the ids truncated (keeping EOS)
 * and padded with the pad id; mask is 1 for real tokens, 0 for padding. */
int tokenizer_encode(tokenizer *tok, const char *text, size_t len, int64_t *ids, int64_t *mask,
                     cnet_error *err);

#endif
