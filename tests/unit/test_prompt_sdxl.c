/* SDXL encode_prompt (engine/pipeline/prompt_sdxl.h) on the fixture's
 * tiny-sdxl, CPU backend: the argument rules of diffusers v0.27.2's
 * encode_prompt that the goldens' cases do not pin down one by one.
 *
 * Truths: encode_prompt's source (prompt_2 None -> prompt; negative None ->
 * "" unless force_zeros_for_empty_prompt, then zeros; negative_2 None ->
 * negative; no negatives without CFG; without text_encoder only
 * text_encoder_2 runs, on prompt) with the encoders' own outputs
 * (clip_text_forward_states, checked against goldens-sdxl) as the values;
 * the goldens themselves are tests/golden/test_golden_sdxl_text.c's. */
#include <limits.h>
#include <math.h>

#include "engine/pipeline/prompt_sdxl.h"
#include "tests/lib/harness.h"

static cnet_backend be;
static tokenizer *tok[2];
static clip_text_model te[2];
static cnet_arena scratch;
static int L, D, P;

enum { N_PROMPTS = 2 };

typedef struct bufs {
    float *embeds, *neg_embeds, *pooled, *neg_pooled;
} bufs;

static void bufs_init(bufs *b, float fill) {
    size_t e = (size_t)N_PROMPTS * L * D, p = (size_t)N_PROMPTS * P;
    b->embeds = malloc(e * sizeof(float)), b->neg_embeds = malloc(e * sizeof(float));
    b->pooled = malloc(p * sizeof(float)), b->neg_pooled = malloc(p * sizeof(float));
    for (size_t i = 0; i < e; i++) b->embeds[i] = b->neg_embeds[i] = fill;
    for (size_t i = 0; i < p; i++) b->pooled[i] = b->neg_pooled[i] = fill;
}

static void bufs_free(bufs *b) {
    free(b->embeds), free(b->neg_embeds), free(b->pooled), free(b->neg_pooled);
}

static int encode(const prompt_sdxl_models *m, const prompt_sdxl_request *r, bufs *b,
                  cnet_error *err) {
    prompt_sdxl_out out = {b->embeds, b->neg_embeds, b->pooled, b->neg_pooled};
    return prompt_sdxl_encode(m, &scratch, r, &out, err);
}

static int same(const float *a, const float *b, size_t n) {
    return memcmp(a, b, n * sizeof *a) == 0;
}

static const char *const prompts[N_PROMPTS] = {"a red circle with a blue background!!",
                                               "xylophone"};
static const char *const others[N_PROMPTS] = {"zebra on paper", ""};

static void test_prompt_sdxl_defaults(void) {
    prompt_sdxl_models m = {tok[0], tok[1], &te[0], &te[1]};
    cnet_error err;
    const size_t e = (size_t)N_PROMPTS * L * D, p = (size_t)N_PROMPTS * P;
    bufs a, b;
    bufs_init(&a, 7), bufs_init(&b, 7);
    /* prompt_2 None is prompt; negative None without force_zeros is "" for
     * both encoders (negative_2 None is the negative). */
    prompt_sdxl_request r = {.n = N_PROMPTS, .prompt = prompts, .cfg = 1};
    static const char *const empty[N_PROMPTS] = {"", ""};
    prompt_sdxl_request r2 = {.n = N_PROMPTS,
                              .prompt = prompts,
                              .prompt_2 = prompts,
                              .negative = empty,
                              .negative_2 = empty,
                              .cfg = 1};
    CHECK(encode(&m, &r, &a, &err) == 0 && encode(&m, &r2, &b, &err) == 0, "%s", err.msg);
    EXPECT(same(a.embeds, b.embeds, e) && same(a.pooled, b.pooled, p), "prompt_2 None != prompt");
    EXPECT(same(a.neg_embeds, b.neg_embeds, e) && same(a.neg_pooled, b.neg_pooled, p),
           "negative None != \"\"");
    /* force_zeros_for_empty_prompt: zeros, and only for None. */
    r.force_zeros_for_empty_prompt = r2.force_zeros_for_empty_prompt = 1;
    CHECK(encode(&m, &r, &a, &err) == 0, "%s", err.msg);
    int zeros = 1;
    for (size_t i = 0; i < e; i++) zeros &= a.neg_embeds[i] == 0;
    for (size_t i = 0; i < p; i++) zeros &= a.neg_pooled[i] == 0;
    EXPECT(zeros, "force_zeros: negatives not zero");
    bufs_free(&a);
    bufs_init(&a, 7);
    CHECK(encode(&m, &r2, &a, &err) == 0, "%s", err.msg);
    EXPECT(same(a.neg_embeds, b.neg_embeds, e), "force_zeros zeroed an explicit \"\"");
    /* Without CFG the negatives are not touched. */
    bufs_free(&a);
    bufs_init(&a, 7);
    r.cfg = 0;
    CHECK(encode(&m, &r, &a, &err) == 0, "%s", err.msg);
    int untouched = a.neg_embeds[0] == 7 && a.neg_embeds[e - 1] == 7 && a.neg_pooled[p - 1] == 7;
    EXPECT(untouched && same(a.embeds, b.embeds, e), "cfg 0: negatives written or prompt changed");
    bufs_free(&a), bufs_free(&b);
}

static void test_prompt_sdxl_second_texts(void) {
    prompt_sdxl_models m = {tok[0], tok[1], &te[0], &te[1]};
    cnet_error err;
    const int D1 = te[0].hidden, D2 = te[1].hidden;
    bufs a, b;
    bufs_init(&a, 7), bufs_init(&b, 7);
    /* prompt_2 changes only text_encoder_2's columns and the pooled output;
     * negative_2 the same for the negatives. */
    prompt_sdxl_request r = {.n = N_PROMPTS, .prompt = prompts, .negative = others, .cfg = 1};
    prompt_sdxl_request r2 = r;
    r2.prompt_2 = others, r2.negative_2 = prompts;
    CHECK(encode(&m, &r, &a, &err) == 0 && encode(&m, &r2, &b, &err) == 0, "%s", err.msg);
    int first_same = 1, second_differs = 0;
    for (int row = 0; row < N_PROMPTS * L; row++) {
        first_same &= same(a.embeds + (size_t)row * D, b.embeds + (size_t)row * D, D1) &&
                      same(a.neg_embeds + (size_t)row * D, b.neg_embeds + (size_t)row * D, D1);
        second_differs |=
            !same(a.embeds + (size_t)row * D + D1, b.embeds + (size_t)row * D + D1, D2);
    }
    EXPECT(first_same, "prompt_2 changed text_encoder's columns");
    EXPECT(second_differs && !same(a.pooled, b.pooled, (size_t)N_PROMPTS * P),
           "prompt_2 did not reach text_encoder_2");
    /* The pooled output of prompt_2 = the pooled negative of run a (the
     * same texts through text_encoder_2). */
    EXPECT(same(b.pooled, a.neg_pooled, (size_t)N_PROMPTS * P), "pooled of prompt_2");
    bufs_free(&a), bufs_free(&b);
}

static void test_prompt_sdxl_refiner_and_errors(void) {
    cnet_error err;
    /* Without text_encoder: text_encoder_2 alone, on prompt (zip with one
     * tokenizer), hidden_states[-2] and text_embeds. */
    prompt_sdxl_models m = {NULL, tok[1], NULL, &te[1]};
    int l, d, pj;
    CHECK(prompt_sdxl_dims(&m, &l, &d, &pj, &err) == 0 && d == te[1].hidden, "%s", err.msg);
    const size_t e = (size_t)N_PROMPTS * L * d, p = (size_t)N_PROMPTS * P;
    float *embeds = malloc(e * sizeof(float)), *pooled = malloc(p * sizeof(float));
    float *want = malloc(e * sizeof(float)), *want_pooled = malloc(p * sizeof(float));
    prompt_sdxl_request r = {.n = N_PROMPTS, .prompt = prompts, .prompt_2 = others};
    prompt_sdxl_out out = {embeds, NULL, pooled, NULL};
    CHECK(prompt_sdxl_encode(&m, &scratch, &r, &out, &err) == 0, "%s", err.msg);
    int64_t *ids = malloc((size_t)N_PROMPTS * L * sizeof *ids),
            *mask = malloc((size_t)L * sizeof *mask);
    for (int i = 0; i < N_PROMPTS; i++)
        CHECK(tokenizer_encode(tok[1], prompts[i], strlen(prompts[i]), ids + (size_t)i * L, mask,
                               &err) == 0,
              "%s", err.msg);
    CHECK(clip_text_forward_states(&te[1], &scratch, want, te[1].n_layers - 1, NULL, want_pooled,
                                   ids, N_PROMPTS, L, &err) == 0,
          "%s", err.msg);
    EXPECT(same(embeds, want, e) && same(pooled, want_pooled, p), "refiner: not te_2 of prompt");
    free(embeds), free(pooled), free(want), free(want_pooled), free(ids), free(mask);

    /* text_encoder_2 without text_projection; clip_skip beyond the layers. */
    prompt_sdxl_models bad = {tok[0], tok[1], &te[0], &te[0]};
    EXPECT(prompt_sdxl_dims(&bad, &l, &d, &pj, &err) == CNET_EINVAL &&
               strstr(err.msg, "text_projection"),
           "no projection: %s", err.msg);
    prompt_sdxl_models ok = {tok[0], tok[1], &te[0], &te[1]};
    bufs b;
    bufs_init(&b, 0);
    prompt_sdxl_request skip = {.n = N_PROMPTS, .prompt = prompts, .clip_skip = te[0].n_layers};
    EXPECT(encode(&ok, &skip, &b, &err) == CNET_EINVAL && strstr(err.msg, "clip_skip"),
           "clip_skip %d: %s", skip.clip_skip, err.msg);
    bufs_free(&b);
}

int main(int argc, char **argv) {
    harness_init(argc, argv);
    static const char *const toks[2] = {"tokenizer", "tokenizer_2"}, *const tes[2] = {
                                                                         "text_encoder",
                                                                         "text_encoder_2"};
    cnet_error err;
    if (cnet_backend_open(&be, "cpu", NULL, 0, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    for (int k = 0; k < 2; k++) {
        char dir[PATH_MAX];
        snprintf(dir, sizeof dir, "%s/tiny-sdxl/%s", harness_fixtures(), toks[k]);
        if (tokenizer_load(&tok[k], dir, &err)) return fprintf(stderr, "%s\n", err.msg), 1;
        snprintf(dir, sizeof dir, "%s/tiny-sdxl/%s", harness_fixtures(), tes[k]);
        if (clip_text_open(&te[k], &be, dir, &err)) return fprintf(stderr, "%s\n", err.msg), 1;
    }
    prompt_sdxl_models m = {tok[0], tok[1], &te[0], &te[1]};
    if (prompt_sdxl_dims(&m, &L, &D, &P, &err) ||
        cnet_arena_init(&scratch, &be, prompt_sdxl_scratch_bytes(&m, N_PROMPTS), "t", &err))
        return fprintf(stderr, "%s\n", err.msg), 1;
    RUN(test_prompt_sdxl_defaults);
    RUN(test_prompt_sdxl_second_texts);
    RUN(test_prompt_sdxl_refiner_and_errors);
    cnet_arena_free(&scratch);
    for (int k = 0; k < 2; k++) tokenizer_free(tok[k]), clip_text_free(&te[k]);
    cnet_backend_free(&be);
    return harness_done();
}
