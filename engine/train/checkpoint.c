/* Training checkpoints; see checkpoint.h. */
#include "engine/train/checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/core/atomic_file.h"

#define CHECKPOINT_MAX_LISTED 4096
#define CHECKPOINT_PARTIAL ".partial-" /* + eight random hex digits */
#define CHECKPOINT_INSTALL_TRIES 3 /* at a step another run also writes: a name taken, an install  \
                                    */

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

/* Removes a directory tree (used for partial and surplus checkpoints). */
static int checkpoint_remove_tree(const char *path, cnet_error *err) {
    struct stat st;
    if (lstat(path, &st) != 0)
        return errno == ENOENT ? 0 : cnet_fail(err, CNET_EIO, "%s: %s", path, strerror(errno));
    if (nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        return cnet_fail(err, CNET_EIO, "cannot remove %s: %s", path, strerror(errno));
    return 0;
}

static int fsync_dir(const char *dir, cnet_error *err) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return cnet_fail(err, CNET_EIO, "%s: %s", dir, strerror(errno));
    int rc = fsync(fd) == 0 ? 0 : cnet_fail(err, CNET_EIO, "fsync %s: %s", dir, strerror(errno));
    close(fd);
    return rc;
}

/* Steps of the complete checkpoints in dir, ascending; returns the count. */
static int list_steps(const char *dir, int *steps, int cap) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    const size_t plen = strlen(CHECKPOINT_PREFIX);
    while ((e = readdir(d)) && n < cap) {
        if (strncmp(e->d_name, CHECKPOINT_PREFIX, plen) != 0) continue;
        char *end;
        long step = strtol(e->d_name + plen, &end, 10);
        if (*end != '\0' || end == e->d_name + plen || step < 0 || step > INT_MAX) continue;
        steps[n++] = (int)step;
    }
    closedir(d);
    for (int i = 1; i < n; i++) /* insertion sort: few entries */
        for (int j = i; j > 0 && steps[j - 1] > steps[j]; j--) {
            int t = steps[j];
            steps[j] = steps[j - 1], steps[j - 1] = t;
        }
    return n;
}

static int path_in(char *out, size_t cap, const char *dir, const char *name, cnet_error *err) {
    int n = snprintf(out, cap, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= cap)
        return cnet_fail(err, CNET_ELIMIT, "%s/%s: path too long", dir, name);
    return 0;
}

/* Creates a partial folder of its own beside final (mkdir is exclusive; the
 * suffix is random, as runs on other hosts may share the folder). */
static int make_partial(char *partial, size_t cap, const char *final, cnet_error *err) {
    for (int i = 0; i < CHECKPOINT_INSTALL_TRIES; i++) {
        uint32_t r = 0;
        if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r) r = (uint32_t)getpid() + (uint32_t)i;
        if (snprintf(partial, cap, "%s" CHECKPOINT_PARTIAL "%08x", final, r) >= (int)cap)
            return cnet_fail(err, CNET_ELIMIT, "%s: path too long", final);
        if (mkdir(partial, 0755) == 0) return 0;
        if (errno != EEXIST) break;
    }
    return cnet_fail(err, CNET_EIO, "cannot create %s: %s", partial, strerror(errno));
}

void checkpoint_remove_partials(const char *output_dir) {
    DIR *d = opendir(output_dir);
    if (!d) return;
    const size_t plen = strlen(CHECKPOINT_PREFIX);
    for (struct dirent *e; (e = readdir(d));) {
        if (strncmp(e->d_name, CHECKPOINT_PREFIX, plen) != 0) continue;
        char *end;
        strtol(e->d_name + plen, &end, 10);
        if (end == e->d_name + plen || strncmp(end, CHECKPOINT_PARTIAL, strlen(CHECKPOINT_PARTIAL)))
            continue;
        char path[PATH_MAX];
        if (!path_in(path, sizeof path, output_dir, e->d_name, NULL))
            checkpoint_remove_tree(path, NULL);
    }
    closedir(d);
}

/* checkpoints_total_limit: the oldest go once the new one is complete
 * (diffusers removes them before saving; afterwards, a save that fails
 * leaves every earlier checkpoint in place). */
static int prune(const char *output_dir, int step, int total_limit, cnet_error *err) {
    if (total_limit <= 0) return 0;
    int steps[CHECKPOINT_MAX_LISTED];
    int n = list_steps(output_dir, steps, CHECKPOINT_MAX_LISTED), rc = 0;
    for (int i = 0; i < n && n - i > total_limit && !rc; i++) {
        char old[PATH_MAX], oname[64];
        if (steps[i] == step) continue;
        snprintf(oname, sizeof oname, CHECKPOINT_PREFIX "%d", steps[i]);
        if (!(rc = path_in(old, sizeof old, output_dir, oname, err)))
            rc = checkpoint_remove_tree(old, err);
    }
    return rc;
}

/* The weights' folder of a checkpoint. */
static const char *model_dir(const checkpoint_tables *t) {
    return t->model ? t->model : "controlnet";
}

/* path_in for "<dir>/<sub>/diffusion_pytorch_model.safetensors". */
static int weights_path(char *out, size_t cap, const char *dir, const char *sub, cnet_error *err) {
    char rel[96];
    snprintf(rel, sizeof rel, "%s/diffusion_pytorch_model.safetensors", sub);
    return path_in(out, cap, dir, rel, err);
}

int checkpoint_save(const char *output_dir, int step, const json_t *model_config,
                    const checkpoint_tables *t, const json_t *state, int total_limit,
                    cnet_error *err) {
    char name[64], final[PATH_MAX], partial[PATH_MAX], sub[PATH_MAX], file[PATH_MAX];
    snprintf(name, sizeof name, CHECKPOINT_PREFIX "%d", step);
    int rc;
    if ((rc = path_in(final, sizeof final, output_dir, name, err))) return rc;
    if ((rc = make_partial(partial, sizeof partial, final, err))) return rc;
    if ((rc = path_in(sub, sizeof sub, partial, model_dir(t), err))) return rc;
    if (mkdir(sub, 0755) != 0)
        return cnet_fail(err, CNET_EIO, "cannot create %s: %s", sub, strerror(errno));
    if (t->ema) {
        char ema[PATH_MAX];
        if ((rc = path_in(ema, sizeof ema, partial, CHECKPOINT_EMA_DIR, err))) return rc;
        if (mkdir(ema, 0755) != 0)
            return cnet_fail(err, CNET_EIO, "cannot create %s: %s", ema, strerror(errno));
        if ((rc = weights_path(file, sizeof file, partial, CHECKPOINT_EMA_DIR, err)) ||
            (rc = params_save(t->ema, file, NULL, NULL, 0, err)))
            goto fail;
    }
    if ((rc = path_in(file, sizeof file, sub, "config.json", err)) ||
        (rc = atomic_write_json(file, model_config, err)) ||
        (rc = path_in(file, sizeof file, sub, "diffusion_pytorch_model.safetensors", err)) ||
        (rc = params_save(t->weights, file, NULL, NULL, 0, err)) ||
        (rc = adam_state_save(t->optimizer, partial, err)) ||
        (rc = path_in(file, sizeof file, partial, "trainer_state.json", err)) ||
        (rc = atomic_write_json(file, state, err)))
        goto fail;
    /* A re-run that reaches the same step replaces its earlier checkpoint
     * (another run may install the same step between the two calls). */
    int moved = 0;
    for (int i = 0; i < CHECKPOINT_INSTALL_TRIES && !moved && !rc; i++)
        if (!(rc = checkpoint_remove_tree(final, err))) moved = rename(partial, final) == 0;
    if (!rc && !moved)
        rc =
            cnet_fail(err, CNET_EIO, "cannot rename %s to %s: %s", partial, final, strerror(errno));
    if (rc) goto fail;
    if ((rc = fsync_dir(output_dir, err))) return rc;
    return prune(output_dir, step, total_limit, err);
fail:
    checkpoint_remove_tree(partial, NULL);
    return cnet_error_prefix(err, "checkpoint %d", step);
}

int checkpoint_latest(const char *output_dir, char *path, size_t cap, cnet_error *err) {
    int steps[CHECKPOINT_MAX_LISTED];
    int n = list_steps(output_dir, steps, CHECKPOINT_MAX_LISTED);
    if (n == 0)
        return cnet_fail(err, CNET_ENOTFOUND, "%s: no checkpoint to resume from", output_dir);
    char name[64];
    snprintf(name, sizeof name, CHECKPOINT_PREFIX "%d", steps[n - 1]);
    return path_in(path, cap, output_dir, name, err);
}

int checkpoint_load(const char *dir, const checkpoint_tables *t, json_t **state, cnet_error *err) {
    char file[PATH_MAX];
    int rc;
    *state = NULL;
    if ((rc = weights_path(file, sizeof file, dir, model_dir(t), err)) ||
        (rc = params_load(t->weights, file, err)) ||
        (rc = adam_state_load(t->optimizer, dir, err)) ||
        (t->ema && (rc = weights_path(file, sizeof file, dir, CHECKPOINT_EMA_DIR, err))) ||
        (t->ema && (rc = params_load(t->ema, file, err))) ||
        (rc = path_in(file, sizeof file, dir, "trainer_state.json", err)))
        return rc;
    json_error_t jerr;
    *state = json_load_file(file, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(*state)) {
        json_decref(*state);
        *state = NULL;
        return cnet_fail(err, CNET_EFORMAT, "%s: line %d: %s", file, jerr.line, jerr.text);
    }
    return 0;
}
