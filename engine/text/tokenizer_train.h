/* Generating a small CLIP BPE tokenizer folder from a text, for models made
 * from scratch (`cnet init-model --preset tiny`).
 *
 * The vocabulary is laid out as CLIP's (openai/clip simple_tokenizer and
 * transformers' CLIPTokenizer files): ids 0..255 the byte-to-unicode symbols
 * in code point order, 256..511 the same with `</w>`, then one id per merge
 * result in merge order (a result already in the vocabulary keeps its id),
 * then <|startoftext|> and <|endoftext|> (which is also pad and unk, as in
 * SD 1.x). Merges are learned by classic BPE (Sennrich et al. 2016) over the
 * words of the text: maximal runs of ASCII letters, lower-cased, each ending
 * in `</w>`; every round merges the most frequent adjacent pair in every
 * word, ties going to the smaller "first second" string, until no pair is
 * left or max_merges is reached. So every word of the text tokenizes back
 * to a single token once enough merges are allowed.
 *
 * Not here: learning from non-ASCII text (other bytes stay single symbols). */
#ifndef CNET_TOKENIZER_TRAIN_H
#define CNET_TOKENIZER_TRAIN_H

#include <stdint.h>

#include "engine/core/error.h"

/* Most merges tokenizer_train_write learns. */
#define TOKENIZER_TRAIN_MAX_MERGES 16384

/* Writes dir/{vocab.json, merges.txt, tokenizer_config.json,
 * special_tokens_map.json} (dir must exist) with at most max_merges merges
 * learned from text; *vocab_size gets the vocabulary's size, the
 * text encoder's vocab_size. */
int tokenizer_train_write(const char *dir, const char *text, int max_merges, int64_t *vocab_size,
                          cnet_error *err);

#endif
