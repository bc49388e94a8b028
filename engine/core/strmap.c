/* strmap: linear probing over a power-of-two slot array, FNV-1a hashing,
 * grown at 50% load. See strmap.h. */
#include "engine/core/strmap.h"

#include <stdlib.h>
#include <string.h>

#include "engine/core/error.h"

/* The first slot array; grows by doubling. */
#define STRMAP_MIN_SLOTS 64

static uint64_t strmap_hash(const char *key, size_t len) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)key[i]) * 1099511628211ull;
    return h;
}

void strmap_free(strmap *m) {
    free(m->slots);
    free(m->entries);
    free(m->keys);
    memset(m, 0, sizeof *m);
}

void strmap_clear(strmap *m) {
    if (m->slots) memset(m->slots, 0, m->n_slots * sizeof *m->slots);
    m->n = 0;
    m->keys_len = 0;
}

/* Slot holding key, or the empty slot where it would go. */
static size_t strmap_find(const strmap *m, const char *key, size_t len, uint64_t h) {
    size_t mask = m->n_slots - 1, i = (size_t)h & mask;
    for (;;) {
        uint32_t s = m->slots[i];
        if (s == 0) return i;
        const strmap_entry *e = &m->entries[s - 1];
        if (e->hash == h && e->key_len == len && memcmp(m->keys + e->key_off, key, len) == 0)
            return i;
        i = (i + 1) & mask;
    }
}

static int strmap_grow(strmap *m) {
    size_t n_slots = m->n_slots ? m->n_slots * 2 : STRMAP_MIN_SLOTS;
    uint32_t *slots = calloc(n_slots, sizeof *slots);
    if (!slots) return CNET_ENOMEM;
    free(m->slots);
    m->slots = slots;
    m->n_slots = n_slots;
    for (size_t k = 0; k < m->n; k++) {
        size_t i = (size_t)m->entries[k].hash & (n_slots - 1);
        while (slots[i]) i = (i + 1) & (n_slots - 1);
        slots[i] = (uint32_t)(k + 1);
    }
    return 0;
}

int strmap_put(strmap *m, const char *key, size_t len, int64_t value) {
    if ((m->n + 1) * 2 > m->n_slots && strmap_grow(m)) return CNET_ENOMEM;
    if (m->n >= UINT32_MAX - 1) return CNET_ENOMEM;
    uint64_t h = strmap_hash(key, len);
    size_t i = strmap_find(m, key, len, h);
    if (m->slots[i]) {
        m->entries[m->slots[i] - 1].value = value;
        return 0;
    }
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : STRMAP_MIN_SLOTS;
        strmap_entry *e = realloc(m->entries, cap * sizeof *e);
        if (!e) return CNET_ENOMEM;
        m->entries = e;
        m->cap = cap;
    }
    if (m->keys_len + len + 1 > m->keys_cap) {
        size_t cap = m->keys_cap ? m->keys_cap : 1024;
        while (cap < m->keys_len + len + 1) cap *= 2;
        char *k = realloc(m->keys, cap);
        if (!k) return CNET_ENOMEM;
        m->keys = k;
        m->keys_cap = cap;
    }
    memcpy(m->keys + m->keys_len, key, len);
    m->keys[m->keys_len + len] = '\0';
    m->entries[m->n] = (strmap_entry){m->keys_len, len, h, value};
    m->keys_len += len + 1;
    m->slots[i] = (uint32_t)(++m->n);
    return 0;
}

int strmap_get(const strmap *m, const char *key, size_t len, int64_t *value) {
    if (m->n == 0) return 0;
    uint64_t h = strmap_hash(key, len);
    uint32_t s = m->slots[strmap_find(m, key, len, h)];
    if (!s) return 0;
    *value = m->entries[s - 1].value;
    return 1;
}
