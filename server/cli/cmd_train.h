/* cnet train's command line as train_options (cmd_train.c), apart from the
 * run, so that a test can hold what the flags make against what a train
 * job's spec with the same values makes (server/workers/runner_train.h). */
#ifndef CNET_CMD_TRAIN_H
#define CNET_CMD_TRAIN_H

#include "engine/train/trainer.h"

/* Parses argv[1..argc) into o (defaults first: train_options_defaults):
 * 0, or CNET_EINVAL with err naming the flag. *device gets --device's value
 * (unchanged without one), *help is set for -h/--help. A list flag takes
 * the values up to the next --flag (one with --flag=VALUE). Strings are
 * borrowed from argv. */
int cmd_train_parse(int argc, char **argv, train_options *o, const char **device, int *help,
                    cnet_error *err);

#endif
