/* The host half of a training batch; see train_decode.h. A batch is made in
 * rounds: read the samples still missing (in order, copying their bytes),
 * decode them (in `workers` threads, each taking every workers-th sample),
 * keep the ones that decoded, in order; again until the batch is full or the
 * epoch ends. */
#include "engine/train/train_decode.h"

#include <stdlib.h>
#include <string.h>

#include "engine/core/philox.h"
#include "engine/image/image.h"
#include "engine/image/preprocess.h"

int train_decode_init(train_decode *d, dataset *ds, tokenizer *tok, int B, int resolution,
                      int workers, const train_transforms *tf, cnet_error *err) {
    memset(d, 0, sizeof *d);
    if (workers < 0 || workers > TRAIN_DECODE_WORKERS_MAX)
        return cnet_fail(err, CNET_EINVAL, "dataloader_num_workers %d (supported 0..%d)", workers,
                         TRAIN_DECODE_WORKERS_MAX);
    if (B < 1 || B > TRAIN_MAX_BATCH)
        return cnet_fail(err, CNET_EINVAL, "train: batch size %d (supported 1..%d)", B,
                         TRAIN_MAX_BATCH);
    d->ds = ds, d->tok = tok, d->B = B, d->R = resolution, d->workers = workers, d->tf = *tf;
    d->Nt = tok ? tokenizer_max_length(tok) : 0; /* NULL: no captions (cnet train-vae) */
    d->img = malloc(2 * (size_t)B * resolution * resolution * 3 * sizeof(float));
    d->tokens = malloc(2 * (size_t)B * d->Nt * sizeof(int64_t));
    if (!d->img || !d->tokens) {
        train_decode_free(d);
        return cnet_fail(err, CNET_ENOMEM, "train: out of memory for batches");
    }
    return 0;
}

void train_decode_free(train_decode *d) {
    if (d->in_flight) pthread_join(d->thread, NULL);
    for (int i = 0; i < TRAIN_MAX_BATCH; i++) {
        train_raw *r = &d->raw[i];
        free(r->target), free(r->cond), free(r->name), free(r->cond_name), free(r->caption);
    }
    free(d->img);
    free(d->tokens);
    memset(d, 0, sizeof *d);
}

/* Copies n bytes and a NUL into *buf (grown as needed). */
static int keep(void *buf, size_t *cap, const void *src, size_t n) {
    char **b = buf;
    if (n + 1 > *cap) {
        char *p = realloc(*b, n + 1);
        if (!p) return CNET_ENOMEM;
        *b = p, *cap = n + 1;
    }
    if (n) memcpy(*b, src, n);
    (*b)[n] = 0;
    return 0;
}

static int copy_sample(train_raw *r, const dataset_sample *s) {
    r->id = s->id, r->target_len = s->target_len, r->cond_len = s->cond_len;
    if (keep(&r->target, &r->target_cap, s->target, s->target_len) ||
        keep(&r->cond, &r->cond_cap, s->cond, s->cond_len) ||
        keep(&r->name, &r->name_cap, s->name, strlen(s->name)) ||
        keep(&r->cond_name, &r->cond_name_cap, s->cond_name, strlen(s->cond_name)) ||
        keep(&r->caption, &r->caption_cap, s->caption, strlen(s->caption)))
        return CNET_ENOMEM;
    return 0;
}

/* Decodes and transforms raw sample r into slot i of the batch. */
static int decode_sample(train_decode *d, train_raw *r, int i) {
    const size_t img = (size_t)d->R * d->R * 3, batch = (size_t)d->B * img;
    image_rgb8 target = {0}, cond = {0};
    cnet_error *err = &r->err;
    int rc = image_decode(&target, r->target, r->target_len, r->name, 0, err);
    if (!rc) rc = image_decode(&cond, r->cond, r->cond_len, r->cond_name, 0, err);
    const uint64_t at = d->tf.rng_base + ((uint64_t)d->epoch << 36 | (uint64_t)r->id << 2);
    const preprocess_t2i_draws draws = {.random_crop = d->tf.random_crop,
                                        .flip = d->tf.random_flip &&
                                                philox_u32(d->tf.seed, at + 2) < (1u << 31),
                                        .u_top = philox_u32(d->tf.seed, at),
                                        .u_left = philox_u32(d->tf.seed, at + 1)};
    if (!rc) rc = preprocess_train_t2i(d->img + i * img, &target, d->R, &draws, err);
    if (!rc) rc = preprocess_train(d->img + batch + i * img, &cond, d->R, PREPROCESS_UNIT, err);
    if (!rc && d->tok)
        rc = tokenizer_encode(d->tok, r->caption, strlen(r->caption), d->tokens + (size_t)i * d->Nt,
                              d->tokens + (size_t)(d->B + i) * d->Nt, err);
    image_free(&target);
    image_free(&cond);
    return rc;
}

/* One decode thread's share of a round: samples first + t, first + t + k, ... */
typedef struct decode_share {
    train_decode *d;
    int first, n, t, k;
} decode_share;

static void *decode_run(void *arg) {
    const decode_share *s = arg;
    for (int i = s->first + s->t; i < s->first + s->n; i += s->k)
        s->d->raw[i].rc = decode_sample(s->d, &s->d->raw[i], i);
    return NULL;
}

/* Decodes raw[first .. first + n) into the same slots: in this thread, or
 * in min(workers, n) threads. */
static int decode_round(train_decode *d, int first, int n, cnet_error *err) {
    decode_share share[TRAIN_MAX_BATCH];
    pthread_t th[TRAIN_MAX_BATCH];
    const int k = d->workers < n ? d->workers : n;
    if (k <= 1) {
        decode_run(&(decode_share){d, first, n, 0, 1});
        return 0;
    }
    int started = 0, rc = 0;
    for (; started < k; started++) {
        share[started] = (decode_share){d, first, n, started, k};
        if (pthread_create(&th[started], NULL, decode_run, &share[started]) != 0) {
            rc = cnet_fail(err, CNET_ENOMEM, "train: cannot start a decode thread");
            break;
        }
    }
    for (int t = 0; t < started; t++) pthread_join(th[t], NULL);
    return rc;
}

/* Moves slot from's decoded sample to slot to (to < from). The raw samples
 * swap too, so raw[i] stays slot i's (its caption) and no buffer is shared. */
static void move_slot(train_decode *d, int to, int from) {
    const size_t img = (size_t)d->R * d->R * 3, batch = (size_t)d->B * img;
    train_raw r = d->raw[to];
    d->raw[to] = d->raw[from], d->raw[from] = r;
    for (int half = 0; half < 2; half++) {
        memcpy(d->img + half * batch + to * img, d->img + half * batch + from * img,
               img * sizeof(float));
        int64_t *t = d->tokens + (size_t)half * d->B * d->Nt;
        memcpy(t + (size_t)to * d->Nt, t + (size_t)from * d->Nt, d->Nt * sizeof(int64_t));
    }
}

/* Makes the next batch: reads, decodes and keeps samples until B are kept or
 * the epoch ends. */
static int make_batch(train_decode *d, cnet_error *err) {
    const int64_t size = dataset_size(d->ds);
    dataset_cursor at = dataset_tell(d->ds);
    int rc;
    d->n = 0, d->epoch_end = 0;
    if (at.index >= size) { /* the previous batch ended an epoch */
        dataset_cursor next = {at.epoch + 1, 0};
        if ((rc = dataset_seek(d->ds, next, err))) return rc;
        at = next;
    }
    d->epoch = at.epoch;
    for (;;) {
        int got = d->n; /* slots d->n .. got - 1 read this round */
        while (got < d->B) {
            dataset_cursor c = dataset_tell(d->ds);
            if (c.epoch != at.epoch || c.index >= size) break;
            dataset_sample s;
            rc = dataset_next(d->ds, &s, err);
            if (rc == CNET_ENOMEM) return rc;
            if (rc) { /* unreadable: skipped and counted, as the check would have */
                d->skipped++;
                continue;
            }
            if (copy_sample(&d->raw[got], &s))
                return cnet_fail(err, CNET_ENOMEM, "train: out of memory copying %s", s.name);
            got++;
        }
        if (got == d->n) break; /* the epoch had nothing more */
        if ((rc = decode_round(d, d->n, got - d->n, err))) return rc;
        for (int i = d->n; i < got; i++) {
            train_raw *r = &d->raw[i];
            if (r->rc == CNET_ENOMEM) {
                if (err) *err = r->err;
                return r->rc;
            }
            if (r->rc) {
                d->skipped++;
                continue;
            }
            const int64_t id = r->id; /* move_slot swaps raw[i] away */
            if (i != d->n) move_slot(d, d->n, i);
            d->sample_id[d->n++] = id;
        }
        if (d->n == d->B) break;
    }
    dataset_cursor end = dataset_tell(d->ds); /* (epoch + 1, 0) once an epoch is read */
    d->epoch_end = end.epoch != at.epoch || end.index >= size;
    return 0;
}

static void *make_in_background(void *arg) {
    train_decode *d = arg;
    d->rc = make_batch(d, &d->err);
    return NULL;
}

int train_decode_take(train_decode *d, cnet_error *err) {
    if (d->in_flight) {
        pthread_join(d->thread, NULL);
        d->in_flight = 0;
    }
    if (!d->made) return make_batch(d, err);
    d->made = 0;
    if (d->rc && err) *err = d->err;
    return d->rc;
}

void train_decode_release(train_decode *d) {
    if (d->workers == 0 || d->in_flight) return;
    d->before = dataset_tell(d->ds);
    d->rc = 0;
    d->made = 1;
    if (pthread_create(&d->thread, NULL, make_in_background, d) == 0) {
        d->in_flight = 1;
        return;
    }
    d->made = 0; /* no thread: the next take makes it itself */
}

dataset_cursor train_decode_tell(const train_decode *d) {
    return d->made ? d->before : dataset_tell(d->ds);
}
