/* A train job on the engine thread: its spec (api/api_train.c's fields,
 * which are train_controlnet.py's option names) set onto train_options by
 * those names (engine/train/trainer.h's train_options_set),
 * trainer_run on the engine's cached base pipeline, and the hooks:
 *   on_step        waiting generate requests are served (the device is free
 *                  between steps), then the progress goes to the pool, whose
 *                  answer says whether to stop here (cancel, SIGTERM, lost
 *                  lease): the trainer then writes a checkpoint and returns;
 *   on_checkpoint  the pool records the step (fenced by the lease token);
 *   on_validation  an SSE event naming the new artefact.
 * Before them, hf:// models and an hf://datasets/ dataset are pulled
 * (runner_pull.c: download events, cancellable). The job's dir is the output dir, so its final
 * files (config.json, diffusion_pytorch_model.safetensors, README.md, images_*.png) are the job's
 * artefacts, and resume_from_checkpoint="latest" makes a re-run continue from the last checkpoint
 * there. A mark file records that the final weights are saved, so a re-run after a crash in the
 * push phase does not train again. Not here: the push itself (runner_push.c). */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "engine/core/atomic_file.h"
#include "engine/data/dataset.h"
#include "engine/image/image.h"
#include "engine/train/trainer.h"
#include "server/hub/hub_model.h"
#include "server/workers/runner_train.h"

/* Progress goes to the store (a synced SQLite write and an SSE event) at most
 * this often, and at the last step: a tiny model trains far faster than a
 * disk syncs. Shutdown is still seen at every step; a cancel within this
 * interval. */
#define RUNNER_PROGRESS_INTERVAL_MS 500

static int64_t monotonic_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

typedef struct train_ctx {
    runner_job *x;
    int64_t last_report_ms;
    int stop_error; /* a negative pool status seen in on_step */
    cnet_error hook_err;
} train_ctx;

static int on_step(void *user, const train_progress *tp) {
    train_ctx *t = user;
    /* a lost lease: no checkpoint, no file; the new holder owns the folder */
    if (pool_lease_lost(t->x->ctl)) return TRAIN_ABANDON;
    worker_serve_pending(t->x->e);
    const int64_t now = monotonic_ms();
    if (tp->step < tp->total_steps && now - t->last_report_ms < RUNNER_PROGRESS_INTERVAL_MS)
        return pool_stop_requested(t->x->ctl);
    t->last_report_ms = now;
    pool_progress p = {.step = tp->step,
                       .total = tp->total_steps,
                       .loss = tp->loss,
                       .lr = tp->lr,
                       .samples_per_s = tp->samples_per_sec,
                       .eta_s = tp->eta_sec};
    int rc = pool_report(t->x->ctl, &p, &t->hook_err);
    if (rc < 0) t->stop_error = rc;
    if (pool_lease_lost(t->x->ctl)) return TRAIN_ABANDON;
    return rc != POOL_CONTINUE ? TRAIN_STOP : TRAIN_GO_ON;
}

static void on_checkpoint(void *user, int step, const char *dir) {
    train_ctx *t = user;
    (void)dir;
    if (pool_checkpoint(t->x->ctl, step, &t->hook_err))
        fprintf(stderr, "runner: job %s: recording checkpoint %d: %s\n", t->x->job->id, step,
                t->hook_err.msg);
}

static void on_validation(void *user, int step, const char *path) {
    train_ctx *t = user;
    const char *name = strrchr(path, '/');
    name = name ? name + 1 : path;
    char href[200];
    snprintf(href, sizeof href, "/v1/jobs/%s/artifacts/%s", t->x->job->id, name);
    json_t *ev = json_pack("{s:i, s:s, s:s}", "step", step, "name", name, "href", href);
    char *text = ev ? json_dumps(ev, JSON_COMPACT) : NULL;
    json_decref(ev);
    if (text && pool_event(t->x->ctl, "validation", text, &t->hook_err))
        fprintf(stderr, "runner: job %s: validation event: %s\n", t->x->job->id, t->hook_err.msg);
    free(text);
}

static int path_join(char *out, size_t cap, const char *a, const char *b, cnet_error *err) {
    if ((size_t)snprintf(out, cap, "%s/%s", a, b) >= cap)
        return cnet_fail(err, CNET_ELIMIT, "path too long: %.200s/%.200s", a, b);
    return 0;
}

/* A dataset given as a path under --data-root, checked again as the job
 * opens it: the folder may have been swapped for a symlink since the
 * request was accepted. Its real path must lie under the real data root,
 * and it is opened from the root one component at a time with O_NOFOLLOW,
 * so a symlink put in place after realpath is refused too. The trainer then
 * reads through /proc/self/fd/<fd> (p->data), which stays on the opened
 * folder whatever happens to the path later. Symlinks inside the dataset
 * folder are the dataset's own. */
static int open_rooted_dataset(runner_job *x, const char *data, runner_train_paths *p) {
    cnet_error *err = x->err;
    const char *id = x->job->id;
    char root[PATH_MAX], real[PATH_MAX];
    if (!x->cfg->data_root)
        return cnet_fail(err, CNET_EINVAL,
                         "job %s: dataset %s is a path, and this server has no "
                         "--data-root",
                         id, data);
    if (!realpath(x->cfg->data_root, root))
        return cnet_fail(err, CNET_EIO, "job %s: the data root: %s", id, strerror(errno));
    if (!realpath(data, real))
        return cnet_fail(err, CNET_ENOTFOUND, "job %s: dataset %s: %s", id, data, strerror(errno));
    const size_t n = strlen(root);
    if (strncmp(real, root, n) != 0 || real[n] != '/')
        return cnet_fail(err, CNET_EINVAL,
                         "job %s: dataset %s escapes the data root: it now resolves outside it "
                         "(a symlink put in its place after the job was accepted)",
                         id, data);
    int fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return cnet_fail(err, CNET_EIO, "job %s: the data root: %s", id, strerror(errno));
    char *save = NULL;
    for (char *c = strtok_r(real + n + 1, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
        const int next = openat(fd, c, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        const int e = errno;
        close(fd);
        if (next < 0 && (e == ELOOP || e == ENOTDIR))
            return cnet_fail(err, CNET_EINVAL,
                             "job %s: dataset %s escapes the data root: '%s' in its path became a "
                             "symlink as the job opened it",
                             id, data, c);
        if (next < 0)
            return cnet_fail(err, CNET_ENOTFOUND, "job %s: dataset %s: %s", id, data, strerror(e));
        fd = next;
    }
    p->data_fd = fd;
    snprintf(p->data, sizeof p->data, "/proc/self/fd/%d", fd);
    return 0;
}

/* A spec member as a typed value; a list's strings go to items (NULL for a
 * member that is not a string, which train_options_set refuses). */
static int spec_value(const char *key, const json_t *v, const char **items, train_value *out,
                      cnet_error *err) {
    *out = (train_value){.type = TRAIN_VALUE_STRING, .s = json_string_value(v)};
    if (json_is_integer(v)) {
        *out = (train_value){.type = TRAIN_VALUE_INTEGER, .i = json_integer_value(v)};
    } else if (json_is_real(v)) {
        *out = (train_value){.type = TRAIN_VALUE_DOUBLE, .d = json_real_value(v)};
    } else if (json_is_boolean(v)) {
        *out = (train_value){.type = TRAIN_VALUE_BOOL, .b = json_is_true(v)};
    } else if (json_is_array(v)) {
        const size_t n = json_array_size(v);
        if (n > TRAIN_MAX_VALIDATION)
            return cnet_fail(err, CNET_EINVAL, "%s: %zu values, at most %d", key, n,
                             TRAIN_MAX_VALIDATION);
        for (size_t i = 0; i < n; i++) items[i] = json_string_value(json_array_get(v, i));
        *out = (train_value){.type = TRAIN_VALUE_LIST, .list = items, .n = (int)n};
    } else if (!json_is_string(v)) {
        return cnet_fail(err, CNET_EINVAL, "%s: not a string, number, bool or list", key);
    }
    return 0;
}

static int set_string(train_options *o, const char *name, const char *value, cnet_error *err) {
    const train_value v = {.type = TRAIN_VALUE_STRING, .s = value};
    return train_options_set(o, name, &v, err);
}

/* The members of a spec that are not set as they are: the job's own
 * (kind, dataset and its config, push_to_hub) and the references resolved
 * to folders first. */
static int resolved_member(const char *key) {
    static const char *const names[] = {"kind",
                                        "dataset",
                                        "dataset_config_name",
                                        "push_to_hub",
                                        "pretrained_model_name_or_path",
                                        "controlnet_model_name_or_path",
                                        "validation_image",
                                        NULL};
    for (int i = 0; names[i]; i++)
        if (!strcmp(names[i], key)) return 1;
    return 0;
}

/* The spec's members that are trainer options, through the trainer's option
 * names (engine/train/trainer.h's train_options_set). */
static int set_members(const json_t *spec, train_options *o, cnet_error *err) {
    const char *items[TRAIN_MAX_VALIDATION];
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)spec, key, v) {
        if (resolved_member(key)) continue;
        train_value tv;
        int rc = spec_value(key, v, items, &tv, err);
        if (!rc) rc = train_options_set(o, key, &tv, err);
        if (rc) return rc;
    }
    return 0;
}

/* spec → o (strings borrowed from spec and paths). */
int runner_train_options(runner_job *x, const json_t *spec, runner_train_paths *p,
                         train_options *o) {
    const runner_config *cfg = x->cfg;
    cnet_error *err = x->err;
    const char *model = json_string_value(json_object_get(spec, "pretrained_model_name_or_path"));
    const char *cn = json_string_value(json_object_get(spec, "controlnet_model_name_or_path"));
    const char *data = json_string_value(json_object_get(spec, "dataset"));
    p->data_fd = -1;
    if (!model || !data)
        return cnet_fail(err, CNET_EINVAL, "job %s: spec without a model or dataset", x->job->id);
    /* hf:// references are pulled here, in the job (never in the request
     * that submitted it), with only the files the pipeline reads: the
     * job's download phase (runner_pull.c) */
    int rc = hub_ref_is_hub(model)
                 ? runner_pull(x, model, HUB_MODEL_PIPELINE, p->model, sizeof p->model)
                 : path_join(p->model, sizeof p->model, cfg->models_dir, model, err);
    if (!rc && cn && hub_ref_is_hub(cn))
        rc = runner_pull(x, cn, HUB_MODEL_COMPONENT, p->controlnet, sizeof p->controlnet);
    else if (!rc && cn)
        rc = path_join(p->controlnet, sizeof p->controlnet,
                       strncmp(cn, "j_", 2) == 0 ? cfg->jobs_dir : cfg->models_dir, cn, err);
    char rev[HUB_REVISION_MAX];
    if (!rc && hub_ref_is_hub(model)) rc = hub_ref_parse(model, p->model_id, rev, err);
    const char *config = json_string_value(json_object_get(spec, "dataset_config_name"));
    if (!rc && hub_ref_is_dataset(data))
        rc = runner_pull_dataset(x, data, config, p->data, sizeof p->data);
    else if (!rc && data[0] == '/')
        rc = open_rooted_dataset(x, data, p);
    else if (!rc)
        rc = (size_t)snprintf(p->data, sizeof p->data, "%s/%s/files", cfg->datasets_dir, data) >=
                     sizeof p->data
                 ? cnet_fail(err, CNET_ELIMIT, "dataset path too long")
                 : 0;
    if (rc) return rc;
    train_options_defaults(o);
    if ((rc = set_members(spec, o, err))) return cnet_error_prefix(err, "job %s: spec", x->job->id);
    const json_t *images = json_object_get(spec, "validation_image");
    const char *image_paths[TRAIN_MAX_VALIDATION];
    const size_t n_images = json_array_size(images);
    if (n_images > TRAIN_MAX_VALIDATION)
        return cnet_fail(err, CNET_EINVAL, "job %s: %zu validation images, at most %d", x->job->id,
                         n_images, TRAIN_MAX_VALIDATION);
    for (size_t i = 0; i < n_images && !rc; i++) {
        const char *name = json_string_value(json_array_get(images, i));
        rc = name ? path_join(p->validation_image[i], PATH_MAX, p->data, name, err)
                  : cnet_fail(err, CNET_EINVAL, "job %s: validation_image %zu is not a string",
                              x->job->id, i);
        image_paths[i] = p->validation_image[i];
    }
    const train_value image_list = {
        .type = TRAIN_VALUE_LIST, .list = image_paths, .n = (int)n_images};
    if (!rc && n_images) rc = train_options_set(o, "validation_image", &image_list, err);
    /* the job's own folders, whatever the spec holds */
    if (!rc) rc = set_string(o, "pretrained_model_name_or_path", p->model, err);
    if (!rc && p->model_id[0]) o->base_model_id = p->model_id;
    if (!rc && cn) rc = set_string(o, "controlnet_model_name_or_path", p->controlnet, err);
    if (!rc) rc = set_string(o, "train_data_dir", p->data, err);
    if (!rc) rc = set_string(o, "output_dir", x->job->dir, err);
    if (!rc) rc = set_string(o, "resume_from_checkpoint", "latest", err);
    return rc;
}

/* validation_prompt without validation_image: the conditioning images of
 * the dataset's first samples (one per prompt, in listing order), copied to
 * logs/validation_conditioning_<i>.<ext> so the trainer reads them as files
 * whatever the dataset's layout (folders or tar shards). */
static int dataset_validation_images(runner_job *x, runner_train_paths *p, train_options *o) {
    dataset ds;
    dataset_options dopt = {0};
    int rc = dataset_open(&ds, o->train_data_dir, &dopt, x->err);
    if (rc) return rc;
    char logs[PATH_MAX + 8];
    snprintf(logs, sizeof logs, "%s/logs", x->job->dir);
    mkdir(logs, 0755);
    if (!(rc = dataset_rewind(&ds, x->err)))
        for (int i = 0; !rc && i < o->n_validation_prompts; i++) {
            dataset_sample s;
            int end = dataset_next(&ds, &s, x->err);
            if (end != 0) {
                rc = end < 0 ? end : i ? 0 : cnet_fail(x->err, CNET_EINVAL, "the dataset is empty");
                break;
            }
            const char *ext = image_sniff(s.cond, s.cond_len) == IMAGE_FORMAT_JPEG ? "jpg" : "png";
            if (snprintf(p->validation_image[i], PATH_MAX, "%s/validation_conditioning_%d.%s", logs,
                         i, ext) >= PATH_MAX) {
                rc = cnet_fail(x->err, CNET_ELIMIT, "job dir path too long");
                break;
            }
            rc = atomic_write_file(p->validation_image[i], s.cond, s.cond_len, x->err);
            if (!rc) o->validation_image[o->n_validation_images++] = p->validation_image[i];
        }
    dataset_free(&ds);
    return rc ? cnet_error_prefix(x->err, "validation images from the dataset") : 0;
}

static int trained(const char *dir) {
    char path[PATH_MAX + 16];
    struct stat st;
    snprintf(path, sizeof path, "%s/" RUNNER_TRAINED_MARK, dir);
    return stat(path, &st) == 0;
}

static int mark_trained(runner_job *x) {
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/" RUNNER_TRAINED_MARK, x->job->dir);
    return atomic_write_file(path, "", 0, x->err);
}

int runner_train(runner_job *x) {
    json_t *spec = json_loads(x->job->spec_json, 0, NULL);
    if (!spec) return cnet_fail(x->err, CNET_EFORMAT, "job %s: unreadable spec", x->job->id);
    runner_train_paths *paths = calloc(1, sizeof *paths);
    train_options o;
    int rc = paths ? runner_train_options(x, spec, paths, &o)
                   : cnet_fail(x->err, CNET_ENOMEM, "out of memory");
    if (!rc && o.n_validation_prompts && !o.n_validation_images)
        rc = dataset_validation_images(x, paths, &o);
    sd_base *base = NULL;
    int stopped = 0;
    if (!rc && !trained(x->job->dir)) {
        /* the note a cpu engine gives for a 16-bit request (trainer_run
         * sets the precision itself and restores it) */
        char note[256];
        cnet_backend *be = worker_backend(x->e);
        const cnet_precision prev =
            cnet_backend_set_precision(be, o.mixed_precision, note, sizeof note);
        cnet_backend_set_precision(be, prev, NULL, 0);
        if (note[0]) fprintf(stderr, "runner: job %s: %s\n", x->job->id, note);
        rc = worker_base_acquire(x->e, paths->model, &base, x->err);
        o.base = base;
        train_ctx t = {.x = x};
        train_hooks hooks = {.user = &t,
                             .on_step = on_step,
                             .on_checkpoint = on_checkpoint,
                             .on_validation = on_validation};
        if (!rc) rc = trainer_run(&o, worker_backend(x->e), &hooks, &stopped, x->err);
        if (base) worker_base_release(x->e, base);
        if (!rc && t.stop_error) {
            *x->err = t.hook_err;
            rc = t.stop_error;
        } else if (!rc && stopped) {
            rc = POOL_STOPPED;
        } else if (!rc) {
            rc = mark_trained(x);
        }
    }
    const json_t *hub = json_object_get(spec, "push_to_hub");
    if (!rc && hub)
        rc = runner_push(x, json_string_value(json_object_get(hub, "repo_id")),
                         json_is_true(json_object_get(hub, "private")));
    if (paths && paths->data_fd >= 0) close(paths->data_fd);
    free(paths);
    json_decref(spec);
    return rc;
}
