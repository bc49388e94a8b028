/* train-vae's DiagonalGaussian sample, KL and their gradient
 * (engine/train/train_vae_loss.h): the KL of known Gaussians against the
 * closed form 0.5 (m^2 + s^2 - 1 - ln s^2) per element; the gradient of
 * F = <dz, z> + w KL to every moment against central finite differences
 * of F computed in double here (independent of the code's float path),
 * including log-variances beyond the clamp (-35 and 25), whose gradient is
 * zero, as torch.clamp's backward gives. */
#include <math.h>
#include <string.h>

#include "engine/core/philox.h"
#include "engine/train/train_vae_loss.h"
#include "tests/lib/harness.h"

#define B 2
#define HW 3
#define L 2
#define N (B * HW * L)
#define KL_W 0.3
/* Finite-difference step on O(1) moments, and the allowed difference: the
 * float32 sample and KL seen through F's double sum. */
#define STEP 1e-3
#define TOL 2e-3

/* F in double: z and KL from the moments as the header defines them. */
static double f_ref(const double *mom, const float *eps, const float *dz) {
    double f = 0;
    for (int p = 0; p < B * HW; p++)
        for (int c = 0; c < L; c++) {
            const double m = mom[p * 2 * L + c];
            double lv = mom[p * 2 * L + L + c];
            lv = lv < -30 ? -30 : lv > 20 ? 20 : lv;
            f += dz[p * L + c] * (m + exp(0.5 * lv) * eps[p * L + c]);
            f += KL_W / B * 0.5 * (m * m + exp(lv) - 1 - lv);
        }
    return f;
}

static void test_kl_closed_form(void) {
    /* one sample, one pixel, L = 2: N(0.5, e^0.4) and N(-1, e^-2) */
    const float mom[4] = {0.5f, -1.0f, 0.4f, -2.0f}, eps[2] = {0, 0};
    float z[2];
    const double kl = vae_latent_sample(z, mom, eps, 1, 1, 2);
    const double want = 0.5 * (0.25 + exp(0.4) - 1 - 0.4) + 0.5 * (1 + exp(-2.0) - 1 + 2);
    CHECK(fabs(kl - want) < 1e-6, "KL %.9g, closed form %.9g", kl, want);
    CHECK(z[0] == 0.5f && z[1] == -1.0f, "eps 0 gives the mean (%g, %g)", z[0], z[1]);
}

static void test_gradient_matches_finite_differences(void) {
    float mom[2 * N], eps[N], dz[N], dmom[2 * N];
    philox_normal_fill(mom, 2 * N, 5, 0);
    philox_normal_fill(eps, N, 5, 1 << 10);
    philox_normal_fill(dz, N, 5, 2 << 10);
    mom[L] = -35.0f, mom[2 * L + L + 1] = 25.0f; /* beyond the clamp */
    vae_latent_backward(dmom, mom, eps, dz, KL_W, B, HW, L);
    double md[2 * N];
    int bad = 0;
    for (int i = 0; i < 2 * N; i++) md[i] = mom[i];
    for (int i = 0; i < 2 * N; i++) {
        const double keep = md[i];
        md[i] = keep + STEP;
        const double up = f_ref(md, eps, dz);
        md[i] = keep - STEP;
        const double down = f_ref(md, eps, dz);
        md[i] = keep;
        const double fd = (up - down) / (2 * STEP);
        if (!(fabs(fd - dmom[i]) <= TOL * (1 + fabs(fd))) && bad++ < 5)
            printf("    moment %d: backward %.6g, finite difference %.6g\n", i, dmom[i], fd);
    }
    CHECK(bad == 0, "%d moments' gradients disagree", bad);
    CHECK(dmom[L] == 0.0f && dmom[2 * L + L + 1] == 0.0f,
          "clamped log-variances got gradient %g, %g", dmom[L], dmom[2 * L + L + 1]);
}

int main(int argc, char **argv) {
    harness_init(argc, argv);
    RUN(test_kl_closed_form);
    RUN(test_gradient_matches_finite_differences);
    return harness_done();
}
