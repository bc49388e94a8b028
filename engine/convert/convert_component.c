/* Import and export of one component; see convert_component.h. */
#include "engine/convert/convert_component.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/config/config.h"
#include "engine/config/model_files.h"
#include "engine/convert/convert_names.h"
#include "engine/core/atomic_file.h"
#include "engine/core/weights_file.h"
#include "engine/models/clip_text.h"
#include "engine/models/controlnet.h"
#include "engine/models/unet.h"
#include "engine/models/vae.h"

#define CONVERT_NAME_MAX 512

/* A declared (never allocated) model of one kind. */
typedef struct cv_model {
    convert_kind kind;
    cnet_unet_config ucfg;
    cnet_vae_config vcfg;
    cnet_clip_text_config ccfg;
    unet_model unet;
    controlnet_model cn;
    vae_model vae;
    clip_text_model clip;
} cv_model;

static int cv_open(cv_model *m, convert_kind kind, const char *config_path, cnet_error *err) {
    memset(m, 0, sizeof *m);
    m->kind = kind;
    switch (kind) {
    case CONVERT_UNET:
        return cnet_unet_config_load(&m->ucfg, config_path, err) ||
                       unet_declare(&m->unet, NULL, &m->ucfg, err)
                   ? err->code
                   : 0;
    case CONVERT_CONTROLNET:
        return cnet_controlnet_config_load(&m->ucfg, config_path, err) ||
                       controlnet_declare(&m->cn, NULL, &m->ucfg, err)
                   ? err->code
                   : 0;
    case CONVERT_VAE:
        return cnet_vae_config_load(&m->vcfg, config_path, err) ||
                       vae_declare(&m->vae, NULL, &m->vcfg, err)
                   ? err->code
                   : 0;
    case CONVERT_CLIP:
    case CONVERT_OPENCLIP:
        return cnet_clip_text_config_load(&m->ccfg, config_path, err) ||
                       clip_text_declare(&m->clip, NULL, &m->ccfg, err)
                   ? err->code
                   : 0;
    }
    return cnet_fail(err, CNET_EINVAL, "unknown component kind %d", kind);
}

static void cv_free(cv_model *m) {
    unet_free(&m->unet);
    controlnet_free(&m->cn);
    vae_free(&m->vae);
    clip_text_free(&m->clip);
}

static cnet_params *cv_params(cv_model *m) {
    switch (m->kind) {
    case CONVERT_UNET:
        return &m->unet.params;
    case CONVERT_CONTROLNET:
        return &m->cn.params;
    case CONVERT_VAE:
        return &m->vae.params;
    case CONVERT_CLIP:
    case CONVERT_OPENCLIP:
        break;
    }
    return &m->clip.params;
}

/* *third: -1, or which third of a fused q/k/v tensor (OpenCLIP) it is. */
static int cv_name(const cv_model *m, char *out, size_t cap, const char *name, int *third,
                   cnet_error *err) {
    *third = -1;
    switch (m->kind) {
    case CONVERT_OPENCLIP:
        return convert_openclip_name(out, cap, name, third, err);
    case CONVERT_UNET:
    case CONVERT_CONTROLNET:
        return convert_unet_name(out, cap, name, &m->ucfg, err);
    case CONVERT_VAE:
        return convert_vae_name(out, cap, name, &m->vcfg, err);
    case CONVERT_CLIP:
        break;
    }
    return convert_clip_name(out, cap, name, err);
}

static const char *weights_leaf(convert_kind kind) {
    return kind == CONVERT_CLIP || kind == CONVERT_OPENCLIP ? "model.safetensors"
                                                            : "diffusion_pytorch_model.safetensors";
}

/* 1 when a file tensor of shape got can stand for a parameter of shape want:
 * equal, three stacked (OpenCLIP's fused q/k/v, third >= 0), or the LDM VAE
 * attention's 1x1 conv [O, I, 1, 1] for a Linear [O, I]. */
static int shape_fits(const cnet_tensor *got, const cnet_param *want, int third) {
    if (got->ndim == want->ndim) {
        for (int d = 0; d < want->ndim; d++)
            if (got->shape[d] != want->shape[d] * (d == 0 && third >= 0 ? 3 : 1)) return 0;
        return 1;
    }
    return want->ndim == 2 && got->ndim == 4 && got->shape[0] == want->shape[0] &&
           got->shape[1] == want->shape[1] && got->shape[2] == 1 && got->shape[3] == 1;
}

static int copy_config(const char *from, const char *to, cnet_error *err) {
    json_error_t jerr;
    json_t *j = json_load_file(from, 0, &jerr);
    if (!j) return cnet_fail(err, CNET_EFORMAT, "%s: line %d: %s", from, jerr.line, jerr.text);
    int rc = atomic_write_json(to, j, err);
    json_decref(j);
    return rc;
}

int convert_component_import(const st_file *f, const char *prefix, convert_kind kind,
                             const char *config_path, const char *out_dir, char *used,
                             cnet_error *err) {
    char path[4096];
    if (mkdir(out_dir, 0755) != 0 && errno != EEXIST)
        return cnet_fail(err, CNET_EIO, "%s: cannot create the folder: %s", out_dir,
                         strerror(errno));
    snprintf(path, sizeof path, "%s/config.json", out_dir);
    int rc = copy_config(config_path, path, err);
    if (rc) return rc;
    cv_model *m = calloc(1, sizeof *m);
    if (!m) return cnet_fail(err, CNET_ENOMEM, "out of memory");
    if ((rc = cv_open(m, kind, path, err))) {
        free(m);
        return cnet_error_prefix(err, "%s", path);
    }
    cnet_params *p = cv_params(m);
    st_write_item *items = calloc((size_t)p->n + 1, sizeof *items);
    if (!items) rc = cnet_fail(err, CNET_ENOMEM, "out of memory");
    for (int i = 0; i < p->n && rc == 0; i++) {
        const cnet_param *q = &p->items[i];
        char ldm[CONVERT_NAME_MAX], full[CONVERT_NAME_MAX + 64];
        int third = -1;
        if (prefix) {
            if ((rc = cv_name(m, ldm, sizeof ldm, q->name, &third, err))) break;
            snprintf(full, sizeof full, "%s%s", prefix, ldm);
        } else {
            snprintf(full, sizeof full, "%s", q->name);
        }
        const st_entry *e = st_find(f, full);
        if (!e && !prefix && kind == CONVERT_VAE &&
            convert_vae_legacy_name(full, sizeof full, q->name))
            e = st_find(f, full);
        if (!e) {
            rc = cnet_fail(err, CNET_ENOTFOUND,
                           "%s: no tensor '%s' (the %s's '%s'; the config says it exists)", f->path,
                           full, kind == CONVERT_CLIP ? "text encoder" : "model", q->name);
            break;
        }
        if (!shape_fits(&e->view, q, third)) {
            char want[64], got[64];
            cnet_shape_str(want, sizeof want, q->ndim, q->shape);
            cnet_shape_str(got, sizeof got, e->view.ndim, e->view.shape);
            rc = cnet_fail(err, CNET_EFORMAT, "%s: tensor '%s' has shape %s; '%s' needs %s",
                           f->path, full, got, q->name, want);
            break;
        }
        used[e - f->entries] = 1;
        items[i].name = q->name;
        items[i].view = e->view;
        items[i].view.ndim = q->ndim;
        for (int d = 0; d < q->ndim; d++) items[i].view.shape[d] = q->shape[d];
        if (third >= 0) /* rows [third * n, (third + 1) * n) of the fused tensor */
            items[i].view.data =
                (char *)e->view.data + (size_t)third * q->numel * cnet_dtype_size(e->view.dtype);
    }
    if (rc == 0) {
        snprintf(path, sizeof path, "%s/%s", out_dir, weights_leaf(kind));
        rc = st_write(path, items, p->n, NULL, NULL, 0, err);
    }
    free(items);
    cv_free(m);
    free(m);
    return rc;
}

int convert_component_export(const char *dir, convert_kind kind, const char *prefix,
                             const char *out_path, cnet_error *err) {
    char config[4096], weights[4096];
    int rc = model_component_files(config, weights, sizeof config, dir, err);
    if (rc) return rc;
    cv_model *m = calloc(1, sizeof *m);
    if (!m) return cnet_fail(err, CNET_ENOMEM, "out of memory");
    if ((rc = cv_open(m, kind, config, err))) {
        free(m);
        return cnet_error_prefix(err, "%s", config);
    }
    st_file f;
    if ((rc = weights_file_open(&f, weights, err))) {
        cv_free(m);
        free(m);
        return rc;
    }
    cnet_params *p = cv_params(m);
    st_write_item *items = calloc((size_t)p->n + 1, sizeof *items);
    char(*names)[CONVERT_NAME_MAX + 64] = calloc((size_t)p->n + 1, sizeof *names);
    if (!items || !names) rc = cnet_fail(err, CNET_ENOMEM, "out of memory");
    if (rc == 0 && f.n != p->n)
        rc = cnet_fail(err, CNET_EFORMAT, "%s: %d tensors, but the config declares %d parameters",
                       weights, f.n, p->n);
    for (int i = 0; i < p->n && rc == 0; i++) {
        const cnet_param *q = &p->items[i];
        const st_entry *e = st_find(&f, q->name);
        char ldm[CONVERT_NAME_MAX];
        if (!e) {
            rc = cnet_fail(err, CNET_ENOTFOUND, "%s: missing tensor '%s'", weights, q->name);
            break;
        }
        if (!shape_fits(&e->view, q, -1) || e->view.ndim != q->ndim) {
            rc = cnet_fail(err, CNET_EFORMAT, "%s: tensor '%s' does not have the config's shape",
                           weights, q->name);
            break;
        }
        int third;
        if ((rc = cv_name(m, ldm, sizeof ldm, q->name, &third, err))) break;
        snprintf(names[i], sizeof names[i], "%s%s", prefix, ldm);
        items[i].name = names[i];
        items[i].view = e->view;
    }
    if (rc == 0) rc = st_write(out_path, items, p->n, NULL, NULL, 0, err);
    free(items);
    free(names);
    st_close(&f);
    cv_free(m);
    free(m);
    return rc;
}
