/* Hub client pieces with no network: hashes against the test vectors in
 * HUB.md §8 (from huggingface_hub utils/sha.py), repo id rules, the retry
 * delays of http_backoff, endpoint and token rules, redaction, and which
 * files a push publishes. */
#include <stdlib.h>
#include <unistd.h>

#include "api/hub_ref.h"
#include "server/hub/hub_auth.h"
#include "server/hub/hub_hash.h"
#include "server/hub/hub_push.h"
#include "server/hub/hub_retry.h"
#include "tests/lib/harness.h"
#include "tests/lib/lib_hub.h"

static void test_hub_hash_vectors(void) {
    char sha256[65], sha1[41];
    hub_hash_mem("Hello, World!", 13, sha256, sha1);
    CHECK(strcmp(sha1, "b45ef6fec89518d314f546fd6c3025367b721684") == 0, "git sha1 %s", sha1);
    CHECK(strcmp(sha256, "dffd6021bb2bd5b0af676290809ec3a53191dd81c7f70a4b28688a362182986f") == 0,
          "sha256 %s", sha256);
    char dir[512], path[600];
    CHECK(thub_tmpdir(dir, sizeof dir) == 0, "tmpdir");
    snprintf(path, sizeof path, "%s/hello", dir);
    FILE *f = fopen(path, "wb");
    fputs("Hello, World!", f);
    fclose(f);
    hub_file_hash h;
    cnet_error err;
    CHECK(hub_hash_file(path, &h, &err) == 0, "%s", err.msg);
    CHECK(h.size == 13 && h.sample_len == 13, "size %lld", h.size);
    CHECK(strcmp(h.sha256, sha256) == 0 && strcmp(h.git_sha1, sha1) == 0, "file hashes differ");
    snprintf(path, sizeof path, "%s/missing", dir);
    CHECK(hub_hash_file(path, &h, &err) == CNET_EIO && strstr(err.msg, path), "%s", err.msg);
}

static void test_hub_repo_ids(void) {
    static const char *const good[] = {"user/model", "my-org/sd.controlnet_v1", "a/b",
                                       "A1/B2-c.d_e"};
    static const char *const bad[] = {"model", "a/b/c",  "/b",     "a/",    "a//b",    "a/-b",
                                      "a/b.",  "a/b--c", "a/b..c", "a/b c", "a/b.git", "a/é"};
    cnet_error err;
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        EXPECT(hub_repo_id_check(good[i], &err) == 0, "%s rejected: %s", good[i], err.msg);
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        EXPECT(hub_repo_id_check(bad[i], &err) == CNET_EINVAL, "%s accepted", bad[i]);
        EXPECT(strstr(err.msg, "invalid repo id"), "%s: %s", bad[i], err.msg);
    }
    char id[HUB_REPO_ID_MAX], rev[HUB_REVISION_MAX];
    CHECK(hub_ref_parse("hf://ns/name@v1.0", id, rev, &err) == 0, "%s", err.msg);
    CHECK(strcmp(id, "ns/name") == 0 && strcmp(rev, "v1.0") == 0, "%s %s", id, rev);
    CHECK(hub_ref_parse("hf://ns/name", id, rev, &err) == 0 && strcmp(rev, "main") == 0, "rev");
    CHECK(hub_ref_parse("hf://ns/name@../x", id, rev, &err) == CNET_EINVAL, "bad rev accepted");
}

static void test_hub_retry_delays(void) {
    /* 1 s doubling to 8 s. */
    static const double want[] = {1, 2, 4, 8, 8};
    for (int i = 0; i < 5; i++)
        EXPECT(hub_retry_delay(i, 503, NULL, NULL) == want[i], "attempt %d: %g", i,
               hub_retry_delay(i, 503, NULL, NULL));
    CHECK(hub_retry_delay(0, 429, "3", NULL) == 3, "Retry-After");
    CHECK(hub_retry_delay(0, 429, "2", "\"api\";r=0;t=7") == 8, "RateLimit r=0 → t+1");
    CHECK(hub_retry_delay(1, 429, NULL, "\"api\";r=5;t=7") == 2, "RateLimit r>0 → backoff");
    CHECK(hub_retry_delay(0, 503, "100000", NULL) == HUB_RETRY_AFTER_MAX_S, "cap");
    CHECK(hub_retry_delay(2, 503, "Wed, 21 Oct 2015 07:28:00 GMT", NULL) == 4, "date → backoff");
    long r, t;
    CHECK(hub_ratelimit_parse("\"api\";r=0;t=55", &r, &t) == 0 && r == 0 && t == 55, "parse");
    static const long retry[] = {408, 429, 500, 502, 503, 504};
    for (size_t i = 0; i < 6; i++) EXPECT(hub_retry_status(retry[i], NULL), "%ld", retry[i]);
    static const long final[] = {200, 400, 401, 403, 404, 409, 412, 501};
    for (size_t i = 0; i < 8; i++) EXPECT(!hub_retry_status(final[i], ""), "%ld", final[i]);
    CHECK(hub_retry_status(409, "Cannot create repo: another conflicting operation is in progress"),
          "conflicting operation 409 is transient");
}

static void test_hub_endpoint_rules(void) {
    char out[HUB_ENDPOINT_MAX];
    int plain;
    cnet_error err;
    unsetenv("HF_ENDPOINT");
    CHECK(hub_endpoint_resolve(NULL, out, &plain, &err) == 0 &&
              strcmp(out, "https://huggingface.co") == 0 && !plain,
          "default %s", out);
    setenv("HF_ENDPOINT", "https://hub.example/", 1);
    CHECK(hub_endpoint_resolve(NULL, out, &plain, &err) == 0 &&
              strcmp(out, "https://hub.example") == 0,
          "env %s", out);
    CHECK(hub_endpoint_resolve("http://127.0.0.1:8080", out, &plain, &err) == 0 && plain,
          "loopback http: %s", err.msg);
    CHECK(hub_endpoint_resolve("http://localhost", out, &plain, &err) == 0 && plain, "localhost");
    CHECK(hub_endpoint_resolve("http://hub.example", out, &plain, &err) == CNET_EINVAL &&
              strstr(err.msg, "only https"),
          "plain http to a remote host accepted");
    CHECK(hub_endpoint_resolve("http://127.0.0.1.evil.com", out, &plain, &err) == CNET_EINVAL,
          "look-alike loopback accepted");
    CHECK(hub_endpoint_resolve("ftp://x", out, &plain, &err) == CNET_EINVAL, "ftp accepted");
    unsetenv("HF_ENDPOINT");
}

static void test_hub_token_sources(void) {
    char dir[512], path[600], src[512];
    CHECK(thub_tmpdir(dir, sizeof dir) == 0, "tmpdir");
    char *tok;
    cnet_error err;
    unsetenv("HF_TOKEN"), unsetenv("HF_TOKEN_FILE"), unsetenv("HF_TOKEN_PATH");
    setenv("HF_HOME", dir, 1);
    CHECK(hub_token_find(&tok, src, sizeof src, &err) == 0 && !tok, "no token expected");
    snprintf(path, sizeof path, "%s/token", dir);
    FILE *f = fopen(path, "w");
    fputs("hf_fromhomefile\n", f);
    fclose(f);
    CHECK(hub_token_find(&tok, src, sizeof src, &err) == 0 && tok &&
              strcmp(tok, "hf_fromhomefile") == 0 && strstr(src, "/token"),
          "HF_HOME/token not read");
    hub_token_free(tok);
    snprintf(path, sizeof path, "%s/secret", dir);
    f = fopen(path, "w");
    fputs("  hf_fromsecret \n", f);
    fclose(f);
    setenv("HF_TOKEN_FILE", path, 1);
    CHECK(hub_token_find(&tok, src, sizeof src, &err) == 0 && tok &&
              strcmp(tok, "hf_fromsecret") == 0,
          "HF_TOKEN_FILE not preferred");
    hub_token_free(tok);
    setenv("HF_TOKEN", "hf_fromenv", 1);
    CHECK(hub_token_find(&tok, src, sizeof src, &err) == 0 && strcmp(tok, "hf_fromenv") == 0 &&
              strcmp(src, "HF_TOKEN") == 0,
          "HF_TOKEN not preferred");
    hub_token_free(tok);
    unsetenv("HF_TOKEN");
    setenv("HF_TOKEN_FILE", "/nonexistent/secret", 1);
    CHECK(hub_token_find(&tok, src, sizeof src, &err) == CNET_EIO &&
              strstr(err.msg, "/nonexistent/secret"),
          "a configured but missing HF_TOKEN_FILE must fail: %s", err.msg);
    setenv("HF_TOKEN", "hf_two words", 1);
    CHECK(hub_token_find(&tok, src, sizeof src, &err) == CNET_EINVAL && !strstr(err.msg, "hf_two"),
          "bad token not rejected or echoed: %s", err.msg);
    unsetenv("HF_TOKEN"), unsetenv("HF_TOKEN_FILE"), unsetenv("HF_HOME");
}

static void test_hub_redact(void) {
    char s[] = "bad token hf_ABCDEFGHIJKLMN and Authorization: Bearer abc.def-1 end";
    hub_redact(s);
    CHECK(strcmp(s, "bad token hf_*** and Authorization: Bearer *** end") == 0, "%s", s);
    char short_one[] = "Bearer a";
    hub_redact(short_one);
    CHECK(strcmp(short_one, "Bearer a") == 0, "%s", short_one);
}

static void test_hub_push_selection(void) {
    static const char *const yes[] = {"config.json",  "diffusion_pytorch_model.safetensors",
                                      "README.md",    "image_control.png",
                                      "images_0.png", "val.jpg"};
    static const char *const no[] = {
        "optimizer.bin", "optimizer.safetensors", "scheduler.bin",     "random_states_0.pkl",
        "train.log",     "checkpoint-500",        "pytorch_model.bin", ".hidden.png",
        "notes.txt"};
    for (size_t i = 0; i < sizeof yes / sizeof *yes; i++)
        EXPECT(hub_push_selects(yes[i]), "%s not selected", yes[i]);
    for (size_t i = 0; i < sizeof no / sizeof *no; i++)
        EXPECT(!hub_push_selects(no[i]), "%s selected", no[i]);
}

int main(int argc, char **argv) {
    harness_init(argc, argv);
    RUN(test_hub_hash_vectors);
    RUN(test_hub_repo_ids);
    RUN(test_hub_retry_delays);
    RUN(test_hub_endpoint_rules);
    RUN(test_hub_token_sources);
    RUN(test_hub_redact);
    RUN(test_hub_push_selection);
    return harness_done();
}
