/* Local folder or Hub model id, and the files a pipeline needs (see
 * hub_model.h). */
#include "server/hub/hub_model.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/hub_ref.h"
#include "server/hub/hub_pull.h"

#define HUB_MODEL_GLOBS_MAX 32 /* include patterns of one pull */
#define HUB_VIEW_DIR ".cnet-variants"

static int is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The include globs of a kind, for weights named with variant v ("" for
 * none): into globs (storage in buf). */
static int model_globs(hub_model_kind kind, const char *v, const char *globs[HUB_MODEL_GLOBS_MAX],
                       char buf[HUB_MODEL_GLOBS_MAX][128]) {
    static const char *const components[] = {"text_encoder", "unet", "vae", "controlnet"};
    static const char *const tokenizer_files[] = {"vocab.json", "merges.txt",
                                                  "tokenizer_config.json",
                                                  "special_tokens_map.json", "added_tokens.json"};
    const char *dot = *v ? "." : "";
    int n = 0;
    if (kind == HUB_MODEL_TOKENIZER) {
        for (size_t i = 0; i < sizeof tokenizer_files / sizeof *tokenizer_files; i++)
            globs[n++] = tokenizer_files[i];
    } else if (kind == HUB_MODEL_COMPONENT) {
        globs[n++] = "config.json";
        snprintf(buf[n], sizeof buf[n], "diffusion_pytorch_model%s%s.safetensors", dot, v);
        globs[n] = buf[n], n++;
    } else {
        globs[n++] = "model_index.json";
        globs[n++] = "scheduler/scheduler_config.json";
        for (size_t i = 0; i < sizeof tokenizer_files / sizeof *tokenizer_files; i++) {
            snprintf(buf[n], sizeof buf[n], "tokenizer/%s", tokenizer_files[i]);
            globs[n] = buf[n], n++;
        }
        for (size_t c = 0; c < sizeof components / sizeof *components; c++) {
            snprintf(buf[n], sizeof buf[n], "%s/config.json", components[c]);
            globs[n] = buf[n], n++;
            snprintf(buf[n], sizeof buf[n], "%s/%s%s%s.safetensors", components[c],
                     c == 0 ? "model" : "diffusion_pytorch_model", dot, v);
            globs[n] = buf[n], n++;
        }
    }
    globs[n] = NULL;
    return n;
}

/* "a.fp16.safetensors" → "a.safetensors" into out when name carries the
 * variant; 0 when it does not. */
static int plain_name(const char *name, const char *variant, char *out, size_t cap) {
    char tail[160];
    snprintf(tail, sizeof tail, ".%s.safetensors", variant);
    size_t n = strlen(name), t = strlen(tail);
    if (n <= t || strcmp(name + n - t, tail) != 0) return 0;
    snprintf(out, cap, "%.*s.safetensors", (int)(n - t), name);
    return 1;
}

/* Links every entry of src (a snapshot folder, one level of subfolders)
 * into dst, the variant's weights under their plain names. */
static int link_tree(const char *src, const char *dst, const char *variant, int depth,
                     cnet_error *err) {
    int rc = hub_mkdirs(dst, err);
    if (rc) return rc;
    DIR *d = opendir(src);
    if (!d) return cnet_fail(err, CNET_EIO, "cannot list %s: %s", src, strerror(errno));
    struct dirent *e;
    while (!rc && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char from[HUB_PATH_MAX], to[HUB_PATH_MAX], name[256];
        if (!plain_name(e->d_name, variant, name, sizeof name))
            snprintf(name, sizeof name, "%s", e->d_name);
        if (snprintf(from, sizeof from, "%s/%s", src, e->d_name) >= (int)sizeof from ||
            snprintf(to, sizeof to, "%s/%s", dst, name) >= (int)sizeof to) {
            rc = cnet_fail(err, CNET_ELIMIT, "path too long under %.200s", dst);
            break;
        }
        if (is_dir(from) && depth > 0) {
            rc = link_tree(from, to, variant, depth - 1, err);
            continue;
        }
        char real[HUB_PATH_MAX];
        if (!realpath(from, real)) {
            rc = cnet_fail(err, CNET_EIO, "%s: %s", from, strerror(errno));
            break;
        }
        unlink(to);
        if (symlink(real, to) != 0)
            rc = cnet_fail(err, CNET_EIO, "cannot link %s: %s", to, strerror(errno));
    }
    closedir(d);
    return rc;
}

/* The view of snapshot (…/models--ns--name/snapshots/<commit>) with the
 * variant's weights under the plain names. */
static int variant_view(const char *root, const char *snapshot, const char *variant,
                        char out[HUB_PATH_MAX], cnet_error *err) {
    const char *commit = strrchr(snapshot, '/');
    const char *repo = strstr(snapshot, "/models--");
    if (!commit || !repo)
        return cnet_fail(err, CNET_EINVAL, "%s is not a snapshot folder of the cache", snapshot);
    int repo_len = (int)strcspn(repo + 1, "/");
    if (snprintf(out, HUB_PATH_MAX, "%s/" HUB_VIEW_DIR "/%.*s/%s.%s", root, repo_len, repo + 1,
                 commit + 1, variant) >= HUB_PATH_MAX)
        return cnet_fail(err, CNET_ELIMIT, "variant view path too long under %.200s", root);
    return link_tree(snapshot, out, variant, 1, err);
}

static int valid_variant(const char *v) {
    if (!*v || strlen(v) > 32) return 0;
    for (; *v; v++)
        if (!((*v >= 'a' && *v <= 'z') || (*v >= 'A' && *v <= 'Z') || (*v >= '0' && *v <= '9') ||
              *v == '_' || *v == '-'))
            return 0;
    return 1;
}

int hub_model_pull(const char *repo_id, const hub_model_opts *o, char out[HUB_PATH_MAX],
                   cnet_error *err) {
    const char *variant = o->variant && *o->variant ? o->variant : "";
    if (*variant && !valid_variant(variant))
        return cnet_fail(err, CNET_EINVAL, "--variant '%s': expected a name like fp16", variant);
    const char *globs[HUB_MODEL_GLOBS_MAX + 1];
    char buf[HUB_MODEL_GLOBS_MAX][128];
    model_globs(o->kind, variant, globs, buf);
    hub_pull_opts po = {.repo_id = repo_id,
                        .revision = o->revision,
                        .include = globs,
                        .cache_dir = o->cache_dir,
                        .progress = o->progress,
                        .progress_ctx = o->progress_ctx,
                        .should_stop = o->should_stop};
    hub_pull_result r;
    char snapshot[HUB_PATH_MAX];
    const char *off = getenv("HF_HUB_OFFLINE");
    const int offline = o->offline || (off && (!strcmp(off, "1") || !strcasecmp(off, "true")));
    int rc;
    if (offline) {
        rc = hub_pull(NULL, &po, snapshot, &r, err);
    } else {
        hub_client c;
        rc = hub_client_init(&c, NULL, 0, err);
        if (!rc) rc = hub_pull(&c, &po, snapshot, &r, err);
        hub_client_free(&c);
    }
    if (!rc && *variant) {
        char root[HUB_PATH_MAX];
        hub_cache_root(o->cache_dir, root);
        rc = variant_view(root, snapshot, variant, out, err);
    } else if (!rc) {
        memcpy(out, snapshot, HUB_PATH_MAX);
    }
    return rc ? cnet_error_prefix(err, "Hub model %s", repo_id) : 0;
}

int hub_model_cached(const char *ref, hub_model_kind kind, char out[HUB_PATH_MAX],
                     cnet_error *err) {
    if (!hub_ref_is_hub(ref)) {
        if (snprintf(out, HUB_PATH_MAX, "%s", ref) >= HUB_PATH_MAX)
            return cnet_fail(err, CNET_ELIMIT, "model path too long: %.200s", ref);
        return 0;
    }
    char repo_id[HUB_REPO_ID_MAX], rev[HUB_REVISION_MAX];
    int rc = hub_ref_parse(ref, repo_id, rev, err);
    if (rc) return rc;
    const hub_model_opts o = {.kind = kind, .revision = rev, .offline = 1};
    rc = hub_model_pull(repo_id, &o, out, err);
    if (rc) rc = CNET_ENOTFOUND; /* whatever the cache lacked */
    return rc ? cnet_error_prefix(err, "resolving %s", ref) : 0;
}

int hub_model_resolve(const char *name, const hub_model_opts *o, char out[HUB_PATH_MAX],
                      char *repo_id, size_t repo_id_cap, cnet_error *err) {
    if (repo_id && repo_id_cap) repo_id[0] = '\0';
    if (is_dir(name)) {
        if (snprintf(out, HUB_PATH_MAX, "%s", name) >= HUB_PATH_MAX)
            return cnet_fail(err, CNET_ELIMIT, "model path too long: %.200s", name);
        return 0;
    }
    cnet_error id_err = {0};
    if (hub_repo_id_check(name, &id_err) != 0)
        return cnet_fail(err, CNET_ENOTFOUND, "'%s' is no local folder and no Hub model id (%s)",
                         name, id_err.msg);
    int rc = hub_model_pull(name, o, out, err);
    if (!rc && repo_id) snprintf(repo_id, repo_id_cap, "%s", name);
    return rc;
}
