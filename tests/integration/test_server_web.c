/* The dashboard's files as a real `cnet serve` serves them, checked against
 * the files in web/ on disk: every file of web/ is served at /<name> (and
 * index.html at /) byte for byte, with the content type its extension calls
 * for, without a token, with a CSP, nosniff, no-cache and an ETag equal to
 * the file's sha256 prefix, answered 304 on If-None-Match; every script and
 * stylesheet the pages reference is one of those files; traversal attempts
 * (raw, percent-encoded, doubled slashes, case; a NUL can only
 * truncate the name) are 404 and never reach
 * a file; the API stays behind the token and uncached. */
#include <arpa/inet.h>
#include <dirent.h>
#include <openssl/sha.h>
#include <regex.h>
#include <signal.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/lib/harness.h"
#include "tests/lib/lib_fs.h"
#include "tests/lib/lib_server.h"

static char dir[512], data[600];
static test_server srv;

static const char *type_for(const char *name) {
    const char *ext = strrchr(name, '.');
    if (!ext) return NULL;
    if (!strcmp(ext, ".html")) return "text/html; charset=utf-8";
    if (!strcmp(ext, ".js")) return "text/javascript; charset=utf-8";
    if (!strcmp(ext, ".css")) return "text/css; charset=utf-8";
    if (!strcmp(ext, ".svg")) return "image/svg+xml";
    return NULL;
}

/* GET path over a raw socket, exactly as written (no client-side dot
 * segment removal); returns the status, or -1, and *length the
 * Content-Length (-1 if none). */
static int raw_get(const char *path, size_t path_len, long *length) {
    *length = -1;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)srv.port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        if (fd >= 0) close(fd);
        return -1;
    }
    char req[600] = "GET ";
    size_t n = 4;
    memcpy(req + n, path, path_len), n += path_len;
    const char *tail = " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    memcpy(req + n, tail, strlen(tail)), n += strlen(tail);
    int status = -1;
    char buf[2048] = {0};
    if (write(fd, req, n) == (ssize_t)n && read(fd, buf, sizeof buf - 1) > 12) {
        sscanf(buf, "HTTP/1.%*d %d", &status);
        const char *cl = strcasestr(buf, "\r\nContent-Length:");
        if (cl) *length = atol(cl + 17);
    }
    close(fd);
    return status;
}

static void test_web_every_file_served_as_on_disk(void) {
    DIR *d = opendir("web");
    CHECK(d, "web/ (tests run from the repo root)");
    int files = 0;
    for (struct dirent *de; (de = readdir(d));) {
        if (de->d_name[0] == '.') continue;
        char path[600], url[600], hdr[512];
        snprintf(path, sizeof path, "web/%s", de->d_name);
        size_t n;
        char *disk = file_read(path, &n);
        EXPECT(disk && type_for(de->d_name), "%s: unreadable or an unknown type", path);
        if (!disk || !type_for(de->d_name)) {
            free(disk);
            continue;
        }
        files++;
        snprintf(url, sizeof url, "/%s", de->d_name);
        http_resp r;
        http_do(&srv, "GET", url, NULL, NULL, NULL, 0, 0, &r);
        EXPECT(r.status == 200 && r.len == n && !memcmp(r.body, disk, n), "%s: %ld, %zu bytes", url,
               r.status, r.len);
        hdr[0] = '\0';
        http_header(&r, "Content-Type", hdr, sizeof hdr);
        EXPECT(!strcmp(hdr, type_for(de->d_name)), "%s: Content-Type %s", url, hdr);
        hdr[0] = '\0';
        http_header(&r, "Content-Security-Policy", hdr, sizeof hdr);
        EXPECT(strstr(hdr, "default-src 'none'") && strstr(hdr, "script-src 'self'") &&
                   strstr(hdr, "frame-ancestors 'none'") && !strstr(hdr, "unsafe"),
               "%s: CSP %s", url, hdr);
        hdr[0] = '\0';
        http_header(&r, "X-Content-Type-Options", hdr, sizeof hdr);
        EXPECT(!strcmp(hdr, "nosniff"), "%s: X-Content-Type-Options %s", url, hdr);
        hdr[0] = '\0';
        http_header(&r, "Cache-Control", hdr, sizeof hdr);
        EXPECT(!strcmp(hdr, "no-cache"), "%s: Cache-Control %s", url, hdr);
        unsigned char md[SHA256_DIGEST_LENGTH];
        SHA256((const unsigned char *)disk, n, md);
        char want[40] = "\"", etag[128] = "";
        for (int k = 0; k < 16; k++) sprintf(want + 1 + 2 * k, "%02x", md[k]);
        strcat(want, "\"");
        http_header(&r, "ETag", etag, sizeof etag);
        EXPECT(!strcmp(etag, want), "%s: ETag %s, sha256 prefix %s", url, etag, want);
        http_resp_free(&r);
        char inm[200];
        snprintf(inm, sizeof inm, "If-None-Match: \"0000\", %s", want);
        const char *const h[] = {inm, NULL};
        http_do(&srv, "GET", url, NULL, h, NULL, 0, 0, &r);
        EXPECT(r.status == 304 && r.len == 0, "%s with its ETag: %ld", url, r.status);
        http_resp_free(&r);
        const char *const stale[] = {"If-None-Match: \"0123\"", NULL};
        http_do(&srv, "GET", url, NULL, stale, NULL, 0, 0, &r);
        EXPECT(r.status == 200 && r.len == n, "%s with a stale ETag: %ld", url, r.status);
        http_resp_free(&r);
        if (!strcmp(de->d_name, "index.html")) {
            http_do(&srv, "GET", "/", NULL, NULL, NULL, 0, 0, &r);
            EXPECT(r.status == 200 && r.len == n && !memcmp(r.body, disk, n), "/: %ld", r.status);
            http_resp_free(&r);
        }
        free(disk);
    }
    closedir(d);
    printf("    %d files of web/ served as on disk\n", files);
    CHECK(files >= 5, "only %d files", files);
}

/* Every src="x", href="x" of index.html and `from './x'` of the scripts
 * names a file of web/ (so it is in the table the first test walked). */
static void test_web_references_resolve(void) {
    DIR *d = opendir("web");
    CHECK(d, "web/");
    regex_t re;
    CHECK(!regcomp(&re, "(src|href)=\"([A-Za-z0-9_.-]+)\"|from '\\./([A-Za-z0-9_.-]+)'",
                   REG_EXTENDED),
          "regex");
    int refs = 0;
    for (struct dirent *de; (de = readdir(d));) {
        if (de->d_name[0] == '.') continue;
        char path[600];
        snprintf(path, sizeof path, "web/%s", de->d_name);
        char *text = file_read(path, NULL);
        regmatch_t m[4];
        for (char *p = text; p && !regexec(&re, p, 4, m, 0); p += m[0].rm_eo) {
            int g = m[2].rm_so >= 0 ? 2 : 3;
            char ref[300], file[400];
            snprintf(ref, sizeof ref, "%.*s", (int)(m[g].rm_eo - m[g].rm_so), p + m[g].rm_so);
            snprintf(file, sizeof file, "web/%s", ref);
            struct stat st;
            EXPECT(stat(file, &st) == 0, "%s refers to %s, which is not in web/", path, ref);
            refs++;
        }
        free(text);
    }
    regfree(&re);
    closedir(d);
    printf("    %d references between the dashboard's files\n", refs);
    CHECK(refs >= 10, "only %d references", refs);
}

static void test_web_no_traversal(void) {
    static const char *const paths[] = {"/../Makefile",
                                        "/%2e%2e/Makefile",
                                        "/%2e%2e%2fMakefile",
                                        "/..%2fMakefile",
                                        "/web/index.html",
                                        "/./index.html/",
                                        "//index.html",
                                        "/app.js/",
                                        "/APP.JS",
                                        "/.gitignore",
                                        "/%2fetc%2fpasswd",
                                        "/../../../../etc/passwd",
                                        "/server/http_static.c",
                                        "/api.js?x=/../../Makefile#",
                                        "/v1/../Makefile"};
    int n = (int)(sizeof paths / sizeof paths[0]);
    long len;
    for (int i = 0; i < n; i++) {
        int status = raw_get(paths[i], strlen(paths[i]), &len);
        int ok = status == 404 || status == 400;
        /* A query string is not part of the path: /api.js?… is api.js. */
        if (!strncmp(paths[i], "/api.js?", 8)) ok = status == 200;
        EXPECT(ok, "GET %s: %d", paths[i], status);
    }
    /* libmicrohttpd hands the path over as a C string, so a (decoded) NUL
     * ends it: the lookup sees "index.html" and can only ever give that. */
    size_t index_len;
    char *index = file_read("web/index.html", &index_len);
    free(index);
    static const char raw_nul[] = "/index.html\0../../Makefile";
    int a = raw_get("/index.html%00../../Makefile", 28, &len);
    EXPECT(a == 404 || a == 400 || (a == 200 && len == (long)index_len), "%%00: %d, %ld bytes", a,
           len);
    a = raw_get(raw_nul, sizeof raw_nul - 1, &len);
    EXPECT(a == 404 || a == 400 || (a == 200 && len == (long)index_len), "NUL: %d, %ld bytes", a,
           len);
    http_resp r;
    http_do(&srv, "POST", "/", NULL, NULL, "x", 1, 0, &r);
    EXPECT(r.status == 405, "POST /: %ld", r.status);
    http_resp_free(&r);
}

static void test_web_api_still_protected_and_uncached(void) {
    http_resp r;
    char cc[64] = "";
    http_do(&srv, "GET", "/v1/jobs", NULL, NULL, NULL, 0, 0, &r);
    EXPECT(r.status == 401, "GET /v1/jobs without a token: %ld", r.status);
    http_resp_free(&r);
    http_do(&srv, "GET", "/v1/jobs", SERVER_TEST_TOKEN, NULL, NULL, 0, 0, &r);
    http_header(&r, "Cache-Control", cc, sizeof cc);
    EXPECT(r.status == 200 && !strcmp(cc, "no-store"), "GET /v1/jobs: %ld, Cache-Control %s",
           r.status, cc);
    http_resp_free(&r);
}

int main(int argc, char **argv) {
    harness_init(argc, argv);
    if (tmpdir_make(dir, sizeof dir, "cnet-web-")) return printf("no temp dir\n"), 1;
    snprintf(data, sizeof data, "%s/data", dir);
    mkdir(data, 0700);
    if (server_start(&srv, data, NULL)) {
        printf("cannot start cnet serve\ntest_server_web: 0 passed, 1 failed\n");
        return 1;
    }
    RUN(test_web_every_file_served_as_on_disk);
    RUN(test_web_references_resolve);
    RUN(test_web_no_traversal);
    RUN(test_web_api_still_protected_and_uncached);
    server_stop(&srv, SIGTERM, 10000);
    tmpdir_remove(dir);
    return harness_done();
}
