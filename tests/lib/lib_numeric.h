/* Numeric helpers shared by the op tests: deterministic random inputs,
 * float<->double copies and error measures.
 *
 * rel_err(a, ref) = max|a - ref| / max(max|ref|, 1e-30): a norm-wise relative
 * error, meaningful also where individual reference values are near zero. */
#ifndef CNET_TEST_NUMERIC_H
#define CNET_TEST_NUMERIC_H

#include <stddef.h>
#include <stdint.h>

/* Uniform floats in [lo, hi) from a fixed-seed generator (splitmix64). */
void fill_uniform(float *x, size_t n, float lo, float hi, uint64_t *state);
/* Owned arrays (free with free()). */
float *alloc_uniform(size_t n, float lo, float hi, uint64_t *state);
double *to_double(const float *x, size_t n);
float *to_float(const double *x, size_t n);

double max_abs_diff_fd(const float *a, const double *ref, size_t n);
double max_abs_d(const double *x, size_t n);
double rel_err_fd(const float *a, const double *ref, size_t n);
double rel_err_dd(const double *a, const double *ref, size_t n);
/* Normalised mean squared error sum (a-ref)^2 / sum ref^2. */
double nmse_fd(const float *a, const double *ref, size_t n);

#endif
