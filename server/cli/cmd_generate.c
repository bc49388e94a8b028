/* cnet generate --model DIR --controlnet DIR[,DIR...] --image FILE[,FILE...]
 *               --prompt TEXT [options]   (gen_usage in gen_args.c lists them)
 *
 * Text-to-image with ControlNets, as diffusers'
 * StableDiffusionControlNetPipeline(...)(prompt, image, ...) does it:
 *   1. the control images are decoded (pixel limit --max-pixels) and, with
 *      --preprocess canny, turned into their canny edges at their own size
 *      (the diffusers ControlNet recipe: cv2.Canny, then the pipeline);
 *   2. the base pipeline folder (engine/pipeline/sd_base.h), its scheduler config
 *      read as the --scheduler class, and each ControlNet are loaded; a
 *      ControlNet that does not fit the base model is refused by name;
 *   3. the output size is --width/--height or the first control image's
 *      size rounded down to the VAE factor, and every control image is
 *      resized to it as the pipeline's prepare_image does
 *      (engine/image/preprocess.h);
 *   4. engine/pipeline/pipeline.h runs, reporting progress on stderr;
 *   5. the images are quantised as diffusers' numpy_to_pil does
 *      (round(x * 255), half to even) and written all-or-nothing as PNGs
 *      with an A1111 "parameters" chunk (gen_output.c, gen_infotext.c).
 * Bad input is reported with the file, option or model field named; exit
 * status 0 ok, 1 failure, 2 usage error; no output file on any failure. */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "engine/image/canny.h"
#include "engine/image/preprocess.h"
#include "engine/pipeline/sd_base.h"
#include "server/cli/commands.h"
#include "server/cli/generate.h"

/* Everything one run holds; gen_run_free releases what was acquired. */
typedef struct gen_run {
    cnet_backend be;
    int have_be, have_base, have_sched;
    sd_base base;
    cnet_sched_config sched;
    controlnet_model models[PIPE_MAX_CONTROLNETS]; /* distinct --controlnet folders */
    int n_models;
    controlnet_model *model_of[PIPE_MAX_CONTROLNETS]; /* per ControlNet entry */
    image_rgb8 raw[PIPE_MAX_CONTROLNETS];             /* decoded (or canny) control images */
    float *control[PIPE_MAX_CONTROLNETS];             /* [H, W, 3] in [0, 1] */
    float *pixels;                                    /* [N, H, W, 3] pipeline output */
    image_rgb8 images[PIPE_MAX_IMAGES];
    char *texts[PIPE_MAX_IMAGES];
    int width, height;
} gen_run;

static void gen_run_free(gen_run *g) {
    for (int i = 0; i < PIPE_MAX_IMAGES; i++) {
        image_free(&g->images[i]);
        free(g->texts[i]);
    }
    free(g->pixels);
    for (int k = 0; k < PIPE_MAX_CONTROLNETS; k++) {
        image_free(&g->raw[k]);
        free(g->control[k]);
    }
    for (int k = 0; k < g->n_models; k++) controlnet_free(&g->models[k]);
    if (g->have_sched) cnet_sched_config_free(&g->sched);
    if (g->have_base) sd_base_free(&g->base);
    if (g->have_be) cnet_backend_free(&g->be);
}

static double seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Step 1: decode every control image, and canny where asked. */
static int load_images(gen_run *g, const gen_options *o, cnet_error *err) {
    for (int k = 0; k < o->n_controls; k++) {
        const gen_control *c = &o->controls[k];
        int rc = image_load(&g->raw[k], c->image, o->max_pixels, err);
        if (rc) {
            cnet_error_prefix(err, "--image");
            return rc;
        }
        if (c->pre == GEN_PRE_CANNY) {
            image_rgb8 edges;
            if ((rc = canny_rgb8(&edges, &g->raw[k], o->low, o->high, err))) {
                cnet_error_prefix(err, "--preprocess canny on %s", c->image);
                return rc;
            }
            image_free(&g->raw[k]);
            g->raw[k] = edges;
        }
    }
    return 0;
}

/* Step 2: backend, base model, scheduler config and ControlNets. */
static int load_models(gen_run *g, const gen_options *o, cnet_error *err) {
    char note[256];
    int rc = cnet_backend_open(&g->be, o->device, note, sizeof note, err);
    if (rc) return rc;
    g->have_be = 1;
    if (note[0]) fprintf(stderr, "cnet generate: %s\n", note);
    cnet_backend_set_precision(&g->be, o->mixed_precision, note, sizeof note);
    if (note[0]) fprintf(stderr, "cnet generate: %s\n", note);
    if ((rc = sd_base_open(&g->base, &g->be, o->model, err))) return rc;
    g->have_base = 1;
    /* a pipeline run with torch_dtype: the weights in 16 bits too */
    const cnet_dtype weights = cnet_precision_dtype(g->be.precision);
    if ((rc = sd_base_store16(&g->base, g->be.precision, err))) return rc;
    if (weights != CNET_F32)
        fprintf(stderr, "cnet generate: frozen weights stored in %s (%.1f MB)\n",
                cnet_dtype_name(weights), (double)sd_base_bytes(&g->base) / 1e6);
    if ((rc = sd_base_scheduler(&g->base, o->sched_kind, &g->sched, err))) return rc;
    g->have_sched = 1;
    pipe_models pm = sd_base_models(&g->base);
    for (int k = 0; k < o->n_controls; k++) {
        const char *dir = o->controls[k].dir;
        for (int j = 0; j < k && !g->model_of[k]; j++)
            if (strcmp(o->controls[j].dir, dir) == 0) g->model_of[k] = g->model_of[j];
        if (g->model_of[k]) continue;
        controlnet_model *m = &g->models[g->n_models];
        if ((rc = controlnet_open(m, &g->be, dir, err))) {
            cnet_error_prefix(err, "--controlnet %s", dir);
            return rc;
        }
        g->n_models++;
        g->model_of[k] = m;
        if ((rc = params_store16(&m->params, weights, err))) {
            cnet_error_prefix(err, "--controlnet %s", dir);
            return rc;
        }
        if ((rc = pipeline_check_controlnet(&pm, m, err))) {
            cnet_error_prefix(err, "--controlnet %s (for --model %s)", dir, o->model);
            return rc;
        }
    }
    return 0;
}

/* Step 3: the output size and the control images at that size. */
static int prepare_controls(gen_run *g, const gen_options *o, cnet_error *err) {
    int rc = preprocess_control_size(g->raw[0].width, g->raw[0].height, o->width, o->height,
                                     vae_factor(&g->base.vae), &g->width, &g->height, err);
    if (rc) {
        cnet_error_prefix(err, "--image %s", o->controls[0].image);
        return rc;
    }
    if (g->width % 8 || g->height % 8) /* the pipeline needs multiples of 8 */
        return cnet_fail(err, CNET_EINVAL,
                         "--image %s: its size %dx%d gives an output of %dx%d, not multiples of 8; "
                         "give --width and --height",
                         o->controls[0].image, g->raw[0].width, g->raw[0].height, g->width,
                         g->height);
    const int64_t pixels = (int64_t)g->width * g->height;
    if (pixels > o->max_pixels)
        return cnet_fail(err, CNET_ELIMIT,
                         "output size %dx%d = %lld pixels is over --max-pixels %lld", g->width,
                         g->height, (long long)pixels, (long long)o->max_pixels);
    for (int k = 0; k < o->n_controls; k++) {
        g->control[k] = malloc((size_t)pixels * 3 * sizeof(float));
        if (!g->control[k]) return cnet_fail(err, CNET_ENOMEM, "out of memory for control images");
        if ((rc = preprocess_control(g->control[k], &g->raw[k], g->width, g->height, err))) {
            cnet_error_prefix(err, "--image %s", o->controls[k].image);
            return rc;
        }
    }
    return 0;
}

/* Step 4: the pipeline run. */
static int run_pipeline(gen_run *g, const gen_options *o, cnet_error *err) {
    const size_t n = (size_t)o->num_images * g->width * g->height * 3;
    g->pixels = malloc(n * sizeof(float));
    if (!g->pixels) return cnet_fail(err, CNET_ENOMEM, "out of memory for %zu pixels", n / 3);
    pipe_request r = {
        .prompt = o->prompt,
        .negative_prompt = o->negative_prompt,
        .steps = o->steps,
        .guidance = o->guidance,
        .seed = o->seed,
        .width = g->width,
        .height = g->height,
        .num_images = o->num_images,
        .guess_mode = o->guess_mode,
        .clip_skip = o->clip_skip,
        .eta = o->eta,
        .n_controlnets = o->n_controls,
    };
    for (int k = 0; k < o->n_controls; k++)
        r.controlnets[k] = (pipe_controlnet){.model = g->model_of[k],
                                             .image = g->control[k],
                                             .scale = o->controls[k].scale,
                                             .start = o->controls[k].start,
                                             .end = o->controls[k].end};
    gen_progress progress;
    gen_progress_init(&progress, stderr);
    pipe_observer obs = gen_progress_observer(&progress);
    pipe_models pm = sd_base_models(&g->base);
    int rc = pipeline_generate(&pm, &g->sched, &r, g->pixels, &obs, err);
    if (rc) gen_progress_abort(&progress);
    return rc;
}

/* Step 5: quantise, describe and write the images. */
static int write_outputs(gen_run *g, const gen_options *o, cnet_error *err) {
    const size_t per = (size_t)g->width * g->height * 3;
    for (int i = 0; i < o->num_images; i++) {
        int rc = image_alloc(&g->images[i], g->width, g->height, err);
        if (rc) return rc;
        const float *x = g->pixels + (size_t)i * per;
        for (size_t j = 0; j < per; j++) /* (x * 255).round(): half to even, x in [0, 1] */
            g->images[i].data[j] = (uint8_t)nearbyintf(x[j] * 255.0f);
        if (!(g->texts[i] = gen_infotext(o, &g->sched, o->seed, g->width, g->height, i, err)))
            return CNET_ENOMEM;
    }
    return gen_output_write(o->out, g->images, g->texts, o->num_images, err);
}

static int generate(const gen_options *o, cnet_error *err) {
    gen_run *g = calloc(1, sizeof *g);
    if (!g) return cnet_fail(err, CNET_ENOMEM, "out of memory");
    const double t0 = seconds();
    int rc = gen_output_check(o->out, err);
    if (!rc) rc = load_images(g, o, err);
    if (!rc) rc = load_models(g, o, err);
    if (!rc) rc = prepare_controls(g, o, err);
    if (!rc) {
        fprintf(stderr, "cnet generate: %dx%d, %d step%s of %s, seed %llu\n", g->width, g->height,
                o->steps, o->steps == 1 ? "" : "s", cnet_sched_kind_name(g->sched.kind),
                (unsigned long long)o->seed);
        rc = run_pipeline(g, o, err);
    }
    if (!rc) rc = write_outputs(g, o, err);
    if (!rc) {
        for (int i = 0; i < o->num_images; i++) {
            char path[PATH_MAX];
            gen_output_path(path, sizeof path, o->out, i, o->num_images, NULL);
            printf("%s\n", path);
        }
        fprintf(stderr, "cnet generate: done in %.1f s\n", seconds() - t0);
    }
    gen_run_free(g);
    free(g);
    return rc;
}

int cmd_generate(int argc, char **argv) {
    gen_options o;
    cnet_error err = {0};
    int rc = gen_args_parse(&o, argc, argv, &err);
    if (rc || o.help) {
        if (rc)
            fprintf(stderr, "cnet generate: %s (cnet generate --help lists the options)\n",
                    err.msg);
        else
            gen_usage(stdout);
        gen_args_free(&o);
        return rc ? 2 : 0;
    }
    if (!o.seed_given) { /* random, like diffusers without a generator, but recorded */
        uint32_t s = 0;
        if (getrandom(&s, sizeof s, 0) != (ssize_t)sizeof s) s = (uint32_t)time(NULL);
        o.seed = s;
    }
    rc = generate(&o, &err);
    gen_args_free(&o);
    if (rc) {
        fprintf(stderr, "cnet generate: %s\n", err.msg);
        return 1;
    }
    return 0;
}
