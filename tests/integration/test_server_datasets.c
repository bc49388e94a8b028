/* Dataset uploads against a real `cnet serve`: a valid imagefolder tar and a
 * fill50k zip are accepted with correct counts and usable by a job; a corpus
 * of malicious or broken archives (traversal, absolute path, symlink,
 * hardlink, device, bomb, too many entries, truncated, missing references) is
 * refused with 400/413 and nothing is written outside the data dir. Parquet:
 * one file and a Hub snapshot archive (data/train-*.parquet), written by the
 * independent writer (tests/lib/lib_parquet), are accepted with the samples,
 * columns and previews (bytes and captions) of the writer's truth; broken
 * ones are refused naming the file. Refusals always get an answer: a chunked
 * body far over the cap is 413, a job below --disk-floor 507, and a disk that
 * fills up (a small tmpfs, mounted when we are root; skipped otherwise) while
 * the body streams in or while it is extracted is 507. The archives are built
 * here with libarchive's writer. */
#include <archive.h>
#include <archive_entry.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/lib/harness.h"
#include "tests/lib/lib_fs.h"
#include "tests/lib/lib_parquet.h"
#include "tests/lib/lib_server.h"

static char dir[512], data[600];
static test_server srv;

typedef struct entry {
    const char *path;
    int type;            /* AE_IFREG, AE_IFDIR, AE_IFLNK, AE_IFCHR; 'h' for a hard link */
    const char *content; /* or the link target */
    size_t size;         /* > 0: that many bytes of content, or of zeros when it is NULL */
} entry;

/* Builds an archive in memory; *len its size. zip != 0 for zip, else tar.gz or plain tar. */
static char *build(const entry *e, int n, int zip, int gz, size_t *len) {
    size_t cap = 16 << 20;
    char *buf = malloc(cap);
    struct archive *a = archive_write_new();
    if (zip)
        archive_write_set_format_zip(a);
    else
        archive_write_set_format_pax_restricted(a);
    if (gz) archive_write_add_filter_gzip(a);
    archive_write_open_memory(a, buf, cap, len);
    for (int i = 0; i < n; i++) {
        struct archive_entry *ae = archive_entry_new();
        archive_entry_set_pathname(ae, e[i].path);
        archive_entry_set_perm(ae, 0644);
        size_t size = e[i].size ? e[i].size : e[i].content ? strlen(e[i].content) : 0;
        if (e[i].type == 'h') {
            archive_entry_set_filetype(ae, AE_IFREG);
            archive_entry_set_hardlink(ae, e[i].content);
            size = 0;
        } else if (e[i].type == AE_IFLNK) {
            archive_entry_set_filetype(ae, AE_IFLNK);
            archive_entry_set_symlink(ae, e[i].content);
            size = 0;
        } else {
            archive_entry_set_filetype(ae, (mode_t)e[i].type);
            if (e[i].type != AE_IFREG) size = 0;
        }
        archive_entry_set_size(ae, (la_int64_t)size);
        archive_write_header(a, ae);
        if (size && !e[i].content) {
            char *z = calloc(1, size);
            archive_write_data(a, z, size);
            free(z);
        } else if (size) {
            archive_write_data(a, e[i].content, size);
        }
        archive_entry_free(ae);
    }
    archive_write_close(a);
    archive_write_free(a);
    return buf;
}

static long upload_to(const test_server *to, const char *buf, size_t len, char **body) {
    http_resp r;
    http_do(to, "POST", "/v1/datasets?name=..%2Fevil%0Aname.tar", SERVER_TEST_TOKEN, NULL, buf, len,
            0, &r);
    long status = r.status;
    if (body)
        *body = r.body;
    else
        http_resp_free(&r);
    return status;
}

static long upload(const char *buf, size_t len, char **body) {
    return upload_to(&srv, buf, len, body);
}

static const entry good_imagefolder[] = {
    {"train/", AE_IFDIR, NULL, 0},
    {"train/metadata.jsonl", AE_IFREG,
     "{\"file_name\": \"images/0.png\", \"conditioning_image_file_name\": \"cond/0.png\", "
     "\"text\": \"a red circle\"}\n"
     "{\"file_name\": \"images/1.png\", \"conditioning_image_file_name\": \"cond/1.png\", "
     "\"text\": \"a blue square\"}\n",
     0},
    {"train/images/0.png", AE_IFREG, "png0", 0},
    {"train/images/1.png", AE_IFREG, "png1", 0},
    {"train/cond/0.png", AE_IFREG, "c0", 0},
    {"train/cond/1.png", AE_IFREG, "c1", 0},
};

static void test_datasets_valid_uploads(void) {
    size_t len;
    char *tar = build(good_imagefolder, 6, 0, 1, &len), *body = NULL;
    long st = upload(tar, len, &body);
    free(tar);
    json_t *rep = json_loads(body, 0, NULL);
    CHECK(st == 201, "imagefolder: %ld %s", st, body);
    free(body);
    CHECK(json_integer_value(json_object_get(rep, "samples")) == 2 &&
              !strcmp(json_string_value(json_object_get(rep, "format")), "imagefolder") &&
              !strcmp(json_string_value(json_object_get(rep, "original_name")), "evilname.tar"),
          "report");
    char spec[300];
    snprintf(spec, sizeof spec, "{\"pretrained_model_name_or_path\": \"sd\", \"dataset\": \"%s\"}",
             json_string_value(json_object_get(rep, "id")));
    char path[200];
    snprintf(path, sizeof path, "/v1/datasets/%s/samples",
             json_string_value(json_object_get(rep, "id")));
    json_decref(rep);
    http_resp r;
    http_do(&srv, "GET", path, SERVER_TEST_TOKEN, NULL, NULL, 0, 0, &r);
    json_t *list = json_object_get(rep = json_loads(r.body, 0, NULL), "samples");
    CHECK(r.status == 200 && json_array_size(list) == 2 &&
              !strcmp(json_string_value(json_object_get(json_array_get(list, 1), "caption")),
                      "a blue square"),
          "imagefolder preview: %ld %s", r.status, r.body);
    json_decref(rep);
    http_resp_free(&r);
    strcat(path, "/1?part=conditioning_image");
    http_do(&srv, "GET", path, SERVER_TEST_TOKEN, NULL, NULL, 0, 0, &r);
    CHECK(r.status == 200 && r.len == 2 && !memcmp(r.body, "c1", 2), "cond bytes: %ld", r.status);
    http_resp_free(&r);
    http_do(&srv, "POST", "/v1/jobs", SERVER_TEST_TOKEN, NULL, spec, strlen(spec), 0, &r);
    CHECK(r.status == 202, "a job on the uploaded dataset: %ld %s", r.status, r.body);
    http_resp_free(&r);
    const entry fill[] = {
        {"prompt.json", AE_IFREG,
         "{\"source\": \"source/0.png\", \"target\": \"target/0.png\", \"prompt\": \"cyan "
         "circle\"}\n",
         0},
        {"source/0.png", AE_IFREG, "s", 0},
        {"target/0.png", AE_IFREG, "t", 0},
    };
    char *zip = build(fill, 3, 1, 0, &len);
    st = upload(zip, len, &body);
    free(zip);
    CHECK(st == 201 && strstr(body, "fill50k"), "fill50k zip: %ld %s", st, body);
    free(body);
    http_do(&srv, "GET", "/v1/datasets", SERVER_TEST_TOKEN, NULL, NULL, 0, 0, &r);
    json_t *v = json_loads(r.body, 0, NULL);
    CHECK(json_array_size(json_object_get(v, "datasets")) == 2, "listed: %s", r.body);
    json_decref(v);
    http_resp_free(&r);
}

/* Counts files anywhere under path named like a planted escape. */
static int escapes_under(const char *path) {
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "find '%s' -name 'escape*' 2>/dev/null | wc -l", path);
    FILE *p = popen(cmd, "r");
    int n = -1;
    if (p) {
        if (fscanf(p, "%d", &n) != 1) n = -1;
        pclose(p);
    }
    return n;
}

static void test_datasets_malicious_archives(void) {
    static const char *meta = "{\"file_name\": \"a.png\", \"conditioning_image_file_name\": "
                              "\"b.png\", \"text\": \"t\"}\n";
    entry many[30];
    char names[30][32];
    for (int i = 0; i < 30; i++) {
        snprintf(names[i], sizeof names[i], "f%02d.png", i);
        many[i] = (entry){names[i], AE_IFREG, "x", 0};
    }
    struct {
        const char *name;
        entry e[3];
        int n, zip, gz;
        long want;
    } cases[] = {
        {"traversal", {{"../../escape-dotdot", AE_IFREG, "x", 0}}, 1, 0, 0, 400},
        {"traversal zip", {{"a/../../escape-zip", AE_IFREG, "x", 0}}, 1, 1, 0, 400},
        {"absolute", {{"/tmp/escape-abs", AE_IFREG, "x", 0}}, 1, 0, 0, 400},
        {"symlink", {{"escape-link", AE_IFLNK, "/etc/passwd", 0}}, 1, 0, 0, 400},
        {"symlink then write",
         {{"d", AE_IFLNK, "/tmp", 0}, {"d/escape-through-link", AE_IFREG, "x", 0}},
         2,
         0,
         0,
         400},
        {"hardlink",
         {{"metadata.jsonl", AE_IFREG, meta, 0}, {"escape-hard", 'h', "/etc/passwd", 0}},
         2,
         0,
         0,
         400},
        {"device", {{"escape-dev", AE_IFCHR, NULL, 0}}, 1, 0, 0, 400},
        {"bomb", {{"escape-bomb.png", AE_IFREG, NULL, 8 << 20}}, 1, 0, 1, 413},
        {"missing reference",
         {{"metadata.jsonl", AE_IFREG, meta, 0}, {"a.png", AE_IFREG, "x", 0}},
         2,
         0,
         0,
         400},
        {"no index", {{"a.png", AE_IFREG, "x", 0}}, 1, 0, 0, 400},
    };
    int rejected = 0, total = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t len;
        char *buf = build(cases[i].e, cases[i].n, cases[i].zip, cases[i].gz, &len), *body;
        long st = upload(buf, len, &body);
        free(buf);
        total++;
        rejected += st == cases[i].want;
        EXPECT(st == cases[i].want, "%s: %ld (want %ld) %s", cases[i].name, st, cases[i].want,
               body);
        free(body);
    }
    size_t len;
    char *buf = build(many, 30, 0, 0, &len), *body;
    long st = upload(buf, len, &body);
    total++, rejected += st == 413;
    EXPECT(st == 413, "30 entries over a cap of 20: %ld %s", st, body);
    free(body);
    st = upload(buf, len / 2 + 100, &body); /* truncated */
    total++, rejected += st == 400;
    EXPECT(st == 400, "truncated: %ld %s", st, body);
    free(body);
    free(buf);
    st = upload("not an archive at all", 21, &body);
    total++, rejected += st == 400;
    EXPECT(st == 400, "garbage: %ld", st);
    free(body);
    int outside = escapes_under(dir) + escapes_under("/tmp/escape-abs") +
                  (access("/tmp/escape-through-link", F_OK) == 0);
    char leftovers[700];
    snprintf(leftovers, sizeof leftovers, "%s/datasets", data);
    printf("    malicious archives: %d/%d rejected as expected, %d files planted anywhere\n",
           rejected, total, outside);
    CHECK(outside == 0, "files escaped: %d", outside);
    CHECK(rejected == total, "rejected %d of %d", rejected, total);
    /* No partial dataset or temp upload is left behind. */
    char cmd[1400];
    snprintf(cmd, sizeof cmd, "ls -a '%s/datasets' '%s/tmp' | grep -c -e partial -e upload-", data,
             data);
    FILE *p = popen(cmd, "r");
    int left = -1;
    if (p && fscanf(p, "%d", &left) != 1) left = -1;
    if (p) pclose(p);
    CHECK(left == 0, "leftovers: %d", left);
}

/* GET path; the body (owned) and its length, the status returned. */
static long get(const char *path, char **body, size_t *len) {
    http_resp r;
    http_do(&srv, "GET", path, SERVER_TEST_TOKEN, NULL, NULL, 0, 0, &r);
    *body = r.body, *len = r.len;
    r.body = NULL;
    long st = r.status;
    http_resp_free(&r);
    return st;
}

/* Sample i's image (part "image" or "conditioning_image") equals the hex truth. */
static int sample_bytes_are(const char *id, int i, const char *part, const char *hex) {
    char path[200], *body;
    size_t len, want_len;
    snprintf(path, sizeof path, "/v1/datasets/%s/samples/%d?part=%s", id, i, part);
    long st = get(path, &body, &len);
    uint8_t *want = parquet_unhex(hex, &want_len);
    int ok = st == 200 && want && len == want_len && !memcmp(body, want, len);
    free(body), free(want);
    return ok;
}

static char *slurp(const char *dirname, const char *leaf, size_t *n) {
    char p[1200];
    snprintf(p, sizeof p, "%s/%s", dirname, leaf);
    return file_read(p, n);
}

/* The report's columns joined with commas. */
static void columns_of(json_t *rep, char *out, size_t size) {
    out[0] = '\0';
    json_t *v;
    size_t i;
    json_array_foreach(json_object_get(rep, "columns"), i, v) {
        if (i) strncat(out, ",", size - strlen(out) - 1);
        strncat(out, json_string_value(v), size - strlen(out) - 1);
    }
}

static void test_datasets_parquet(void) {
    char gen[700], fill[800], snap[800];
    snprintf(gen, sizeof gen, "%s/parquet", dir);
    snprintf(fill, sizeof fill, "%s/fill", gen);
    snprintf(snap, sizeof snap, "%s/snap", gen);
    CHECK(parquet_generate("fill50k", fill) == 0 && parquet_generate("dataset", snap) == 0,
          "the independent writer ran");

    /* One Parquet file as the body (the guide's fusing/fill50k layout). */
    size_t len;
    char *pq = slurp(fill, "repo/data/train-00000-of-00001.parquet", &len), *body;
    CHECK(pq && len > 8, "the writer's file");
    long st = upload(pq, len, &body);
    json_t *rep = json_loads(body, 0, NULL);
    char cols[200];
    columns_of(rep, cols, sizeof cols);
    EXPECT(st == 201 && !strcmp(json_string_value(json_object_get(rep, "format")), "parquet") &&
               json_integer_value(json_object_get(rep, "samples")) == 6 &&
               json_integer_value(json_object_get(rep, "bytes")) == (json_int_t)len &&
               !strcmp(cols, "image,conditioning_image,text"),
           "one Parquet file: %ld %s", st, body);
    free(body);
    char path[200];
    snprintf(path, sizeof path, "/v1/datasets/%s/samples",
             json_string_value(json_object_get(rep, "id")));
    size_t n;
    st = get(path, &body, &n);
    json_t *list = json_loads(body, 0, NULL),
           *first = json_array_get(json_object_get(list, "samples"), 0);
    /* write.mjs fill50k: row 0 is a red disc on cyan. */
    EXPECT(st == 200 && json_array_size(json_object_get(list, "samples")) == 6 &&
               !strcmp(json_string_value(json_object_get(first, "caption")),
                       "red circle with cyan background"),
           "its preview: %ld %s", st, body);
    json_decref(list);
    free(body);
    strcat(path, "/0");
    st = get(path, &body, &n);
    EXPECT(st == 200 && n > 8 && !memcmp(body, "\x89PNG", 4), "its first image: %ld", st);
    free(body);
    json_decref(rep);

    /* Broken files: a footer whose length lies, a file cut short inside an
     * archive. Refused naming the file, the server still answering. */
    static const char *const lies[] = {"\x00\x00\x10\x00", "\xff\xff\xff\x7f"};
    for (int k = 0; k < 2; k++) { /* a footer length past the file, then past the reader's cap */
        char *bad = malloc(len);
        memcpy(bad, pq, len);
        memcpy(bad + len - 8, lies[k], 4);
        st = upload(bad, len, &body);
        EXPECT(st == 400 && strstr(body, "train-00000-of-00001.parquet") && !strstr(body, dir),
               "a lying footer length: %ld %s", st, body);
        free(body), free(bad);
    }
    const entry cut[] = {{"data/train-00000-of-00001.parquet", AE_IFREG, pq, len / 2}};
    size_t alen;
    char *tar = build(cut, 1, 0, 0, &alen);
    st = upload(tar, alen, &body);
    EXPECT(st == 400 && strstr(body, "train-00000-of-00001.parquet") && !strstr(body, dir),
           "a truncated shard: %ld %s", st, body);
    free(body), free(tar), free(pq);

    /* A Hub snapshot as a tar.gz: data/train-*.parquet (a test split to ignore) and
     * images/ for the rows whose bytes are null. */
    static const char *const leaves[] = {"data/train-00000-of-00002.parquet",
                                         "data/train-00001-of-00002.parquet",
                                         "data/test-00000-of-00001.parquet",
                                         "images/4.png",
                                         "images/10.png",
                                         "images/16.png"};
    entry snap_e[6];
    char *held[6];
    for (int i = 0; i < 6; i++) {
        size_t l;
        held[i] = slurp(snap, leaves[i], &l);
        CHECK(held[i], "the writer wrote %s", leaves[i]);
        snap_e[i] = (entry){leaves[i], AE_IFREG, held[i], l};
    }
    tar = build(snap_e, 6, 0, 1, &alen);
    for (int i = 0; i < 6; i++) free(held[i]);
    st = upload(tar, alen, &body);
    free(tar);
    rep = json_loads(body, 0, NULL);
    EXPECT(st == 201 && !strcmp(json_string_value(json_object_get(rep, "format")), "parquet") &&
               json_integer_value(json_object_get(rep, "samples")) == 17,
           "a snapshot archive: %ld %s", st, body);
    free(body);
    char id[64], truth_path[900];
    snprintf(id, sizeof id, "%s", json_string_value(json_object_get(rep, "id")));
    json_decref(rep);
    snprintf(truth_path, sizeof truth_path, "%s/truth.json", snap);
    json_t *truth = json_load_file(truth_path, 0, NULL), *rows = json_object_get(truth, "rows");
    snprintf(path, sizeof path, "/v1/datasets/%s/samples", id);
    st = get(path, &body, &n);
    list = json_loads(body, 0, NULL);
    int same = 0;
    for (int i = 0; i < 8; i++) {
        json_t *row = json_array_get(rows, (size_t)i);
        json_t *got = json_array_get(json_object_get(list, "samples"), (size_t)i);
        same +=
            got &&
            !strcmp(json_string_value(json_object_get(got, "caption")),
                    json_string_value(json_object_get(row, "text"))) &&
            sample_bytes_are(id, i, "image", json_string_value(json_object_get(row, "target"))) &&
            sample_bytes_are(id, i, "conditioning_image",
                             json_string_value(json_object_get(row, "cond")));
    }
    printf("    snapshot preview: %d of 8 samples equal the writer's bytes and captions\n", same);
    EXPECT(st == 200 && same == 8, "preview: %ld %s", st, body);
    json_decref(list), json_decref(truth);
    free(body);
    snprintf(path, sizeof path, "/v1/datasets/%s/samples/8", id);
    st = get(path, &body, &n);
    EXPECT(st == 404, "past the preview: %ld", st);
    free(body);
    snprintf(path, sizeof path, "/v1/datasets/%s/samples/0?part=mask", id);
    st = get(path, &body, &n);
    EXPECT(st == 400, "an unknown part: %ld", st);
    free(body);
    st = get("/v1/datasets/d_00000000000000000000000000000000/samples", &body, &n);
    EXPECT(st == 404, "an unknown dataset: %ld", st);
    free(body);
    st = get("/v1/datasets/..%2F..%2Fetc/samples", &body, &n);
    EXPECT(st == 404, "a traversal id: %ld", st);
    free(body);
}

/* n bytes that no compressor shrinks (an LCG's high bytes). */
static char *noise(size_t n) {
    char *b = malloc(n);
    uint64_t x = 88172645463325252ull;
    for (size_t i = 0; i < n; i++) b[i] = (char)((x = x * 6364136223846793005ull + 1) >> 56);
    return b;
}

/* A chunked body (no Content-Length) far over --upload-max is read to its
 * end and answered 413, not cut off without an answer. */
static void test_datasets_chunked_over_limit(void) {
    size_t n = 4000000 + (6 << 20);
    char *big = noise(n);
    http_resp r;
    http_do(&srv, "POST", "/v1/datasets", SERVER_TEST_TOKEN, NULL, big, n, 1, &r);
    free(big);
    EXPECT(r.status == 413 && strstr(r.body, "body_too_large"), "chunked, 6 MiB over: %ld %s",
           r.status, r.body ? r.body : "");
    http_resp_free(&r);
}

/* A server whose --disk-floor is above the free space refuses training jobs
 * (they write checkpoints) with 507, as it refuses uploads. */
static void test_datasets_job_below_disk_floor(void) {
    char root[700], ds[800], meta[900], models[700], sdata[700];
    snprintf(root, sizeof root, "%s/root", dir);
    snprintf(ds, sizeof ds, "%s/ds", root);
    snprintf(meta, sizeof meta, "%s/metadata.jsonl", ds);
    snprintf(models, sizeof models, "%s/models", data);
    snprintf(sdata, sizeof sdata, "%s/floor-data", dir);
    mkdir(root, 0700), mkdir(ds, 0700), mkdir(sdata, 0700);
    file_write(meta, "{}\n", 3);
    const char *const args[] = {
        "--models", models, "--data-root", root, "--disk-floor", "9000000000000000000", NULL};
    test_server high;
    CHECK(server_start(&high, sdata, args) == 0, "cannot start cnet serve");
    char spec[1000];
    snprintf(spec, sizeof spec, "{\"pretrained_model_name_or_path\": \"sd\", \"dataset\": \"%s\"}",
             ds);
    http_resp r;
    http_do(&high, "POST", "/v1/jobs", SERVER_TEST_TOKEN, NULL, spec, strlen(spec), 0, &r);
    EXPECT(r.status == 507 && strstr(r.body, "insufficient_storage"),
           "a job below the floor: %ld %s", r.status, r.body);
    http_resp_free(&r);
    http_do(&high, "GET", "/v1/jobs", SERVER_TEST_TOKEN, NULL, NULL, 0, 0, &r);
    json_t *jobs = json_loads(r.body, 0, NULL);
    EXPECT(r.status == 200 && json_array_size(json_object_get(jobs, "jobs")) == 0,
           "no job was queued: %s", r.body);
    json_decref(jobs);
    http_resp_free(&r);
    server_stop(&high, SIGTERM, 10000);
}

/* A disk that fills up (a 3 MiB tmpfs) while the body streams in, or while
 * the archive is extracted, is answered 507, and nothing is left behind. */
static void test_datasets_disk_full(void) {
    char mnt[700], sdata[800], models[700], cmd[2000];
    snprintf(mnt, sizeof mnt, "%s/small", dir);
    snprintf(sdata, sizeof sdata, "%s/data", mnt);
    snprintf(models, sizeof models, "%s/models", data);
    mkdir(mnt, 0700);
    snprintf(cmd, sizeof cmd, "mount -t tmpfs -o size=3m cnet-test '%s' 2>/dev/null", mnt);
    if (geteuid() != 0 || system(cmd) != 0) {
        printf("    SKIP: a full disk needs a small tmpfs (root and mount); not tested here\n");
        return;
    }
    mkdir(sdata, 0700);
    const char *const args[] = {"--models", models, "--disk-floor", "0", "--upload-max",
                                "8000000",  NULL};
    test_server small;
    int up = server_start(&small, sdata, args) == 0;
    EXPECT(up, "cannot start cnet serve on the tmpfs");
    if (up) {
        char *big = noise(4 << 20), *body;
        long st = upload_to(&small, big, 4 << 20, &body);
        EXPECT(st == 507 && strstr(body, "insufficient_storage"), "4 MiB into 3: %ld %s", st, body);
        free(body);
        const entry fat[] = {
            {"metadata.jsonl", AE_IFREG,
             "{\"file_name\": \"a.png\", \"conditioning_image_file_name\": \"a.png\", "
             "\"text\": \"t\"}\n",
             0},
            {"a.png", AE_IFREG, big, 1600 << 10}};
        size_t len;
        char *tar = build(fat, 2, 0, 0, &len);
        st = upload_to(&small, tar, len, &body);
        EXPECT(st == 507 && strstr(body, "disk is full") && !strstr(body, dir),
               "1.6 MiB extracted next to its 1.6 MiB upload: %ld %s", st, body);
        free(body), free(tar), free(big);
        snprintf(cmd, sizeof cmd, "ls -a '%s/datasets' '%s/tmp' | grep -c -e partial -e upload-",
                 sdata, sdata);
        FILE *p = popen(cmd, "r");
        int left = -1;
        if (p && fscanf(p, "%d", &left) != 1) left = -1;
        if (p) pclose(p);
        EXPECT(left == 0, "leftovers on the full disk: %d", left);
        server_stop(&small, SIGTERM, 10000);
    }
    snprintf(cmd, sizeof cmd, "umount '%s'", mnt);
    EXPECT(system(cmd) == 0, "umount %s", mnt);
}

int main(int argc, char **argv) {
    harness_init(argc, argv);
    if (tmpdir_make(dir, sizeof dir, "cnet-ds-")) return printf("no temp dir\n"), 1;
    snprintf(data, sizeof data, "%s/data", dir);
    char models[700], idx[800];
    snprintf(models, sizeof models, "%s/models", data);
    mkdir(data, 0700);
    mkdir(models, 0700);
    snprintf(idx, sizeof idx, "%s/sd", models);
    mkdir(idx, 0700);
    strcat(idx, "/model_index.json");
    file_write(idx, "{}", 2);
    const char *const args[] = {"--models", models, "--dataset-max-entries", "20", "--upload-max",
                                "4000000",  NULL};
    if (server_start(&srv, data, args)) {
        printf("cannot start cnet serve\ntest_server_datasets: 0 passed, 1 failed\n");
        return 1;
    }
    RUN(test_datasets_valid_uploads);
    RUN(test_datasets_malicious_archives);
    RUN(test_datasets_parquet);
    RUN(test_datasets_chunked_over_limit);
    RUN(test_datasets_job_below_disk_floor);
    RUN(test_datasets_disk_full);
    server_stop(&srv, SIGTERM, 10000);
    tmpdir_remove(dir);
    return harness_done();
}
