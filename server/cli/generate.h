/* `cnet generate`: the parts of the command that server/cli/cmd_generate.c
 * drives — its options (gen_args.c), the A1111-style "parameters" text of
 * each output image (gen_infotext.c), progress on stderr (gen_progress.c)
 * and the all-or-nothing writing of the output PNGs (gen_output.c). The
 * generation itself is engine/pipeline/pipeline.h; nothing here touches tensors. */
#ifndef CNET_GENERATE_H
#define CNET_GENERATE_H

#include <stdint.h>
#include <stdio.h>

#include "engine/config/config.h"
#include "engine/core/error.h"
#include "engine/image/image.h"
#include "engine/pipeline/pipeline.h"

#define GEN_DEFAULT_STEPS 20
#define GEN_DEFAULT_GUIDANCE 7.5f
#define GEN_DEFAULT_OUT "output.png"
#define GEN_DEFAULT_CANNY_LOW 100.0
#define GEN_DEFAULT_CANNY_HIGH 200.0
/* --steps above this is refused (a scheduler has 1000 training steps). */
#define GEN_MAX_STEPS 1000
/* --width / --height above this is refused before any pixel limit. */
#define GEN_MAX_SIDE 16384
/* Bounds of the numeric options beyond which a value is surely a typo. */
#define GEN_MAX_GUIDANCE 1000.0
#define GEN_MAX_SCALE 1000.0
#define GEN_MAX_ETA 1000.0
#define GEN_MAX_CLIP_SKIP 1000
/* Canny's gradient magnitude (L1 of 3x3 Sobel on 8 bits) stays below this. */
#define GEN_MAX_CANNY_THRESHOLD 65536.0

typedef enum gen_preprocess { GEN_PRE_NONE = 0, GEN_PRE_CANNY, GEN_PRE_COUNT } gen_preprocess;

/* "none", "canny". */
const char *gen_preprocess_name(gen_preprocess p);

/* One ControlNet of the command line, with its control image. */
typedef struct gen_control {
    const char *dir;   /* --controlnet entry (points into gen_options.owned) */
    const char *image; /* --image entry (likewise) */
    float scale, start, end;
    gen_preprocess pre;
} gen_control;

typedef struct gen_options {
    const char *model, *prompt, *negative_prompt, *out, *device; /* borrowed from argv */
    int steps;
    int sched_kind; /* cnet_sched_kind, or -1: the model's own scheduler class */
    float guidance, eta;
    uint64_t seed;
    int seed_given;
    int guess_mode, num_images, clip_skip;
    int width, height; /* 0: from the first control image */
    double low, high;  /* canny thresholds */
    int64_t max_pixels;
    cnet_precision mixed_precision; /* --mixed-precision (cpu: float32 with a note) */
    int n_controls;
    gen_control controls[PIPE_MAX_CONTROLNETS];
    char *owned[2]; /* copies of the --controlnet and --image lists, split in place */
    int help;       /* --help was given: print the usage, nothing else */
} gen_options;

void gen_usage(FILE *f);
/* Parses argv (argv[0] = "generate"). CNET_EINVAL names the option that is
 * wrong or missing (a usage error). Free with gen_args_free, also on error. */
int gen_args_parse(gen_options *o, int argc, char **argv, cnet_error *err);
void gen_args_free(gen_options *o);

/* A model's name for the parameters text: the folder's last component, or
 * its last two when the last is a generic component folder ("controlnet"),
 * written into buf. */
void gen_model_name(char *buf, size_t cap, const char *dir);

/* The A1111 "parameters" text of image `index` (of o->num_images), in the
 * layout A1111's parse_generation_parameters reads:
 *   <prompt>
 *   Negative prompt: <negative prompt>          (when there is one)
 *   Steps: 20, Sampler: UniPC, CFG scale: 7.5, Seed: 1, Size: 512x512,
 *   Model: sd15, ControlNet 0: "Module: canny, Model: ..., Weight: 1, ...",
 *   Version: cnet
 * sched is the scheduler config the run used. Returns a malloc'd string
 * (caller frees) or NULL with err set. */
char *gen_infotext(const gen_options *o, const cnet_sched_config *sched, uint64_t seed, int width,
                   int height, int index, cnet_error *err);

/* Progress of the denoising loop on a stream: a redrawn bar (step, it/s,
 * ETA) when the stream is a terminal, one plain line per step otherwise. */
typedef struct gen_progress {
    FILE *out;
    int tty;
    double t0;     /* seconds (monotonic) when the steps started */
    int open_line; /* a bar is drawn and its line not ended */
} gen_progress;

void gen_progress_init(gen_progress *p, FILE *out);
/* Ends a bar left half-drawn by a failed run, so an error starts a line. */
void gen_progress_abort(gen_progress *p);
/* The pipeline observer that reports to p (p must outlive the run). */
pipe_observer gen_progress_observer(gen_progress *p);

/* The file of image index of n: out itself when n == 1, else out with
 * "_<index>" before its extension (out.png -> out_0.png, out_1.png, ...). */
int gen_output_path(char *buf, size_t cap, const char *out, int index, int n, cnet_error *err);
/* CNET_EIO when the folder of out is missing or not writable (checked
 * before a run, so a long generation does not end in an unwritable path). */
int gen_output_check(const char *out, cnet_error *err);
/* Writes the n images as PNGs, each with a "parameters" text chunk
 * texts[i], to gen_output_path(out, i, n): every file is encoded and
 * written to a temp file and synced first, then all are renamed into place;
 * on any failure no new file is left behind. */
int gen_output_write(const char *out, const image_rgb8 *images, char *const *texts, int n,
                     cnet_error *err);

#endif
