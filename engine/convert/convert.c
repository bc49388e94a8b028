/* What a file is, and the folder it becomes; see convert.h. The prefixes
 * and the refusals follow diffusers v0.27.2 convert_from_ckpt.py
 * (download_from_original_stable_diffusion_ckpt: model.diffusion_model.,
 * first_stage_model., cond_stage_model.transformer. for SD 1.x,
 * cond_stage_model.model. for SD 2.x's OpenCLIP, conditioner.embedders for
 * SDXL; convert_controlnet_checkpoint: control_model. or no prefix). */
#include "engine/convert/convert.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/config/model_files.h"
#include "engine/convert/convert_component.h"
#include "engine/convert/convert_infer.h"
#include "engine/core/atomic_file.h"
#include "engine/core/weights_file.h"

#define PREFIX_UNET "model.diffusion_model."
#define PREFIX_VAE "first_stage_model."
#define PREFIX_CLIP "cond_stage_model."
#define PREFIX_CLIP_TEXT "cond_stage_model.transformer.text_model."
#define PREFIX_CONTROL "control_model."
#define PREFIX_OPENCLIP "cond_stage_model.model."
/* The buffer the CLIP position ids live in, which transformers does not load. */
#define CLIP_POSITION_IDS "cond_stage_model.transformer.text_model.embeddings.position_ids"
#define COPY_CHUNK (1u << 20)

/* snprintf for paths: 1, or 0 when cap was too small (the truncated path
 * then fails to open, named in the error). */
static int path_fmt(char *buf, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int path_fmt(char *buf, size_t cap, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, cap, fmt, ap);
    va_end(ap);
    return n >= 0 && (size_t)n < cap;
}

static int has_prefix(const st_file *f, const char *prefix) {
    size_t n = strlen(prefix);
    for (int i = 0; i < f->n; i++)
        if (strncmp(f->entries[i].name, prefix, n) == 0) return 1;
    return 0;
}

static int has_substring(const st_file *f, const char *part) {
    for (int i = 0; i < f->n; i++)
        if (strstr(f->entries[i].name, part)) return 1;
    return 0;
}

/* The config of one component: config_from/<sub>/config.json when that
 * exists, else inferred into out_dir/<sub>.inferred.json (removed after). */
static int component_config(char *path, size_t cap, const convert_options *o, const char *sub,
                            const st_file *f, const char *prefix, convert_kind kind,
                            const char *out_dir, cnet_error *err) {
    if (o->config_from) {
        path_fmt(path, cap, "%s/%s/config.json", o->config_from, sub);
        if (access(path, R_OK) == 0) return 0;
        path_fmt(path, cap, "%s/config.json", o->config_from);
        if (kind == CONVERT_CONTROLNET && access(path, R_OK) == 0) return 0;
    }
    json_t *cfg = NULL;
    int rc = kind == CONVERT_VAE    ? convert_infer_vae(&cfg, f, prefix, err)
             : kind == CONVERT_CLIP ? convert_infer_clip(&cfg, f, PREFIX_CLIP_TEXT, err)
             : kind == CONVERT_OPENCLIP
                 ? convert_infer_openclip(&cfg, f, PREFIX_OPENCLIP, err)
                 : convert_infer_unet(&cfg, f, prefix, kind == CONVERT_CONTROLNET, err);
    if (rc) return rc;
    path_fmt(path, cap, "%s/%s.inferred.json", out_dir, sub);
    rc = atomic_write_json(path, cfg, err);
    json_decref(cfg);
    return rc;
}

static int import_one(const st_file *f, const char *prefix, convert_kind kind, const char *sub,
                      const char *out_dir, const convert_options *o, char *used, cnet_error *err) {
    char config[4096], dir[4096];
    int rc = component_config(config, sizeof config, o, sub, f, prefix, kind, out_dir, err);
    if (rc) return cnet_error_prefix(err, "%s", sub);
    path_fmt(dir, sizeof dir, "%s/%s", out_dir, sub);
    rc = convert_component_import(f, prefix, kind, config, dir, used, err);
    if (strstr(config, ".inferred.json")) unlink(config);
    return rc ? cnet_error_prefix(err, "%s", sub) : 0;
}

/* 1 for an OpenCLIP tensor a CLIPTextModel has no place for: the
 * contrastive head (text_projection, logit_scale), the causal mask buffer,
 * and every tensor of a layer the config leaves out (SD 2.x's last). */
static int openclip_unused_ok(const st_file *f, const char *used, const char *name) {
    const char *rest = name + strlen(PREFIX_OPENCLIP);
    if (strcmp(rest, "text_projection") == 0 || strcmp(rest, "logit_scale") == 0 ||
        strcmp(rest, "attn_mask") == 0)
        return 1;
    int layer = -1, at = 0;
    if (sscanf(rest, "transformer.resblocks.%d.%n", &layer, &at) != 1 || !at) return 0;
    size_t n = strlen(PREFIX_OPENCLIP) + (size_t)at;
    for (int i = 0; i < f->n; i++)
        if (used[i] && strncmp(f->entries[i].name, name, n) == 0) return 0;
    return 1;
}

/* Every tensor under prefix was taken by a component (or is a known buffer). */
static int check_all_used(const st_file *f, const char *prefix, const char *used, cnet_error *err) {
    size_t n = strlen(prefix);
    for (int i = 0; i < f->n; i++) {
        const char *name = f->entries[i].name;
        if (used[i] || strncmp(name, prefix, n) != 0 || strcmp(name, CLIP_POSITION_IDS) == 0 ||
            (strncmp(name, PREFIX_OPENCLIP, strlen(PREFIX_OPENCLIP)) == 0 &&
             openclip_unused_ok(f, used, name)))
            continue;
        return cnet_fail(err, CNET_EFORMAT,
                         "%s: tensor '%s' is not part of the model its config describes (an "
                         "unknown module: a variant this converter does not know)",
                         f->path, name);
    }
    return 0;
}

static int copy_file(const char *from, const char *to, cnet_error *err) {
    FILE *in = fopen(from, "rb"), *out = in ? fopen(to, "wb") : NULL;
    char *buf = malloc(COPY_CHUNK);
    int rc = 0;
    size_t n;
    if (!in || !out || !buf) rc = cnet_fail(err, CNET_EIO, "cannot copy %s to %s", from, to);
    while (rc == 0 && (n = fread(buf, 1, COPY_CHUNK, in)) > 0)
        if (fwrite(buf, 1, n, out) != n) rc = cnet_fail(err, CNET_EIO, "%s: write failed", to);
    if (in) fclose(in);
    if (out && fclose(out) != 0 && rc == 0) rc = cnet_fail(err, CNET_EIO, "%s: write failed", to);
    free(buf);
    return rc;
}

/* Copies the regular files of from/ into to/ (created). */
static int copy_folder(const char *from, const char *to, cnet_error *err) {
    DIR *d = opendir(from);
    if (!d) return cnet_fail(err, CNET_ENOTFOUND, "%s: cannot open the folder", from);
    int rc = mkdir(to, 0755) == 0 || errno == EEXIST
                 ? 0
                 : cnet_fail(err, CNET_EIO, "%s: cannot create the folder", to);
    struct dirent *de;
    while (rc == 0 && (de = readdir(d))) {
        char a[4096], b[4096];
        struct stat st;
        path_fmt(a, sizeof a, "%s/%s", from, de->d_name);
        path_fmt(b, sizeof b, "%s/%s", to, de->d_name);
        if (de->d_name[0] != '.' && stat(a, &st) == 0 && S_ISREG(st.st_mode))
            rc = copy_file(a, b, err);
    }
    closedir(d);
    return rc;
}

static int write_model_index(const char *out_dir, const char *sched_class, cnet_error *err) {
    char path[4096];
    path_fmt(path, sizeof path, "%s/model_index.json", out_dir);
    json_t *j = json_pack(
        "{s:s,s:s,s:[s,s],s:[s,s],s:[s,s],s:[s,s],s:[s,s],s:[n,n],s:[n,n],s:b}", "_class_name",
        "StableDiffusionPipeline", "_diffusers_version", "0.27.2", "unet", "diffusers",
        "UNet2DConditionModel", "vae", "diffusers", "AutoencoderKL", "text_encoder", "transformers",
        "CLIPTextModel", "tokenizer", "transformers", "CLIPTokenizer", "scheduler", "diffusers",
        sched_class, "safety_checker", "feature_extractor", "requires_safety_checker", 0);
    int rc = j ? atomic_write_json(path, j, err) : cnet_fail(err, CNET_ENOMEM, "out of memory");
    json_decref(j);
    return rc;
}

/* tokenizer/ and scheduler/ from config_from, and the model index. */
static int import_pipeline_files(const char *out_dir, const convert_options *o, cnet_error *err) {
    char from[4096], to[4096];
    const char *subs[] = {"tokenizer", "scheduler"};
    for (int i = 0; i < 2; i++) {
        path_fmt(from, sizeof from, "%s/%s", o->config_from, subs[i]);
        path_fmt(to, sizeof to, "%s/%s", out_dir, subs[i]);
        int rc = copy_folder(from, to, err);
        if (rc) return rc;
    }
    path_fmt(from, sizeof from, "%s/scheduler/scheduler_config.json", o->config_from);
    json_error_t jerr;
    json_t *s = json_load_file(from, 0, &jerr);
    const char *cls = s ? json_string_value(json_object_get(s, "_class_name")) : NULL;
    int rc = cls ? write_model_index(out_dir, cls, err)
                 : cnet_fail(err, CNET_EFORMAT, "%s: no \"_class_name\"", from);
    json_decref(s);
    return rc;
}

static int import_sd(const st_file *f, const char *out_dir, const convert_options *o, char *used,
                     cnet_error *err) {
    int openclip = has_prefix(f, PREFIX_OPENCLIP);
    if (!has_prefix(f, openclip ? PREFIX_OPENCLIP : PREFIX_CLIP_TEXT) || !has_prefix(f, PREFIX_VAE))
        return cnet_fail(err, CNET_EFORMAT,
                         "%s: has model.diffusion_model.* but not both first_stage_model.* (VAE) "
                         "and cond_stage_model.transformer.text_model.* (CLIP, SD 1.x) or "
                         "cond_stage_model.model.* (OpenCLIP, SD 2.x): not a full checkpoint",
                         f->path);
    if (!o->config_from)
        return cnet_fail(err, CNET_EINVAL,
                         "%s: a single-file checkpoint carries no tokenizer or scheduler: pass "
                         "--config_from DIR, a diffusers folder of the same family (its "
                         "tokenizer/ and scheduler/, and its config.json files where present), "
                         "e.g. the snapshot `cnet pull stable-diffusion-v1-5/"
                         "stable-diffusion-v1-5` downloads",
                         f->path);
    const char *text_prefix = openclip ? PREFIX_OPENCLIP : PREFIX_CLIP;
    int rc;
    if ((rc = import_one(f, PREFIX_UNET, CONVERT_UNET, "unet", out_dir, o, used, err)) ||
        (rc = import_one(f, PREFIX_VAE, CONVERT_VAE, "vae", out_dir, o, used, err)) ||
        (rc = import_one(f, text_prefix, openclip ? CONVERT_OPENCLIP : CONVERT_CLIP, "text_encoder",
                         out_dir, o, used, err)) ||
        (rc = check_all_used(f, PREFIX_UNET, used, err)) ||
        (rc = check_all_used(f, PREFIX_VAE, used, err)) ||
        (rc = check_all_used(f, PREFIX_CLIP, used, err)))
        return rc;
    return import_pipeline_files(out_dir, o, err);
}

/* A ControlNet file becomes out_dir itself (a ControlNetModel folder). */
static int import_controlnet(const st_file *f, const char *prefix, const char *out_dir,
                             const convert_options *o, char *used, cnet_error *err) {
    char config[4096];
    int rc = component_config(config, sizeof config, o, "controlnet", f, prefix, CONVERT_CONTROLNET,
                              out_dir, err);
    if (rc) return rc;
    rc = convert_component_import(f, prefix, CONVERT_CONTROLNET, config, out_dir, used, err);
    if (strstr(config, ".inferred.json")) unlink(config);
    if (rc == 0 && *prefix) rc = check_all_used(f, prefix, used, err);
    for (int i = 0; rc == 0 && !*prefix && i < f->n; i++)
        if (!used[i])
            rc = cnet_fail(err, CNET_EFORMAT, "%s: tensor '%s' is not part of the ControlNet",
                           f->path, f->entries[i].name);
    return rc;
}

static int import_file(const char *in, const char *out_dir, const convert_options *o,
                       cnet_error *err) {
    st_file f;
    int rc = weights_file_open(&f, in, err);
    if (rc) return rc;
    char *used = calloc((size_t)f.n + 1, 1);
    if (!used)
        rc = cnet_fail(err, CNET_ENOMEM, "out of memory");
    else if (has_prefix(&f, "conditioner.embedders.") ||
             has_prefix(&f, "model.diffusion_model.label_emb."))
        rc = cnet_fail(err, CNET_EFORMAT,
                       "%s: an SDXL single file is not converted: cnet reads SDXL as a diffusers "
                       "folder (diffusers' StableDiffusionXLPipeline.from_single_file(...)"
                       ".save_pretrained(DIR), or the Hub's diffusers repo)",
                       in);
    else if (has_substring(&f, "lora_") || has_substring(&f, ".lora."))
        rc = cnet_fail(err, CNET_EFORMAT,
                       "%s: a LoRA file (lora_* keys) is a patch to a model, not a model: "
                       "nothing to convert; merge it into its base model with a LoRA tool first",
                       in);
    else if (st_find(&f, PREFIX_CONTROL "input_hint_block.0.weight"))
        rc = import_controlnet(&f, PREFIX_CONTROL, out_dir, o, used, err);
    else if (st_find(&f, "input_hint_block.0.weight"))
        rc = import_controlnet(&f, "", out_dir, o, used, err);
    else if (st_find(&f, PREFIX_UNET "input_blocks.0.0.weight"))
        rc = import_sd(&f, out_dir, o, used, err);
    else
        rc = cnet_fail(err, CNET_EFORMAT,
                       "%s: not a checkpoint this converter knows (%d tensors, the first '%s'; "
                       "it reads SD 1.x / 2.x single files and A1111/ComfyUI ControlNets)",
                       in, f.n, f.n ? f.entries[0].name : "none");
    free(used);
    st_close(&f);
    return rc;
}

/* The kind of a diffusers component folder, from its config's class; -1
 * for a folder that holds no model (tokenizer/, scheduler/). */
static int folder_kind(const char *dir) {
    char path[4096];
    path_fmt(path, sizeof path, "%s/config.json", dir);
    json_error_t jerr;
    json_t *j = json_load_file(path, 0, &jerr);
    if (!j) return -1;
    const char *cls = json_string_value(json_object_get(j, "_class_name"));
    const char *arch = json_string_value(json_array_get(json_object_get(j, "architectures"), 0));
    int kind = -1;
    if (cls && strcmp(cls, "UNet2DConditionModel") == 0) kind = CONVERT_UNET;
    if (cls && strcmp(cls, "ControlNetModel") == 0) kind = CONVERT_CONTROLNET;
    if (cls && strcmp(cls, "AutoencoderKL") == 0) kind = CONVERT_VAE;
    if (arch && strcmp(arch, "CLIPTextModel") == 0) kind = CONVERT_CLIP;
    json_decref(j);
    return kind;
}

/* One diffusers component folder rewritten: config copied, weights as
 * safetensors under today's names. */
static int import_component_folder(const char *from, int kind, const char *to, cnet_error *err) {
    char config[4096], weights[4096];
    int rc = model_component_files(config, weights, sizeof config, from, err);
    if (rc) return rc;
    st_file f;
    if ((rc = weights_file_open(&f, weights, err))) return rc;
    char *used = calloc((size_t)f.n + 1, 1);
    rc = used ? convert_component_import(&f, NULL, (convert_kind)kind, config, to, used, err)
              : cnet_fail(err, CNET_ENOMEM, "out of memory");
    for (int i = 0; rc == 0 && i < f.n; i++)
        if (!used[i] && !strstr(f.entries[i].name, "position_ids"))
            rc = cnet_fail(err, CNET_EFORMAT, "%s: tensor '%s' is not a parameter of the model",
                           weights, f.entries[i].name);
    free(used);
    st_close(&f);
    return rc;
}

/* A diffusers pipeline folder, or one component folder: each model's weights
 * rewritten, every other folder and file copied. */
static int import_folder(const char *in, const char *out_dir, cnet_error *err) {
    int kind = folder_kind(in);
    if (kind >= 0) return import_component_folder(in, kind, out_dir, err);
    int rc = copy_folder(in, out_dir, err), n = 0;
    DIR *d = rc ? NULL : opendir(in);
    struct dirent *de;
    while (rc == 0 && d && (de = readdir(d))) {
        char from[4096], to[4096];
        struct stat st;
        path_fmt(from, sizeof from, "%s/%s", in, de->d_name);
        path_fmt(to, sizeof to, "%s/%s", out_dir, de->d_name);
        if (de->d_name[0] == '.' || stat(from, &st) != 0 || !S_ISDIR(st.st_mode)) continue;
        if ((kind = folder_kind(from)) < 0) {
            rc = copy_folder(from, to, err);
            continue;
        }
        rc = import_component_folder(from, kind, to, err);
        if (rc) cnet_error_prefix(err, "%s", de->d_name);
        n++;
    }
    if (d) closedir(d);
    if (rc == 0 && n == 0)
        rc =
            cnet_fail(err, CNET_ENOTFOUND, "%s: no model folder (unet/, vae/, ...) to convert", in);
    return rc;
}

/* Removes a folder the conversion wrote (files and one level of folders). */
static void remove_tree(const char *dir, int depth) {
    DIR *d = opendir(dir);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        char path[4096];
        struct stat st;
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
        path_fmt(path, sizeof path, "%s/%s", dir, de->d_name);
        if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode) && depth > 0)
            remove_tree(path, depth - 1);
        else
            unlink(path);
    }
    if (d) closedir(d);
    rmdir(dir);
}

int convert_to_diffusers(const char *in, const char *out_dir, const convert_options *opts,
                         cnet_error *err) {
    static const convert_options none = {0};
    const convert_options *o = opts ? opts : &none;
    struct stat st;
    if (stat(in, &st) != 0) return cnet_fail(err, CNET_ENOTFOUND, "%s: not found", in);
    if (access(out_dir, F_OK) == 0)
        return cnet_fail(err, CNET_EINVAL, "%s: exists (the output must be a new folder)", out_dir);
    /* written under a temporary name, renamed when complete */
    char partial[4096];
    if (!path_fmt(partial, sizeof partial, "%s.partial-%ld", out_dir, (long)getpid()))
        return cnet_fail(err, CNET_ELIMIT, "%s: path too long", out_dir);
    int rc;
    if (S_ISDIR(st.st_mode))
        rc = import_folder(in, partial, err);
    else if (mkdir(partial, 0755) != 0)
        rc = cnet_fail(err, CNET_EIO, "%s: cannot create the folder: %s", partial, strerror(errno));
    else
        rc = import_file(in, partial, o, err);
    if (rc == 0 && rename(partial, out_dir) != 0)
        rc = cnet_fail(err, CNET_EIO, "cannot rename %s to %s: %s", partial, out_dir,
                       strerror(errno));
    if (rc) remove_tree(partial, 2);
    return rc;
}

int convert_controlnet_to_single_file(const char *controlnet_dir, const char *out_path,
                                      cnet_error *err) {
    return convert_component_export(controlnet_dir, CONVERT_CONTROLNET, PREFIX_CONTROL, out_path,
                                    err);
}
