/* The job store's health checks (server/store/jobs_check.c) against damage
 * made here with plain file writes, the way a disk or an operator makes it:
 *   - middle pages overwritten: jobs_open refuses, saying how to recover;
 *     with the store already open, jobs_ping (what /readyz runs) fails;
 *   - jobs.db truncated to zero bytes or deleted beside job folders:
 *     jobs_open refuses, naming the orphaned folders, instead of starting
 *     empty;
 *   - jobs.db and its -wal are created 0600 (under umask 022), and an older
 *     0644 store is tightened on open. */
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "server/store/jobs.h"
#include "tests/lib/harness.h"
#include "tests/lib/lib_fs.h"

#define PAGE 4096      /* SQLite's default page size */
#define N_JOBS 200     /* enough rows for a file of ~100 pages */
#define SPEC_BYTES 900 /* each job's spec text */

static char dir[512];

static void paths(const char *name, char db[700], char jd[700]) {
    snprintf(db, 700, "%s/%s.db", dir, name);
    snprintf(jd, 700, "%s/%s-jobs", dir, name);
}

/* A store holding n jobs, closed again (its WAL checkpointed into the file). */
static int make_store(const char *name, int n, char ids[][JOBS_ID_MAX]) {
    char db[700], jd[700], spec[SPEC_BYTES + 64];
    paths(name, db, jd);
    jobs_store *s = NULL;
    cnet_error err = {0};
    if (jobs_open(&s, db, jd, &err)) return printf("    open: %s\n", err.msg), -1;
    int len = snprintf(spec, sizeof spec, "{\"max_train_steps\": 10, \"pad\": \"");
    memset(spec + len, 'p', SPEC_BYTES);
    snprintf(spec + len + SPEC_BYTES, sizeof spec - len - SPEC_BYTES, "\"}");
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        char id[JOBS_ID_MAX];
        int created;
        jobs_new req = {.kind = "train", .spec_json = spec};
        rc = jobs_enqueue(s, &req, ids ? ids[i] : id, &created, &err);
    }
    if (rc) printf("    enqueue: %s\n", err.msg);
    jobs_close(s);
    return rc;
}

/* Overwrites pages [first, first + n) of path with a byte pattern. */
static int overwrite_pages(const char *path, long first, int n) {
    char junk[PAGE];
    memset(junk, 0x5a, sizeof junk);
    int fd = open(path, O_WRONLY);
    if (fd < 0) return -1;
    int rc = 0;
    for (int i = 0; i < n && !rc; i++)
        rc = pwrite(fd, junk, PAGE, (first + i) * PAGE) == PAGE ? 0 : -1;
    close(fd);
    return rc;
}

static long pages_of(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (long)(st.st_size / PAGE) : -1;
}

static void test_jobs_damaged_store_refused(void) {
    char db[700], jd[700];
    paths("damaged", db, jd);
    CHECK(make_store("damaged", N_JOBS, NULL) == 0, "make");
    const long n = pages_of(db);
    CHECK(n > 20, "%ld pages", n);
    CHECK(overwrite_pages(db, n / 2, 3) == 0, "overwrite");
    jobs_store *s = NULL;
    cnet_error err = {0};
    const int rc = jobs_open(&s, db, jd, &err);
    jobs_close(s);
    CHECK(rc == CNET_EFORMAT, "open of a damaged store: %d (%s)", rc, err.msg);
    EXPECT(strstr(err.msg, "damaged") && strstr(err.msg, "quick_check") &&
               strstr(err.msg, ".recover") && strstr(err.msg, "backup"),
           "the message says what and how to recover: %s", err.msg);
}

static void test_jobs_ping_reads_the_file(void) {
    char db[700], jd[700];
    paths("ping", db, jd);
    CHECK(make_store("ping", N_JOBS, NULL) == 0, "make");
    jobs_store *s = NULL;
    cnet_error err = {0};
    CHECK(jobs_open(&s, db, jd, &err) == 0, "open: %s", err.msg);
    CHECK(jobs_ping(s, &err) == 0, "ping of a sound store: %s", err.msg);
    CHECK(overwrite_pages(db, pages_of(db) / 2, 3) == 0, "overwrite");
    const int rc = jobs_ping(s, &err);
    jobs_close(s);
    CHECK(rc == CNET_EFORMAT && strstr(err.msg, "damaged"),
          "ping of a store damaged while open: %d (%s)", rc, err.msg);
}

static void test_jobs_emptied_store_refused(void) {
    char db[700], jd[700], ids[7][JOBS_ID_MAX];
    paths("emptied", db, jd);
    CHECK(make_store("emptied", 7, ids) == 0, "make");
    CHECK(truncate(db, 0) == 0, "truncate");
    jobs_store *s = NULL;
    cnet_error err = {0};
    int rc = jobs_open(&s, db, jd, &err);
    jobs_close(s);
    CHECK(rc == CNET_EFORMAT, "open of a zero-byte store beside 7 job folders: %d", rc);
    int named = 0;
    for (int i = 0; i < 7; i++) named += strstr(err.msg, ids[i]) != NULL;
    EXPECT(strstr(err.msg, "7 job folder(s)") && named == 5 && strstr(err.msg, ", ...") &&
               strstr(err.msg, jd) && strstr(err.msg, "backup"),
           "names the orphans (%d of 7 named) and the way out: %s", named, err.msg);
    CHECK(unlink(db) == 0, "unlink");
    s = NULL;
    rc = jobs_open(&s, db, jd, &err);
    jobs_close(s);
    CHECK(rc == CNET_EFORMAT, "open of a deleted store beside job folders: %d", rc);
    /* the way out the message gives: the folders moved aside */
    char aside[800];
    snprintf(aside, sizeof aside, "%s.aside", jd);
    CHECK(rename(jd, aside) == 0, "move aside");
    s = NULL;
    rc = jobs_open(&s, db, jd, &err);
    jobs_close(s);
    CHECK(rc == 0, "an empty store without job folders opens: %s", err.msg);
}

static int mode_of(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (int)(st.st_mode & 0777) : -1;
}

static void test_jobs_files_private(void) {
    const mode_t old = umask(022);
    char db[700], jd[700], wal[720];
    paths("modes", db, jd);
    snprintf(wal, sizeof wal, "%s-wal", db);
    jobs_store *s = NULL;
    cnet_error err = {0};
    int rc = jobs_open(&s, db, jd, &err);
    char id[JOBS_ID_MAX];
    int created;
    jobs_new req = {.kind = "train", .spec_json = "{}"};
    if (!rc) rc = jobs_enqueue(s, &req, id, &created, &err);
    const int db_mode = mode_of(db), wal_mode = mode_of(wal);
    jobs_close(s);
    CHECK(rc == 0, "%s", err.msg);
    EXPECT(db_mode == 0600 && wal_mode == 0600, "jobs.db %o, -wal %o", db_mode, wal_mode);
    CHECK(chmod(db, 0644) == 0, "chmod");
    s = NULL;
    rc = jobs_open(&s, db, jd, &err);
    jobs_close(s);
    umask(old);
    EXPECT(rc == 0 && mode_of(db) == 0600, "a 0644 store reopened: %o", mode_of(db));
}

int main(int argc, char **argv) {
    harness_init(argc, argv);
    if (tmpdir_make(dir, sizeof dir, "cnet-jobs-check-")) {
        printf("test_jobs_check: cannot make a temp dir\n");
        return 1;
    }
    RUN(test_jobs_damaged_store_refused);
    RUN(test_jobs_ping_reads_the_file);
    RUN(test_jobs_emptied_store_refused);
    RUN(test_jobs_files_private);
    tmpdir_remove(dir);
    return harness_done();
}
