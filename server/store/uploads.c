/* Safe extraction of an uploaded dataset archive (or the store of one Parquet
 * file) and the dataset's life on disk (see uploads.h). We read entries with libarchive and create
 * every file ourselves below a folder fd, instead of archive_write_disk, so that no entry can name
 * a place outside the dataset: paths are split into segments, each opened with O_NOFOLLOW, and
 * `..`, absolute paths, links and special files are refused outright. What a valid dataset contains
 * is the engine's (engine/data/dataset.h); upload_check only turns its report into ours. */
#define _XOPEN_SOURCE 700
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "engine/data/dataset.h"
#include "engine/parquet/parquet.h"
#include "server/store/uploads.h"

/* A failed write or mkdir: a full disk (or quota) is UPLOAD_ENOSPC, the rest
 * CNET_EIO. Reads errno. */
static int io_fail(cnet_error *err, const char *what, const char *entry) {
    int full = errno == ENOSPC || errno == EDQUOT;
    return cnet_fail(err, full ? UPLOAD_ENOSPC : CNET_EIO, "%s %s: %s", what, entry,
                     full ? "the server's disk is full" : strerror(errno));
}

static int write_all(int fd, const char *buf, size_t n, const char *entry, cnet_error *err) {
    for (size_t off = 0; off < n;) {
        ssize_t w = write(fd, buf + off, n - off);
        if (w < 0) return io_fail(err, "writing", entry);
        off += (size_t)w;
    }
    return 0;
}

static int remove_one(const char *path, const struct stat *st, int type, struct FTW *ftw) {
    (void)st, (void)type, (void)ftw;
    return remove(path);
}

static void remove_tree(const char *path) { nftw(path, remove_one, 16, FTW_DEPTH | FTW_PHYS); }

/* Opens (creating if needed) folder seg below dfd, never following a link. */
static int open_subdir(int dfd, const char *seg, cnet_error *err, const char *entry) {
    int fd = openat(dfd, seg, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
        if (mkdirat(dfd, seg, 0700) != 0 && errno != EEXIST) return io_fail(err, "mkdir", entry);
        fd = openat(dfd, seg, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    }
    if (fd < 0) return cnet_fail(err, CNET_EFORMAT, "entry %s: '%s' is not a folder", entry, seg);
    return fd;
}

/* Splits an entry path into segments in place; refuses what could escape. */
static int split_path(char *p, char **seg, int *n, cnet_error *err, const char *entry) {
    *n = 0;
    if (strlen(p) > UPLOAD_PATH_MAX)
        return cnet_fail(err, CNET_EFORMAT, "entry path longer than %d bytes", UPLOAD_PATH_MAX);
    if (p[0] == '/')
        return cnet_fail(err, CNET_EFORMAT, "entry %s: absolute paths are refused", entry);
    for (char *c = p; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f || *c == '\\')
            return cnet_fail(err, CNET_EFORMAT, "entry %s: control character or backslash in name",
                             entry);
    for (char *tok = strtok(p, "/"); tok; tok = strtok(NULL, "/")) {
        if (strcmp(tok, ".") == 0) continue;
        if (strcmp(tok, "..") == 0)
            return cnet_fail(err, CNET_EFORMAT, "entry %s: '..' is refused", entry);
        if (*n == UPLOAD_DEPTH_MAX)
            return cnet_fail(err, CNET_EFORMAT, "entry %s: deeper than %d folders", entry,
                             UPLOAD_DEPTH_MAX);
        seg[(*n)++] = tok;
    }
    return 0;
}

typedef struct extract_state {
    const upload_limits *lim;
    int64_t entries, bytes;
} extract_state;

static int copy_data(struct archive *a, int fd, extract_state *x, const char *entry,
                     cnet_error *err) {
    static __thread char buf[1 << 16];
    for (;;) {
        la_ssize_t r = archive_read_data(a, buf, sizeof buf);
        if (r == 0) return 0;
        if (r < 0)
            return cnet_fail(err, CNET_EFORMAT, "entry %s: %s", entry, archive_error_string(a));
        x->bytes += r;
        if (x->bytes > x->lim->max_bytes)
            return cnet_fail(err, CNET_ELIMIT, "the archive unpacks to more than %lld bytes",
                             (long long)x->lim->max_bytes);
        int64_t packed = archive_filter_bytes(a, -1);
        if (x->bytes > UPLOAD_RATIO_FLOOR && x->bytes > packed * x->lim->max_ratio)
            return cnet_fail(err, CNET_ELIMIT,
                             "compression ratio above %lld:1 (%lld bytes from %lld): refused as "
                             "a bomb",
                             (long long)x->lim->max_ratio, (long long)x->bytes, (long long)packed);
        int rc = write_all(fd, buf, (size_t)r, entry, err);
        if (rc) return rc;
    }
}

static int extract_entry(struct archive *a, struct archive_entry *e, int root, extract_state *x,
                         cnet_error *err) {
    const char *name = archive_entry_pathname(e);
    if (!name) return cnet_fail(err, CNET_EFORMAT, "an entry has no name");
    if (archive_entry_hardlink(e))
        return cnet_fail(err, CNET_EFORMAT, "entry %s: hard links are refused", name);
    mode_t type = archive_entry_filetype(e);
    if (type != AE_IFREG && type != AE_IFDIR)
        return cnet_fail(err, CNET_EFORMAT, "entry %s: only files and folders are allowed (%s)",
                         name, type == AE_IFLNK ? "symbolic link" : "special file");
    char path[UPLOAD_PATH_MAX + 2], *seg[UPLOAD_DEPTH_MAX];
    int n;
    if (strlen(name) > UPLOAD_PATH_MAX)
        return cnet_fail(err, CNET_EFORMAT, "an entry path is longer than %d bytes",
                         UPLOAD_PATH_MAX);
    snprintf(path, sizeof path, "%s", name);
    int rc = split_path(path, seg, &n, err, name);
    if (rc) return rc;
    if (n == 0) return 0; /* "./" */
    int dfd = dup(root);
    int dirs = type == AE_IFDIR ? n : n - 1;
    for (int i = 0; i < dirs && dfd >= 0; i++) {
        int next = open_subdir(dfd, seg[i], err, name);
        close(dfd);
        dfd = next;
    }
    if (dfd < 0) return dfd == -1 ? cnet_fail(err, CNET_EIO, "dup: %s", strerror(errno)) : dfd;
    if (type == AE_IFDIR) {
        close(dfd);
        return 0;
    }
    int fd = openat(dfd, seg[n - 1], O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    close(dfd);
    if (fd < 0)
        return errno == EEXIST ? cnet_fail(err, CNET_EFORMAT, "entry %s: duplicate entry", name)
                               : io_fail(err, "creating", name);
    rc = copy_data(a, fd, x, name, err);
    if (close(fd) != 0 && !rc) rc = cnet_fail(err, CNET_EIO, "entry %s: close failed", name);
    return rc;
}

static int extract(const char *archive_path, int root, extract_state *x, cnet_error *err) {
    struct archive *a = archive_read_new();
    if (!a) return cnet_fail(err, CNET_ENOMEM, "archive: out of memory");
    archive_read_support_format_tar(a);
    archive_read_support_format_zip(a);
    archive_read_support_filter_gzip(a);
    archive_read_support_filter_bzip2(a);
    archive_read_support_filter_xz(a);
    archive_read_support_filter_zstd(a);
    int rc = 0;
    if (archive_read_open_filename(a, archive_path, 1 << 16) != ARCHIVE_OK)
        rc = cnet_fail(err, CNET_EFORMAT, "not a tar or zip archive: %s", archive_error_string(a));
    while (!rc) {
        struct archive_entry *e;
        int r = archive_read_next_header(a, &e);
        if (r == ARCHIVE_EOF) break;
        if (r != ARCHIVE_OK) {
            rc = cnet_fail(err, CNET_EFORMAT, "archive: %s",
                           archive_error_string(a) ? archive_error_string(a) : "unreadable");
            break;
        }
        if (++x->entries > x->lim->max_entries)
            rc = cnet_fail(err, CNET_ELIMIT, "the archive has more than %lld entries",
                           (long long)x->lim->max_entries);
        else
            rc = extract_entry(a, e, root, x, err);
    }
    archive_read_free(a);
    return rc;
}

/* Parquet's magic opens and closes the file (the footer's "PAR1"). */
static int is_parquet(const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    char head[4], tail[4];
    off_t size = fd >= 0 ? lseek(fd, 0, SEEK_END) : -1;
    int yes = size >= 8 && pread(fd, head, 4, 0) == 4 && pread(fd, tail, 4, size - 4) == 4 &&
              !memcmp(head, "PAR1", 4) && !memcmp(tail, "PAR1", 4);
    if (fd >= 0) close(fd);
    return yes;
}

#define PARQUET_STORED_AS "data/train-00000-of-00001.parquet" /* the Hub's one-shard name */

/* Copies one Parquet file to root/PARQUET_STORED_AS under the byte cap. */
static int store_parquet(const char *path, int root, extract_state *x, cnet_error *err) {
    static __thread char buf[1 << 16];
    int in = open(path, O_RDONLY | O_CLOEXEC);
    if (in < 0) return cnet_fail(err, CNET_EIO, "reading the upload: %s", strerror(errno));
    int dfd = open_subdir(root, "data", err, "data");
    int fd = dfd >= 0 ? openat(dfd, "train-00000-of-00001.parquet",
                               O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600)
                      : -1;
    int rc = dfd < 0 ? dfd : fd < 0 ? io_fail(err, "creating", PARQUET_STORED_AS) : 0;
    x->entries = 1;
    for (ssize_t r; !rc && (r = read(in, buf, sizeof buf)) != 0;) {
        if (r < 0) {
            rc = cnet_fail(err, CNET_EIO, "reading the upload: %s", strerror(errno));
        } else if ((x->bytes += r) > x->lim->max_bytes) {
            rc = cnet_fail(err, CNET_ELIMIT, "the Parquet file is more than %lld bytes",
                           (long long)x->lim->max_bytes);
        } else {
            rc = write_all(fd, buf, (size_t)r, PARQUET_STORED_AS, err);
        }
    }
    if (fd >= 0 && close(fd) != 0 && !rc) rc = io_fail(err, "closing", PARQUET_STORED_AS);
    if (dfd >= 0) close(dfd);
    close(in);
    return rc;
}

void upload_sanitize_name(const char *in, char out[256]) {
    size_t n = 0;
    for (; in && *in && n < 255; in++) {
        unsigned char c = (unsigned char)*in;
        if (c < 0x20 || c == 0x7f || c == '/' || c == '\\' || (n == 0 && c == '.')) continue;
        out[n++] = (char)c;
    }
    out[n] = '\0';
}

static int write_report(int dfd, json_t *report, cnet_error *err) {
    char *text = json_dumps(report, JSON_INDENT(2));
    if (!text) return cnet_fail(err, CNET_ENOMEM, "report: out of memory");
    int fd = openat(dfd, "report.json", O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    int rc = fd < 0 ? io_fail(err, "creating", "report.json")
                    : write_all(fd, text, strlen(text), "report.json", err);
    if (!rc && fsync(fd) != 0) rc = io_fail(err, "syncing", "report.json");
    if (fd >= 0) close(fd);
    free(text);
    return rc;
}

/* The top-level columns of a Parquet dataset's first train shard, for the
 * report (the train form offers them for the --*_column options). */
static json_t *parquet_columns(const dataset *ds, cnet_error *err) {
    parquet_file *pf;
    if (ds->n_shards < 1 || parquet_open(&pf, ds->shards[0], err)) return NULL;
    json_t *cols = json_array();
    for (int i = 0; cols && i < parquet_num_fields(pf); i++)
        json_array_append_new(cols, json_string(parquet_field_name(pf, i)));
    parquet_close(pf);
    return cols;
}

/* The extracted files must form a dataset the trainer can read, with every
 * referenced file present (engine/data/dataset.h, without decoding pixels). */
static int upload_check(const char *files, json_t **report, cnet_error *err) {
    dataset ds;
    dataset_report rep;
    dataset_options o = {0};
    int rc = dataset_open(&ds, files, &o, err);
    /* A reader's limit (a footer, an index, an image over its cap) marks the
     * dataset bad (400); 413 is for the upload's own caps. */
    if (rc == CNET_ELIMIT && err) err->code = CNET_EINVAL;
    if (rc) return rc == CNET_ELIMIT ? CNET_EINVAL : rc;
    rc = dataset_check(&ds, 0, 0, &rep, err);
    if (!rc) {
        int p = rep.count[DATASET_PROBLEM_MISSING] ? DATASET_PROBLEM_MISSING
                                                   : DATASET_PROBLEM_UNREADABLE;
        if (rep.usable != rep.samples)
            rc = cnet_fail(err, CNET_EINVAL, "%lld of %lld samples are %s, e.g. %s",
                           (long long)rep.count[p], (long long)rep.samples,
                           dataset_problem_name((dataset_problem)p), rep.examples[p][0]);
        dataset_report_free(&rep);
    }
    size_t n = strlen(files);
    const char *root = strncmp(ds.root, files, n) == 0 && ds.root[n] == '/' ? ds.root + n + 1 : ".";
    const char *index = ds.index_name                         ? ds.index_name
                        : ds.layout == DATASET_LAYOUT_PARQUET ? "*.parquet"
                                                              : "*.tar";
    if (!rc)
        *report = json_pack("{s:s, s:s, s:s, s:I}", "format", dataset_layout_name(ds.layout),
                            "index", index, "root", root, "samples", (json_int_t)dataset_size(&ds));
    if (!rc && *report && ds.layout == DATASET_LAYOUT_PARQUET) {
        json_t *cols = parquet_columns(&ds, err);
        if (cols)
            json_object_set_new(*report, "columns", cols);
        else
            rc = err && err->code ? err->code : CNET_ENOMEM;
    }
    dataset_free(&ds);
    if (!rc && !*report) rc = cnet_fail(err, CNET_ENOMEM, "out of memory");
    return rc;
}

/* Removes every "prefix/" from msg: the engine's messages name files by
 * their full path, the client knows them relative to the dataset. */
static void strip_prefix(char *msg, const char *prefix) {
    size_t n = strlen(prefix);
    for (char *at; (at = strstr(msg, prefix)) && at[n] == '/';)
        memmove(at, at + n + 1, strlen(at + n + 1) + 1);
}

int upload_new_id(char id[UPLOAD_ID_MAX], cnet_error *err) {
    unsigned char raw[16];
    if (RAND_bytes(raw, sizeof raw) != 1) return cnet_fail(err, CNET_EIO, "no random bytes");
    strcpy(id, "d_");
    for (int i = 0; i < 16; i++) sprintf(id + 2 + 2 * i, "%02x", raw[i]);
    return 0;
}

int upload_valid_id(const char *id) {
    if (strncmp(id, "d_", 2) != 0 || strlen(id) != 34) return 0;
    return strspn(id + 2, "0123456789abcdef") == 32;
}

int upload_ingest(const char *archive_path, const char *datasets_dir, const char *name,
                  const upload_limits *lim, const char *id, json_t **report, cnet_error *err) {
    *report = NULL;
    if (!upload_valid_id(id)) return cnet_fail(err, CNET_EINVAL, "'%.64s' is not a dataset id", id);
    char partial[4096], final[4096];
    if ((size_t)snprintf(partial, sizeof partial, "%s/.partial-%s", datasets_dir, id) >=
            sizeof partial ||
        (size_t)snprintf(final, sizeof final, "%s/%s", datasets_dir, id) >= sizeof final)
        return cnet_fail(err, CNET_ELIMIT, "datasets dir path too long");
    if ((mkdir(datasets_dir, 0700) != 0 && errno != EEXIST) || mkdir(partial, 0700) != 0)
        return io_fail(err, "mkdir", "the dataset's folder");
    int dfd = open(partial, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int files = dfd >= 0 ? open_subdir(dfd, "files", err, "files") : -1;
    int rc = files >= 0 ? 0 : files == -1 ? cnet_fail(err, CNET_EIO, "open %s", partial) : files;
    extract_state x = {.lim = lim};
    int parquet = is_parquet(archive_path);
    if (!rc)
        rc = parquet ? store_parquet(archive_path, files, &x, err)
                     : extract(archive_path, files, &x, err);
    json_t *rep = NULL;
    char files_path[4200];
    snprintf(files_path, sizeof files_path, "%s/files", partial);
    if (!rc) rc = upload_check(files_path, &rep, err);
    if (rc && err) strip_prefix(err->msg, files_path);
    if (rc && err && parquet) cnet_error_prefix(err, "the uploaded Parquet file");
    if (!rc) {
        char clean[256], when[32];
        upload_sanitize_name(name, clean);
        time_t now = time(NULL);
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
        json_object_set_new(rep, "id", json_string(id));
        json_object_set_new(rep, "entries", json_integer(x.entries));
        json_object_set_new(rep, "bytes", json_integer(x.bytes));
        json_object_set_new(rep, "created_at", json_string(when));
        if (clean[0]) json_object_set_new(rep, "original_name", json_string(clean));
        rc = write_report(dfd, rep, err);
    }
    if (files >= 0) close(files);
    if (dfd >= 0) close(dfd);
    if (!rc && rename(partial, final) != 0)
        rc = cnet_fail(err, CNET_EIO, "rename %s: %s", partial, strerror(errno));
    if (rc) {
        remove_tree(partial);
        json_decref(rep);
        return rc;
    }
    *report = rep;
    return 0;
}

static int by_created_desc(const void *a, const void *b) {
    const char *x = json_string_value(json_object_get(*(json_t *const *)a, "created_at"));
    const char *y = json_string_value(json_object_get(*(json_t *const *)b, "created_at"));
    return strcmp(y ? y : "", x ? x : "");
}

int upload_remove(const char *datasets_dir, const char *id, cnet_error *err) {
    if (!upload_valid_id(id)) return cnet_fail(err, CNET_EINVAL, "'%.64s' is not a dataset id", id);
    char final[4096], gone[4096];
    if ((size_t)snprintf(final, sizeof final, "%s/%s", datasets_dir, id) >= sizeof final ||
        (size_t)snprintf(gone, sizeof gone, "%s/.deleted-%s", datasets_dir, id) >= sizeof gone)
        return cnet_fail(err, CNET_ELIMIT, "datasets dir path too long");
    if (rename(final, gone) != 0 && errno != ENOENT)
        return cnet_fail(err, CNET_EIO, "removing dataset %s: %s", id, strerror(errno));
    remove_tree(gone);
    return 0;
}

int upload_scan(const char *datasets_dir, json_t **out, cnet_error *err) {
    *out = json_array();
    if (!*out) return cnet_fail(err, CNET_ENOMEM, "out of memory");
    DIR *d = opendir(datasets_dir);
    if (!d) return 0; /* none uploaded yet */
    json_t *items[1024];
    size_t n = 0;
    for (struct dirent *de; (de = readdir(d)) && n < 1024;) {
        if (strncmp(de->d_name, "d_", 2) != 0) continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s/report.json", datasets_dir, de->d_name);
        json_t *rep = json_load_file(path, 0, NULL);
        if (rep) items[n++] = rep;
    }
    closedir(d);
    qsort(items, n, sizeof items[0], by_created_desc);
    for (size_t i = 0; i < n; i++) json_array_append_new(*out, items[i]);
    return 0;
}
