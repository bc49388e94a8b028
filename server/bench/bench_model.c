/* cnet bench --model DIR --task text_encoder|vae_decode|cn_unet_step|generate|
 *            train_step|train_step_cached [--device D] [--mixed_precision P]
 *            [--batch N] [--use_8bit_adam] [--gradient_checkpointing]
 *            [--set_grads_to_none] [--iters N] [--json]
 * (the command line is read by server/cli/cmd_bench.c into a bench_model_opts)
 *
 * Times one model task of a diffusers pipeline folder on the backend
 * --device names (cpu by default; cuda or cuda:N, falling back to the CPU
 * with a note where no GPU is visible):
 *   text_encoder  CLIP text encoder on one prompt of 77 tokens; with a
 *                 text_encoder_2/ (SDXL) both encoders as SDXL's
 *                 encode_prompt runs them (penultimate hidden states,
 *                 text_encoder_2's projected text_embeds);
 *   vae_decode    VAE decode of one latent at the VAE's sample size;
 *   cn_unet_step  one denoising step's networks: ControlNet then UNet with
 *                 its residuals, on a classifier-free-guidance batch of 2 at
 *                 the UNet's sample size, 77 text tokens (an SDXL UNet also
 *                 gets its added conditions: pooled text_embeds and the
 *                 time ids of a full-size, uncropped image);
 *   generate      one whole image through engine/pipeline/pipeline.h: 20 UniPC steps
 *                 (the folder's scheduler config read as UniPC), CFG 7.5
 *                 with a negative prompt, the pipeline's ControlNet (DIR's
 *                 controlnet/), output at the UNet's sample size x the VAE
 *                 factor (256x256 for the small model), VAE decode included.
 * One warm-up run (scratch and BLAS buffers reach their high-water mark),
 * then --iters timed runs; prints the median milliseconds, the peak
 * resident memory of the process (getrusage), which includes the weights on
 * the CPU, and on a GPU the device memory high-water mark
 * (cnet_backend_peak_device_bytes), and the FLOPs of the products one run
 * issues through the backend table (bench_flops.h) with the GFLOP/s they
 * make at the median. The training tasks are server/bench/bench_train.c's.
 * Inputs are Philox normals (conditioning image: uniform [0, 1) like an
 * image); values do not change the time. Nothing is checked here: the
 * goldens do that. */
#include "server/bench/bench_model.h"

#include <limits.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "engine/models/clip_text.h"
#include "engine/models/controlnet.h"
#include "engine/pipeline/sd_base.h"
#include "engine/models/unet.h"
#include "engine/models/vae.h"
#include "server/bench/bench_flops.h"

/* Text length of every task (CLIP's model_max_length in SD). */
#define BENCH_TEXT_TOKENS 77
/* Batch of cn_unet_step: uncond + cond. */
#define BENCH_CFG_BATCH 2
typedef enum { TASK_TEXT, TASK_VAE_DECODE, TASK_CN_UNET, TASK_GENERATE, TASK_COUNT } bench_task;
static const char *const task_names[TASK_COUNT] = {"text_encoder", "vae_decode", "cn_unet_step",
                                                   "generate"};

/* The loaded models and buffers of one task. */
typedef struct bench_state {
    bench_task task;
    cnet_backend be;
    cnet_arena scratch;
    clip_text_model text, text2; /* text2: SDXL's text_encoder_2 */
    int have_text2;
    vae_model vae;
    unet_model unet;
    controlnet_model cn;
    int64_t ids[BENCH_TEXT_TOKENS];
    int B, h, w, H, W, Nt;
    float timesteps[BENCH_CFG_BATCH];
    float *in, *out, *ehs, *cond, *mid, *out2, *pooled; /* device buffers */
    /* SDXL's added conditions (cn_unet_step): pooled = text_embeds [B, Dp] */
    float time_ids[BENCH_CFG_BATCH * CNET_TIME_IDS];
    unet_added_cond added;
    int with_added;
    float *down[UNET_MAX_SKIPS];
    int n_down;
    /* generate */
    sd_base base;
    cnet_sched_config sched;
    pipe_request req;
    float *control_host, *image_host;
    int have_base, have_cn, have_sched;
} bench_state;

int bench_open_backend(cnet_backend *be, const char *device, cnet_precision precision,
                       cnet_error *err) {
    char note[320];
    int rc = cnet_backend_open(be, device, note, sizeof note, err);
    if (rc) return rc;
    if (note[0]) fprintf(stderr, "cnet bench: %s\n", note);
    cnet_backend_set_precision(be, precision, note, sizeof note);
    if (note[0]) fprintf(stderr, "cnet bench: %s\n", note);
    return 0;
}

static float *dev_random(bench_state *s, size_t n, uint64_t seed, int uniform01, cnet_error *err) {
    float *x = s->be.alloc(&s->be, (n ? n : 1) * sizeof(float));
    if (!x) {
        cnet_fail(err, CNET_ENOMEM, "bench: out of memory for %zu floats", n);
        return NULL;
    }
    s->be.philox_normal(&s->be, x, (long)n, seed, 0);
    if (uniform01) { /* normals squashed into [0, 1): image-like values */
        float *host = malloc(n * sizeof(float));
        if (!host) {
            s->be.free(&s->be, x);
            cnet_fail(err, CNET_ENOMEM, "bench: out of memory");
            return NULL;
        }
        s->be.download(&s->be, host, x, n * sizeof(float));
        for (size_t i = 0; i < n; i++)
            host[i] = 0.5f + 0.5f * host[i] / (1.0f + (host[i] < 0 ? -host[i] : host[i]));
        s->be.upload(&s->be, x, host, n * sizeof(float));
        free(host);
    }
    return x;
}

static int component(char *buf, const char *model, const char *name, cnet_error *err) {
    if (snprintf(buf, PATH_MAX, "%s/%s", model, name) >= PATH_MAX)
        return cnet_fail(err, CNET_ELIMIT, "%s: path too long", model);
    return 0;
}

/* Frozen weights in the 16-bit type of the precision, as cnet generate and
 * cnet train keep them (float32 on the CPU). */
static int store_weights(bench_state *s, cnet_params *p, cnet_error *err) {
    return params_store16(p, cnet_precision_dtype(s->be.precision), err);
}

static int setup_text(bench_state *s, const char *model, cnet_error *err) {
    char dir[PATH_MAX], cfg2[PATH_MAX];
    int rc = component(dir, model, "text_encoder", err);
    if (!rc) rc = clip_text_open(&s->text, &s->be, dir, err);
    if (!rc) rc = store_weights(s, &s->text.params, err);
    if (!rc) rc = component(cfg2, model, "text_encoder_2/config.json", err);
    if (rc) return rc;
    size_t scratch = clip_text_scratch_bytes(&s->text, 1, BENCH_TEXT_TOKENS);
    if (access(cfg2, R_OK) == 0) {
        if ((rc = component(dir, model, "text_encoder_2", err)) ||
            (rc = clip_text_open(&s->text2, &s->be, dir, err)))
            return rc;
        s->have_text2 = 1;
        if ((rc = store_weights(s, &s->text2.params, err))) return rc;
        if (s->text2.projection_dim < 1)
            return cnet_fail(err, CNET_EINVAL,
                             "%s: no text_projection (not "
                             "CLIPTextModelWithProjection)",
                             dir);
        size_t b = clip_text_scratch_bytes(&s->text2, 1, BENCH_TEXT_TOKENS);
        scratch = b > scratch ? b : scratch;
        s->out2 = s->be.alloc(&s->be, (size_t)BENCH_TEXT_TOKENS * s->text2.hidden * sizeof(float));
        s->pooled = s->be.alloc(&s->be, (size_t)s->text2.projection_dim * sizeof(float));
        if (!s->out2 || !s->pooled) return cnet_fail(err, CNET_ENOMEM, "bench: out of memory");
    }
    const int vocab =
        s->have_text2 && s->text2.vocab < s->text.vocab ? s->text2.vocab : s->text.vocab;
    for (int i = 0; i < BENCH_TEXT_TOKENS; i++)
        s->ids[i] = (int64_t)((i * 7919u) % (unsigned)vocab);
    s->Nt = BENCH_TEXT_TOKENS;
    s->out = s->be.alloc(&s->be, (size_t)s->Nt * s->text.hidden * sizeof(float));
    s->mid = s->be.alloc(&s->be, (size_t)s->text.hidden * sizeof(float));
    if (!s->out || !s->mid) return cnet_fail(err, CNET_ENOMEM, "bench: out of memory");
    return cnet_arena_init(&s->scratch, &s->be, scratch, "bench scratch", err);
}

static int setup_vae(bench_state *s, const char *model, cnet_error *err) {
    char dir[PATH_MAX];
    int rc = component(dir, model, "vae", err);
    if (!rc) rc = vae_open(&s->vae, &s->be, dir, err);
    if (!rc) rc = store_weights(s, &s->vae.params, err);
    if (rc) return rc;
    const int f = vae_factor(&s->vae), Lc = s->vae.cfg.latent_channels;
    s->B = 1, s->H = s->W = s->vae.cfg.sample_size, s->h = s->H / f, s->w = s->W / f;
    if (s->h < 1 || s->h * f != s->H)
        return cnet_fail(err, CNET_EINVAL, "%s: sample_size %d is not a multiple of %d", dir, s->H,
                         f);
    s->in = dev_random(s, (size_t)s->h * s->w * Lc, 1, 0, err);
    s->out = s->be.alloc(&s->be, (size_t)s->H * s->W * s->vae.cfg.out_channels * sizeof(float));
    if (!s->in || !s->out) return cnet_fail(err, CNET_ENOMEM, "bench: out of memory");
    return cnet_arena_init(&s->scratch, &s->be, vae_scratch_bytes(&s->vae, 1, s->H, s->W),
                           "bench scratch", err);
}

static int setup_cn_unet(bench_state *s, const char *model, cnet_error *err) {
    char dir[PATH_MAX];
    int rc = component(dir, model, "unet", err);
    if (!rc) rc = unet_open(&s->unet, &s->be, dir, err);
    if (!rc) rc = component(dir, model, "controlnet", err);
    if (!rc) rc = controlnet_open(&s->cn, &s->be, dir, err);
    if (!rc) rc = store_weights(s, &s->unet.params, err);
    if (!rc) rc = store_weights(s, &s->cn.params, err);
    if (rc) return rc;
    const cnet_unet_config *L = &s->unet.enc.cfg;
    if (L->sample_size < 1)
        return cnet_fail(err, CNET_EINVAL, "%s/unet: config has no sample_size", model);
    const int f = controlnet_image_factor(&s->cn), Dt = L->cross_attention_dim[0];
    s->B = BENCH_CFG_BATCH, s->h = s->w = L->sample_size, s->H = s->h * f, s->W = s->w * f;
    s->Nt = BENCH_TEXT_TOKENS;
    s->timesteps[0] = s->timesteps[1] = 500.0f;
    if (L->add_text_time) { /* SDXL: pooled text_embeds and the time ids of an H x W image */
        const int Dp =
            L->projection_class_embeddings_input_dim - CNET_TIME_IDS * L->addition_time_embed_dim;
        if (!(s->pooled = dev_random(s, (size_t)s->B * Dp, 4, 0, err))) return err->code;
        for (int b = 0; b < s->B; b++) {
            const float ids[CNET_TIME_IDS] = {(float)s->H, (float)s->W, 0,
                                              0,           (float)s->H, (float)s->W};
            memcpy(s->time_ids + b * CNET_TIME_IDS, ids, sizeof ids);
        }
        s->added = (unet_added_cond){.text_embeds = s->pooled, .time_ids = s->time_ids};
        s->with_added = 1;
    }
    unet_sizes sz;
    if ((rc = unet_encoder_sizes(&s->unet.enc, s->B, s->h, s->w, &sz, err))) return rc;
    s->in = dev_random(s, (size_t)s->B * s->h * s->w * L->in_channels, 1, 0, err);
    s->ehs = dev_random(s, (size_t)s->B * s->Nt * Dt, 2, 0, err);
    s->cond = dev_random(s, (size_t)s->B * s->H * s->W * s->cn.cond_channels, 3, 1, err);
    s->out = s->be.alloc(&s->be, (size_t)s->B * s->h * s->w * L->out_channels * sizeof(float));
    s->mid = s->be.alloc(&s->be, sz.mid_floats * sizeof(float));
    if (!s->in || !s->ehs || !s->cond || !s->out || !s->mid)
        return cnet_fail(err, CNET_ENOMEM, "bench: out of memory");
    s->n_down = sz.n_skips;
    for (int i = 0; i < sz.n_skips; i++)
        if (!(s->down[i] = s->be.alloc(&s->be, sz.skip_floats[i] * sizeof(float))))
            return cnet_fail(err, CNET_ENOMEM, "bench: out of memory");
    size_t a = unet_scratch_bytes(&s->unet, s->B, s->h, s->w, s->Nt);
    size_t b = controlnet_scratch_bytes(&s->cn, s->B, s->h, s->w, s->Nt);
    return cnet_arena_init(&s->scratch, &s->be, a > b ? a : b, "bench scratch", err);
}

static int setup_generate(bench_state *s, const char *model, cnet_error *err) {
    char dir[PATH_MAX];
    int rc = sd_base_open(&s->base, &s->be, model, err);
    if (rc) return rc;
    s->have_base = 1;
    if ((rc = component(dir, model, "controlnet", err)) ||
        (rc = controlnet_open(&s->cn, &s->be, dir, err)))
        return rc;
    s->have_cn = 1;
    if ((rc = sd_base_store16(&s->base, s->be.precision, err)) ||
        (rc = store_weights(s, &s->cn.params, err)))
        return rc;
    if ((rc = sd_base_scheduler(&s->base, CNET_SCHED_UNIPC, &s->sched, err))) return rc;
    s->have_sched = 1;
    const cnet_unet_config *L = &s->base.unet.enc.cfg;
    if (L->sample_size < 1)
        return cnet_fail(err, CNET_EINVAL, "%s/unet: config has no sample_size", model);
    s->H = s->W = L->sample_size * vae_factor(&s->base.vae);
    const size_t n = (size_t)s->H * s->W * 3;
    float *dev = dev_random(s, n, 3, 1, err);
    s->control_host = malloc(n * sizeof(float));
    s->image_host = malloc(n * sizeof(float));
    if (!dev || !s->control_host || !s->image_host) {
        if (dev) s->be.free(&s->be, dev);
        return cnet_fail(err, CNET_ENOMEM, "bench: out of memory");
    }
    s->be.download(&s->be, s->control_host, dev, n * sizeof(float));
    s->be.free(&s->be, dev);
    s->req = (pipe_request){.prompt = "a photograph of a lighthouse on a rocky coast at dusk",
                            .negative_prompt = "blurry, low quality",
                            .steps = BENCH_GENERATE_STEPS,
                            .guidance = BENCH_GENERATE_GUIDANCE,
                            .seed = 1,
                            .width = s->W,
                            .height = s->H,
                            .num_images = 1,
                            .n_controlnets = 1};
    s->req.controlnets[0] = (pipe_controlnet){
        .model = &s->cn, .image = s->control_host, .scale = 1.0f, .start = 0.0f, .end = 1.0f};
    return 0;
}

static int run_task(bench_state *s, cnet_error *err) {
    int rc = 0;
    switch (s->task) {
    case TASK_TEXT:
        if (!s->have_text2)
            rc = clip_text_forward(&s->text, &s->scratch, s->out, s->mid, s->ids, 1, s->Nt, 0, err);
        else if (!(rc =
                       clip_text_forward_states(&s->text, &s->scratch, s->out, s->text.n_layers - 1,
                                                NULL, NULL, s->ids, 1, s->Nt, err)))
            rc = clip_text_forward_states(&s->text2, &s->scratch, s->out2, s->text2.n_layers - 1,
                                          NULL, s->pooled, s->ids, 1, s->Nt, err);
        break;
    case TASK_VAE_DECODE:
        rc = vae_decode(&s->vae, &s->scratch, s->out, s->in, 1, s->h, s->w, err);
        break;
    case TASK_CN_UNET: {
        const unet_added_cond *added = s->with_added ? &s->added : NULL;
        rc = controlnet_forward(&s->cn, &s->scratch, s->down, s->mid, s->in, s->cond, s->timesteps,
                                s->ehs, added, 1.0f, 0, s->B, s->h, s->w, s->Nt, NULL, NULL, err);
        if (!rc)
            rc = unet_forward(&s->unet, &s->scratch, s->out, s->in, s->timesteps, s->ehs, added,
                              (const float *const *)s->down, s->mid, s->B, s->h, s->w, s->Nt, NULL,
                              NULL, err);
        break;
    }
    case TASK_GENERATE: {
        pipe_models m = sd_base_models(&s->base);
        rc = pipeline_generate(&m, &s->sched, &s->req, s->image_host, NULL, err);
        break;
    }
    case TASK_COUNT:
        break;
    }
    s->be.synchronize(&s->be);
    return rc;
}

static void state_free(bench_state *s) {
    float *bufs[] = {s->in, s->out, s->ehs, s->cond, s->mid, s->out2, s->pooled};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (bufs[i]) s->be.free(&s->be, bufs[i]);
    for (int i = 0; i < s->n_down; i++)
        if (s->down[i]) s->be.free(&s->be, s->down[i]);
    cnet_arena_free(&s->scratch);
    if (s->task == TASK_TEXT) clip_text_free(&s->text);
    if (s->have_text2) clip_text_free(&s->text2);
    if (s->task == TASK_VAE_DECODE) vae_free(&s->vae);
    if (s->task == TASK_CN_UNET) {
        controlnet_free(&s->cn);
        unet_free(&s->unet);
    }
    free(s->control_host);
    free(s->image_host);
    if (s->have_sched) cnet_sched_config_free(&s->sched);
    if (s->have_cn) controlnet_free(&s->cn);
    if (s->have_base) sd_base_free(&s->base);
    cnet_backend_free(&s->be);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

void bench_report(const bench_model_opts *o, const char *task, double *t, cnet_backend *be,
                  double flop, const char *extra) {
    const int iters = o->iters;
    qsort(t, (size_t)iters, sizeof t[0], cmp_double);
    double median = iters % 2 ? t[iters / 2] : 0.5 * (t[iters / 2 - 1] + t[iters / 2]);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double rss_mb = (double)ru.ru_maxrss / 1024.0;
    const int on_gpu = strcmp(be->name, "cpu") != 0;
    const double dev_mb = (double)cnet_backend_peak_device_bytes(be) / (1024.0 * 1024.0);
    char dev[48] = "null";
    if (on_gpu) snprintf(dev, sizeof dev, "%.1f", dev_mb);
    const double gflop = flop * 1e-9, gflops = median > 0 ? gflop / (median * 1e-3) : 0;
    if (o->json)
        printf("{\"task\":\"%s\",\"device\":\"%s\",\"mixed_precision\":\"%s\",\"batch\":%d,"
               "\"median_ms\":%.2f,\"peak_rss_mb\":%.1f,\"peak_device_mb\":%s,\"gflop\":%.3f,"
               "\"gflops\":%.1f%s%s}\n",
               task, be->name, cnet_precision_name(be->precision), o->batch, median, rss_mb, dev,
               gflop, gflops, extra ? "," : "", extra ? extra : "");
    else
        printf("%-14s median %9.2f ms  (min %.2f, max %.2f, %d iters, batch %d, %s, %s, %d "
               "threads)  peak RSS %.1f MB%s%s%s  products %.2f GFLOP, %.1f GFLOP/s\n",
               task, median, t[0], t[iters - 1], iters, o->batch, be->name,
               cnet_precision_name(be->precision), omp_get_max_threads(), rss_mb,
               on_gpu ? ", peak device " : "", on_gpu ? dev : "", on_gpu ? " MB" : "", gflop,
               gflops);
}

int bench_model_run(const bench_model_opts *opts) {
    bench_model_opts o = *opts;
    cnet_error err = {0};
    if (o.iters < 1 || o.iters > BENCH_MODEL_MAX_ITERS) {
        fprintf(stderr, "cnet bench: iters %d is outside 1..%d\n", o.iters, BENCH_MODEL_MAX_ITERS);
        return 2;
    }
    const int train = o.task && strncmp(o.task, "train_step", 10) == 0;
    if ((o.batch || o.use_8bit_adam || o.gradient_checkpointing || o.set_grads_to_none) && !train) {
        fprintf(stderr, "cnet bench: --batch, --use_8bit_adam, --gradient_checkpointing and "
                        "--set_grads_to_none apply to train_step and train_step_cached\n");
        return 2;
    }
    if (!o.batch) o.batch = o.task && strcmp(o.task, "cn_unet_step") == 0 ? BENCH_CFG_BATCH : 1;
    if (o.model && train) return bench_train(&o);
    bench_state s;
    memset(&s, 0, sizeof s);
    s.task = TASK_COUNT;
    for (int t = 0; o.task && t < TASK_COUNT; t++)
        if (strcmp(o.task, task_names[t]) == 0) s.task = (bench_task)t;
    if (!o.model || s.task == TASK_COUNT) {
        fprintf(stderr,
                "cnet bench: need --model DIR and --task %s|%s|%s|%s|train_step|"
                "train_step_cached\n",
                task_names[0], task_names[1], task_names[2], task_names[3]);
        return 2;
    }
    int rc = bench_open_backend(&s.be, o.device, o.precision, &err);
    if (rc) {
        fprintf(stderr, "cnet bench: %s\n", err.msg);
        return rc == CNET_EINVAL ? 2 : 1;
    }
    rc = s.task == TASK_TEXT         ? setup_text(&s, o.model, &err)
         : s.task == TASK_VAE_DECODE ? setup_vae(&s, o.model, &err)
         : s.task == TASK_CN_UNET    ? setup_cn_unet(&s, o.model, &err)
                                     : setup_generate(&s, o.model, &err);
    double t[BENCH_MODEL_MAX_ITERS];
    bench_flops_wrap(&s.be);
    if (!rc) rc = run_task(&s, &err); /* warm-up, its FLOPs those of every run */
    const double flop = bench_flops_take();
    for (int i = 0; i < o.iters && !rc; i++) {
        double t0 = omp_get_wtime();
        rc = run_task(&s, &err);
        t[i] = (omp_get_wtime() - t0) * 1e3;
    }
    if (!rc) rc = cnet_backend_status(&s.be, &err);
    if (!rc) bench_report(&o, task_names[s.task], t, &s.be, flop, NULL);
    state_free(&s);
    if (rc) {
        fprintf(stderr, "cnet bench: %s\n", err.msg);
        return 1;
    }
    return 0;
}
