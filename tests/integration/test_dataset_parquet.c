/* The dataset reader on Hugging Face Hub datasets in Parquet, written by the
 * independent writer (tests/tools/parquet_writer: apache-arrow tables with
 * {bytes, path} image structs, parquet-wasm): a snapshot with
 * data/train-0000{0,1}-of-00002.parquet and a test split that must not be
 * read, some images stored by path only. Every sample is yielded once per
 * epoch with the bytes and caption the writer wrote; orders are fixed by
 * (seed, epoch) and the cursor restored exactly at every position (small
 * shuffle buffer); --max_train_samples subsets; the refs/convert/parquet
 * layout <config>/train/NNNN.parquet with dataset_config_name; column
 * options; a broken shard is refused naming it; the pre-training check
 * decodes every PNG; `cnet dataset check DIR` reads it. Also imagefolder with
 * metadata.csv (quoted cells with commas, quotes and line breaks). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/data/dataset.h"
#include "tests/lib/harness.h"
#include "tests/lib/lib_fs.h"
#include "tests/lib/lib_parquet.h"

#define MAX_ROWS 64
static char tmp[512], snap[600];
static int n_rows;
static uint8_t *want_target[MAX_ROWS], *want_cond[MAX_ROWS];
static size_t want_target_len[MAX_ROWS], want_cond_len[MAX_ROWS];
static char want_text[MAX_ROWS][64];

static void test_generate(void) {
    CHECK(tmpdir_make(tmp, sizeof tmp, "cnet_dsparquet_") == 0, "tmpdir");
    snprintf(snap, sizeof snap, "%s/snapshot", tmp);
    CHECK(parquet_generate("dataset", snap) == 0, "the writer ran");
    char p[700];
    snprintf(p, sizeof p, "%s/truth.json", snap);
    json_error_t je;
    json_t *t = json_load_file(p, 0, &je);
    CHECK(t, "truth.json: %s", je.text);
    json_t *rows = json_object_get(t, "rows");
    n_rows = (int)json_array_size(rows);
    for (int i = 0; i < n_rows && i < MAX_ROWS; i++) {
        json_t *r = json_array_get(rows, (size_t)i);
        want_target[i] =
            parquet_unhex(json_string_value(json_object_get(r, "target")), &want_target_len[i]);
        want_cond[i] =
            parquet_unhex(json_string_value(json_object_get(r, "cond")), &want_cond_len[i]);
        snprintf(want_text[i], sizeof want_text[i], "%s",
                 json_string_value(json_object_get(r, "text")));
    }
    json_decref(t);
    CHECK(n_rows == 17, "%d rows", n_rows);
}

static int open_snap(dataset *ds, const char *path, uint64_t seed, int buffer, int64_t max,
                     cnet_error *err) {
    dataset_options o = {.seed = seed, .shuffle_buffer = buffer, .max_train_samples = max};
    return dataset_open(ds, path, &o, err);
}

/* The sample is listing id s->id with the writer's bytes and caption. */
static int sample_ok(const dataset_sample *s) {
    int64_t i = s->id;
    return i >= 0 && i < n_rows && s->target_len == want_target_len[i] &&
           memcmp(s->target, want_target[i], s->target_len) == 0 &&
           s->cond_len == want_cond_len[i] && memcmp(s->cond, want_cond[i], s->cond_len) == 0 &&
           strcmp(s->caption, want_text[i]) == 0;
}

static void test_epochs(void) {
    CHECK(n_rows == 17, "no dataset");
    dataset ds;
    cnet_error err = {0};
    CHECK(open_snap(&ds, snap, 7, 4, 0, &err) == 0, "%s", err.msg);
    EXPECT(ds.layout == DATASET_LAYOUT_PARQUET, "layout %s", dataset_layout_name(ds.layout));
    CHECK(dataset_size(&ds) == n_rows, "%lld samples (the test split is not train)",
          (long long)dataset_size(&ds));
    for (int64_t i = 0; i < n_rows; i++)
        EXPECT(!strcmp(dataset_caption(&ds, i, 0), want_text[i]), "caption of %lld", (long long)i);
    CHECK(dataset_seek(&ds, (dataset_cursor){0, 0}, &err) == 0, "%s", err.msg);
    int64_t order[2][MAX_ROWS];
    for (int e = 0; e < 2; e++) {
        int seen[MAX_ROWS] = {0};
        for (int k = 0; k < n_rows; k++) {
            dataset_sample s;
            CHECK(dataset_next(&ds, &s, &err) == 0, "%s", err.msg);
            CHECK(sample_ok(&s), "sample %lld (%s) differs from what was written", (long long)s.id,
                  s.name);
            seen[s.id]++;
            order[e][k] = s.id;
        }
        for (int i = 0; i < n_rows; i++)
            EXPECT(seen[i] == 1, "epoch %d: id %d seen %d", e, i, seen[i]);
    }
    EXPECT(memcmp(order[0], order[1], sizeof order[0]) != 0, "epochs are ordered differently");
    dataset_cursor c = dataset_tell(&ds);
    EXPECT(c.epoch == 2 && c.index == 0, "cursor %lld/%lld", (long long)c.epoch,
           (long long)c.index);
    dataset_free(&ds);
}

/* From every cursor of epoch 1, a reopened reader yields what one reader
 * going straight through yields. */
static void test_resume(void) {
    CHECK(n_rows == 17, "no dataset");
    dataset ref;
    cnet_error err = {0};
    CHECK(open_snap(&ref, snap, 11, 3, 0, &err) == 0, "%s", err.msg);
    CHECK(dataset_seek(&ref, (dataset_cursor){1, 0}, &err) == 0, "%s", err.msg);
    int64_t seq[2 * MAX_ROWS];
    for (int k = 0; k < 2 * n_rows; k++) {
        dataset_sample s;
        CHECK(dataset_next(&ref, &s, &err) == 0, "%s", err.msg);
        seq[k] = s.id;
    }
    dataset_free(&ref);
    for (int at = 0; at <= n_rows; at++) {
        dataset ds;
        CHECK(open_snap(&ds, snap, 11, 3, 0, &err) == 0, "%s", err.msg);
        CHECK(dataset_seek(&ds, (dataset_cursor){1, at}, &err) == 0, "%s", err.msg);
        for (int k = at; k < at + n_rows; k++) {
            dataset_sample s;
            CHECK(dataset_next(&ds, &s, &err) == 0, "%s", err.msg);
            CHECK(s.id == seq[k] && sample_ok(&s),
                  "resumed at %d: position %d is id %lld, not %lld", at, k, (long long)s.id,
                  (long long)seq[k]);
        }
        dataset_free(&ds);
    }
}

static void test_subset(void) {
    CHECK(n_rows == 17, "no dataset");
    dataset ds;
    cnet_error err = {0};
    CHECK(open_snap(&ds, snap, 3, 2, 5, &err) == 0, "%s", err.msg);
    CHECK(dataset_size(&ds) == 5, "%lld", (long long)dataset_size(&ds));
    CHECK(dataset_seek(&ds, (dataset_cursor){0, 0}, &err) == 0, "%s", err.msg);
    for (int k = 0; k < 10; k++) {
        dataset_sample s;
        CHECK(dataset_next(&ds, &s, &err) == 0, "%s", err.msg);
        int in = 0;
        for (int64_t i = 0; i < 5; i++) in |= ds.active[i] == s.id;
        CHECK(in && sample_ok(&s), "id %lld outside the subset or wrong", (long long)s.id);
    }
    dataset_free(&ds);
}

static int copy_file(const char *from, const char *to) {
    size_t n;
    char *b = file_read(from, &n);
    int rc = b ? file_write(to, b, n) : -1;
    free(b);
    return rc;
}

static void test_convert_layout(void) {
    CHECK(n_rows == 17, "no dataset");
    char conv[700], p[800], q[800];
    snprintf(conv, sizeof conv, "%s/converted", tmp);
    const char *configs[2] = {"default", "fill"};
    mkdir(conv, 0700);
    for (int c = 0; c < 2; c++) {
        snprintf(p, sizeof p, "%s/%s", conv, configs[c]);
        mkdir(p, 0700);
        snprintf(p, sizeof p, "%s/%s/train", conv, configs[c]);
        mkdir(p, 0700);
        for (int s = 0; s < (c ? 1 : 2); s++) {
            snprintf(p, sizeof p, "%s/data/train-0000%d-of-00002.parquet", snap, s);
            snprintf(q, sizeof q, "%s/%s/train/%04d.parquet", conv, configs[c], s);
            CHECK(copy_file(p, q) == 0, "copy %s", p);
        }
    }
    /* Images stored by path only are looked up under the snapshot: copy them. */
    snprintf(p, sizeof p, "%s/images", conv);
    mkdir(p, 0700);
    for (int i = 0; i < n_rows; i++) {
        snprintf(p, sizeof p, "%s/images/%d.png", snap, i);
        snprintf(q, sizeof q, "%s/images/%d.png", conv, i);
        struct stat st;
        if (stat(p, &st) == 0) CHECK(copy_file(p, q) == 0, "copy %s", p);
    }
    dataset ds;
    cnet_error err = {0};
    dataset_options o = {.seed = 1};
    CHECK(dataset_open(&ds, conv, &o, &err) == 0, "%s", err.msg);
    EXPECT(dataset_size(&ds) == n_rows, "default config: %lld", (long long)dataset_size(&ds));
    CHECK(dataset_seek(&ds, (dataset_cursor){0, 0}, &err) == 0, "%s", err.msg);
    for (int k = 0; k < n_rows; k++) {
        dataset_sample s;
        CHECK(dataset_next(&ds, &s, &err) == 0, "%s", err.msg);
        CHECK(sample_ok(&s), "sample %lld", (long long)s.id);
    }
    dataset_free(&ds);
    o.dataset_config_name = "fill";
    CHECK(dataset_open(&ds, conv, &o, &err) == 0, "%s", err.msg);
    EXPECT(dataset_size(&ds) == 9, "config fill: %lld", (long long)dataset_size(&ds));
    dataset_free(&ds);
    o.dataset_config_name = "nope";
    int rc = dataset_open(&ds, conv, &o, &err);
    EXPECT(rc == CNET_ENOTFOUND && strstr(err.msg, "nope"), "rc %d: %s", rc, err.msg);
}

static void test_columns(void) {
    CHECK(n_rows == 17, "no dataset");
    dataset ds;
    cnet_error err = {0};
    dataset_options o = {.caption_column = "caption"};
    int rc = dataset_open(&ds, snap, &o, &err);
    EXPECT(rc == CNET_EINVAL && strstr(err.msg, "caption") && strstr(err.msg, "conditioning_image"),
           "rc %d: %s", rc, err.msg);
    /* Swapped on purpose: the conditioning image read as the target. */
    o = (dataset_options){.image_column = "conditioning_image",
                          .conditioning_image_column = "image"};
    CHECK(dataset_open(&ds, snap, &o, &err) == 0, "%s", err.msg);
    CHECK(dataset_rewind(&ds, &err) == 0, "%s", err.msg);
    dataset_sample s;
    CHECK(dataset_next(&ds, &s, &err) == 0, "%s", err.msg);
    EXPECT(s.target_len == want_cond_len[s.id] && !memcmp(s.target, want_cond[s.id], s.target_len),
           "the column options pick the columns");
    dataset_free(&ds);
    o = (dataset_options){.image_column = "text"};
    rc = dataset_open(&ds, snap, &o, &err);
    EXPECT(rc != 0, "a string column is no image");
    if (rc == 0) dataset_free(&ds);
}

static void test_check_and_cli(void) {
    CHECK(n_rows == 17, "no dataset");
    dataset ds;
    cnet_error err = {0};
    dataset_options o = {0};
    CHECK(dataset_open(&ds, snap, &o, &err) == 0, "%s", err.msg);
    dataset_report rep;
    CHECK(dataset_check(&ds, 1, 1 << 20, &rep, &err) == 0, "%s", err.msg);
    EXPECT(rep.samples == n_rows && rep.usable == n_rows, "usable %lld of %lld",
           (long long)rep.usable, (long long)rep.samples);
    dataset_report_free(&rep);
    dataset_free(&ds);
    const char *build = getenv("BUILD") ? getenv("BUILD") : "build";
    char cmd[2600], out[800];
    snprintf(out, sizeof out, "%s/check.txt", tmp);
    snprintf(cmd, sizeof cmd, "%s/cnet dataset check '%s' > '%s' 2>&1", build, snap, out);
    int rc = system(cmd);
    size_t n;
    char *text = file_read(out, &n);
    EXPECT(rc == 0 && text && strstr(text, "(parquet): 17 samples") &&
               strstr(text, "usable: 17 of 17"),
           "cnet dataset check: exit %d, said: %s", rc, text ? text : "(nothing)");
    free(text);
}

static void test_broken_shard(void) {
    CHECK(n_rows == 17, "no dataset");
    char bad[700], p[800];
    snprintf(bad, sizeof bad, "%s/broken", tmp);
    mkdir(bad, 0700);
    snprintf(p, sizeof p, "%s/data/train-00000-of-00002.parquet", snap);
    size_t n;
    char *b = file_read(p, &n);
    CHECK(b, "read shard");
    snprintf(p, sizeof p, "%s/train-00000-of-00001.parquet", bad);
    CHECK(file_write(p, b, n - 9) == 0, "write");
    free(b);
    dataset ds;
    cnet_error err = {0};
    dataset_options o = {0};
    int rc = dataset_open(&ds, bad, &o, &err);
    EXPECT(rc == CNET_EFORMAT && strstr(err.msg, "train-00000-of-00001.parquet"), "rc %d: %s", rc,
           err.msg);
    if (rc == 0) dataset_free(&ds);
}

static void test_metadata_csv(void) {
    CHECK(n_rows == 17, "no dataset");
    char dir[700], p[800];
    snprintf(dir, sizeof dir, "%s/csv", tmp);
    mkdir(dir, 0700);
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/t%d.png", dir, i);
        CHECK(file_write(p, want_target[i], want_target_len[i]) == 0, "write");
        snprintf(p, sizeof p, "%s/c%d.png", dir, i);
        CHECK(file_write(p, want_cond[i], want_cond_len[i]) == 0, "write");
    }
    const char *csv = "file_name,conditioning_image,text\r\n"
                      "t0.png,c0.png,plain caption\r\n"
                      "t1.png,c1.png,\"a caption, with a comma and \"\"quotes\"\"\"\r\n"
                      "\n"
                      "t2.png,c2.png,\"two\nlines\"\n";
    snprintf(p, sizeof p, "%s/metadata.csv", dir);
    CHECK(file_write(p, csv, strlen(csv)) == 0, "write");
    dataset ds;
    cnet_error err = {0};
    dataset_options o = {0};
    CHECK(dataset_open(&ds, dir, &o, &err) == 0, "%s", err.msg);
    EXPECT(ds.layout == DATASET_LAYOUT_IMAGEFOLDER, "layout");
    CHECK(dataset_size(&ds) == 3, "%lld samples", (long long)dataset_size(&ds));
    const char *caps[3] = {"plain caption", "a caption, with a comma and \"quotes\"", "two\nlines"};
    for (int i = 0; i < 3; i++)
        EXPECT(!strcmp(dataset_caption(&ds, i, 0), caps[i]), "caption %d: '%s'", i,
               dataset_caption(&ds, i, 0));
    EXPECT(ds.entries[2].line == 5, "sample 2 starts on line %d", ds.entries[2].line);
    CHECK(dataset_rewind(&ds, &err) == 0, "%s", err.msg);
    for (int i = 0; i < 3; i++) {
        dataset_sample s;
        CHECK(dataset_next(&ds, &s, &err) == 0, "%s", err.msg);
        EXPECT(s.target_len == want_target_len[i] &&
                   !memcmp(s.target, want_target[i], s.target_len) &&
                   s.cond_len == want_cond_len[i] && !memcmp(s.cond, want_cond[i], s.cond_len),
               "sample %d bytes", i);
    }
    dataset_free(&ds);
    const char *bad[2] = {"file_name,conditioning_image,text\nt0.png,c0.png,\"open\n",
                          "file_name,conditioning_image,text\nt0.png,c0.png,x,extra\n"};
    for (int k = 0; k < 2; k++) {
        CHECK(file_write(p, bad[k], strlen(bad[k])) == 0, "write");
        int rc = dataset_open(&ds, dir, &o, &err);
        EXPECT(rc == CNET_EFORMAT && strstr(err.msg, "metadata.csv line 2"), "rc %d: %s", rc,
               err.msg);
        if (rc == 0) dataset_free(&ds);
    }
}

int main(int argc, char **argv) {
    harness_init(argc, argv);
    RUN(test_generate);
    RUN(test_epochs);
    RUN(test_resume);
    RUN(test_subset);
    RUN(test_convert_layout);
    RUN(test_columns);
    RUN(test_check_and_cli);
    RUN(test_broken_shard);
    RUN(test_metadata_csv);
    for (int i = 0; i < MAX_ROWS; i++) free(want_target[i]), free(want_cond[i]);
    if (tmp[0]) tmpdir_remove(tmp);
    return harness_done();
}
