/* Scheduler configs (diffusers v0.27.2 schedulers/scheduling_*.py __init__):
 * DDPM, DDIM, PNDM, Euler, Euler ancestral, DPM-Solver multistep and UniPC.
 *
 * A file is read as its target class reads it with Cls.from_config: only the
 * fields that class takes are read (others are ignored, as diffusers ignores
 * them), absent ones take that class's defaults, and the remaps the class's
 * __init__ applies are done here (DPM-Solver: solver_type logrho/bh1/bh2 ->
 * midpoint, algorithm_type deis -> dpmsolver++; UniPC: midpoint/heun/logrho
 * -> bh2). Not the schedulers themselves. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/config/config.h"
#include "engine/config/config_json.h"

#define TRY(x)                                                                                     \
    do {                                                                                           \
        int rc_ = (x);                                                                             \
        if (rc_) return rc_;                                                                       \
    } while (0)

static const char *const kind_names[CNET_SCHED_KIND_COUNT] = {
    [CNET_SCHED_DDPM] = "DDPMScheduler",
    [CNET_SCHED_DDIM] = "DDIMScheduler",
    [CNET_SCHED_PNDM] = "PNDMScheduler",
    [CNET_SCHED_EULER] = "EulerDiscreteScheduler",
    [CNET_SCHED_EULER_ANCESTRAL] = "EulerAncestralDiscreteScheduler",
    [CNET_SCHED_DPMSOLVER_MULTISTEP] = "DPMSolverMultistepScheduler",
    [CNET_SCHED_UNIPC] = "UniPCMultistepScheduler",
};

const char *cnet_sched_kind_name(cnet_sched_kind k) {
    return (unsigned)k < CNET_SCHED_KIND_COUNT ? kind_names[k] : "?";
}

/* Name tables, in the order of the enums in config.h. */
static const char *const beta_names[] = {"linear", "scaled_linear", "squaredcos_cap_v2", "sigmoid"};
static const char *const pred_names[] = {"epsilon", "v_prediction", "sample"};
static const char *const spacing_names[] = {"leading", "trailing", "linspace"};
static const char *const algo_names[] = {"dpmsolver++", "sde-dpmsolver++", "dpmsolver",
                                         "sde-dpmsolver", "deis"};
static const char *const solver_names[] = {"midpoint", "heun", "bh1", "bh2", "logrho"};
static const char *const final_names[] = {"zero", "sigma_min"};
static const char *const interp_names[] = {"linear", "log_linear"};
static const char *const ttype_names[] = {"discrete", "continuous"};
/* variance_type without its CNET_VAR_NONE (null) entry. */
static const char *const variance_names[] = {"fixed_small",     "fixed_small_log", "fixed_large",
                                             "fixed_large_log", "learned",         "learned_range"};

#define K(k) (1u << CNET_SCHED_##k)
/* Which classes take a field (their __init__ has the argument). */
enum {
    USES_RESCALE = K(DDPM) | K(DDIM) | K(EULER) | K(EULER_ANCESTRAL) | K(DPMSOLVER_MULTISTEP),
    USES_CLIP = K(DDPM) | K(DDIM),
    USES_ALPHA_ONE = K(DDIM) | K(PNDM),
    USES_THRESHOLD = K(DDPM) | K(DDIM) | K(DPMSOLVER_MULTISTEP) | K(UNIPC),
    USES_VARIANCE = K(DDPM) | K(DPMSOLVER_MULTISTEP),
    USES_KARRAS = K(EULER) | K(DPMSOLVER_MULTISTEP) | K(UNIPC),
    USES_MULTISTEP = K(DPMSOLVER_MULTISTEP) | K(UNIPC),
};

static void set_defaults(cnet_sched_config *c, cnet_sched_kind k) {
    memset(c, 0, sizeof *c);
    c->kind = k;
    c->num_train_timesteps = 1000;
    c->beta_start = 0.0001;
    c->beta_end = 0.02;
    c->beta_schedule = CNET_BETA_LINEAR;
    c->prediction_type = CNET_PRED_EPSILON;
    c->timestep_spacing =
        (K(DDPM) | K(DDIM) | K(PNDM)) & (1u << k) ? CNET_SPACING_LEADING : CNET_SPACING_LINSPACE;
    c->clip_sample = (USES_CLIP >> k) & 1;
    c->set_alpha_to_one = k == CNET_SCHED_DDIM;
    c->clip_sample_range = 1.0;
    c->dynamic_thresholding_ratio = 0.995;
    c->sample_max_value = 1.0;
    c->variance_type = k == CNET_SCHED_DDPM ? CNET_VAR_FIXED_SMALL : CNET_VAR_NONE;
    c->sigma_min = c->sigma_max = NAN;
    c->solver_order = 2;
    c->algorithm_type = CNET_ALGO_DPMSOLVER_PP;
    c->solver_type = k == CNET_SCHED_UNIPC ? CNET_SOLVER_BH2 : CNET_SOLVER_MIDPOINT;
    c->lower_order_final = true;
    c->final_sigmas_type = CNET_FINAL_SIGMA_ZERO;
    c->lambda_min_clipped = -INFINITY;
    c->predict_x0 = true;
}

static int read_trained_betas(cnet_sched_config *c, const cfg_file *f) {
    const json_t *v = cfg_get(f, "trained_betas");
    if (!v || json_is_null(v)) return CNET_OK;
    if (!json_is_array(v) || json_array_size(v) == 0)
        return cfg_type_error(f, "trained_betas", "null or a list of numbers", v);
    if ((int)json_array_size(v) != c->num_train_timesteps)
        return cnet_fail(f->err, CNET_EFORMAT,
                         "%s: field 'trained_betas' has %zu entries but num_train_timesteps is %d",
                         f->path, json_array_size(v), c->num_train_timesteps);
    c->trained_betas = malloc(json_array_size(v) * sizeof *c->trained_betas);
    if (!c->trained_betas) return cnet_fail(f->err, CNET_ENOMEM, "%s: out of memory", f->path);
    c->n_trained_betas = (int)json_array_size(v);
    for (int i = 0; i < c->n_trained_betas; i++) {
        const json_t *e = json_array_get(v, (size_t)i);
        if (!json_is_number(e)) return cfg_type_error(f, "trained_betas", "a list of numbers", e);
        c->trained_betas[i] = json_number_value(e);
    }
    return CNET_OK;
}

static int read_variance(cnet_sched_config *c, const cfg_file *f) {
    const json_t *v = cfg_get(f, "variance_type");
    if (!v) return CNET_OK;
    if (json_is_null(v)) {
        if (c->kind == CNET_SCHED_DDPM)
            return cfg_type_error(f, "variance_type", "a variance type name", v);
        c->variance_type = CNET_VAR_NONE;
        return CNET_OK;
    }
    int x;
    TRY(cfg_enum(f, "variance_type", 0, variance_names, 6, &x));
    c->variance_type = (cnet_variance_type)(x + 1);
    if (c->kind == CNET_SCHED_DPMSOLVER_MULTISTEP && c->variance_type < CNET_VAR_LEARNED)
        return cfg_unsupported(f, "variance_type",
                               "DPM-Solver takes null, learned or learned_range");
    return CNET_OK;
}

static int parse_sched(cnet_sched_config *c, const cfg_file *f) {
    const unsigned k = 1u << c->kind;
    int x;
    bool present;
    TRY(cfg_int(f, "num_train_timesteps", 1000, 1, 1 << 20, &c->num_train_timesteps));
    TRY(cfg_float(f, "beta_start", 0.0001, &c->beta_start));
    TRY(cfg_float(f, "beta_end", 0.02, &c->beta_end));
    TRY(cfg_enum(f, "beta_schedule", 0, beta_names, 4, &x));
    if (x == CNET_BETA_SIGMOID && c->kind != CNET_SCHED_DDPM)
        return cfg_unsupported(f, "beta_schedule", "sigmoid is DDPM-only in diffusers");
    c->beta_schedule = (cnet_beta_schedule)x;
    TRY(read_trained_betas(c, f));
    TRY(cfg_enum(f, "prediction_type", 0, pred_names, 3, &x));
    c->prediction_type = (cnet_prediction_type)x;
    TRY(cfg_enum(f, "timestep_spacing", (int)c->timestep_spacing, spacing_names, 3, &x));
    c->timestep_spacing = (cnet_timestep_spacing)x;
    TRY(cfg_int(f, "steps_offset", 0, 0, 1 << 20, &c->steps_offset));
    if (k & USES_RESCALE)
        TRY(cfg_bool(f, "rescale_betas_zero_snr", false, &c->rescale_betas_zero_snr));
    if (k & USES_CLIP) {
        TRY(cfg_bool(f, "clip_sample", true, &c->clip_sample));
        TRY(cfg_float(f, "clip_sample_range", 1.0, &c->clip_sample_range));
    }
    if (k & USES_ALPHA_ONE)
        TRY(cfg_bool(f, "set_alpha_to_one", c->set_alpha_to_one, &c->set_alpha_to_one));
    if (k & USES_THRESHOLD) {
        TRY(cfg_bool(f, "thresholding", false, &c->thresholding));
        TRY(cfg_float(f, "dynamic_thresholding_ratio", 0.995, &c->dynamic_thresholding_ratio));
        TRY(cfg_float(f, "sample_max_value", 1.0, &c->sample_max_value));
    }
    if (k & USES_VARIANCE) TRY(read_variance(c, f));
    if (k & USES_KARRAS) TRY(cfg_bool(f, "use_karras_sigmas", false, &c->use_karras_sigmas));
    if (c->kind == CNET_SCHED_PNDM) TRY(cfg_bool(f, "skip_prk_steps", false, &c->skip_prk_steps));
    if (c->kind == CNET_SCHED_EULER) {
        TRY(cfg_enum(f, "interpolation_type", 0, interp_names, 2, &x));
        c->interpolation_type = (cnet_interpolation_type)x;
        TRY(cfg_float_opt(f, "sigma_min", NAN, &c->sigma_min, &present));
        TRY(cfg_float_opt(f, "sigma_max", NAN, &c->sigma_max, &present));
        TRY(cfg_enum(f, "timestep_type", 0, ttype_names, 2, &x));
        c->timestep_continuous = x == 1;
    }
    if (k & USES_MULTISTEP) {
        TRY(cfg_int(f, "solver_order", 2, 1, 3, &c->solver_order));
        TRY(cfg_bool(f, "lower_order_final", true, &c->lower_order_final));
        TRY(cfg_enum(f, "solver_type", (int)c->solver_type, solver_names, 5, &x));
        /* DPM-Solver knows midpoint/heun, UniPC bh1/bh2; each maps the
         * other family onto its default, as their __init__ does. */
        if (c->kind == CNET_SCHED_DPMSOLVER_MULTISTEP)
            c->solver_type = x <= CNET_SOLVER_HEUN ? (cnet_solver_type)x : CNET_SOLVER_MIDPOINT;
        else
            c->solver_type = x == CNET_SOLVER_BH1 ? CNET_SOLVER_BH1 : CNET_SOLVER_BH2;
    }
    if (c->kind == CNET_SCHED_DPMSOLVER_MULTISTEP) {
        TRY(cfg_enum(f, "algorithm_type", 0, algo_names, 5, &x));
        c->algorithm_type = x == 4 ? CNET_ALGO_DPMSOLVER_PP : (cnet_dpm_algorithm)x;
        TRY(cfg_bool(f, "euler_at_final", false, &c->euler_at_final));
        TRY(cfg_bool(f, "use_lu_lambdas", false, &c->use_lu_lambdas));
        TRY(cfg_enum(f, "final_sigmas_type", 0, final_names, 2, &x));
        c->final_sigmas_type = (cnet_final_sigmas_type)x;
        TRY(cfg_float_opt(f, "lambda_min_clipped", -INFINITY, &c->lambda_min_clipped, &present));
        if (c->final_sigmas_type == CNET_FINAL_SIGMA_ZERO &&
            c->algorithm_type != CNET_ALGO_DPMSOLVER_PP &&
            c->algorithm_type != CNET_ALGO_SDE_DPMSOLVER_PP)
            return cfg_unsupported(f, "final_sigmas_type",
                                   "\"zero\" needs algorithm_type dpmsolver++ or sde-dpmsolver++ "
                                   "(diffusers raises too)");
    }
    if (c->kind == CNET_SCHED_UNIPC) {
        TRY(cfg_bool(f, "predict_x0", true, &c->predict_x0));
        TRY(cfg_require_null(f, "solver_p"));
        const json_t *dc = cfg_get(f, "disable_corrector");
        if (dc)
            TRY(cfg_int_list(f, "disable_corrector", NULL, 0, 0, CNET_SCHED_MAX_DISABLE_CORRECTOR,
                             0, 1 << 20, c->disable_corrector, &c->n_disable_corrector));
    }
    return CNET_OK;
}

int cnet_sched_config_load(cnet_sched_config *c, const char *path, int kind, cnet_error *err) {
    memset(c, 0, sizeof *c);
    cfg_file f;
    TRY(cfg_open(&f, path, err));
    int rc = CNET_OK;
    if (kind < 0 || kind >= CNET_SCHED_KIND_COUNT) {
        kind = -1;
        const json_t *cls = cfg_get(&f, "_class_name");
        for (int i = 0; i < CNET_SCHED_KIND_COUNT && json_is_string(cls); i++)
            if (strcmp(json_string_value(cls), kind_names[i]) == 0) kind = i;
        if (kind < 0)
            rc = cls ? cfg_unsupported(&f, "_class_name", "not a scheduler cnet implements")
                     : cnet_fail(err, CNET_EFORMAT, "%s: field '_class_name' is missing", path);
    }
    if (rc == CNET_OK) {
        set_defaults(c, (cnet_sched_kind)kind);
        rc = parse_sched(c, &f);
    }
    cfg_close(&f);
    if (rc) cnet_sched_config_free(c);
    return rc;
}

void cnet_sched_config_free(cnet_sched_config *c) {
    free(c->trained_betas);
    c->trained_betas = NULL;
    c->n_trained_betas = 0;
}
