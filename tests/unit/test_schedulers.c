/* Schedulers (engine/sched/scheduler.h).
 *
 * Truths: the diffusers v0.27.2 goldens of the fixture directory
 * (goldens/schedulers.safetensors: tables, every step of six trajectories,
 * DDPM training noise; run through server/golden/golden_schedulers.c with the
 * tolerances of tolerances.json); for what the goldens do not cover, the
 * identities between prediction types (an epsilon, v or x0 model output that
 * describe the same x0 must give the same trajectory), a float64 host
 * evaluation of the DDIM formula with eta > 0, the Philox stream drawn
 * explicitly, and in-place vs out-of-place stepping; the img2img start
 * (sched_set_begin_index, sched_add_noise_step; end to end in
 * goldens-img2img) against the untrimmed schedule's tables. Bad configs and
 * misuse must fail with an error naming the problem. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/sched/scheduler.h"
#include "server/golden/golden.h"
#include "tests/lib/harness.h"
#include "tests/lib/lib_fs.h"
#include "tests/lib/lib_numeric.h"

static const char *fixtures(void) { return harness_fixtures(); }

static char tmp[512];
static cnet_backend be;

/* The fixture model's scheduler config read as class `kind`. */
static int model_config(cnet_sched_config *cfg, cnet_sched_kind kind, cnet_error *err) {
    golden_ctx ctx;
    int rc = golden_init(&ctx, fixtures(), err);
    if (rc == 0) {
        char path[PATH_MAX + 64];
        snprintf(path, sizeof path, "%s/scheduler/scheduler_config.json", ctx.model_dir);
        rc = cnet_sched_config_load(cfg, path, (int)kind, err);
    }
    golden_free(&ctx);
    return rc;
}

static void test_golden_schedulers(void) {
    golden_ctx ctx;
    cnet_error err;
    CHECK(golden_init(&ctx, fixtures(), &err) == 0, "%s", err.msg);
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/goldens/schedulers.safetensors", fixtures());
    st_file f;
    if (st_open(&f, path, &err)) {
        golden_free(&ctx);
        CHECK(0, "%s", err.msg);
    }
    ctx.stem = "schedulers";
    int rc = golden_check_schedulers(&ctx, &f, &err);
    st_close(&f);
    int passed = ctx.passed, failed = ctx.failed;
    golden_free(&ctx);
    CHECK(rc == 0, "%s", err.msg);
    CHECK(passed > 0 && failed == 0, "%d golden tensors passed, %d failed", passed, failed);
}

static void test_kind_names(void) {
    for (int k = 0; k < CNET_SCHED_KIND_COUNT; k++)
        EXPECT(sched_kind_from_short(sched_kind_short((cnet_sched_kind)k)) == k, "kind %d", k);
    EXPECT(sched_kind_from_short("dpmpp_2m") == CNET_SCHED_DPMSOLVER_MULTISTEP, "dpmpp_2m");
    EXPECT(sched_kind_from_short("lms") == -1 && sched_kind_from_short(NULL) == -1, "unknown");
}

/* Where a bad config must be refused. */
enum { AT_LOAD, AT_INIT, AT_SET_TIMESTEPS };

static void test_bad_configs(void) {
    static const struct {
        const char *json;
        int steps, where;
        const char *needle; /* in the error message */
    } cases[] = {
        {"{\"_class_name\": \"LMSDiscreteScheduler\"}", 20, AT_LOAD, "_class_name"},
        {"{\"_class_name\": \"DDIMScheduler\", \"rescale_betas_zero_snr\": true}", 20, AT_INIT,
         "rescale_betas_zero_snr"},
        {"{\"_class_name\": \"PNDMScheduler\"}", 20, AT_INIT, "skip_prk_steps"},
        {"{\"_class_name\": \"PNDMScheduler\", \"skip_prk_steps\": true, \"prediction_type\": "
         "\"sample\"}",
         20, AT_INIT, "prediction_type"},
        {"{\"_class_name\": \"EulerAncestralDiscreteScheduler\", \"prediction_type\": "
         "\"sample\"}",
         20, AT_INIT, "prediction_type"},
        {"{\"_class_name\": \"DDPMScheduler\", \"beta_schedule\": \"sigmoid\"}", 20, AT_INIT,
         "sigmoid"},
        {"{\"_class_name\": \"EulerDiscreteScheduler\", \"interpolation_type\": \"log_linear\"}",
         20, AT_INIT, "log_linear"},
        {"{\"_class_name\": \"EulerDiscreteScheduler\", \"timestep_type\": \"continuous\", "
         "\"prediction_type\": \"v_prediction\"}",
         20, AT_INIT, "continuous"},
        {"{\"_class_name\": \"DPMSolverMultistepScheduler\", \"algorithm_type\": "
         "\"sde-dpmsolver++\"}",
         20, AT_INIT, "algorithm_type"},
        {"{\"_class_name\": \"DPMSolverMultistepScheduler\", \"solver_order\": 3}", 20, AT_INIT,
         "solver_order"},
        {"{\"_class_name\": \"DPMSolverMultistepScheduler\", \"use_lu_lambdas\": true}", 20,
         AT_INIT, "use_lu_lambdas"},
        {"{\"_class_name\": \"DPMSolverMultistepScheduler\", \"variance_type\": "
         "\"learned_range\"}",
         20, AT_INIT, "variance_type"},
        {"{\"_class_name\": \"UniPCMultistepScheduler\", \"solver_order\": 3}", 20, AT_INIT,
         "solver_order"},
        {"{\"_class_name\": \"DDIMScheduler\"}", 20, AT_SET_TIMESTEPS, "clip_sample"},
        {"{\"_class_name\": \"DPMSolverMultistepScheduler\", \"thresholding\": true}", 20,
         AT_SET_TIMESTEPS, "thresholding"},
        {"{\"_class_name\": \"DDPMScheduler\", \"clip_sample\": false, \"variance_type\": "
         "\"learned_range\"}",
         20, AT_SET_TIMESTEPS, "variance_type"},
        {"{\"_class_name\": \"DDIMScheduler\", \"clip_sample\": false}", 0, AT_SET_TIMESTEPS,
         "num_inference_steps"},
        {"{\"_class_name\": \"DDIMScheduler\", \"clip_sample\": false}", 1001, AT_SET_TIMESTEPS,
         "num_inference_steps"},
        /* numpy's arange(1000, 0, -1000/61) has 62 entries, the last rounding to timestep -1 */
        {"{\"_class_name\": \"DDIMScheduler\", \"clip_sample\": false, \"timestep_spacing\": "
         "\"trailing\"}",
         61, AT_SET_TIMESTEPS, "timestep -1"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[600];
        snprintf(path, sizeof path, "%s/bad%zu.json", tmp, i);
        if (file_write(path, cases[i].json, strlen(cases[i].json))) {
            EXPECT(0, "cannot write %s", path);
            continue;
        }
        cnet_error err = {0};
        cnet_sched_config cfg;
        int where = AT_LOAD, rc = cnet_sched_config_load(&cfg, path, -1, &err);
        sched s;
        if (rc == 0) {
            where = AT_INIT;
            rc = sched_init(&s, &be, &cfg, 16, &err);
            cnet_sched_config_free(&cfg);
            if (rc == 0) {
                where = AT_SET_TIMESTEPS;
                rc = sched_set_timesteps(&s, cases[i].steps, &err);
                sched_free(&s);
            }
        }
        EXPECT(rc != 0 && where == cases[i].where && strstr(err.msg, cases[i].needle),
               "%s (%d steps): rc %d at stage %d (want %d), message \"%s\" should name \"%s\"",
               cases[i].json, cases[i].steps, rc, where, cases[i].where, err.msg, cases[i].needle);
    }
}

/* Step-only options do not stop DDPM training noise; sigma schedulers have
 * no alphas_cumprod add_noise. */
static void test_training_noise_contract(void) {
    const char *json = "{\"_class_name\": \"DDPMScheduler\", \"clip_sample\": true}";
    char path[600];
    snprintf(path, sizeof path, "%s/ddpm.json", tmp);
    CHECK(file_write(path, json, strlen(json)) == 0, "write %s", path);
    cnet_error err;
    cnet_sched_config cfg;
    CHECK(cnet_sched_config_load(&cfg, path, -1, &err) == 0, "%s", err.msg);
    sched s;
    CHECK(sched_init(&s, &be, &cfg, 0, &err) == 0, "%s", err.msg);
    float x0[8], noise[8], out[8];
    for (int i = 0; i < 8; i++) x0[i] = 1.0f, noise[i] = -1.0f;
    int64_t t[2] = {0, 999};
    EXPECT(sched_add_noise(&s, out, x0, noise, t, 2, 4, &err) == 0, "%s", err.msg);
    const float acp = s.alphas_cumprod[999];
    EXPECT(out[4] == sqrtf(acp) - sqrtf(1.0f - acp), "add_noise at t=999: %g", out[4]);
    t[1] = 1000;
    EXPECT(sched_add_noise(&s, out, x0, noise, t, 2, 4, &err) == CNET_EINVAL &&
               strstr(err.msg, "1000"),
           "timestep out of range: %s", err.msg);
    sched_free(&s);

    cfg.kind = CNET_SCHED_EULER;
    CHECK(sched_init(&s, &be, &cfg, 0, &err) == 0, "%s", err.msg);
    t[1] = 999;
    EXPECT(sched_get_velocity(&s, out, x0, noise, t, 2, 4, &err) == CNET_EINVAL &&
               strstr(err.msg, "get_velocity"),
           "Euler get_velocity: %s", err.msg);
    sched_free(&s);
    cnet_sched_config_free(&cfg);
}

static void test_call_contract(void) {
    cnet_error err;
    cnet_sched_config cfg;
    CHECK(model_config(&cfg, CNET_SCHED_UNIPC, &err) == 0, "%s", err.msg);
    sched s;
    CHECK(sched_init(&s, &be, &cfg, 16, &err) == 0, "%s", err.msg);
    cnet_sched_config_free(&cfg);
    float *x = be.alloc(&be, 32 * sizeof(float)), *mo = be.alloc(&be, 32 * sizeof(float));
    be.zero(&be, x, 32 * sizeof(float));
    be.zero(&be, mo, 32 * sizeof(float));
    EXPECT(sched_step(&s, x, NULL, mo, x, NULL, 0, 16, &err) == CNET_EINVAL &&
               strstr(err.msg, "sched_set_timesteps"),
           "step before set_timesteps: %s", err.msg);
    EXPECT(sched_set_timesteps(&s, 10, &err) == 0, "%s", err.msg);
    EXPECT(sched_step(&s, x, NULL, mo, x, NULL, 1, 16, &err) == CNET_EINVAL &&
               strstr(err.msg, "step 0 is next"),
           "out of order: %s", err.msg);
    EXPECT(sched_step(&s, x, NULL, mo, x, NULL, 0, 32, &err) == CNET_EINVAL &&
               strstr(err.msg, "32"),
           "n > n_max: %s", err.msg);
    EXPECT(sched_scale_model_input(&s, x, x, 10, 16, &err) == CNET_EINVAL && strstr(err.msg, "10"),
           "index past the end: %s", err.msg);
    for (int i = 0; i < 10; i++)
        EXPECT(sched_step(&s, x, NULL, mo, x, NULL, i, 16, &err) == 0, "step %d: %s", i, err.msg);
    EXPECT(sched_step(&s, x, NULL, mo, x, NULL, 10, 16, &err) == CNET_EINVAL, "past the end");
    EXPECT(sched_set_timesteps(&s, 10, &err) == 0 &&
               sched_step(&s, x, NULL, mo, x, NULL, 0, 16, &err) == 0,
           "set_timesteps restarts: %s", err.msg);
    be.free(&be, x);
    be.free(&be, mo);
    sched_free(&s);
}

/* ---- prediction types ---- */

#define N 64

/* The model output of prediction type `pred` that describes the same x0 as
 * the noise eps does at step k of s, given the current sample x (float64). */
static void output_for(const sched *s, cnet_prediction_type pred, int k, const float *x,
                       const double *eps, float *out) {
    double alpha, sigma, scale = 1; /* x = scale * (alpha x0 + sigma eps) */
    switch (s->cfg.kind) {
    case CNET_SCHED_DDPM:
    case CNET_SCHED_DDIM: {
        const double acp = s->alphas_cumprod[(int)s->timesteps[k]];
        alpha = sqrt(acp), sigma = sqrt(1 - acp);
        break;
    }
    default: { /* sigma schedulers: VP alpha/sigma from sigmas[k] */
        const double sg = s->sigmas[k];
        alpha = 1 / sqrt(sg * sg + 1), sigma = sg * alpha;
        if (s->cfg.kind == CNET_SCHED_EULER || s->cfg.kind == CNET_SCHED_EULER_ANCESTRAL)
            scale = 1 / alpha; /* Euler's samples are x_t / alpha */
        break;
    }
    }
    for (int i = 0; i < N; i++) {
        const double x0 = (x[i] / scale - sigma * eps[i]) / alpha;
        out[i] = (float)(pred == CNET_PRED_EPSILON ? eps[i]
                         : pred == CNET_PRED_V     ? alpha * eps[i] - sigma * x0
                                                   : x0);
    }
}

/* Runs a full trajectory with model outputs of type pred that all mean the
 * noises eps[k]; explicit step noises; the final sample into out. */
static int run_trajectory(cnet_sched_config cfg, cnet_prediction_type pred, int steps,
                          double (*eps)[N], float (*step_noise)[N], float *out, cnet_error *err) {
    cfg.prediction_type = pred;
    sched s;
    int rc = sched_init(&s, &be, &cfg, N, err);
    if (rc) return rc;
    s.eta = 0.7f;
    float *x = be.alloc(&be, N * sizeof(float)), *mo = be.alloc(&be, N * sizeof(float));
    float *nz = be.alloc(&be, N * sizeof(float)), host[N], model[N];
    rc = sched_set_timesteps(&s, steps, err);
    uint64_t state = 7;
    fill_uniform(host, N, -1, 1, &state);
    for (int i = 0; i < N; i++) host[i] *= s.init_noise_sigma;
    be.upload(&be, x, host, sizeof host);
    for (int k = 0; !rc && k < s.num_steps; k++) {
        be.download(&be, host, x, sizeof host);
        output_for(&s, pred, k, host, eps[k], model);
        be.upload(&be, mo, model, sizeof model);
        be.upload(&be, nz, step_noise[k], sizeof step_noise[k]);
        rc = sched_step(&s, x, NULL, mo, x, nz, k, N, err);
    }
    be.download(&be, out, x, N * sizeof(float));
    be.free(&be, x);
    be.free(&be, mo);
    be.free(&be, nz);
    sched_free(&s);
    return rc;
}

static void test_prediction_types(void) {
    static const struct {
        cnet_sched_kind kind;
        int steps, karras, x0_pred, sample_pred;
    } runs[] = {
        {CNET_SCHED_DDPM, 12, 0, 1, 1},
        {CNET_SCHED_DDIM, 12, 0, 1, 1},
        {CNET_SCHED_EULER, 12, 0, 1, 1},
        {CNET_SCHED_EULER, 12, 1, 1, 1},
        {CNET_SCHED_EULER_ANCESTRAL, 12, 0, 1, 0},
        {CNET_SCHED_DPMSOLVER_MULTISTEP, 12, 0, 1, 1},
        {CNET_SCHED_DPMSOLVER_MULTISTEP, 16, 1, 1, 1},
        {CNET_SCHED_UNIPC, 12, 0, 1, 1},
        {CNET_SCHED_UNIPC, 16, 1, 1, 1},
        {CNET_SCHED_UNIPC, 12, 0, 0, 1}, /* noise-prediction UniPC (predict_x0 = false) */
    };
    static double eps[32][N];
    static float step_noise[32][N];
    uint64_t state = 11;
    for (int k = 0; k < 32; k++) {
        float tmpf[N];
        fill_uniform(tmpf, N, -1.5f, 1.5f, &state);
        for (int i = 0; i < N; i++) eps[k][i] = tmpf[i];
        fill_uniform(step_noise[k], N, -1, 1, &state);
    }
    for (size_t r = 0; r < sizeof runs / sizeof runs[0]; r++) {
        cnet_error err;
        cnet_sched_config cfg;
        if (model_config(&cfg, runs[r].kind, &err)) {
            EXPECT(0, "%s", err.msg);
            continue;
        }
        cfg.clip_sample = false;
        cfg.use_karras_sigmas = runs[r].karras;
        cfg.predict_x0 = runs[r].x0_pred;
        cfg.solver_type = runs[r].kind == CNET_SCHED_UNIPC && !runs[r].x0_pred ? CNET_SOLVER_BH1
                                                                               : cfg.solver_type;
        float ref[N], got[N];
        int rc = run_trajectory(cfg, CNET_PRED_EPSILON, runs[r].steps, eps, step_noise, ref, &err);
        EXPECT(rc == 0, "%s: %s", cnet_sched_kind_name(runs[r].kind), err.msg);
        double scale = 0;
        for (int i = 0; i < N; i++) scale = fmax(scale, fabs(ref[i]));
        for (int p = 1; rc == 0 && p <= 2; p++) {
            if (p == 2 && !runs[r].sample_pred) continue;
            const cnet_prediction_type pred = p == 1 ? CNET_PRED_V : CNET_PRED_SAMPLE;
            rc = run_trajectory(cfg, pred, runs[r].steps, eps, step_noise, got, &err);
            double d = 0;
            for (int i = 0; i < N; i++) d = fmax(d, fabs(got[i] - ref[i]));
            EXPECT(rc == 0 && d <= 1e-5 * fmax(scale, 1) && isfinite(scale),
                   "%s (karras %d, predict_x0 %d): %s prediction ends %g away from epsilon's "
                   "(|x| %g) %s",
                   cnet_sched_kind_name(runs[r].kind), runs[r].karras, runs[r].x0_pred,
                   p == 1 ? "v" : "sample", d, scale, rc ? err.msg : "");
        }
        cnet_sched_config_free(&cfg);
    }
}

static int close_rel(double a, double b) { return fabs(a - b) <= 1e-6 * fmax(fabs(b), 1e-30); }

/* Karras sigmas (rho = 7) span the training range (or Euler's configured
 * sigma_min..sigma_max) and map back to timesteps T-1..0; the final sigma
 * follows final_sigmas_type (DPM-Solver) or repeats the last (UniPC). */
static void test_karras_and_final_sigmas(void) {
    static const struct {
        cnet_sched_kind kind;
        int final_sigma_min;
        double sigma_min, sigma_max; /* Euler's config; NAN = from the table */
    } runs[] = {
        {CNET_SCHED_EULER, 0, NAN, NAN},
        {CNET_SCHED_EULER, 0, 0.1, 10.0},
        {CNET_SCHED_DPMSOLVER_MULTISTEP, 0, NAN, NAN},
        {CNET_SCHED_DPMSOLVER_MULTISTEP, 1, NAN, NAN},
        {CNET_SCHED_UNIPC, 0, NAN, NAN},
    };
    for (size_t r = 0; r < sizeof runs / sizeof runs[0]; r++) {
        cnet_error err;
        cnet_sched_config cfg;
        if (model_config(&cfg, runs[r].kind, &err)) {
            EXPECT(0, "%s", err.msg);
            continue;
        }
        cfg.use_karras_sigmas = true;
        cfg.final_sigmas_type =
            runs[r].final_sigma_min ? CNET_FINAL_SIGMA_MIN : CNET_FINAL_SIGMA_ZERO;
        cfg.sigma_min = runs[r].sigma_min, cfg.sigma_max = runs[r].sigma_max;
        sched s;
        const int n = 10;
        int ok = sched_init(&s, &be, &cfg, 0, &err) == 0 && sched_set_timesteps(&s, n, &err) == 0;
        cnet_sched_config_free(&cfg);
        EXPECT(ok, "%s: %s", cnet_sched_kind_name(runs[r].kind), err.msg);
        if (!ok) continue;
        const int T = s.cfg.num_train_timesteps;
        const double lo = isnan(runs[r].sigma_min) ? s.train_sigmas[0] : runs[r].sigma_min;
        const double hi = isnan(runs[r].sigma_max) ? s.train_sigmas[T - 1] : runs[r].sigma_max;
        int monotone = s.num_steps == n && s.num_sigmas == n + 1;
        for (int k = 1; monotone && k < n; k++)
            monotone = s.sigmas[k] < s.sigmas[k - 1] && s.timesteps[k] <= s.timesteps[k - 1];
        const float last = runs[r].kind == CNET_SCHED_UNIPC ? s.sigmas[n - 1]
                           : runs[r].final_sigma_min        ? s.train_sigmas[0]
                                                            : 0.0f;
        EXPECT(monotone && close_rel(s.sigmas[0], (float)hi) &&
                   close_rel(s.sigmas[n - 1], (float)lo) && s.sigmas[n] == last,
               "%s run %zu: sigmas %g..%g then %g, want %g..%g then %g",
               cnet_sched_kind_name(runs[r].kind), r, s.sigmas[0], s.sigmas[n - 1], s.sigmas[n], hi,
               lo, last);
        if (isnan(runs[r].sigma_min))
            EXPECT(fabs(s.timesteps[0] - (T - 1)) < 1e-3 && fabs(s.timesteps[n - 1]) < 1e-3,
                   "%s run %zu: timesteps %g..%g", cnet_sched_kind_name(runs[r].kind), r,
                   s.timesteps[0], s.timesteps[n - 1]);
        if (runs[r].kind == CNET_SCHED_EULER)
            EXPECT(s.init_noise_sigma == s.sigmas[0], "Euler init_noise_sigma %g",
                   s.init_noise_sigma);
        sched_free(&s);
    }
}

/* DDIM with eta > 0 against formula (12) of the DDIM paper in float64. */
static void test_ddim_eta(void) {
    cnet_error err;
    cnet_sched_config cfg;
    CHECK(model_config(&cfg, CNET_SCHED_DDIM, &err) == 0, "%s", err.msg);
    cfg.clip_sample = false;
    sched s;
    CHECK(sched_init(&s, &be, &cfg, N, &err) == 0, "%s", err.msg);
    cnet_sched_config_free(&cfg);
    s.eta = 0.8f;
    CHECK(sched_set_timesteps(&s, 10, &err) == 0, "%s", err.msg);
    float x[N], mo[N], z[N], prev[N], x0[N];
    uint64_t state = 3;
    fill_uniform(x, N, -2, 2, &state);
    fill_uniform(mo, N, -1, 1, &state);
    fill_uniform(z, N, -1, 1, &state);
    float *d[5];
    for (int i = 0; i < 5; i++) d[i] = be.alloc(&be, N * sizeof(float));
    be.upload(&be, d[0], x, sizeof x);
    be.upload(&be, d[1], mo, sizeof mo);
    be.upload(&be, d[2], z, sizeof z);
    for (int k = 0; k < 3; k++) /* steps 0..2: the last one is checked */
        CHECK(sched_step(&s, d[3], d[4], d[1], d[0], d[2], k, N, &err) == 0, "%s", err.msg);
    be.download(&be, prev, d[3], sizeof prev);
    be.download(&be, x0, d[4], sizeof x0);
    const int t = (int)s.timesteps[2], tp = t - s.cfg.num_train_timesteps / 10;
    const double a = s.alphas_cumprod[t];
    const double ap = tp >= 0 ? s.alphas_cumprod[tp] : s.final_alpha_cumprod;
    const double var = (1 - ap) / (1 - a) * (1 - a / ap), std = 0.8 * sqrt(var);
    double e_prev = 0, e_x0 = 0;
    for (int i = 0; i < N; i++) {
        const double want_x0 = (x[i] - sqrt(1 - a) * mo[i]) / sqrt(a);
        const double want = sqrt(ap) * want_x0 + sqrt(1 - ap - std * std) * mo[i] + std * z[i];
        e_prev = fmax(e_prev, fabs(prev[i] - want));
        e_x0 = fmax(e_x0, fabs(x0[i] - want_x0));
    }
    EXPECT(e_prev < 1e-5 && e_x0 < 1e-5, "DDIM eta 0.8: prev off by %g, x0 by %g", e_prev, e_x0);
    for (int i = 0; i < 5; i++) be.free(&be, d[i]);
    sched_free(&s);
}

/* Without a noise buffer, Euler a draws from the Philox stream at
 * (noise_seed, noise_offset) and moves the offset on. */
static void test_noise_stream(void) {
    cnet_error err;
    cnet_sched_config cfg;
    CHECK(model_config(&cfg, CNET_SCHED_EULER_ANCESTRAL, &err) == 0, "%s", err.msg);
    sched a, b;
    CHECK(sched_init(&a, &be, &cfg, N, &err) == 0 && sched_init(&b, &be, &cfg, N, &err) == 0, "%s",
          err.msg);
    cnet_sched_config_free(&cfg);
    CHECK(sched_set_timesteps(&a, 5, &err) == 0 && sched_set_timesteps(&b, 5, &err) == 0, "%s",
          err.msg);
    a.noise_seed = 1234, a.noise_offset = 40;
    float *xa = be.alloc(&be, N * sizeof(float)), *xb = be.alloc(&be, N * sizeof(float));
    float *mo = be.alloc(&be, N * sizeof(float)), *nz = be.alloc(&be, N * sizeof(float));
    float host[N], ha[N], hb[N];
    uint64_t state = 5;
    fill_uniform(host, N, -3, 3, &state);
    be.upload(&be, xa, host, sizeof host);
    be.upload(&be, xb, host, sizeof host);
    fill_uniform(host, N, -1, 1, &state);
    be.upload(&be, mo, host, sizeof host);
    for (int k = 0; k < 5; k++) {
        EXPECT(sched_step(&a, xa, NULL, mo, xa, NULL, k, N, &err) == 0, "%s", err.msg);
        be.philox_normal(&be, nz, N, 1234, 40 + (uint64_t)k * ((N + 3) / 4));
        EXPECT(sched_step(&b, xb, NULL, mo, xb, nz, k, N, &err) == 0, "%s", err.msg);
    }
    be.download(&be, ha, xa, sizeof ha);
    be.download(&be, hb, xb, sizeof hb);
    EXPECT(memcmp(ha, hb, sizeof ha) == 0, "Philox draws differ from the explicit noise");
    EXPECT(a.noise_offset == 40 + 5 * ((N + 3) / 4), "offset %llu",
           (unsigned long long)a.noise_offset);
    float *d[] = {xa, xb, mo, nz};
    for (int i = 0; i < 4; i++) be.free(&be, d[i]);
    sched_free(&a);
    sched_free(&b);
}

/* prev_sample may alias sample: the same numbers either way, every kind. */
static void test_in_place(void) {
    for (int kind = 0; kind < CNET_SCHED_KIND_COUNT; kind++) {
        cnet_error err;
        cnet_sched_config cfg;
        if (model_config(&cfg, (cnet_sched_kind)kind, &err)) {
            EXPECT(0, "%s", err.msg);
            continue;
        }
        cfg.clip_sample = false;
        cfg.skip_prk_steps = true;
        sched a, b;
        int ok = sched_init(&a, &be, &cfg, N, &err) == 0 &&
                 sched_init(&b, &be, &cfg, N, &err) == 0 && sched_set_timesteps(&a, 8, &err) == 0 &&
                 sched_set_timesteps(&b, 8, &err) == 0;
        cnet_sched_config_free(&cfg);
        EXPECT(ok, "%s: %s", cnet_sched_kind_name((cnet_sched_kind)kind), err.msg);
        if (!ok) continue;
        float *xa = be.alloc(&be, N * sizeof(float)), *xb = be.alloc(&be, N * sizeof(float));
        float *pb = be.alloc(&be, N * sizeof(float)), *mo = be.alloc(&be, N * sizeof(float));
        float *nz = be.alloc(&be, N * sizeof(float));
        float host[N], ha[N], hb[N];
        uint64_t state = 9;
        fill_uniform(host, N, -2, 2, &state);
        be.upload(&be, xa, host, sizeof host);
        be.upload(&be, xb, host, sizeof host);
        for (int k = 0; k < a.num_steps; k++) {
            fill_uniform(host, N, -1, 1, &state);
            be.upload(&be, mo, host, sizeof host);
            fill_uniform(host, N, -1, 1, &state);
            be.upload(&be, nz, host, sizeof host);
            ok &= sched_step(&a, xa, NULL, mo, xa, nz, k, N, &err) == 0;
            ok &= sched_step(&b, pb, NULL, mo, xb, nz, k, N, &err) == 0;
            be.copy(&be, xb, pb, N * sizeof(float));
        }
        be.download(&be, ha, xa, sizeof ha);
        be.download(&be, hb, xb, sizeof hb);
        EXPECT(ok && memcmp(ha, hb, sizeof ha) == 0, "%s: in-place and out-of-place differ",
               cnet_sched_kind_name((cnet_sched_kind)kind));
        float *d[] = {xa, xb, pb, mo, nz};
        for (int i = 0; i < 5; i++) be.free(&be, d[i]);
        sched_free(&a);
        sched_free(&b);
    }
}

/* After set_begin_index(b) the schedule is the full one from entry b on,
 * and add_noise_step(j) uses entry b + j: acp[t] for DDIM and PNDM, sigma
 * for Euler (x0 + sigma * noise) and DPM-Solver (alpha_t x0 + sigma_t
 * noise). Out of range or a second call is refused. */
static void test_begin_index(void) {
    const cnet_sched_kind kinds[] = {CNET_SCHED_DDIM, CNET_SCHED_PNDM, CNET_SCHED_EULER,
                                     CNET_SCHED_DPMSOLVER_MULTISTEP};
    enum { BEGIN_S = 6, BEGIN_B = 2, BEGIN_N = 5 };
    float x0[BEGIN_N], noise[BEGIN_N], got[BEGIN_N];
    for (int i = 0; i < BEGIN_N; i++)
        x0[i] = 0.3f * (float)i - 0.5f, noise[i] = 1.0f - 0.4f * (float)i;
    cnet_error err = {0};
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        cnet_sched_config cfg;
        CHECK(model_config(&cfg, kinds[k], &err) == 0, "%s", err.msg);
        sched full, s;
        float *d_x0 = be.alloc(&be, sizeof x0), *d_n = be.alloc(&be, sizeof noise),
              *d_o = be.alloc(&be, sizeof got);
        be.upload(&be, d_x0, x0, sizeof x0);
        be.upload(&be, d_n, noise, sizeof noise);
        CHECK(sched_init(&full, &be, &cfg, BEGIN_N, &err) == 0 &&
                  sched_set_timesteps(&full, BEGIN_S, &err) == 0 &&
                  sched_init(&s, &be, &cfg, BEGIN_N, &err) == 0 &&
                  sched_set_timesteps(&s, BEGIN_S, &err) == 0,
              "%s", err.msg);
        const char *name = cnet_sched_kind_name(kinds[k]);
        EXPECT(sched_set_begin_index(&s, full.num_steps, &err) == CNET_EINVAL,
               "%s: begin %d accepted", name, full.num_steps);
        CHECK(sched_set_begin_index(&s, BEGIN_B, &err) == 0, "%s: %s", name, err.msg);
        EXPECT(sched_set_begin_index(&s, BEGIN_B, &err) == CNET_EINVAL, "%s: a second begin", name);
        EXPECT(
            s.num_steps == full.num_steps - BEGIN_B &&
                !memcmp(s.timesteps, full.timesteps + BEGIN_B, (size_t)s.num_steps * sizeof(float)),
            "%s: timesteps are not the full ones from %d", name, BEGIN_B);
        EXPECT(s.num_sigmas == (full.num_sigmas ? full.num_sigmas - BEGIN_B : 0) &&
                   !memcmp(s.sigmas, full.sigmas + BEGIN_B, (size_t)s.num_sigmas * sizeof(float)),
               "%s: sigmas are not the full ones from %d", name, BEGIN_B);
        for (int j = 0; j < s.num_steps; j++) {
            CHECK(sched_add_noise_step(&s, d_o, d_x0, d_n, j, BEGIN_N, &err) == 0, "%s", err.msg);
            be.download(&be, got, d_o, sizeof got);
            const float sigma = full.num_sigmas ? full.sigmas[BEGIN_B + j] : 0.0f;
            const float acp = full.alphas_cumprod[(int)full.timesteps[BEGIN_B + j]];
            const float alpha_t = 1.0f / sqrtf(sigma * sigma + 1.0f);
            for (int i = 0; i < BEGIN_N; i++) {
                const float want = kinds[k] == CNET_SCHED_EULER ? x0[i] + sigma * noise[i]
                                   : kinds[k] == CNET_SCHED_DPMSOLVER_MULTISTEP
                                       ? alpha_t * x0[i] + sigma * alpha_t * noise[i]
                                       : sqrtf(acp) * x0[i] + sqrtf(1.0f - acp) * noise[i];
                EXPECT(fabsf(got[i] - want) <= 1e-6f * fmaxf(1.0f, fabsf(want)),
                       "%s: add_noise step %d element %d: %g, want %g", name, j, i, got[i], want);
            }
        }
        EXPECT(sched_add_noise_step(&s, d_o, d_x0, d_n, s.num_steps, BEGIN_N, &err) == CNET_EINVAL,
               "%s: add_noise past the schedule", name);
        be.free(&be, d_x0), be.free(&be, d_n), be.free(&be, d_o);
        sched_free(&full), sched_free(&s);
        cnet_sched_config_free(&cfg);
    }
}

int main(int argc, char **argv) {
    harness_init(argc, argv);
    cnet_error err;
    if (cnet_backend_cpu_init(&be, &err) || tmpdir_make(tmp, sizeof tmp, "cnet-sched-")) {
        printf("setup failed: %s\n", err.msg);
        return 1;
    }
    RUN(test_golden_schedulers);
    RUN(test_kind_names);
    RUN(test_bad_configs);
    RUN(test_training_noise_contract);
    RUN(test_call_contract);
    RUN(test_prediction_types);
    RUN(test_karras_and_final_sigmas);
    RUN(test_ddim_eta);
    RUN(test_noise_stream);
    RUN(test_in_place);
    RUN(test_begin_index);
    tmpdir_remove(tmp);
    cnet_backend_free(&be);
    return harness_done();
}
