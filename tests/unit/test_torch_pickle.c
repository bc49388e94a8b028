/* PyTorch files through the restricted unpickler (engine/core/torch_pickle.h)
 * and the deprecated VAE attention names (engine/models/vae.c).
 *
 * Truths: files written by the real torch.save (Debian's python3-torch, run
 * by tests/tools/torch_files.py with /usr/bin/python3; installed here as root
 * when missing, the test SKIPs with a line saying so when it cannot be),
 * each next to a safetensors file of the same tensors written by hand in
 * Python; the fixture VAE for the renamed keys; hand-written pickles that
 * real torch.load accepts (good_handmade.bin) or that break one rule each,
 * with the words each refusal must contain; and every truncation and
 * byte-flip of the real files, which must be refused or read, never crash
 * (also under make asan). */
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine/core/safetensors.h"
#include "engine/core/torch_pickle.h"
#include "engine/core/weights_file.h"
#include "engine/models/vae.h"
#include "tests/lib/harness.h"
#include "tests/lib/lib_fs.h"

#define PYTHON "/usr/bin/python3"

static char tmp[256];
static cnet_backend be;

static const char *at(const char *leaf) {
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmp, leaf);
    return buf[k];
}

/* Every tensor of the safetensors truth, equal in dtype, shape and bytes. */
static void expect_same(const st_file *got, const char *truth_path) {
    st_file want;
    cnet_error err;
    CHECK(st_open(&want, truth_path, &err) == 0, "%s", err.msg);
    EXPECT(got->n == want.n, "%d tensors, the truth has %d", got->n, want.n);
    for (int i = 0; i < want.n; i++) {
        const st_entry *w = &want.entries[i], *g = st_find(got, w->name);
        EXPECT(g, "tensor '%s' missing", w->name);
        if (!g) continue;
        int same = g->view.dtype == w->view.dtype && g->view.ndim == w->view.ndim &&
                   g->nbytes == w->nbytes && memcmp(g->view.data, w->view.data, w->nbytes) == 0;
        for (int d = 0; same && d < w->view.ndim; d++) same = g->view.shape[d] == w->view.shape[d];
        EXPECT(same, "tensor '%s' differs (dtype %d/%d, %zu/%zu bytes)", w->name, g->view.dtype,
               w->view.dtype, g->nbytes, w->nbytes);
    }
    st_close(&want);
}

static void test_state_dict(void) {
    st_file f;
    cnet_error err;
    CHECK(weights_file_open(&f, at("state.bin"), &err) == 0, "%s", err.msg);
    expect_same(&f, at("state.safetensors"));
    EXPECT(!st_find(&f, "ema.num_updates"), "an int32 tensor was not left out");
    EXPECT(f.heap != NULL, "the transposed tensors were not copied out");
    st_close(&f);
}

static void test_many_tensors(void) {
    st_file f;
    cnet_error err;
    CHECK(weights_file_open(&f, at("many.bin"), &err) == 0, "%s", err.msg);
    expect_same(&f, at("many.safetensors"));
    st_close(&f);
}

static void test_lightning_checkpoint(void) {
    st_file f;
    cnet_error err;
    CHECK(weights_file_open(&f, at("lightning.ckpt"), &err) == 0, "%s", err.msg);
    expect_same(&f, at("state.safetensors"));
    st_close(&f);
}

/* A pickle written here that real torch.load reads as {'a': [[0,1,2],[3,4,5]]}. */
static void test_handmade(void) {
    st_file f;
    cnet_error err;
    CHECK(weights_file_open(&f, at("good_handmade.bin"), &err) == 0, "%s", err.msg);
    const st_entry *e = st_find(&f, "a");
    CHECK(f.n == 1 && e && e->view.ndim == 2 && e->view.shape[0] == 2 && e->view.shape[1] == 3,
          "n %d", f.n);
    float v[6]; /* zipfile does not align entries as torch.save does */
    memcpy(v, e->view.data, sizeof v);
    for (int i = 0; i < 6; i++) EXPECT(v[i] == (float)i, "a[%d] = %g", i, v[i]);
    st_close(&f);
}

static void test_legacy_refused(void) {
    st_file f;
    cnet_error err;
    int rc = weights_file_open(&f, at("legacy.pth"), &err);
    CHECK(rc == CNET_EFORMAT && strstr(err.msg, "legacy") && strstr(err.msg, "legacy.pth"), "%d %s",
          rc, err.msg);
}

/* Code in a pickle is refused by the global's name, and never runs. */
static void test_code_refused(void) {
    static const char *const files[][2] = {{"evil_system.bin", "posix.system"},
                                           {"evil_eval.bin", "__builtin__.eval"}};
    for (int i = 0; i < 2; i++) {
        st_file f;
        cnet_error err;
        int rc = weights_file_open(&f, at(files[i][0]), &err);
        EXPECT(rc == CNET_EFORMAT && strstr(err.msg, files[i][1]) && strstr(err.msg, "refused"),
               "%s: %d %s", files[i][0], rc, err.msg);
    }
    EXPECT(access(at("pwned"), F_OK) != 0, "a pickle's code ran");
}

/* bad_expect.txt: "FILE<TAB>words the refusal must contain" per line. */
static void test_broken_pickles(void) {
    size_t n;
    char *list = file_read(at("bad_expect.txt"), &n);
    CHECK(list, "no bad_expect.txt");
    int count = 0;
    for (char *line = strtok(list, "\n"); line; line = strtok(NULL, "\n")) {
        char *tab = strchr(line, '\t');
        if (!tab) continue;
        *tab = 0;
        st_file f;
        cnet_error err;
        int rc = weights_file_open(&f, at(line), &err);
        EXPECT(rc < 0 && strstr(err.msg, tab + 1) && strstr(err.msg, line), "%s: %d '%s'", line, rc,
               rc ? err.msg : "(read)");
        if (rc == 0) st_close(&f);
        count++;
    }
    free(list);
    EXPECT(count >= 15, "only %d broken files listed", count);
}

/* amp_keys.bin: 300 persistent ids naming one storage under one 1 MiB key
 * (the file is 1 MiB). Read in a child, whose peak resident memory may not
 * grow by more than 64 MiB: the key is held once, not once per id. */
static void test_shared_key(void) {
    fflush(stdout);
    pid_t pid = fork();
    CHECK(pid >= 0, "fork");
    if (pid == 0) {
        struct rusage before, after;
        getrusage(RUSAGE_SELF, &before);
        st_file f;
        cnet_error err;
        int rc = weights_file_open(&f, at("amp_keys.bin"), &err);
        getrusage(RUSAGE_SELF, &after);
        long grew = (after.ru_maxrss - before.ru_maxrss) / 1024;
        printf("    amp_keys.bin: rc %d (%s), peak memory grew %ld MiB\n", rc,
               rc ? err.msg : "read", grew);
        fflush(stdout);
        if (rc == 0) st_close(&f);
        _exit(rc != 0 ? 2 : grew > 64 ? 3 : 0);
    }
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status), "the reader died (status %d)",
          status);
    EXPECT(WEXITSTATUS(status) == 0, "exit %d (2: refused, 3: took more than 64 MiB)",
           WEXITSTATUS(status));
}

/* Every prefix and every single-byte flip of a real file: read or refused
 * with a message naming it, never a crash or a read outside the file. */
static void test_corpus(void) {
    static const char *const files[] = {"state.bin", "lightning.ckpt"};
    for (int k = 0; k < 2; k++) {
        size_t n;
        unsigned char *orig = (unsigned char *)file_read(at(files[k]), &n);
        CHECK(orig, "%s unreadable", files[k]);
        unsigned char *buf = malloc(n);
        CHECK(buf, "oom");
        const char *path = at("corpus.bin");
        int refused = 0, read = 0;
        for (size_t len = 0; len < n; len++) {
            file_write(path, orig, len);
            st_file f;
            cnet_error err;
            if (weights_file_open(&f, path, &err) == 0) {
                read++;
                st_close(&f);
            } else {
                refused++;
                EXPECT(strstr(err.msg, "corpus.bin"), "len %zu: '%s'", len, err.msg);
            }
        }
        EXPECT(read == 0, "%s: %d truncations were read", files[k], read);
        for (size_t i = 0; i < n; i++) {
            memcpy(buf, orig, n);
            buf[i] ^= (unsigned char)(0x5a + i);
            file_write(path, buf, n);
            st_file f;
            cnet_error err;
            if (weights_file_open(&f, path, &err) == 0)
                st_close(&f);
            else
                EXPECT(err.msg[0], "flip at %zu: no message", i);
        }
        printf("    %s: %zu truncations refused, %zu flips survived\n", files[k], (size_t)refused,
               n);
        free(buf);
        free(orig);
    }
}

/* The fixture VAE with query/key/value/proj_attn names, as .bin and
 * .safetensors, loads the same parameters as the fixture's own folder. */
static void test_vae_old_names(void) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/tiny-sd/vae", harness_fixtures());
    vae_model ref, m;
    cnet_error err;
    CHECK(vae_open(&ref, &be, dir, &err) == 0, "%s", err.msg);
    static const char *const folders[] = {"vae_old", "vae_old_st"};
    for (int k = 0; k < 2; k++) {
        int rc = vae_open(&m, &be, at(folders[k]), &err);
        EXPECT(rc == 0, "%s: %s", folders[k], err.msg);
        if (rc) continue;
        EXPECT(m.params.n == ref.params.n && m.params.total == ref.params.total, "%s", folders[k]);
        for (int i = 0; i < ref.params.n && i < m.params.n; i++)
            EXPECT(memcmp(m.params.items[i].data, ref.params.items[i].data,
                          ref.params.items[i].numel * sizeof(float)) == 0,
                   "%s: '%s' differs", folders[k], ref.params.items[i].name);
        vae_free(&m);
    }
    vae_free(&ref);
}

/* The real torch, installed as the Makefile's deps are when missing. */
static int have_torch(void) {
    if (system(PYTHON " -c 'import torch' 2>/dev/null") == 0) return 1;
    if (geteuid() != 0) return 0;
    printf("    installing Debian's python3-torch\n");
    if (system("(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "
               "python3-torch) >/dev/null 2>&1") != 0)
        return 0;
    return system(PYTHON " -c 'import torch' 2>/dev/null") == 0;
}

int main(int argc, char **argv) {
    harness_init(argc, argv);
    cnet_error err;
    if (!have_torch()) {
        printf("SKIP test_torch_pickle: python3-torch is not installed and cannot be "
               "(apt-get install python3-torch as root)\ntest_torch_pickle: 0 passed, 0 failed\n");
        return 0;
    }
    char cmd[1024];
    if (tmpdir_make(tmp, sizeof tmp, "cnet_torch_") || cnet_backend_cpu_init(&be, &err)) {
        printf("setup failed\ntest_torch_pickle: 0 passed, 1 failed\n");
        return 1;
    }
    snprintf(cmd, sizeof cmd, PYTHON " tests/tools/torch_files.py %s %s", tmp, harness_fixtures());
    if (system(cmd) != 0) {
        printf("setup failed: %s\ntest_torch_pickle: 0 passed, 1 failed\n", cmd);
        return 1;
    }
    RUN(test_state_dict);
    RUN(test_many_tensors);
    RUN(test_lightning_checkpoint);
    RUN(test_handmade);
    RUN(test_legacy_refused);
    RUN(test_code_refused);
    RUN(test_broken_pickles);
    RUN(test_shared_key);
    RUN(test_corpus);
    RUN(test_vae_old_names);
    cnet_backend_free(&be);
    tmpdir_remove(tmp);
    return harness_done();
}
