/* Gradient checking helpers for the op tests: central finite differences of
 * a scalar loss, and the loss sum(dout * out) that turns an op's output into
 * one number so its vector-Jacobian product can be checked.
 *
 * fd_gradient perturbs x in place (and restores it); the loss callback reads
 * x through its own context, so any op's reference forward can be wrapped. */
#ifndef CNET_TEST_GRADCHECK_H
#define CNET_TEST_GRADCHECK_H

#include <stddef.h>

/* Step for double-precision central differences on O(1) inputs: truncation
 * error ~ h^2 and rounding error ~ 1e-16/h are both far below 1e-6. */
#define FD_STEP 1e-5

typedef double (*fd_loss_fn)(void *ctx);

/* grad[i] = (f(x + h e_i) - f(x - h e_i)) / (2h) for i < n. */
void fd_gradient(double *grad, double *x, size_t n, fd_loss_fn f, void *ctx, double h);

/* sum_i a[i] * b[i]. */
double dot_d(const double *a, const double *b, size_t n);

#endif
