/* OpenMP wait policy of a long-running command (see wait_policy.h). */
#include "server/cli/wait_policy.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void cli_wait_policy_apply(char **argv, const char *policy) {
    if (getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT")) return;
    if (setenv("OMP_WAIT_POLICY", policy, 1) != 0) return;
    execv("/proc/self/exe", argv);
    /* still here: run with libgomp's default; the variable stays set for
     * any child, which is what the policy asks for anyway */
    fprintf(stderr,
            "cnet: could not re-execute with OMP_WAIT_POLICY=%s (%s); OpenMP threads spin "
            "as libgomp's default\n",
            policy, strerror(errno));
}
