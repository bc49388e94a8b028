/* The job store's health: what jobs_open checks before it trusts a
 * database, and SQLite's readiness ping.
 *
 *   damaged  PRAGMA quick_check (SQLite's page, cell and freelist checks
 *            without the index-to-table cross check) must answer "ok";
 *            a store with overwritten pages is refused, with how to
 *            recover, instead of failing every later read and write;
 *   emptied  a store without a schema (a zero-byte or deleted jobs.db, a
 *            fresh PostgreSQL database) while the jobs dir holds job
 *            folders is refused, naming the orphans: creating a fresh
 *            schema would hide them for good (both backends);
 *   ping     a real write (and fsync) plus quick_check on a connection of
 *            its own, which reads the pages from the file (the store's own
 *            connection would answer from its page cache).
 *
 * What it is not: a repair tool (sqlite3's .recover is, offline) or the
 * schema (jobs.c). Follows SQLite's "How To Corrupt An SQLite Database
 * File" and its quick_check documentation. */
#include <dirent.h>
#include <stdio.h>
#include <string.h>

#include "server/store/jobs_sqlite.h"

/* Orphaned job folders named in the refusal; the count covers the rest. */
#define JOBS_CHECK_ORPHANS_NAMED 5
/* quick_check's message lines quoted in the refusal. */
#define JOBS_CHECK_PROBLEMS_QUOTED 3

/* What to do about a damaged store, appended to every refusal. */
#define JOBS_RECOVERY_HINT                                                                         \
    "stop cnet serve, move jobs.db, jobs.db-wal and jobs.db-shm aside, then restore a backup or "  \
    "recover the readable rows with `sqlite3 jobs.db.bad .recover | sqlite3 jobs.db`; the job "    \
    "folders under the jobs dir are left as they are"

/* quick_check on db: 0 when "ok", else CNET_EFORMAT quoting its first lines. */
static int quick_check(sqlite3 *db, const char *db_path, cnet_error *err) {
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, "PRAGMA quick_check", -1, &st, NULL);
    char problems[512] = "";
    size_t used = 0;
    int n = 0, step = SQLITE_ROW;
    while (rc == SQLITE_OK && (step = sqlite3_step(st)) == SQLITE_ROW) {
        const char *line = (const char *)sqlite3_column_text(st, 0);
        if (line && !strcmp(line, "ok")) continue;
        if (n++ < JOBS_CHECK_PROBLEMS_QUOTED && used < sizeof problems)
            used += (size_t)snprintf(problems + used, sizeof problems - used, "%s%s",
                                     used ? "; " : "", line ? line : "?");
    }
    if (rc == SQLITE_OK && step != SQLITE_DONE) rc = step;
    if (rc != SQLITE_OK && !n) snprintf(problems, sizeof problems, "%s", sqlite3_errmsg(db));
    sqlite3_finalize(st);
    if (rc == SQLITE_NOMEM)
        return cnet_fail(err, CNET_ENOMEM, "job store: quick_check: out of memory");
    if (rc == SQLITE_OK && !n) return 0;
    return cnet_fail(err, CNET_EFORMAT, "job store %s is damaged (quick_check: %s); %s", db_path,
                     problems, JOBS_RECOVERY_HINT);
}

int jobs_check_damaged(jobs_store *s, cnet_error *err) {
    return quick_check(s->db, s->db_path, err);
}

int jobs_check_emptied(jobs_store *s, cnet_error *err) {
    DIR *d = opendir(s->jobs_dir);
    if (!d) return 0; /* jobs_open made it: nothing in it */
    char named[JOBS_CHECK_ORPHANS_NAMED * (JOBS_ID_MAX + 2) + 1] = "";
    size_t used = 0;
    int n = 0;
    for (struct dirent *de; (de = readdir(d));) {
        if (strncmp(de->d_name, "j_", 2) != 0) continue;
        if (n++ < JOBS_CHECK_ORPHANS_NAMED)
            used += (size_t)snprintf(named + used, sizeof named - used, "%s%.*s", used ? ", " : "",
                                     JOBS_ID_MAX - 1, de->d_name);
    }
    closedir(d);
    if (!n) return 0;
    /* a PostgreSQL URL may carry a password: not quoted */
    const int pg = jobs_is_url(s->db_path);
    return cnet_fail(err, CNET_EFORMAT,
                     "job store %s is empty but %s holds %d job folder(s) (%s%s) that it no "
                     "longer knows: the store was emptied or deleted. Restore %s from a "
                     "backup; or, to start with an empty store, move those folders out of %s "
                     "(their artefacts stay readable there)",
                     pg ? "(postgresql)" : s->db_path, s->jobs_dir, n, named,
                     n > JOBS_CHECK_ORPHANS_NAMED ? ", ..." : "", pg ? "the database" : "jobs.db",
                     s->jobs_dir);
}

/* quick_check on a fresh read-only connection (WAL: it does not block the
 * store's writers, and it reads the file, not the store's page cache). */
static int check_file(jobs_store *s, cnet_error *err) {
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(s->db_path, &db, SQLITE_OPEN_READONLY, NULL);
    if (rc == SQLITE_OK) sqlite3_busy_timeout(db, JOBS_BUSY_TIMEOUT_MS);
    int code = rc == SQLITE_OK ? quick_check(db, s->db_path, err)
                               : cnet_fail(err, rc == SQLITE_NOMEM ? CNET_ENOMEM : CNET_EIO,
                                           "job store: open %s: %s", s->db_path,
                                           db ? sqlite3_errmsg(db) : "out of memory");
    sqlite3_close(db);
    return code;
}

int jobs_sqlite_ping(jobs_store *s, cnet_error *err) {
    pthread_mutex_lock(&s->mu);
    int rc = jobs_begin(s, err);
    if (!rc)
        rc = jobs_exec(s, NULL, err, "INSERT OR REPLACE INTO meta (k, v) VALUES ('ping', ?)", "i",
                       jobs_now(s));
    if (!rc)
        rc = jobs_commit(s, err);
    else
        jobs_rollback(s);
    pthread_mutex_unlock(&s->mu);
    return rc ? rc : check_file(s, err);
}
