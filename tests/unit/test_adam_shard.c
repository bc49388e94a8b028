/* ZeRO's sharded AdamW state (engine/train/adam_shard.c and the shard form
 * of engine/train/adam_state.c) on the CPU backend, in one process (the
 * collectives on 2 ranks: tests/integration/train_mpi_test.sh). Tensors on
 * both sides of bnb's min_8bit_size, two with partial last blocks, cut into
 * 3 shards:
 * - the cuts cover the block in order, 8-bit tensors only at quantisation
 *   block starts, each shard within one block of total / 3 (float32: exact);
 * - every shard holds only its part: its bytes are those of its range
 *   (counted here per tensor) and the shards' add up to the whole state's
 *   (plus one copy of the 8-bit maps each);
 * - three steps of the 3 shards (each on its part of a copy of the
 *   parameters) equal the whole state's steps bit for bit (the same
 *   element-wise float32 math), float32 and 8-bit;
 * - shards taken from the whole state (adam_shard_take, as a resume does)
 *   and a whole state gathered from a one-rank shard (adam_shard_gather)
 *   continue bit for bit;
 * - a cut inside an 8-bit block and saving a shard are refused. */
#include <string.h>

#include "engine/train/adam_shard.h"
#include "tests/lib/harness.h"
#include "tests/lib/lib_casemem.h"

enum { NT = 6, NR = 3 };
static const int64_t sizes[NT] = {100, 4095, 4096, 5000, 9000, 300};

static int table(cnet_params *p, cnet_backend *be, cnet_error *err) {
    params_init(p, be);
    for (int i = 0; i < NT; i++) {
        char name[32];
        snprintf(name, sizeof name, "layer%d.weight", i);
        if (params_add(p, name, 1, &sizes[i], PARAM_PLAIN, err) < 0) return -1;
    }
    return params_alloc(p, err);
}

static const train_adamw opt = {.lr = 1e-2f,
                                .beta1 = 0.9f,
                                .beta2 = 0.999f,
                                .eps = 1e-8f,
                                .weight_decay = 1e-2f,
                                .max_grad_norm = 0.5f};

/* One step of the whole state w (on its parameters) and of the shards sh
 * (on theirs) from the same gradients and the whole sum of squares. */
static void step_all(cnet_backend *be, adam_state *w, adam_state *sh, int n_sh, cnet_params *g,
                     int step, uint64_t *seed) {
    float *gh = cm_uniform(g->total, -1, 1, seed), sumsq = 0;
    memcpy(g->block, gh, g->total * sizeof(float));
    be->sum_squares(be, &sumsq, gh, (long)g->total);
    adam_state_step(w, g, &opt, step, &sumsq);
    for (int r = 0; r < n_sh; r++) adam_state_step(&sh[r], g, &opt, step, &sumsq);
}

static void check_cuts(const cnet_params *p, int use_8bit, const size_t *b) {
    int ok = b[0] == 0 && b[NR] == p->total;
    for (int r = 0; r < NR; r++) {
        const size_t ideal = p->total * (size_t)(r + 1) / NR;
        ok &= b[r] <= b[r + 1] && b[r + 1] <= ideal &&
              ideal - b[r + 1] < (use_8bit ? (size_t)CNET_ADAM8_BLOCK : 1);
        for (int i = 0; use_8bit && i < p->n; i++) {
            const cnet_param *q = &p->items[i];
            if (q->numel >= ADAM8_MIN_SIZE && b[r] > q->offset && b[r] < q->offset + q->numel)
                ok &= (b[r] - q->offset) % CNET_ADAM8_BLOCK == 0;
        }
    }
    EXPECT(ok, "%s cuts %zu %zu %zu %zu of %zu", use_8bit ? "8-bit" : "float32", b[0], b[1], b[2],
           b[3], p->total);
}

static void test_form(int use_8bit) {
    cnet_backend be;
    cnet_error err = {0};
    CHECK(cnet_backend_cpu_init(&be, &err) == 0, "%s", err.msg);
    cnet_params p, q, g;
    adam_state w, sh[NR], took[NR], one, whole2;
    memset(&w, 0, sizeof w), memset(sh, 0, sizeof sh), memset(took, 0, sizeof took);
    memset(&one, 0, sizeof one), memset(&whole2, 0, sizeof whole2);
    size_t b[NR + 1];
    int rc = table(&p, &be, &err) || table(&q, &be, &err) || table(&g, &be, &err) ||
             adam_state_init(&w, &p, use_8bit, &err);
    if (!rc) adam_shard_bounds(&p, use_8bit, NR, b);
    for (int r = 0; r < NR && !rc; r++)
        rc = adam_state_init_shard(&sh[r], &q, use_8bit, b[r], b[r + 1], &err) ||
             adam_state_init_shard(&took[r], &q, use_8bit, b[r], b[r + 1], &err);
    CHECK(rc == 0, "setup: %s", err.msg);
    check_cuts(&p, use_8bit, b);
    uint64_t seed = 11;
    float *init = cm_uniform(p.total, -1, 1, &seed);
    memcpy(p.block, init, p.total * sizeof(float));
    memcpy(q.block, init, p.total * sizeof(float));

    /* each shard's bytes, counted here from its range: float32 m and v
     * (8 bytes an element), or 2 code bytes an element and 8 per block of
     * an 8-bit tensor, 8 an element of a small one, plus the maps */
    const size_t maps = use_8bit ? 2 * ADAM8_MAP_SIZE * sizeof(float) : 0;
    size_t sum = 0;
    int each = 1;
    for (int r = 0; r < NR; r++) {
        size_t want = use_8bit ? maps : 8 * (b[r + 1] - b[r]);
        for (int i = 0; use_8bit && i < p.n; i++) {
            const cnet_param *t = &p.items[i];
            const size_t lo = b[r] > t->offset ? b[r] : t->offset;
            const size_t hi = b[r + 1] < t->offset + t->numel ? b[r + 1] : t->offset + t->numel;
            const size_t len = hi > lo ? hi - lo : 0;
            want += t->numel >= ADAM8_MIN_SIZE ? 2 * len + 8 * ((len + 255) / 256) : 8 * len;
        }
        each &= adam_state_bytes(&sh[r]) == want;
        sum += adam_state_bytes(&sh[r]) - maps;
    }
    EXPECT(each && sum == adam_state_bytes(&w) - maps,
           "shard bytes: sum %zu, whole %zu, each its range's: %d", sum,
           adam_state_bytes(&w) - maps, each);

    for (int step = 1; step <= 3; step++) step_all(&be, &w, sh, NR, &g, step, &seed);
    EXPECT(memcmp(p.block, q.block, p.total * sizeof(float)) == 0,
           "%s: 3 shards' steps differ from the whole state's", use_8bit ? "8-bit" : "float32");

    /* resume: shards taken from the whole state continue as it does */
    for (int r = 0; r < NR && !rc; r++) rc = adam_shard_take(&took[r], &w, &err);
    CHECK(rc == 0, "take: %s", err.msg);
    step_all(&be, &w, took, NR, &g, 4, &seed);
    EXPECT(memcmp(p.block, q.block, p.total * sizeof(float)) == 0,
           "%s: shards taken from the whole state differ after a step",
           use_8bit ? "8-bit" : "float32");

    /* save: a whole state gathered from one rank's (whole-range) shard */
    dist_comm solo = {.rank = 0, .size = 1};
    dist_stage stage = {0};
    const size_t all[2] = {0, p.total};
    rc = adam_state_init_shard(&one, &q, use_8bit, 0, q.total, &err) ||
         adam_shard_take(&one, &w, &err) || adam_state_init(&whole2, &q, use_8bit, &err) ||
         adam_shard_gather(&solo, &stage, &one, all, &whole2, &err);
    CHECK(rc == 0, "gather: %s", err.msg);
    memcpy(q.block, p.block, p.total * sizeof(float));
    adam_state *pair = &whole2;
    step_all(&be, &w, pair, 1, &g, 5, &seed);
    EXPECT(memcmp(p.block, q.block, p.total * sizeof(float)) == 0,
           "%s: the gathered whole state differs after a step", use_8bit ? "8-bit" : "float32");

    cnet_error e2 = {0};
    EXPECT(adam_state_save(&sh[1], "/nonexistent", &e2) == CNET_EINVAL &&
               strstr(e2.msg, "only whole"),
           "saving a shard: '%s'", e2.msg);
    if (use_8bit) {
        adam_state bad;
        const size_t inside = p.items[3].offset + 1; /* inside layer3's first block */
        e2.msg[0] = '\0';
        EXPECT(adam_state_init_shard(&bad, &p, 1, inside, p.total, &e2) == CNET_EINVAL &&
                   strstr(e2.msg, "8-bit block"),
               "a cut inside an 8-bit block: '%s'", e2.msg);
        adam_state_free(&bad);
    }
    for (int r = 0; r < NR; r++) adam_state_free(&sh[r]), adam_state_free(&took[r]);
    adam_state_free(&w), adam_state_free(&one), adam_state_free(&whole2);
    dist_stage_free(&stage);
    params_free(&p), params_free(&q), params_free(&g);
    cnet_backend_free(&be);
    cm_free_all();
}

static void test_adam_shard_float32(void) { test_form(0); }
static void test_adam_shard_8bit(void) { test_form(1); }

int main(int argc, char **argv) {
    harness_init(argc, argv);
    RUN(test_adam_shard_float32);
    RUN(test_adam_shard_8bit);
    return harness_done();
}
