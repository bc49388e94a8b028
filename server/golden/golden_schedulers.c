/* Golden checks of the schedulers: goldens/schedulers.safetensors.
 *
 * DDPM: betas, alphas_cumprod, add_noise and get_velocity of
 * DDPMScheduler.from_config(<model>/scheduler config) on the `sched.ddpm.in.*`
 * inputs. Every other scheduler <s> with a `sched.<s>.config` metadata entry
 * (the effective config diffusers used): timesteps, init_noise_sigma,
 * sigmas, and the whole trajectory run here from sample.0 with the golden
 * model_output.k (and noise.k where the file has it): every scaled_input.k,
 * pred_original_sample.k and sample.k+1 the file holds. The step runs in
 * place (prev_sample = sample), as a pipeline runs it. Tensors are compared
 * as stored (NCHW); the scheduler ops are elementwise.
 *
 * The number of inference steps is read off the golden timesteps: their
 * count, less one for PNDM, whose PLMS schedule repeats a timestep. Besides
 * the per-tensor lines, one line per scheduler gives its largest error and
 * its worst error/allowed ratio. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/sched/scheduler.h"
#include "server/golden/golden.h"

typedef struct sched_summary {
    int n;
    double max_err, worst_ratio, worst_err, worst_allowed;
    const char *worst_name;
} sched_summary;

/* Compares n host values (F32 or I64) with the golden tensor `name`, taking
 * its shape when the element counts agree, and folds the error into sum. */
static void check(golden_ctx *ctx, const st_file *f, const char *name, cnet_dtype dtype,
                  const void *data, int64_t n, sched_summary *sum) {
    const st_entry *e = st_find(f, name);
    cnet_tensor got = {.dtype = dtype, .ndim = 1, .shape = {n}, .data = (void *)data, .device = -1};
    if (e && cnet_tensor_numel(&e->view) == n) {
        got.ndim = e->view.ndim;
        memcpy(got.shape, e->view.shape, sizeof got.shape);
    }
    golden_compare(ctx, f, name, &got);
    sum->n++;
    if (!e || cnet_tensor_numel(&e->view) != n || e->view.dtype != dtype) return;
    double err = 0, allowed = 0;
    for (int64_t i = 0; i < n; i++) {
        double a, b;
        if (dtype == CNET_I64) {
            a = (double)((const int64_t *)data)[i];
            b = (double)((const int64_t *)e->view.data)[i];
        } else {
            float w;
            memcpy(&w, (const char *)e->view.data + i * sizeof w, sizeof w);
            a = ((const float *)data)[i], b = w;
        }
        err = fmax(err, fabs(a - b));
    }
    if (dtype == CNET_F32) {
        cnet_error terr;
        if (golden_tolerance(ctx, ctx->stem, name, &allowed, &terr)) return;
    }
    sum->max_err = fmax(sum->max_err, err);
    const double ratio = allowed > 0 ? err / allowed : (err > 0 ? INFINITY : 0);
    if (!sum->worst_name || ratio > sum->worst_ratio) {
        sum->worst_ratio = ratio, sum->worst_err = err, sum->worst_allowed = allowed;
        sum->worst_name = e->name;
    }
}

static void print_summary(const char *what, const sched_summary *sum) {
    printf("%s: %d tensors, max abs err %.3g; worst err/allowed %.3g (%s: %.3g of %.3g)\n", what,
           sum->n, sum->max_err, sum->worst_ratio, sum->worst_name ? sum->worst_name : "-",
           sum->worst_err, sum->worst_allowed);
}

static const st_entry *need_f32(const st_file *f, const char *name, cnet_error *err) {
    const st_entry *e = st_find(f, name);
    if (!e)
        cnet_fail(err, CNET_ENOTFOUND, "%s: no tensor '%s'", f->path, name);
    else if (e->view.dtype != CNET_F32)
        cnet_fail(err, CNET_EFORMAT, "%s: tensor '%s' is %s, expected F32", f->path, name,
                  cnet_dtype_name(e->view.dtype));
    else
        return e;
    return NULL;
}

/* Uploads a golden F32 tensor of exactly n elements into dev. */
static int upload(cnet_backend *be, float *dev, float *host, const st_file *f, const char *name,
                  long n, cnet_error *err) {
    const st_entry *e = need_f32(f, name, err);
    if (!e) return err->code;
    if (cnet_tensor_numel(&e->view) != n)
        return cnet_fail(err, CNET_EFORMAT, "%s: '%s' has %lld elements, expected %ld", f->path,
                         name, (long long)cnet_tensor_numel(&e->view), n);
    cnet_to_f32(host, e->view.data, CNET_F32, (size_t)n);
    be->upload(be, dev, host, (size_t)n * sizeof(float));
    return 0;
}

/* The effective config text as a file, for cnet_sched_config_load. */
static int load_config_text(cnet_sched_config *cfg, const char *text, int kind, cnet_error *err) {
    const char *dir = getenv("TMPDIR");
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/cnet-sched-config-XXXXXX", dir && *dir ? dir : "/tmp");
    int fd = mkstemp(path);
    if (fd < 0) return cnet_fail(err, CNET_EIO, "%s: cannot create a temporary file", path);
    size_t len = strlen(text);
    int ok = write(fd, text, len) == (ssize_t)len;
    close(fd);
    int rc = ok ? cnet_sched_config_load(cfg, path, kind, err)
                : cnet_fail(err, CNET_EIO, "%s: write failed", path);
    unlink(path);
    return rc;
}

typedef struct traj_bufs {
    float *x, *x0, *mo, *noise, *scaled; /* device [n] */
    float *host;                         /* [n] */
} traj_bufs;

static int bufs_alloc(traj_bufs *b, cnet_backend *be, long n) {
    memset(b, 0, sizeof *b);
    float **dev[] = {&b->x, &b->x0, &b->mo, &b->noise, &b->scaled};
    for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++)
        if (!(*dev[i] = be->alloc(be, (size_t)n * sizeof(float)))) return CNET_ENOMEM;
    return (b->host = malloc((size_t)n * sizeof(float))) ? 0 : CNET_ENOMEM;
}

static void bufs_free(traj_bufs *b, cnet_backend *be) {
    float *dev[] = {b->x, b->x0, b->mo, b->noise, b->scaled};
    for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++)
        if (dev[i]) be->free(be, dev[i]);
    free(b->host);
}

/* Timesteps, init_noise_sigma and sigmas of a scheduler after set_timesteps. */
static void check_tables(golden_ctx *ctx, const st_file *f, const sched *s, const char *prefix,
                         sched_summary *sum) {
    char name[GOLDEN_NAME_MAX];
    snprintf(name, sizeof name, "%stimesteps", prefix);
    const st_entry *ts = st_find(f, name);
    if (ts && ts->view.dtype == CNET_I64) {
        int64_t *ints = malloc((size_t)(s->num_steps + 1) * sizeof *ints);
        for (int k = 0; ints && k < s->num_steps; k++) ints[k] = llroundf(s->timesteps[k]);
        if (ints) check(ctx, f, name, CNET_I64, ints, s->num_steps, sum);
        free(ints);
    } else {
        check(ctx, f, name, CNET_F32, s->timesteps, s->num_steps, sum);
    }
    snprintf(name, sizeof name, "%sinit_noise_sigma", prefix);
    check(ctx, f, name, CNET_F32, &s->init_noise_sigma, 1, sum);
    snprintf(name, sizeof name, "%ssigmas", prefix);
    if (st_find(f, name) || s->num_sigmas)
        check(ctx, f, name, CNET_F32, s->sigmas, s->num_sigmas, sum);
}

/* The trajectory: sample.0 -> step k with model_output.k -> sample.k+1. */
static int check_trajectory(golden_ctx *ctx, const st_file *f, sched *s, const char *prefix,
                            const traj_bufs *b, long n, sched_summary *sum, cnet_error *err) {
    cnet_backend *be = s->be;
    char name[GOLDEN_NAME_MAX];
    int rc;
    snprintf(name, sizeof name, "%ssample.0", prefix);
    if ((rc = upload(be, b->x, b->host, f, name, n, err))) return rc;
    for (int k = 0; k < s->num_steps; k++) {
        snprintf(name, sizeof name, "%sscaled_input.%d", prefix, k);
        if (st_find(f, name)) {
            if ((rc = sched_scale_model_input(s, b->scaled, b->x, k, n, err))) return rc;
            be->download(be, b->host, b->scaled, (size_t)n * sizeof(float));
            check(ctx, f, name, CNET_F32, b->host, n, sum);
        }
        snprintf(name, sizeof name, "%smodel_output.%d", prefix, k);
        if ((rc = upload(be, b->mo, b->host, f, name, n, err))) return rc;
        snprintf(name, sizeof name, "%snoise.%d", prefix, k);
        const int has_noise = st_find(f, name) != NULL;
        if (has_noise && (rc = upload(be, b->noise, b->host, f, name, n, err))) return rc;
        char x0_name[GOLDEN_NAME_MAX];
        snprintf(x0_name, sizeof x0_name, "%spred_original_sample.%d", prefix, k);
        const int has_x0 = st_find(f, x0_name) != NULL;
        if ((rc = sched_step(s, b->x, has_x0 ? b->x0 : NULL, b->mo, b->x,
                             has_noise ? b->noise : NULL, k, n, err)))
            return rc;
        snprintf(name, sizeof name, "%ssample.%d", prefix, k + 1);
        be->download(be, b->host, b->x, (size_t)n * sizeof(float));
        check(ctx, f, name, CNET_F32, b->host, n, sum);
        if (has_x0) {
            be->download(be, b->host, b->x0, (size_t)n * sizeof(float));
            check(ctx, f, x0_name, CNET_F32, b->host, n, sum);
        }
    }
    return 0;
}

static int check_sampler(golden_ctx *ctx, const st_file *f, cnet_backend *be, const char *id,
                         const char *config_text, cnet_error *err) {
    char prefix[sizeof "sched.." + GOLDEN_RUN_MAX], name[GOLDEN_NAME_MAX];
    snprintf(prefix, sizeof prefix, "sched.%s.", id);
    cnet_sched_config cfg;
    int rc = load_config_text(&cfg, config_text, -1, err);
    if (rc) return cnet_error_prefix(err, "metadata sched.%s.config", id);
    snprintf(name, sizeof name, "%stimesteps", prefix);
    const st_entry *ts = st_find(f, name);
    snprintf(name, sizeof name, "%ssample.0", prefix);
    const st_entry *x = need_f32(f, name, err);
    if (!ts || !x) {
        cnet_sched_config_free(&cfg);
        return ts ? err->code
                  : cnet_fail(err, CNET_ENOTFOUND, "%s: no %stimesteps", f->path, prefix);
    }
    const long n = (long)cnet_tensor_numel(&x->view);
    const int steps = (int)cnet_tensor_numel(&ts->view) - (cfg.kind == CNET_SCHED_PNDM);
    sched s;
    rc = sched_init(&s, be, &cfg, n, err);
    cnet_sched_config_free(&cfg);
    if (rc) return rc;
    traj_bufs b;
    sched_summary sum = {0};
    if (bufs_alloc(&b, be, n)) rc = cnet_fail(err, CNET_ENOMEM, "golden: out of memory");
    if (!rc) rc = sched_set_timesteps(&s, steps, err);
    if (!rc) {
        check_tables(ctx, f, &s, prefix, &sum);
        rc = check_trajectory(ctx, f, &s, prefix, &b, n, &sum, err);
    }
    if (!rc) {
        snprintf(name, sizeof name, "sched.%s (%s, %d steps)", id, cnet_sched_kind_name(s.cfg.kind),
                 steps);
        print_summary(name, &sum);
    }
    bufs_free(&b, be);
    sched_free(&s);
    return rc;
}

/* DDPM training noise: betas, alphas_cumprod, add_noise, get_velocity. */
static int check_ddpm(golden_ctx *ctx, const st_file *f, cnet_backend *be, cnet_error *err) {
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/scheduler/scheduler_config.json", ctx->model_dir);
    cnet_sched_config cfg;
    int rc = cnet_sched_config_load(&cfg, path, CNET_SCHED_DDPM, err);
    if (rc) return rc;
    sched s;
    rc = sched_init(&s, be, &cfg, 0, err);
    cnet_sched_config_free(&cfg);
    if (rc) return rc;
    sched_summary sum = {0};
    const int T = s.cfg.num_train_timesteps;
    check(ctx, f, "sched.ddpm.betas", CNET_F32, s.betas, T, &sum);
    check(ctx, f, "sched.ddpm.alphas_cumprod", CNET_F32, s.alphas_cumprod, T, &sum);

    const st_entry *x0 = need_f32(f, "sched.ddpm.in.original_samples", err);
    const st_entry *ts = st_find(f, "sched.ddpm.in.timesteps");
    if (!x0 || !ts || ts->view.dtype != CNET_I64 || ts->view.ndim != 1) {
        sched_free(&s);
        return x0 ? cnet_fail(err, CNET_EFORMAT, "%s: sched.ddpm.in.timesteps: want I64 [B]",
                              f->path)
                  : err->code;
    }
    const int B = (int)ts->view.shape[0];
    const long total = (long)cnet_tensor_numel(&x0->view), per = total / (B ? B : 1);
    int64_t *t = malloc((size_t)(B ? B : 1) * sizeof *t);
    float *host = malloc((size_t)total * sizeof(float));
    float *d_x0 = be->alloc(be, (size_t)total * sizeof(float));
    float *d_noise = be->alloc(be, (size_t)total * sizeof(float));
    float *d_out = be->alloc(be, (size_t)total * sizeof(float));
    if (!t || !host || !d_x0 || !d_noise || !d_out) rc = cnet_fail(err, CNET_ENOMEM, "golden: oom");
    if (!rc) {
        memcpy(t, ts->view.data, (size_t)B * sizeof *t);
        rc = upload(be, d_x0, host, f, "sched.ddpm.in.original_samples", total, err);
    }
    if (!rc) rc = upload(be, d_noise, host, f, "sched.ddpm.in.noise", total, err);
    if (!rc) rc = sched_add_noise(&s, d_out, d_x0, d_noise, t, B, per, err);
    if (!rc) {
        be->download(be, host, d_out, (size_t)total * sizeof(float));
        check(ctx, f, "sched.ddpm.add_noise", CNET_F32, host, total, &sum);
        rc = sched_get_velocity(&s, d_out, d_x0, d_noise, t, B, per, err);
    }
    if (!rc) {
        be->download(be, host, d_out, (size_t)total * sizeof(float));
        check(ctx, f, "sched.ddpm.get_velocity", CNET_F32, host, total, &sum);
        print_summary("sched.ddpm (DDPMScheduler, training noise)", &sum);
    }
    free(t);
    free(host);
    float *dev[] = {d_x0, d_noise, d_out};
    for (int i = 0; i < 3; i++)
        if (dev[i]) be->free(be, dev[i]);
    sched_free(&s);
    return rc;
}

int golden_check_schedulers(golden_ctx *ctx, const st_file *f, cnet_error *err) {
    cnet_backend be;
    int rc = cnet_backend_open(&be, ctx->device, NULL, 0, err);
    if (rc) return rc;
    if (st_find(f, "sched.ddpm.betas")) rc = check_ddpm(ctx, f, &be, err);
    for (int i = 0; i < f->n_meta && !rc; i++) {
        const char *key = f->meta_keys[i];
        size_t len = strlen(key);
        if (strncmp(key, "sched.", 6) != 0 || len <= 13 || strcmp(key + len - 7, ".config") != 0)
            continue;
        if (len - 13 > GOLDEN_RUN_MAX) {
            rc =
                cnet_fail(err, CNET_EFORMAT, "%s: the scheduler id of '%s' is longer than %d bytes",
                          f->path, key, GOLDEN_RUN_MAX);
            break;
        }
        char id[GOLDEN_RUN_MAX + 1];
        snprintf(id, sizeof id, "%.*s", (int)(len - 13), key + 6);
        rc = check_sampler(ctx, f, &be, id, f->meta_values[i], err);
    }
    cnet_backend_free(&be);
    return rc;
}
