/* Helpers shared by the model golden checks (server/golden/golden_io.c). */
#ifndef CNET_GOLDEN_IO_H
#define CNET_GOLDEN_IO_H

#include "engine/core/arena.h"
#include "engine/core/backend.h"
#include "server/golden/golden.h"

/* One model run's memory: the backend of ctx->device and a scratch arena. */
typedef struct golden_env {
    cnet_backend be;
    cnet_arena scratch;
} golden_env;

int golden_env_init(golden_env *env, const golden_ctx *ctx, cnet_error *err);
/* Grows the scratch arena to at least `bytes`. */
int golden_env_scratch(golden_env *env, size_t bytes, cnet_error *err);
void golden_env_free(golden_env *env);

/* Downloads an NHWC [B,H,W,C] (or any non-4-d) result and compares it in
 * PyTorch layout with the golden `name` of that shape. */
void golden_compare_nhwc(golden_ctx *ctx, golden_env *env, const st_file *f, const char *name,
                         const float *dev, int ndim, const int64_t *shape);

#endif
