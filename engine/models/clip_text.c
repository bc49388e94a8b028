/* CLIPTextModel forward (transformers modeling_clip.py: CLIPTextEmbeddings,
 * CLIPEncoderLayer, CLIPTextTransformer); see clip_text.h. */
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

/* Buffers of one forward, all [B*L, D] except mlp [B*L, I] and the ids. */
size_t clip_text_scratch_bytes(const clip_text_model *m, int B, int L) {
    size_t BL = (size_t)B * L, D = m->hidden, I = m->intermediate;
    size_t floats = BL * D * 6 + BL * I;
    return floats * sizeof(float) + BL * sizeof(int64_t) + 8 * CNET_ARENA_ALIGN;
}

int clip_text_forward(clip_text_model *m, cnet_arena *scratch, float *last_hidden, float *pooled,
                      const int64_t *ids, int B, int L, int clip_skip, cnet_error *err) {
    if (L < 1 || L > m->max_positions)
        return cnet_fail(err, CNET_EINVAL, "text_encoder: %d tokens; the model takes 1..%d", L,
                         m->max_positions);
    if (clip_skip < 0 || clip_skip >= m->n_layers)
        return cnet_fail(err, CNET_EINVAL, "clip_skip %d out of range 0..%d", clip_skip,
                         m->n_layers - 1);
    for (long i = 0; i < (long)B * L; i++)
        if (ids[i] < 0 || ids[i] >= m->vocab)
            return cnet_fail(err, CNET_EINVAL,
                             "text_encoder: token id %lld outside the vocabulary (%d)",
                             (long long)ids[i], m->vocab);

    cnet_backend *be = m->params.be;
    cnet_params *p = &m->params;
    const int D = m->hidden, I = m->intermediate, BL = B * L, H = m->heads;
    size_t mark = cnet_arena_mark(scratch);
    size_t act = (size_t)BL * D * sizeof(float);
    float *h = cnet_arena_alloc(scratch, act, err);
    float *x = cnet_arena_alloc(scratch, act, err);
    float *q = cnet_arena_alloc(scratch, act, err);
    float *k = cnet_arena_alloc(scratch, act, err);
    float *v = cnet_arena_alloc(scratch, act, err);
    float *att = cnet_arena_alloc(scratch, act, err);
    float *mlp = cnet_arena_alloc(scratch, (size_t)BL * I * sizeof(float), err);
    int64_t *ids_dev = cnet_arena_alloc(scratch, (size_t)BL * sizeof(int64_t), err);
    if (!h || !x || !q || !k || !v || !att || !mlp || !ids_dev) {
        cnet_arena_restore(scratch, mark);
        return err ? err->code : CNET_ENOMEM;
    }

    /* Embeddings: h = token_embedding[ids] + position_embedding[0..L-1]
     * (positions 0..L-1 are the table's first L rows, for every prompt). */
    be->upload(be, ids_dev, ids, (size_t)BL * sizeof(int64_t));
    be->embedding_forward(be, h, ids_dev, nn_param(p, m->token_embedding), BL, D);
    for (int b = 0; b < B; b++)
        be->add(be, h + (size_t)b * L * D, h + (size_t)b * L * D,
                nn_param(p, m->position_embedding), (long)L * D);

    const float scale = 1.0f / sqrtf((float)(D / H));
    for (int l = 0; l < m->n_layers - clip_skip; l++) {
        const clip_layer *Ly = &m->layers[l];
        /* h = h + out_proj(attn(ln1(h))) */
        nn_layer_norm_forward(&Ly->ln1, p, x, h, BL);
        nn_linear_forward(&Ly->q, p, q, x, BL);
        nn_linear_forward(&Ly->k, p, k, x, BL);
        nn_linear_forward(&Ly->v, p, v, x, BL);
        be->attention_forward(be, att, NULL, q, k, v, B, L, L, H, D / H, scale, 1);
        nn_linear_forward(&Ly->out, p, x, att, BL);
        be->add(be, h, h, x, (long)BL * D);
        /* h = h + fc2(act(fc1(ln2(h)))) */
        nn_layer_norm_forward(&Ly->ln2, p, x, h, BL);
        nn_linear_forward(&Ly->fc1, p, mlp, x, BL);
        if (m->gelu_exact)
            be->gelu_forward(be, mlp, mlp, (long)BL * I);
        else
            be->quick_gelu_forward(be, mlp, mlp, (long)BL * I);
        nn_linear_forward(&Ly->fc2, p, x, mlp, BL);
        be->add(be, h, h, x, (long)BL * D);
    }
    nn_layer_norm_forward(&m->final_ln, p, last_hidden, h, BL);

    if (pooled) {
        for (int b = 0; b < B; b++) {
            const int64_t *row = ids + (size_t)b * L;
            int at = 0;
            if (m->eos_token_id == 2) { /* transformers' legacy rule: the largest id */
                for (int t = 1; t < L; t++)
                    if (row[t] > row[at]) at = t;
            } else { /* the first EOS; position 0 when there is none */
                for (int t = L - 1; t >= 0; t--)
                    if (row[t] == m->eos_token_id) at = t;
            }
            be->copy(be, pooled + (size_t)b * D, last_hidden + ((size_t)b * L + at) * D,
                     (size_t)D * sizeof(float));
        }
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
