/* A train job's spec as train_options (runner_train.c): the models, the
 * dataset and the validation images resolved to folders under the service's
 * roots, the job's dir as the output dir (resumed from its latest
 * checkpoint), and every other member set by its trainer option name. Its
 * own header so that a test can hold what `cnet train` makes of its flags
 * against what a job makes of the same values. Not here: the run itself
 * (runner_train in runner.h). */
#ifndef CNET_RUNNER_TRAIN_H
#define CNET_RUNNER_TRAIN_H

#include <jansson.h>
#include <limits.h>

#include "api/hub_ref.h"
#include "engine/train/trainer.h"
#include "server/workers/runner.h"

/* The resolved folders of a spec (train_options points into them). */
typedef struct runner_train_paths {
    char model[PATH_MAX], controlnet[PATH_MAX], data[PATH_MAX];
    char model_id[HUB_REPO_ID_MAX]; /* the base's Hub id when it was pulled, else "" */
    int data_fd; /* a dataset under --data-root: its folder, opened (data reads through it);
                    else -1. The caller closes it. */
    char validation_image[TRAIN_MAX_VALIDATION][PATH_MAX];
} runner_train_paths;

/* spec (validated by api/api_train.c) → o, on x's roots and job dir; strings
 * borrowed from spec and p; hf:// models are pulled (the job's download
 * phase, runner_pull). 0, POOL_STOPPED (cancelled while downloading), or
 * < 0 with x->err naming the member. */
int runner_train_options(runner_job *x, const json_t *spec, runner_train_paths *p,
                         train_options *o);

#endif
