/* cnet: the command-line entry point. Each subcommand lives in its own
 * server/cli/cmd_*.c file; this file only dispatches. */
#include <stdio.h>
#include <string.h>

#include "server/cli/commands.h"
#include "server/cli/wait_policy.h"

static const cnet_command commands[] = {
    {"help", "show this list", cmd_help},
    {"train", "train a ControlNet (train_controlnet.py's flags)", cmd_train},
    {"train-unet", "fine-tune the whole UNet (train_text_to_image.py's flags)", cmd_train_unet},
    {"train-vae", "train the VAE (AutoencoderKL): MSE reconstruction + KL", cmd_train_vae},
    {"bench", "performance benchmarks (cnet bench ops | --model DIR --task T)", cmd_bench},
    {"forward", "run one model component on a safetensors file of inputs", cmd_forward},
    {"generate", "generate images with ControlNets (a prompt and control images)", cmd_generate},
    {"preprocess", "a picture through one ControlNet preprocessor (annotator)", cmd_preprocess},
    {"golden", "check a fixture directory's goldens", cmd_golden},
    {"init-model", "write a diffusers pipeline folder with random weights", cmd_init_model},
    {"push", "publish a training output directory to the Hugging Face Hub", cmd_push},
    {"pull", "download a Hub model repo into the Hugging Face cache", cmd_pull},
    {"serve", "run the REST service (jobs, datasets, models)", cmd_serve},
    {"dataset", "check a training dataset; make a synthetic one", cmd_dataset},
    {"convert", "single-file checkpoints, ControlNets and .bin folders <-> diffusers", cmd_convert},
};

static const int n_commands = (int)(sizeof commands / sizeof commands[0]);

int cmd_help(int argc, char **argv) {
    (void)argc, (void)argv;
    printf("usage: cnet <command> [options]   (cnet <command> --help for its options)\n\n");
    for (int i = 0; i < n_commands; i++)
        printf("  %-12s %s\n", commands[i].name, commands[i].summary);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)
        return cmd_help(argc, argv);
    if (strcmp(argv[1], "serve") == 0) cli_wait_policy_apply(argv, CLI_WAIT_POLICY_SERVE);
    for (int i = 0; i < n_commands; i++)
        if (strcmp(argv[1], commands[i].name) == 0) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "cnet: unknown command '%s' (cnet help lists them)\n", argv[1]);
    return 2;
}
