/* The datasets registry on PostgreSQL (jobs_datasets.h), shared by every
 * node: the rows of table datasets (schema v2, jobs_pg.c). Many nodes write
 * at once, so
 *   - a delete locks the dataset's row (FOR UPDATE) before it looks for
 *     queued or running jobs naming it and deletes it, so a concurrent
 *     ready/delete on another node waits and then finds no row;
 *   - adoption claims the meta key with INSERT ... ON CONFLICT DO NOTHING:
 *     of nodes starting together, one adopts and the others, after its
 *     commit, insert nothing.
 * The same promises and errors as jobs_sqlite_datasets.c. Called with s->mu
 * held (jobs_datasets.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/store/jobs_pg.h"

#define DS_COLUMNS "id, name, state, bytes, files, report_json, created_at"

static int ds_row(PGresult *r, int row, jobs_dataset *d, cnet_error *err) {
    memset(d, 0, sizeof *d);
    snprintf(d->id, sizeof d->id, "%s", PQgetvalue(r, row, 0));
    d->name = strdup(PQgetvalue(r, row, 1));
    d->state =
        !strcmp(PQgetvalue(r, row, 2), "ready") ? JOBS_DATASET_READY : JOBS_DATASET_UPLOADING;
    d->bytes = jobs_pg_int(r, row, 3);
    d->files = jobs_pg_int(r, row, 4);
    d->report_json = PQgetisnull(r, row, 5) ? NULL : strdup(PQgetvalue(r, row, 5));
    d->created_at = jobs_pg_int(r, row, 6);
    if (!d->name || (d->state == JOBS_DATASET_READY && !d->report_json)) {
        jobs_dataset_clear(d);
        return cnet_fail(err, CNET_ENOMEM, "job store: dataset row: out of memory");
    }
    return 0;
}

static int insert(jobs_store *s, const jobs_dataset *d, int *changes, cnet_error *err) {
    return jobs_pg_exec(s, NULL, changes, err, "registering a dataset",
                        "INSERT INTO datasets (id, name, state, bytes, files, report_json, "
                        "created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) "
                        "ON CONFLICT (id) DO NOTHING",
                        "sssiisi", d->id, d->name ? d->name : "",
                        d->state == JOBS_DATASET_READY ? "ready" : "uploading", d->bytes, d->files,
                        d->report_json, d->created_at);
}

/* Ends the transaction: commit when rc is 0, else roll back and return rc. */
static int end(jobs_store *s, int rc, cnet_error *err) {
    if (rc) {
        jobs_pg_rollback(s);
        return rc;
    }
    return jobs_pg_commit(s, err);
}

int jobs_pg_ds_add(jobs_store *s, const jobs_dataset *d, cnet_error *err) {
    int rc = jobs_pg_begin(s, err);
    if (rc) return rc;
    return end(s, insert(s, d, NULL, err), err);
}

int jobs_pg_ds_ready(jobs_store *s, const jobs_dataset *d, cnet_error *err) {
    int changes = 0, rc = jobs_pg_begin(s, err);
    if (rc) return rc;
    rc = jobs_pg_exec(s, NULL, &changes, err, "marking a dataset ready",
                      "UPDATE datasets SET state = 'ready', bytes = $1, files = $2, "
                      "report_json = $3 WHERE id = $4 AND state = 'uploading'",
                      "iiss", d->bytes, d->files, d->report_json, d->id);
    if (!rc && changes == 0) rc = jobs_rules_dataset_not_found(err, d->id);
    return end(s, rc, err);
}

int jobs_pg_ds_get(jobs_store *s, const char *id, jobs_dataset *out, cnet_error *err) {
    PGresult *r;
    int rc = jobs_pg_exec(s, &r, NULL, err, "reading a dataset",
                          "SELECT " DS_COLUMNS " FROM datasets WHERE id = $1", "s", id);
    if (rc) return rc;
    rc = PQntuples(r) == 1 ? ds_row(r, 0, out, err) : jobs_rules_dataset_not_found(err, id);
    PQclear(r);
    return rc;
}

int jobs_pg_ds_list(jobs_store *s, jobs_dataset *out, int max, int *n, cnet_error *err) {
    *n = 0;
    PGresult *r;
    int rc = jobs_pg_exec(s, &r, NULL, err, "listing datasets",
                          "SELECT " DS_COLUMNS " FROM datasets WHERE state = 'ready' "
                          "ORDER BY created_at DESC, id LIMIT $1",
                          "d", max);
    if (rc) return rc;
    for (int i = 0; !rc && i < PQntuples(r) && i < max; i++)
        if (!(rc = ds_row(r, i, &out[*n], err))) (*n)++;
    PQclear(r);
    return rc;
}

int jobs_pg_ds_remove(jobs_store *s, const char *id, cnet_error *err) {
    PGresult *r = NULL;
    int rc = jobs_pg_begin(s, err);
    if (rc) return rc;
    rc = jobs_pg_exec(s, &r, NULL, err, "locking a dataset",
                      "SELECT id FROM datasets WHERE id = $1 FOR UPDATE", "s", id);
    if (!rc && PQntuples(r) == 0) rc = jobs_rules_dataset_not_found(err, id);
    PQclear(r);
    r = NULL;
    char pattern[64];
    jobs_rules_dataset_pattern(id, pattern);
    if (!rc)
        rc = jobs_pg_exec(s, &r, NULL, err, "finding the jobs of a dataset",
                          "SELECT id FROM jobs WHERE state IN ('queued', 'running') AND "
                          "spec_json LIKE $1 ORDER BY seq LIMIT 1",
                          "s", pattern);
    if (!rc && PQntuples(r) == 1) rc = jobs_rules_dataset_in_use(err, id, PQgetvalue(r, 0, 0));
    PQclear(r);
    if (!rc)
        rc = jobs_pg_exec(s, NULL, NULL, err, "deleting a dataset",
                          "DELETE FROM datasets WHERE id = $1", "s", id);
    return end(s, rc, err);
}

int jobs_pg_ds_adopt(jobs_store *s, const jobs_dataset *d, int n, int *adopted, cnet_error *err) {
    *adopted = 0;
    int changes = 0, rc = jobs_pg_begin(s, err);
    if (rc) return rc;
    rc = jobs_pg_exec(s, NULL, &changes, err, "marking the datasets adopted",
                      "INSERT INTO meta (k, v) VALUES ($1, $2) ON CONFLICT (k) DO NOTHING", "si",
                      JOBS_META_DATASETS_ADOPTED, jobs_now(s));
    for (int i = 0; !rc && changes == 1 && i < n; i++) {
        int one = 0;
        rc = insert(s, &d[i], &one, err);
        *adopted += one;
    }
    if (rc) *adopted = 0;
    return end(s, rc, err);
}
