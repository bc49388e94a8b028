/* cnet train's command line as train_options (cmd_train.c), apart from the
 * run, so that a test can hold what the flags make against what a train
 * job's spec with the same values makes (server/workers/runner_train.h). */
#ifndef CNET_CMD_TRAIN_H
#define CNET_CMD_TRAIN_H

#include "engine/train/trainer.h"

/* The flags `cnet train` acts on itself, around the engine's run: where it
 * runs, and what comes from the Hub before it (models, a dataset) or goes
 * there after it (--push_to_hub). The engine never talks to the network. */
typedef struct train_cli {
    const char *device; /* --device, default "cpu" */
    const char *revision, *variant, *cache_dir;
    const char *dataset_name, *dataset_config_name;
    const char *hub_model_id, *hub_token;
    int push_to_hub, allow_tf32, xformers;
    int num_processes; /* --num_processes: ranks started through mpirun (1: this process) */
    /* the command line from its command ("train", "train-unet"), borrowed:
     * what --num_processes starts each rank with */
    int argc;
    char **argv;
} train_cli;

/* Parses argv[1..argc) into o (defaults first: train_options_defaults) and
 * cli: 0, or CNET_EINVAL with err naming the flag. *help is set for
 * -h/--help. A list flag takes the values up to the next --flag (one with
 * --flag=VALUE). A flag may be written --flag, --flag=true|false|1|0
 * (True/False too, as Python prints them). The script's parse-time rule
 * is checked here: a validation image only with a prompt (and the
 * reverse). Strings are borrowed from argv. */
int cmd_train_parse(int argc, char **argv, train_options *o, train_cli *cli, int *help,
                    cnet_error *err);

/* 1 if cmd_train acts on the flag called name itself (train_cli), 0 if it
 * is a trainer option. */
int cmd_train_own_flag(const char *name);

/* The run of parsed options, as `cnet train` does it (Hub sources, the
 * backend, progress, trainer_run, --push_to_hub); cnet train-unet's too.
 * Returns the process exit status. */
int cmd_train_execute(train_options *o, const train_cli *cli);

#endif
