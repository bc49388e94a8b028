/* The options of `cnet generate` (see generate.h): read against the
 * generate option table (api/api_generate.c, which the API validates
 * against too: the same names, limits and defaults), with everything that
 * can be checked without opening a file checked here, so a bad command line
 * fails at once with the option named (exit status 2). The per-ControlNet
 * options (controlnet, image, scale, control_guidance_start/end,
 * preprocess, threshold_a/b, processor_res, preprocess_model) are
 * comma-separated lists; a list of one value applies to every ControlNet.
 * Each ControlNet's preprocessor and its parameters are checked by
 * api_generate_annotator, as the API's are. Not a general option library
 * (server/cli/cli_args.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/sched/scheduler.h"
#include "server/cli/cli_args.h"
#include "server/cli/generate.h"

_Static_assert(API_GENERATE_IMAGES_MAX == PIPE_MAX_IMAGES, "num_images: one limit");

#define T api_generate_fields, api_generate_n_fields

void gen_usage(FILE *f) {
    fprintf(f,
            "usage: cnet generate --model DIR [--controlnet DIR[,DIR...]] --image FILE[,FILE...]\n"
            "                     --prompt TEXT [options]\n"
            "  Generates images with a Stable Diffusion ControlNet pipeline (diffusers'\n"
            "  StableDiffusionControlNetPipeline, or StableDiffusionXLControlNetPipeline when\n"
            "  --model's model_index.json names an SDXL pipeline; sizes H,W are diffusers'\n"
            "  (height, width) tuples) and writes them as PNGs with an A1111-style\n"
            "  \"parameters\" text chunk. The options are POST /v1/generate's, with the same\n"
            "  limits and defaults; spell them --snake_case or --kebab-case, --flag VALUE or\n"
            "  --flag=VALUE. Up to %d ControlNets, one control image each (default\n"
            "  DIR/controlnet of --model); V[,V...] lists give one value for all or one each.\n"
            "  --init_image makes it StableDiffusionControlNetImg2ImgPipeline, --mask_image\n"
            "  too StableDiffusionControlNetInpaintPipeline.\n",
            PIPE_MAX_CONTROLNETS);
    cli_usage(f, T);
    fprintf(f, "  Exit status: 0 ok, 1 failure (no output file is left), 2 usage error.\n");
}

/* Splits list (in place) at commas into at most max fields. */
static int split_list(const char *opt, char *list, char **fields, int max, int *n,
                      cnet_error *err) {
    *n = 0;
    for (char *p = list;;) {
        char *comma = strchr(p, ',');
        if (comma) *comma = '\0';
        if (!*p) return cnet_fail(err, CNET_EINVAL, "%s: empty entry in the list", opt);
        if (*n == max) return cnet_fail(err, CNET_EINVAL, "%s: more than %d entries", opt, max);
        fields[(*n)++] = p;
        if (!comma) return 0;
        p = comma + 1;
    }
}

/* A per-ControlNet option: its list as typed (NULL: the default). */
typedef struct gen_list {
    char flag[CLI_FLAG_MAX]; /* as typed; "": not given */
    const char *text;
} gen_list;

enum {
    L_SCALE,
    L_START,
    L_END,
    L_PREPROCESS,
    L_THRESHOLD_A,
    L_THRESHOLD_B,
    L_PROCESSOR_RES,
    L_PREPROCESS_MODEL, /* applied after each preprocessor's arguments are made */
    L_COUNT
};
static const char *const list_names[L_COUNT] = {
    "scale",       "control_guidance_start", "control_guidance_end", "preprocess", "threshold_a",
    "threshold_b", "processor_res",          "preprocess_model"};

/* Applies list l (one value for all, or one per ControlNet) to every
 * ControlNet, each value within the table's limits. The preprocessor's
 * parameters go, when given, into each ControlNet's members (pre[k]) for
 * api_generate_annotator. */
static int apply_list(gen_options *o, int l, const gen_list *given, json_t **pre, cnet_error *err) {
    const api_field *f = api_field_find(T, list_names[l]);
    char flag[CLI_FLAG_MAX], *copy = NULL, *v[PIPE_MAX_CONTROLNETS] = {NULL};
    snprintf(flag, sizeof flag, "%s%.*s", given->flag[0] ? "" : "--", CLI_FLAG_MAX - 3,
             given->flag[0] ? given->flag : f->name);
    int n = 1, rc = 0;
    generate_request *r = &o->req;
    if (given->text) {
        if (!(copy = strdup(given->text))) return cnet_fail(err, CNET_ENOMEM, "out of memory");
        rc = split_list(flag, copy, v, PIPE_MAX_CONTROLNETS, &n, err);
        if (!rc && n != 1 && n != r->n_controls)
            rc = cnet_fail(err, CNET_EINVAL,
                           "%s has %d values for %d ControlNets (give one value, or one per "
                           "ControlNet)",
                           flag, n, r->n_controls);
    }
    for (int k = 0; k < r->n_controls && !rc; k++) {
        generate_control *c = &r->controls[k];
        const char *text = v[n == 1 ? 0 : k];
        double d = 0;
        int p = 0;
        if (l == L_SCALE && !given->text) { /* the pipeline's default (generate.h) */
            c->scale = NAN;
            continue;
        }
        if (l == L_PREPROCESS) {
            rc = cli_field_enum(f, flag, text, &p, err);
            c->pre = rc ? NULL : annotator_find(f->choices[p]);
            continue;
        }
        if (l == L_PREPROCESS_MODEL) { /* the split copy stays, in o->owned[2] */
            c->pre_args.model_dir = text;
            continue;
        }
        if (l == L_PROCESSOR_RES) {
            long long res = 0;
            if (text && !(rc = cli_field_long(f, flag, text, &res, err)))
                json_object_set_new(pre[k], f->name, json_integer(res));
            continue;
        }
        if (l == L_THRESHOLD_A || l == L_THRESHOLD_B) {
            if (text && !(rc = cli_field_double(f, flag, text, &d, err)))
                json_object_set_new(pre[k], f->name, json_real(d));
            continue;
        }
        rc = cli_field_double(f, flag, text, &d, err);
        if (l == L_SCALE)
            c->scale = (float)d;
        else
            *(l == L_START ? &c->start : &c->end) = d;
    }
    if (l == L_PREPROCESS_MODEL && copy)
        o->owned[2] = copy;
    else
        free(copy);
    return rc;
}

/* --controlnet and --image: equal lists, kept (split) in o->owned;
 * without --controlnet, --model's controlnet/ for every image. */
static int set_controls(gen_options *o, const char *dirs, const char *images, cnet_error *err) {
    char *d[PIPE_MAX_CONTROLNETS], *im[PIPE_MAX_CONTROLNETS];
    int nd = 0, ni, rc;
    if (!(o->owned[1] = strdup(images))) return cnet_fail(err, CNET_ENOMEM, "out of memory");
    if ((rc = split_list("--image", o->owned[1], im, PIPE_MAX_CONTROLNETS, &ni, err))) return rc;
    if (dirs) {
        if (!(o->owned[0] = strdup(dirs))) return cnet_fail(err, CNET_ENOMEM, "out of memory");
        if ((rc = split_list("--controlnet", o->owned[0], d, PIPE_MAX_CONTROLNETS, &nd, err)))
            return rc;
        if (nd != ni)
            return cnet_fail(err, CNET_EINVAL,
                             "--controlnet lists %d folders but --image %d files (one image per "
                             "ControlNet)",
                             nd, ni);
    } else {
        size_t cap = strlen(o->req.model_dir) + sizeof "/controlnet";
        if (!(o->owned[0] = malloc(cap))) return cnet_fail(err, CNET_ENOMEM, "out of memory");
        snprintf(o->owned[0], cap, "%s/controlnet", o->req.model_dir);
        for (int k = 0; k < ni; k++) d[k] = o->owned[0];
    }
    o->req.n_controls = ni;
    for (int k = 0; k < ni; k++)
        o->req.controls[k] = (generate_control){.dir = d[k], .image_name = im[k]};
    return 0;
}

/* The pipe_micro pair a size option sets. */
static int *micro_pair(pipe_micro *u, const char *name) {
    const struct {
        const char *name;
        int *v;
    } pairs[] = {{"original_size", u->original_size},
                 {"crops_coords_top_left", u->crops_coords_top_left},
                 {"target_size", u->target_size},
                 {"negative_original_size", u->negative_original_size},
                 {"negative_crops_coords_top_left", u->negative_crops_coords_top_left},
                 {"negative_target_size", u->negative_target_size}};
    for (size_t k = 0; k < sizeof pairs / sizeof pairs[0]; k++)
        if (!strcmp(pairs[k].name, name)) return pairs[k].v;
    return NULL;
}

/* An AF_SIZE value "H,W" (diffusers' (height, width) order), each within
 * the field's limits. */
static int set_size(gen_options *o, const api_field *f, const char *flag, const char *v,
                    cnet_error *err) {
    int *pair = micro_pair(&o->req.micro, f->name);
    if (!v || !pair) return 0; /* none given: diffusers' default */
    const char *comma = strchr(v, ',');
    char first[32];
    if (!comma || (size_t)(comma - v) >= sizeof first)
        return cnet_fail(err, CNET_EINVAL, "%s '%s': give HEIGHT,WIDTH (diffusers' order)", flag,
                         v);
    snprintf(first, sizeof first, "%.*s", (int)(comma - v), v);
    long long a, b;
    int rc = cli_field_long(f, flag, first, &a, err);
    if (!rc) rc = cli_field_long(f, flag, comma + 1, &b, err);
    if (!rc) pair[0] = (int)a, pair[1] = (int)b;
    return rc;
}

/* The options that are one value (not a list); v NULL: the default. */
static int set_value(gen_options *o, const api_field *f, const char *flag, const char *v,
                     cnet_error *err) {
    generate_request *r = &o->req;
    const char *n = f->name;
    long long ll = 0;
    double d = 0;
    int rc = 0, k = 0;
    if (f->type == AF_TEXT || f->type == AF_MODEL) {
        if (!v && !strcmp(n, "out"))
            v = cli_field_default(f, o->defaults[0], sizeof o->defaults[0]);
        if (!v && !strcmp(n, "device"))
            v = cli_field_default(f, o->defaults[1], sizeof o->defaults[1]);
        if (!strcmp(n, "model")) r->model_dir = v;
        if (!strcmp(n, "prompt")) r->prompt = v;
        if (!strcmp(n, "negative_prompt")) r->negative_prompt = v;
        if (!strcmp(n, "prompt_2")) r->prompt_2 = v;
        if (!strcmp(n, "negative_prompt_2")) r->negative_prompt_2 = v;
        if (!strcmp(n, "out")) o->out = v;
        if (!strcmp(n, "device")) o->device = v;
        return 0;
    }
    if (f->type == AF_SIZE) return set_size(o, f, flag, v, err);
    if (f->type == AF_BASE64) { /* image files besides the control images */
        if (!strcmp(n, "init_image")) r->init_name = v;
        if (!strcmp(n, "mask_image")) r->mask_name = v;
        return 0;
    }
    if (!strcmp(n, "scheduler")) {
        if (!v) return r->scheduler = -1, 0;
        rc = cli_field_enum(f, flag, v, &k, err);
        r->scheduler = rc ? -1 : sched_kind_from_short(f->choices[k]);
    } else if (!strcmp(n, "mixed_precision")) {
        char def[16];
        rc = cnet_precision_parse(v ? v : cli_field_default(f, def, sizeof def),
                                  &o->mixed_precision, err);
    } else if (!strcmp(n, "guess_mode")) {
        r->guess_mode = v && !strcmp(v, "true");
    } else if (!strcmp(n, "seed")) {
        if (!v) return 0; /* none given: random */
        rc = cli_field_u64(f, flag, v, &r->seed, err);
        o->seed_given = !rc;
    } else if (f->type == AF_INT) {
        if (!v && !f->def) return 0; /* width, height: none given */
        rc = cli_field_long(f, flag, v, &ll, err);
        if (!strcmp(n, "steps")) r->steps = (int)ll;
        if (!strcmp(n, "num_images")) r->num_images = (int)ll;
        if (!strcmp(n, "clip_skip")) r->clip_skip = (int)ll;
        if (!strcmp(n, "width")) r->width = (int)ll;
        if (!strcmp(n, "height")) r->height = (int)ll;
        if (!strcmp(n, "max_pixels")) r->max_pixels = ll;
        if (!strcmp(n, "padding_mask_crop")) r->padding_mask_crop = (int)ll;
    } else if (f->type == AF_NUM) {
        rc = cli_field_double(f, flag, v, &d, err);
        if (!strcmp(n, "guidance")) r->guidance = (float)d;
        if (!strcmp(n, "eta")) r->eta = (float)d;
        if (!strcmp(n, "strength")) r->strength = d;
    }
    return rc;
}

static int gen_args_controls(gen_options *o, const gen_list *lists, const char *dirs,
                             const char *images, const json_t *canny, cnet_error *err);

int gen_args_parse(gen_options *o, int argc, char **argv, cnet_error *err) {
    memset(o, 0, sizeof *o);
    o->req.padding_mask_crop = -1; /* none */
    gen_list lists[L_COUNT];
    memset(lists, 0, sizeof lists);
    const char *dirs = NULL, *images = NULL;
    json_t *canny = json_object(); /* canny_low/high_threshold as given */
    if (!canny) return cnet_fail(err, CNET_ENOMEM, "out of memory");
    int rc = 0;
    for (int k = 0; k < api_generate_n_fields && !rc; k++) { /* the table's defaults */
        const api_field *f = &api_generate_fields[k];
        if (!(f->flags & (AF_API_ONLY | AF_PER_CONTROLNET))) rc = set_value(o, f, NULL, NULL, err);
    }
    for (int i = 1; i < argc && !rc; i++) {
        if (cli_is_help(argv[i])) {
            o->help = 1;
            json_decref(canny);
            return 0;
        }
        cli_opt a;
        if ((rc = cli_next(T, argc, argv, &i, &a, err))) break;
        const api_field *f = a.f;
        if (!strcmp(f->name, "controlnet")) {
            dirs = a.value;
        } else if (!strcmp(f->name, "image")) {
            images = a.value;
        } else if (f->flags & AF_PER_CONTROLNET) {
            for (int l = 0; l < L_COUNT; l++)
                if (!strcmp(f->name, list_names[l])) {
                    snprintf(lists[l].flag, sizeof lists[l].flag, "%s", a.flag);
                    lists[l].text = a.value;
                }
        } else {
            rc = set_value(o, f, a.flag, a.value, err);
            double d;
            if (!rc && !strncmp(f->name, "canny_", 6) &&
                !(rc = cli_field_double(f, a.flag, a.value, &d, err)))
                json_object_set_new(canny, f->name, json_real(d));
        }
    }
    if (!rc) rc = gen_args_controls(o, lists, dirs, images, canny, err);
    json_decref(canny);
    return rc;
}

/* Everything after the flags are read: the required ones, the ControlNets
 * and their lists, each one's preprocessor (api_generate_annotator). */
static int gen_args_controls(gen_options *o, const gen_list *lists, const char *dirs,
                             const char *images, const json_t *canny, cnet_error *err) {
    int rc;
    if (!o->req.model_dir || !images || !o->req.prompt)
        return cnet_fail(err, CNET_EINVAL, "missing %s",
                         !o->req.model_dir ? "--model"
                         : !images         ? "--image"
                                           : "--prompt");
    if (o->req.mask_name && !o->req.init_name)
        return cnet_fail(err, CNET_EINVAL,
                         "--mask_image needs --init_image (the image to repaint)");
    if (o->req.padding_mask_crop >= 0 && !o->req.mask_name)
        return cnet_fail(err, CNET_EINVAL, "--padding_mask_crop needs --mask_image");
    if (image_format_from_path(o->out) != IMAGE_FORMAT_PNG)
        return cnet_fail(err, CNET_EINVAL, "--out %s: the output must be a .png file", o->out);
    if ((rc = set_controls(o, dirs, images, err))) return rc;
    json_t *pre[PIPE_MAX_CONTROLNETS] = {NULL};
    for (int k = 0; k < o->req.n_controls && !rc; k++)
        if (!(pre[k] = json_deep_copy(canny))) rc = cnet_fail(err, CNET_ENOMEM, "out of memory");
    for (int l = 0; l < L_PREPROCESS_MODEL && !rc; l++) rc = apply_list(o, l, &lists[l], pre, err);
    for (int k = 0; k < o->req.n_controls && !rc; k++) {
        generate_control *c = &o->req.controls[k];
        api_error e = {0};
        if (api_generate_annotator(c->pre ? c->pre->name : NULL, pre[k], &c->pre, &c->pre_args, &e))
            rc = cnet_fail(err, CNET_EINVAL, "ControlNet %d: --%s", k, e.message);
    }
    if (!rc) rc = apply_list(o, L_PREPROCESS_MODEL, &lists[L_PREPROCESS_MODEL], pre, err);
    for (int k = 0; k < PIPE_MAX_CONTROLNETS; k++) json_decref(pre[k]);
    if (rc) return rc;
    for (int k = 0; k < o->req.n_controls; k++) {
        const generate_control *c = &o->req.controls[k];
        if (!(c->start < c->end))
            return cnet_fail(err, CNET_EINVAL, "ControlNet %d: %s %g must be below %s %g", k,
                             lists[L_START].flag[0] ? lists[L_START].flag
                                                    : "--control_guidance_start",
                             (double)c->start,
                             lists[L_END].flag[0] ? lists[L_END].flag : "--control_guidance_end",
                             (double)c->end);
    }
    return 0;
}

void gen_args_free(gen_options *o) {
    free(o->owned[0]);
    free(o->owned[1]);
    free(o->owned[2]);
    o->owned[0] = o->owned[1] = NULL;
}
