/* The scratch folder, input files, API roots and tensor check of the fuzz targets
 * (lib_fuzz.h), over the tests' temporary folders (tests/lib/lib_fs.h). */
#include "tests/fuzz/lib_fuzz.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tests/lib/lib_fs.h"

volatile uint8_t fuzz_sink;

static char dir[PATH_MAX];

static void remove_dir(void) { tmpdir_remove(dir); }

const char *fuzz_dir(void) {
    if (!dir[0]) {
        if (tmpdir_make(dir, sizeof dir, "cnet-fuzz")) {
            fprintf(stderr, "fuzz: cannot make a scratch folder under $TMPDIR\n");
            abort();
        }
        atexit(remove_dir);
    }
    return dir;
}

static char models[PATH_MAX + 16], jobs[PATH_MAX + 16], datasets[PATH_MAX + 16];

static void make_roots(void) {
    if (models[0]) return;
    char hub[PATH_MAX + 16];
    snprintf(models, sizeof models, "%s/models", fuzz_dir());
    snprintf(jobs, sizeof jobs, "%s/jobs", fuzz_dir());
    snprintf(datasets, sizeof datasets, "%s/datasets", fuzz_dir());
    snprintf(hub, sizeof hub, "%s/hub", fuzz_dir());
    if (file_touch_json(models, "base", "model_index.json") ||
        file_touch_json(models, "cn", "config.json") ||
        file_touch_json(datasets, FUZZ_DATASET_ID, "report.json") || mkdir(jobs, 0700) ||
        mkdir(hub, 0700) || setenv("HF_HUB_CACHE", hub, 1) || setenv("HF_HUB_OFFLINE", "1", 1)) {
        fprintf(stderr, "fuzz: cannot make the API roots under %s\n", fuzz_dir());
        abort();
    }
}

const char *fuzz_models_dir(void) { return make_roots(), models; }
const char *fuzz_jobs_dir(void) { return make_roots(), jobs; }
const char *fuzz_datasets_dir(void) { return make_roots(), datasets; }

void fuzz_file(char *path, size_t cap, const char *name, const uint8_t *data, size_t n) {
    if ((size_t)snprintf(path, cap, "%s/%s", fuzz_dir(), name) >= cap) {
        fprintf(stderr, "fuzz: path too long: %s/%s\n", fuzz_dir(), name);
        abort();
    }
    for (char *slash = strchr(path + strlen(fuzz_dir()) + 1, '/'); slash;
         slash = strchr(slash + 1, '/')) {
        *slash = '\0';
        mkdir(path, 0700);
        *slash = '/';
    }
    if (file_write(path, data, n)) {
        fprintf(stderr, "fuzz: cannot write %s\n", path);
        abort();
    }
}

void fuzz_check_tensors(const st_file *f) {
    for (int i = 0; i < f->n; i++) {
        const st_entry *e = &f->entries[i];
        const st_entry *found = st_find(f, e->name);
        if (!found || strcmp(found->name, e->name) || e->nbytes != cnet_tensor_bytes(&e->view)) {
            fprintf(stderr, "fuzz: entry %d (%s) is inconsistent\n", i, e->name);
            abort();
        }
        if (e->nbytes) {
            const uint8_t *p = e->view.data;
            fuzz_sink ^= p[0];
            fuzz_sink ^= p[e->nbytes - 1];
        }
    }
    for (int i = 0; i < f->n_meta; i++)
        if (!st_meta(f, f->meta_keys[i])) {
            fprintf(stderr, "fuzz: metadata key %s not found\n", f->meta_keys[i]);
            abort();
        }
}
