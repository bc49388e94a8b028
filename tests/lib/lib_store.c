/* The store a store test runs against (see lib_store.h). Talks to the
 * databases directly (sqlite3, libpq), not through server/store/. */
#include "tests/lib/lib_store.h"

#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server/store/jobs.h"

const char *store_test_url(void) {
    const char *u = getenv("CNET_TEST_STORE");
    return u && *u ? u : NULL;
}

/* Runs sql on a fresh connection to url: 0 ok. */
static int pg_run(const char *url, const char *sql) {
    PGconn *c = PQconnectdb(url);
    int ok = PQstatus(c) == CONNECTION_OK;
    if (ok) {
        PGresult *r = PQexec(c, sql);
        ok = r && PQresultStatus(r) == PGRES_COMMAND_OK;
        if (!ok) printf("    %s: %s", sql, PQerrorMessage(c));
        PQclear(r);
    } else {
        printf("    connect %s: %s", url, PQerrorMessage(c));
    }
    PQfinish(c);
    return ok ? 0 : -1;
}

int store_test_reset(const char *url) {
    return pg_run(url, "SET client_min_messages = warning; DROP SCHEMA IF EXISTS public CASCADE; "
                       "CREATE SCHEMA public");
}

int store_test_kill_sessions(const char *url) {
    PGconn *c = PQconnectdb(url);
    PGresult *r = PQstatus(c) == CONNECTION_OK
                      ? PQexec(c, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                  "WHERE datname = current_database() AND pid <> pg_backend_pid()")
                      : NULL;
    const int n = r && PQresultStatus(r) == PGRES_TUPLES_OK ? atoi(PQgetvalue(r, 0, 0)) : -1;
    PQclear(r);
    PQfinish(c);
    return n;
}

int store_test_where(char *out, size_t size, const char *dir, const char *name, int fresh) {
    const char *url = store_test_url();
    if (!url) {
        snprintf(out, size, "%s/%s.db", dir, name);
        return 0;
    }
    snprintf(out, size, "%s", url);
    return fresh ? store_test_reset(url) : 0;
}

int store_test_empty(const char *where) {
    if (jobs_is_url(where)) return store_test_reset(where);
    char path[1200];
    int rc = unlink(where);
    snprintf(path, sizeof path, "%s-wal", where);
    unlink(path);
    snprintf(path, sizeof path, "%s-shm", where);
    unlink(path);
    return rc;
}

int store_test_sql(const char *where, const char *sql) {
    if (jobs_is_url(where)) return pg_run(where, sql);
    sqlite3 *raw = NULL;
    int rc = sqlite3_open(where, &raw) == SQLITE_OK &&
                     sqlite3_exec(raw, sql, NULL, NULL, NULL) == SQLITE_OK
                 ? 0
                 : -1;
    sqlite3_close(raw);
    return rc;
}

int store_test_set_version(const char *where, int version) {
    char sql[128];
    if (jobs_is_url(where))
        snprintf(sql, sizeof sql, "UPDATE cnet_schema SET version = %d", version);
    else
        snprintf(sql, sizeof sql, "PRAGMA user_version = %d", version);
    return store_test_sql(where, sql);
}
