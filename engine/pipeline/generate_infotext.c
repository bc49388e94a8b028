/* The A1111-style "parameters" text of a generated image (see
 * engine/pipeline/generate_infotext.h), written into the PNGs of `cnet
 * generate` and of the service alike.
 *
 * The layout is the one AUTOMATIC1111's webui writes (processing.py
 * create_infotext) and its parse_generation_parameters and other tools
 * (image browsers, Civitai) read back: the prompt, an optional "Negative
 * prompt: " line, then one line of "Key: value" pairs separated by ", ". A
 * value with a comma, colon or newline is written as a JSON string, as
 * A1111's quote() does. Key names and sampler names are A1111's where one
 * exists ("CFG scale", "Clip skip", "Batch size", "Euler a", "DPM++ 2M
 * Karras", "PLMS" for PNDM); the ControlNet entries follow the
 * sd-webui-controlnet extension ("ControlNet 0: \"Module: canny, Model: ...,
 * Weight: 1, ...\""). Not a parser: cnet never reads this text back. */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/pipeline/generate_infotext.h"

/* A1111's sampler names for the scheduler classes (DDPM has none there). */
static const char *sampler_name(const cnet_sched_config *s) {
    switch (s->kind) {
    case CNET_SCHED_DDPM:
        return "DDPM";
    case CNET_SCHED_DDIM:
        return "DDIM";
    case CNET_SCHED_PNDM:
        return "PLMS";
    case CNET_SCHED_EULER:
        return s->use_karras_sigmas ? "Euler Karras" : "Euler";
    case CNET_SCHED_EULER_ANCESTRAL:
        return "Euler a";
    case CNET_SCHED_DPMSOLVER_MULTISTEP:
        return s->use_karras_sigmas ? "DPM++ 2M Karras" : "DPM++ 2M";
    case CNET_SCHED_UNIPC:
        return s->use_karras_sigmas ? "UniPC Karras" : "UniPC";
    case CNET_SCHED_KIND_COUNT:
        break;
    }
    return "?";
}

/* Writes v as A1111's quote(v) does: as is, or as a JSON string when it
 * holds a comma, colon or newline. */
static void put_quoted(FILE *f, const char *v) {
    if (!strpbrk(v, ",:\n")) {
        fputs(v, f);
        return;
    }
    json_t *j = json_stringn_nocheck(v, strlen(v));
    char *s = j ? json_dumps(j, JSON_ENCODE_ANY) : NULL;
    fputs(s ? s : "\"\"", f);
    free(s);
    json_decref(j);
}

/* A model's name for the parameters text: the folder's last component, or
 * its last two when the last is a generic component folder ("controlnet"),
 * written into buf. */
static void model_name(char *buf, size_t cap, const char *dir) {
    size_t len = strlen(dir);
    while (len > 1 && dir[len - 1] == '/') len--;
    size_t start = len;
    while (start > 0 && dir[start - 1] != '/') start--;
    if (len - start == strlen("controlnet") &&
        strncmp(dir + start, "controlnet", len - start) == 0 && start > 1) {
        size_t parent = start - 1; /* the slash before the last component */
        while (parent > 0 && dir[parent - 1] != '/') parent--;
        start = parent;
    }
    snprintf(buf, cap, "%.*s", (int)(len - start), dir + start);
}

/* One ControlNet's value, before quoting. */
static char *control_text(const generate_request *r, int k) {
    const generate_control *c = &r->controls[k];
    char name[256], *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) return NULL;
    model_name(name, sizeof name, c->dir);
    fprintf(f, "Module: %s, Model: ", c->pre ? c->pre->a1111_name : "none");
    put_quoted(f, name);
    fprintf(f, ", Weight: %g", (double)(isnan(c->scale) ? generate_default_scale(r) : c->scale));
    if (c->pre && c->pre_args.processor_res > 0)
        fprintf(f, ", Processor Res: %d", c->pre_args.processor_res);
    for (int p = 0; c->pre && p < ANNOTATOR_MAX_PARAMS; p++)
        if (c->pre->param[p].name) fprintf(f, ", Threshold %c: %g", 'A' + p, c->pre_args.value[p]);
    fprintf(f, ", Guidance Start: %g, Guidance End: %g", (double)c->start, (double)c->end);
    if (fclose(f) == 0) return text;
    free(text);
    return NULL;
}

/* SDXL's parameters, A1111 having no keys for them: "Prompt 2" and
 * "Negative prompt 2" when given, and each micro-conditioning size that was
 * set as diffusers' (height, width) pair, e.g. Original size: "[1024, 768]". */
static void put_sdxl(FILE *f, const generate_request *r) {
    if (r->prompt_2 && *r->prompt_2) fputs(", Prompt 2: ", f), put_quoted(f, r->prompt_2);
    if (r->negative_prompt_2 && *r->negative_prompt_2)
        fputs(", Negative prompt 2: ", f), put_quoted(f, r->negative_prompt_2);
    const pipe_micro *u = &r->micro;
    const struct {
        const char *key;
        const int *v;
    } sizes[] = {{"Original size", u->original_size},
                 {"Crops coords top left", u->crops_coords_top_left},
                 {"Target size", u->target_size},
                 {"Negative original size", u->negative_original_size},
                 {"Negative crops coords top left", u->negative_crops_coords_top_left},
                 {"Negative target size", u->negative_target_size}};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++)
        if (sizes[k].v[0] || sizes[k].v[1])
            fprintf(f, ", %s: \"[%d, %d]\"", sizes[k].key, sizes[k].v[0], sizes[k].v[1]);
}

char *generate_infotext(const generate_request *r, const cnet_sched_config *sched_cfg, int width,
                        int height, int index, cnet_error *err) {
    char *text = NULL, name[256];
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) {
        cnet_fail(err, CNET_ENOMEM, "out of memory for the parameters text");
        return NULL;
    }
    fprintf(f, "%s\n", r->prompt);
    if (r->negative_prompt && *r->negative_prompt)
        fprintf(f, "Negative prompt: %s\n", r->negative_prompt);
    fprintf(f, "Steps: %d, Sampler: %s, CFG scale: %g, Seed: %llu, Size: %dx%d, Model: ", r->steps,
            sampler_name(sched_cfg), (double)r->guidance, (unsigned long long)r->seed, width,
            height);
    model_name(name, sizeof name, r->model_dir);
    put_quoted(f, name);
    if (r->num_images > 1) fprintf(f, ", Batch size: %d, Batch pos: %d", r->num_images, index);
    /* A1111 counts the last layer too: its "Clip skip: 2" is diffusers' 1. */
    if (r->clip_skip > 0) fprintf(f, ", Clip skip: %d", r->clip_skip + 1);
    if (sched_cfg->kind == CNET_SCHED_DDIM && r->eta != 0) fprintf(f, ", Eta: %g", (double)r->eta);
    if (r->guess_mode) fputs(", Guess mode: True", f);
    if (r->init_image) fprintf(f, ", Denoising strength: %g", r->strength);
    if (r->mask_image && r->padding_mask_crop >= 0)
        fprintf(f, ", Masked area padding: %d", r->padding_mask_crop);
    put_sdxl(f, r);
    int ok = 1;
    for (int k = 0; k < r->n_controls && ok; k++) {
        char *c = control_text(r, k);
        ok = c != NULL;
        fprintf(f, ", ControlNet %d: ", k);
        if (c) put_quoted(f, c);
        free(c);
    }
    fputs(", Version: cnet", f);
    if (fclose(f) != 0 || !ok) {
        free(text);
        cnet_fail(err, CNET_ENOMEM, "out of memory for the parameters text");
        return NULL;
    }
    return text;
}
