/* Unicode for the tokenizer: strict UTF-8 decoding, the character
 * properties CLIP's text cleanup and pre-tokenizer regex look at, Python's
 * str.lower() and NFC normalisation.
 *
 * The data comes from engine/text/unicode_tables.c, generated from CPython 3.11's
 * unicodedata (Unicode 14.0.0), the Python that produced the goldens; the
 * algorithms follow the Unicode standard (UAX #15 for NFC, SpecialCasing's
 * Final_Sigma as CPython implements it). Not a general Unicode library: no
 * NFD/NFKC output, no upper/title case, no grapheme or word breaking. */
#ifndef CNET_UNICODE_H
#define CNET_UNICODE_H

#include <stddef.h>
#include <stdint.h>

#include "engine/core/error.h"
#include "engine/text/unicode_tables.h"

#define UNI_MAX_CP 0x10FFFFu
/* A code point lower-cases to at most this many (U+0130 -> i + U+0307). */
#define UNI_LOWER_MAX 2
/* A code point decomposes canonically to at most this many. */
#define UNI_DECOMP_MAX 4

/* UNI_F_* bits of cp (unicode_tables.h). */
unsigned uni_flags(uint32_t cp);

/* Decodes len bytes of UTF-8 into out (room for len code points) and sets
 * *n. Refuses overlong forms, surrogates, values past U+10FFFF, stray
 * continuation bytes and truncated sequences with CNET_EINVAL naming the
 * byte offset. */
int uni_utf8_decode(const char *s, size_t len, uint32_t *out, size_t *n, cnet_error *err);
/* Writes 1..4 bytes for cp (<= U+10FFFF, not a surrogate); returns the count. */
int uni_utf8_encode(uint32_t cp, char *out);

/* Python's str.lower() of in[0..n) into out (room for UNI_LOWER_MAX * n);
 * returns the output length. Capital sigma becomes final sigma by CPython's
 * Final_Sigma context rule over the whole input. */
size_t uni_lower(const uint32_t *in, size_t n, uint32_t *out);

/* unicodedata.normalize('NFC', in[0..n)) into out (room for
 * UNI_DECOMP_MAX * n); returns the output length. */
size_t uni_nfc(const uint32_t *in, size_t n, uint32_t *out);

#endif
