/* `cnet dataset check DIR` and `cnet dataset make-fill`: thin commands over
 * engine/data/dataset.h. check prints the report of dataset_check (counts and the
 * first offenders per problem) and exits 1 when training would refuse the
 * dataset (dataset_report_verdict); make-fill writes dataset_make_fill's
 * synthetic set. No logic of their own beyond options and printing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/data/dataset.h"
#include "server/cli/cli_args.h"
#include "server/cli/commands.h"

static const char dataset_usage[] =
    "usage: cnet dataset check DIR [--image_column C] [--conditioning_image_column C]\n"
    "                              [--caption_column C] [--dataset_config_name NAME]\n"
    "                              [--max_bad_fraction F]\n"
    "       cnet dataset make-fill --n N --size S --out DIR [--seed N]\n"
    "\n"
    "check: reads every sample of DIR (a folder with metadata.jsonl, metadata.csv or\n"
    "prompt.json; a Hub dataset snapshot in Parquet: data/train-*.parquet, the\n"
    "refs/convert/parquet layout <config>/train/*.parquet (--dataset_config_name, default\n"
    "\"default\") or *.parquet; a folder of *.tar shards, a .tar file or a quoted glob of\n"
    "them), decodes both images and reports\n"
    "missing or unreadable files, conditioning/target size mismatches, blank conditioning\n"
    "images, empty captions and duplicates, with counts and the first offenders. Missing or\n"
    "unreadable samples are skipped by training; exit status 1 when none is usable or more\n"
    "than --max_bad_fraction (default 0.05) of them are bad, else 0.\n"
    "\n"
    "make-fill: writes N synthetic samples of S x S pixels in the imagefolder layout: a\n"
    "circle of one named colour on a background of another, its outline (white on black)\n"
    "as the conditioning image, and the caption \"<colour> circle with <colour> background\".\n";

static int usage_error(const char *fmt, const char *arg) {
    fprintf(stderr, "cnet dataset: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n(cnet dataset --help for the options)\n");
    return 2;
}

/* A usage error from the option reader (err names the option). */
static int option_error(const cnet_error *err) { return usage_error("%s", err->msg); }

static void print_report(const dataset *ds, const dataset_report *rep) {
    printf("dataset %s (%s): %lld samples\n", ds->root, dataset_layout_name(ds->layout),
           (long long)rep->samples);
    for (int p = 0; p < DATASET_PROBLEM_COUNT; p++) {
        printf("  %-19s %lld\n", dataset_problem_name((dataset_problem)p),
               (long long)rep->count[p]);
        for (int k = 0; k < DATASET_REPORT_EXAMPLES && k < rep->count[p]; k++)
            printf("      %s\n", rep->examples[p][k]);
        if (rep->count[p] > DATASET_REPORT_EXAMPLES)
            printf("      ... and %lld more\n", (long long)rep->count[p] - DATASET_REPORT_EXAMPLES);
    }
    printf("usable: %lld of %lld (missing and unreadable samples are skipped)\n",
           (long long)rep->usable, (long long)rep->samples);
}

static int run_check(int argc, char **argv) {
    dataset_options o = {0};
    const char *path = NULL;
    double max_bad = DATASET_BAD_FRACTION_DEFAULT;
    cnet_error err = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        const char **named = cli_flag(a, "image_column", &v) ? &o.image_column
                             : cli_flag(a, "conditioning_image_column", &v)
                                 ? &o.conditioning_image_column
                             : cli_flag(a, "caption_column", &v)      ? &o.caption_column
                             : cli_flag(a, "dataset_config_name", &v) ? &o.dataset_config_name
                                                                      : NULL;
        if (named) {
            if (!(*named = cli_value(argc, argv, &i, v, &err))) return option_error(&err);
        } else if (cli_flag(a, "max_bad_fraction", &v)) {
            const char *text = cli_value(argc, argv, &i, v, &err);
            if (!text || cli_double(a, text, 0, 1, &max_bad, &err)) return option_error(&err);
        } else if (a[0] == '-' || path) {
            return usage_error("unexpected argument '%s'", a);
        } else {
            path = a;
        }
    }
    if (!path) return usage_error("%s", "check needs a dataset path");
    dataset ds;
    dataset_report rep;
    if (dataset_open(&ds, path, &o, &err)) {
        fprintf(stderr, "cnet dataset check: %s\n", err.msg);
        return 1;
    }
    if (dataset_check(&ds, 1, 0, &rep, &err)) {
        fprintf(stderr, "cnet dataset check: %s\n", err.msg);
        dataset_free(&ds);
        return 1;
    }
    print_report(&ds, &rep);
    int rc = dataset_report_verdict(&rep, max_bad, &err);
    if (rc) fprintf(stderr, "cnet dataset check: unusable: %s\n", err.msg);
    dataset_report_free(&rep);
    dataset_free(&ds);
    return rc ? 1 : 0;
}

static int run_make_fill(int argc, char **argv) {
    long long n = -1, size = -1, seed = 0;
    const char *out = NULL;
    cnet_error err = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        int rc = 0;
        if (cli_flag(a, "out", &v)) {
            rc = !(out = cli_value(argc, argv, &i, v, &err));
        } else if (cli_flag(a, "n", &v) && (v = cli_value(argc, argv, &i, v, &err))) {
            rc = cli_long(a, v, 1, DATASET_FILL_N_MAX, &n, &err);
        } else if (cli_flag(a, "size", &v) && (v = cli_value(argc, argv, &i, v, &err))) {
            rc = cli_long(a, v, DATASET_FILL_SIZE_MIN, DATASET_FILL_SIZE_MAX, &size, &err);
        } else if (cli_flag(a, "seed", &v) && (v = cli_value(argc, argv, &i, v, &err))) {
            rc = cli_long(a, v, 0, INT64_MAX, &seed, &err);
        } else {
            return err.msg[0] ? option_error(&err) : usage_error("unexpected argument '%s'", a);
        }
        if (rc) return option_error(&err);
    }
    if (n < 0 || size < 0 || !out)
        return usage_error("%s", "make-fill needs --n, --size and --out");
    if (dataset_make_fill(out, (int)n, (int)size, (uint64_t)seed, &err)) {
        fprintf(stderr, "cnet dataset make-fill: %s\n", err.msg);
        return 1;
    }
    printf("wrote %lld samples of %lldx%lld to %s\n", n, size, size, out);
    return 0;
}

int cmd_dataset(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(dataset_usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "check") == 0) return run_check(argc - 1, argv + 1);
    if (strcmp(argv[1], "make-fill") == 0) return run_make_fill(argc - 1, argv + 1);
    return usage_error("unknown subcommand '%s' (check, make-fill)", argv[1]);
}
