/* libFuzzer target: the dataset upload's archive extraction and check
 * (server/store/uploads.c, libarchive underneath) on an arbitrary archive
 * (tar, zip, compressed: libarchive sniffs the format). Beyond the
 * sanitizers it checks what upload_ingest promises (server/store/uploads.h):
 * on failure nothing is left under the datasets dir, on success exactly the
 * new dataset's folder, and nothing is ever written beside the datasets dir
 * (a path, link or `..` that escaped would be). Small caps keep each run
 * fast. Corpus: tests/fuzz/corpus/upload. */
#include <dirent.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/store/uploads.h"
#include "tests/fuzz/lib_fuzz.h"
#include "tests/lib/lib_fs.h"

static const upload_limits limits = {.max_entries = 64, .max_bytes = 1 << 20, .max_ratio = 200};

/* The names in dir other than . and .., joined by '/' into out. */
static void list_dir(const char *dir, char *out, size_t cap) {
    out[0] = '\0';
    DIR *d = opendir(dir);
    if (!d) return;
    for (struct dirent *e; (e = readdir(d));)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            snprintf(out + strlen(out), cap - strlen(out), "%s/", e->d_name);
    closedir(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char archive[PATH_MAX], datasets[PATH_MAX + 16], id[UPLOAD_ID_MAX], seen[1024];
    fuzz_file(archive, sizeof archive, "upload.tar", data, size);
    snprintf(datasets, sizeof datasets, "%s/datasets", fuzz_dir());
    json_t *report = NULL;
    cnet_error err = {0};
    if (upload_new_id(id, &err)) abort();
    const int rc = upload_ingest(archive, datasets, "upload.tar", &limits, id, &report, &err);
    list_dir(fuzz_dir(), seen, sizeof seen);
    if (strcmp(seen, "upload.tar/datasets/") && strcmp(seen, "datasets/upload.tar/")) {
        fprintf(stderr, "fuzz: the scratch folder holds %s\n", seen);
        abort();
    }
    list_dir(datasets, seen, sizeof seen);
    char want[UPLOAD_ID_MAX + 1] = ""; /* nothing after a failure, the new folder after success */
    if (!rc) snprintf(want, sizeof want, "%s/", id);
    if (strcmp(seen, want)) {
        fprintf(stderr, "fuzz: after rc %d (%s) the datasets dir holds %s\n", rc, err.msg, seen);
        abort();
    }
    if (!rc) {
        char dir[PATH_MAX + 64];
        snprintf(dir, sizeof dir, "%s/%s", datasets, id);
        tmpdir_remove(dir);
    }
    json_decref(report);
    return 0;
}
