/* Memory of one test case: every buffer a test allocates through these
 * helpers is freed together by cm_free_all(), so a CHECK that returns early
 * leaks nothing (AddressSanitizer's leak check stays quiet). Allocation
 * failure aborts: tests have no way to continue without their inputs. */
#ifndef CNET_TEST_CASEMEM_H
#define CNET_TEST_CASEMEM_H

#include <stddef.h>
#include <stdint.h>

float *cm_uniform(size_t n, float lo, float hi, uint64_t *state); /* uniform floats */
float *cm_fill(size_t n, float value);                            /* n copies of value */
double *cm_double(const float *x, size_t n);                      /* a double copy */
double *cm_dzeros(size_t n);
void *cm_alloc(size_t bytes);
void cm_free_all(void);

#endif
