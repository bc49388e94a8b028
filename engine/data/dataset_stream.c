/* The shard stream of the tar and Parquet layouts (see dataset_stream.h):
 * the epoch's shard order walked one shard at a time, wanted samples kept in
 * shuffle_buffer + 1 slots until fetched, and the errors of samples the
 * stream went past. What a shard holds and how it is read is the format's
 * (dataset_stream_ops). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/data/dataset_stream.h"

int dataset_stream_start(dataset *ds, dataset_stream *st, const dataset_stream_ops *ops,
                         uint8_t *want, const char *who, cnet_error *err) {
    int ns = ds->n_shards;
    if (!st) {
        free(want);
        return cnet_fail(err, CNET_ENOMEM, "%s: out of memory", who);
    }
    st->ops = ops;
    st->want = want;
    st->n_slots = ds->opt.shuffle_buffer + 1;
    st->slots = calloc((size_t)st->n_slots, sizeof *st->slots);
    st->first = calloc((size_t)ns + 1, sizeof *st->first);
    st->shard_pos = malloc((size_t)ns * sizeof *st->shard_pos);
    if (!st->slots || !st->first || !st->shard_pos)
        return cnet_fail(err, CNET_ENOMEM, "%s: out of memory", who);
    for (int i = 0; i < st->n_slots; i++) st->slots[i].id = -1;
    for (int64_t i = 0; i < ds->n_entries; i++) st->first[ds->entries[i].shard + 1]++;
    for (int i = 0; i < ns; i++) st->first[i + 1] += st->first[i];
    for (int i = 0; i < ns; i++) st->shard_pos[ds->shard_order[i]] = i;
    st->pos = -1;
    st->returned = -1;
    return 0;
}

void dataset_stream_free(dataset_stream *st) {
    if (st->slots)
        for (int i = 0; i < st->n_slots; i++) free(st->slots[i].buf[0]), free(st->slots[i].buf[1]);
    free(st->slots);
    free(st->want);
    free(st->first);
    free(st->shard_pos);
}

void dataset_stream_release(dataset_stream *st) {
    if (st->returned >= 0) st->slots[st->returned].id = -1, st->returned = -1;
}

dataset_stream_slot *dataset_stream_slot_for(dataset_stream *st, int64_t id) {
    dataset_stream_slot *free_slot = NULL;
    for (int i = 0; i < st->n_slots; i++) {
        if (st->slots[i].id == id) return &st->slots[i];
        if (st->slots[i].id < 0 && !free_slot) free_slot = &st->slots[i];
    }
    if (free_slot)
        *free_slot = (dataset_stream_slot){.id = id,
                                           .buf = {free_slot->buf[0], free_slot->buf[1]},
                                           .cap = {free_slot->cap[0], free_slot->cap[1]}};
    return free_slot;
}

void dataset_stream_break(dataset *ds, dataset_stream *st, const char *msg) {
    snprintf(st->broken_msg, sizeof st->broken_msg, "%s", msg);
    st->broken = 1;
    st->ops->close(ds);
    st->open = 0;
}

void dataset_stream_end_shard(dataset *ds, dataset_stream *st) {
    st->ops->close(ds);
    st->open = 0;
    st->e = st->first[ds->shard_order[st->pos] + 1];
}

/* One step of the stream: opens the next shard, or lets the format take one
 * step in the open one. 1 when every shard is done. */
static int advance(dataset *ds, dataset_stream *st, cnet_error *err) {
    if (st->open) return st->ops->step(ds, err);
    if (st->pos + 1 >= ds->n_shards) return 1;
    int s = ds->shard_order[++st->pos];
    st->broken = 0;
    st->e = st->first[s];
    cnet_error oe;
    if (st->ops->open(ds, s, &oe))
        dataset_stream_break(ds, st, oe.msg);
    else
        st->open = 1;
    return 0;
}

/* Has the stream gone past listing id without loading it? */
static int passed(const dataset *ds, const dataset_stream *st, int64_t id) {
    int sp = st->shard_pos[ds->entries[id].shard];
    return sp < st->pos || (sp == st->pos && (!st->open || st->e > id));
}

int dataset_stream_fetch(dataset *ds, dataset_stream *st, int64_t id, dataset_sample *s,
                         cnet_error *err) {
    dataset_stream_release(st);
    const dataset_entry *e = &ds->entries[id];
    const char *label = ds->pool + e->name, *shard = ds->shards[e->shard];
    for (;;) {
        for (int i = 0; i < st->n_slots; i++) {
            dataset_stream_slot *sl = &st->slots[i];
            if (sl->id != id ||
                (sl->have != (DATASET_SLOT_TARGET | DATASET_SLOT_COND) && !sl->fail))
                continue;
            st->returned = i;
            st->want[id] = 0;
            if (sl->fail) return cnet_fail(err, sl->fail, "%s", sl->msg);
            s->target = sl->buf[0], s->target_len = sl->len[0];
            s->cond = sl->buf[1], s->cond_len = sl->len[1];
            return 0;
        }
        if (passed(ds, st, id)) {
            st->want[id] = 0;
            for (int i = 0; i < st->n_slots; i++)
                if (st->slots[i].id == id) st->slots[i].id = -1;
            return st->broken && st->shard_pos[e->shard] == st->pos
                       ? cnet_fail(err, CNET_EFORMAT, "%s: %s", label, st->broken_msg)
                       : cnet_fail(err, CNET_EFORMAT,
                                   "%s: not found when streaming %s (the "
                                   "shard changed or failed earlier)",
                                   label, shard);
        }
        int rc = advance(ds, st, err);
        if (rc < 0) return rc;
        if (rc == 1)
            return cnet_fail(err, CNET_EFORMAT, "%s: not found when streaming %s", label, shard);
    }
}
