/* The pool runner's dispatch and the generate job (see runner.h). A job is
 * handed to the engine's device thread and this (pool worker) thread waits
 * for it, so all model work of a device happens on one thread. */
#include "server/workers/runner.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "api/api.h"
#include "api/hub_ref.h"
#include "server/workers/gen_spec.h"
#include "server/workers/job_memory.h"

/* image_<i>.png with the parameters text chunk, written atomically. */
static int write_images(runner_job *x, const gen_spec *gs, const generate_result *im) {
    int rc = 0;
    for (int i = 0; !rc && i < im->n; i++) {
        char *params = gen_spec_parameters(gs, im, i), path[4200];
        if (!params) return cnet_fail(x->err, CNET_ENOMEM, "out of memory");
        image_text chunk = {"parameters", params};
        snprintf(path, sizeof path, "%s/image_%d.png", x->job->dir, i);
        rc = image_save(path, &im->images[i], &chunk, 1, 0, x->err);
        free(params);
    }
    return rc;
}

static int run_generate(runner_job *x) {
    json_t *spec = json_loads(x->job->spec_json, 0, NULL);
    const int n = spec ? gen_spec_n_controls(spec) : 0;
    int rc = n >= 1 && n <= PIPE_MAX_CONTROLNETS ? 0 : CNET_EINVAL;
    for (int k = 0; !rc && k < n; k++) {
        const char *input =
            json_string_value(json_object_get(gen_spec_control(spec, k), "control_image"));
        if (!input || !api_safe_name(input)) rc = CNET_EINVAL;
    }
    if (rc) {
        json_decref(spec);
        return cnet_fail(x->err, CNET_EINVAL, "generate job %s: spec without a control_image",
                         x->job->id);
    }
    /* the download phase: an hf:// model and ControlNets into the Hub cache
     * (progress and cancel, runner_pull.c), which gen_spec_resolve then reads */
    const char *model = json_string_value(json_object_get(spec, "model"));
    char pulled[HUB_PATH_MAX];
    rc = hub_ref_is_hub(model) ? runner_pull(x, model, HUB_MODEL_PIPELINE, pulled, sizeof pulled)
                               : 0;
    for (int k = 0; !rc && k < n; k++) {
        const char *cn =
            json_string_value(json_object_get(gen_spec_control(spec, k), "controlnet"));
        if (hub_ref_is_hub(cn)) rc = runner_pull(x, cn, HUB_MODEL_COMPONENT, pulled, sizeof pulled);
    }
    pool_progress p = {.step = 0, .total = 1};
    if (!rc) {
        rc = pool_report(x->ctl, &p, x->err);
        if (rc == POOL_STOP) rc = POOL_STOPPED;
    }
    if (rc) {
        json_decref(spec);
        return rc;
    }
    gen_spec gs;
    image_rgb8 control[PIPE_MAX_CONTROLNETS] = {{0}};
    generate_result out = {0};
    for (int k = 0; !rc && k < n; k++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", x->cfg->inputs_dir,
                 json_string_value(json_object_get(gen_spec_control(spec, k), "control_image")));
        rc = image_load(&control[k], path, 0, x->err);
    }
    image_rgb8 extra[2] = {{0}};
    static const char *const extra_keys[2] = {"init_image_file", "mask_image_file"};
    for (int k = 0; k < 2 && !rc; k++) { /* img2img's init image and the mask, when stored */
        const char *file = json_string_value(json_object_get(spec, extra_keys[k]));
        if (!file) continue;
        char path[4200];
        if (!api_safe_name(file))
            rc = cnet_fail(x->err, CNET_EINVAL, "generate job %s: bad %s", x->job->id,
                           extra_keys[k]);
        snprintf(path, sizeof path, "%s/%s", x->cfg->inputs_dir, file);
        if (!rc) rc = image_load(&extra[k], path, 0, x->err);
    }
    if (!rc) rc = gen_spec_resolve(&gs, spec, x->cfg->models_dir, x->cfg->jobs_dir, x->err);
    if (!rc) {
        gs.req.init_image = extra[0].data ? &extra[0] : NULL;
        gs.req.mask_image = extra[1].data ? &extra[1] : NULL;
        for (int k = 0; k < n; k++) gs.req.controls[k].image = &control[k];
        rc = worker_generate(x->e, &gs.req, NULL, &out, x->err);
    }
    if (!rc) rc = write_images(x, &gs, &out);
    if (!rc) {
        p.step = 1;
        rc = pool_report(x->ctl, &p, x->err);
        if (rc == POOL_STOP) rc = 0; /* done already: a late cancel changes nothing */
    }
    generate_result_free(&out);
    for (int k = 0; k < n; k++) image_free(&control[k]);
    image_free(&extra[0]);
    image_free(&extra[1]);
    json_decref(spec);
    return rc;
}

static int job_main(void *user, worker *e) {
    runner_job *x = user;
    x->e = e;
    /* lost before the job started: back to the queue, no attempt used */
    if (worker_failure(e, x->err)) {
        fprintf(stderr, "runner: job %s not started: %s\n", x->job->id, x->err->msg);
        return POOL_STOPPED;
    }
    if (strcmp(x->job->kind, "train") == 0) return runner_train(x);
    if (strcmp(x->job->kind, "generate") == 0) return run_generate(x);
    return cnet_fail(x->err, CNET_EINVAL, "job %s: unknown kind %s", x->job->id, x->job->kind);
}

int runner_run(void *user, const pool_job *pool_entry, pool_ctl *ctl, cnet_error *err) {
    const runner_config *cfg = user;
    runner_job x = {.cfg = cfg, .job = pool_entry, .ctl = ctl, .err = err};
    return worker_run_job(cfg->engine, job_main, &x);
}

int runner_can_claim(void *user, cnet_error *err) {
    const runner_config *cfg = user;
    return worker_failure(cfg->engine, err);
}

/* The folder of the job's base model (a train spec's
 * pretrained_model_name_or_path, a generate spec's model; an hf:// one from
 * the Hub cache) into dir; 0 when it is not known here (not downloaded). */
static int spec_model_dir(const runner_config *cfg, const char *kind, const char *spec_json,
                          char dir[HUB_PATH_MAX]) {
    json_t *spec = json_loads(spec_json, 0, NULL);
    const char *model = json_string_value(json_object_get(
        spec, strcmp(kind, "train") == 0 ? "pretrained_model_name_or_path" : "model"));
    int ok = model != NULL;
    if (ok && hub_ref_is_hub(model))
        ok = hub_model_cached(model, HUB_MODEL_PIPELINE, dir, NULL) == 0;
    else if (ok)
        ok = snprintf(dir, HUB_PATH_MAX, "%s/%s", cfg->models_dir, model) < HUB_PATH_MAX;
    json_decref(spec);
    return ok;
}

int runner_prefers(void *user, const char *kind, const char *spec_json) {
    const runner_config *cfg = user;
    char dir[HUB_PATH_MAX];
    return spec_model_dir(cfg, kind, spec_json, dir) && worker_base_loaded(cfg->engine, dir);
}

int runner_fits(void *user, const char *kind, const char *spec_json) {
    const runner_config *cfg = user;
    char dir[HUB_PATH_MAX];
    int64_t need;
    if (cfg->memory_limit <= 0 || !spec_model_dir(cfg, kind, spec_json, dir)) return 1;
    return job_memory_need(dir, kind, &need, NULL) != 0 || need <= cfg->memory_limit;
}
