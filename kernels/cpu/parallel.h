/* OpenMP thresholds shared by the CPU ops: below these sizes a loop runs on
 * the calling thread, because waking the team costs more (a few
 * microseconds) than the work. Not a thread pool or a scheduler: the ops
 * use plain `#pragma omp parallel for ... if (...)` with these constants. */
#ifndef CNET_CPU_PARALLEL_H
#define CNET_CPU_PARALLEL_H

enum {
    /* elementwise loops (activations, add/scale, optimiser) */
    CPU_PAR_MIN_ELEMS = 1 << 15,
    /* loops over rows or groups that each touch many elements: parallel
     * when the whole op touches at least this many elements */
    CPU_PAR_MIN_WORK = 1 << 14,
};

#endif
