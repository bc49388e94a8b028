/* What the environment says about the group; see comm.h. The variables
 * are the ones the launchers set for every rank they start: Open MPI's
 * mpirun (OMPI_COMM_WORLD_SIZE), PMIx (srun --mpi=pmix, PMIX_RANK) and
 * PMI-2 (srun --mpi=pmi2, PMI_SIZE); and cnet's CNET_DIST_TIMEOUT. */
#include <math.h>
#include <stdlib.h>

#include "engine/dist/comm.h"

int dist_launched(void) {
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK") || getenv("PMI_SIZE");
}

int dist_timeout_from_env(double *timeout_s, cnet_error *err) {
    const char *v = getenv("CNET_DIST_TIMEOUT");
    *timeout_s = DIST_TIMEOUT_DEFAULT_S;
    if (!v) return 0;
    char *end;
    const double s = strtod(v, &end);
    if (end == v || *end || !isfinite(s) || s <= 0)
        return cnet_fail(err, CNET_EINVAL,
                         "CNET_DIST_TIMEOUT must be a positive number of seconds (got '%.40s')", v);
    *timeout_s = s;
    return 0;
}
