/* The fixture pipeline with its ControlNet (see lib_pipe.h). */
#include "tests/lib/lib_pipe.h"

#include <stdio.h>

int test_pipe_open(test_pipe *p, const char *fixtures, cnet_backend *be, cnet_error *err) {
    char dir[4096], cn[4200];
    snprintf(dir, sizeof dir, "%s/tiny-sd", fixtures);
    snprintf(cn, sizeof cn, "%s/controlnet", dir);
    int rc = sd_base_open(&p->base, be, dir, err);
    if (rc) return rc;
    if ((rc = controlnet_open(&p->cn, be, cn, err))) sd_base_free(&p->base);
    return rc;
}

void test_pipe_close(test_pipe *p) {
    controlnet_free(&p->cn);
    sd_base_free(&p->base);
}
