/* The OpenMP wait policy `cnet serve` runs with (issue 21, threads): passive
 * (idle threads sleep in the kernel) unless the user's environment sets
 * OMP_WAIT_POLICY or GOMP_SPINCOUNT, which then rule. libgomp reads both
 * once, when the process loads it, so the policy cannot be set at backend
 * open: the server re-executes itself once with the variable set. Why
 * passive: BENCHMARKS.md, "OpenMP wait policy". Not a thread pool. */
#ifndef CNET_CLI_WAIT_POLICY_H
#define CNET_CLI_WAIT_POLICY_H

/* The default for a service process. */
#define CLI_WAIT_POLICY_SERVE "passive"

/* Re-executes this process (/proc/self/exe, the same argv, environment plus
 * OMP_WAIT_POLICY=policy) when neither variable is set; returns only when
 * it did not (already set, or exec failed: said on stderr, and the run goes
 * on with libgomp's default). argv is main's, NULL-terminated. */
void cli_wait_policy_apply(char **argv, const char *policy);

#endif
