/* Dataset uploads against a real `cnet serve`: a valid imagefolder tar and a
 * fill50k zip are accepted with correct counts and usable by a job; a corpus
 * of malicious or broken archives (traversal, absolute path, symlink,
 * hardlink, device, bomb, too many entries, truncated, missing references) is
 * refused with 400/413 and nothing is written outside the data dir. The
 * archives are built here with libarchive's writer. */
#include <archive.h>
#include <archive_entry.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/lib/harness.h"
#include "tests/lib/lib_fs.h"
#include "tests/lib/lib_server.h"

static char dir[512], data[600];
static test_server srv;

typedef struct entry {
    const char *path;
    int type;            /* AE_IFREG, AE_IFDIR, AE_IFLNK, AE_IFCHR; 'h' for a hard link */
    const char *content; /* or the link target */
    size_t zeros;        /* > 0: that many zero bytes instead of content */
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
        size_t size = e[i].zeros ? e[i].zeros : e[i].content ? strlen(e[i].content) : 0;
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
        if (size && e[i].zeros) {
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

static long upload(const char *buf, size_t len, char **body) {
    http_resp r;
    http_do(&srv, "POST", "/v1/datasets?name=..%2Fevil%0Aname.tar", SERVER_TEST_TOKEN, NULL, buf,
            len, 0, &r);
    long status = r.status;
    if (body)
        *body = r.body;
    else
        http_resp_free(&r);
    return status;
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
    json_decref(rep);
    http_resp r;
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
    server_stop(&srv, SIGTERM, 10000);
    tmpdir_remove(dir);
    return harness_done();
}
