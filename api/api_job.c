/* The job row's state names and its destructor (see api_job.h). */
#include "api/api_job.h"

#include <stdlib.h>
#include <string.h>

const char *const job_state_names[JOB_N_STATES] = {"queued", "running", "succeeded", "failed",
                                                   "cancelled"};

int job_state_parse(const char *s) {
    for (int i = 0; i < JOB_N_STATES; i++)
        if (s && strcmp(s, job_state_names[i]) == 0) return i;
    return -1;
}

void job_clear(job *j) {
    free(j->spec_json);
    free(j->progress_json);
    free(j->error_code);
    free(j->error_detail);
    memset(j, 0, sizeof *j);
}
