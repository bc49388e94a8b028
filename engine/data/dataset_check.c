/* The pre-training dataset check (see dataset.h): one pass over the samples
 * in use, counting missing and unreadable files, size mismatches, blank
 * conditioning images, empty captions and duplicates (SHA-256 over the
 * target and conditioning bytes), keeping the first few offenders of each.
 * `cnet dataset check`, the trainer and the server's upload check all call
 * this; what they do with the report is theirs. Not here: printing. */
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/data/dataset_impl.h"
#include "engine/image/image.h"

static const char *const problem_names[DATASET_PROBLEM_COUNT] = {
    "missing", "unreadable", "size mismatch", "blank conditioning", "empty caption", "duplicate",
};

const char *dataset_problem_name(dataset_problem p) {
    return (unsigned)p < DATASET_PROBLEM_COUNT ? problem_names[p] : "unknown";
}

static void note(dataset_report *rep, dataset_problem p, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void note(dataset_report *rep, dataset_problem p, const char *fmt, ...) {
    int64_t k = rep->count[p]++;
    if (k >= DATASET_REPORT_EXAMPLES) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rep->examples[p][k], DATASET_REPORT_EXAMPLE_MAX, fmt, ap);
    va_end(ap);
}

typedef struct digest {
    uint8_t sha[32];
    int64_t id;
} digest;

static int by_digest(const void *a, const void *b) {
    const digest *x = a, *y = b;
    int c = memcmp(x->sha, y->sha, sizeof x->sha);
    return c ? c : (x->id > y->id) - (x->id < y->id);
}

/* SHA-256(SHA-256(target) || SHA-256(cond)). */
static int pair_digest(const dataset_sample *s, uint8_t out[32], cnet_error *err) {
    uint8_t both[64];
    unsigned n;
    if (!EVP_Digest(s->target, s->target_len, both, &n, EVP_sha256(), NULL) ||
        !EVP_Digest(s->cond, s->cond_len, both + 32, &n, EVP_sha256(), NULL) ||
        !EVP_Digest(both, sizeof both, out, &n, EVP_sha256(), NULL))
        return cnet_fail(err, CNET_ENOMEM, "sha256 failed");
    return 0;
}

static int is_blank(const image_rgb8 *im) {
    size_t n = (size_t)im->width * (size_t)im->height * 3;
    for (size_t i = 3; i < n; i++)
        if (im->data[i] != im->data[i % 3]) return 0;
    return 1;
}

static int has_empty_caption(const dataset *ds, int64_t id) {
    for (int i = 0; i < dataset_caption_count(ds, id); i++) {
        const char *c = dataset_caption(ds, id, i);
        if (strspn(c, " \t\r\n") == strlen(c)) return 1;
    }
    return 0;
}

/* Decodes both images: sizes and blank conditioning. 0, or 1 = unreadable. */
static int check_pixels(const dataset_sample *s, int64_t max_pixels, dataset_report *rep) {
    image_rgb8 t = {0}, c = {0};
    cnet_error ie;
    if (image_decode(&t, s->target, s->target_len, s->name, max_pixels, &ie) ||
        image_decode(&c, s->cond, s->cond_len, s->cond_name, max_pixels, &ie)) {
        image_free(&t);
        note(rep, DATASET_PROBLEM_UNREADABLE, "%s", ie.msg);
        return 1;
    }
    if (t.width != c.width || t.height != c.height)
        note(rep, DATASET_PROBLEM_SIZE_MISMATCH, "%s: target %dx%d, conditioning %s %dx%d", s->name,
             t.width, t.height, s->cond_name, c.width, c.height);
    if (is_blank(&c))
        note(rep, DATASET_PROBLEM_BLANK_CONDITIONING, "%s: every pixel is (%d, %d, %d)",
             s->cond_name, c.data[0], c.data[1], c.data[2]);
    image_free(&t);
    image_free(&c);
    return 0;
}

/* Sorted by digest then id: each run's first id is the original. */
static void find_duplicates(const dataset *ds, digest *d, int64_t n, dataset_report *rep) {
    qsort(d, (size_t)n, sizeof *d, by_digest);
    for (int64_t i = 1, first = 0; i < n; i++) {
        if (memcmp(d[i - 1].sha, d[i].sha, sizeof d[i].sha) != 0) {
            first = i;
            continue;
        }
        note(rep, DATASET_PROBLEM_DUPLICATE, "%s: same images as %s",
             dataset_entry_name(ds, d[i].id), dataset_entry_name(ds, d[first].id));
    }
}

int dataset_check(dataset *ds, int decode, int64_t max_pixels, dataset_report *rep,
                  cnet_error *err) {
    memset(rep, 0, sizeof *rep);
    rep->bad = calloc((size_t)ds->n_entries, 1);
    digest *d = malloc((size_t)(ds->n_active ? ds->n_active : 1) * sizeof *d);
    if (!rep->bad || !d) {
        free(d);
        dataset_report_free(rep);
        return cnet_fail(err, CNET_ENOMEM, "dataset check: out of memory");
    }
    int64_t n_digests = 0;
    int rc = dataset_rewind(ds, err);
    while (!rc) {
        dataset_sample s;
        cnet_error se;
        int r = dataset_next(ds, &s, &se);
        if (r == 1) break;
        rep->samples++;
        if (r == CNET_ENOMEM) {
            rc = cnet_fail(err, r, "%s", se.msg);
            break;
        }
        if (r == 0 && has_empty_caption(ds, s.id))
            note(rep, DATASET_PROBLEM_EMPTY_CAPTION, "%s", s.name);
        if (r)
            note(rep, r == CNET_ENOTFOUND ? DATASET_PROBLEM_MISSING : DATASET_PROBLEM_UNREADABLE,
                 "%s", se.msg);
        else if (decode)
            r = check_pixels(&s, max_pixels, rep);
        if (r) {
            rep->bad[s.id] = 1;
            continue;
        }
        rep->usable++;
        d[n_digests].id = s.id;
        rc = pair_digest(&s, d[n_digests++].sha, err);
    }
    if (!rc) find_duplicates(ds, d, n_digests, rep);
    free(d);
    if (rc) dataset_report_free(rep);
    return rc;
}

void dataset_report_free(dataset_report *rep) {
    free(rep->bad);
    rep->bad = NULL;
}

int dataset_report_verdict(const dataset_report *rep, double max_bad_fraction, cnet_error *err) {
    int64_t bad = rep->samples - rep->usable;
    if (rep->usable == 0)
        return cnet_fail(err, CNET_EINVAL, "no usable sample: all %lld are missing or unreadable",
                         (long long)rep->samples);
    if ((double)bad > max_bad_fraction * (double)rep->samples)
        return cnet_fail(err, CNET_EINVAL,
                         "%lld of %lld samples are missing or unreadable (%.1f%%), more than the "
                         "allowed %.1f%%",
                         (long long)bad, (long long)rep->samples,
                         100.0 * (double)bad / (double)rep->samples, 100.0 * max_bad_fraction);
    return 0;
}
