/* The datasets registry on SQLite (jobs_datasets.h): the rows of table
 * datasets (schema v2, jobs_sqlite.c). Deleting checks, in the same
 * transaction, that no queued or running job names the dataset. Called with
 * s->mu held (jobs_datasets.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/store/jobs_sqlite.h"

#define DS_COLUMNS "id, name, state, bytes, files, report_json, created_at"

static char *dup_text(sqlite3_stmt *st, int col) {
    const char *v = (const char *)sqlite3_column_text(st, col);
    return v ? strdup(v) : NULL;
}

static int ds_row(sqlite3_stmt *st, jobs_dataset *d, cnet_error *err) {
    memset(d, 0, sizeof *d);
    const char *id = (const char *)sqlite3_column_text(st, 0);
    snprintf(d->id, sizeof d->id, "%s", id ? id : "");
    d->name = dup_text(st, 1);
    const char *state = (const char *)sqlite3_column_text(st, 2);
    d->state = state && !strcmp(state, "ready") ? JOBS_DATASET_READY : JOBS_DATASET_UPLOADING;
    d->bytes = sqlite3_column_int64(st, 3);
    d->files = sqlite3_column_int64(st, 4);
    d->report_json = dup_text(st, 5);
    d->created_at = sqlite3_column_int64(st, 6);
    if (!d->name || (d->state == JOBS_DATASET_READY && !d->report_json)) {
        jobs_dataset_clear(d);
        return cnet_fail(err, CNET_ENOMEM, "job store: dataset row: out of memory");
    }
    return 0;
}

static int insert(jobs_store *s, const jobs_dataset *d, int *changes, cnet_error *err) {
    return jobs_exec(s, changes, err,
                     "INSERT INTO datasets (id, name, state, bytes, files, report_json, "
                     "created_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
                     "sssiisi", d->id, d->name ? d->name : "",
                     d->state == JOBS_DATASET_READY ? "ready" : "uploading", d->bytes, d->files,
                     d->report_json, d->created_at);
}

int jobs_sqlite_ds_add(jobs_store *s, const jobs_dataset *d, cnet_error *err) {
    int rc = jobs_begin(s, err);
    if (!rc) rc = insert(s, d, NULL, err);
    if (rc) {
        jobs_rollback(s);
        return rc;
    }
    return jobs_commit(s, err);
}

int jobs_sqlite_ds_ready(jobs_store *s, const jobs_dataset *d, cnet_error *err) {
    int changes = 0, rc = jobs_begin(s, err);
    if (!rc)
        rc = jobs_exec(s, &changes, err,
                       "UPDATE datasets SET state = 'ready', bytes = ?, files = ?, report_json = ? "
                       "WHERE id = ? AND state = 'uploading'",
                       "iiss", d->bytes, d->files, d->report_json, d->id);
    if (!rc && changes == 0) rc = jobs_rules_dataset_not_found(err, d->id);
    if (rc) {
        jobs_rollback(s);
        return rc;
    }
    return jobs_commit(s, err);
}

int jobs_sqlite_ds_get(jobs_store *s, const char *id, jobs_dataset *out, cnet_error *err) {
    sqlite3_stmt *st;
    int rc = jobs_stmt(s, &st, err, "SELECT " DS_COLUMNS " FROM datasets WHERE id = ?", "s", id);
    if (rc) return rc;
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW)
        rc = ds_row(st, out, err);
    else if (step == SQLITE_DONE)
        rc = jobs_rules_dataset_not_found(err, id);
    else
        rc = jobs_db_fail(s, step, err, "reading a dataset");
    sqlite3_finalize(st);
    return rc;
}

int jobs_sqlite_ds_list(jobs_store *s, jobs_dataset *out, int max, int *n, cnet_error *err) {
    *n = 0;
    sqlite3_stmt *st;
    int rc = jobs_stmt(s, &st, err,
                       "SELECT " DS_COLUMNS " FROM datasets WHERE state = 'ready' "
                       "ORDER BY created_at DESC, id LIMIT ?",
                       "d", max);
    int step;
    while (!rc && (step = sqlite3_step(st)) == SQLITE_ROW)
        if (!(rc = ds_row(st, &out[*n], err))) (*n)++;
    if (!rc && step != SQLITE_DONE) rc = jobs_db_fail(s, step, err, "listing datasets");
    sqlite3_finalize(st);
    return rc;
}

/* The first queued or running job whose spec names dataset id: 1 found
 * (job_id filled), 0 none. */
static int find_user(jobs_store *s, const char *id, char job_id[JOBS_ID_MAX], cnet_error *err) {
    char pattern[64];
    jobs_rules_dataset_pattern(id, pattern);
    sqlite3_stmt *st;
    int rc = jobs_stmt(s, &st, err,
                       "SELECT id FROM jobs WHERE state IN ('queued', 'running') AND "
                       "spec_json LIKE ? ORDER BY seq LIMIT 1",
                       "s", pattern);
    if (rc) return rc;
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        snprintf(job_id, JOBS_ID_MAX, "%s", (const char *)sqlite3_column_text(st, 0));
        rc = 1;
    } else if (step != SQLITE_DONE) {
        rc = jobs_db_fail(s, step, err, "finding the jobs of a dataset");
    }
    sqlite3_finalize(st);
    return rc;
}

int jobs_sqlite_ds_remove(jobs_store *s, const char *id, cnet_error *err) {
    char job_id[JOBS_ID_MAX];
    int changes = 0, rc = jobs_begin(s, err);
    if (!rc && (rc = find_user(s, id, job_id, err)) == 1)
        rc = jobs_rules_dataset_in_use(err, id, job_id);
    if (!rc) rc = jobs_exec(s, &changes, err, "DELETE FROM datasets WHERE id = ?", "s", id);
    if (!rc && changes == 0) rc = jobs_rules_dataset_not_found(err, id);
    if (rc) {
        jobs_rollback(s);
        return rc;
    }
    return jobs_commit(s, err);
}

int jobs_sqlite_ds_adopt(jobs_store *s, const jobs_dataset *d, int n, int *adopted,
                         cnet_error *err) {
    *adopted = 0;
    int changes = 0, rc = jobs_begin(s, err);
    if (!rc)
        rc = jobs_exec(s, &changes, err,
                       "INSERT INTO meta (k, v) VALUES (?, ?) ON CONFLICT (k) DO NOTHING", "si",
                       JOBS_META_DATASETS_ADOPTED, jobs_now(s));
    for (int i = 0; !rc && changes == 1 && i < n; i++) {
        int one = 0;
        rc = insert(s, &d[i], &one, err);
        *adopted += one;
    }
    if (rc) {
        jobs_rollback(s);
        *adopted = 0;
        return rc;
    }
    return jobs_commit(s, err);
}
