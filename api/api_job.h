/* The job row: what a job is (id, kind, state, attempts, progress, error,
 * times), as the store keeps it and the contract renders it (api_job_json).
 * It lives in api/ so the contract needs nothing from server/: the store
 * (server/store/jobs.h) fills these rows, api/api_render.c shows them.
 *
 * What it is not: no storage and no state machine (the store decides which
 * transitions happen, RELIABILITY.md §2). */
#ifndef CNET_API_JOB_H
#define CNET_API_JOB_H

#include <stdint.h>

#define JOBS_ID_MAX 40 /* "j_" + 32 hex digits + NUL, room to spare */

typedef enum job_state {
    JOB_QUEUED,
    JOB_RUNNING,
    JOB_SUCCEEDED,
    JOB_FAILED,
    JOB_CANCELLED,
    JOB_N_STATES
} job_state;

extern const char *const job_state_names[JOB_N_STATES];
/* Returns the state named s, or -1. */
int job_state_parse(const char *s);
static inline int job_state_terminal(job_state s) { return s >= JOB_SUCCEEDED; }

/* One job row. Strings are owned by the struct (job_clear frees them); NULL
 * when the column is NULL. Times are 0 when unset. */
typedef struct job {
    char id[JOBS_ID_MAX];
    char kind[16];
    job_state state;
    int64_t seq; /* acceptance order, also the list cursor */
    char *spec_json;
    int attempt, max_attempts;
    int cancel_requested;
    char *progress_json;
    int64_t checkpoint_step; /* -1: no checkpoint yet */
    char *error_code, *error_detail;
    int64_t created_at, started_at, finished_at;
    int64_t queue_position; /* 1-based among queued jobs; 0 when not queued */
} job;

void job_clear(job *j);

#endif
