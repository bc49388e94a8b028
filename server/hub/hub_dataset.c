/* Local dataset folder or Hub dataset id (see hub_dataset.h). */
#include "server/hub/hub_dataset.h"

#include <fnmatch.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "api/hub_ref.h"
#include "server/hub/hub_commit.h"
#include "server/hub/hub_pull.h"

#define HUB_DATASET_GLOBS_MAX 8

static int is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int is_file(const char *dir, const char *sub, const char *leaf) {
    char p[HUB_PATH_MAX + 512];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s%s%s", dir, sub, *sub ? "/" : "", leaf);
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* The train split's Parquet globs (config may be NULL) into g; their count. */
static int parquet_globs(const char *config, char g[HUB_DATASET_GLOBS_MAX][160]) {
    if (!config) {
        snprintf(g[0], sizeof g[0], "data/train-*.parquet");
        snprintf(g[1], sizeof g[1], "data/train/*.parquet");
        return 2;
    }
    snprintf(g[0], sizeof g[0], "%s/train-*.parquet", config);
    snprintf(g[1], sizeof g[1], "%s/train/*.parquet", config);
    snprintf(g[2], sizeof g[2], "data/%s/train-*.parquet", config);
    snprintf(g[3], sizeof g[3], "data/%s/train/*.parquet", config);
    return 4;
}

/* Files of an imagefolder repo the train split does not read. */
static const char *const not_train[] = {"test/*", "validation/*", "README.md", ".gitattributes",
                                        NULL};

/* What to pull: the train split's Parquet files when the listing has any,
 * else the imagefolder's files but the other splits' (into o). */
static int choose_files(hub_client *c, const char *repo_id, const char *config,
                        char g[HUB_DATASET_GLOBS_MAX][160], const char *include[], hub_pull_opts *o,
                        cnet_error *err) {
    json_t *info;
    char commit[41];
    int rc = hub_repo_info(c, HUB_REPO_DATASET, repo_id, "main", &info, commit, err);
    if (rc) return rc;
    const int ng = parquet_globs(config, g);
    json_t *s;
    size_t i;
    int parquet = 0;
    json_array_foreach(json_object_get(info, "siblings"), i, s) {
        const char *p = json_string_value(json_object_get(s, "rfilename"));
        for (int k = 0; p && k < ng; k++) parquet |= fnmatch(g[k], p, 0) == 0;
    }
    json_decref(info);
    for (int k = 0; k < ng; k++) include[k] = g[k];
    include[ng] = NULL;
    o->include = parquet ? include : NULL;
    o->exclude = parquet ? NULL : not_train;
    return 0;
}

/* The folder of the snapshot that holds the split. */
static void split_folder(const char *snapshot, const char *config, char out[HUB_PATH_MAX]) {
    const char *subs[] = {config ? config : "", "train"};
    snprintf(out, HUB_PATH_MAX, "%s", snapshot);
    for (int k = 0; k < 2; k++)
        if (*subs[k] && (is_file(snapshot, subs[k], "metadata.jsonl") ||
                         is_file(snapshot, subs[k], "metadata.csv"))) {
            snprintf(out, HUB_PATH_MAX, "%.3000s/%.200s", snapshot, subs[k]);
            return;
        }
}

int hub_dataset_resolve(const char *name, const hub_dataset_opts *o, char out[HUB_PATH_MAX],
                        cnet_error *err) {
    if (is_dir(name)) {
        if (snprintf(out, HUB_PATH_MAX, "%s", name) >= HUB_PATH_MAX)
            return cnet_fail(err, CNET_ELIMIT, "dataset path too long: %.200s", name);
        return 0;
    }
    cnet_error id_err = {0};
    if (hub_repo_id_check(name, &id_err) != 0)
        return cnet_fail(err, CNET_ENOTFOUND, "'%s' is no local folder and no Hub dataset id (%s)",
                         name, id_err.msg);
    hub_pull_opts po = {.repo_type = HUB_REPO_DATASET,
                        .repo_id = name,
                        .cache_dir = o->cache_dir,
                        .progress = o->progress,
                        .progress_ctx = o->progress_ctx};
    hub_pull_result r;
    char snapshot[HUB_PATH_MAX];
    const char *off = getenv("HF_HUB_OFFLINE");
    int rc;
    if (off && (!strcmp(off, "1") || !strcasecmp(off, "true"))) {
        rc = hub_pull(NULL, &po, snapshot, &r, err);
    } else {
        hub_client c;
        char globs[HUB_DATASET_GLOBS_MAX][160];
        const char *include[HUB_DATASET_GLOBS_MAX + 1];
        rc = hub_client_init(&c, NULL, 0, err);
        if (!rc) rc = choose_files(&c, name, o->config_name, globs, include, &po, err);
        if (!rc) rc = hub_pull(&c, &po, snapshot, &r, err);
        hub_client_free(&c);
    }
    if (rc) return cnet_error_prefix(err, "Hub dataset %s", name);
    split_folder(snapshot, o->config_name, out);
    return 0;
}
