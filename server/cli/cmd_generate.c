/* cnet generate --model DIR [--controlnet DIR[,DIR...]] --image FILE[,FILE...]
 *               --prompt TEXT [options]   (gen_usage in gen_args.c lists them)
 *
 * Text-to-image with ControlNets, as diffusers'
 * StableDiffusionControlNetPipeline(...)(prompt, image, ...) does it (with
 * --init_image the Img2Img pipeline, with --mask_image too the Inpaint one):
 *   0. --model and --controlnet may name Hub ids (namespace/name, when no
 *      such local folder exists): pulled into the Hub cache (hub_model.h);
 *   1. the control images, init image and mask are decoded (pixel limit
 *      --max-pixels);
 *   2. the base pipeline folder (engine/pipeline/sd_base.h) and each
 *      ControlNet are loaded; a ControlNet that does not fit the base model
 *      is refused by name;
 *   3. engine/pipeline/generate.h runs the request — preprocessing, the
 *      output size, the scheduler, the pipeline and the conversion to 8-bit
 *      RGB, the same executor the service runs — reporting progress on
 *      stderr;
 *   4. the images are written all-or-nothing as PNGs with an A1111
 *      "parameters" chunk (gen_output.c, engine/pipeline/generate_infotext.c).
 * Bad input is reported with the file, option or model field named; exit
 * status 0 ok, 1 failure, 2 usage error; no output file on any failure. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "engine/image/preprocess.h"
#include "engine/pipeline/generate_infotext.h"
#include "engine/pipeline/sd_base.h"
#include "server/cli/commands.h"
#include "server/cli/dl_progress.h"
#include "server/cli/generate.h"
#include "server/hub/hub_model.h"

/* Everything one run holds; gen_run_free releases what was acquired. */
typedef struct gen_run {
    cnet_backend be;
    int have_be, have_base;
    sd_base base;
    controlnet_model models[PIPE_MAX_CONTROLNETS]; /* distinct --controlnet folders */
    int n_models;
    image_rgb8 raw[PIPE_MAX_CONTROLNETS]; /* decoded control images */
    image_rgb8 init, mask;                /* --init_image, --mask_image */
    generate_result result;
    char *texts[PIPE_MAX_IMAGES];
} gen_run;

static void gen_run_free(gen_run *g) {
    for (int i = 0; i < PIPE_MAX_IMAGES; i++) free(g->texts[i]);
    generate_result_free(&g->result);
    for (int k = 0; k < PIPE_MAX_CONTROLNETS; k++) image_free(&g->raw[k]);
    image_free(&g->init);
    image_free(&g->mask);
    for (int k = 0; k < g->n_models; k++) controlnet_free(&g->models[k]);
    if (g->have_base) sd_base_free(&g->base);
    if (g->have_be) cnet_backend_free(&g->be);
}

static double seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Step 1: decode every control image, and the init image and mask. */
static int load_images(gen_run *g, gen_options *o, cnet_error *err) {
    generate_request *r = &o->req;
    int rc = 0;
    if (r->init_name && !(rc = image_load(&g->init, r->init_name, r->max_pixels, err)))
        r->init_image = &g->init;
    if (!rc && r->mask_name && !(rc = image_load(&g->mask, r->mask_name, r->max_pixels, err)))
        r->mask_image = &g->mask;
    if (rc) {
        cnet_error_prefix(err, "%s", !r->init_image ? "--init_image" : "--mask_image");
        return rc;
    }
    for (int k = 0; k < o->req.n_controls; k++) {
        generate_control *c = &o->req.controls[k];
        rc = image_load(&g->raw[k], c->image_name, o->req.max_pixels, err);
        if (rc) {
            cnet_error_prefix(err, "--image");
            return rc;
        }
        c->image = &g->raw[k];
    }
    return 0;
}

/* Step 2: backend, base model and ControlNets. */
static int load_models(gen_run *g, gen_options *o, cnet_error *err) {
    char note[256];
    int rc = cnet_backend_open(&g->be, o->device, note, sizeof note, err);
    if (rc) return rc;
    g->have_be = 1;
    if (note[0]) fprintf(stderr, "cnet generate: %s\n", note);
    cnet_backend_set_precision(&g->be, o->mixed_precision, note, sizeof note);
    if (note[0]) fprintf(stderr, "cnet generate: %s\n", note);
    generate_request *r = &o->req;
    if ((rc = sd_base_open(&g->base, &g->be, r->model_dir, err))) return rc;
    g->have_base = 1;
    r->base = &g->base;
    /* a pipeline run with torch_dtype: the weights in 16 bits too */
    const cnet_dtype weights = cnet_precision_dtype(g->be.precision);
    if ((rc = sd_base_store16(&g->base, g->be.precision, err))) return rc;
    if (weights != CNET_F32)
        fprintf(stderr, "cnet generate: frozen weights stored in %s (%.1f MB)\n",
                cnet_dtype_name(weights), (double)sd_base_bytes(&g->base) / 1e6);
    pipe_models pm = sd_base_models(&g->base);
    for (int k = 0; k < r->n_controls; k++) {
        generate_control *c = &r->controls[k];
        for (int j = 0; j < k && !c->model; j++)
            if (strcmp(r->controls[j].dir, c->dir) == 0) c->model = r->controls[j].model;
        if (c->model) continue;
        controlnet_model *m = &g->models[g->n_models];
        if ((rc = controlnet_open(m, &g->be, c->dir, err))) {
            cnet_error_prefix(err, "--controlnet %s", c->dir);
            return rc;
        }
        g->n_models++;
        c->model = m;
        if ((rc = params_store16(&m->params, weights, err))) {
            cnet_error_prefix(err, "--controlnet %s", c->dir);
            return rc;
        }
        if ((rc = pipeline_check_controlnet(&pm, m, err))) {
            cnet_error_prefix(err, "--controlnet %s (for --model %s)", c->dir, r->model_dir);
            return rc;
        }
    }
    return 0;
}

/* Says what is about to run before it runs, so that a random seed is not
 * lost with a failed or interrupted run; the size and the scheduler where
 * they are known before it (generate_run reports their errors). */
static void announce(const gen_run *g, const generate_request *r) {
    char size[64] = "", kind[64] = "";
    int w, h;
    cnet_error ignored = {0};
    const image_rgb8 *first = r->init_image ? r->init_image : &g->raw[0];
    if (!preprocess_control_size(first->width, first->height, r->width, r->height,
                                 vae_factor(&r->base->vae), &w, &h, &ignored))
        snprintf(size, sizeof size, "%dx%d, ", w, h);
    cnet_sched_config sc;
    if (!sd_base_scheduler(r->base, r->scheduler, &sc, &ignored)) {
        snprintf(kind, sizeof kind, " of %s", cnet_sched_kind_name(sc.kind));
        cnet_sched_config_free(&sc);
    }
    fprintf(stderr, "cnet generate: %s%d step%s%s, seed %llu\n", size, r->steps,
            r->steps == 1 ? "" : "s", kind, (unsigned long long)r->seed);
}

/* Step 3: the run, with progress on stderr. */
static int run(gen_run *g, const gen_options *o, cnet_error *err) {
    announce(g, &o->req);
    gen_progress progress;
    gen_progress_init(&progress, stderr);
    pipe_observer obs = gen_progress_observer(&progress);
    int rc = generate_run(&o->req, &obs, &g->result, err);
    if (rc) gen_progress_abort(&progress);
    return rc;
}

/* Step 4: describe and write the images. */
static int write_outputs(gen_run *g, const gen_options *o, cnet_error *err) {
    const generate_result *res = &g->result;
    for (int i = 0; i < res->n; i++)
        if (!(g->texts[i] =
                  generate_infotext(&o->req, &res->sched, res->width, res->height, i, err)))
            return CNET_ENOMEM;
    return gen_output_write(o->out, res->images, g->texts, res->n, err);
}

/* Where --model and --controlnet name Hub ids (not local folders), their
 * folders in the Hub cache; the default ControlNet (<model>/controlnet)
 * follows the model. */
typedef struct gen_sources {
    char model[HUB_PATH_MAX], controls[PIPE_MAX_CONTROLNETS][HUB_PATH_MAX];
} gen_sources;

static int resolve_models(gen_options *o, gen_sources *src, cnet_error *err) {
    generate_request *r = &o->req;
    static dl_progress downloads;
    dl_progress_init(&downloads, stderr, "cnet generate: ");
    const hub_model_opts pipe_opts = {
        .kind = HUB_MODEL_PIPELINE, .progress = dl_progress_file, .progress_ctx = &downloads};
    const hub_model_opts cn_opts = {
        .kind = HUB_MODEL_COMPONENT, .progress = dl_progress_file, .progress_ctx = &downloads};
    char default_cn[HUB_PATH_MAX];
    snprintf(default_cn, sizeof default_cn, "%s/controlnet", r->model_dir);
    int rc = hub_model_resolve(r->model_dir, &pipe_opts, src->model, NULL, 0, err);
    dl_progress_end(&downloads);
    if (rc) return cnet_error_prefix(err, "--model");
    r->model_dir = src->model;
    /* the resolved model's own controlnet/ (built apart: gcc's -Wrestrict
     * takes two arrays of src for one object) */
    char model_cn[HUB_PATH_MAX];
    if (snprintf(model_cn, sizeof model_cn, "%s/controlnet", src->model) >= (int)sizeof model_cn)
        return cnet_fail(err, CNET_ELIMIT, "--model: path too long");
    for (int k = 0; k < r->n_controls; k++) {
        generate_control *c = &r->controls[k];
        if (!strcmp(c->dir, default_cn)) {
            memcpy(src->controls[k], model_cn, sizeof model_cn);
        } else if ((rc = hub_model_resolve(c->dir, &cn_opts, src->controls[k], NULL, 0, err))) {
            dl_progress_end(&downloads);
            return cnet_error_prefix(err, "--controlnet");
        }
        c->dir = src->controls[k];
    }
    return 0;
}

static int generate(gen_options *o, cnet_error *err) {
    gen_run *g = calloc(1, sizeof *g);
    if (!g) return cnet_fail(err, CNET_ENOMEM, "out of memory");
    const double t0 = seconds();
    static gen_sources src;
    int rc = gen_output_check(o->out, err);
    if (!rc) rc = resolve_models(o, &src, err);
    if (!rc) rc = load_images(g, o, err);
    if (!rc) rc = load_models(g, o, err);
    if (!rc) rc = run(g, o, err);
    if (!rc) rc = write_outputs(g, o, err);
    if (!rc) {
        const generate_result *res = &g->result;
        for (int i = 0; i < res->n; i++) {
            char path[PATH_MAX];
            gen_output_path(path, sizeof path, o->out, i, res->n, NULL);
            printf("%s\n", path);
        }
        fprintf(stderr, "cnet generate: %dx%d, %d step%s of %s, seed %llu: done in %.1f s\n",
                res->width, res->height, o->req.steps, o->req.steps == 1 ? "" : "s",
                cnet_sched_kind_name(res->sched.kind), (unsigned long long)o->req.seed,
                seconds() - t0);
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
        o.req.seed = s;
    }
    rc = generate(&o, &err);
    gen_args_free(&o);
    if (rc) {
        fprintf(stderr, "cnet generate: %s\n", err.msg);
        return 1;
    }
    return 0;
}
