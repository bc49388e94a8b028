/* The output files of `cnet generate` (see generate.h): PNGs with a
 * "parameters" text chunk, written all-or-nothing. Phase one encodes every
 * image and writes it to a temp file next to its target and fsyncs it; only
 * when all of them are on disk does phase two rename them into place and
 * fsync the folder. A failure in phase one removes the temp files; one in
 * phase two (a rename refused after others succeeded, which needs the folder
 * to change under us) removes the files renamed so far, so no partial set of
 * outputs is left — an older file of the same name that was already
 * replaced is lost then, as with any rename-based save. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "server/cli/generate.h"

int gen_output_path(char *buf, size_t cap, const char *out, int index, int n, cnet_error *err) {
    int len;
    if (n == 1) {
        len = snprintf(buf, cap, "%s", out);
    } else {
        const char *dot = strrchr(out, '.'), *slash = strrchr(out, '/');
        if (!dot || (slash && dot < slash)) dot = out + strlen(out);
        len = snprintf(buf, cap, "%.*s_%d%s", (int)(dot - out), out, index, dot);
    }
    if (len < 0 || (size_t)len >= cap) return cnet_fail(err, CNET_ELIMIT, "%s: path too long", out);
    return 0;
}

/* The folder of path into dir ("." when it has none). */
static void folder_of(char *dir, size_t cap, const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(dir, cap, ".");
    else
        snprintf(dir, cap, "%.*s", slash == path ? 1 : (int)(slash - path), path);
}

int gen_output_check(const char *out, cnet_error *err) {
    char dir[PATH_MAX];
    folder_of(dir, sizeof dir, out);
    if (access(dir, W_OK) != 0)
        return cnet_fail(err, CNET_EIO, "--out %s: folder %s is not writable: %s", out, dir,
                         strerror(errno));
    return 0;
}

/* Writes len bytes to a new temp file next to path; its name goes to tmp. */
static int write_temp(char *tmp, size_t cap, const char *path, const uint8_t *buf, size_t len,
                      cnet_error *err) {
    if (snprintf(tmp, cap, "%s.tmpXXXXXX", path) >= (int)cap)
        return cnet_fail(err, CNET_ELIMIT, "%s: path too long", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        int e = errno;
        tmp[0] = '\0';
        return cnet_fail(err, CNET_EIO, "%s: cannot create a temp file: %s", path, strerror(e));
    }
    const char *step = NULL;
    for (size_t done = 0; done < len && !step;) {
        ssize_t w = write(fd, buf + done, len - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0)
            step = "write";
        else
            done += (size_t)w;
    }
    if (!step && fchmod(fd, 0644) != 0) step = "chmod";
    if (!step && fsync(fd) != 0) step = "fsync";
    int saved = errno;
    if (close(fd) != 0 && !step) step = "close", saved = errno;
    if (step) return cnet_fail(err, CNET_EIO, "%s: %s failed: %s", tmp, step, strerror(saved));
    return 0;
}

int gen_output_write(const char *out, const image_rgb8 *images, char *const *texts, int n,
                     cnet_error *err) {
    char(*tmp)[PATH_MAX] = calloc((size_t)n, sizeof *tmp);
    char(*dst)[PATH_MAX] = calloc((size_t)n, sizeof *dst);
    int rc = tmp && dst ? 0 : cnet_fail(err, CNET_ENOMEM, "out of memory");
    int renamed = 0;
    for (int i = 0; i < n && !rc; i++) {
        uint8_t *png = NULL;
        size_t len = 0;
        image_text text = {"parameters", texts[i]};
        if (!(rc = gen_output_path(dst[i], PATH_MAX, out, i, n, err)) &&
            !(rc = image_encode_png(&images[i], &text, 1, &png, &len, err)))
            rc = write_temp(tmp[i], PATH_MAX, dst[i], png, len, err);
        free(png);
    }
    while (!rc && renamed < n) {
        if (rename(tmp[renamed], dst[renamed]) != 0)
            rc = cnet_fail(err, CNET_EIO, "%s: rename into place failed: %s", dst[renamed],
                           strerror(errno));
        else
            renamed++;
    }
    if (rc) {
        for (int i = 0; tmp && dst && i < n; i++) {
            if (i < renamed)
                unlink(dst[i]);
            else if (tmp[i][0])
                unlink(tmp[i]);
        }
    } else {
        char dir[PATH_MAX];
        folder_of(dir, sizeof dir, out);
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            fsync(dfd);
            close(dfd);
        }
    }
    free(tmp);
    free(dst);
    return rc;
}
