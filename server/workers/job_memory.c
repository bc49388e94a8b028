/* job_memory.h's estimate: the sizes of the weight files the engine would
 * read (engine/config/model_files.h), a sharded component's shards summed.
 * Reads no file's contents: a stat per file, quick enough to ask at every
 * claim. */
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/config/model_files.h"
#include "server/workers/job_memory.h"

static const char *const components[] = {"unet", "vae", "text_encoder", "text_encoder_2"};
#define SHARD_SUFFIX ".safetensors"

static int ends_with(const char *s, const char *tail) {
    size_t n = strlen(s), m = strlen(tail);
    return n >= m && strcmp(s + n - m, tail) == 0;
}

/* The bytes of the shards in dir (a sharded component: every *.safetensors). */
static int64_t shards_bytes(const char *dir) {
    DIR *d = opendir(dir);
    int64_t sum = 0;
    for (struct dirent *e; d && (e = readdir(d));) {
        char path[PATH_MAX];
        struct stat st;
        if (!ends_with(e->d_name, SHARD_SUFFIX)) continue;
        if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, e->d_name) < sizeof path &&
            stat(path, &st) == 0)
            sum += st.st_size;
    }
    if (d) closedir(d);
    return sum;
}

/* The bytes of one component's weights; 0 when the model has no such
 * folder (text_encoder_2 outside SDXL). */
static int component_bytes(const char *model_dir, const char *name, int64_t *bytes,
                           cnet_error *err) {
    char dir[PATH_MAX], config[PATH_MAX], weights[PATH_MAX];
    struct stat st;
    *bytes = 0;
    if ((size_t)snprintf(dir, sizeof dir, "%s/%s", model_dir, name) >= sizeof dir)
        return cnet_fail(err, CNET_ELIMIT, "model path too long: %s", model_dir);
    if (stat(dir, &st) != 0) return 0;
    int rc = model_component_files(config, weights, sizeof weights, dir, err);
    if (rc) return rc;
    if (ends_with(weights, ".index.json"))
        *bytes = shards_bytes(dir);
    else if (stat(weights, &st) == 0)
        *bytes = st.st_size;
    else
        return cnet_fail(err, CNET_ENOTFOUND, "%s: no weights", weights);
    return 0;
}

int job_memory_need(const char *model_dir, const char *kind, int64_t *bytes, cnet_error *err) {
    *bytes = 0;
    int64_t unet = 0;
    for (size_t i = 0; i < sizeof components / sizeof components[0]; i++) {
        int64_t b;
        int rc = component_bytes(model_dir, components[i], &b, err);
        if (rc) return rc;
        if (i == 0) unet = b;
        *bytes += b;
    }
    if (unet == 0) return cnet_fail(err, CNET_ENOTFOUND, "%s: no unet weights", model_dir);
    if (strcmp(kind, "train") == 0) *bytes += JOB_MEMORY_TRAIN_COPIES * unet;
    return 0;
}
