/* Golden check of <goldens>/controlnet_from_unet.json: what diffusers
 * 0.27.2's ControlNetModel.from_unet made of the fixture's UNet. cnet's
 * from_unet (engine/init/controlnet_init.h) runs with the file's
 * conditioning_embedding_out_channels, then
 *
 *   controlnet_config.<key>  the derived config field equals the golden's;
 *   from_unet.<tensor>       a "unet:<name>" tensor is a bit-equal copy of
 *                            that UNet tensor, a "zero" one all zeros, a
 *                            "fresh_init" one non-zero inside PyTorch's
 *                            default-init bound 1/sqrt(fan_in) (the values
 *                            themselves are torch's RNG's, not reproducible);
 *
 * every tensor of the file is checked, and the ControlNet may have no
 * other. One line per field and tensor (golden_report). Not here: the
 * ControlNet's outputs (controlnet*.safetensors). */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/core/backend.h"
#include "engine/init/controlnet_init.h"
#include "server/golden/golden.h"

/* The golden's conditioning_embedding_out_channels. */
static int golden_cond(const json_t *want, int *cond, const char *path, cnet_error *err) {
    const json_t *list = json_object_get(want, "conditioning_embedding_out_channels");
    int n = (int)json_array_size(list);
    if (n < 1 || n > CONTROLNET_MAX_COND_LEVELS)
        return cnet_fail(err, CNET_EFORMAT,
                         "%s: controlnet_config.conditioning_embedding_out_channels has %d "
                         "entries (1..%d)",
                         path, n, CONTROLNET_MAX_COND_LEVELS);
    for (int i = 0; i < n; i++) cond[i] = (int)json_integer_value(json_array_get(list, (size_t)i));
    return n;
}

/* Compares the derived config with the golden's, field by field. */
static void check_config(golden_ctx *ctx, const json_t *got, const json_t *want) {
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)want, key, v) {
        char name[GOLDEN_NAME_MAX];
        snprintf(name, sizeof name, "controlnet_config.%s", key);
        const json_t *g = json_object_get(got, key);
        int pass = g && json_equal(v, (json_t *)g);
        golden_report(ctx, name, "-", pass ? 0 : INFINITY, 0, pass, pass ? NULL : "differs");
    }
    json_object_foreach((json_t *)got, key, v) {
        if (key[0] == '_' || json_object_get(want, key)) continue;
        char name[GOLDEN_NAME_MAX];
        snprintf(name, sizeof name, "controlnet_config.%s", key);
        golden_report(ctx, name, "-", INFINITY, 0, 0, "not in the golden config");
    }
}

/* The ControlNet from_unet makes from the model folder's UNet, from the
 * derived config (written to a temporary file for the loader). */
static int build(controlnet_model *cn, unet_model *unet, cnet_backend *be, const json_t *cfg,
                 const char *unet_dir, cnet_error *err) {
    const char *tmp = getenv("TMPDIR");
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/cnet-from-unet-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    int fd = mkstemp(path);
    if (fd < 0) return cnet_fail(err, CNET_EIO, "%s: cannot create a temporary file", path);
    close(fd);
    cnet_unet_config L;
    int rc = json_dump_file(cfg, path, JSON_INDENT(2))
                 ? cnet_fail(err, CNET_EIO, "%s: write failed", path)
                 : cnet_controlnet_config_load(&L, path, err);
    unlink(path);
    if (!rc) rc = unet_open(unet, be, unet_dir, err);
    if (!rc && (rc = controlnet_init(cn, be, &L, err))) unet_free(unet);
    if (!rc && (rc = controlnet_from_unet(cn, unet, 1, err))) {
        controlnet_free(cn);
        unet_free(unet);
    }
    return rc;
}

/* One tensor against its golden source: the max abs error from the UNet
 * tensor ("unet:<name>") or from zero (max |v| for "zero" and
 * "fresh_init"; INFINITY when a fresh tensor has zeros); *allowed = 0. */
static double check_tensor(const cnet_param *q, const unet_model *unet, const char *source,
                           double *allowed, char *note, size_t cap) {
    *allowed = 0, note[0] = '\0';
    if (strncmp(source, "unet:", 5) == 0) {
        const cnet_param *u = params_find(&unet->params, source + 5);
        if (!u || u->numel != q->numel) {
            snprintf(note, cap, "no UNet tensor %s of that size", source + 5);
            return INFINITY;
        }
        double m = 0;
        for (size_t i = 0; i < q->numel; i++) m = fmax(m, fabs((double)q->data[i] - u->data[i]));
        return m;
    }
    double m = 0;
    size_t zeros = 0;
    for (size_t i = 0; i < q->numel; i++) m = fmax(m, fabs(q->data[i])), zeros += !q->data[i];
    if (strcmp(source, "zero") == 0) return m;
    if (strcmp(source, "fresh_init") != 0) {
        snprintf(note, cap, "unknown source '%s'", source);
        return INFINITY;
    }
    return zeros ? INFINITY : m; /* the caller sets the bound */
}

/* The fan_in of a weight: every dimension but the first (output) one. */
static double fan_in(const cnet_param *w) {
    double n = 1;
    for (int d = 1; d < w->ndim; d++) n *= (double)w->shape[d];
    return n;
}

static void check_tensors(golden_ctx *ctx, const controlnet_model *cn, const unet_model *unet,
                          const json_t *tensors) {
    const char *name;
    json_t *t;
    json_object_foreach((json_t *)tensors, name, t) {
        char label[GOLDEN_NAME_MAX + PARAM_NAME_MAX], note[160], shape[64] = "?";
        snprintf(label, sizeof label, "from_unet.%s", name);
        const char *source = json_string_value(json_object_get(t, "source"));
        const cnet_param *q = params_find(&cn->params, name);
        if (!q || !source) {
            golden_report(ctx, label, shape, INFINITY, 0, 0, "not a ControlNet parameter");
            continue;
        }
        cnet_shape_str(shape, sizeof shape, q->ndim, q->shape);
        double allowed;
        double m = check_tensor(q, unet, source, &allowed, note, sizeof note);
        if (strcmp(source, "fresh_init") == 0 && isfinite(m)) {
            char wname[PARAM_NAME_MAX];
            const char *dot = strrchr(name, '.');
            snprintf(wname, sizeof wname, "%.*s.weight", dot ? (int)(dot - name) : 0, name);
            const cnet_param *w = params_find(&cn->params, wname);
            allowed = w ? 1.0 / sqrt(fan_in(w)) : 0;
            snprintf(note, sizeof note, "fresh: max |v| within PyTorch's default-init bound");
        } else if (strcmp(source, "fresh_init") == 0) {
            snprintf(note, sizeof note, "fresh: has zeros, expected U(-b, b) values");
        }
        golden_report(ctx, label, shape, m, allowed, m <= allowed, note[0] ? note : NULL);
    }
    for (int i = 0; i < cn->params.n; i++)
        if (!json_object_get(tensors, cn->params.items[i].name)) {
            char label[GOLDEN_NAME_MAX + PARAM_NAME_MAX];
            snprintf(label, sizeof label, "from_unet.%s", cn->params.items[i].name);
            golden_report(ctx, label, "-", INFINITY, 0, 0, "not in the golden");
        }
}

int golden_check_from_unet(golden_ctx *ctx, const char *path, cnet_error *err) {
    json_error_t je;
    json_t *g = json_load_file(path, 0, &je);
    if (!g) return cnet_fail(err, CNET_EFORMAT, "%s:%d: %s", path, je.line, je.text);
    const json_t *want = json_object_get(g, "controlnet_config");
    const json_t *tensors = json_object_get(g, "tensors");
    int cond[CONTROLNET_MAX_COND_LEVELS], rc = 0;
    if (!json_is_object(want) || !json_is_object(tensors))
        rc = cnet_fail(err, CNET_EFORMAT, "%s: needs objects 'controlnet_config' and 'tensors'",
                       path);
    int n_cond = rc ? 0 : golden_cond(want, cond, path, err);
    if (n_cond < 0) rc = n_cond;
    char unet_dir[PATH_MAX + 8], unet_cfg[PATH_MAX + 32];
    snprintf(unet_dir, sizeof unet_dir, "%s/unet", ctx->model_dir);
    snprintf(unet_cfg, sizeof unet_cfg, "%s/config.json", unet_dir);
    json_t *cfg = NULL;
    if (!rc) rc = controlnet_config_from_unet(&cfg, unet_cfg, cond, n_cond, err);
    if (!rc) check_config(ctx, cfg, want);
    cnet_backend be;
    controlnet_model cn;
    unet_model unet;
    if (!rc && !(rc = cnet_backend_open(&be, "cpu", NULL, 0, err))) { /* reads values on the host */
        if (!(rc = build(&cn, &unet, &be, cfg, unet_dir, err))) {
            check_tensors(ctx, &cn, &unet, tensors);
            controlnet_free(&cn);
            unet_free(&unet);
        }
        cnet_backend_free(&be);
    }
    json_decref(cfg);
    json_decref(g);
    return rc;
}
