/* engine/train/train_decode.h against a reference written here: the dataset
 * read one sample after another, each decoded and transformed, the ones
 * that decode grouped into batches of B per epoch (what train_controlnet.py's
 * loop gets from a DataLoader). With 0, 1 and 3 decode threads (prefetch on)
 * every batch must hold the same samples, pixels and tokens, the training
 * position must be the reference's after each batch, and the unreadable
 * samples (corrupted after the dataset was opened, so training meets them)
 * are skipped and counted. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/data/dataset.h"
#include "engine/image/image.h"
#include "engine/image/preprocess.h"
#include "engine/text/tokenizer.h"
#include "engine/train/train_decode.h"
#include "tests/lib/harness.h"
#include "tests/lib/lib_fs.h"

#define N_SAMPLES 11
#define SIZE 16
#define B 4
#define EPOCHS 3

static char tmp[PATH_MAX];
static tokenizer *tok;

/* The reference: one sample decoded into img (pixels, then conditioning)
 * and tokens (ids, then mask); 0 when it decodes. */
static int reference_sample(const dataset_sample *s, float *img, int64_t *tokens, int Nt) {
    const size_t n = (size_t)SIZE * SIZE * 3;
    image_rgb8 a = {0}, c = {0};
    int rc = image_decode(&a, s->target, s->target_len, s->name, 0, NULL);
    if (!rc) rc = image_decode(&c, s->cond, s->cond_len, s->cond_name, 0, NULL);
    if (!rc) rc = preprocess_train(img, &a, SIZE, PREPROCESS_SIGNED, NULL);
    if (!rc) rc = preprocess_train(img + n, &c, SIZE, PREPROCESS_UNIT, NULL);
    if (!rc) rc = tokenizer_encode(tok, s->caption, strlen(s->caption), tokens, tokens + Nt, NULL);
    image_free(&a);
    image_free(&c);
    return rc;
}

static int open_data(dataset *ds) {
    dataset_options o = {.seed = 7};
    return dataset_open(ds, tmp, &o, NULL) || dataset_seek(ds, (dataset_cursor){0, 0}, NULL);
}

/* The reference batches of EPOCHS epochs. */
typedef struct ref_batch {
    int n, epoch_end;
    int64_t ids[B];
    float *img;      /* [B, 2, img] */
    int64_t *tokens; /* [B, 2, Nt] */
    char *captions[B];
    dataset_cursor after;
} ref_batch;

#define REF_MAX (EPOCHS * (N_SAMPLES / B + 2))
/* the ControlNet scripts' CenterCrop, as the reference loop does */
static const train_transforms no_tf = {0};
static ref_batch ref[REF_MAX];
static int n_ref, ref_skipped, Nt;

static int reference_batches(void) {
    dataset ds;
    if (open_data(&ds)) return -1;
    const size_t img = (size_t)SIZE * SIZE * 3;
    const int64_t size = dataset_size(&ds);
    for (int epoch = 0; epoch < EPOCHS; epoch++) {
        int end = 0;
        while (!end && n_ref < REF_MAX) {
            ref_batch *r = &ref[n_ref++];
            r->img = malloc(B * 2 * img * sizeof(float));
            r->tokens = malloc(B * 2 * (size_t)Nt * sizeof(int64_t));
            if (!r->img || !r->tokens) return -1;
            while (r->n < B) {
                dataset_cursor c = dataset_tell(&ds);
                if (c.epoch != epoch || c.index >= size) break;
                dataset_sample s;
                if (dataset_next(&ds, &s, NULL) ||
                    reference_sample(&s, r->img + r->n * 2 * img, r->tokens + (size_t)r->n * 2 * Nt,
                                     Nt)) {
                    ref_skipped++;
                    continue;
                }
                if (!(r->captions[r->n] = strdup(s.caption))) return -1;
                r->ids[r->n++] = s.id;
            }
            r->after = dataset_tell(&ds);
            end = r->epoch_end = r->after.epoch != epoch || r->after.index >= size;
        }
    }
    dataset_free(&ds);
    return 0;
}

static void check_workers(int workers) {
    dataset ds;
    train_decode d;
    cnet_error err = {0};
    CHECK(!open_data(&ds), "opening %s", tmp);
    CHECK(!train_decode_init(&d, &ds, tok, B, SIZE, workers, &no_tf, &err), "%s", err.msg);
    const size_t img = (size_t)SIZE * SIZE * 3, half = (size_t)B * img;
    int bad = 0;
    for (int k = 0; k < n_ref && !bad; k++) {
        const ref_batch *r = &ref[k];
        int rc = train_decode_take(&d, &err);
        EXPECT(!rc, "batch %d: %s", k, err.msg);
        EXPECT(d.n == r->n && d.epoch_end == r->epoch_end, "batch %d: n %d end %d, want %d %d", k,
               d.n, d.epoch_end, r->n, r->epoch_end);
        bad |= rc || d.n != r->n;
        for (int i = 0; i < r->n && !bad; i++) {
            const float *want = r->img + i * 2 * img;
            const int64_t *want_tok = r->tokens + (size_t)i * 2 * Nt;
            bad |= d.sample_id[i] != r->ids[i] ||
                   memcmp(d.img + i * img, want, img * sizeof(float)) ||
                   memcmp(d.img + half + i * img, want + img, img * sizeof(float)) ||
                   memcmp(d.tokens + (size_t)i * Nt, want_tok, Nt * sizeof(int64_t)) ||
                   memcmp(d.tokens + (size_t)(B + i) * Nt, want_tok + Nt, Nt * sizeof(int64_t)) ||
                   strcmp(d.raw[i].caption, r->captions[i]); /* SDXL encodes the text */
            EXPECT(!bad,
                   "batch %d sample %d (id %lld, want %lld): pixels, tokens or caption differ", k,
                   i, (long long)d.sample_id[i], (long long)r->ids[i]);
        }
        train_decode_release(&d);   /* with workers: the next batch starts now */
        if (workers) usleep(20000); /* and has read ahead by now (a step's time) */
        dataset_cursor at = train_decode_tell(&d);
        EXPECT(at.epoch == r->after.epoch && at.index == r->after.index,
               "batch %d: position (%lld, %lld), want (%lld, %lld)", k, (long long)at.epoch,
               (long long)at.index, (long long)r->after.epoch, (long long)r->after.index);
        bad |= at.epoch != r->after.epoch || at.index != r->after.index;
    }
    train_decode_free(&d); /* waits for the batch read ahead */
    dataset_free(&ds);
}

static void test_sequential(void) { check_workers(0); }
static void test_one_worker(void) { check_workers(1); }
static void test_three_workers(void) { check_workers(3); }

/* Skips counted up to the last batch taken (before its release, so not the
 * batch read ahead). */
static void test_skipped_counted(void) {
    dataset ds;
    train_decode d;
    cnet_error err = {0};
    CHECK(!open_data(&ds), "opening %s", tmp);
    CHECK(!train_decode_init(&d, &ds, tok, B, SIZE, 2, &no_tf, &err), "%s", err.msg);
    int64_t skipped = 0;
    for (int k = 0; k < n_ref; k++) {
        if (train_decode_take(&d, &err)) break;
        skipped = d.skipped;
        train_decode_release(&d);
    }
    train_decode_free(&d);
    dataset_free(&ds);
    EXPECT(skipped == ref_skipped && ref_skipped == 2 * EPOCHS, "skipped %lld, want %d",
           (long long)skipped, ref_skipped);
}

static void test_limits(void) {
    dataset ds;
    train_decode d;
    cnet_error err = {0};
    CHECK(!open_data(&ds), "opening %s", tmp);
    EXPECT(train_decode_init(&d, &ds, tok, B, SIZE, TRAIN_DECODE_WORKERS_MAX + 1, &no_tf, &err) ==
                   CNET_EINVAL &&
               strstr(err.msg, "dataloader_num_workers"),
           "%s", err.msg);
    dataset_free(&ds);
}

int main(int argc, char **argv) {
    harness_init(argc, argv);
    char dir[PATH_MAX];
    cnet_error err = {0};
    snprintf(dir, sizeof dir, "%s/tiny-sd/tokenizer", harness_fixtures());
    if (tmpdir_make(tmp, sizeof tmp, "cnet-decode") ||
        dataset_make_fill(tmp, N_SAMPLES, SIZE, 3, &err) || tokenizer_load(&tok, dir, &err)) {
        fprintf(stderr, "setup: %s\n", err.msg);
        return 1;
    }
    /* two unreadable samples: a target and a conditioning image */
    char bad[PATH_MAX + 40];
    const char *broken[] = {"images/00003.png", "conditioning_images/00007.png"};
    for (int i = 0; i < 2; i++) {
        snprintf(bad, sizeof bad, "%s/%s", tmp, broken[i]);
        FILE *f = fopen(bad, "wb");
        if (!f || fputs("not a png", f) < 0 || fclose(f)) {
            fprintf(stderr, "setup: cannot write %s\n", bad);
            return 1;
        }
    }
    Nt = tokenizer_max_length(tok);
    if (reference_batches()) {
        fprintf(stderr, "setup: the reference batches\n");
        return 1;
    }
    RUN(test_sequential);
    RUN(test_one_worker);
    RUN(test_three_workers);
    RUN(test_skipped_counted);
    RUN(test_limits);
    for (int k = 0; k < n_ref; k++) {
        free(ref[k].img), free(ref[k].tokens);
        for (int i = 0; i < ref[k].n; i++) free(ref[k].captions[i]);
    }
    tokenizer_free(tok);
    tmpdir_remove(tmp);
    return harness_done();
}
