/* Temporary folders for tests: made under $TMPDIR (or /tmp), removed
 * recursively at the end (without following symlinks). */
#ifndef CNET_TEST_LIB_FS_H
#define CNET_TEST_LIB_FS_H

#include <stddef.h>

/* Creates a fresh folder named <prefix>XXXXXX and writes its path to buf. 0 ok. */
int tmpdir_make(char *buf, size_t size, const char *prefix);
/* Removes path and everything under it. 0 ok. */
int tmpdir_remove(const char *path);
/* Writes n bytes to path (created or truncated). 0 ok. */
int file_write(const char *path, const void *data, size_t n);
/* Reads a whole file into a NUL-terminated malloc'd buffer; NULL on failure. */
char *file_read(const char *path, size_t *n);
/* Makes dir and dir/sub (either may exist) and writes "{}" to dir/sub/leaf:
 * the marker file a model, ControlNet or dataset reference is checked by. */
int file_touch_json(const char *dir, const char *sub, const char *leaf);
/* Runs the printf-formatted shell command (up to 4 KiB); system()'s status. */
__attribute__((format(printf, 1, 2))) int shell_run(const char *fmt, ...);

/* hex (64 digits and a NUL) = the SHA-256 of the file at path; -1 when it
 * cannot be read. */
int file_sha256_hex(const char *path, char hex[65]);

#endif
