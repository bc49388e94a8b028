/* cnet convert IN OUT_DIR [--config_from DIR]
 * cnet convert --to single-file CONTROLNET_DIR OUT.safetensors
 *
 * The weight files people have, as diffusers folders (engine/convert/
 * convert.h says which files and what is refused): an SD 1.x / 2.x single file
 * (.safetensors or .ckpt), an A1111 / ComfyUI ControlNet, a diffusers
 * folder with PyTorch .bin weights or old VAE attention names. The other
 * direction writes a diffusers ControlNet as one control_model.* file for
 * A1111's sd-webui-controlnet and ComfyUI. Exit status 0 ok, 1 failure, 2
 * usage error. */
#include <stdio.h>
#include <string.h>

#include "engine/convert/convert.h"
#include "server/cli/cli_args.h"
#include "server/cli/commands.h"

/* The one export format --to names. */
#define CONVERT_TO_SINGLE_FILE "single-file"

static void usage(FILE *out) {
    fprintf(out,
            "usage: cnet convert IN OUT_DIR [--config_from DIR]\n"
            "       cnet convert --to single-file CONTROLNET_DIR OUT.safetensors\n"
            "  IN: an SD 1.x/2.x single-file checkpoint (.safetensors, .ckpt), an A1111/ComfyUI\n"
            "      ControlNet (.safetensors, .pth), or a diffusers folder with .bin weights\n"
            "      or old VAE attention names; OUT_DIR is written as a diffusers folder.\n"
            "  --config_from DIR  a diffusers folder whose config.json files, tokenizer/ and\n"
            "                     scheduler/ to use (a single-file SD checkpoint needs it for\n"
            "                     its tokenizer; configs are otherwise inferred from tensors)\n"
            "  --to single-file   export a diffusers ControlNet as one control_model.* file\n");
}

int cmd_convert(int argc, char **argv) {
    const char *config_from = NULL, *to = NULL, *pos[2] = {NULL, NULL};
    int n_pos = 0;
    cnet_error err = {0};
    for (int i = 1; i < argc; i++) {
        int bad = 0;
        if (cli_take(argc, argv, &i, "config_from", &config_from, &err)) {
            bad = !config_from;
        } else if (cli_take(argc, argv, &i, "to", &to, &err)) {
            bad = !to;
        } else if (cli_is_help(argv[i])) {
            usage(stdout);
            return 0;
        } else if (argv[i][0] == '-' || n_pos == 2) {
            fprintf(stderr, "cnet convert: unexpected argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        } else {
            pos[n_pos++] = argv[i];
        }
        if (bad) {
            fprintf(stderr, "cnet convert: %s\n", err.msg);
            return 2;
        }
    }
    if (n_pos != 2 || (to && strcmp(to, CONVERT_TO_SINGLE_FILE) != 0) || (to && config_from)) {
        fprintf(stderr, "cnet convert: %s\n",
                n_pos != 2    ? "needs IN and OUT"
                : config_from ? "--config_from is for converting into a diffusers folder"
                              : "--to takes only 'single-file'");
        usage(stderr);
        return 2;
    }
    convert_options opts = {.config_from = config_from};
    int rc = to ? convert_controlnet_to_single_file(pos[0], pos[1], &err)
                : convert_to_diffusers(pos[0], pos[1], &opts, &err);
    if (rc) {
        fprintf(stderr, "cnet convert: %s\n", err.msg);
        return 1;
    }
    printf("cnet convert: wrote %s\n", pos[1]);
    return 0;
}
