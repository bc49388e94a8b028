/* The fixture pipeline (tiny-sd) with its ControlNet, loaded on a backend:
 * what the generation tests of the engine run. */
#ifndef CNET_TEST_LIB_PIPE_H
#define CNET_TEST_LIB_PIPE_H

#include "engine/models/controlnet.h"
#include "engine/pipeline/sd_base.h"

typedef struct test_pipe {
    sd_base base;
    controlnet_model cn;
} test_pipe;

/* Loads <fixtures>/tiny-sd and its controlnet/ on be. 0 ok; on failure
 * nothing is left open. */
int test_pipe_open(test_pipe *p, const char *fixtures, cnet_backend *be, cnet_error *err);
void test_pipe_close(test_pipe *p);

#endif
