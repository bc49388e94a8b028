/* cnet preprocess --image IN --preprocess NAME [--preprocess_model DIR]
 * [--threshold_a A] [--threshold_b B] [--processor_res R] [--seed S]
 * [--out OUT]: a picture through one annotator
 * (engine/annotators/annotator.h) into an image file,
 * as POST /v1/preprocess does: the same option table (api_preprocess_fields,
 * copied from the generate table) and the same checks
 * (api_generate_annotator). OUT's extension picks PNG or JPEG. Exit status 0
 * ok, 1 failure (an unreadable picture, one the annotator cannot take, an
 * unwritable output), 2 usage error. Not here: generating. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "api/api_fields.h"
#include "engine/annotators/annotator.h"
#include "server/cli/cli_args.h"
#include "server/cli/commands.h"

/* JPEG quality of a .jpg output. */
#define PREPROCESS_JPEG_QUALITY 95

static void usage(FILE *f, const api_field *fields, int n) {
    fprintf(f, "usage: cnet preprocess --image FILE --preprocess NAME [options] [--out FILE]\n"
               "  Writes the control image an annotator makes of a picture (POST\n"
               "  /v1/preprocess's options and limits; GET /v1/preprocessors or the list\n"
               "  below names them; threshold_a/b are each annotator's own parameters).\n");
    cli_usage(f, fields, n);
    fprintf(f, "  Exit status: 0 ok, 1 failure, 2 usage error.\n");
}

/* Reads the flags into the annotator's members (given), the picture's path,
 * the output's, the weights folder's and the seed. */
static int parse(const api_field *fields, int n, int argc, char **argv, json_t *given,
                 const char **image, const char **out, const char **pre, const char **model,
                 uint64_t *seed, cnet_error *err) {
    for (int i = 1; i < argc; i++) {
        cli_opt a;
        int rc = cli_next(fields, n, argc, argv, &i, &a, err), k = 0;
        if (rc) return rc;
        const char *name = a.f->name;
        long long ll = 0;
        double d = 0;
        if (!strcmp(name, "image")) {
            *image = a.value;
        } else if (!strcmp(name, "out")) {
            *out = a.value;
        } else if (!strcmp(name, "preprocess_model")) {
            *model = a.value;
        } else if (!strcmp(name, "preprocess")) {
            if ((rc = cli_field_enum(a.f, a.flag, a.value, &k, err))) return rc;
            *pre = a.f->choices[k];
        } else if (!strcmp(name, "seed")) {
            if ((rc = cli_field_u64(a.f, a.flag, a.value, seed, err))) return rc;
        } else if (a.f->type == AF_INT) {
            if ((rc = cli_field_long(a.f, a.flag, a.value, &ll, err))) return rc;
            json_object_set_new(given, name, json_integer(ll));
        } else {
            if ((rc = cli_field_double(a.f, a.flag, a.value, &d, err))) return rc;
            json_object_set_new(given, name, json_real(d));
        }
    }
    return *image ? 0 : cnet_fail(err, CNET_EINVAL, "missing --image");
}

int cmd_preprocess(int argc, char **argv) {
    api_field fields[API_PREPROCESS_FIELDS];
    const int n = api_preprocess_fields(fields);
    for (int i = 1; i < argc; i++)
        if (cli_is_help(argv[i])) {
            usage(stdout, fields, n);
            return 0;
        }
    char def[64];
    const char *image = NULL, *out = cli_field_default(&fields[n - 1], def, sizeof def),
               *pre = NULL, *model = NULL;
    uint64_t seed = 0;
    cnet_error err = {0};
    json_t *given = json_object();
    int rc = given ? parse(fields, n, argc, argv, given, &image, &out, &pre, &model, &seed, &err)
                   : cnet_fail(&err, CNET_ENOMEM, "out of memory");
    const annotator *a = NULL;
    annotator_args args;
    api_error e = {0};
    if (!rc && api_generate_annotator(pre, given, &a, &args, &e))
        rc = cnet_fail(&err, CNET_EINVAL, "--%s", e.message);
    json_decref(given);
    if (!rc && image_format_from_path(out) == IMAGE_FORMAT_UNKNOWN)
        rc = cnet_fail(&err, CNET_EINVAL, "--out %s: give a .png or .jpg file", out);
    if (rc) {
        fprintf(stderr, "cnet preprocess: %s\n", err.msg);
        return 2;
    }
    args.seed = seed;
    args.model_dir = model;
    image_rgb8 in = {0}, res = {0};
    rc = image_load(&in, image, 0, &err);
    if (!rc && (rc = annotator_run(a, &res, &in, &args, &err)))
        cnet_error_prefix(&err, "%s", image);
    if (!rc) rc = image_save(out, &res, NULL, 0, PREPROCESS_JPEG_QUALITY, &err);
    if (!rc)
        printf("%s: %dx%d, %s of %s\n", out, res.width, res.height, a->name, image);
    else
        fprintf(stderr, "cnet preprocess: %s\n", err.msg);
    image_free(&in);
    image_free(&res);
    return rc ? 1 : 0;
}
