/* strmap: an open-addressing hash map from byte strings to int64 values.
 *
 * Used by the tokenizer for its vocabulary, its merge ranks, its added
 * tokens and its BPE cache: hundreds of thousands of short keys, built once,
 * then only looked up. Keys are copied into one growing buffer the map owns;
 * values are plain integers. Deliberately minimal: no deletion (strmap_clear
 * forgets everything at once), no iteration, not thread-safe. */
#ifndef CNET_STRMAP_H
#define CNET_STRMAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct strmap_entry {
    size_t key_off; /* into strmap.keys */
    size_t key_len;
    uint64_t hash;
    int64_t value;
} strmap_entry;

typedef struct strmap {
    uint32_t *slots; /* 0 = empty, else entry index + 1; capacity a power of two */
    size_t n_slots;
    strmap_entry *entries;
    size_t n, cap;
    char *keys;
    size_t keys_len, keys_cap;
} strmap;

/* A zeroed strmap is a valid empty map. */
void strmap_free(strmap *m);
/* Forgets every key; keeps the memory for reuse. */
void strmap_clear(strmap *m);
/* Inserts or overwrites key -> value. Returns 0, or CNET_ENOMEM. */
int strmap_put(strmap *m, const char *key, size_t len, int64_t value);
/* 1 and *value set when key is present, else 0. */
int strmap_get(const strmap *m, const char *key, size_t len, int64_t *value);

#endif
