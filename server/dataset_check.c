/* Is an extracted folder a ControlNet training dataset? Two layouts are
 * accepted, the ones diffusers' train_controlnet.py users bring:
 *   imagefolder: metadata.jsonl, one JSON object per line with file_name,
 *                conditioning_image_file_name and text (the HF "imagefolder"
 *                loader's metadata file);
 *   fill50k:     prompt.json, one JSON object per line with source, target and
 *                prompt (lllyasviel's fill50k, used by the ControlNet paper).
 * Every referenced file must exist as a regular file inside the folder.
 * Not here: image decoding or size checks (the engine's data loader). */
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "server/dataset.h"

#define DATASET_INDEX_MAX (64 << 20) /* bytes of metadata.jsonl / prompt.json; more → 400 */

typedef struct layout {
    const char *format, *index;
    const char *keys[3]; /* two file references, then the caption */
} layout;

static const layout layouts[] = {
    {"imagefolder", "metadata.jsonl", {"file_name", "conditioning_image_file_name", "text"}},
    {"fill50k", "prompt.json", {"target", "source", "prompt"}},
};

static int has_file(int dfd, const char *name) {
    struct stat st;
    return fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode);
}

/* The folder holding the index: the top, or its only subfolder. */
static int find_root(int top, const layout **lay, char sub[256]) {
    sub[0] = '\0';
    for (int i = 0; i < 2; i++)
        if (has_file(top, layouts[i].index)) return *lay = &layouts[i], dup(top);
    int fd = dup(top);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) return -1;
    int dirs = 0;
    for (struct dirent *de; (de = readdir(d));) {
        if (de->d_name[0] == '.') continue;
        struct stat st;
        if (fstatat(top, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode)) {
            dirs++;
            snprintf(sub, 256, "%s", de->d_name);
        }
    }
    closedir(d);
    if (dirs != 1) return -1;
    int sfd = openat(top, sub, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    for (int i = 0; sfd >= 0 && i < 2; i++)
        if (has_file(sfd, layouts[i].index)) return *lay = &layouts[i], sfd;
    if (sfd >= 0) close(sfd);
    return -1;
}

static char *read_index(int dfd, const char *name, cnet_error *err) {
    int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        if (fd >= 0) close(fd);
        cnet_fail(err, CNET_EIO, "%s: %s", name, strerror(errno));
        return NULL;
    }
    if (st.st_size > DATASET_INDEX_MAX) {
        close(fd);
        cnet_fail(err, CNET_ELIMIT, "%s is larger than %d bytes", name, DATASET_INDEX_MAX);
        return NULL;
    }
    char *buf = malloc((size_t)st.st_size + 1);
    ssize_t got = buf ? read(fd, buf, (size_t)st.st_size) : -1;
    close(fd);
    if (got != st.st_size) {
        free(buf);
        cnet_fail(err, CNET_EIO, "%s: short read", name);
        return NULL;
    }
    buf[got] = '\0';
    return buf;
}

/* A reference must be a relative path without '..' naming a regular file. */
static int check_ref(int root, const layout *lay, int line, const char *key, const json_t *v,
                     cnet_error *err) {
    const char *ref = json_string_value(v);
    if (!ref || !*ref)
        return cnet_fail(err, CNET_EINVAL, "%s line %d: %s must be a non-empty string", lay->index,
                         line, key);
    if (ref[0] == '/' || strstr(ref, "..") || strlen(ref) > DATASET_PATH_MAX)
        return cnet_fail(err, CNET_EINVAL,
                         "%s line %d: %s '%s' must be a relative path inside "
                         "the dataset",
                         lay->index, line, key, ref);
    if (!has_file(root, ref))
        return cnet_fail(err, CNET_EINVAL, "%s line %d: %s '%s' not found in the dataset",
                         lay->index, line, key, ref);
    return 0;
}

static int check_lines(int root, const layout *lay, char *text, int64_t *samples, cnet_error *err) {
    int line = 0;
    for (char *save = NULL, *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        line++;
        if (strspn(l, " \t\r") == strlen(l)) continue;
        json_error_t jerr;
        json_t *o = json_loads(l, JSON_REJECT_DUPLICATES, &jerr);
        if (!json_is_object(o)) {
            json_decref(o);
            return cnet_fail(err, CNET_EINVAL, "%s line %d: not a JSON object (%s)", lay->index,
                             line, o ? "wrong type" : jerr.text);
        }
        int rc = 0;
        for (int k = 0; k < 2 && !rc; k++)
            rc = check_ref(root, lay, line, lay->keys[k], json_object_get(o, lay->keys[k]), err);
        if (!rc && !json_is_string(json_object_get(o, lay->keys[2])))
            rc = cnet_fail(err, CNET_EINVAL, "%s line %d: %s must be a string", lay->index, line,
                           lay->keys[2]);
        json_decref(o);
        if (rc) return rc;
        ++*samples;
    }
    return 0;
}

int dataset_check(int dirfd, json_t **report, cnet_error *err) {
    *report = NULL;
    const layout *lay = NULL;
    char sub[256];
    int root = find_root(dirfd, &lay, sub);
    if (root < 0)
        return cnet_fail(err, CNET_EINVAL,
                         "no metadata.jsonl (file_name, conditioning_image_file_name, text) or "
                         "prompt.json (source, target, prompt) at the top of the archive or in "
                         "its only folder");
    char *text = read_index(root, lay->index, err);
    int64_t samples = 0;
    int rc = text ? check_lines(root, lay, text, &samples, err) : err ? err->code : CNET_EIO;
    free(text);
    close(root);
    if (!rc && samples == 0) rc = cnet_fail(err, CNET_EINVAL, "%s lists no samples", lay->index);
    if (rc) return rc;
    *report = json_pack("{s:s, s:s, s:s, s:I}", "format", lay->format, "index", lay->index, "root",
                        sub[0] ? sub : ".", "samples", (json_int_t)samples);
    return *report ? 0 : cnet_fail(err, CNET_ENOMEM, "out of memory");
}
