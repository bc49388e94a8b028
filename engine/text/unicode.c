/* Unicode for the tokenizer: table lookups by binary search, UTF-8, CPython's
 * str.lower() and NFC (UAX #15: full canonical decomposition, canonical
 * ordering, canonical composition). See unicode.h. */
#include "engine/text/unicode.h"

/* Hangul syllables are decomposed and composed arithmetically (Unicode
 * chapter 3.12). */
#define HANGUL_S_BASE 0xAC00u
#define HANGUL_L_BASE 0x1100u
#define HANGUL_V_BASE 0x1161u
#define HANGUL_T_BASE 0x11A7u
#define HANGUL_L_COUNT 19u
#define HANGUL_V_COUNT 21u
#define HANGUL_T_COUNT 28u
#define HANGUL_N_COUNT (HANGUL_V_COUNT * HANGUL_T_COUNT)
#define HANGUL_S_COUNT (HANGUL_L_COUNT * HANGUL_N_COUNT)

#define CAPITAL_SIGMA 0x3A3u
#define FINAL_SIGMA 0x3C2u

static int run_value(const uni_run *runs, int count, uint32_t cp) {
    int lo = 0, hi = count - 1; /* runs[0].start == 0 */
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (runs[mid].start <= cp)
            lo = mid;
        else
            hi = mid - 1;
    }
    return runs[lo].value;
}

unsigned uni_flags(uint32_t cp) {
    if (cp > UNI_MAX_CP) return UNI_F_OTHER;
    return (unsigned)run_value(uni_flag_runs, uni_flag_runs_count, cp);
}

/* The canonical combining class of cp (0 for a starter). */
static int uni_ccc(uint32_t cp) {
    if (cp > UNI_MAX_CP) return 0;
    return run_value(uni_ccc_runs, uni_ccc_runs_count, cp);
}

int uni_utf8_decode(const char *s, size_t len, uint32_t *out, size_t *n, cnet_error *err) {
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, k = 0;
    while (i < len) {
        unsigned b = p[i];
        uint32_t cp, min;
        int extra;
        if (b < 0x80)
            cp = b, extra = 0, min = 0;
        else if ((b & 0xE0) == 0xC0)
            cp = b & 0x1F, extra = 1, min = 0x80;
        else if ((b & 0xF0) == 0xE0)
            cp = b & 0x0F, extra = 2, min = 0x800;
        else if ((b & 0xF8) == 0xF0)
            cp = b & 0x07, extra = 3, min = 0x10000;
        else
            return cnet_fail(err, CNET_EINVAL, "invalid UTF-8 at byte offset %zu (byte 0x%02X)", i,
                             b);
        if (len - i <= (size_t)extra)
            return cnet_fail(err, CNET_EINVAL,
                             "invalid UTF-8 at byte offset %zu: sequence truncated by the end", i);
        for (int j = 1; j <= extra; j++) {
            if ((p[i + j] & 0xC0) != 0x80)
                return cnet_fail(err, CNET_EINVAL,
                                 "invalid UTF-8 at byte offset %zu (byte 0x%02X, expected a "
                                 "continuation byte)",
                                 i + j, p[i + j]);
            cp = (cp << 6) | (p[i + j] & 0x3F);
        }
        if (cp < min || cp > UNI_MAX_CP || (cp >= 0xD800 && cp <= 0xDFFF))
            return cnet_fail(err, CNET_EINVAL,
                             "invalid UTF-8 at byte offset %zu: overlong, surrogate or beyond "
                             "U+10FFFF (U+%04X)",
                             i, cp);
        out[k++] = cp;
        i += (size_t)extra + 1;
    }
    *n = k;
    return 0;
}

int uni_utf8_encode(uint32_t cp, char *out) {
    unsigned char *o = (unsigned char *)out;
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xC0 | (cp >> 6));
        o[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Index of the table row whose first field is key, or -1. */
static int find_pair(const uni_pair *t, int count, uint32_t key) {
    int lo = 0, hi = count - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (t[mid].from == key) return mid;
        if (t[mid].from < key)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -1;
}

/* CPython's Final_Sigma test for the capital sigma at in[i]: preceded by a
 * cased letter (skipping case-ignorables) and not followed by one. */
static int is_final_sigma(const uint32_t *in, size_t n, size_t i) {
    size_t j = i;
    unsigned f = 0;
    while (j > 0) {
        f = uni_flags(in[--j]);
        if (!(f & UNI_F_CASE_IGN)) break;
    }
    if (!(f & UNI_F_CASED) || (f & UNI_F_CASE_IGN)) return 0;
    for (j = i + 1; j < n; j++) {
        f = uni_flags(in[j]);
        if (!(f & UNI_F_CASE_IGN)) return !(f & UNI_F_CASED);
    }
    return 1;
}

size_t uni_lower(const uint32_t *in, size_t n, uint32_t *out) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t cp = in[i];
        if (cp == CAPITAL_SIGMA && is_final_sigma(in, n, i)) {
            out[k++] = FINAL_SIGMA;
            continue;
        }
        int r = find_pair(uni_lower_single, uni_lower_single_count, cp);
        if (r >= 0) {
            out[k++] = uni_lower_single[r].to;
            continue;
        }
        int m = -1;
        for (int j = 0; j < uni_lower_multi_count; j++)
            if (uni_lower_multi[j].from == cp) m = j;
        if (m < 0) {
            out[k++] = cp;
            continue;
        }
        for (int j = 0; j < uni_lower_multi[m].n; j++) out[k++] = uni_lower_multi[m].to[j];
    }
    return k;
}

/* Appends the full canonical decomposition of cp to out; returns the count. */
static size_t decompose(uint32_t cp, uint32_t *out) {
    if (cp >= HANGUL_S_BASE && cp < HANGUL_S_BASE + HANGUL_S_COUNT) {
        uint32_t s = cp - HANGUL_S_BASE;
        size_t k = 0;
        out[k++] = HANGUL_L_BASE + s / HANGUL_N_COUNT;
        out[k++] = HANGUL_V_BASE + (s % HANGUL_N_COUNT) / HANGUL_T_COUNT;
        if (s % HANGUL_T_COUNT) out[k++] = HANGUL_T_BASE + s % HANGUL_T_COUNT;
        return k;
    }
    int lo = 0, hi = uni_decompositions_count - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        const uni_triple *d = &uni_decompositions[mid];
        if (d->a == cp) {
            size_t k = decompose(d->b, out);
            if (d->c) k += decompose(d->c, out + k);
            return k;
        }
        if (d->a < cp)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    out[0] = cp;
    return 1;
}

/* The primary composite of (a, b), or 0 when there is none. */
static uint32_t compose(uint32_t a, uint32_t b) {
    if (a >= HANGUL_L_BASE && a < HANGUL_L_BASE + HANGUL_L_COUNT && b >= HANGUL_V_BASE &&
        b < HANGUL_V_BASE + HANGUL_V_COUNT)
        return HANGUL_S_BASE +
               ((a - HANGUL_L_BASE) * HANGUL_V_COUNT + (b - HANGUL_V_BASE)) * HANGUL_T_COUNT;
    if (a >= HANGUL_S_BASE && a < HANGUL_S_BASE + HANGUL_S_COUNT &&
        (a - HANGUL_S_BASE) % HANGUL_T_COUNT == 0 && b > HANGUL_T_BASE &&
        b < HANGUL_T_BASE + HANGUL_T_COUNT)
        return a + (b - HANGUL_T_BASE);
    int lo = 0, hi = uni_compositions_count - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        const uni_triple *t = &uni_compositions[mid];
        if (t->a == a && t->b == b) return t->c;
        if (t->a < a || (t->a == a && t->b < b))
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return 0;
}

size_t uni_nfc(const uint32_t *in, size_t n, uint32_t *out) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += decompose(in[i], out + k);
    /* Canonical ordering: a non-starter moves left past non-starters of a
     * higher class (a stable insertion sort within each run). */
    for (size_t i = 1; i < k; i++) {
        int c = uni_ccc(out[i]);
        if (c == 0) continue;
        size_t j = i;
        uint32_t cp = out[i];
        while (j > 0 && uni_ccc(out[j - 1]) > c) {
            out[j] = out[j - 1];
            j--;
        }
        out[j] = cp;
    }
    if (k == 0) return 0;
    /* Canonical composition: each character joins the last starter unless a
     * character of the same or higher class stands between them. */
    size_t starter = 0, len = 1;
    int last_class = uni_ccc(out[0]) ? 256 : 0;
    for (size_t i = 1; i < k; i++) {
        uint32_t cp = out[i];
        int c = uni_ccc(cp);
        uint32_t composite = compose(out[starter], cp);
        if (composite && (last_class < c || last_class == 0)) {
            out[starter] = composite;
            continue;
        }
        if (c == 0) starter = len;
        last_class = c;
        out[len++] = cp;
    }
    return len;
}
