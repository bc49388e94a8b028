/* CLIPTextModel / CLIPTextModelWithProjection forward (transformers
 * modeling_clip.py: CLIPTextEmbeddings, CLIPEncoderLayer, CLIPTextTransformer,
 * CLIPTextModelWithProjection's text_projection); see clip_text.h. */
#include "engine/models/clip_text.h"

#include <limits.h>
#include "engine/config/model_files.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int clip_text_declare(clip_text_model *m, cnet_backend *be, const cnet_clip_text_config *cfg,
                      cnet_error *err) {
    memset(m, 0, sizeof *m);
    params_init(&m->params, be);
    m->n_layers = cfg->num_hidden_layers;
    m->hidden = cfg->hidden_size;
    m->heads = cfg->num_attention_heads;
    m->intermediate = cfg->intermediate_size;
    m->max_positions = cfg->max_position_embeddings;
    m->vocab = cfg->vocab_size;
    m->gelu_exact = cfg->hidden_act == CNET_CLIP_GELU;
    m->eos_token_id = cfg->eos_token_id;
    if (m->heads < 1 || m->hidden % m->heads != 0)
        return cnet_fail(err, CNET_EINVAL, "text_encoder: hidden_size %d not divisible by %d heads",
                         m->hidden, m->heads);
    m->layers = calloc((size_t)(m->n_layers ? m->n_layers : 1), sizeof *m->layers);
    if (!m->layers) return cnet_fail(err, CNET_ENOMEM, "out of memory");

    cnet_params *p = &m->params;
    int D = m->hidden, I = m->intermediate, rc;
    float eps = cfg->layer_norm_eps;
    const int64_t tok[2] = {m->vocab, D}, pos[2] = {m->max_positions, D};
    if ((m->token_embedding = params_add(p, "text_model.embeddings.token_embedding.weight", 2, tok,
                                         PARAM_PLAIN, err)) < 0)
        return m->token_embedding;
    if ((m->position_embedding = params_add(p, "text_model.embeddings.position_embedding.weight", 2,
                                            pos, PARAM_PLAIN, err)) < 0)
        return m->position_embedding;
    /* A buffer (not a parameter) that older checkpoints carry. */
    if ((rc = params_allow_extra(p, "text_model.embeddings.position_ids", err))) return rc;
    for (int l = 0; l < m->n_layers; l++) {
        char pre[NN_NAME_BUF], name[NN_NAME_BUF];
        clip_layer *L = &m->layers[l];
        snprintf(pre, sizeof pre, "text_model.encoder.layers.%d", l);
        if ((rc = nn_layer_norm_declare(&L->ln1, p, nn_sub(name, pre, "layer_norm1"), D, eps,
                                        err)) ||
            (rc = nn_linear_declare(&L->q, p, nn_sub(name, pre, "self_attn.q_proj"), D, D, 1,
                                    err)) ||
            (rc = nn_linear_declare(&L->k, p, nn_sub(name, pre, "self_attn.k_proj"), D, D, 1,
                                    err)) ||
            (rc = nn_linear_declare(&L->v, p, nn_sub(name, pre, "self_attn.v_proj"), D, D, 1,
                                    err)) ||
            (rc = nn_linear_declare(&L->out, p, nn_sub(name, pre, "self_attn.out_proj"), D, D, 1,
                                    err)) ||
            (rc = nn_layer_norm_declare(&L->ln2, p, nn_sub(name, pre, "layer_norm2"), D, eps,
                                        err)) ||
            (rc = nn_linear_declare(&L->fc1, p, nn_sub(name, pre, "mlp.fc1"), D, I, 1, err)) ||
            (rc = nn_linear_declare(&L->fc2, p, nn_sub(name, pre, "mlp.fc2"), I, D, 1, err)))
            return rc;
    }
    if ((rc = nn_layer_norm_declare(&m->final_ln, p, "text_model.final_layer_norm", D, eps, err)))
        return rc;
    if (cfg->with_projection) {
        m->projection_dim = cfg->projection_dim;
        if ((rc = nn_linear_declare(&m->text_projection, p, "text_projection", D, m->projection_dim,
                                    0, err)))
            return rc;
    }
    return 0;
}

int clip_text_init(clip_text_model *m, cnet_backend *be, const cnet_clip_text_config *cfg,
                   cnet_error *err) {
    int rc = clip_text_declare(m, be, cfg, err);
    return rc ? rc : params_alloc(&m->params, err);
}

void clip_text_free(clip_text_model *m) {
    params_free(&m->params);
    free(m->layers);
    memset(m, 0, sizeof *m);
}

/* Loads text_encoder weights (model.safetensors or a sharded index). */
static int clip_text_load(clip_text_model *m, const char *path, cnet_error *err) {
    return params_load(&m->params, path, err);
}

/* Buffers of one forward: h, x, q, k, v, att [B*L, D], mlp [B*L, I], the
 * ids, and the pooled rows [B, D] twice (gathered, normalised). */
size_t clip_text_scratch_bytes(const clip_text_model *m, int B, int L) {
    size_t BL = (size_t)B * L, D = m->hidden, I = m->intermediate;
    size_t floats = BL * D * 6 + BL * I + 2 * (size_t)B * D;
    return floats * sizeof(float) + BL * sizeof(int64_t) + 10 * CNET_ARENA_ALIGN;
}

int clip_text_eos_index(const clip_text_model *m, const int64_t *ids, int L) {
    int at = 0;
    if (m->eos_token_id == 2) { /* transformers' legacy rule: the largest id */
        for (int t = 1; t < L; t++)
            if (ids[t] > ids[at]) at = t;
    } else { /* the first EOS; position 0 when there is none */
        for (int t = L - 1; t >= 0; t--)
            if (ids[t] == m->eos_token_id) at = t;
    }
    return at;
}

/* One forward's activations, from the scratch arena. */
typedef struct clip_acts {
    float *h, *x, *q, *k, *v, *att; /* [B*L, D] */
    float *mlp;                     /* [B*L, I] */
    int64_t *ids;                   /* [B*L] device */
} clip_acts;

static int check_ids(const clip_text_model *m, const int64_t *ids, int B, int L, cnet_error *err) {
    if (B < 1 || L < 1 || L > m->max_positions)
        return cnet_fail(err, CNET_EINVAL,
                         "text_encoder: %d prompts of %d tokens; the model takes 1..%d tokens", B,
                         L, m->max_positions);
    for (long i = 0; i < (long)B * L; i++)
        if (ids[i] < 0 || ids[i] >= m->vocab)
            return cnet_fail(err, CNET_EINVAL,
                             "text_encoder: token id %lld outside the vocabulary (%d)",
                             (long long)ids[i], m->vocab);
    return 0;
}

static int acts_alloc(clip_acts *a, const clip_text_model *m, cnet_arena *scratch, int BL,
                      cnet_error *err) {
    size_t act = (size_t)BL * m->hidden * sizeof(float);
    float **bufs[] = {&a->h, &a->x, &a->q, &a->k, &a->v, &a->att};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (!(*bufs[i] = cnet_arena_alloc(scratch, act, err))) return err ? err->code : CNET_ENOMEM;
    a->mlp = cnet_arena_alloc(scratch, (size_t)BL * m->intermediate * sizeof(float), err);
    a->ids = a->mlp ? cnet_arena_alloc(scratch, (size_t)BL * sizeof(int64_t), err) : NULL;
    return a->ids ? 0 : (err ? err->code : CNET_ENOMEM);
}

/* a->h = token_embedding[ids] + position_embedding[0..L-1] (positions
 * 0..L-1 are the table's first L rows, for every prompt). */
static void embed(clip_text_model *m, clip_acts *a, const int64_t *ids, int B, int L) {
    cnet_backend *be = m->params.be;
    const cnet_params *p = &m->params;
    const int D = m->hidden, BL = B * L;
    be->upload(be, a->ids, ids, (size_t)BL * sizeof(int64_t));
    be->embedding_forward(be, a->h, a->ids, nn_param(p, m->token_embedding), BL, D);
    for (int b = 0; b < B; b++)
        be->add(be, a->h + (size_t)b * L * D, a->h + (size_t)b * L * D,
                nn_param(p, m->position_embedding), (long)L * D);
}

/* a->h = layer l (a->h): CLIPEncoderLayer. */
static void layer_forward(clip_text_model *m, int l, clip_acts *a, int B, int L) {
    cnet_backend *be = m->params.be;
    const cnet_params *p = &m->params;
    const int D = m->hidden, I = m->intermediate, BL = B * L, H = m->heads;
    const float scale = 1.0f / sqrtf((float)(D / H));
    const clip_layer *Ly = &m->layers[l];
    /* h = h + out_proj(attn(ln1(h))) */
    nn_layer_norm_forward(&Ly->ln1, p, a->x, a->h, BL);
    nn_linear_forward(&Ly->q, p, a->q, a->x, BL);
    nn_linear_forward(&Ly->k, p, a->k, a->x, BL);
    nn_linear_forward(&Ly->v, p, a->v, a->x, BL);
    be->attention_forward(be, a->att, NULL, a->q, a->k, a->v, B, L, L, H, D / H, scale, 1);
    nn_linear_forward(&Ly->out, p, a->x, a->att, BL);
    be->add(be, a->h, a->h, a->x, (long)BL * D);
    /* h = h + fc2(act(fc1(ln2(h)))) */
    nn_layer_norm_forward(&Ly->ln2, p, a->x, a->h, BL);
    nn_linear_forward(&Ly->fc1, p, a->mlp, a->x, BL);
    if (m->gelu_exact)
        be->gelu_forward(be, a->mlp, a->mlp, (long)BL * I);
    else
        be->quick_gelu_forward(be, a->mlp, a->mlp, (long)BL * I);
    nn_linear_forward(&Ly->fc2, p, a->x, a->mlp, BL);
    be->add(be, a->h, a->h, a->x, (long)BL * D);
}

/* out [B, D]: rows[b, eos_index(ids[b])] of rows [B, L, D]. */
static void gather_eos(const clip_text_model *m, float *out, const float *rows, const int64_t *ids,
                       int B, int L) {
    cnet_backend *be = m->params.be;
    const int D = m->hidden;
    for (int b = 0; b < B; b++) {
        int at = clip_text_eos_index(m, ids + (size_t)b * L, L);
        be->copy(be, out + (size_t)b * D, rows + ((size_t)b * L + at) * D,
                 (size_t)D * sizeof(float));
    }
}

int clip_text_forward(clip_text_model *m, cnet_arena *scratch, float *last_hidden, float *pooled,
                      const int64_t *ids, int B, int L, int clip_skip, cnet_error *err) {
    int rc = check_ids(m, ids, B, L, err);
    if (rc) return rc;
    if (clip_skip < 0 || clip_skip >= m->n_layers)
        return cnet_fail(err, CNET_EINVAL, "clip_skip %d out of range 0..%d", clip_skip,
                         m->n_layers - 1);
    size_t mark = cnet_arena_mark(scratch);
    clip_acts a;
    if ((rc = acts_alloc(&a, m, scratch, B * L, err))) {
        cnet_arena_restore(scratch, mark);
        return rc;
    }
    embed(m, &a, ids, B, L);
    for (int l = 0; l < m->n_layers - clip_skip; l++) layer_forward(m, l, &a, B, L);
    nn_layer_norm_forward(&m->final_ln, &m->params, last_hidden, a.h, B * L);
    if (pooled) gather_eos(m, pooled, last_hidden, ids, B, L);
    cnet_arena_restore(scratch, mark);
    return 0;
}

int clip_text_forward_states(clip_text_model *m, cnet_arena *scratch, float *hidden,
                             int hidden_index, float *pooled, float *text_embeds,
                             const int64_t *ids, int B, int L, cnet_error *err) {
    int rc = check_ids(m, ids, B, L, err);
    if (rc) return rc;
    if (hidden_index < 0 || hidden_index > m->n_layers)
        return cnet_fail(err, CNET_EINVAL,
                         "text_encoder: hidden state %d asked for; the model has 0..%d",
                         hidden_index, m->n_layers);
    if (text_embeds && !m->projection_dim)
        return cnet_fail(err, CNET_EINVAL,
                         "text_encoder: text_embeds asked for, but the model has no "
                         "text_projection (config architectures is not "
                         "CLIPTextModelWithProjection)");
    cnet_backend *be = m->params.be;
    const int D = m->hidden, BL = B * L;
    const int pool = pooled || text_embeds;
    const int n_run = pool ? m->n_layers : hidden ? hidden_index : 0;
    size_t mark = cnet_arena_mark(scratch);
    clip_acts a;
    float *rows = NULL, *normed = pooled;
    rc = acts_alloc(&a, m, scratch, BL, err);
    if (!rc && pool)
        rc = (rows = cnet_arena_alloc(scratch, (size_t)B * D * sizeof(float), err))
                 ? 0
                 : (err ? err->code : CNET_ENOMEM);
    if (!rc && pool && !normed)
        rc = (normed = cnet_arena_alloc(scratch, (size_t)B * D * sizeof(float), err))
                 ? 0
                 : (err ? err->code : CNET_ENOMEM);
    if (rc) {
        cnet_arena_restore(scratch, mark);
        return rc;
    }
    embed(m, &a, ids, B, L);
    for (int l = 0; l <= n_run; l++) {
        if (hidden && l == hidden_index) be->copy(be, hidden, a.h, (size_t)BL * D * sizeof(float));
        if (l < n_run) layer_forward(m, l, &a, B, L);
    }
    if (pool) {
        /* LayerNorm is per row: normalising the gathered EOS rows equals
         * gathering from final_layer_norm(last_hidden_state). */
        gather_eos(m, rows, a.h, ids, B, L);
        nn_layer_norm_forward(&m->final_ln, &m->params, normed, rows, B);
        if (text_embeds) nn_linear_forward(&m->text_projection, &m->params, text_embeds, normed, B);
    }
    cnet_arena_restore(scratch, mark);
    return 0;
}

int clip_text_open(clip_text_model *m, cnet_backend *be, const char *dir, cnet_error *err) {
    char config[PATH_MAX], weights[PATH_MAX];
    cnet_clip_text_config cfg;
    int rc = model_component_files(config, weights, PATH_MAX, dir, err);
    memset(m, 0, sizeof *m);
    if (!rc) rc = cnet_clip_text_config_load(&cfg, config, err);
    if (!rc && !(rc = clip_text_init(m, be, &cfg, err))) rc = clip_text_load(m, weights, err);
    if (rc) clip_text_free(m);
    return rc;
}
