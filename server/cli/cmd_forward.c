/* cnet forward --model DIR --component C --inputs IN.safetensors
 *              --out OUT.safetensors [options]
 *
 * Runs one component of a diffusers pipeline folder (on the CPU, or on the
 * GPU with --device cuda[:N], falling back to the CPU with a note) on
 * tensors named as in the goldens (tests/fixtures/goldens/README.md), in
 * PyTorch layout (NCHW), so anyone can compare cnet with diffusers on their
 * own model by dumping the same names from Python. The components, their
 * inputs and outputs are listed in server/golden/model_io.h, which loads and
 * runs them for this command and for `cnet golden` alike. Options:
 *
 *   text_encoder  --clip-skip K: run all but the last K layers, as diffusers
 *   unet          optional unet.in.down_residual.<i> and unet.in.mid_residual
 *                 inputs are added as ControlNet residuals
 *   controlnet    --conditioning-scale S, --guess-mode
 *
 * When the file holds several timestep inputs, --timestep NAME (t_batch,
 * t_scalar or t_float) picks one. Other tensors in the file are ignored.
 * Exit status 0 ok, 1 failure, 2 usage error. */
#include <float.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/cli/cli_args.h"
#include "server/cli/commands.h"
#include "server/golden/model_io.h"

typedef struct fwd_args {
    const char *model, *inputs, *out;
    const char *device; /* cpu, cuda, cuda:N */
    mio_component component;
    mio_options opt;
} fwd_args;

static void usage(FILE *f) {
    fprintf(f, "usage: cnet forward --model DIR --component "
               "text_encoder|vae.encode|vae.decode|unet|controlnet\n"
               "                    --inputs IN.safetensors --out OUT.safetensors\n"
               "                    [--timestep t_batch|t_scalar|t_float] [--clip-skip K]\n"
               "                    [--conditioning-scale S] [--guess-mode] [--device D]\n"
               "  --device cpu (default), cuda or cuda:N (the CPU, with a note, without a GPU)\n"
               "  Runs one model component on tensors named as in the goldens (PyTorch\n"
               "  layout); see server/golden/model_io.h for the names.\n");
}

static int write_outputs(const mio_outputs *o, const char *path, cnet_error *err) {
    st_write_item items[MIO_MAX_OUTPUTS];
    for (int i = 0; i < o->n; i++) items[i].name = o->names[i], items[i].view = o->t[i];
    const char *key = "format", *value = "pt";
    return st_write(path, items, o->n, &key, &value, 1, err);
}

static int parse_args(fwd_args *a, int argc, char **argv) {
    memset(a, 0, sizeof *a);
    a->component = MIO_COMPONENTS;
    a->opt = mio_defaults();
    a->device = "cpu";
    const char *comp = NULL;
    cnet_error err = {0};
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v = NULL;
        double scale = 1.0;
        int rc = 0;
        if (cli_is_help(o)) {
            usage(stdout);
            return 1;
        } else if (cli_flag(o, "guess-mode", NULL)) {
            a->opt.guess_mode = 1;
        } else if (cli_take(argc, argv, &i, "model", &a->model, &err)) {
            rc = !a->model;
        } else if (cli_take(argc, argv, &i, "device", &a->device, &err)) {
            rc = !a->device;
        } else if (cli_take(argc, argv, &i, "component", &comp, &err)) {
            rc = !comp;
        } else if (cli_take(argc, argv, &i, "inputs", &a->inputs, &err)) {
            rc = !a->inputs;
        } else if (cli_take(argc, argv, &i, "out", &a->out, &err)) {
            rc = !a->out;
        } else if (cli_take(argc, argv, &i, "timestep", &a->opt.timestep, &err)) {
            rc = !a->opt.timestep;
        } else if (cli_take(argc, argv, &i, "clip-skip", &v, &err)) {
            rc = !v || cli_int(o, v, 0, API_CLIP_SKIP_MAX, &a->opt.clip_skip, &err);
        } else if (cli_take(argc, argv, &i, "conditioning-scale", &v, &err)) {
            rc = !v || cli_double(o, v, -FLT_MAX, FLT_MAX, &scale, &err);
            a->opt.scale = (float)scale;
        } else {
            fprintf(stderr, "cnet forward: unknown option '%s'\n", o);
            usage(stderr);
            return 2;
        }
        if (rc) {
            fprintf(stderr, "cnet forward: %s\n", err.msg);
            return 2;
        }
    }
    if (comp) a->component = mio_component_by_name(comp);
    if (!a->model || !a->inputs || !a->out || a->component == MIO_COMPONENTS) {
        fprintf(stderr,
                "cnet forward: need --model, --component (%s|%s|%s|%s|%s), --inputs and "
                "--out\n",
                mio_component_names[0], mio_component_names[1], mio_component_names[2],
                mio_component_names[3], mio_component_names[4]);
        return 2;
    }
    const mio_component c = a->component;
    const char *misplaced = a->opt.clip_skip && c != MIO_TEXT_ENCODER ? "--clip-skip"
                            : (a->opt.guess_mode || a->opt.scale != 1.0f) && c != MIO_CONTROLNET
                                ? "--conditioning-scale / --guess-mode"
                            : a->opt.timestep && c != MIO_UNET && c != MIO_CONTROLNET ? "--timestep"
                                                                                      : NULL;
    if (misplaced) {
        fprintf(stderr, "cnet forward: %s does not apply to --component %s\n", misplaced,
                mio_component_names[c]);
        return 2;
    }
    if (a->opt.timestep && strcmp(a->opt.timestep, "t_batch") &&
        strcmp(a->opt.timestep, "t_scalar") && strcmp(a->opt.timestep, "t_float")) {
        fprintf(stderr, "cnet forward: --timestep wants t_batch, t_scalar or t_float\n");
        return 2;
    }
    return 0;
}

int cmd_forward(int argc, char **argv) {
    fwd_args a;
    int status = parse_args(&a, argc, argv);
    if (status) return status == 1 ? 0 : status;
    cnet_error err = {0};
    st_file in;
    if (st_open(&in, a.inputs, &err)) {
        fprintf(stderr, "cnet forward: %s\n", err.msg);
        return 1;
    }
    cnet_backend be;
    char note[320] = "";
    int rc = cnet_backend_open(&be, a.device, note, sizeof note, &err);
    if (rc == CNET_EINVAL) {
        fprintf(stderr, "cnet forward: %s\n", err.msg);
        st_close(&in);
        return 2;
    }
    if (note[0]) fprintf(stderr, "cnet forward: %s\n", note);
    mio_outputs out = {0};
    if (!rc) {
        mio_model m;
        /* the inputs before the weights: a misnamed tensor fails at once */
        if (!(rc = mio_check_inputs(a.component, &in, &a.opt, &err)) &&
            !(rc = mio_open(&m, &be, a.component, a.model, &err))) {
            rc = mio_run(&m, a.component, &in, &a.opt, &out, &err); /* a failed device's too */
            mio_close(&m);
        }
        if (!rc) rc = write_outputs(&out, a.out, &err);
        cnet_backend_free(&be);
    }
    const int n_out = out.n;
    mio_outputs_free(&out);
    st_close(&in);
    if (rc) {
        fprintf(stderr, "cnet forward: %s\n", err.msg);
        return 1;
    }
    printf("cnet forward: %s -> %s (%d tensors)\n", mio_component_names[a.component], a.out, n_out);
    return 0;
}
