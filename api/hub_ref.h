/* Names on the Hub: repo ids ("namespace/name"), revisions, model
 * references of the form hf://NAMESPACE/NAME[@REVISION] and dataset
 * references hf://datasets/NAMESPACE/NAME[@REVISION] (huggingface_hub's
 * HfFileSystem spelling).
 * Pure string rules, in api/ because the contract's validators check model
 * references with them; server/hub uses the same. Not a resolver: turning a
 * reference into files is server/hub/hub_pull.c's job.
 * Reference: huggingface_hub utils/_validators.py (validate_repo_id): each
 * part 1..96 characters of [A-Za-z0-9._-], not starting or ending with '-' or
 * '.', no "--" or "..", the name not ending in ".git". */
#ifndef CNET_HUB_REF_H
#define CNET_HUB_REF_H

#include <stddef.h>

#include "engine/core/error.h"

#define HUB_REPO_PART_MAX 96                        /* characters per id part */
#define HUB_REPO_ID_MAX (2 * HUB_REPO_PART_MAX + 2) /* buffer for "ns/name" */
#define HUB_REVISION_MAX 256                        /* buffer for a revision */
#define HUB_CONFIG_MAX 1000 /* bytes of a dataset config name (the API's text cap) */
#define HUB_REF_PREFIX "hf://"
#define HUB_DATASET_REF_PREFIX "hf://datasets/"

/* 0 if repo_id is a valid "namespace/name", else CNET_EINVAL with a message
 * that quotes the id and says which rule it breaks. */
int hub_repo_id_check(const char *repo_id, cnet_error *err);

/* 0 if rev is usable as a revision (branch, tag, commit, refs/pr/N). */
int hub_revision_check(const char *rev, cnet_error *err);

/* 1 if s starts with hf:// */
int hub_ref_is_hub(const char *s);

/* Splits "hf://ns/name[@rev]" into repo_id and revision ("main" when
 * absent), validating both. */
int hub_ref_parse(const char *ref, char repo_id[HUB_REPO_ID_MAX], char revision[HUB_REVISION_MAX],
                  cnet_error *err);

/* 0 if config is usable as a dataset config name (a folder of the repo):
 * 1..HUB_CONFIG_MAX characters of [A-Za-z0-9._-], not starting with '.';
 * else CNET_EINVAL naming dataset_config_name. */
int hub_config_check(const char *config, cnet_error *err);

/* 1 if s starts with hf://datasets/ */
int hub_ref_is_dataset(const char *s);

/* Splits "hf://datasets/ns/name[@rev]" as hub_ref_parse does. */
int hub_dataset_ref_parse(const char *ref, char repo_id[HUB_REPO_ID_MAX],
                          char revision[HUB_REVISION_MAX], cnet_error *err);

/* 1 if s is a full 40-hex commit id. */
int hub_is_commit(const char *s);

#endif
