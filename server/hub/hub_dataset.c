/* Local dataset folder or Hub dataset id (see hub_dataset.h). */
#include "server/hub/hub_dataset.h"

#include <dirent.h>
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
#define HUB_DATASET_GLOB_LEN (HUB_CONFIG_MAX + 64) /* a config's globs */

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

/* What to pull: a revision and the globs of its train files (none: the
 * imagefolder's files but the other splits'). */
typedef struct dataset_plan {
    const char *revision;
    char globs[HUB_DATASET_GLOBS_MAX][HUB_DATASET_GLOB_LEN];
    const char *include[HUB_DATASET_GLOBS_MAX + 1];
    int n_globs;
} dataset_plan;

static void plan_set(dataset_plan *p, const char *revision, const char *const *globs, int n) {
    p->revision = revision;
    p->n_globs = n;
    for (int k = 0; k < n; k++) {
        snprintf(p->globs[k], sizeof p->globs[k], "%s", globs[k]);
        p->include[k] = p->globs[k];
    }
    p->include[n] = NULL;
}

/* The train split's Parquet globs on the revision itself (config may be
 * NULL) into p. */
static void plan_parquet(dataset_plan *p, const char *revision, const char *config) {
    char g[4][HUB_DATASET_GLOB_LEN];
    const char *gs[4] = {g[0], g[1], g[2], g[3]};
    if (!config) {
        snprintf(g[0], sizeof g[0], "data/train-*.parquet");
        snprintf(g[1], sizeof g[1], "data/train/*.parquet");
        plan_set(p, revision, gs, 2);
        return;
    }
    snprintf(g[0], sizeof g[0], "%s/train-*.parquet", config);
    snprintf(g[1], sizeof g[1], "%s/train/*.parquet", config);
    snprintf(g[2], sizeof g[2], "data/%s/train-*.parquet", config);
    snprintf(g[3], sizeof g[3], "data/%s/train/*.parquet", config);
    plan_set(p, revision, gs, 4);
}

/* The conversion's globs: <config>/train, else <config>/partial-train. */
static void plan_convert(dataset_plan *p, const char *config) {
    char g[2][HUB_DATASET_GLOB_LEN];
    const char *gs[2] = {g[0], g[1]};
    const char *c = config ? config : HUB_DATASET_CONVERT_CONFIG;
    snprintf(g[0], sizeof g[0], "%s/train/*.parquet", c);
    snprintf(g[1], sizeof g[1], "%s/partial-train/*.parquet", c);
    plan_set(p, HUB_DATASET_CONVERT_REF, gs, 2);
}

/* Files of an imagefolder repo the train split does not read. */
static const char *const not_train[] = {"test/*", "validation/*", "README.md", ".gitattributes",
                                        NULL};

/* The index of the first glob of p some listed file matches, or -1. */
static int first_glob(const json_t *info, const dataset_plan *p) {
    int best = -1;
    json_t *s;
    size_t i;
    json_array_foreach(json_object_get(info, "siblings"), i, s) {
        const char *f = json_string_value(json_object_get(s, "rfilename"));
        for (int k = 0; f && k < p->n_globs && (best < 0 || k < best); k++)
            if (fnmatch(p->globs[k], f, 0) == 0) best = k;
    }
    return best;
}

/* 1 if f is dir's metadata.jsonl or metadata.csv (dir "" : the top). */
static int metadata_in(const char *f, const char *dir) {
    char jsonl[HUB_DATASET_GLOB_LEN], csv[HUB_DATASET_GLOB_LEN];
    snprintf(jsonl, sizeof jsonl, "%s%smetadata.jsonl", dir, *dir ? "/" : "");
    snprintf(csv, sizeof csv, "%s%smetadata.csv", dir, *dir ? "/" : "");
    return !strcmp(f, jsonl) || !strcmp(f, csv);
}

/* 1 if the listing has an imagefolder's metadata where the split is read. */
static int has_metadata(const json_t *info, const char *config) {
    json_t *s;
    size_t i;
    json_array_foreach(json_object_get(info, "siblings"), i, s) {
        const char *f = json_string_value(json_object_get(s, "rfilename"));
        if (f &&
            (metadata_in(f, "") || metadata_in(f, "train") || (config && metadata_in(f, config))))
            return 1;
    }
    return 0;
}

/* Online: which revision and files hold the train split (into p). */
static int choose_files(hub_client *c, const char *repo_id, const hub_dataset_opts *o,
                        dataset_plan *p, cnet_error *err) {
    const char *rev = o->revision ? o->revision : "main";
    json_t *info;
    char commit[41];
    int rc = hub_repo_info(c, HUB_REPO_DATASET, repo_id, rev, &info, commit, err);
    if (rc) return rc;
    plan_parquet(p, rev, o->config_name);
    const int parquet = first_glob(info, p) >= 0;
    const int imagefolder = !parquet && has_metadata(info, o->config_name);
    json_decref(info);
    if (parquet) return 0;
    if (imagefolder) {
        plan_set(p, rev, NULL, 0);
        return 0;
    }
    char looked[1200], globs[800] = "";
    for (int k = 0; k < p->n_globs; k++)
        snprintf(globs + strlen(globs), sizeof globs - strlen(globs), "%s%s", k ? ", " : "",
                 p->globs[k]);
    snprintf(looked, sizeof looked,
             "%s@%s has no Parquet train files (%s) and no imagefolder metadata.jsonl or "
             "metadata.csv",
             repo_id, rev, globs);
    if (strcmp(rev, "main") != 0) /* the conversion is of main */
        return cnet_fail(err, CNET_ENOTFOUND, "%s", looked);
    plan_convert(p, o->config_name);
    rc = hub_repo_info(c, HUB_REPO_DATASET, repo_id, HUB_DATASET_CONVERT_REF, &info, commit, err);
    if (rc == CNET_ENOTFOUND)
        return cnet_fail(err, CNET_ENOTFOUND, "%s, and no %s revision", looked,
                         HUB_DATASET_CONVERT_REF);
    if (rc) return rc;
    const int k = first_glob(info, p);
    json_decref(info);
    if (k < 0)
        return cnet_fail(err, CNET_ENOTFOUND, "%s, and its %s revision has no %s or %s", looked,
                         HUB_DATASET_CONVERT_REF, p->globs[0], p->globs[1]);
    char g[HUB_DATASET_GLOB_LEN]; /* partial-train only when there is no train */
    snprintf(g, sizeof g, "%s", p->globs[k]);
    const char *only[1] = {g};
    plan_set(p, HUB_DATASET_CONVERT_REF, only, 1);
    return 0;
}

/* The folder of the snapshot that holds the split: the folder of the first
 * glob of p with a file there (the snapshot itself for data/), else the
 * imagefolder's. */
static void split_folder(const char *snapshot, const dataset_plan *p, const char *config,
                         char out[HUB_PATH_MAX]) {
    snprintf(out, HUB_PATH_MAX, "%s", snapshot);
    for (int k = 0; k < p->n_globs; k++) {
        char dir[HUB_PATH_MAX + HUB_DATASET_GLOB_LEN];
        const char *slash = strrchr(p->globs[k], '/');
        snprintf(dir, sizeof dir, "%s/%.*s", snapshot, (int)(slash - p->globs[k]), p->globs[k]);
        DIR *d = opendir(dir);
        int found = 0;
        for (struct dirent *e; d && !found && (e = readdir(d));)
            found = fnmatch(slash + 1, e->d_name, 0) == 0;
        if (d) closedir(d);
        if (!found) continue;
        if (strncmp(p->globs[k], "data/", 5) != 0 || strchr(p->globs[k] + 5, '/'))
            snprintf(out, HUB_PATH_MAX, "%.4000s", dir);
        return;
    }
    const char *subs[] = {config ? config : "", "train"};
    for (int k = 0; k < 2; k++)
        if (*subs[k] && (is_file(snapshot, subs[k], "metadata.jsonl") ||
                         is_file(snapshot, subs[k], "metadata.csv"))) {
            snprintf(out, HUB_PATH_MAX, "%.3000s/%.200s", snapshot, subs[k]);
            return;
        }
}

/* Offline: the revision's snapshot, else the conversion's. */
static int pull_offline(hub_pull_opts *po, const hub_dataset_opts *o, dataset_plan *p,
                        char snapshot[HUB_PATH_MAX], cnet_error *err) {
    hub_pull_result r;
    plan_parquet(p, o->revision ? o->revision : "main", o->config_name);
    po->revision = p->revision;
    int rc = hub_pull(NULL, po, snapshot, &r, err);
    if (rc != CNET_ENOTFOUND || strcmp(p->revision, "main") != 0) return rc;
    cnet_error first = *err;
    plan_convert(p, o->config_name);
    po->revision = p->revision;
    if (hub_pull(NULL, po, snapshot, &r, err) == 0) return 0;
    *err = first;
    return rc;
}

int hub_dataset_pull(const char *repo_id, const hub_dataset_opts *o, char out[HUB_PATH_MAX],
                     cnet_error *err) {
    if (o->config_name && hub_config_check(o->config_name, err)) return err->code;
    hub_pull_opts po = {.repo_type = HUB_REPO_DATASET,
                        .repo_id = repo_id,
                        .cache_dir = o->cache_dir,
                        .progress = o->progress,
                        .progress_ctx = o->progress_ctx,
                        .should_stop = o->should_stop};
    dataset_plan *plan = calloc(1, sizeof *plan);
    if (!plan) return cnet_fail(err, CNET_ENOMEM, "out of memory");
    char snapshot[HUB_PATH_MAX];
    const char *off = getenv("HF_HUB_OFFLINE");
    int rc;
    if (off && (!strcmp(off, "1") || !strcasecmp(off, "true"))) {
        rc = pull_offline(&po, o, plan, snapshot, err);
    } else {
        hub_client c;
        hub_pull_result r;
        rc = hub_client_init(&c, NULL, 0, err);
        if (!rc) rc = choose_files(&c, repo_id, o, plan, err);
        po.revision = plan->revision;
        po.include = plan->n_globs ? plan->include : NULL;
        po.exclude = plan->n_globs ? NULL : not_train;
        if (!rc) rc = hub_pull(&c, &po, snapshot, &r, err);
        hub_client_free(&c);
    }
    if (!rc) split_folder(snapshot, plan, o->config_name, out);
    free(plan);
    return rc ? cnet_error_prefix(err, "Hub dataset %s", repo_id) : 0;
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
    return hub_dataset_pull(name, o, out, err);
}
