/* `cnet forward` round trips: the golden files' inputs go through the real
 * binary ($BUILD/cnet) on the fixture's model folder, and every output file
 * tensor must equal the golden tensor the reference (diffusers /
 * transformers) produced, within the golden tolerance (server/golden/golden.h):
 * text encoder, VAE encode and decode, UNet with each timestep kind and with
 * ControlNet residuals, ControlNet for every run the goldens hold (timestep,
 * conditioning scale, guess mode). Also: bad inputs are refused with the
 * tensor named, before the model is loaded; a run on a backend that failed
 * returns the backend's error and no outputs (what `cnet golden` and `cnet
 * forward` would otherwise compare or write: tensors the skipped ops never
 * wrote). */
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kernels/cpu/scratch.h"
#include "server/golden/golden.h"
#include "server/golden/model_io.h"
#include "engine/core/backend.h"
#include "tests/lib/harness.h"
#include "tests/lib/lib_fs.h"

static const char *fixtures(void) { return harness_fixtures(); }

static char tmp[PATH_MAX];
static golden_ctx gctx;

/* Runs $BUILD/cnet forward with args (NULL-terminated); stderr into errbuf. */
static int run_forward(const char *const *args, char *errbuf, size_t cap) {
    const char *build = getenv("BUILD");
    char bin[PATH_MAX], errpath[PATH_MAX + 16];
    snprintf(bin, sizeof bin, "%s/cnet", build && *build ? build : "build");
    snprintf(errpath, sizeof errpath, "%s/stderr.txt", tmp);
    const char *argv[32] = {bin, "forward"};
    int n = 2;
    for (int i = 0; args[i] && n < 31; i++) argv[n++] = args[i];
    argv[n] = NULL;
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        int fd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int devnull = open("/dev/null", O_WRONLY);
        if (fd < 0 || devnull < 0) _exit(126);
        dup2(fd, 2);
        dup2(devnull, 1);
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    size_t len = 0;
    char *text = file_read(errpath, &len);
    snprintf(errbuf, cap, "%s", text ? text : "");
    free(text);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static const char *golden_path(const char *stem) {
    static char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/goldens/%s.safetensors", fixtures(), stem);
    return path;
}

/* Compares out's tensor `got` with golden `want` of file g (stem). */
static int compare(const st_file *out, const char *got, const st_file *g, const char *stem,
                   const char *want) {
    const st_entry *a = st_find(out, got), *b = st_find(g, want);
    double allowed = 0;
    cnet_error err;
    if (!a || !b) {
        printf("    %s: missing %s\n", want, a ? "golden" : "output");
        return 0;
    }
    if (golden_tolerance(&gctx, stem, want, &allowed, &err)) {
        printf("    %s\n", err.msg);
        return 0;
    }
    int64_t n = cnet_tensor_numel(&a->view);
    int same = a->view.ndim == b->view.ndim && n == cnet_tensor_numel(&b->view) &&
               a->view.dtype == CNET_F32 && b->view.dtype == CNET_F32;
    for (int d = 0; same && d < a->view.ndim; d++) same = a->view.shape[d] == b->view.shape[d];
    if (!same) {
        printf("    %s: shape or dtype differs\n", want);
        return 0;
    }
    double max_err = 0;
    const float *x = a->view.data, *y = b->view.data;
    for (int64_t i = 0; i < n; i++) max_err = fmax(max_err, fabs((double)x[i] - y[i]));
    if (max_err > allowed) printf("    %s: max error %.3g > %.3g\n", want, max_err, allowed);
    return max_err <= allowed;
}

static int open_out(st_file *f, const char *path) {
    cnet_error err;
    if (st_open(f, path, &err) == 0) return 1;
    printf("    %s\n", err.msg);
    return 0;
}

/* On the default CPU and with --device cuda: the GPU where one is visible,
 * else the CPU with a note; the goldens hold either way. */
static void text_encoder_on(const char *device) {
    char out[PATH_MAX + 32], msg[2048];
    snprintf(out, sizeof out, "%s/te-%s.safetensors", tmp, device);
    const char *args[] = {"--model",     gctx.model_dir,
                          "--component", "text_encoder",
                          "--inputs",    golden_path("text_encoder"),
                          "--out",       out,
                          "--device",    device,
                          NULL};
    CHECK(run_forward(args, msg, sizeof msg) == 0, "%s: %s", device, msg);
    if (strcmp(device, "cuda") == 0 && cnet_backend_cuda_count() == 0)
        EXPECT(strstr(msg, "no CUDA device visible") && strstr(msg, "using the CPU"),
               "no fallback note: %s", msg);
    st_file g, o;
    cnet_error err;
    CHECK(st_open(&g, golden_path("text_encoder"), &err) == 0, "%s", err.msg);
    if (!open_out(&o, out)) {
        st_close(&g);
        CHECK(0, "no output");
    }
    EXPECT(compare(&o, "text_encoder.last_hidden_state", &g, "text_encoder",
                   "text_encoder.last_hidden_state"),
           "last_hidden_state");
    EXPECT(
        compare(&o, "text_encoder.pooler_output", &g, "text_encoder", "text_encoder.pooler_output"),
        "pooler_output");
    st_close(&o);
    st_close(&g);
}

static void test_text_encoder(void) {
    text_encoder_on("cpu");
    text_encoder_on("cuda");
}

static void test_vae(void) {
    char enc[PATH_MAX + 16], dec[PATH_MAX + 16], msg[2048];
    snprintf(enc, sizeof enc, "%s/enc.safetensors", tmp);
    snprintf(dec, sizeof dec, "%s/dec.safetensors", tmp);
    const char *a1[] = {"--model",          gctx.model_dir, "--component", "vae.encode", "--inputs",
                        golden_path("vae"), "--out",        enc,           NULL};
    const char *a2[] = {"--model",          gctx.model_dir, "--component", "vae.decode", "--inputs",
                        golden_path("vae"), "--out",        dec,           NULL};
    CHECK(run_forward(a1, msg, sizeof msg) == 0, "%s", msg);
    CHECK(run_forward(a2, msg, sizeof msg) == 0, "%s", msg);
    st_file g, o1, o2;
    cnet_error err;
    CHECK(st_open(&g, golden_path("vae"), &err) == 0, "%s", err.msg);
    int ok1 = open_out(&o1, enc), ok2 = open_out(&o2, dec);
    static const char *const enc_names[] = {"vae.encode.moments", "vae.encode.mean",
                                            "vae.encode.logvar", "vae.encode.std"};
    for (int i = 0; ok1 && i < 4; i++)
        EXPECT(compare(&o1, enc_names[i], &g, "vae", enc_names[i]), "%s", enc_names[i]);
    if (ok2) EXPECT(compare(&o2, "vae.decode.output", &g, "vae", "vae.decode.output"), "decode");
    EXPECT(ok1 && ok2, "outputs missing");
    if (ok1) st_close(&o1);
    if (ok2) st_close(&o2);
    st_close(&g);
}

/* Writes the named tensors of g into path (an input file of one run). */
static int write_subset(const st_file *g, const char *const *names, int n, const char *path) {
    st_write_item items[8];
    for (int i = 0; i < n; i++) {
        const st_entry *e = st_find(g, names[i]);
        if (!e) return 0;
        items[i].name = names[i], items[i].view = e->view;
    }
    cnet_error err;
    return st_write(path, items, n, NULL, NULL, 0, &err) == 0;
}

static void test_unet(void) {
    st_file g;
    cnet_error err;
    char in[PATH_MAX + 32], out[PATH_MAX + 32], msg[2048];
    snprintf(in, sizeof in, "%s/unet_in.safetensors", tmp);
    snprintf(out, sizeof out, "%s/unet_out.safetensors", tmp);
    CHECK(st_open(&g, golden_path("unet"), &err) == 0, "%s", err.msg);
    static const char *const tsel[] = {"t_batch", "t_scalar", "t_float"};
    int runs = 0;
    for (int k = 0; k < 3; k++) {
        char tname[64], want[64];
        snprintf(tname, sizeof tname, "unet.in.%s", tsel[k]);
        snprintf(want, sizeof want, "unet.out.plain.%s", tsel[k]);
        if (!st_find(&g, tname) || !st_find(&g, want)) continue;
        const char *names[] = {"unet.in.sample", "unet.in.encoder_hidden_states", tname};
        EXPECT(write_subset(&g, names, 3, in), "cannot write %s", in);
        const char *args[] = {"--model", gctx.model_dir, "--component", "unet", "--inputs",
                              in,        "--out",        out,           NULL};
        int rc = run_forward(args, msg, sizeof msg);
        EXPECT(rc == 0, "%s: %s", tsel[k], msg);
        st_file o;
        if (rc == 0 && open_out(&o, out)) {
            EXPECT(compare(&o, "unet.out", &g, "unet", want), "%s", want);
            st_close(&o);
        }
        runs++;
    }
    if (st_find(&g, "unet.out.residuals.t_batch")) {
        const char *args[] = {"--model",    gctx.model_dir,      "--component", "unet",
                              "--inputs",   golden_path("unet"), "--out",       out,
                              "--timestep", "t_batch",           NULL};
        int rc = run_forward(args, msg, sizeof msg);
        EXPECT(rc == 0, "residuals: %s", msg);
        st_file o;
        if (rc == 0 && open_out(&o, out)) {
            EXPECT(compare(&o, "unet.out", &g, "unet", "unet.out.residuals.t_batch"), "residuals");
            st_close(&o);
        }
        runs++;
    }
    st_close(&g);
    EXPECT(runs > 0, "the unet golden has no runs");
}

static void test_controlnet(void) {
    st_file g;
    cnet_error err;
    char out[PATH_MAX + 32], msg[2048];
    snprintf(out, sizeof out, "%s/cn_out.safetensors", tmp);
    CHECK(st_open(&g, golden_path("controlnet"), &err) == 0, "%s", err.msg);
    int runs = 0;
    for (int e = 0; e < g.n; e++) {
        /* controlnet.<tsel>.<scale<x> | guess_mode>.mid */
        const char *name = g.entries[e].name;
        size_t len = strlen(name);
        if (strncmp(name, "controlnet.", 11) || len < 4 || strcmp(name + len - 4, ".mid")) continue;
        char tsel[64] = "", mode[64] = "", scale[64] = "1";
        const char *p = name + 11, *dot = strchr(p, '.');
        if (!dot) continue;
        snprintf(tsel, sizeof tsel, "%.*s", (int)(dot - p), p);
        snprintf(mode, sizeof mode, "%.*s", (int)(name + len - 4 - dot - 1), dot + 1);
        int guess = strcmp(mode, "guess_mode") == 0;
        if (!guess && strncmp(mode, "scale", 5) == 0) snprintf(scale, sizeof scale, "%s", mode + 5);
        const char *args[] = {"--model",
                              gctx.model_dir,
                              "--component",
                              "controlnet",
                              "--inputs",
                              golden_path("controlnet"),
                              "--out",
                              out,
                              "--timestep",
                              tsel,
                              "--conditioning-scale",
                              scale,
                              guess ? "--guess-mode" : NULL,
                              NULL};
        int rc = run_forward(args, msg, sizeof msg);
        EXPECT(rc == 0, "%s: %s", name, msg);
        st_file o;
        if (rc || !open_out(&o, out)) continue;
        char prefix[128];
        snprintf(prefix, sizeof prefix, "%.*s", (int)(len - 4), name);
        int i = 0;
        for (;; i++) {
            char got[64], want[192];
            snprintf(got, sizeof got, "controlnet.down.%d", i);
            snprintf(want, sizeof want, "%s.down.%d", prefix, i);
            if (!st_find(&g, want)) break;
            EXPECT(compare(&o, got, &g, "controlnet", want), "%s", want);
        }
        EXPECT(i > 0 && st_find(&o, "controlnet.down.0") && !st_find(&o, "controlnet.down.99"),
               "%s: no down residuals", name);
        EXPECT(compare(&o, "controlnet.mid", &g, "controlnet", name), "%s", name);
        st_close(&o);
        runs++;
    }
    st_close(&g);
    EXPECT(runs > 0, "the controlnet golden has no runs");
}

/* Refusals: a missing input names the tensor; an ambiguous timestep asks
 * for --timestep; an unknown component and an option of another component
 * are usage errors. */
static void test_bad_inputs(void) {
    char out[PATH_MAX + 32], msg[2048];
    snprintf(out, sizeof out, "%s/bad.safetensors", tmp);
    const char *a1[] = {"--model",          gctx.model_dir, "--component", "unet", "--inputs",
                        golden_path("vae"), "--out",        out,           NULL};
    EXPECT(run_forward(a1, msg, sizeof msg) == 1 && strstr(msg, "unet.in.sample"), "%s", msg);
    const char *a2[] = {"--model",           gctx.model_dir, "--component", "unet", "--inputs",
                        golden_path("unet"), "--out",        out,           NULL};
    EXPECT(run_forward(a2, msg, sizeof msg) == 1 && strstr(msg, "--timestep"), "%s", msg);
    const char *a3[] = {"--model",          gctx.model_dir, "--component", "vae", "--inputs",
                        golden_path("vae"), "--out",        out,           NULL};
    EXPECT(run_forward(a3, msg, sizeof msg) == 2, "%s", msg);
    const char *a4[] = {
        "--model",          gctx.model_dir, "--component", "vae.decode",   "--inputs",
        golden_path("vae"), "--out",        out,           "--guess-mode", NULL};
    EXPECT(run_forward(a4, msg, sizeof msg) == 2 && strstr(msg, "does not apply"), "%s", msg);
    const char *a5[] = {
        "--model", gctx.model_dir, "--component", "unet", "--inputs", golden_path("unet"), "--out",
        out,       "--device",     "gpu0",        NULL};
    EXPECT(run_forward(a5, msg, sizeof msg) == 2 && strstr(msg, "'gpu0'"), "%s", msg);
    EXPECT(access(out, F_OK) != 0, "an output was written by a failed run");
}

/* A misnamed input fails on the inputs alone: with a model folder that does
 * not exist, the error names the tensor, not the folder. */
static void test_inputs_checked_before_the_model(void) {
    st_file g;
    cnet_error err;
    char in[PATH_MAX + 32], out[PATH_MAX + 32], model[PATH_MAX + 32], msg[2048];
    snprintf(in, sizeof in, "%s/misnamed.safetensors", tmp);
    snprintf(out, sizeof out, "%s/misnamed_out.safetensors", tmp);
    snprintf(model, sizeof model, "%s/no_such_model", tmp);
    CHECK(st_open(&g, golden_path("unet"), &err) == 0, "%s", err.msg);
    const st_entry *x = st_find(&g, "unet.in.sample"),
                   *e = st_find(&g, "unet.in.encoder_hidden_states"),
                   *t = st_find(&g, "unet.in.t_batch");
    CHECK(x && e && t, "the unet golden lacks sample, encoder_hidden_states or t_batch");
    const st_write_item items[] = {{.name = "unet.in.sampel", .view = x->view},
                                   {.name = "unet.in.encoder_hidden_states", .view = e->view},
                                   {.name = "unet.in.t_batch", .view = t->view}};
    EXPECT(st_write(in, items, 3, NULL, NULL, 0, &err) == 0, "%s", err.msg);
    st_close(&g);
    const char *args[] = {"--model", model,   "--component", "unet", "--inputs",
                          in,        "--out", out,           NULL};
    EXPECT(run_forward(args, msg, sizeof msg) == 1 && strstr(msg, "'unet.in.sample'") &&
               !strstr(msg, "no_such_model"),
           "%s", msg);
    EXPECT(access(out, F_OK) != 0, "an output was written by a failed run");
}

static void *no_memory(cnet_backend *be, size_t bytes) {
    (void)be, (void)bytes;
    return NULL;
}

static void test_failed_backend_gives_no_outputs(void) {
    cnet_backend be;
    cnet_error err = {0};
    st_file g;
    mio_model m;
    CHECK(st_open(&g, golden_path("vae"), &err) == 0, "%s", err.msg);
    CHECK(cnet_backend_cpu_init(&be, &err) == 0 &&
              mio_open(&m, &be, MIO_VAE_DECODE, gctx.model_dir, &err) == 0,
          "%s", err.msg);
    /* a scratch allocation that fails (as out of host memory): the failure
     * every later op sees */
    void *(*alloc)(cnet_backend *, size_t) = be.alloc;
    be.alloc = no_memory;
    EXPECT(cpu_scratch(&be, 0, (size_t)1 << 40) == NULL, "scratch allocated without memory");
    be.alloc = alloc;
    mio_outputs out = {0};
    const mio_options opt = mio_defaults();
    int rc = mio_run(&m, MIO_VAE_DECODE, &g, &opt, &out, &err);
    EXPECT(rc == CNET_EBACKEND && strstr(err.msg, "out of host memory") && out.n == 0,
           "a run on a failed backend returned %d with %d outputs: '%s'", rc, out.n, err.msg);
    EXPECT(cnet_backend_recover(&be, &err) == 0, "recover: %s", err.msg);
    rc = mio_run(&m, MIO_VAE_DECODE, &g, &opt, &out, &err);
    EXPECT(rc == 0 && mio_output(&out, "vae.decode.output"), "after recover: %s", err.msg);
    mio_outputs_free(&out);
    mio_close(&m);
    cnet_backend_free(&be);
    st_close(&g);
}

int main(int argc, char **argv) {
    harness_init(argc, argv);
    cnet_error err;
    if (golden_init(&gctx, fixtures(), &err) || tmpdir_make(tmp, sizeof tmp, "cnet_forward_")) {
        printf("setup: %s\n", err.msg);
        printf("test_forward: 0 passed, 1 failed\n");
        return 1;
    }
    RUN(test_text_encoder);
    RUN(test_vae);
    RUN(test_unet);
    RUN(test_controlnet);
    RUN(test_bad_inputs);
    RUN(test_inputs_checked_before_the_model);
    RUN(test_failed_backend_gives_no_outputs);
    tmpdir_remove(tmp);
    golden_free(&gctx);
    return harness_done();
}
