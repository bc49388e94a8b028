/* The job store a store test runs against: a SQLite file in the test's temp
 * dir by default, or the PostgreSQL database named by $CNET_TEST_STORE (a
 * postgres:// URL: tests/integration/store_pg_test.sh starts a cluster and
 * runs the store and server suites with it set). One suite, two stores. */
#ifndef CNET_TEST_LIB_STORE_H
#define CNET_TEST_LIB_STORE_H

#include <stddef.h>

/* $CNET_TEST_STORE, or NULL (SQLite). */
const char *store_test_url(void);
/* Where the store named name lives: dir/name.db for SQLite, else the URL.
 * fresh != 0 empties the PostgreSQL database first (a new store, as a new
 * SQLite file is). 0 ok; -1 (message printed) when it cannot be emptied. */
int store_test_where(char *out, size_t size, const char *dir, const char *name, int fresh);
/* Empties the PostgreSQL database at url (drops and recreates its schema). */
int store_test_reset(const char *url);
/* Empties the store at where behind its back, as an operator's mistake
 * would: the SQLite file (and its -wal, -shm) deleted, or the database's
 * schema dropped. */
int store_test_empty(const char *where);
/* Ends every other session of the PostgreSQL database at url (what a
 * server restart or a cut connection does to a store's connections). */
int store_test_kill_sessions(const char *url);
/* Sets the schema version recorded in the store at where, behind the
 * store's back (PRAGMA user_version, or cnet_schema's row). */
int store_test_set_version(const char *where, int version);
/* Runs sql on the store at where behind its back (e.g. to turn it into an
 * older schema's store). 0 ok, -1 on failure. */
int store_test_sql(const char *where, const char *sql);

#endif
