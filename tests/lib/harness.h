/* A minimal test harness shared by every tests/<kind>/test_*.c program.
 *
 *   static void test_something(void) { CHECK(x == 1, "x was %d", x); }
 *   int main(int argc, char **argv) { harness_init(argc, argv); RUN(test_something);
 *                                     return harness_done(); }
 *
 * CHECK records a failure with file:line and a message and returns from the
 * test function. Each program prints "ok NAME" / "FAIL NAME: ..." lines and a
 * closing "PROGRAM: N passed, N failed"; tests/run.sh adds them up.
 * harness_arg("--opt", default) reads an option given to the program;
 * harness_fixtures() is --fixtures DIR, by default the repository's copy. */
#ifndef CNET_TEST_HARNESS_H
#define CNET_TEST_HARNESS_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int harness_passed, harness_failed, harness_current_failed;
static int harness_argc;
static char **harness_argv;

static inline void harness_init(int argc, char **argv) {
    harness_argc = argc;
    harness_argv = argv;
    setvbuf(stdout, NULL, _IOLBF, 0);
}

static inline const char *harness_arg(const char *name, const char *fallback) {
    for (int i = 1; i + 1 < harness_argc; i++)
        if (strcmp(harness_argv[i], name) == 0) return harness_argv[i + 1];
    return fallback;
}

/* The reference fixture directory (tests/fixtures/README.md): --fixtures DIR,
 * else tests/fixtures (the programs run from the repository root). */
#define HARNESS_FIXTURES_DEFAULT "tests/fixtures"
static inline const char *harness_fixtures(void) {
    return harness_arg("--fixtures", HARNESS_FIXTURES_DEFAULT);
}

#define CHECK(cond, ...)                                                                   \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            printf("    %s:%d: check failed: %s: ", __FILE__, __LINE__, #cond);            \
            printf(__VA_ARGS__);                                                           \
            printf("\n");                                                                  \
            harness_current_failed = 1;                                                    \
            return;                                                                        \
        }                                                                                  \
    } while (0)

/* Like CHECK but keeps going (to report every mismatch of a loop). */
#define EXPECT(cond, ...)                                                                  \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            printf("    %s:%d: expectation failed: %s: ", __FILE__, __LINE__, #cond);      \
            printf(__VA_ARGS__);                                                           \
            printf("\n");                                                                  \
            harness_current_failed = 1;                                                    \
        }                                                                                  \
    } while (0)

#define RUN(fn)                                                                            \
    do {                                                                                   \
        harness_current_failed = 0;                                                        \
        fn();                                                                              \
        if (harness_current_failed) {                                                      \
            harness_failed++;                                                              \
            printf("FAIL %s\n", #fn);                                                      \
        } else {                                                                           \
            harness_passed++;                                                              \
            printf("ok   %s\n", #fn);                                                      \
        }                                                                                  \
    } while (0)

static inline int harness_done(void) {
    const char *prog = strrchr(harness_argv[0], '/');
    printf("%s: %d passed, %d failed\n", prog ? prog + 1 : harness_argv[0], harness_passed,
           harness_failed);
    return harness_failed ? 1 : 0;
}

#endif
