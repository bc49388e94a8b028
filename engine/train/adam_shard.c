/* Sharded AdamW state: the cuts, take and gather; see adam_shard.h. */
#include "engine/train/adam_shard.h"

#include <stdlib.h>

void adam_shard_bounds(const cnet_params *params, int use_8bit, int n_ranks, size_t *bounds) {
    const size_t total = params->total;
    bounds[0] = 0, bounds[n_ranks] = total;
    for (int r = 1; r < n_ranks; r++) {
        size_t cut = (size_t)((unsigned long long)total * (unsigned)r / (unsigned)n_ranks);
        for (int i = 0; use_8bit && i < params->n; i++) {
            const cnet_param *q = &params->items[i];
            if (q->numel >= ADAM8_MIN_SIZE && cut > q->offset && cut < q->offset + q->numel)
                cut -= (cut - q->offset) % CNET_ADAM8_BLOCK;
        }
        bounds[r] = cut < bounds[r - 1] ? bounds[r - 1] : cut;
    }
}

static int same_kind(const adam_state *shard, const adam_state *whole, cnet_error *err) {
    if (whole->use_8bit == shard->use_8bit && whole->params->total == shard->params->total &&
        whole->lo == 0 && whole->hi == whole->params->total)
        return 0;
    return cnet_fail(err, CNET_EINVAL,
                     "optimizer shard [%zu, %zu): the whole state is not of the same "
                     "parameters and form",
                     shard->lo, shard->hi);
}

int adam_shard_take(adam_state *shard, const adam_state *whole, cnet_error *err) {
    int rc = same_kind(shard, whole, err);
    if (rc) return rc;
    cnet_backend *be = shard->be;
    if (!shard->use_8bit) {
        const size_t bytes = (shard->hi - shard->lo) * sizeof(float);
        be->copy(be, shard->m, whole->m + shard->lo, bytes);
        be->copy(be, shard->v, whole->v + shard->lo, bytes);
        return 0;
    }
    const adam8_extent *at = &shard->before;
    be->copy(be, shard->codes_m, whole->codes_m + at->n_8bit, shard->n_8bit);
    be->copy(be, shard->codes_v, whole->codes_v + at->n_8bit, shard->n_8bit);
    be->copy(be, shard->absmax_m, whole->absmax_m + at->n_blocks, shard->n_blocks * sizeof(float));
    be->copy(be, shard->absmax_v, whole->absmax_v + at->n_blocks, shard->n_blocks * sizeof(float));
    be->copy(be, shard->small_m, whole->small_m + at->n_small, shard->n_small * sizeof(float));
    be->copy(be, shard->small_v, whole->small_v + at->n_small, shard->n_small * sizeof(float));
    return 0;
}

int adam_shard_gather(dist_comm *c, dist_stage *stage, const adam_state *shard,
                      const size_t *bounds, adam_state *whole, cnet_error *err) {
    int rc = c->rank == 0 ? same_kind(shard, whole, err) : 0;
    if (rc) return rc;
    cnet_backend *be = shard->be;
    if (!shard->use_8bit) {
        if (!(rc = dist_gather_device(c, stage, be, shard->m, whole ? whole->m : NULL,
                                      sizeof(float), bounds, err)))
            rc = dist_gather_device(c, stage, be, shard->v, whole ? whole->v : NULL, sizeof(float),
                                    bounds, err);
        return rc;
    }
    /* the 8-bit arrays: rank r's parts start where [0, bounds[r]) ends */
    const size_t n = (size_t)c->size + 1;
    size_t *cuts = malloc(3 * n * sizeof *cuts);
    if (!cuts) return cnet_fail(err, CNET_ENOMEM, "out of memory");
    size_t *codes = cuts, *blocks = cuts + n, *small = cuts + 2 * n;
    for (int r = 0; r <= c->size; r++) {
        const adam8_extent e = adam8_extent_of(shard->params, 0, bounds[r]);
        codes[r] = e.n_8bit, blocks[r] = e.n_blocks, small[r] = e.n_small;
    }
    const int w = whole != NULL;
    const struct {
        const void *mine;
        void *all;
        size_t elem;
        const size_t *cut;
    } parts[] = {
        {shard->codes_m, w ? whole->codes_m : NULL, 1, codes},
        {shard->codes_v, w ? whole->codes_v : NULL, 1, codes},
        {shard->absmax_m, w ? whole->absmax_m : NULL, sizeof(float), blocks},
        {shard->absmax_v, w ? whole->absmax_v : NULL, sizeof(float), blocks},
        {shard->small_m, w ? whole->small_m : NULL, sizeof(float), small},
        {shard->small_v, w ? whole->small_v : NULL, sizeof(float), small},
    };
    for (size_t k = 0; !rc && k < sizeof parts / sizeof parts[0]; k++)
        rc = dist_gather_device(c, stage, be, parts[k].mine, parts[k].all, parts[k].elem,
                                parts[k].cut, err);
    free(cuts);
    return rc;
}
