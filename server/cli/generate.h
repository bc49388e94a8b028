/* `cnet generate`: the parts of the command that server/cli/cmd_generate.c
 * drives — its options (gen_args.c, over api/api_generate.c's option table,
 * the one the API validates against), progress on stderr (gen_progress.c)
 * and the all-or-nothing writing of the output PNGs (gen_output.c). The
 * generation itself is engine/pipeline/generate.h and each image's
 * "parameters" text engine/pipeline/generate_infotext.h, the service's
 * too; nothing here touches tensors. */
#ifndef CNET_GENERATE_H
#define CNET_GENERATE_H

#include <stdint.h>
#include <stdio.h>

#include "engine/config/config.h"
#include "engine/core/error.h"
#include "engine/image/image.h"
#include "engine/pipeline/generate.h"

typedef struct gen_options {
    /* The run: folders, image files and texts point into argv or owned;
     * the loaded models and decoded images are cmd_generate's. */
    generate_request req;
    const char *out, *device;       /* --out, --device */
    cnet_precision mixed_precision; /* --mixed_precision (cpu: float32 with a note) */
    int seed_given;
    char *owned[3]; /* the --controlnet, --image and --preprocess_model lists, split in place */
    char defaults[2][64]; /* the table's defaults of --out and --device */
    int help;             /* --help was given: print the usage, nothing else */
} gen_options;

void gen_usage(FILE *f);
/* Parses argv (argv[0] = "generate"). CNET_EINVAL names the option that is
 * wrong or missing (a usage error). Free with gen_args_free, also on error. */
int gen_args_parse(gen_options *o, int argc, char **argv, cnet_error *err);
void gen_args_free(gen_options *o);

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
