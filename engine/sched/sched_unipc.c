/* UniPCMultistepScheduler (diffusers v0.27.2, scheduling_unipc_multistep.py)
 * with solver_order 1 or 2: the UniP predictor and UniC corrector of Zhao et
 * al. 2023 (bh1 or bh2, x0 or noise prediction, lower_order_final,
 * disable_corrector, Karras sigmas). Each step first corrects the previous
 * prediction with the new model output, then predicts the next sample; the
 * converted model outputs of the last steps are the history. Not
 * implemented: order 3+ (a general linear solve), thresholding, solver_p. */
#include <math.h>

#include "engine/sched/sched_internal.h"

/* history ring of solver_order + 1 converted outputs (the corrector needs
 * the new one and solver_order old ones), then the last sample and a
 * difference buffer */
enum { UNIPC_RING = SCHED_MAX_ORDER + 1, BUF_LAST = UNIPC_RING, BUF_DIFF, UNIPC_BUFFERS };

int sched_unipc_buffers(void) { return UNIPC_BUFFERS; }

void sched_unipc_set_timesteps(sched *s, int n) {
    const cnet_sched_config *cfg = &s->cfg;
    const int T = cfg->num_train_timesteps;
    double *v = s->work;
    int m = n;
    float sigma_last;
    if (cfg->use_karras_sigmas) {
        sched_karras_multistep(s->timesteps, v, s, n);
        sigma_last = (float)v[n - 1];
    } else {
        m = sched_timesteps_multistep(s->timesteps, v, cfg, n, T);
        for (int k = 0; k < m; k++) v[k] = sched_np_interp(s->timesteps[k], s->train_sigmas, T);
        sigma_last = s->train_sigmas[0];
    }
    for (int k = 0; k < m; k++) s->sigmas[k] = (float)v[k];
    s->sigmas[m] = sigma_last;
    s->num_steps = m;
    s->num_sigmas = m + 1;
}

static float *ring(sched *s, int step) { return s->buf[step % UNIPC_RING]; }

/* torch.linalg.solve([[1, 1], [rk, 1]], b) in float32 as LAPACK does it:
 * sgetrf (partial pivoting; the pivot column scaled by the pivot's
 * reciprocal), then sgetrs (unit-lower, then upper triangular solve). */
static void solve_2x2(float rk, const float b[2], float x[2]) {
    float a00 = 1.0f, a01 = 1.0f, a10 = rk, a11 = 1.0f, y0 = b[0], y1 = b[1];
    if (fabsf(a10) > fabsf(a00)) {
        float t;
        t = a00, a00 = a10, a10 = t;
        t = a01, a01 = a11, a11 = t;
        t = y0, y0 = y1, y1 = t;
    }
    const float l10 = a10 * (1.0f / a00);
    const float u11 = a11 + (-a01) * l10;
    y1 = y1 - y0 * l10;
    x[1] = y1 / u11;
    x[0] = (y0 - x[1] * a01) / a00;
}

/* The scalar part of a UniP/UniC update from sigma_s0 to sigma_t:
 * x_t = cx * x + cm * m0 + k * (sum of rho-weighted differences). */
typedef struct unipc_coeffs {
    float cx, cm, k;
    float h, hh, b_h; /* h = lambda_t - lambda_s0; hh = -h for x0 prediction */
} unipc_coeffs;

static unipc_coeffs coeffs(const sched *s, const sched_point *pt, const sched_point *ps0) {
    unipc_coeffs c;
    c.h = pt->lambda - ps0->lambda;
    c.hh = s->cfg.predict_x0 ? -c.h : c.h;
    const float h_phi_1 = expm1f(c.hh);
    c.b_h = s->cfg.solver_type == CNET_SOLVER_BH1 ? c.hh : expm1f(c.hh);
    if (s->cfg.predict_x0) {
        c.cx = pt->sigma / ps0->sigma;
        c.cm = -(pt->alpha * h_phi_1);
        c.k = -(pt->alpha * c.b_h);
    } else {
        c.cx = pt->alpha / ps0->alpha;
        c.cm = -(pt->sigma * h_phi_1);
        c.k = -(pt->sigma * c.b_h);
    }
    return c;
}

/* multistep_uni_c_bh_update: corrects the sample of step i-1's prediction
 * (the last-sample buffer, in place) with this step's converted output. */
static void corrector(sched *s, const float *model_t, int i, int order, long n) {
    cnet_backend *be = s->be;
    float *x = s->buf[BUF_LAST], *diff = s->buf[BUF_DIFF];
    const float *m0 = ring(s, i - 1);
    const sched_point pt = sched_point_of(s->sigmas[i]), ps0 = sched_point_of(s->sigmas[i - 1]);
    const unipc_coeffs c = coeffs(s, &pt, &ps0);
    float rho[2] = {0.5f, 0.5f}, rk = 1.0f; /* order 1: rhos_c = [0.5] */
    if (order == 2) {
        const sched_point psi = sched_point_of(s->sigmas[i - 2]);
        rk = (psi.lambda - ps0.lambda) / c.h;
        /* b_k = h_phi_k * k! / B_h with h_phi_1 = expm1(hh)/hh - 1,
         * h_phi_2 = h_phi_1/hh - 1/2 */
        float h_phi_k = expm1f(c.hh) / c.hh - 1.0f;
        float b[2];
        b[0] = h_phi_k * 1.0f / c.b_h;
        h_phi_k = h_phi_k / c.hh - 0.5f;
        b[1] = h_phi_k * 2.0f / c.b_h;
        solve_2x2(rk, b, rho);
    }
    be->axpby(be, x, c.cx, x, c.cm, m0, n);
    be->axpby(be, diff, 1.0f, model_t, -1.0f, m0, n); /* D1_t */
    be->axpy(be, x, (float)((double)c.k * (double)rho[order == 2 ? 1 : 0]), diff, n);
    if (order == 2) {
        be->axpby(be, diff, 1.0f, ring(s, i - 2), -1.0f, m0, n); /* D1 * rk */
        be->axpy(be, x, (float)((double)c.k * (double)rho[0] / (double)rk), diff, n);
    }
}

/* multistep_uni_p_bh_update: predicts the sample at sigmas[i+1] from the
 * last-sample buffer and the history (rhos_p = [0.5] at order 2). */
static void predictor(sched *s, float *prev, int i, int order, long n) {
    cnet_backend *be = s->be;
    const float *x = s->buf[BUF_LAST], *m0 = ring(s, i);
    const sched_point pt = sched_point_of(s->sigmas[i + 1]), ps0 = sched_point_of(s->sigmas[i]);
    const unipc_coeffs c = coeffs(s, &pt, &ps0);
    be->axpby(be, prev, c.cx, x, c.cm, m0, n);
    if (order == 2) {
        const sched_point psi = sched_point_of(s->sigmas[i - 1]);
        const float rk = (psi.lambda - ps0.lambda) / c.h;
        float *diff = s->buf[BUF_DIFF];
        be->axpby(be, diff, 1.0f, ring(s, i - 1), -1.0f, m0, n); /* D1 * rk */
        be->axpy(be, prev, (float)((double)c.k * 0.5 / (double)rk), diff, n);
    }
}

void sched_unipc_step(sched *s, float *prev, const float *model_output, const float *sample, int i,
                      long n) {
    cnet_backend *be = s->be;
    const cnet_sched_config *cfg = &s->cfg;
    int use_corrector = i > 0 && s->have_last;
    for (int k = 0; k < cfg->n_disable_corrector; k++)
        if (cfg->disable_corrector[k] == i - 1) use_corrector = 0;

    /* convert_model_output at sigmas[i], from the uncorrected sample */
    float *mt = ring(s, i);
    const sched_point p = sched_point_of(s->sigmas[i]);
    const cnet_prediction_type pred = cfg->prediction_type;
    if (cfg->predict_x0) {
        if (pred == CNET_PRED_EPSILON)
            be->axpby(be, mt, 1.0f / p.alpha, sample, -p.sigma / p.alpha, model_output, n);
        else if (pred == CNET_PRED_V)
            be->axpby(be, mt, p.alpha, sample, -p.sigma, model_output, n);
        else
            be->copy(be, mt, model_output, (size_t)n * sizeof(float));
    } else {
        if (pred == CNET_PRED_EPSILON)
            be->copy(be, mt, model_output, (size_t)n * sizeof(float));
        else if (pred == CNET_PRED_V)
            be->axpby(be, mt, p.alpha, model_output, p.sigma, sample, n);
        else
            be->axpby(be, mt, 1.0f / p.sigma, sample, -p.alpha / p.sigma, model_output, n);
    }

    if (use_corrector)
        corrector(s, mt, i, s->this_order, n);
    else
        be->copy(be, s->buf[BUF_LAST], sample, (size_t)n * sizeof(float));

    int order = cfg->solver_order;
    if (cfg->lower_order_final && s->num_steps - i < order) order = s->num_steps - i;
    if (order > s->lower_order_nums + 1) order = s->lower_order_nums + 1;
    s->this_order = order;
    s->have_last = 1;
    predictor(s, prev, i, order, n);
    if (s->lower_order_nums < cfg->solver_order) s->lower_order_nums++;
}
