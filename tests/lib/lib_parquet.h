/* Parquet files for tests, written by the independent writer
 * (tests/tools/parquet_writer: apache-arrow + parquet-wasm, run with node),
 * and the truth it writes next to them. */
#ifndef CNET_TEST_LIB_PARQUET_H
#define CNET_TEST_LIB_PARQUET_H

#include <stddef.h>
#include <stdint.h>

/* Runs `generate.sh mode dir` (mode "matrix", "dataset" or "fill50k"); 0 ok, else
 * prints why (node or the npm packages missing) and returns -1. */
int parquet_generate(const char *mode, const char *dir);
/* Decodes a hex string into a malloc'd buffer of *n bytes; NULL if malformed. */
uint8_t *parquet_unhex(const char *hex, size_t *n);

#endif
