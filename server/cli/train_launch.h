/* `cnet train --num_processes N` (and train-unet's): the N ranks of a
 * data-parallel run started on this machine, as `accelerate launch
 * --num_processes N` does, by Open MPI's mpirun running this same command
 * line N times. Each rank then finds itself started by a launcher
 * (engine/dist/comm.h's dist_launched) and joins the group instead of
 * launching again, exactly as under a hand-written `mpirun -np N cnet train
 * ...` across machines.
 *
 * What it is not: the collectives (engine/dist/) or a launcher of its own:
 * mpirun starts, watches and ends the ranks (a rank that dies ends the run,
 * and mpirun's message names it). */
#ifndef CNET_TRAIN_LAUNCH_H
#define CNET_TRAIN_LAUNCH_H

/* Execs mpirun -np n with argv[0..argc) (argv[0]: the command, "train" or
 * "train-unet") after this executable. Adds --allow-run-as-root as root,
 * --oversubscribe (n may exceed the cores: the user asked for n) and
 * --bind-to none (each rank's OpenMP threads may use any core), and, when
 * OMP_NUM_THREADS is not set, gives each rank cores / n threads. Returns
 * only when it could not exec (status 2, the reason printed). */
int train_launch_ranks(int n, int argc, char **argv);

#endif
