/* Helpers of the model golden checks: a backend with a scratch arena,
 * and results compared with the goldens in PyTorch layout (file I/O and
 * layout conversion are server/golden/model_io.c's). */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "engine/sched/scheduler.h"
#include "server/golden/golden_io.h"
#include "server/golden/model_io.h"

int golden_env_init(golden_env *env, const golden_ctx *ctx, cnet_error *err) {
    memset(env, 0, sizeof *env);
    /* cmd_golden reported any fallback once; here it is silent. */
    return cnet_backend_open(&env->be, ctx->device, NULL, 0, err);
}

int golden_env_scratch(golden_env *env, size_t bytes, cnet_error *err) {
    if (env->scratch.capacity >= bytes) return 0;
    cnet_arena_free(&env->scratch);
    return cnet_arena_init(&env->scratch, &env->be, bytes, "golden scratch", err);
}

void golden_env_free(golden_env *env) {
    cnet_arena_free(&env->scratch);
    cnet_backend_free(&env->be);
}

void golden_compare_nhwc(golden_ctx *ctx, golden_env *env, const st_file *f, const char *name,
                         const float *dev, int ndim, const int64_t *shape) {
    cnet_tensor got = {CNET_F32, ndim, {0}, NULL, -1};
    for (int d = 0; d < ndim; d++) got.shape[d] = shape[d];
    if (!(got.data = mio_download(&env->be, dev, ndim, shape))) {
        golden_report(ctx, name, "?", INFINITY, 0, 0, "out of memory");
        return;
    }
    golden_compare(ctx, f, name, &got);
    free(got.data);
}

int golden_pipe_run(const st_file *f, const char *key, char run[GOLDEN_RUN_MAX + 1],
                    cnet_error *err) {
    static const char prefix[] = "pipe.", suffix[] = ".args";
    const size_t len = strlen(key), np = sizeof prefix - 1, ns = sizeof suffix - 1;
    if (len <= np + ns || strncmp(key, prefix, np) || strcmp(key + len - ns, suffix)) return 0;
    if (len - np - ns > GOLDEN_RUN_MAX)
        return cnet_fail(err, CNET_EFORMAT, "%s: the run of '%s' is longer than %d bytes", f->path,
                         key, GOLDEN_RUN_MAX);
    snprintf(run, GOLDEN_RUN_MAX + 1, "%.*s", (int)(len - np - ns), key + np);
    return 1;
}

int golden_meta_strings(const st_file *f, const char *key, char **out, int B) {
    const char *meta = st_meta(f, key);
    json_t *j = meta ? json_loads(meta, 0, NULL) : NULL;
    int rc = json_is_array(j) && (int)json_array_size(j) == B ? 0 : -1;
    for (int i = 0; i < B && !rc; i++) {
        const char *v = json_string_value(json_array_get(j, (size_t)i));
        if (!v || !(out[i] = strdup(v))) rc = -1;
    }
    json_decref(j);
    return rc;
}

int golden_sched_kind(const char *class_name) {
    for (int k = 0; k < CNET_SCHED_KIND_COUNT; k++)
        if (strcmp(cnet_sched_kind_name((cnet_sched_kind)k), class_name) == 0) return k;
    return -1;
}

int golden_pipe_models_open(golden_pipe_models *m, cnet_backend *be, const char *model_dir,
                            cnet_error *err) {
    char dir[PATH_MAX + 32];
    memset(m, 0, sizeof *m);
    int rc = sd_base_open(&m->base, be, model_dir, err);
    if (rc) return rc;
    m->have_base = 1;
    snprintf(dir, sizeof dir, "%s/controlnet", model_dir);
    if ((rc = controlnet_open(&m->cn, be, dir, err))) return rc;
    m->have_cn = 1;
    return 0;
}

void golden_pipe_models_free(golden_pipe_models *m) {
    if (m->have_cn) controlnet_free(&m->cn);
    if (m->have_base) sd_base_free(&m->base);
}
