/* The shard stream both sharded layouts read through (dataset_tar.c,
 * dataset_parquet.c): shards visited in the epoch's shard order, and the
 * bytes of wanted samples kept in shuffle_buffer + 1 slots until yielded
 * (dataset_order.c says why that is enough). The per-format part (open a
 * shard, take one step inside it, close it) sits behind dataset_stream_ops.
 * Not for callers outside engine/data. */
#ifndef CNET_DATASET_STREAM_H
#define CNET_DATASET_STREAM_H

#include "engine/data/dataset_impl.h"

/* dataset_stream_slot.have bits. */
enum { DATASET_SLOT_TARGET = 1, DATASET_SLOT_COND = 2 };

typedef struct dataset_stream_slot {
    int64_t id;   /* -1: free */
    uint8_t have; /* DATASET_SLOT_* loaded so far; both: ready */
    int fail;     /* a CNET_E* when the sample could not be read: ready, msg says why */
    char msg[CNET_ERROR_MSG_MAX];
    uint8_t *buf[2]; /* target, conditioning bytes */
    size_t len[2], cap[2];
} dataset_stream_slot;

typedef struct dataset_stream_ops {
    /* Opens shard s (now at position pos); 0, or a CNET_E* with err's
     * message, which becomes the shard's broken message. */
    int (*open)(dataset *ds, int s, cnet_error *err);
    /* One step inside the open shard: load into slots, end the shard
     * (dataset_stream_end_shard) or break it (dataset_stream_break). 0, or a
     * negative CNET_E* (a bug: the slots overflowed). */
    int (*step)(dataset *ds, cnet_error *err);
    /* Frees the open shard's handle (also a half-open one). */
    void (*close)(dataset *ds);
} dataset_stream_ops;

typedef struct dataset_stream {
    const dataset_stream_ops *ops;
    uint8_t *want;  /* [n_entries] ids still to be loaded and yielded */
    int64_t *first; /* [n_shards + 1] listing ids of each shard */
    int *shard_pos; /* [n_shards] position of a shard in shard_order */
    int open;       /* a shard is open at pos */
    int pos;        /* position in shard_order of the shard being read */
    int64_t e;      /* the listing id the format's step is at */
    int broken;     /* the shard at pos failed; broken_msg says why */
    char broken_msg[CNET_ERROR_MSG_MAX];
    dataset_stream_slot *slots;
    int n_slots, returned; /* returned: slot handed out last, -1 none */
} dataset_stream;

/* Prepares a pass over st (zeroed, or NULL when its allocation failed):
 * want[id] = 1 for the ids still to be yielded; st owns want from here
 * (freed here when st is NULL). `who` names the reader in errors. */
int dataset_stream_start(dataset *ds, dataset_stream *st, const dataset_stream_ops *ops,
                         uint8_t *want, const char *who, cnet_error *err);
/* Frees what dataset_stream_start allocated (not st itself, not the shard). */
void dataset_stream_free(dataset_stream *st);
/* Frees the slot handed out by the last fetch. */
void dataset_stream_release(dataset_stream *st);
/* A free slot for id (or id's own, partly loaded); NULL when none is free. */
dataset_stream_slot *dataset_stream_slot_for(dataset_stream *st, int64_t id);
/* The shard at pos failed: close it; its unread samples will say msg. */
void dataset_stream_break(dataset *ds, dataset_stream *st, const char *msg);
/* The shard at pos is read to its end: close it. */
void dataset_stream_end_shard(dataset *ds, dataset_stream *st);
/* Streams forward until listing id is loaded, then points s's bytes at its
 * slot (valid until the next fetch); s->name and s->cond_name are the
 * caller's. Errors name label and the shard. */
int dataset_stream_fetch(dataset *ds, dataset_stream *st, int64_t id, dataset_sample *s,
                         cnet_error *err);

#endif
