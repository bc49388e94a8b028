/* The dataset reader on WebDataset tar shards: every sample once per epoch
 * with the bytes and caption the test wrote into the shards, orders fixed by
 * (seed, epoch), the cursor restored exactly at every position with a small
 * shuffle buffer, a buffer of one reading in stream order, a glob and a
 * single shard, and shards refused for hostile members (absolute names, `..`,
 * links, devices, control characters), split or repeated keys, truncation;
 * a sample missing a member is an error naming it. Shards are written here
 * with libarchive's writer (tests/lib/lib_tar.h). */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/data/dataset.h"
#include "tests/lib/harness.h"
#include "tests/lib/lib_fs.h"
#include "tests/lib/lib_tar.h"

#define N_SAMPLES 14
static char tmp[512], shards[600];
static const int shard_of[N_SAMPLES] = {0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2, 2};
static char data[N_SAMPLES][3][32]; /* target, conditioning, caption text of sample i */

/* Key of sample i: s00.. with the second shard's keys in a folder. */
static void key_of(int i, char *out, size_t n) {
    snprintf(out, n, "%ss%02d", shard_of[i] == 1 ? "part/" : "", i);
}

static int write_shards(void) {
    snprintf(shards, sizeof shards, "%s/shards", tmp);
    mkdir(shards, 0700);
    for (int s = 0; s < 3; s++) {
        tar_member m[40];
        static char names[40][64];
        int n = 0;
        if (s == 1) m[n++] = (tar_member){"part/", 'd', NULL, 0};
        for (int i = 0; i < N_SAMPLES; i++) {
            if (shard_of[i] != s) continue;
            char key[32];
            key_of(i, key, sizeof key);
            snprintf(data[i][0], 32, "target %d", i);
            snprintf(data[i][1], 32, "cond %d", i);
            snprintf(data[i][2], 32, "caption %d", i);
            /* Member order varies: caption first for odd samples. */
            const char *ext[4] = {i % 2 ? "txt" : "png", "cond.jpg", i % 2 ? "png" : "txt", "json"};
            const char *body[4] = {data[i][i % 2 ? 2 : 0], data[i][1], data[i][i % 2 ? 0 : 2],
                                   "{}"};
            for (int k = 0; k < 4; k++) {
                snprintf(names[n], sizeof names[n], "%s.%s", key, ext[k]);
                m[n] = (tar_member){names[n], 'f', body[k], 0};
                n++;
            }
        }
        char p[700];
        snprintf(p, sizeof p, "%s/shard-%d.tar", shards, s);
        if (tar_write(p, m, n)) return -1;
    }
    return 0;
}

/* The sample index a yielded target names. */
static int sample_index(const dataset_sample *s) {
    for (int i = 0; i < N_SAMPLES; i++)
        if (s->target_len == strlen(data[i][0]) && !memcmp(s->target, data[i][0], s->target_len))
            return i;
    return -1;
}

static int open_tar(dataset *ds, const char *path, uint64_t seed, int buffer, cnet_error *err) {
    dataset_options o = {.seed = seed, .shuffle_buffer = buffer};
    return dataset_open(ds, path, &o, err);
}

static void test_tar_every_sample_once_per_epoch(void) {
    dataset ds;
    cnet_error err;
    CHECK(open_tar(&ds, shards, 1, 4, &err) == 0, "%s", err.msg);
    CHECK(ds.layout == DATASET_LAYOUT_WEBDATASET && dataset_size(&ds) == N_SAMPLES,
          "layout %s, %lld samples", dataset_layout_name(ds.layout), (long long)dataset_size(&ds));
    for (int epoch = 0; epoch < 3; epoch++) {
        int seen[N_SAMPLES] = {0};
        for (int k = 0; k < N_SAMPLES; k++) {
            dataset_sample s;
            CHECK(dataset_next(&ds, &s, &err) == 0, "%s", err.msg);
            int i = sample_index(&s);
            CHECK(i >= 0, "unknown target bytes");
            char key[32], name[64];
            key_of(i, key, sizeof key);
            snprintf(name, sizeof name, "shard-%d.tar:%s", shard_of[i], key);
            EXPECT(!strcmp(s.name, name), "name %s, want %s", s.name, name);
            EXPECT(s.cond_len == strlen(data[i][1]) && !memcmp(s.cond, data[i][1], s.cond_len),
                   "conditioning of %d", i);
            EXPECT(!strcmp(s.caption, data[i][2]), "caption '%s' of %d", s.caption, i);
            seen[i]++;
        }
        for (int i = 0; i < N_SAMPLES; i++)
            CHECK(seen[i] == 1, "epoch %d: sample %d seen %d times", epoch, i, seen[i]);
    }
    dataset_free(&ds);
}

static int read_ids(uint64_t seed, int buffer, dataset_cursor at, int n, int *ids) {
    dataset ds;
    cnet_error err;
    if (open_tar(&ds, shards, seed, buffer, &err) || dataset_seek(&ds, at, &err)) return -1;
    for (int k = 0; k < n; k++) {
        dataset_sample s;
        if (dataset_next(&ds, &s, &err)) return dataset_free(&ds), -1;
        ids[k] = sample_index(&s);
    }
    dataset_free(&ds);
    return 0;
}

static void test_tar_order_seeded_and_cursor_exact(void) {
    enum { N = 3 * N_SAMPLES };
    int a[N], b[N], c[N];
    CHECK(read_ids(9, 3, (dataset_cursor){0, 0}, N, a) == 0, "read");
    CHECK(read_ids(9, 3, (dataset_cursor){0, 0}, N, b) == 0, "read again");
    CHECK(read_ids(10, 3, (dataset_cursor){0, 0}, N, c) == 0, "other seed");
    CHECK(!memcmp(a, b, sizeof a), "same seed, same order");
    CHECK(memcmp(a, c, sizeof a) != 0, "another seed, another order");
    CHECK(memcmp(a, a + N_SAMPLES, N_SAMPLES * sizeof *a) != 0, "epochs differ");
    for (int k = 0; k < N; k++) {
        int r[N];
        CHECK(read_ids(9, 3, (dataset_cursor){k / N_SAMPLES, k % N_SAMPLES}, N - k, r) == 0,
              "resume at %d", k);
        CHECK(!memcmp(r, a + k, (size_t)(N - k) * sizeof *r), "resume at %d differs", k);
    }
}

static void test_tar_buffer_of_one_reads_in_stream_order(void) {
    int ids[N_SAMPLES];
    CHECK(read_ids(4, 1, (dataset_cursor){1, 0}, N_SAMPLES, ids) == 0, "read");
    /* Each shard's samples come together and in member order. */
    for (int k = 1; k < N_SAMPLES; k++)
        if (shard_of[ids[k]] == shard_of[ids[k - 1]])
            CHECK(ids[k] == ids[k - 1] + 1, "position %d: %d after %d", k, ids[k], ids[k - 1]);
        else
            CHECK(ids[k] == (shard_of[ids[k]] == 0   ? 0
                             : shard_of[ids[k]] == 1 ? 5
                                                     : 10),
                  "a shard starts at its first sample");
}

static void test_tar_glob_and_single_shard(void) {
    char p[700];
    dataset ds;
    cnet_error err;
    snprintf(p, sizeof p, "%s/shard-[12].tar", shards);
    CHECK(open_tar(&ds, p, 0, 0, &err) == 0 && dataset_size(&ds) == 9, "glob: %s", err.msg);
    dataset_free(&ds);
    snprintf(p, sizeof p, "%s/shard-2.tar", shards);
    CHECK(open_tar(&ds, p, 0, 0, &err) == 0 && dataset_size(&ds) == 4, "one shard: %s", err.msg);
    dataset_free(&ds);
    snprintf(p, sizeof p, "%s/none-*.tar", shards);
    CHECK(open_tar(&ds, p, 0, 0, &err) == CNET_ENOTFOUND, "a glob matching nothing");
}

static void test_tar_hostile_members_refused(void) {
    static const struct {
        const char *what;
        tar_member m[3];
        int n;
        const char *want;
    } cases[] = {
        {"absolute", {{"/tmp/abs.png", 'f', "x", 0}}, 1, "absolute"},
        {"dotdot", {{"../up.png", 'f', "x", 0}}, 1, "'..'"},
        {"inner dotdot", {{"a/../../up.png", 'f', "x", 0}}, 1, "'..'"},
        {"symlink", {{"l.png", 'l', "/etc/passwd", 0}}, 1, "symbolic link"},
        {"hardlink", {{"s.png", 'f', "x", 0}, {"h.png", 'h', "s.png", 0}}, 2, "hard link"},
        {"device", {{"dev.png", 'c', NULL, 0}}, 1, "special file"},
        {"control", {{"a\x01.png", 'f', "x", 0}}, 1, "control character"},
        {"split key",
         {{"k.png", 'f', "x", 0}, {"j.png", 'f', "y", 0}, {"k.txt", 'f', "t", 0}},
         3,
         "not consecutive"},
        {"repeated", {{"k.png", 'f', "x", 0}, {"k.png", 'f', "y", 0}}, 2, "two target"},
    };
    char dir[700], p[800];
    snprintf(dir, sizeof dir, "%s/hostile", tmp);
    mkdir(dir, 0700);
    snprintf(p, sizeof p, "%s/evil.tar", dir);
    int refused = 0, total = (int)(sizeof cases / sizeof cases[0]);
    for (int i = 0; i < total; i++) {
        CHECK(tar_write(p, cases[i].m, cases[i].n) == 0, "writing %s", cases[i].what);
        dataset ds;
        cnet_error err = {0};
        int rc = open_tar(&ds, dir, 0, 0, &err);
        int good =
            rc == CNET_EFORMAT && strstr(err.msg, "evil.tar") && strstr(err.msg, cases[i].want);
        EXPECT(good, "%s: rc %d: %s", cases[i].what, rc, err.msg);
        refused += good;
        if (!rc) dataset_free(&ds);
    }
    printf("    %d/%d hostile shards refused naming the shard and the member\n", refused, total);
    /* A truncated shard is refused at open, naming it. */
    size_t len;
    char *whole = NULL, src[700];
    snprintf(src, sizeof src, "%s/shard-0.tar", shards);
    CHECK((whole = file_read(src, &len)) != NULL, "read shard");
    file_write(p, whole, 1024 + 300);
    free(whole);
    dataset ds;
    cnet_error err;
    CHECK(open_tar(&ds, dir, 0, 0, &err) == CNET_EFORMAT && strstr(err.msg, "evil.tar"),
          "truncated: %s", err.msg);
    unlink(p);
}

static void test_tar_sample_missing_a_member(void) {
    char dir[700], p[800];
    snprintf(dir, sizeof dir, "%s/incomplete", tmp);
    mkdir(dir, 0700);
    snprintf(p, sizeof p, "%s/a.tar", dir);
    const tar_member m[] = {
        {"x.png", 'f', "tx", 0}, {"x.cond.png", 'f', "cx", 0}, {"x.txt", 'f', "a caption", 0},
        {"y.png", 'f', "ty", 0}, {"y.txt", 'f', "another", 0},
    };
    CHECK(tar_write(p, m, 5) == 0, "write");
    dataset ds;
    cnet_error err;
    CHECK(open_tar(&ds, dir, 0, 0, &err) == 0 && dataset_size(&ds) == 2, "%s", err.msg);
    int missing = 0, good = 0;
    for (int k = 0; k < 2; k++) {
        dataset_sample s;
        int rc = dataset_next(&ds, &s, &err);
        if (rc) {
            missing++;
            CHECK(rc == CNET_ENOTFOUND && strstr(err.msg, "a.tar:y") &&
                      strstr(err.msg, "conditioning"),
                  "rc %d: %s", rc, err.msg);
        } else {
            good++;
            CHECK(s.target_len == 2 && !memcmp(s.target, "tx", 2) &&
                      !strcmp(s.caption, "a caption"),
                  "the complete sample");
        }
    }
    CHECK(missing == 1 && good == 1, "missing %d good %d", missing, good);
    dataset_report rep;
    CHECK(dataset_check(&ds, 0, 0, &rep, &err) == 0, "%s", err.msg);
    CHECK(rep.count[DATASET_PROBLEM_MISSING] == 1 && rep.usable == 1 && rep.bad[1] == 1 &&
              strstr(rep.examples[DATASET_PROBLEM_MISSING][0], "a.tar:y"),
          "check: %lld missing, %lld usable", (long long)rep.count[DATASET_PROBLEM_MISSING],
          (long long)rep.usable);
    dataset_report_free(&rep);
    dataset_free(&ds);
}

int main(int argc, char **argv) {
    harness_init(argc, argv);
    if (tmpdir_make(tmp, sizeof tmp, "cnet-dstar-") || write_shards())
        return printf("cannot write the shards\n"), 1;
    RUN(test_tar_every_sample_once_per_epoch);
    RUN(test_tar_order_seeded_and_cursor_exact);
    RUN(test_tar_buffer_of_one_reads_in_stream_order);
    RUN(test_tar_glob_and_single_shard);
    RUN(test_tar_hostile_members_refused);
    RUN(test_tar_sample_missing_a_member);
    tmpdir_remove(tmp);
    return harness_done();
}
