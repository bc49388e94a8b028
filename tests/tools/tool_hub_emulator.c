/* A local emulator of the Hugging Face Hub routes cnet speaks (HUB.md §8),
 * for tests: libmicrohttpd on 127.0.0.1, repos kept on disk, faults on
 * demand, and a request log.
 *
 *   tool_hub_emulator --data DIR [--token T] [--read-token R] [--log FILE]
 *                     [--multipart-threshold BYTES] [--chunk-size BYTES]
 *                     [--regular-max BYTES]
 * Listens on an ephemeral port, prints "port N" on stdout, and runs until
 * stdin closes or SIGTERM. Writes need "Authorization: Bearer T" (401
 * without, 403 with the read-only R); private repos need either to read.
 *
 * Storage is "pre-signed": LFS PUT/GET and multipart completion live under
 * /_storage/ with a fake signature in the query and need no token; any
 * Authorization header they receive is counted (stats "storage_auth").
 * Control routes (no auth): POST /_emu/fault?route=R&kind=K[&status=S]
 * [&count=N][&after=N][&retry_after=S][&ratelimit_reset=S][&delay_ms=MS]
 * with K one of status | drop (close, no answer) | drop_after (process, then
 * close without answering) | slow (wait delay_ms) | drop_body (send half the
 * body, then close); POST /_emu/reset; GET /_emu/stats.
 * Routes: whoami create info preupload batch verify commit resolve
 * storage_put storage_part complete storage_get branch. A branch (POST
 * /api/{models|datasets}/<repo>/branch/<name>, body {"startingPoint": rev},
 * default main's head, as huggingface_hub's create_branch) may be any ref
 * name, refs/convert/parquet included: a test commits the Hub's Parquet
 * conversion of a dataset there.
 * Log: one line per request: route, method, URL, then every request header.
 *
 * Dataset repos ("type": "dataset" at creation; /api/datasets/... and
 * /datasets/<repo>/... routes) are kept apart from models of the same name.
 * Not the Hub: no git, no Xet, no spaces, commits are a JSON manifest per
 * commit, no pagination. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define EMU_BODY_MAX (512L << 20) /* largest request body accepted */
#define EMU_FAULTS_MAX 64
#define EMU_ROUTES 14

static const char *const route_names[EMU_ROUTES] = {
    "whoami",  "create",      "info",         "preupload", "batch",       "verify",  "commit",
    "resolve", "storage_put", "storage_part", "complete",  "storage_get", "control", "branch"};

typedef enum { F_STATUS, F_DROP, F_DROP_AFTER, F_SLOW, F_DROP_BODY } fault_kind;

typedef struct fault {
    char route[32];
    fault_kind kind;
    int status, count, after, retry_after, ratelimit_reset, delay_ms;
} fault;

static struct {
    const char *data, *token, *read_token;
    FILE *log;
    long long multipart_threshold, chunk_size, regular_max;
    int port;
    pthread_mutex_t lock;
    fault faults[EMU_FAULTS_MAX];
    int n_faults;
    int requests[EMU_ROUTES], fired[EMU_ROUTES];
    int storage_auth;
    long serial;
} emu = {.multipart_threshold = 1 << 20,
         .chunk_size = 256 << 10,
         .regular_max = 64 << 10,
         .lock = PTHREAD_MUTEX_INITIALIZER};

typedef struct conn_state {
    char *body;
    size_t len, cap;
    int route;
    fault fault; /* the fault chosen for this request (kind < 0: none) */
    int has_fault;
    int too_big;
} conn_state;

/* ---------- small helpers ---------- */

static void hex(const unsigned char *d, unsigned n, char *out) {
    for (unsigned i = 0; i < n; i++) sprintf(out + 2 * i, "%02x", d[i]);
}

static void digest(const EVP_MD *md, const void *a, size_t an, const void *b, size_t bn,
                   char *out) {
    unsigned char r[EVP_MAX_MD_SIZE];
    unsigned n;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    EVP_DigestInit_ex(c, md, NULL);
    if (an) EVP_DigestUpdate(c, a, an);
    EVP_DigestUpdate(c, b, bn);
    EVP_DigestFinal_ex(c, r, &n);
    EVP_MD_CTX_free(c);
    hex(r, n, out);
}

static void git_sha1(const void *d, size_t n, char out[41]) {
    char head[64];
    int hn = snprintf(head, sizeof head, "blob %zu", n);
    digest(EVP_sha1(), head, (size_t)hn + 1, d, n, out);
}

static unsigned char *b64_decode(const char *s, size_t *out_len) {
    size_t n = strlen(s);
    unsigned char *out = malloc(n / 4 * 3 + 4);
    if (!out) return NULL;
    int got = EVP_DecodeBlock(out, (const unsigned char *)s, (int)n);
    if (got < 0) {
        free(out);
        return NULL;
    }
    size_t pad = n >= 2 && s[n - 1] == '=' ? (s[n - 2] == '=' ? 2 : 1) : 0;
    *out_len = (size_t)got - pad;
    return out;
}

static int is_hex(const char *s, size_t n) {
    if (!s || strlen(s) != n) return 0;
    for (size_t i = 0; i < n; i++)
        if (!isxdigit((unsigned char)s[i])) return 0;
    return 1;
}

static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) buf[n] = '\0', *len = (size_t)n;
    return buf;
}

static int write_file(const char *path, const void *d, size_t n) {
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) return -1;
    int bad = fwrite(d, 1, n, f) != n;
    bad |= fclose(f) != 0;
    return bad ? -1 : rename(tmp, path);
}

static long long file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

/* ---------- responses ---------- */

static enum MHD_Result reply(struct MHD_Connection *c, int status, const char *type,
                             const char *body, size_t len, ...) {
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (type) MHD_add_response_header(r, "Content-Type", type);
    char id[32];
    snprintf(id, sizeof id, "emu-%ld", __atomic_add_fetch(&emu.serial, 1, __ATOMIC_SEQ_CST));
    MHD_add_response_header(r, "X-Request-Id", id);
    va_list ap;
    va_start(ap, len);
    const char *k;
    while ((k = va_arg(ap, const char *)) != NULL)
        MHD_add_response_header(r, k, va_arg(ap, const char *));
    va_end(ap);
    enum MHD_Result ok = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    return ok;
}

static enum MHD_Result reply_json(struct MHD_Connection *c, int status, json_t *j) {
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    enum MHD_Result ok = reply(c, status, "application/json", s, strlen(s), NULL);
    free(s);
    return ok;
}

/* A Hub-style error: X-Error-Code/Message headers and {"error": msg}. */
static enum MHD_Result reply_error(struct MHD_Connection *c, int status, const char *code,
                                   const char *msg) {
    char *s = json_dumps(json_pack("{s:s}", "error", msg), JSON_COMPACT);
    enum MHD_Result ok =
        code ? reply(c, status, "application/json", s, strlen(s), "X-Error-Code", code,
                     "X-Error-Message", msg, NULL)
             : reply(c, status, "application/json", s, strlen(s), "X-Error-Message", msg, NULL);
    free(s);
    return ok;
}

typedef struct file_reader {
    int fd;
    long long start, drop_at; /* drop_at < 0: never */
} file_reader;

static ssize_t read_cb(void *cls, uint64_t pos, char *buf, size_t max) {
    file_reader *f = cls;
    if (f->drop_at >= 0 && (long long)pos >= f->drop_at) return MHD_CONTENT_READER_END_WITH_ERROR;
    if (f->drop_at >= 0 && (long long)(pos + max) > f->drop_at)
        max = (size_t)(f->drop_at - (long long)pos);
    ssize_t n = pread(f->fd, buf, max, f->start + (off_t)pos);
    return n <= 0 ? MHD_CONTENT_READER_END_WITH_ERROR : n;
}

static void read_free(void *cls) {
    file_reader *f = cls;
    close(f->fd);
    free(f);
}

/* Serves a file with Range support; drop_half cuts the body midway. */
static enum MHD_Result serve_file(struct MHD_Connection *c, const char *path, int drop_half,
                                  const char *k1, const char *v1, const char *k2, const char *v2) {
    long long size = file_size(path);
    int fd = size >= 0 ? open(path, O_RDONLY) : -1;
    if (fd < 0) return reply_error(c, 404, "EntryNotFound", "stored object missing");
    long long start = 0;
    const char *range = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Range");
    int partial = range && sscanf(range, "bytes=%lld-", &start) == 1;
    if (partial && (start < 0 || start >= size)) {
        close(fd);
        char cr[64];
        snprintf(cr, sizeof cr, "bytes */%lld", size);
        return reply(c, 416, "text/plain", "", 0, "Content-Range", cr, NULL);
    }
    if (!partial) start = 0;
    file_reader *f = malloc(sizeof *f);
    f->fd = fd;
    f->start = start;
    f->drop_at = drop_half ? (size - start) / 2 : -1;
    struct MHD_Response *r = MHD_create_response_from_callback((uint64_t)(size - start), 64 * 1024,
                                                               read_cb, f, read_free);
    if (k1) MHD_add_response_header(r, k1, v1);
    if (k2) MHD_add_response_header(r, k2, v2);
    if (partial) {
        char cr[96];
        snprintf(cr, sizeof cr, "bytes %lld-%lld/%lld", start, size - 1, size);
        MHD_add_response_header(r, "Content-Range", cr);
    }
    MHD_add_response_header(r, "Accept-Ranges", "bytes");
    enum MHD_Result ok = MHD_queue_response(c, partial ? 206 : 200, r);
    MHD_destroy_response(r);
    return ok;
}

/* ---------- repos on disk ---------- */

static int name_ok(const char *s, size_t n) {
    if (n == 0 || n > 96) return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr("._-", s[i])) return 0;
    return s[0] != '.';
}

/* ns of a dataset repo arrives as "datasets~<ns>" (see dispatch). */
static void repo_path(const char *ns, const char *name, char *out, size_t cap) {
    snprintf(out, cap, "%s/repos/%s--%s.json", emu.data, ns, name);
}

static json_t *repo_load(const char *ns, const char *name) {
    char p[4096];
    repo_path(ns, name, p, sizeof p);
    return json_load_file(p, 0, NULL);
}

static void repo_save(const char *ns, const char *name, json_t *repo) {
    char p[4096], tmp[4200];
    repo_path(ns, name, p, sizeof p);
    snprintf(tmp, sizeof tmp, "%s.tmp", p);
    if (json_dump_file(repo, tmp, JSON_INDENT(1)) == 0) rename(tmp, p);
}

static const char *repo_commit_of(json_t *repo, const char *rev) {
    const char *sha = json_string_value(json_object_get(json_object_get(repo, "refs"), rev));
    if (sha) return sha;
    void *it = json_object_iter_at(json_object_get(repo, "commits"), rev);
    return it ? json_object_iter_key(it) : NULL;
}

static json_t *repo_files(json_t *repo, const char *commit) {
    return json_object_get(json_object_get(json_object_get(repo, "commits"), commit), "files");
}

/* Records a new commit with `files` (stolen) on branch; returns its sha. */
static const char *repo_commit(json_t *repo, const char *branch, const char *parent,
                               json_t *files) {
    char *dump = json_dumps(files, JSON_SORT_KEYS | JSON_COMPACT);
    char salt[128], sha[41];
    snprintf(salt, sizeof salt, "%s %ld", parent ? parent : "root",
             __atomic_add_fetch(&emu.serial, 1, __ATOMIC_SEQ_CST));
    digest(EVP_sha1(), salt, strlen(salt), dump, strlen(dump), sha);
    free(dump);
    json_t *commit = json_pack("{s:o, s:o}", "parent", parent ? json_string(parent) : json_null(),
                               "files", files);
    json_object_set_new(json_object_get(repo, "commits"), sha, commit);
    json_object_set_new(json_object_get(repo, "refs"), branch, json_string(sha));
    return json_string_value(json_object_get(json_object_get(repo, "refs"), branch));
}

/* ---------- auth ---------- */

/* 2 = write token, 1 = read token, 0 = none, -1 = a wrong token. */
static int auth_level(struct MHD_Connection *c) {
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (!h) return 0;
    if (strncmp(h, "Bearer ", 7) != 0) return -1;
    if (emu.token && strcmp(h + 7, emu.token) == 0) return 2;
    if (emu.read_token && strcmp(h + 7, emu.read_token) == 0) return 1;
    return -1;
}

/* 0 when allowed to write; else 1 and an error response was queued into *res. */
static int deny_write(struct MHD_Connection *c, enum MHD_Result *res) {
    int a = auth_level(c);
    if (a == 2) return 0;
    if (a == 1)
        *res = reply_error(c, 403, NULL,
                           "You don't have the rights to write to this repo "
                           "(read-only token)");
    else
        *res = reply_error(c, 401, NULL,
                           a == 0 ? "Authorization header is required"
                                  : "Invalid credentials in Authorization header");
    return 1;
}

/* Loads a repo for reading; queues 404/401 and returns NULL when not visible. */
static json_t *repo_for_read(struct MHD_Connection *c, const char *ns, const char *name,
                             enum MHD_Result *res) {
    json_t *repo = repo_load(ns, name);
    if (!repo || (json_is_true(json_object_get(repo, "private")) && auth_level(c) <= 0)) {
        int wrong = auth_level(c) < 0;
        json_decref(repo);
        *res = reply_error(c, wrong ? 401 : 404, "RepoNotFound",
                           wrong ? "Invalid credentials in Authorization header"
                                 : "Repository not found");
        return NULL;
    }
    return repo;
}

/* ---------- handlers ---------- */

static enum MHD_Result h_whoami(struct MHD_Connection *c) {
    int a = auth_level(c);
    if (a <= 0) return reply_error(c, 401, NULL, "Invalid credentials in Authorization header");
    return reply_json(c, 200,
                      json_pack("{s:s, s:s, s:[], s:{s:s, s:{s:s}}}", "type", "user", "name",
                                "tester", "orgs", "auth", "type", "access_token", "accessToken",
                                "role", a == 2 ? "write" : "read"));
}

static enum MHD_Result h_create(struct MHD_Connection *c, const conn_state *s) {
    enum MHD_Result res;
    if (deny_write(c, &res)) return res;
    json_t *req = json_loadb(s->body ? s->body : "", s->len, 0, NULL);
    const char *name = json_string_value(json_object_get(req, "name"));
    const char *ns = json_string_value(json_object_get(req, "organization"));
    if (!ns) ns = "tester";
    if (!name || !name_ok(name, strlen(name)) || !name_ok(ns, strlen(ns))) {
        json_decref(req);
        return reply_error(c, 400, NULL, "Invalid repo name");
    }
    char dataset_ns[160];
    if (!strcmp(json_string_value(json_object_get(req, "type")) ?: "model", "dataset")) {
        snprintf(dataset_ns, sizeof dataset_ns, "datasets~%s", ns);
        ns = dataset_ns;
    }
    char url[512];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/%s/%s", emu.port, ns, name);
    json_t *repo = repo_load(ns, name);
    if (repo) {
        json_decref(repo);
        json_decref(req);
        return reply_json(
            c, 409,
            json_pack("{s:s, s:s}", "error", "You already created this model repo", "url", url));
    }
    int private_repo =
        json_is_true(json_object_get(req, "private")) ||
        (json_string_value(json_object_get(req, "visibility")) &&
         strcmp(json_string_value(json_object_get(req, "visibility")), "private") == 0);
    repo = json_pack("{s:b, s:{}, s:{}}", "private", private_repo, "refs", "commits");
    static const char attrs[] = "*.safetensors filter=lfs diff=lfs merge=lfs -text\n";
    char oid[41], path[4096];
    git_sha1(attrs, sizeof attrs - 1, oid);
    snprintf(path, sizeof path, "%s/blobs/%s", emu.data, oid);
    write_file(path, attrs, sizeof attrs - 1);
    repo_commit(repo, "main", NULL,
                json_pack("{s:{s:b, s:s, s:I}}", ".gitattributes", "lfs", 0, "oid", oid, "size",
                          (json_int_t)(sizeof attrs - 1)));
    repo_save(ns, name, repo);
    json_decref(repo);
    char id[256];
    snprintf(id, sizeof id, "%s/%s", ns, name); /* ns, name live in req */
    json_decref(req);
    return reply_json(c, 200, json_pack("{s:s, s:s}", "url", url, "id", id));
}

static enum MHD_Result h_info(struct MHD_Connection *c, const char *ns, const char *name,
                              const char *rev) {
    enum MHD_Result res;
    json_t *repo = repo_for_read(c, ns, name, &res);
    if (!repo) return res;
    const char *sha = repo_commit_of(repo, rev);
    if (!sha) {
        json_decref(repo);
        return reply_error(c, 404, "RevisionNotFound", "Invalid rev id");
    }
    json_t *siblings = json_array(), *v;
    const char *k;
    json_object_foreach(repo_files(repo, sha), k, v)
        json_array_append_new(siblings, json_pack("{s:s}", "rfilename", k));
    char id[256];
    snprintf(id, sizeof id, "%s/%s", ns, name);
    res = reply_json(c, 200,
                     json_pack("{s:s, s:s, s:O, s:o}", "id", id, "sha", sha, "private",
                               json_object_get(repo, "private"), "siblings", siblings));
    json_decref(repo);
    return res;
}

static enum MHD_Result h_preupload(struct MHD_Connection *c, const conn_state *s, const char *ns,
                                   const char *name, const char *rev) {
    enum MHD_Result res;
    if (deny_write(c, &res)) return res;
    json_t *repo = repo_for_read(c, ns, name, &res);
    if (!repo) return res;
    const char *head = repo_commit_of(repo, rev);
    json_t *req = json_loadb(s->body ? s->body : "", s->len, 0, NULL);
    json_t *files = json_object_get(req, "files");
    if (!head || !json_is_array(files)) {
        json_decref(repo), json_decref(req);
        return reply_error(c, head ? 400 : 404, head ? NULL : "RevisionNotFound",
                           head ? "Invalid preupload body" : "Invalid rev id");
    }
    json_t *out = json_array(), *f;
    size_t i;
    json_array_foreach(files, i, f) {
        const char *path = json_string_value(json_object_get(f, "path"));
        json_int_t size = json_integer_value(json_object_get(f, "size"));
        size_t slen = 0;
        const char *b64 = json_string_value(json_object_get(f, "sample"));
        unsigned char *sample = b64 ? b64_decode(b64, &slen) : NULL;
        int text = sample != NULL;
        for (size_t k = 0; text && k < slen; k++) text = sample[k] != 0;
        free(sample);
        int regular = size == 0 || (text && size <= emu.regular_max);
        json_t *entry = json_pack("{s:s, s:s, s:b}", "path", path ? path : "", "uploadMode",
                                  regular ? "regular" : "lfs", "shouldIgnore", 0);
        json_t *existing = path ? json_object_get(repo_files(repo, head), path) : NULL;
        if (existing) json_object_set(entry, "oid", json_object_get(existing, "oid"));
        json_array_append_new(out, entry);
    }
    res = reply_json(c, 200, json_pack("{s:o, s:s}", "files", out, "commitOid", head));
    json_decref(repo), json_decref(req);
    return res;
}

static enum MHD_Result h_batch(struct MHD_Connection *c, const conn_state *s, const char *ns,
                               const char *name) {
    enum MHD_Result res;
    if (deny_write(c, &res)) return res;
    json_t *repo = repo_for_read(c, ns, name, &res);
    if (!repo) return res;
    json_decref(repo);
    json_t *req = json_loadb(s->body ? s->body : "", s->len, 0, NULL);
    json_t *objs = json_object_get(req, "objects"), *o, *out = json_array();
    int multipart_used = 0;
    size_t i;
    json_array_foreach(objs, i, o) {
        const char *oid = json_string_value(json_object_get(o, "oid"));
        json_int_t size = json_integer_value(json_object_get(o, "size"));
        json_t *entry = json_pack("{s:s, s:I}", "oid", oid ? oid : "", "size", size);
        char path[4096], base[256], verify[1024];
        snprintf(base, sizeof base, "http://127.0.0.1:%d", emu.port);
        snprintf(verify, sizeof verify, "%s/api/lfs-verify/%s/%s", base, ns, name);
        if (!is_hex(oid, 64) || size <= 0) {
            json_object_set_new(
                entry, "error",
                json_pack("{s:i, s:s}", "code", 422, "message", "invalid oid or size"));
        } else if (snprintf(path, sizeof path, "%s/lfs/%s", emu.data, oid) > 0 &&
                   file_size(path) == size) {
            /* already stored: no actions */
        } else if (size > emu.multipart_threshold) {
            multipart_used = 1;
            long long parts = (size + emu.chunk_size - 1) / emu.chunk_size;
            char chunk[32], url[512], key[24];
            snprintf(chunk, sizeof chunk, "%lld", emu.chunk_size);
            json_t *header = json_pack("{s:s}", "chunk_size", chunk);
            for (long long p = 1; p <= parts; p++) {
                snprintf(url, sizeof url, "%s/_storage/part/%s/%lld?X-Amz-Signature=emu%lld", base,
                         oid, p, p);
                snprintf(key, sizeof key, "%lld", p);
                json_object_set_new(header, key, json_string(url));
            }
            snprintf(url, sizeof url, "%s/_storage/complete/%s?X-Amz-Signature=emu", base, oid);
            json_object_set_new(entry, "actions",
                                json_pack("{s:{s:s, s:o}, s:{s:s}}", "upload", "href", url,
                                          "header", header, "verify", "href", verify));
        } else {
            char url[512];
            snprintf(url, sizeof url, "%s/_storage/put/%s?X-Amz-Signature=emu", base, oid);
            json_object_set_new(entry, "actions",
                                json_pack("{s:{s:s, s:i}, s:{s:s}}", "upload", "href", url,
                                          "expires_in", 3600, "verify", "href", verify));
        }
        json_array_append_new(out, entry);
    }
    json_decref(req);
    json_t *answer = json_pack("{s:o}", "objects", out);
    if (multipart_used) json_object_set_new(answer, "transfer", json_string("multipart"));
    char *text = json_dumps(answer, JSON_COMPACT);
    json_decref(answer);
    res = reply(c, 200, "application/vnd.git-lfs+json", text, strlen(text), NULL);
    free(text);
    return res;
}

static enum MHD_Result h_storage_put(struct MHD_Connection *c, const conn_state *s,
                                     const char *oid) {
    char sha[65], path[4096];
    digest(EVP_sha256(), NULL, 0, s->body ? s->body : "", s->len, sha);
    if (!is_hex(oid, 64) || strcmp(sha, oid) != 0)
        return reply(c, 400, "text/plain", "sha256 mismatch", 15, NULL);
    snprintf(path, sizeof path, "%s/lfs/%s", emu.data, oid);
    write_file(path, s->body ? s->body : "", s->len);
    return reply(c, 200, "text/plain", "", 0, NULL);
}

static enum MHD_Result h_storage_part(struct MHD_Connection *c, const conn_state *s,
                                      const char *oid, const char *part) {
    char md5[33], path[4096], etag[40];
    if (!is_hex(oid, 64) || atoi(part) <= 0)
        return reply(c, 400, "text/plain", "bad part", 8, NULL);
    digest(EVP_md5(), NULL, 0, s->body ? s->body : "", s->len, md5);
    snprintf(path, sizeof path, "%s/parts/%s.%d", emu.data, oid, atoi(part));
    write_file(path, s->body ? s->body : "", s->len);
    snprintf(etag, sizeof etag, "\"%s\"", md5);
    return reply(c, 200, "text/plain", "", 0, "ETag", etag, NULL);
}

static enum MHD_Result h_complete(struct MHD_Connection *c, const conn_state *s, const char *oid) {
    json_t *req = json_loadb(s->body ? s->body : "", s->len, 0, NULL);
    json_t *parts = json_object_get(req, "parts"), *p;
    const char *body_oid = json_string_value(json_object_get(req, "oid"));
    if (!is_hex(oid, 64) || !body_oid || strcmp(body_oid, oid) != 0 || !json_array_size(parts)) {
        json_decref(req);
        return reply_error(c, 400, NULL, "bad completion body");
    }
    char *all = NULL;
    size_t len = 0, i;
    const char *problem = NULL;
    json_array_foreach(parts, i, p) {
        char path[4096], md5[33], etag[40];
        if (json_integer_value(json_object_get(p, "partNumber")) != (json_int_t)i + 1) {
            problem = "parts out of order";
            break;
        }
        snprintf(path, sizeof path, "%s/parts/%s.%zu", emu.data, oid, i + 1);
        size_t n;
        char *d = read_file(path, &n);
        if (!d) {
            problem = "part missing";
            break;
        }
        digest(EVP_md5(), NULL, 0, d, n, md5);
        snprintf(etag, sizeof etag, "\"%s\"", md5);
        const char *given = json_string_value(json_object_get(p, "etag"));
        if (!given || strcmp(given, etag) != 0) {
            free(d);
            problem = "etag mismatch";
            break;
        }
        all = realloc(all, len + n + 1);
        memcpy(all + len, d, n);
        len += n;
        free(d);
    }
    json_decref(req);
    char sha[65];
    if (!problem) {
        digest(EVP_sha256(), NULL, 0, all ? all : "", len, sha);
        if (strcmp(sha, oid) != 0) problem = "sha256 of the assembled parts does not match";
    }
    if (problem) {
        free(all);
        return reply_error(c, 400, NULL, problem);
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/lfs/%s", emu.data, oid);
    write_file(path, all, len);
    free(all);
    return reply(c, 200, "application/json", "{}", 2, NULL);
}

static enum MHD_Result h_verify(struct MHD_Connection *c, const conn_state *s) {
    enum MHD_Result res;
    if (deny_write(c, &res)) return res;
    json_t *req = json_loadb(s->body ? s->body : "", s->len, 0, NULL);
    const char *oid = json_string_value(json_object_get(req, "oid"));
    json_int_t size = json_integer_value(json_object_get(req, "size"));
    char path[4096];
    snprintf(path, sizeof path, "%s/lfs/%s", emu.data, is_hex(oid, 64) ? oid : "none");
    json_decref(req);
    if (file_size(path) != size) return reply_error(c, 404, NULL, "object not stored");
    return reply(c, 200, "application/json", "{}", 2, NULL);
}

static enum MHD_Result h_commit(struct MHD_Connection *c, const conn_state *s, const char *ns,
                                const char *name, const char *rev) {
    enum MHD_Result res;
    if (deny_write(c, &res)) return res;
    json_t *repo = repo_for_read(c, ns, name, &res);
    if (!repo) return res;
    const char *head = repo_commit_of(repo, rev);
    if (!head) {
        json_decref(repo);
        return reply_error(c, 404, "RevisionNotFound", "Invalid rev id");
    }
    json_t *files = json_deep_copy(repo_files(repo, head));
    const char *problem = NULL;
    char *text = s->body ? s->body : "";
    int line_no = 0;
    for (char *line = strtok(text, "\n"); line && !problem; line = strtok(NULL, "\n"), line_no++) {
        json_t *j = json_loads(line, 0, NULL);
        const char *key = json_string_value(json_object_get(j, "key"));
        json_t *v = json_object_get(j, "value");
        const char *path = json_string_value(json_object_get(v, "path"));
        if (!key || (line_no == 0) != (strcmp(key, "header") == 0)) {
            problem = "the header must come first, once";
        } else if (strcmp(key, "header") == 0) {
            const char *parent = json_string_value(json_object_get(v, "parentCommit"));
            if (parent && strcmp(parent, head) != 0) {
                json_decref(j), json_decref(files), json_decref(repo);
                return reply_error(c, 412, NULL, "parentCommit is not the head of the branch");
            }
        } else if (!path) {
            problem = "an entry has no path";
        } else if (strcmp(key, "file") == 0) {
            size_t n;
            const char *content = json_string_value(json_object_get(v, "content"));
            unsigned char *d = content ? b64_decode(content, &n) : NULL;
            if (!d) {
                problem = "file content is not base64";
            } else {
                char oid[41], p[4096];
                git_sha1(d, n, oid);
                snprintf(p, sizeof p, "%s/blobs/%s", emu.data, oid);
                write_file(p, d, n);
                json_object_set_new(
                    files, path,
                    json_pack("{s:b, s:s, s:I}", "lfs", 0, "oid", oid, "size", (json_int_t)n));
                free(d);
            }
        } else if (strcmp(key, "lfsFile") == 0) {
            const char *oid = json_string_value(json_object_get(v, "oid"));
            json_int_t size = json_integer_value(json_object_get(v, "size"));
            char p[4096];
            snprintf(p, sizeof p, "%s/lfs/%s", emu.data, is_hex(oid, 64) ? oid : "none");
            if (file_size(p) != size)
                problem = "lfsFile refers to an object that was not uploaded";
            else
                json_object_set_new(
                    files, path, json_pack("{s:b, s:s, s:I}", "lfs", 1, "oid", oid, "size", size));
        } else if (strcmp(key, "deletedFile") == 0) {
            if (json_object_del(files, path) != 0) problem = "A file with this name doesn't exist";
        } else {
            problem = "unknown entry key";
        }
        json_decref(j);
    }
    if (problem || line_no == 0) {
        json_decref(files), json_decref(repo);
        return reply_error(c, 400, NULL, problem ? problem : "empty commit");
    }
    char parent[41];
    snprintf(parent, sizeof parent, "%s", head);
    const char *sha = repo_commit(repo, rev, parent, files);
    repo_save(ns, name, repo);
    char url[512];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/%s/%s/commit/%s", emu.port, ns, name, sha);
    res = reply_json(c, 200,
                     json_pack("{s:b, s:s, s:s, s:s}", "success", 1, "commitOid", sha, "commitUrl",
                               url, "hookOutput", ""));
    json_decref(repo);
    return res;
}

static enum MHD_Result h_branch(struct MHD_Connection *c, const conn_state *s, const char *ns,
                                const char *name, const char *branch) {
    enum MHD_Result res;
    if (deny_write(c, &res)) return res;
    json_t *repo = repo_for_read(c, ns, name, &res);
    if (!repo) return res;
    json_t *req = json_loadb(s->body ? s->body : "", s->len, 0, NULL);
    const char *from = json_string_value(json_object_get(req, "startingPoint"));
    const char *sha = repo_commit_of(repo, from ? from : "main");
    if (!sha || json_object_get(json_object_get(repo, "refs"), branch)) {
        json_decref(req), json_decref(repo);
        return sha ? reply_error(c, 409, NULL, "Reference already exists")
                   : reply_error(c, 404, "RevisionNotFound", "Invalid rev id");
    }
    json_object_set_new(json_object_get(repo, "refs"), branch, json_string(sha));
    repo_save(ns, name, repo);
    json_decref(req), json_decref(repo);
    return reply(c, 200, "application/json", "{}", 2, NULL);
}

static enum MHD_Result h_resolve(struct MHD_Connection *c, const char *ns, const char *name,
                                 const char *rest, int drop_half) {
    enum MHD_Result res;
    json_t *repo = repo_for_read(c, ns, name, &res);
    if (!repo) return res;
    char rev[256];
    const char *slash = strchr(rest, '/');
    if (!slash || (size_t)(slash - rest) >= sizeof rev) {
        json_decref(repo);
        return reply_error(c, 404, "EntryNotFound", "no file path");
    }
    snprintf(rev, sizeof rev, "%.*s", (int)(slash - rest), rest);
    const char *sha = repo_commit_of(repo, rev);
    json_t *f = sha ? json_object_get(repo_files(repo, sha), slash + 1) : NULL;
    if (!sha || !f) {
        json_decref(repo);
        return sha ? reply_error(c, 404, "EntryNotFound", "Entry not found")
                   : reply_error(c, 404, "RevisionNotFound", "Invalid rev id");
    }
    const char *oid = json_string_value(json_object_get(f, "oid"));
    char etag[72], path[4096], commit[41];
    snprintf(etag, sizeof etag, "\"%s\"", oid);
    snprintf(commit, sizeof commit, "%s", sha);
    if (json_is_true(json_object_get(f, "lfs"))) {
        char loc[512], size[32];
        snprintf(loc, sizeof loc, "http://127.0.0.1:%d/_storage/get/%s?X-Amz-Signature=emu",
                 emu.port, oid);
        snprintf(size, sizeof size, "%lld",
                 (long long)json_integer_value(json_object_get(f, "size")));
        json_decref(repo);
        return reply(c, 302, "text/plain", "", 0, "Location", loc, "X-Linked-Etag", etag,
                     "X-Linked-Size", size, "X-Repo-Commit", commit, "ETag", etag, NULL);
    }
    snprintf(path, sizeof path, "%s/blobs/%s", emu.data, oid);
    json_decref(repo);
    return serve_file(c, path, drop_half, "ETag", etag, "X-Repo-Commit", commit);
}

/* ---------- faults and control ---------- */

static int route_index(const char *name) {
    for (int i = 0; i < EMU_ROUTES; i++)
        if (strcmp(route_names[i], name) == 0) return i;
    return -1;
}

/* Picks (and uses up) the fault for a request on route r, if any. */
static int fault_take(int r, fault *out) {
    int hit = 0;
    pthread_mutex_lock(&emu.lock);
    emu.requests[r]++;
    for (int i = 0; i < emu.n_faults && !hit; i++) {
        fault *f = &emu.faults[i];
        if (f->count <= 0 || strcmp(f->route, route_names[r]) != 0) continue;
        if (f->after > 0) {
            f->after--;
            continue;
        }
        f->count--;
        *out = *f;
        hit = 1;
        emu.fired[r]++;
    }
    pthread_mutex_unlock(&emu.lock);
    return hit;
}

static int qint(struct MHD_Connection *c, const char *k, int dflt) {
    const char *v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, k);
    return v ? atoi(v) : dflt;
}

static enum MHD_Result h_control(struct MHD_Connection *c, const char *method, const char *op) {
    if (strcmp(op, "stats") == 0 && strcmp(method, "GET") == 0) {
        json_t *routes = json_object();
        pthread_mutex_lock(&emu.lock);
        for (int i = 0; i < EMU_ROUTES; i++)
            json_object_set_new(
                routes, route_names[i],
                json_pack("{s:i, s:i}", "requests", emu.requests[i], "faults", emu.fired[i]));
        json_t *j = json_pack("{s:o, s:i}", "routes", routes, "storage_auth", emu.storage_auth);
        pthread_mutex_unlock(&emu.lock);
        return reply_json(c, 200, j);
    }
    if (strcmp(op, "reset") == 0) {
        pthread_mutex_lock(&emu.lock);
        emu.n_faults = 0;
        memset(emu.requests, 0, sizeof emu.requests);
        memset(emu.fired, 0, sizeof emu.fired);
        emu.storage_auth = 0;
        pthread_mutex_unlock(&emu.lock);
        return reply(c, 200, "text/plain", "", 0, NULL);
    }
    if (strcmp(op, "fault") == 0) {
        static const char *const kinds[] = {"status", "drop", "drop_after", "slow", "drop_body"};
        const char *route = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "route");
        const char *kind = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "kind");
        fault f = {.status = qint(c, "status", 503),
                   .count = qint(c, "count", 1),
                   .after = qint(c, "after", 0),
                   .retry_after = qint(c, "retry_after", -1),
                   .ratelimit_reset = qint(c, "ratelimit_reset", -1),
                   .delay_ms = qint(c, "delay_ms", 0)};
        int k = -1;
        for (int i = 0; kind && i < 5; i++)
            if (strcmp(kind, kinds[i]) == 0) k = i;
        if (!route || route_index(route) < 0 || k < 0 || emu.n_faults == EMU_FAULTS_MAX)
            return reply_error(c, 400, NULL, "bad fault: need route=<route> kind=<kind>");
        snprintf(f.route, sizeof f.route, "%s", route);
        f.kind = (fault_kind)k;
        pthread_mutex_lock(&emu.lock);
        emu.faults[emu.n_faults++] = f;
        pthread_mutex_unlock(&emu.lock);
        return reply(c, 200, "text/plain", "", 0, NULL);
    }
    return reply_error(c, 404, NULL, "unknown control route");
}

static enum MHD_Result fault_reply(struct MHD_Connection *c, const fault *f) {
    char ra[32], rl[64], policy[96];
    snprintf(ra, sizeof ra, "%d", f->retry_after);
    snprintf(rl, sizeof rl, "\"api\";r=0;t=%d", f->ratelimit_reset);
    snprintf(policy, sizeof policy, "\"fixed window\";\"api\";q=1000;w=300");
    const char *body = "{\"error\":\"injected fault\"}";
    if (f->retry_after >= 0 && f->ratelimit_reset >= 0)
        return reply(c, f->status, "application/json", body, strlen(body), "Retry-After", ra,
                     "RateLimit", rl, "RateLimit-Policy", policy, NULL);
    if (f->ratelimit_reset >= 0)
        return reply(c, f->status, "application/json", body, strlen(body), "RateLimit", rl,
                     "RateLimit-Policy", policy, NULL);
    if (f->retry_after >= 0)
        return reply(c, f->status, "application/json", body, strlen(body), "Retry-After", ra, NULL);
    return reply(c, f->status, "application/json", body, strlen(body), NULL);
}

/* ---------- routing ---------- */

typedef struct route_args {
    char ns[128], name[128], a[1024], b[1024]; /* a, b: revision/oid/part/rest */
    int dataset;                               /* a dataset repo's route */
} route_args;

/* Copies the next '/'-separated segment of *p into out; 0 on success. */
static int segment(const char **p, char *out, size_t cap) {
    size_t n = strcspn(*p, "/");
    if (n == 0 || n >= cap) return -1;
    memcpy(out, *p, n);
    out[n] = '\0';
    *p += n + ((*p)[n] == '/');
    return 0;
}

static int route_of(const char *method, const char *url, route_args *ra) {
    const char *p = url + 1;
    int get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    int post = strcmp(method, "POST") == 0, put = strcmp(method, "PUT") == 0;
    memset(ra, 0, sizeof *ra);
    if (strncmp(url, "/_emu/", 6) == 0) {
        snprintf(ra->a, sizeof ra->a, "%s", url + 6);
        return route_index("control");
    }
    if (strncmp(url, "/_storage/", 10) == 0) {
        p = url + 10;
        char kind[32];
        if (segment(&p, kind, sizeof kind) || segment(&p, ra->a, sizeof ra->a)) return -1;
        if (put && strcmp(kind, "put") == 0) return route_index("storage_put");
        if (put && strcmp(kind, "part") == 0 && !segment(&p, ra->b, sizeof ra->b))
            return route_index("storage_part");
        if (post && strcmp(kind, "complete") == 0) return route_index("complete");
        if (get && strcmp(kind, "get") == 0) return route_index("storage_get");
        return -1;
    }
    if (get && strcmp(url, "/api/whoami-v2") == 0) return route_index("whoami");
    if (post && strcmp(url, "/api/repos/create") == 0) return route_index("create");
    if (strncmp(url, "/api/lfs-verify/", 16) == 0) {
        p = url + 16;
        if (post && !segment(&p, ra->ns, sizeof ra->ns) && !segment(&p, ra->name, sizeof ra->name))
            return route_index("verify");
        return -1;
    }
    const int api_datasets = strncmp(url, "/api/datasets/", 14) == 0;
    if (strncmp(url, "/api/models/", 12) == 0 || api_datasets) {
        ra->dataset = api_datasets;
        p = url + (api_datasets ? 14 : 12);
        if (segment(&p, ra->ns, sizeof ra->ns) || segment(&p, ra->name, sizeof ra->name)) return -1;
        char what[32] = "";
        if (!*p) {
            snprintf(ra->a, sizeof ra->a, "main");
            return get ? route_index("info") : -1;
        }
        if (segment(&p, what, sizeof what)) return -1;
        snprintf(ra->a, sizeof ra->a, "%s", p); /* the revision (may contain '/') */
        if (!ra->a[0]) return -1;
        if (get && strcmp(what, "revision") == 0) return route_index("info");
        if (post && strcmp(what, "preupload") == 0) return route_index("preupload");
        if (post && strcmp(what, "commit") == 0) return route_index("commit");
        if (post && strcmp(what, "branch") == 0) return route_index("branch");
        return -1;
    }
    if (strncmp(p, "datasets/", 9) == 0) { /* the file routes of a dataset repo */
        ra->dataset = 1;
        p += 9;
    }
    if (segment(&p, ra->ns, sizeof ra->ns)) return -1;
    const char *git = strstr(p, ".git/info/lfs/objects/batch");
    if (post && git && git[27] == '\0' && (size_t)(git - p) < sizeof ra->name) {
        snprintf(ra->name, sizeof ra->name, "%.*s", (int)(git - p), p);
        return route_index("batch");
    }
    char what[32];
    if (segment(&p, ra->name, sizeof ra->name) || segment(&p, what, sizeof what)) return -1;
    snprintf(ra->a, sizeof ra->a, "%s", p);
    return get && strcmp(what, "resolve") == 0 ? route_index("resolve") : -1;
}

static enum MHD_Result log_header(void *cls, enum MHD_ValueKind kind, const char *k,
                                  const char *v) {
    (void)kind;
    fprintf(cls, "\t%s: %s", k, v ? v : "");
    return MHD_YES;
}

static pthread_mutex_t repo_lock = PTHREAD_MUTEX_INITIALIZER;

static enum MHD_Result dispatch(struct MHD_Connection *c, const char *method, const conn_state *s,
                                const route_args *args, int drop_half) {
    const char *r = route_names[s->route];
    if (s->too_big) return reply_error(c, 413, NULL, "body too large");
    if (strcmp(r, "control") == 0) return h_control(c, method, args->a);
    if (!name_ok(args->ns, strlen(args->ns)) && args->ns[0])
        return reply_error(c, 404, "RepoNotFound", "Repository not found");
    if (!name_ok(args->name, strlen(args->name)) && args->name[0])
        return reply_error(c, 404, "RepoNotFound", "Repository not found");
    route_args dataset_args;
    const route_args *ra = args;
    if (args->dataset) { /* a dataset repo is kept apart from a model of the same name */
        dataset_args = *args;
        snprintf(dataset_args.ns, sizeof dataset_args.ns, "datasets~%.100s", args->ns);
        ra = &dataset_args;
    }
    if (strcmp(r, "whoami") == 0) return h_whoami(c);
    if (strcmp(r, "create") == 0) return h_create(c, s);
    if (strcmp(r, "info") == 0) return h_info(c, ra->ns, ra->name, ra->a);
    if (strcmp(r, "preupload") == 0) return h_preupload(c, s, ra->ns, ra->name, ra->a);
    if (strcmp(r, "batch") == 0) return h_batch(c, s, ra->ns, ra->name);
    if (strcmp(r, "verify") == 0) return h_verify(c, s);
    if (strcmp(r, "commit") == 0) return h_commit(c, s, ra->ns, ra->name, ra->a);
    if (strcmp(r, "resolve") == 0) return h_resolve(c, ra->ns, ra->name, ra->a, drop_half);
    if (strcmp(r, "branch") == 0) return h_branch(c, s, ra->ns, ra->name, ra->a);
    if (strcmp(r, "storage_put") == 0) return h_storage_put(c, s, ra->a);
    if (strcmp(r, "storage_part") == 0) return h_storage_part(c, s, ra->a, ra->b);
    if (strcmp(r, "complete") == 0) return h_complete(c, s, ra->a);
    char path[4096];
    snprintf(path, sizeof path, "%s/lfs/%s", emu.data, is_hex(ra->a, 64) ? ra->a : "none");
    return serve_file(c, path, drop_half, NULL, NULL, NULL, NULL);
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url,
                               const char *method, const char *version, const char *upload_data,
                               size_t *upload_data_size, void **con_cls) {
    (void)cls, (void)version;
    conn_state *s = *con_cls;
    route_args ra;
    int route = route_of(method, url, &ra);
    if (!s) {
        s = calloc(1, sizeof *s);
        *con_cls = s;
        s->route = route;
        if (emu.log) {
            pthread_mutex_lock(&emu.lock);
            fprintf(emu.log, "%s\t%s\t%s", route >= 0 ? route_names[route] : "unknown", method,
                    url);
            MHD_get_connection_values(c, MHD_HEADER_KIND, log_header, emu.log);
            fputc('\n', emu.log);
            fflush(emu.log);
            pthread_mutex_unlock(&emu.lock);
        }
        if (route >= 0 && strcmp(route_names[route], "control") != 0) {
            if (strncmp(route_names[route], "storage", 7) == 0 ||
                strcmp(route_names[route], "complete") == 0) {
                if (MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization")) {
                    pthread_mutex_lock(&emu.lock);
                    emu.storage_auth++;
                    pthread_mutex_unlock(&emu.lock);
                }
            }
            s->has_fault = fault_take(route, &s->fault);
            if (s->has_fault && s->fault.kind == F_DROP) return MHD_NO;
        }
        return MHD_YES;
    }
    if (*upload_data_size) {
        if (s->len + *upload_data_size > (size_t)EMU_BODY_MAX) s->too_big = 1;
        if (!s->too_big) {
            if (s->len + *upload_data_size + 1 > s->cap) {
                s->cap = (s->len + *upload_data_size + 1) * 2;
                s->body = realloc(s->body, s->cap);
            }
            memcpy(s->body + s->len, upload_data, *upload_data_size);
            s->len += *upload_data_size;
            s->body[s->len] = '\0';
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (route < 0) return reply_error(c, 404, NULL, "no such route in the emulator");
    if (s->has_fault && s->fault.kind == F_SLOW) usleep((useconds_t)s->fault.delay_ms * 1000);
    if (s->has_fault && s->fault.kind == F_STATUS) return fault_reply(c, &s->fault);
    pthread_mutex_lock(&repo_lock);
    enum MHD_Result res = dispatch(c, method, s, &ra, s->has_fault && s->fault.kind == F_DROP_BODY);
    pthread_mutex_unlock(&repo_lock);
    if (s->has_fault && s->fault.kind == F_DROP_AFTER) return MHD_NO; /* the answer is lost */
    return res;
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
                      enum MHD_RequestTerminationCode code) {
    (void)cls, (void)c, (void)code;
    conn_state *s = *con_cls;
    if (s) free(s->body);
    free(s);
    *con_cls = NULL;
}

int main(int argc, char **argv) {
    const char *log_path = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (strcmp(k, "--data") == 0)
            emu.data = v;
        else if (strcmp(k, "--token") == 0)
            emu.token = v;
        else if (strcmp(k, "--read-token") == 0)
            emu.read_token = v;
        else if (strcmp(k, "--log") == 0)
            log_path = v;
        else if (strcmp(k, "--multipart-threshold") == 0)
            emu.multipart_threshold = atoll(v);
        else if (strcmp(k, "--chunk-size") == 0)
            emu.chunk_size = atoll(v);
        else if (strcmp(k, "--regular-max") == 0)
            emu.regular_max = atoll(v);
        else {
            fprintf(stderr, "tool_hub_emulator: unknown option %s\n", k);
            return 2;
        }
    }
    if (!emu.data || emu.chunk_size <= 0) {
        fprintf(stderr, "usage: tool_hub_emulator --data DIR [--token T] [--read-token R] "
                        "[--log FILE] [--multipart-threshold N] [--chunk-size N] "
                        "[--regular-max N]\n");
        return 2;
    }
    static const char *const subdirs[] = {"", "/repos", "/blobs", "/lfs", "/parts"};
    for (int i = 0; i < 5; i++) {
        char p[4096];
        snprintf(p, sizeof p, "%s%s", emu.data, subdirs[i]);
        if (mkdir(p, 0755) != 0 && errno != EEXIST) {
            fprintf(stderr, "tool_hub_emulator: cannot create %s: %s\n", p, strerror(errno));
            return 1;
        }
    }
    if (log_path && !(emu.log = fopen(log_path, "a"))) {
        fprintf(stderr, "tool_hub_emulator: cannot open %s\n", log_path);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    struct sockaddr_in addr = {
        .sin_family = AF_INET, .sin_port = 0, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL, handler,
        NULL, MHD_OPTION_SOCK_ADDR, &addr, MHD_OPTION_NOTIFY_COMPLETED, completed, NULL,
        MHD_OPTION_CONNECTION_TIMEOUT, 30u, MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "tool_hub_emulator: cannot start the daemon\n");
        return 1;
    }
    emu.port = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT)->port;
    printf("port %d\n", emu.port);
    fflush(stdout);
    char buf[256];
    while (read(0, buf, sizeof buf) > 0) {
    }
    MHD_stop_daemon(d);
    if (emu.log) fclose(emu.log);
    return 0;
}
