/* Writing tar shards for dataset tests with libarchive's writer: regular
 * files, folders, symbolic and hard links, devices, any member name. */
#ifndef CNET_TEST_LIB_TAR_H
#define CNET_TEST_LIB_TAR_H

#include <stddef.h>

typedef struct tar_member {
    const char *name;
    int type;         /* 'f' file, 'd' folder, 'l' symlink, 'h' hard link, 'c' char device */
    const char *data; /* file content, or the link target */
    size_t len;       /* bytes of data for a file; 0 means strlen(data) */
} tar_member;

/* Writes the members, in order, to a pax tar at path. 0 ok. */
int tar_write(const char *path, const tar_member *m, int n);

#endif
