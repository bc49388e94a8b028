/* The trainer's AdamW state (engine/train/adam_state.c) on the CPU backend, with
 * tensors on both sides of bnb's min_8bit_size (100 and 4095 elements stay
 * float32; 4096 and 5000 go 8-bit, the last with a partial block):
 * - three steps with clipping equal, bit for bit, per-tensor calls of
 *   adamw_step (small tensors) and adamw8bit_step (large ones) on state
 *   kept by hand: the fallback and the slot offsets are right;
 * - the reported bytes are codes + absmax + float32 small state + maps;
 * - save then load into a fresh state continues bit-exactly;
 * - a checkpoint of the other form is refused naming the flag. */
#include <string.h>
#include <sys/stat.h>

#include "engine/train/adam_state.h"
#include "kernels/cpu/cpu_ops.h"
#include "tests/lib/harness.h"
#include "tests/lib/lib_casemem.h"
#include "tests/lib/lib_fs.h"

enum { NT = 4 };
static const int64_t sizes[NT] = {100, 4095, 4096, 5000};

static int table(cnet_params *p, cnet_backend *be, cnet_error *err) {
    params_init(p, be);
    for (int i = 0; i < NT; i++) {
        char name[32];
        snprintf(name, sizeof name, "layer%d.weight", i);
        if (params_add(p, name, 1, &sizes[i], PARAM_PLAIN, err) < 0) return -1;
    }
    return params_alloc(p, err);
}

/* The expected state, kept per tensor by hand. */
typedef struct by_hand {
    float *m[NT], *v[NT]; /* small tensors */
    cnet_adam8_state q[NT];
    float qm[256], qv[256];
} by_hand;

static void by_hand_init(by_hand *h) {
    adam8_dynamic_map(h->qm, 1);
    adam8_dynamic_map(h->qv, 0);
    for (int i = 0; i < NT; i++) {
        const size_t n = (size_t)sizes[i], nb = (size_t)adam8_blocks((long)n);
        h->m[i] = cm_fill(n, 0), h->v[i] = cm_fill(n, 0);
        h->q[i] = (cnet_adam8_state){.m = memset(cm_alloc(n), 0, n),
                                     .v = memset(cm_alloc(n), 0, n),
                                     .absmax_m = cm_fill(nb, 0),
                                     .absmax_v = cm_fill(nb, 0),
                                     .qmap_m = h->qm,
                                     .qmap_v = h->qv};
    }
}

static const train_adamw opt = {.lr = 1e-2f,
                                .beta1 = 0.9f,
                                .beta2 = 0.999f,
                                .eps = 1e-8f,
                                .weight_decay = 1e-2f,
                                .max_grad_norm = 0.5f};

/* One step of both from the same random gradients: s on its parameters,
 * the hand state on ph. */
static void step_both(cnet_backend *be, adam_state *s, cnet_params *g, by_hand *h, float *ph,
                      int step, uint64_t *seed) {
    float *gh = cm_uniform(g->total, -1, 1, seed), sumsq = 0;
    memcpy(g->block, gh, g->total * sizeof(float));
    be->sum_squares(be, &sumsq, gh, (long)g->total);
    adam_state_step(s, g, &opt, step, &sumsq);
    for (int i = 0; i < NT; i++) {
        const size_t o = g->items[i].offset;
        const long n = (long)sizes[i];
        if (n >= ADAM8_MIN_SIZE)
            cpu_adamw8bit_step(be, ph + o, &h->q[i], gh + o, n, opt.lr, opt.beta1, opt.beta2,
                               opt.eps, opt.weight_decay, step, &sumsq, opt.max_grad_norm);
        else
            cpu_adamw_step(be, ph + o, h->m[i], h->v[i], gh + o, n, opt.lr, opt.beta1, opt.beta2,
                           opt.eps, opt.weight_decay, step, &sumsq, opt.max_grad_norm);
    }
}

static void test_adam_state_8bit(void) {
    cnet_backend be;
    cnet_error err = {0};
    CHECK(cnet_backend_cpu_init(&be, &err) == 0, "%s", err.msg);
    cnet_params p, g, p2;
    adam_state s, s2, f32;
    memset(&s, 0, sizeof s), memset(&s2, 0, sizeof s2), memset(&f32, 0, sizeof f32);
    char dir[256] = "", dir32[300];
    int rc = table(&p, &be, &err) || table(&g, &be, &err) || table(&p2, &be, &err) ||
             adam_state_init(&s, &p, 1, &err) || adam_state_init(&s2, &p2, 1, &err) ||
             adam_state_init(&f32, &p, 0, &err) || tmpdir_make(dir, sizeof dir, "adam_state");
    uint64_t seed = 3;
    by_hand h;
    by_hand_init(&h);
    float *ph = NULL;
    if (!rc) {
        float *init = cm_uniform(p.total, -1, 1, &seed);
        memcpy(p.block, init, p.total * sizeof(float));
        ph = cm_alloc(p.total * sizeof(float));
        memcpy(ph, init, p.total * sizeof(float));
    }
    EXPECT(rc == 0, "setup: %s", err.msg);
    for (int step = 1; step <= 3 && !rc; step++) step_both(&be, &s, &g, &h, ph, step, &seed);
    EXPECT(!rc && memcmp(p.block, ph, p.total * sizeof(float)) == 0,
           "adam_state differs from per-tensor adamw_step / adamw8bit_step");
    const size_t small = 100 + 4095, codes = 4096 + 5000, blocks = 16 + 20;
    const size_t want = 2 * (codes + (blocks + small) * sizeof(float)) + 2 * 256 * sizeof(float);
    EXPECT(!rc && adam_state_bytes(&s) == want && adam_state_bytes(&f32) == 8 * p.total,
           "bytes: 8-bit %zu (want %zu), float32 %zu (want %zu)", adam_state_bytes(&s), want,
           adam_state_bytes(&f32), 8 * p.total);

    /* Save, load into a fresh state on a copy of the parameters; a step
     * with the same gradients gives the same parameters. */
    if (!rc) rc = adam_state_save(&s, dir, &err) || adam_state_load(&s2, dir, &err);
    EXPECT(rc == 0, "save/load: %s", err.msg);
    if (!rc) {
        memcpy(p2.block, p.block, p.total * sizeof(float));
        float *gh = cm_uniform(g.total, -1, 1, &seed), sumsq = 0;
        memcpy(g.block, gh, g.total * sizeof(float));
        be.sum_squares(&be, &sumsq, gh, (long)g.total);
        adam_state_step(&s, &g, &opt, 4, &sumsq);
        adam_state_step(&s2, &g, &opt, 4, &sumsq);
        EXPECT(memcmp(p.block, p2.block, p.total * sizeof(float)) == 0,
               "a step after save + load differs from the uninterrupted one");
    }

    /* The other form's checkpoint names the flag that resumes it. */
    cnet_error e2 = {0};
    EXPECT(!rc && adam_state_load(&f32, dir, &e2) != 0 && strstr(e2.msg, "with --use_8bit_adam"),
           "float32 state loading an 8-bit checkpoint: '%s'", e2.msg);
    snprintf(dir32, sizeof dir32, "%s/f32", dir);
    e2.msg[0] = '\0';
    EXPECT(!rc && mkdir(dir32, 0700) == 0 && !adam_state_save(&f32, dir32, &err) &&
               adam_state_load(&s2, dir32, &e2) != 0 && strstr(e2.msg, "without --use_8bit_adam"),
           "8-bit state loading a float32 checkpoint: '%s'", e2.msg);
    if (dir[0]) tmpdir_remove(dir);
    adam_state_free(&s), adam_state_free(&s2), adam_state_free(&f32);
    params_free(&p), params_free(&g), params_free(&p2);
    cnet_backend_free(&be);
    cm_free_all();
}

int main(int argc, char **argv) {
    harness_init(argc, argv);
    RUN(test_adam_state_8bit);
    return harness_done();
}
