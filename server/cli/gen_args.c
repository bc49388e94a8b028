/* The options of `cnet generate` (see generate.h): parsing and checking
 * everything that can be checked without opening a file, so a bad command
 * line fails at once with the option named (exit status 2). The option names
 * and defaults follow StableDiffusionControlNetPipeline.__call__'s arguments
 * (num_inference_steps 20 -> --steps, guidance_scale 7.5 -> --guidance,
 * controlnet_conditioning_scale 1.0 -> --scale, control_guidance_start/end
 * 0/1 -> --start/--end). Per-ControlNet lists are comma-separated; a list of
 * one value applies to every ControlNet. Not a general option library. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/sched/scheduler.h"
#include "server/cli/generate.h"

static const char *const pre_names[GEN_PRE_COUNT] = {"none", "canny"};

const char *gen_preprocess_name(gen_preprocess p) {
    return (unsigned)p < GEN_PRE_COUNT ? pre_names[p] : "?";
}

void gen_usage(FILE *f) {
    fprintf(
        f,
        "usage: cnet generate --model DIR --controlnet DIR[,DIR...] --image FILE[,FILE...]\n"
        "                     --prompt TEXT [options]\n"
        "  Generates images with a Stable Diffusion ControlNet pipeline (diffusers'\n"
        "  StableDiffusionControlNetPipeline) and writes them as PNGs with an A1111-style\n"
        "  \"parameters\" text chunk.\n"
        "  --model DIR            diffusers pipeline folder (tokenizer, text_encoder, unet, vae,\n"
        "                         scheduler)\n"
        "  --controlnet DIR,...   ControlNet folders (up to %d), one control image each\n"
        "  --image FILE,...       control images (PNG or JPEG), as many as ControlNets\n"
        "  --prompt TEXT          the prompt\n"
        "  --negative-prompt TEXT (default none)\n"
        "  --steps N              denoising steps, 1..%d (default %d)\n"
        "  --guidance G           classifier-free guidance scale, on when > 1 (default %g)\n"
        "  --scheduler NAME       ddim|pndm|euler|euler_a|dpmpp_2m|unipc|ddpm: the model's\n"
        "                         scheduler config read as that class (default: its own class)\n"
        "  --seed N               seed of the initial noise (default: random, printed and saved)\n"
        "  --scale S[,S...]       controlnet_conditioning_scale per ControlNet (default 1)\n"
        "  --start F[,F...]       control_guidance_start per ControlNet, 0..1 (default 0)\n"
        "  --end F[,F...]         control_guidance_end per ControlNet, 0..1 (default 1)\n"
        "  --guess-mode           guess mode (ControlNets see only the conditional batch)\n"
        "  --num-images N         images from one run, 1..%d (default 1)\n"
        "  --width W --height H   output size, multiples of 8 (default: the first control\n"
        "                         image's size rounded down to a multiple of the VAE factor)\n"
        "  --clip-skip K          skip the last K text encoder layers (default 0)\n"
        "  --eta E                DDIM eta (default 0)\n"
        "  --preprocess P[,P...]  none|canny, per control image (default none)\n"
        "  --low L --high H       canny thresholds (default %g, %g)\n"
        "  --max-pixels N         largest control image and output, in pixels (default %lld)\n"
        "  --device D             cpu|cuda|cuda:N (default cpu)\n"
        "  --mixed-precision P    no|fp16|bf16: 16-bit tensor-core products on cuda with\n"
        "                         float32 accumulation (default no; the cpu computes in\n"
        "                         float32); also spelled --mixed_precision\n"
        "  --out FILE.png         output (default %s); with --num-images N > 1 the files are\n"
        "                         FILE_0.png ... FILE_<N-1>.png\n"
        "  Lists are comma-separated; one value applies to every ControlNet.\n"
        "  Exit status: 0 ok, 1 failure (no output file is left), 2 usage error.\n",
        PIPE_MAX_CONTROLNETS, GEN_MAX_STEPS, GEN_DEFAULT_STEPS, (double)GEN_DEFAULT_GUIDANCE,
        PIPE_MAX_IMAGES, GEN_DEFAULT_CANNY_LOW, GEN_DEFAULT_CANNY_HIGH,
        (long long)IMAGE_MAX_PIXELS_DEFAULT, GEN_DEFAULT_OUT);
}

static int parse_long(const char *opt, const char *s, long long lo, long long hi, long long *out,
                      cnet_error *err) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || isspace((unsigned char)*s) || v < lo || v > hi)
        return cnet_fail(err, CNET_EINVAL, "%s wants an integer in %lld..%lld, got '%s'", opt, lo,
                         hi, s);
    *out = v;
    return 0;
}

static int parse_int(const char *opt, const char *s, int lo, int hi, int *out, cnet_error *err) {
    long long v;
    int rc = parse_long(opt, s, lo, hi, &v, err);
    if (!rc) *out = (int)v;
    return rc;
}

static int parse_double(const char *opt, const char *s, double lo, double hi, double *out,
                        cnet_error *err) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || isspace((unsigned char)*s) || !isfinite(v) || v < lo || v > hi)
        return cnet_fail(err, CNET_EINVAL, "%s wants a number in [%g, %g], got '%s'", opt, lo, hi,
                         s);
    *out = v;
    return 0;
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

typedef enum { LIST_SCALE, LIST_START, LIST_END, LIST_PREPROCESS } list_kind;

/* Applies a per-ControlNet list (one value for all, or one per ControlNet)
 * to every ControlNet; arg NULL keeps the defaults. */
static int apply_list(gen_options *o, list_kind kind, const char *opt, const char *arg,
                      cnet_error *err) {
    if (!arg) return 0;
    char *copy = strdup(arg), *f[PIPE_MAX_CONTROLNETS];
    if (!copy) return cnet_fail(err, CNET_ENOMEM, "out of memory");
    int n = 0, rc = split_list(opt, copy, f, PIPE_MAX_CONTROLNETS, &n, err);
    if (!rc && n != 1 && n != o->n_controls)
        rc = cnet_fail(err, CNET_EINVAL,
                       "%s has %d values for %d ControlNets (give one value, or one per "
                       "ControlNet)",
                       opt, n, o->n_controls);
    for (int k = 0; k < o->n_controls && !rc; k++) {
        gen_control *c = &o->controls[k];
        const char *v = f[n == 1 ? 0 : k];
        double d = 0;
        switch (kind) {
        case LIST_SCALE:
            rc = parse_double(opt, v, -GEN_MAX_SCALE, GEN_MAX_SCALE, &d, err);
            c->scale = (float)d;
            break;
        case LIST_START:
        case LIST_END:
            rc = parse_double(opt, v, 0, 1, &d, err);
            *(kind == LIST_START ? &c->start : &c->end) = (float)d;
            break;
        case LIST_PREPROCESS: {
            int p = 0;
            while (p < GEN_PRE_COUNT && strcmp(pre_names[p], v) != 0) p++;
            if (p == GEN_PRE_COUNT)
                rc = cnet_fail(err, CNET_EINVAL, "--preprocess: unknown '%s' (none or canny)", v);
            c->pre = (gen_preprocess)p;
            break;
        }
        }
    }
    free(copy);
    return rc;
}

/* --controlnet and --image: equal lists, kept (split) in o->owned. */
static int set_controls(gen_options *o, const char *dirs, const char *images, cnet_error *err) {
    char *d[PIPE_MAX_CONTROLNETS], *im[PIPE_MAX_CONTROLNETS];
    int nd, ni, rc;
    if (!(o->owned[0] = strdup(dirs)) || !(o->owned[1] = strdup(images)))
        return cnet_fail(err, CNET_ENOMEM, "out of memory");
    if ((rc = split_list("--controlnet", o->owned[0], d, PIPE_MAX_CONTROLNETS, &nd, err)) ||
        (rc = split_list("--image", o->owned[1], im, PIPE_MAX_CONTROLNETS, &ni, err)))
        return rc;
    if (nd != ni)
        return cnet_fail(err, CNET_EINVAL,
                         "--controlnet lists %d folders but --image %d files (one image per "
                         "ControlNet)",
                         nd, ni);
    o->n_controls = nd;
    for (int k = 0; k < nd; k++)
        o->controls[k] =
            (gen_control){.dir = d[k], .image = im[k], .scale = 1.0f, .start = 0.0f, .end = 1.0f};
    return 0;
}

/* The option's value, or NULL (with err) when it is the last argument. */
static const char *value_of(int argc, char **argv, int *i, cnet_error *err) {
    if (*i + 1 >= argc) {
        cnet_fail(err, CNET_EINVAL, "%s needs a value", argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

int gen_args_parse(gen_options *o, int argc, char **argv, cnet_error *err) {
    memset(o, 0, sizeof *o);
    o->steps = GEN_DEFAULT_STEPS;
    o->guidance = GEN_DEFAULT_GUIDANCE;
    o->sched_kind = -1;
    o->num_images = 1;
    o->low = GEN_DEFAULT_CANNY_LOW, o->high = GEN_DEFAULT_CANNY_HIGH;
    o->max_pixels = IMAGE_MAX_PIXELS_DEFAULT;
    o->out = GEN_DEFAULT_OUT;
    o->device = "cpu";
    const char *dirs = NULL, *images = NULL, *scales = NULL, *starts = NULL, *ends = NULL,
               *pres = NULL;
    int rc = 0;
    for (int i = 1; i < argc && !rc; i++) {
        const char *a = argv[i], *v = NULL;
        double d;
        long long ll;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            o->help = 1;
            return 0;
        } else if (strcmp(a, "--guess-mode") == 0) {
            o->guess_mode = 1;
            continue;
        } else if (strncmp(a, "--", 2) != 0) {
            return cnet_fail(err, CNET_EINVAL, "unexpected argument '%s'", a);
        }
        if (!(v = value_of(argc, argv, &i, err))) return CNET_EINVAL;
        if (strcmp(a, "--model") == 0)
            o->model = v;
        else if (strcmp(a, "--controlnet") == 0)
            dirs = v;
        else if (strcmp(a, "--image") == 0)
            images = v;
        else if (strcmp(a, "--prompt") == 0)
            o->prompt = v;
        else if (strcmp(a, "--negative-prompt") == 0)
            o->negative_prompt = v;
        else if (strcmp(a, "--out") == 0)
            o->out = v;
        else if (strcmp(a, "--device") == 0)
            o->device = v;
        else if (strcmp(a, "--mixed-precision") == 0 || strcmp(a, "--mixed_precision") == 0)
            rc = cnet_precision_parse(v, &o->mixed_precision, err);
        else if (strcmp(a, "--scale") == 0)
            scales = v;
        else if (strcmp(a, "--start") == 0)
            starts = v;
        else if (strcmp(a, "--end") == 0)
            ends = v;
        else if (strcmp(a, "--preprocess") == 0)
            pres = v;
        else if (strcmp(a, "--steps") == 0)
            rc = parse_int(a, v, 1, GEN_MAX_STEPS, &o->steps, err);
        else if (strcmp(a, "--num-images") == 0)
            rc = parse_int(a, v, 1, PIPE_MAX_IMAGES, &o->num_images, err);
        else if (strcmp(a, "--width") == 0)
            rc = parse_int(a, v, 8, GEN_MAX_SIDE, &o->width, err);
        else if (strcmp(a, "--height") == 0)
            rc = parse_int(a, v, 8, GEN_MAX_SIDE, &o->height, err);
        else if (strcmp(a, "--clip-skip") == 0)
            rc = parse_int(a, v, 0, GEN_MAX_CLIP_SKIP, &o->clip_skip, err);
        else if (strcmp(a, "--max-pixels") == 0) {
            rc = parse_long(a, v, 1, INT64_MAX, &ll, err);
            o->max_pixels = ll;
        } else if (strcmp(a, "--seed") == 0) {
            char *end;
            errno = 0;
            unsigned long long s = strtoull(v, &end, 10);
            if (errno || end == v || *end || !isdigit((unsigned char)*v))
                rc =
                    cnet_fail(err, CNET_EINVAL, "--seed wants a non-negative integer, got '%s'", v);
            o->seed = s, o->seed_given = 1;
        } else if (strcmp(a, "--guidance") == 0) {
            rc = parse_double(a, v, 0, GEN_MAX_GUIDANCE, &d, err);
            o->guidance = (float)d;
        } else if (strcmp(a, "--eta") == 0) {
            rc = parse_double(a, v, 0, GEN_MAX_ETA, &d, err);
            o->eta = (float)d;
        } else if (strcmp(a, "--low") == 0) {
            rc = parse_double(a, v, 0, GEN_MAX_CANNY_THRESHOLD, &o->low, err);
        } else if (strcmp(a, "--high") == 0) {
            rc = parse_double(a, v, 0, GEN_MAX_CANNY_THRESHOLD, &o->high, err);
        } else if (strcmp(a, "--scheduler") == 0) {
            o->sched_kind = sched_kind_from_short(v);
            if (o->sched_kind < 0)
                rc = cnet_fail(err, CNET_EINVAL,
                               "--scheduler: unknown '%s' (ddim, pndm, euler, euler_a, dpmpp_2m, "
                               "unipc, ddpm)",
                               v);
        } else {
            rc = cnet_fail(err, CNET_EINVAL, "unknown option '%s'", a);
        }
    }
    if (rc) return rc;
    if (!o->model || !dirs || !images || !o->prompt)
        return cnet_fail(err, CNET_EINVAL, "missing %s",
                         !o->model ? "--model"
                         : !dirs   ? "--controlnet"
                         : !images ? "--image"
                                   : "--prompt");
    if (o->width % 8 || o->height % 8)
        return cnet_fail(err, CNET_EINVAL, "%s %d is not a multiple of 8",
                         o->width % 8 ? "--width" : "--height",
                         o->width % 8 ? o->width : o->height);
    if (image_format_from_path(o->out) != IMAGE_FORMAT_PNG)
        return cnet_fail(err, CNET_EINVAL, "--out %s: the output must be a .png file", o->out);
    if ((rc = set_controls(o, dirs, images, err)) ||
        (rc = apply_list(o, LIST_SCALE, "--scale", scales, err)) ||
        (rc = apply_list(o, LIST_START, "--start", starts, err)) ||
        (rc = apply_list(o, LIST_END, "--end", ends, err)) ||
        (rc = apply_list(o, LIST_PREPROCESS, "--preprocess", pres, err)))
        return rc;
    for (int k = 0; k < o->n_controls; k++)
        if (!(o->controls[k].start < o->controls[k].end))
            return cnet_fail(err, CNET_EINVAL, "ControlNet %d: --start %g must be below --end %g",
                             k, (double)o->controls[k].start, (double)o->controls[k].end);
    return 0;
}

void gen_args_free(gen_options *o) {
    free(o->owned[0]);
    free(o->owned[1]);
    o->owned[0] = o->owned[1] = NULL;
}
