/* The Unicode character data the tokenizer needs, as sorted C tables in
 * engine/text/unicode_tables.c (generated; its opening comment says how). Read
 * through engine/text/unicode.h, not directly. */
#ifndef CNET_UNICODE_TABLES_H
#define CNET_UNICODE_TABLES_H

#include <stdint.h>

/* A property value that holds from `start` up to the next run's start. */
typedef struct uni_run {
    uint32_t start;
    uint8_t value;
} uni_run;

typedef struct uni_pair {
    uint32_t from, to;
} uni_pair;

/* Decomposition (cp -> a b, b = 0 for a singleton) or composition (a b -> cp). */
typedef struct uni_triple {
    uint32_t a, b, c;
} uni_triple;

typedef struct uni_lower_long {
    uint32_t from;
    int n;
    uint32_t to[3];
} uni_lower_long;

/* Bits of uni_flag_runs values (see unicode.h for their meaning). */
enum {
    UNI_F_OTHER = 1,    /* general category C* (Cc, Cf, Cs, Co, Cn) */
    UNI_F_ZS = 2,       /* general category Zs */
    UNI_F_LETTER = 4,   /* general category L* */
    UNI_F_NUMBER = 8,   /* general category N* */
    UNI_F_SPACE = 16,   /* Python str.isspace() */
    UNI_F_CASED = 32,   /* Cased and not Case_Ignorable */
    UNI_F_CASE_IGN = 64 /* Case_Ignorable */
};

extern const uni_run uni_flag_runs[]; /* over all of U+0000..U+10FFFF */
extern const int uni_flag_runs_count;
extern const uni_run uni_ccc_runs[]; /* canonical combining class */
extern const int uni_ccc_runs_count;
extern const uni_pair uni_lower_single[]; /* by from; one-code-point lower-case */
extern const int uni_lower_single_count;
extern const uni_lower_long uni_lower_multi[]; /* by from; longer lower-case */
extern const int uni_lower_multi_count;
extern const uni_triple uni_decompositions[]; /* by a (= the composite); no Hangul */
extern const int uni_decompositions_count;
extern const uni_triple uni_compositions[]; /* by (a, b); primary composites only */
extern const int uni_compositions_count;

#endif
