/* Parquet test files from the independent writer (see lib_parquet.h). */
#include "tests/lib/lib_parquet.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int parquet_generate(const char *mode, const char *dir) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "sh tests/tools/parquet_writer/generate.sh %s '%s'", mode, dir);
    int rc = system(cmd);
    if (rc != 0) {
        printf("    parquet writer failed (%s, exit %d)\n", cmd, rc);
        return -1;
    }
    return 0;
}

static int nibble(char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

uint8_t *parquet_unhex(const char *hex, size_t *n) {
    size_t len = strlen(hex);
    if (len % 2) return NULL;
    uint8_t *out = malloc(len / 2 + 1);
    if (!out) return NULL;
    for (size_t i = 0; i < len / 2; i++) {
        int hi = nibble(hex[2 * i]), lo = nibble(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            free(out);
            return NULL;
        }
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    *n = len / 2;
    return out;
}
