/* See lib_gradcheck.h. */
#include "tests/lib/lib_gradcheck.h"

void fd_gradient(double *grad, double *x, size_t n, fd_loss_fn f, void *ctx, double h) {
    for (size_t i = 0; i < n; i++) {
        const double x0 = x[i];
        x[i] = x0 + h;
        const double fp = f(ctx);
        x[i] = x0 - h;
        const double fm = f(ctx);
        x[i] = x0;
        grad[i] = (fp - fm) / (2 * h);
    }
}

double dot_d(const double *a, const double *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}
