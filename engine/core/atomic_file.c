/* Atomic whole-file writes; see atomic_file.h. */
#include "engine/core/atomic_file.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int atomic_write_file(const char *path, const void *data, size_t len, cnet_error *err) {
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return cnet_fail(err, CNET_ELIMIT, "%s: path too long", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return cnet_fail(err, CNET_EIO, "%s: cannot create: %s", tmp, strerror(errno));
    const char *p = data, *step = NULL;
    for (size_t done = 0; done < len && !step;) {
        ssize_t n = write(fd, p + done, len - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0)
            step = "write";
        else
            done += (size_t)n;
    }
    if (!step && fsync(fd) != 0) step = "fsync";
    int saved = errno;
    if (close(fd) != 0 && !step) step = "close", saved = errno;
    if (!step && rename(tmp, path) != 0) step = "rename", saved = errno;
    if (step) {
        unlink(tmp);
        return cnet_fail(err, CNET_EIO, "%s: %s failed: %s", path, step, strerror(saved));
    }
    /* The rename is durable once the folder's entry is. */
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - path) + (slash == path) : 1,
             slash ? path : ".");
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return 0;
}

int atomic_write_json(const char *path, const json_t *j, cnet_error *err) {
    char *text = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    if (!text) return cnet_fail(err, CNET_ENOMEM, "%s: out of memory encoding JSON", path);
    size_t len = strlen(text);
    char *withnl = realloc(text, len + 2);
    if (!withnl) {
        free(text);
        return cnet_fail(err, CNET_ENOMEM, "%s: out of memory encoding JSON", path);
    }
    withnl[len] = '\n', withnl[len + 1] = '\0';
    int rc = atomic_write_file(path, withnl, len + 1, err);
    free(withnl);
    return rc;
}
