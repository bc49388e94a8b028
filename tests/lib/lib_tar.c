/* Tar shards for tests (see lib_tar.h). */
#include "tests/lib/lib_tar.h"

#include <archive.h>
#include <archive_entry.h>
#include <string.h>

int tar_write(const char *path, const tar_member *m, int n) {
    struct archive *a = archive_write_new();
    if (!a) return -1;
    archive_write_set_format_pax_restricted(a);
    int rc = archive_write_open_filename(a, path) == ARCHIVE_OK ? 0 : -1;
    for (int i = 0; !rc && i < n; i++) {
        struct archive_entry *e = archive_entry_new();
        size_t len = m[i].type == 'f' ? (m[i].len ? m[i].len : strlen(m[i].data)) : 0;
        archive_entry_set_pathname(e, m[i].name);
        archive_entry_set_perm(e, 0644);
        archive_entry_set_filetype(e, m[i].type == 'd'   ? AE_IFDIR
                                      : m[i].type == 'l' ? AE_IFLNK
                                      : m[i].type == 'c' ? AE_IFCHR
                                                         : AE_IFREG);
        if (m[i].type == 'l') archive_entry_set_symlink(e, m[i].data);
        if (m[i].type == 'h') archive_entry_set_hardlink(e, m[i].data);
        archive_entry_set_size(e, (la_int64_t)len);
        if (archive_write_header(a, e) != ARCHIVE_OK) rc = -1;
        if (!rc && len && archive_write_data(a, m[i].data, len) != (la_ssize_t)len) rc = -1;
        archive_entry_free(e);
    }
    if (archive_write_close(a) != ARCHIVE_OK) rc = -1;
    archive_write_free(a);
    return rc;
}
