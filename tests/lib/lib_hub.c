/* Hub test helpers (see lib_hub.h). */
#include "tests/lib/lib_hub.h"

#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *build_dir(void) {
    const char *b = getenv("BUILD");
    return b && *b ? b : "build";
}

int thub_tmpdir(char *out, size_t cap) {
    const char *t = getenv("TMPDIR");
    snprintf(out, cap, "%s/cnet-hub-XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(out)) return -1;
    return chmod(out, 0755);
}

int thub_emu_start(thub_emu *e, const char *dir, const char *const *extra) {
    memset(e, 0, sizeof *e);
    snprintf(e->dir, sizeof e->dir, "%s", dir);
    snprintf(e->log, sizeof e->log, "%s/emu.log", dir);
    char exe[512], data[600];
    snprintf(exe, sizeof exe, "%s/tests/tool_hub_emulator", build_dir());
    snprintf(data, sizeof data, "%s/emu", dir);
    const char *argv[40] = {exe, "--data", data, "--log", e->log};
    int n = 5;
    for (; extra && *extra && n < 38; extra++) argv[n++] = *extra;
    argv[n] = NULL;
    int in[2], out[2];
    if (pipe(in) || pipe(out)) return -1;
    e->pid = fork();
    if (e->pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[1]), close(out[0]);
        execv(exe, (char *const *)argv);
        _exit(127);
    }
    close(in[0]), close(out[1]);
    e->stdin_fd = in[1];
    char line[64] = "";
    size_t got = 0;
    while (got < sizeof line - 1) {
        ssize_t r = read(out[0], line + got, 1);
        if (r <= 0 || line[got] == '\n') break;
        got++;
    }
    close(out[0]);
    if (sscanf(line, "port %d", &e->port) != 1) return -1;
    snprintf(e->endpoint, sizeof e->endpoint, "http://127.0.0.1:%d", e->port);
    return 0;
}

void thub_emu_stop(thub_emu *e) {
    if (e->pid <= 0) return;
    close(e->stdin_fd);
    kill(e->pid, SIGTERM);
    waitpid(e->pid, NULL, 0);
    e->pid = 0;
}

static size_t sink(char *p, size_t s, size_t n, void *ud) {
    char **buf = ud;
    size_t old = *buf ? strlen(*buf) : 0;
    char *g = realloc(*buf, old + s * n + 1);
    if (!g) return 0;
    memcpy(g + old, p, s * n);
    g[old + s * n] = '\0';
    *buf = g;
    return s * n;
}

static long emu_request(const thub_emu *e, const char *method, const char *query, char **body) {
    char url[1024];
    snprintf(url, sizeof url, "%s/_emu/%s", e->endpoint, query);
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    if (strcmp(method, "POST") == 0) curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, body);
    long status = 0;
    if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    return status;
}

long thub_emu_ctl(const thub_emu *e, const char *query) {
    char *body = NULL;
    long s = emu_request(e, "POST", query, &body);
    free(body);
    return s;
}

/* POSTs body to endpoint+path with the token; returns the HTTP status. */
static long emu_post(const thub_emu *e, const char *token, const char *path, const char *type,
                     const char *body) {
    char url[1024], auth[256], ctype[128];
    snprintf(url, sizeof url, "%s%s", e->endpoint, path);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
    snprintf(ctype, sizeof ctype, "Content-Type: %s", type);
    struct curl_slist *h = curl_slist_append(curl_slist_append(NULL, auth), ctype);
    char *reply = NULL;
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &reply);
    long status = 0;
    if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    curl_slist_free_all(h);
    free(reply);
    return status;
}

/* Appends one commit line {"key":"file","value":{"path","content"(base64),
 * "encoding"}} per regular file under dir/rel to *ndjson. */
static int commit_lines(const char *dir, const char *rel, char **ndjson) {
    char path[2048];
    snprintf(path, sizeof path, "%s%s%s", dir, *rel ? "/" : "", rel);
    DIR *d = opendir(path);
    if (!d) return -1;
    int rc = 0;
    for (struct dirent *de; rc == 0 && (de = readdir(d));) {
        if (de->d_name[0] == '.') continue;
        char sub[1024], full[3100];
        snprintf(sub, sizeof sub, "%s%s%s", rel, *rel ? "/" : "", de->d_name);
        snprintf(full, sizeof full, "%s/%s", dir, sub);
        struct stat st;
        if (lstat(full, &st) != 0) {
            rc = -1;
        } else if (S_ISDIR(st.st_mode)) {
            rc = commit_lines(dir, sub, ndjson);
        } else if (S_ISREG(st.st_mode)) {
            size_t n;
            unsigned char *data = (unsigned char *)thub_read(full, &n);
            char *b64 = data ? malloc(4 * (n / 3 + 1) + 1) : NULL;
            if (b64) EVP_EncodeBlock((unsigned char *)b64, data, (int)n);
            json_t *line = b64 ? json_pack("{s:s, s:{s:s, s:s, s:s}}", "key", "file", "value",
                                           "path", sub, "content", b64, "encoding", "base64")
                               : NULL;
            char *text = line ? json_dumps(line, JSON_COMPACT) : NULL;
            size_t old = *ndjson ? strlen(*ndjson) : 0;
            char *grown = text ? realloc(*ndjson, old + strlen(text) + 2) : NULL;
            if (grown) {
                sprintf(grown + old, "%s\n", text);
                *ndjson = grown;
            } else {
                rc = -1;
            }
            free(text), json_decref(line), free(b64), free(data);
        }
    }
    closedir(d);
    return rc;
}

/* The seed of a repo of type "model" or "dataset" on branch (created from
 * main when it is not "main"). */
static int seed_repo(const thub_emu *e, const char *token, const char *type, const char *repo_id,
                     const char *dir, const char *branch) {
    const char *slash = strchr(repo_id, '/');
    if (!slash) return -1;
    char create[512], path[512];
    snprintf(create, sizeof create,
             "{\"organization\": \"%.*s\", \"name\": \"%s\", \"type\": \"%s\"}",
             (int)(slash - repo_id), repo_id, slash + 1, type);
    const long created = emu_post(e, token, "/api/repos/create", "application/json", create);
    if (created != 200 && created != 409) return -1; /* 409: a new commit of an existing repo */
    char enc[256] = "";
    for (const char *b = branch; *b && strlen(enc) < sizeof enc - 4; b++)
        snprintf(enc + strlen(enc), sizeof enc - strlen(enc), *b == '/' ? "%%2F" : "%c", *b);
    snprintf(path, sizeof path, "/api/%ss/%s/branch/%s", type, repo_id, enc);
    if (strcmp(branch, "main") != 0 && emu_post(e, token, path, "application/json", "{}") != 200)
        return -1;
    char *ndjson = strdup("{\"key\": \"header\", \"value\": {\"summary\": \"seed\"}}\n");
    int rc = ndjson ? commit_lines(dir, "", &ndjson) : -1;
    snprintf(path, sizeof path, "/api/%ss/%s/commit/%s", type, repo_id, enc);
    if (rc == 0 && emu_post(e, token, path, "application/x-ndjson", ndjson) != 200) rc = -1;
    free(ndjson);
    return rc;
}

int thub_seed_repo(const thub_emu *e, const char *token, const char *repo_id, const char *dir) {
    return seed_repo(e, token, "model", repo_id, dir, "main");
}

int thub_seed_dataset(const thub_emu *e, const char *token, const char *repo_id, const char *dir) {
    return seed_repo(e, token, "dataset", repo_id, dir, "main");
}

int thub_seed_dataset_ref(const thub_emu *e, const char *token, const char *repo_id,
                          const char *dir, const char *ref) {
    return seed_repo(e, token, "dataset", repo_id, dir, ref);
}

static int emu_stat(const thub_emu *e, const char *route, const char *field) {
    char *body = NULL;
    emu_request(e, "GET", "stats", &body);
    json_t *j = body ? json_loads(body, 0, NULL) : NULL;
    free(body);
    int n = route ? (int)json_integer_value(json_object_get(
                        json_object_get(json_object_get(j, "routes"), route), field))
                  : (int)json_integer_value(json_object_get(j, "storage_auth"));
    json_decref(j);
    return n;
}

int thub_emu_count(const thub_emu *e, const char *route) { return emu_stat(e, route, "requests"); }

int thub_emu_faults(const thub_emu *e, const char *route) { return emu_stat(e, route, "faults"); }

int thub_log_misplaced(const thub_emu *e, const char *secret, int *with) {
    /* The emulator's routes that are the Hub's API (tool_hub_emulator.c). */
    static const char *const api[] = {"whoami\t", "create\t", "info\t",    "preupload\t", "batch\t",
                                      "verify\t", "commit\t", "resolve\t", "branch\t"};
    size_t n, k = strlen(secret);
    char *log = thub_read(e->log, &n);
    if (!log) return -1;
    char want[300];
    snprintf(want, sizeof want, "\tAuthorization: Bearer %s", secret);
    int bad = 0;
    *with = 0;
    for (char *line = strtok(log, "\n"); line; line = strtok(NULL, "\n")) {
        char *hit = strstr(line, secret);
        if (!hit) continue;
        ++*with;
        int api_route = 0;
        for (size_t i = 0; i < sizeof api / sizeof api[0]; i++)
            api_route |= strncmp(line, api[i], strlen(api[i])) == 0;
        size_t pre = strlen(want) - k;
        int in_auth = (size_t)(hit - line) >= pre && strncmp(hit - pre, want, strlen(want)) == 0 &&
                      (hit[k] == '\t' || hit[k] == '\0');
        if (!api_route || !in_auth || strstr(hit + k, secret))
            bad++, printf("    misplaced: %.160s\n", line);
    }
    free(log);
    return bad;
}

static int write_bytes(const char *dir, const char *name, const void *d, size_t n) {
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    if (!f) return -1;
    int bad = fwrite(d, 1, n, f) != n;
    return fclose(f) != 0 || bad ? -1 : 0;
}

static int write_random(const char *dir, const char *name, size_t n, unsigned *seed,
                        const char *magic) {
    unsigned char *b = malloc(n);
    if (!b) return -1;
    for (size_t i = 0; i < n; i++) b[i] = (unsigned char)(rand_r(seed) >> 7);
    if (magic) memcpy(b, magic, strlen(magic) < n ? strlen(magic) : n);
    int rc = write_bytes(dir, name, b, n);
    free(b);
    return rc;
}

int thub_make_outdir(const char *dir, long weights_bytes, unsigned seed) {
    char p[1024], text[256];
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) return -1;
    int n = snprintf(text, sizeof text,
                     "{\"_class_name\": \"ControlNetModel\", \"seed\": %u, \"in_channels\": 4}\n",
                     seed);
    int rc = write_bytes(dir, "config.json", text, (size_t)n);
    n = snprintf(text, sizeof text, "---\nlicense: openrail\n---\n# ControlNet %u\n", seed);
    rc |= write_bytes(dir, "README.md", text, (size_t)n);
    rc |= write_random(dir, "diffusion_pytorch_model.safetensors", (size_t)weights_bytes, &seed,
                       NULL);
    rc |= write_random(dir, "image_control.png", 3000, &seed, "\x89PNG\r\n\x1a\n");
    rc |= write_random(dir, "images_0.png", 7000, &seed, "\x89PNG\r\n\x1a\n");
    rc |= write_random(dir, "optimizer.bin", 5000, &seed, NULL);
    snprintf(p, sizeof p, "%s/checkpoint-10", dir);
    mkdir(p, 0755);
    rc |= write_random(p, "model.safetensors", 4000, &seed, NULL);
    snprintf(p, sizeof p, "%s/logs", dir);
    mkdir(p, 0755);
    rc |= write_bytes(p, "train.log", "step 1 loss 0.1\n", 16);
    return rc;
}

int thub_run(const char *const *argv, const char *const *env, int as_nobody, long fsize_limit,
             char *out, size_t cap) {
    int p[2];
    if (pipe(p)) return -1;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(p[1], 1);
        dup2(p[1], 2);
        close(p[0]);
        for (const char *const *e = env; e && *e; e++) {
            const char *eq = strchr(*e, '=');
            char k[256];
            snprintf(k, sizeof k, "%.*s", (int)(eq - *e), *e);
            if (eq[1])
                setenv(k, eq + 1, 1);
            else
                unsetenv(k);
        }
        if (fsize_limit > 0) {
            struct rlimit rl = {(rlim_t)fsize_limit, (rlim_t)fsize_limit};
            signal(SIGXFSZ, SIG_IGN);
            setrlimit(RLIMIT_FSIZE, &rl);
        }
        if (as_nobody && getuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0)) _exit(126);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(p[1]);
    size_t got = 0;
    ssize_t r;
    while ((r = read(p[0], out + got, cap - 1 - got)) > 0) got += (size_t)r;
    out[got] = '\0';
    close(p[0]);
    int status;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int thub_sha256(const char *path, char out[65]) {
    size_t n;
    char *d = thub_read(path, &n);
    if (!d) return -1;
    unsigned char md[32];
    unsigned len;
    EVP_Digest(d, n, md, &len, EVP_sha256(), NULL);
    for (int i = 0; i < 32; i++) sprintf(out + 2 * i, "%02x", md[i]);
    free(d);
    return 0;
}

char *thub_read(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    if (b) b[n] = '\0', *len = (size_t)n;
    return b;
}

int thub_tree_contains(const char *dir, const char *needle) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    struct dirent *e;
    int found = 0;
    while (!found && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        char p[2048];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(p, &st) != 0) continue;
        if (S_ISDIR(st.st_mode)) {
            found = thub_tree_contains(p, needle);
        } else if (S_ISLNK(st.st_mode)) {
            char t[2048];
            ssize_t n = readlink(p, t, sizeof t - 1);
            found = n > 0 && (t[n] = '\0', strstr(t, needle) != NULL);
        } else {
            size_t n;
            char *b = thub_read(p, &n);
            found = b && memmem(b, n, needle, strlen(needle)) != NULL;
            free(b);
        }
        found |= strstr(e->d_name, needle) != NULL;
    }
    closedir(d);
    return found;
}
