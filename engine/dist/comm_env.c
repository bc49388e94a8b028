/* Whether an MPI launcher started this process; see comm.h. The variables
 * are the ones the launchers set for every rank they start: Open MPI's
 * mpirun (OMPI_COMM_WORLD_SIZE), PMIx (srun --mpi=pmix, PMIX_RANK) and
 * PMI-2 (srun --mpi=pmi2, PMI_SIZE). */
#include <stdlib.h>

#include "engine/dist/comm.h"

int dist_launched(void) {
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK") || getenv("PMI_SIZE");
}
