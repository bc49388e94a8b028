/* CLIP text encoder: hidden_states without the final LayerNorm and
 * CLIPTextModelWithProjection's text_projection (clip_text_forward_states),
 * on the fixture's tiny-sdxl text encoders, CPU backend.
 *
 * Truths, computed here in double from the checkpoint's own tensors:
 * hidden_states[0] = token_embedding[ids] + position_embedding; LayerNorm
 * with final_layer_norm's weights of hidden_states[N - k] equals the SD 1.x
 * path with clip_skip k (clip_text_forward, golden-checked on goldens/); the
 * pooled output is that path's row at the EOS position; text_embeds =
 * text_projection.weight @ pooled (no bias). Plus the config's
 * architectures switch and the refusals. */
#include <limits.h>
#include <math.h>

#include "engine/core/arena.h"
#include "engine/models/clip_text.h"
#include "engine/text/tokenizer.h"
#include "tests/lib/harness.h"

static cnet_backend be;

static void sub(char *buf, const char *leaf) {
    snprintf(buf, PATH_MAX, "%s/tiny-sdxl/%s", harness_fixtures(), leaf);
}

static double max_diff(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - (double)b[i]));
    return m;
}

/* out[M, D] = LayerNorm(x[M, D]) with final_layer_norm's weight and bias. */
static void layer_norm_ref(const clip_text_model *m, float *out, const float *x, int M) {
    const int D = m->hidden;
    const float *w = nn_param(&m->params, m->final_ln.weight),
                *b = nn_param(&m->params, m->final_ln.bias);
    for (int r = 0; r < M; r++) {
        const float *row = x + (size_t)r * D;
        double mean = 0, var = 0;
        for (int i = 0; i < D; i++) mean += row[i];
        mean /= D;
        for (int i = 0; i < D; i++) var += (row[i] - mean) * (row[i] - mean);
        double inv = 1 / sqrt(var / D + m->final_ln.eps);
        for (int i = 0; i < D; i++)
            out[(size_t)r * D + i] = (float)((row[i] - mean) * inv * w[i] + b[i]);
    }
}

static void test_clip_projection_config(void) {
    char dir[PATH_MAX];
    cnet_error err;
    clip_text_model m1, m2;
    sub(dir, "text_encoder");
    CHECK(clip_text_open(&m1, &be, dir, &err) == 0, "%s", err.msg);
    sub(dir, "text_encoder_2");
    CHECK(clip_text_open(&m2, &be, dir, &err) == 0, "%s", err.msg);
    /* text_encoder_2/config.json: CLIPTextModelWithProjection, projection_dim
     * 32, and text_projection.weight [32, 40] in its weights. */
    EXPECT(m1.projection_dim == 0, "CLIPTextModel got a projection (%d)", m1.projection_dim);
    EXPECT(m2.projection_dim == 32 && m2.text_projection.in == m2.hidden &&
               m2.text_projection.out == 32 && m2.text_projection.bias < 0,
           "text_projection %d -> %d, bias %d", m2.text_projection.in, m2.text_projection.out,
           m2.text_projection.bias);
    cnet_arena scratch;
    CHECK(cnet_arena_init(&scratch, &be, clip_text_scratch_bytes(&m1, 1, 77), "t", &err) == 0, "%s",
          err.msg);
    int64_t ids[77] = {0};
    float out[77 * 64], emb[64];
    EXPECT(clip_text_forward_states(&m1, &scratch, out, 1, NULL, emb, ids, 1, 77, &err) ==
                   CNET_EINVAL &&
               strstr(err.msg, "text_projection"),
           "text_embeds of a CLIPTextModel: %s", err.msg);
    EXPECT(clip_text_forward_states(&m1, &scratch, out, m1.n_layers + 1, NULL, NULL, ids, 1, 77,
                                    &err) == CNET_EINVAL &&
               strstr(err.msg, "hidden state"),
           "hidden state N+1: %s", err.msg);
    cnet_arena_free(&scratch);
    clip_text_free(&m1);
    clip_text_free(&m2);
}

static void test_clip_states_and_projection(void) {
    char dir[PATH_MAX];
    cnet_error err;
    clip_text_model m;
    tokenizer *tok;
    sub(dir, "tokenizer_2");
    CHECK(tokenizer_load(&tok, dir, &err) == 0, "%s", err.msg);
    sub(dir, "text_encoder_2");
    CHECK(clip_text_open(&m, &be, dir, &err) == 0, "%s", err.msg);
    enum { B = 2 };
    const int L = tokenizer_max_length(tok), D = m.hidden, N = m.n_layers, P = m.projection_dim;
    const char *texts[B] = {"a red circle with a blue background!!", ""};
    int64_t *ids = malloc((size_t)B * L * sizeof *ids), *mask = malloc((size_t)L * sizeof *mask);
    for (int b = 0; b < B; b++)
        CHECK(tokenizer_encode(tok, texts[b], strlen(texts[b]), ids + (size_t)b * L, mask, &err) ==
                  0,
              "%s", err.msg);
    cnet_arena scratch;
    CHECK(cnet_arena_init(&scratch, &be, clip_text_scratch_bytes(&m, B, L), "t", &err) == 0, "%s",
          err.msg);
    const size_t BLD = (size_t)B * L * D;
    float *hidden = malloc(BLD * sizeof *hidden), *want = malloc(BLD * sizeof *want),
          *normed = malloc(BLD * sizeof *normed), *pooled = malloc((size_t)B * D * sizeof(float)),
          *want_pooled = malloc((size_t)B * D * sizeof(float)),
          *embeds = malloc((size_t)B * P * sizeof(float));

    /* hidden_states[0]: the embeddings. */
    CHECK(clip_text_forward_states(&m, &scratch, hidden, 0, NULL, NULL, ids, B, L, &err) == 0, "%s",
          err.msg);
    const float *tokw = nn_param(&m.params, m.token_embedding),
                *posw = nn_param(&m.params, m.position_embedding);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < L; t++)
            for (int i = 0; i < D; i++)
                want[((size_t)b * L + t) * D + i] =
                    tokw[ids[(size_t)b * L + t] * D + i] + posw[(size_t)t * D + i];
    EXPECT(max_diff(hidden, want, BLD) == 0, "hidden_states[0] off by %g",
           max_diff(hidden, want, BLD));

    /* hidden_states[N - k] + final LayerNorm = the clip_skip k path. */
    for (int k = 0; k < N; k++) {
        CHECK(clip_text_forward_states(&m, &scratch, hidden, N - k, NULL, NULL, ids, B, L, &err) ==
                  0,
              "%s", err.msg);
        CHECK(clip_text_forward(&m, &scratch, want, k ? NULL : want_pooled, ids, B, L, k, &err) ==
                  0,
              "%s", err.msg);
        layer_norm_ref(&m, normed, hidden, B * L);
        EXPECT(max_diff(normed, want, BLD) < 1e-5, "LN(hidden_states[%d]) off by %g", N - k,
               max_diff(normed, want, BLD));
        if (k) EXPECT(max_diff(hidden, want, BLD) > 1e-3, "hidden_states[%d] normalised", N - k);
    }

    /* pooled and text_embeds with hidden_states[-2] in the same run. */
    CHECK(clip_text_forward_states(&m, &scratch, hidden, N - 1, pooled, embeds, ids, B, L, &err) ==
              0,
          "%s", err.msg);
    EXPECT(max_diff(pooled, want_pooled, (size_t)B * D) < 1e-5, "pooled off by %g",
           max_diff(pooled, want_pooled, (size_t)B * D));
    const float *proj = nn_param(&m.params, m.text_projection.weight);
    double worst = 0;
    for (int b = 0; b < B; b++)
        for (int j = 0; j < P; j++) {
            double s = 0;
            for (int i = 0; i < D; i++) s += (double)proj[(size_t)j * D + i] * pooled[b * D + i];
            worst = fmax(worst, fabs(s - embeds[b * P + j]));
        }
    EXPECT(worst < 1e-5, "text_embeds off by %g", worst);
    /* The EOS position: the first maximum of the ids (eos_token_id == 2). */
    for (int b = 0; b < B; b++) {
        const int64_t *row = ids + (size_t)b * L;
        int at = clip_text_eos_index(&m, row, L);
        EXPECT(row[at] == tokenizer_eos_id(tok), "row %d: eos index %d holds id %lld", b, at,
               (long long)row[at]);
        for (int t = 0; t < at; t++) EXPECT(row[t] < row[at], "row %d: a max before %d", b, at);
    }

    cnet_arena_free(&scratch);
    free(ids), free(mask), free(hidden), free(want), free(normed), free(pooled), free(want_pooled),
        free(embeds);
    clip_text_free(&m);
    tokenizer_free(tok);
}

int main(int argc, char **argv) {
    harness_init(argc, argv);
    cnet_error err;
    if (cnet_backend_open(&be, "cpu", NULL, 0, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    RUN(test_clip_projection_config);
    RUN(test_clip_states_and_projection);
    cnet_backend_free(&be);
    return harness_done();
}
