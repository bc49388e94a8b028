/* The dataset reader on the folder layouts (imagefolder metadata.jsonl and
 * ControlNet prompt.json): every sample yielded once per epoch with the bytes
 * of its files and its caption, orders fixed by (seed, epoch) and different
 * between epochs, the cursor restored exactly at every position, caption lists
 * and the empty-prompt proportion within binomial bounds, max_train_samples,
 * column names, malformed index lines (file and line named), missing files.
 * The truth is the files the test writes itself: file i holds "target i". */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/data/dataset.h"
#include "tests/lib/harness.h"
#include "tests/lib/lib_fs.h"

static char tmp[512];

/* A folder dataset of n samples under tmp/name; line i's caption is
 * `captions` formatted with i (a JSON value), target file i holds "target i". */
static void make_folder(char *dir, size_t size, const char *name, int n, const char *captions) {
    snprintf(dir, size, "%s/%s", tmp, name);
    char p[1024], text[256];
    mkdir(dir, 0700);
    snprintf(p, sizeof p, "%s/img", dir);
    mkdir(p, 0700);
    snprintf(p, sizeof p, "%s/cond", dir);
    mkdir(p, 0700);
    char *meta = malloc((size_t)n * 512 + 1);
    size_t len = 0;
    for (int i = 0; i < n; i++) {
        snprintf(p, sizeof p, "%s/img/%d.png", dir, i);
        file_write(p, text, (size_t)snprintf(text, sizeof text, "target %d", i));
        snprintf(p, sizeof p, "%s/cond/%d.png", dir, i);
        file_write(p, text, (size_t)snprintf(text, sizeof text, "cond %d", i));
        char cap[256];
        snprintf(cap, sizeof cap, captions, i, i, i);
        len += (size_t)sprintf(meta + len,
                               "{\"file_name\": \"img/%d.png\", \"conditioning_image_file_name\": "
                               "\"cond/%d.png\", \"text\": %s}\n",
                               i, i, cap);
    }
    snprintf(p, sizeof p, "%s/metadata.jsonl", dir);
    file_write(p, meta, len);
    free(meta);
}

static int open_ds(dataset *ds, const char *dir, uint64_t seed, cnet_error *err) {
    dataset_options o = {.seed = seed};
    return dataset_open(ds, dir, &o, err);
}

/* The listing id of the sample a yielded target names ("target 7" -> 7). */
static int sample_index(const dataset_sample *s) {
    char buf[32];
    size_t n = s->target_len < 31 ? s->target_len : 31;
    memcpy(buf, s->target, n);
    buf[n] = '\0';
    int i = -1;
    return sscanf(buf, "target %d", &i) == 1 ? i : -1;
}

static void test_imagefolder_reads_every_sample_once_per_epoch(void) {
    char dir[600];
    make_folder(dir, sizeof dir, "every", 12, "\"caption %d\"");
    dataset ds;
    cnet_error err;
    CHECK(open_ds(&ds, dir, 1, &err) == 0, "%s", err.msg);
    CHECK(ds.layout == DATASET_LAYOUT_IMAGEFOLDER && dataset_size(&ds) == 12, "layout/size");
    CHECK(dataset_seek(&ds, (dataset_cursor){0, 0}, &err) == 0, "%s", err.msg);
    for (int epoch = 0; epoch < 3; epoch++) {
        int seen[12] = {0};
        for (int k = 0; k < 12; k++) {
            dataset_cursor c = dataset_tell(&ds);
            EXPECT(c.epoch == epoch && c.index == k, "cursor (%lld, %lld) at epoch %d step %d",
                   (long long)c.epoch, (long long)c.index, epoch, k);
            dataset_sample s;
            CHECK(dataset_next(&ds, &s, &err) == 0, "%s", err.msg);
            int i = sample_index(&s);
            CHECK(i == s.id && i >= 0 && i < 12, "target bytes name sample %d, id %lld", i,
                  (long long)s.id);
            char want[64];
            snprintf(want, sizeof want, "cond %d", i);
            EXPECT(s.cond_len == strlen(want) && !memcmp(s.cond, want, s.cond_len),
                   "conditioning bytes of %d", i);
            snprintf(want, sizeof want, "caption %d", i);
            EXPECT(!strcmp(s.caption, want), "caption '%s' for %d", s.caption, i);
            snprintf(want, sizeof want, "img/%d.png", i);
            EXPECT(!strcmp(s.name, want), "name %s", s.name);
            seen[i]++;
        }
        for (int i = 0; i < 12; i++)
            CHECK(seen[i] == 1, "epoch %d: sample %d seen %d times", epoch, i, seen[i]);
    }
    dataset_free(&ds);
}

/* Reads n ids from cursor `at` of a fresh reader. */
static int read_ids(const char *dir, uint64_t seed, dataset_cursor at, int n, int64_t *ids,
                    char captions[][64]) {
    dataset ds;
    cnet_error err;
    if (open_ds(&ds, dir, seed, &err) || dataset_seek(&ds, at, &err)) return -1;
    for (int k = 0; k < n; k++) {
        dataset_sample s;
        if (dataset_next(&ds, &s, &err)) return dataset_free(&ds), -1;
        ids[k] = s.id;
        if (captions) snprintf(captions[k], 64, "%s", s.caption);
    }
    dataset_free(&ds);
    return 0;
}

static void test_order_fixed_by_seed_and_epoch(void) {
    char dir[600];
    make_folder(dir, sizeof dir, "order", 16, "\"c %d\"");
    int64_t a[48], b[48], c[48];
    CHECK(read_ids(dir, 7, (dataset_cursor){0, 0}, 48, a, NULL) == 0, "read a");
    CHECK(read_ids(dir, 7, (dataset_cursor){0, 0}, 48, b, NULL) == 0, "read b");
    CHECK(read_ids(dir, 8, (dataset_cursor){0, 0}, 48, c, NULL) == 0, "read c");
    CHECK(!memcmp(a, b, sizeof a), "same seed, same order");
    CHECK(memcmp(a, c, 16 * sizeof *a) != 0, "another seed, another order");
    CHECK(memcmp(a, a + 16, 16 * sizeof *a) != 0 && memcmp(a + 16, a + 32, 16 * sizeof *a) != 0,
          "each epoch has its own order");
    int identity = 1;
    for (int k = 0; k < 16; k++) identity &= a[k] == k;
    CHECK(!identity, "epoch 0 is shuffled");
    /* Epoch 2 read directly equals epoch 2 read after epochs 0 and 1. */
    CHECK(read_ids(dir, 7, (dataset_cursor){2, 0}, 16, c, NULL) == 0, "read epoch 2");
    CHECK(!memcmp(c, a + 32, 16 * sizeof *a), "epoch 2 from a seek");
}

static void test_cursor_restores_exactly_at_every_position(void) {
    char dir[600];
    make_folder(dir, sizeof dir, "cursor", 9, "[\"a %d\", \"b %d\", \"c %d\"]");
    int64_t straight[30], resumed[30];
    static char cap_straight[30][64], cap_resumed[30][64];
    CHECK(read_ids(dir, 3, (dataset_cursor){0, 0}, 30, straight, cap_straight) == 0, "straight");
    for (int k = 0; k <= 27; k++) {
        dataset_cursor at = {k / 9, k % 9};
        CHECK(read_ids(dir, 3, at, 30 - k, resumed, cap_resumed) == 0, "resume at %d", k);
        for (int j = 0; j < 30 - k; j++) {
            CHECK(resumed[j] == straight[k + j], "resume at %d: sample %d differs", k, j);
            CHECK(!strcmp(cap_resumed[j], cap_straight[k + j]), "resume at %d: caption %d", k, j);
        }
    }
    dataset ds;
    cnet_error err;
    CHECK(open_ds(&ds, dir, 3, &err) == 0, "%s", err.msg);
    CHECK(dataset_seek(&ds, (dataset_cursor){1, 10}, &err) == CNET_EINVAL, "index past the end");
    CHECK(dataset_seek(&ds, (dataset_cursor){1, 9}, &err) == 0, "index == size is next epoch");
    CHECK(dataset_tell(&ds).epoch == 2 && dataset_tell(&ds).index == 0, "normalised");
    dataset_free(&ds);
}

static void test_caption_lists_draw_each_caption(void) {
    char dir[600];
    make_folder(dir, sizeof dir, "lists", 1, "[\"first %d\", \"second %d\", \"third %d\"]");
    dataset ds;
    cnet_error err;
    CHECK(open_ds(&ds, dir, 11, &err) == 0, "%s", err.msg);
    CHECK(dataset_caption_count(&ds, 0) == 3, "three captions listed");
    int count[3] = {0};
    const int epochs = 600;
    for (int e = 0; e < epochs; e++) {
        dataset_sample s;
        CHECK(dataset_next(&ds, &s, &err) == 0, "%s", err.msg);
        count[s.caption[0] == 'f' ? 0 : s.caption[0] == 's' ? 1 : 2]++;
    }
    /* Binomial(600, 1/3): mean 200, sd 11.5; 5 sd either side. */
    for (int i = 0; i < 3; i++)
        CHECK(count[i] > 142 && count[i] < 258, "caption %d drawn %d of %d times", i, count[i],
              epochs);
    printf("    caption list draws over %d epochs: %d / %d / %d\n", epochs, count[0], count[1],
           count[2]);
    dataset_free(&ds);
}

static void test_empty_prompt_proportion(void) {
    char dir[600];
    make_folder(dir, sizeof dir, "empty", 50, "\"caption %d\"");
    const double ps[] = {0.0, 0.3, 1.0};
    for (int t = 0; t < 3; t++) {
        dataset ds;
        cnet_error err;
        dataset_options o = {.seed = 5, .proportion_empty_prompts = ps[t]};
        CHECK(dataset_open(&ds, dir, &o, &err) == 0, "%s", err.msg);
        int empty = 0, n = 50 * 40;
        for (int k = 0; k < n; k++) {
            dataset_sample s;
            CHECK(dataset_next(&ds, &s, &err) == 0, "%s", err.msg);
            empty += s.caption[0] == '\0';
        }
        dataset_free(&ds);
        /* Binomial(2000, p): 5 standard deviations (about 102 at p = 0.3). */
        double mean = n * ps[t], sd = sqrt(n * ps[t] * (1 - ps[t]));
        printf("    proportion_empty_prompts %.1f: %d of %d captions empty\n", ps[t], empty, n);
        CHECK(fabs(empty - mean) <= 5 * sd, "p = %.1f: %d empty of %d", ps[t], empty, n);
    }
    dataset ds;
    cnet_error err;
    dataset_options bad = {.proportion_empty_prompts = 1.5};
    CHECK(dataset_open(&ds, dir, &bad, &err) == CNET_EINVAL && strstr(err.msg, "proportion"),
          "p out of range refused: %s", err.msg);
}

static void test_max_train_samples_is_a_fixed_seeded_subset(void) {
    char dir[600];
    make_folder(dir, sizeof dir, "subset", 20, "\"c %d\"");
    int in_subset[2][20] = {{0}};
    for (int seed = 0; seed < 2; seed++) {
        dataset ds;
        cnet_error err;
        dataset_options o = {.seed = (uint64_t)seed + 1, .max_train_samples = 7};
        CHECK(dataset_open(&ds, dir, &o, &err) == 0, "%s", err.msg);
        CHECK(dataset_size(&ds) == 7, "size %lld", (long long)dataset_size(&ds));
        for (int k = 0; k < 7 * 5; k++) {
            dataset_sample s;
            CHECK(dataset_next(&ds, &s, &err) == 0, "%s", err.msg);
            if (k < 7)
                in_subset[seed][s.id]++;
            else
                CHECK(in_subset[seed][s.id] == 1, "epoch %d left the subset (%lld)", k / 7,
                      (long long)s.id);
        }
        dataset_free(&ds);
    }
    CHECK(memcmp(in_subset[0], in_subset[1], sizeof in_subset[0]) != 0,
          "the subset depends on the seed");
    dataset ds;
    cnet_error err;
    dataset_options all = {.max_train_samples = 100};
    CHECK(dataset_open(&ds, dir, &all, &err) == 0 && dataset_size(&ds) == 20,
          "more than there are");
    dataset_free(&ds);
}

static void test_fill50k_layout_and_single_subfolder(void) {
    char dir[600], p[800];
    snprintf(dir, sizeof dir, "%s/fill", tmp);
    mkdir(dir, 0700);
    snprintf(p, sizeof p, "%s/fill/fill50k", tmp);
    mkdir(p, 0700);
    snprintf(p, sizeof p, "%s/fill/fill50k/source", tmp), mkdir(p, 0700);
    snprintf(p, sizeof p, "%s/fill/fill50k/target", tmp), mkdir(p, 0700);
    snprintf(p, sizeof p, "%s/fill/fill50k/source/0.png", tmp), file_write(p, "S0", 2);
    snprintf(p, sizeof p, "%s/fill/fill50k/target/0.png", tmp), file_write(p, "T0", 2);
    snprintf(p, sizeof p, "%s/fill/fill50k/prompt.json", tmp);
    const char *line = "{\"source\": \"source/0.png\", \"target\": \"target/0.png\", "
                       "\"prompt\": \"pale golden rod circle with old lace background\"}\n";
    file_write(p, line, strlen(line));
    dataset ds;
    cnet_error err;
    CHECK(open_ds(&ds, dir, 0, &err) == 0, "%s", err.msg);
    CHECK(ds.layout == DATASET_LAYOUT_FILL50K && strstr(ds.root, "fill50k"), "layout %s root %s",
          dataset_layout_name(ds.layout), ds.root);
    dataset_sample s;
    CHECK(dataset_next(&ds, &s, &err) == 0, "%s", err.msg);
    CHECK(s.target_len == 2 && !memcmp(s.target, "T0", 2) && !memcmp(s.cond, "S0", 2),
          "target is `target`, conditioning is `source`");
    CHECK(!strcmp(s.caption, "pale golden rod circle with old lace background"), "%s", s.caption);
    dataset_free(&ds);
    dataset_options cols = {.caption_column = "prompt"};
    CHECK(dataset_open(&ds, dir, &cols, &err) == CNET_EINVAL && strstr(err.msg, "imagefolder"),
          "column names refused for prompt.json: %s", err.msg);
}

static void test_column_names(void) {
    char dir[600], p[800];
    snprintf(dir, sizeof dir, "%s/cols", tmp);
    mkdir(dir, 0700);
    snprintf(p, sizeof p, "%s/a.png", dir), file_write(p, "A", 1);
    snprintf(p, sizeof p, "%s/b.png", dir), file_write(p, "B", 1);
    snprintf(p, sizeof p, "%s/metadata.jsonl", dir);
    const char *meta =
        "{\"photo_file_name\": \"a.png\", \"edges\": \"b.png\", \"caption\": \"x\"}\n";
    file_write(p, meta, strlen(meta));
    dataset ds;
    cnet_error err;
    CHECK(open_ds(&ds, dir, 0, &err) == CNET_EFORMAT && strstr(err.msg, "metadata.jsonl line 1") &&
              strstr(err.msg, "image"),
          "default columns absent: %s", err.msg);
    dataset_options o = {
        .image_column = "photo", .conditioning_image_column = "edges", .caption_column = "caption"};
    CHECK(dataset_open(&ds, dir, &o, &err) == 0, "%s", err.msg);
    dataset_sample s;
    CHECK(dataset_next(&ds, &s, &err) == 0, "%s", err.msg);
    CHECK(s.target[0] == 'A' && s.cond[0] == 'B' && !strcmp(s.caption, "x"),
          "photo -> photo_file_name, edges -> edges");
    dataset_free(&ds);
    /* a column name past DATASET_COLUMN_MAX is refused, not cut short */
    char long_name[DATASET_COLUMN_MAX + 2];
    memset(long_name, 'c', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    o.caption_column = long_name;
    CHECK(dataset_open(&ds, dir, &o, &err) == CNET_ELIMIT && strstr(err.msg, "column name") &&
              strstr(err.msg, "longer than"),
          "long column: %s", err.msg);
    long_name[DATASET_COLUMN_MAX] = '\0'; /* at the limit: accepted, and not found */
    CHECK(dataset_open(&ds, dir, &o, &err) == CNET_EFORMAT && strstr(err.msg, long_name),
          "column at the limit: %s", err.msg);
}

static void test_malformed_lines_name_file_and_line(void) {
    static const struct {
        const char *line, *why;
    } cases[] = {
        {"not json", "not a JSON object"},
        {"[1, 2]", "not a JSON object"},
        {"{\"file_name\": \"a.png\", \"text\": \"t\"}", "conditioning_image"},
        {"{\"file_name\": 3, \"conditioning_image_file_name\": \"b.png\", \"text\": \"t\"}",
         "file_name must be a non-empty string"},
        {"{\"file_name\": \"a.png\", \"conditioning_image_file_name\": \"b.png\"}", "text"},
        {"{\"file_name\": \"a.png\", \"conditioning_image_file_name\": \"b.png\", \"text\": 4}",
         "string or a non-empty list"},
        {"{\"file_name\": \"a.png\", \"conditioning_image_file_name\": \"b.png\", \"text\": []}",
         "non-empty list"},
        {"{\"file_name\": \"a.png\", \"conditioning_image_file_name\": \"b.png\", \"text\": "
         "[\"x\", 1]}",
         "non-empty list of strings"},
        {"{\"file_name\": \"/etc/passwd\", \"conditioning_image_file_name\": \"b.png\", \"text\": "
         "\"t\"}",
         "relative path"},
        {"{\"file_name\": \"a/../../x.png\", \"conditioning_image_file_name\": \"b.png\", "
         "\"text\": \"t\"}",
         "relative path"},
        {"{\"file_name\": \"a.png\", \"file_name\": \"b.png\", \"conditioning_image_file_name\": "
         "\"b.png\", \"text\": \"t\"}",
         "duplicate"},
    };
    char dir[600], p[800];
    snprintf(dir, sizeof dir, "%s/bad", tmp);
    mkdir(dir, 0700);
    snprintf(p, sizeof p, "%s/metadata.jsonl", dir);
    int ok = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[1024];
        /* Line 3 is the bad one: a good line, a blank line, then it. */
        int n = snprintf(text, sizeof text,
                         "{\"file_name\": \"a.png\", \"conditioning_image_file_name\": \"b.png\", "
                         "\"text\": \"ok\"}\n\n%s\n",
                         cases[i].line);
        file_write(p, text, (size_t)n);
        dataset ds;
        cnet_error err = {0};
        int rc = open_ds(&ds, dir, 0, &err);
        int good = rc == CNET_EFORMAT && strstr(err.msg, "metadata.jsonl line 3") &&
                   strstr(err.msg, cases[i].why);
        EXPECT(good, "case %zu: rc %d: %s", i, rc, err.msg);
        ok += good;
        if (!rc) dataset_free(&ds);
    }
    printf("    %d/%zu malformed lines refused naming metadata.jsonl line 3\n", ok,
           sizeof cases / sizeof cases[0]);
    file_write(p, "\n\n", 2);
    dataset ds;
    cnet_error err;
    CHECK(open_ds(&ds, dir, 0, &err) == CNET_EINVAL && strstr(err.msg, "no samples"),
          "an empty index: %s", err.msg);
    unlink(p);
    CHECK(open_ds(&ds, dir, 0, &err) == CNET_EINVAL && strstr(err.msg, "metadata.jsonl"),
          "no index: %s", err.msg);
}

static void test_missing_file_is_named_and_skippable(void) {
    char dir[600], p[800];
    make_folder(dir, sizeof dir, "missing", 4, "\"c %d\"");
    snprintf(p, sizeof p, "%s/cond/2.png", dir);
    unlink(p);
    dataset ds;
    cnet_error err;
    CHECK(open_ds(&ds, dir, 0, &err) == 0, "opening does not read the files: %s", err.msg);
    int failed = 0, good = 0;
    for (int k = 0; k < 4; k++) {
        dataset_sample s;
        int rc = dataset_next(&ds, &s, &err);
        if (rc) {
            failed++;
            CHECK(rc == CNET_ENOTFOUND && strstr(err.msg, "cond/2.png") &&
                      strstr(err.msg, "metadata.jsonl line 3") && s.id == 2,
                  "rc %d: %s", rc, err.msg);
        } else {
            good++;
        }
        dataset_cursor c = dataset_tell(&ds);
        CHECK(c.epoch * 4 + c.index == k + 1, "the cursor moves past a failed sample");
    }
    CHECK(failed == 1 && good == 3, "failed %d good %d", failed, good);
    uint8_t bad[4] = {0, 0, 1, 0};
    CHECK(dataset_exclude(&ds, bad, &err) == 0 && dataset_size(&ds) == 3, "exclude");
    for (int k = 0; k < 9; k++) {
        dataset_sample s;
        CHECK(dataset_next(&ds, &s, &err) == 0 && s.id != 2, "excluded sample not yielded");
    }
    dataset_free(&ds);
}

int main(int argc, char **argv) {
    harness_init(argc, argv);
    if (tmpdir_make(tmp, sizeof tmp, "cnet-dataset-")) return printf("no temp dir\n"), 1;
    RUN(test_imagefolder_reads_every_sample_once_per_epoch);
    RUN(test_order_fixed_by_seed_and_epoch);
    RUN(test_cursor_restores_exactly_at_every_position);
    RUN(test_caption_lists_draw_each_caption);
    RUN(test_empty_prompt_proportion);
    RUN(test_max_train_samples_is_a_fixed_seeded_subset);
    RUN(test_fill50k_layout_and_single_subfolder);
    RUN(test_column_names);
    RUN(test_malformed_lines_name_file_and_line);
    RUN(test_missing_file_is_named_and_skippable);
    tmpdir_remove(tmp);
    return harness_done();
}
