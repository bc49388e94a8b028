/* CLIP text cleanup and pre-tokenisation, code point by code point.
 *
 * Follows transformers v4.38 models/clip/tokenization_clip.py on the path it
 * takes without ftfy: BasicTokenizer (models/bert) with strip_accents=False
 * and do_split_on_punc=False, then re.findall of the CLIP pattern. The
 * character classes are Python's (engine/text/unicode.h). Not the ftfy path
 * (ftfy.fix_text + whitespace_clean), which gives different ids for CJK. */
#include <stdlib.h>
#include <string.h>

#include "engine/text/tokenizer_impl.h"
#include "engine/text/unicode.h"

/* The bytes bytes_to_unicode() maps to themselves: '!'..'~', U+00A1..U+00AC,
 * U+00AE..U+00FF. */
static int byte_is_printable(unsigned b) {
    return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

uint32_t tok_byte_to_unicode(unsigned b) {
    if (byte_is_printable(b)) return b;
    uint32_t before = 0;
    for (unsigned x = 0; x < b; x++) before += !byte_is_printable(x);
    return 256 + before;
}

/* BasicTokenizer._is_chinese_char: the CJK blocks it puts spaces around. */
static int is_cjk(uint32_t cp) {
    return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
           (cp >= 0x20000 && cp <= 0x2A6DF) || (cp >= 0x2A700 && cp <= 0x2B73F) ||
           (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B820 && cp <= 0x2CEAF) ||
           (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

static int is_tab_nl_cr(uint32_t cp) { return cp == '\t' || cp == '\n' || cp == '\r'; }

int tok_clean(const uint32_t *in, size_t n, uint32_t **out, size_t *out_n, cnet_error *err) {
    uint32_t *a = malloc((3 * n + 1) * sizeof *a); /* 3x: spaces around CJK */
    if (!a)
        return cnet_fail(err, CNET_ENOMEM, "tokenizer: out of memory cleaning %zu characters", n);
    /* _clean_text: drop NUL, U+FFFD and control/format/unassigned (category
     * C*, except tab, newline, return); whitespace (those three, space, Zs)
     * becomes a space. Then _tokenize_chinese_chars. */
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t cp = in[i];
        unsigned f = uni_flags(cp);
        if (cp == 0 || cp == 0xFFFD || ((f & UNI_F_OTHER) && !is_tab_nl_cr(cp))) continue;
        if (cp == ' ' || is_tab_nl_cr(cp) || (f & UNI_F_ZS)) {
            a[k++] = ' ';
        } else if (is_cjk(cp)) {
            a[k++] = ' ';
            a[k++] = cp;
            a[k++] = ' ';
        } else {
            a[k++] = cp;
        }
    }
    uint32_t *b = malloc((UNI_DECOMP_MAX * k + 1) * sizeof *b);
    if (!b) {
        free(a);
        return cnet_fail(err, CNET_ENOMEM, "tokenizer: out of memory cleaning %zu characters", n);
    }
    size_t m = uni_nfc(a, k, b);
    free(a);
    uint32_t *c = malloc((UNI_LOWER_MAX * m + 1) * sizeof *c);
    if (!c) {
        free(b);
        return cnet_fail(err, CNET_ENOMEM, "tokenizer: out of memory cleaning %zu characters", n);
    }
    /* whitespace_tokenize (str.split()), each token lower-cased on its own
     * (Final_Sigma looks only inside the token), joined by one space. The
     * second whitespace_tokenize of BasicTokenizer changes nothing: no
     * character lower-cases to whitespace. */
    size_t o = 0;
    for (size_t i = 0; i < m;) {
        if (uni_flags(b[i]) & UNI_F_SPACE) {
            i++;
            continue;
        }
        size_t j = i;
        while (j < m && !(uni_flags(b[j]) & UNI_F_SPACE)) j++;
        if (o) c[o++] = ' ';
        o += uni_lower(b + i, j - i, c + o);
        i = j;
    }
    free(b);
    *out = c;
    *out_n = o;
    return 0;
}

/* The pattern's literals under re.IGNORECASE: a pattern letter matches
 * itself, its upper case, and for 's' also U+017F LATIN SMALL LETTER LONG S
 * (the only other code point the regex module folds onto one of them;
 * checked over all code points). */
static int fold_eq(uint32_t cp, char lit) {
    if (cp == (uint32_t)lit) return 1;
    if (lit >= 'a' && lit <= 'z' && cp == (uint32_t)(lit - 'a' + 'A')) return 1;
    return lit == 's' && cp == 0x17F;
}

static size_t match_literal(const uint32_t *in, size_t n, const char *lit) {
    size_t len = strlen(lit);
    if (len > n) return 0;
    for (size_t i = 0; i < len; i++)
        if (!fold_eq(in[i], lit[i])) return 0;
    return len;
}

static int is_letter(uint32_t cp) { return (uni_flags(cp) & UNI_F_LETTER) != 0; }
static int is_number(uint32_t cp) { return (uni_flags(cp) & UNI_F_NUMBER) != 0; }

/* [^\s\p{L}\p{N}] under re.IGNORECASE. The regex module's \s is
 * str.isspace() without U+001C..U+001F. U+0345 COMBINING GREEK
 * YPOGEGRAMMENI is excluded because it case-folds to a letter (iota), so
 * with IGNORECASE it falls outside the negated class, and being no letter
 * itself it matches no branch at all. */
static int is_other(uint32_t cp) {
    unsigned f = uni_flags(cp);
    int space = (f & UNI_F_SPACE) && !(cp >= 0x1C && cp <= 0x1F);
    return !space && !(f & (UNI_F_LETTER | UNI_F_NUMBER)) && cp != 0x345;
}

/* The alternatives in pattern order; the first that matches wins. */
static size_t match_at(const uint32_t *in, size_t n) {
    static const char *const literals[] = {
        "<|startoftext|>", "<|endoftext|>", "'s", "'t", "'re", "'ve", "'m", "'ll", "'d"};
    for (size_t i = 0; i < sizeof literals / sizeof literals[0]; i++) {
        size_t len = match_literal(in, n, literals[i]);
        if (len) return len;
    }
    size_t len = 0;
    while (len < n && is_letter(in[len])) len++;
    if (len) return len;
    if (is_number(in[0])) return 1;
    while (len < n && is_other(in[len])) len++;
    return len;
}

size_t tok_split(const uint32_t *in, size_t n, tok_span *spans) {
    size_t count = 0;
    for (size_t i = 0; i < n;) {
        size_t len = match_at(in + i, n - i);
        if (len == 0) {
            i++;
            continue;
        }
        spans[count++] = (tok_span){i, len};
        i += len;
    }
    return count;
}
