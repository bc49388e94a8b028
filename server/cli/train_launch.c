/* Starting the ranks under mpirun; see train_launch.h. */
#include "server/cli/train_launch.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* mpirun's own arguments before the command line. */
#define LAUNCH_MPIRUN_ARGS 12

int train_launch_ranks(int n, int argc, char **argv) {
    char exe[PATH_MAX], np[16], threads[48];
    const ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len <= 0) {
        fprintf(stderr, "cnet %s: cannot find this executable (/proc/self/exe): %s\n", argv[0],
                strerror(errno));
        return 2;
    }
    exe[len] = '\0';
    char **args = calloc((size_t)argc + LAUNCH_MPIRUN_ARGS + 2, sizeof *args);
    if (!args) {
        fprintf(stderr, "cnet %s: out of memory\n", argv[0]);
        return 2;
    }
    int k = 0;
    args[k++] = "mpirun";
    if (geteuid() == 0) args[k++] = "--allow-run-as-root";
    args[k++] = "--oversubscribe";
    args[k++] = "--bind-to";
    args[k++] = "none";
    if (!getenv("OMP_NUM_THREADS")) {
        const long cores = sysconf(_SC_NPROCESSORS_ONLN);
        snprintf(threads, sizeof threads, "OMP_NUM_THREADS=%ld", cores / n > 1 ? cores / n : 1);
        args[k++] = "-x";
        args[k++] = threads;
    }
    snprintf(np, sizeof np, "%d", n);
    args[k++] = "-np";
    args[k++] = np;
    args[k++] = exe;
    for (int i = 0; i < argc; i++) args[k++] = argv[i];
    args[k] = NULL;
    fflush(NULL);
    execvp("mpirun", args);
    fprintf(stderr, "cnet %s: --num_processes %d: cannot run mpirun (%s): install openmpi-bin\n",
            argv[0], n, strerror(errno));
    free(args);
    return 2;
}
