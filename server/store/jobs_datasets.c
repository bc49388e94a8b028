/* The datasets registry's public calls (jobs_datasets.h): check the
 * arguments, lock the store, dispatch to the backend's table. Not here: SQL
 * (jobs_sqlite_datasets.c, jobs_pg_datasets.c) and any file work. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/store/jobs_internal.h"

void jobs_dataset_clear(jobs_dataset *d) {
    free(d->name);
    free(d->report_json);
    memset(d, 0, sizeof *d);
}

static int check_id(const char *id, cnet_error *err) {
    if (!id || !id[0] || strlen(id) >= JOBS_DATASET_ID_MAX)
        return cnet_fail(err, CNET_EINVAL, "dataset id '%.64s' is empty or longer than %d bytes",
                         id ? id : "", JOBS_DATASET_ID_MAX - 1);
    return 0;
}

int jobs_dataset_begin(jobs_store *s, const char *id, const char *name, cnet_error *err) {
    int rc = check_id(id, err);
    if (rc) return rc;
    char kept[JOBS_DATASET_NAME_MAX + 1];
    snprintf(kept, sizeof kept, "%s", name ? name : "");
    jobs_dataset d = {.name = kept, .state = JOBS_DATASET_UPLOADING};
    snprintf(d.id, sizeof d.id, "%s", id);
    pthread_mutex_lock(&s->mu);
    d.created_at = jobs_now(s);
    rc = s->be->ds_add(s, &d, err);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int jobs_dataset_ready(jobs_store *s, const char *id, int64_t bytes, int64_t files,
                       const char *report_json, cnet_error *err) {
    int rc = check_id(id, err);
    if (rc) return rc;
    jobs_dataset d = {.state = JOBS_DATASET_READY,
                      .bytes = bytes,
                      .files = files,
                      .report_json = (char *)report_json};
    snprintf(d.id, sizeof d.id, "%s", id);
    pthread_mutex_lock(&s->mu);
    rc = s->be->ds_ready(s, &d, err);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int jobs_dataset_get(jobs_store *s, const char *id, jobs_dataset *out, cnet_error *err) {
    memset(out, 0, sizeof *out);
    int rc = check_id(id, err);
    if (rc) return rc;
    pthread_mutex_lock(&s->mu);
    rc = s->be->ds_get(s, id, out, err);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int jobs_dataset_list(jobs_store *s, jobs_dataset **out, int *n, cnet_error *err) {
    *out = NULL, *n = 0;
    jobs_dataset *rows = calloc(JOBS_DATASETS_LIST_MAX, sizeof *rows);
    if (!rows) return cnet_fail(err, CNET_ENOMEM, "job store: datasets: out of memory");
    pthread_mutex_lock(&s->mu);
    int rc = s->be->ds_list(s, rows, JOBS_DATASETS_LIST_MAX, n, err);
    pthread_mutex_unlock(&s->mu);
    if (rc) {
        for (int i = 0; i < *n; i++) jobs_dataset_clear(&rows[i]);
        free(rows);
        *n = 0;
        return rc;
    }
    *out = rows;
    return 0;
}

int jobs_dataset_remove(jobs_store *s, const char *id, cnet_error *err) {
    int rc = check_id(id, err);
    if (rc) return rc;
    pthread_mutex_lock(&s->mu);
    rc = s->be->ds_remove(s, id, err);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int jobs_dataset_adopt(jobs_store *s, const jobs_dataset *d, int n, int *adopted, cnet_error *err) {
    *adopted = 0;
    for (int i = 0; i < n; i++) {
        int rc = check_id(d[i].id, err);
        if (rc) return rc;
        if (d[i].state != JOBS_DATASET_READY || !d[i].report_json)
            return cnet_fail(err, CNET_EINVAL, "dataset %s: only ready datasets are adopted",
                             d[i].id);
    }
    pthread_mutex_lock(&s->mu);
    int rc = s->be->ds_adopt(s, d, n, adopted, err);
    pthread_mutex_unlock(&s->mu);
    return rc;
}
