/* pipeline_generate's memory phases (engine/pipeline/pipeline.c, issue 21
 * item 4): the text encoders, the denoising loop and the VAE decode each get
 * an arena of their own, sized by their model's *_scratch_bytes at this
 * request, and the previous phase's arena, the control images and the
 * loop's other buffers are given back before the decode's arena is taken,
 * so the decode's activations never sit on top of the UNet's.
 *
 * Truth: the backend's own allocation calls. The test wraps the CPU
 * backend's alloc / free after the models are loaded and records, for every
 * block the run allocates, its size and whether it is still live; the three
 * arenas are recognised by the sizes the models' public *_scratch_bytes
 * give. On the fixture's tiny-sd model with its ControlNet and CFG, which
 * holds every buffer of the loop. The image must also equal the one of a
 * run on the plain backend, bit for bit (the wrapper changes nothing). */
#include <stdio.h>
#include <string.h>

#include "engine/pipeline/pipeline.h"
#include "engine/pipeline/sd_base.h"
#include "tests/lib/harness.h"
#include "tests/lib/lib_pipe.h"

enum { H = 16, W = 16, IMG = H * W * 3, MAX_BLOCKS = 4096 };

/* The run's live blocks, as the wrapper saw them. */
static struct {
    void *ptr[MAX_BLOCKS];
    size_t bytes[MAX_BLOCKS];
    int n;
    void *(*alloc)(cnet_backend *, size_t);
    void (*free)(cnet_backend *, void *);
    size_t watch[3];   /* text, denoising, decode arena sizes */
    int seen[3];       /* how many times each was allocated */
    int live_at[3][3]; /* at arena i's allocation: was arena j live? */
    size_t control_bytes;
    int control_live_at_decode;
    int overflow;
} rec;

static int live(size_t bytes) {
    for (int k = 0; k < rec.n; k++)
        if (rec.bytes[k] == bytes) return 1;
    return 0;
}

static void *counting_alloc(cnet_backend *be, size_t bytes) {
    for (int i = 0; i < 3; i++)
        if (bytes == rec.watch[i]) {
            rec.seen[i]++;
            for (int j = 0; j < 3; j++) rec.live_at[i][j] = live(rec.watch[j]);
            if (i == 2) rec.control_live_at_decode = live(rec.control_bytes);
        }
    void *p = rec.alloc(be, bytes);
    if (p && rec.n < MAX_BLOCKS) {
        rec.ptr[rec.n] = p, rec.bytes[rec.n] = bytes;
        rec.n++;
    } else if (p) {
        rec.overflow = 1;
    }
    return p;
}

static void counting_free(cnet_backend *be, void *p) {
    for (int k = 0; k < rec.n; k++)
        if (rec.ptr[k] == p) {
            rec.n--;
            rec.ptr[k] = rec.ptr[rec.n], rec.bytes[k] = rec.bytes[rec.n];
            break;
        }
    rec.free(be, p);
}

static void test_decode_arena_alone(void) {
    cnet_backend be;
    cnet_error err = {0};
    CHECK(cnet_backend_cpu_init(&be, &err) == 0, "%s", err.msg);
    test_pipe tp;
    CHECK(test_pipe_open(&tp, harness_fixtures(), &be, &err) == 0, "%s", err.msg);
    cnet_sched_config sc;
    CHECK(sd_base_scheduler(&tp.base, -1, &sc, &err) == 0, "%s", err.msg);
    static float control[IMG], plain[IMG], watched[IMG];
    for (int i = 0; i < IMG; i++) control[i] = (float)((i * 37) % 256) / 255.0f;
    pipe_models models = sd_base_models(&tp.base);
    pipe_request r = {.prompt = "a red circle with a blue background",
                      .steps = 2,
                      .guidance = 7.5f,
                      .seed = 42,
                      .width = W,
                      .height = H,
                      .num_images = 1,
                      .n_controlnets = 1};
    r.controlnets[0] = (pipe_controlnet){
        .model = &tp.cn, .image = control, .scale = 1.0f, .start = 0.0f, .end = 1.0f};
    CHECK(pipeline_generate(&models, &sc, &r, plain, NULL, &err) == 0, "%s", err.msg);

    /* CFG: 2 rows for the UNet and the ControlNet, 1 image */
    const int f = vae_factor(models.vae), h = H / f, w = W / f;
    const int Nt = tokenizer_max_length(models.tok);
    size_t need = unet_scratch_bytes(models.unet, 2, h, w, Nt);
    const size_t c = controlnet_scratch_bytes(&tp.cn, 2, h, w, Nt);
    memset(&rec, 0, sizeof rec);
    rec.watch[0] = clip_text_scratch_bytes(models.text_encoder, 1, Nt);
    rec.watch[1] = c > need ? c : need;
    rec.watch[2] = vae_scratch_bytes(models.vae, 1, H, W);
    rec.control_bytes = (size_t)2 * IMG * sizeof(float);
    CHECK(rec.watch[0] != rec.watch[1] && rec.watch[1] != rec.watch[2] &&
              rec.watch[0] != rec.watch[2],
          "the three arenas have equal sizes here; the test cannot tell them apart");
    rec.alloc = be.alloc, rec.free = be.free;
    be.alloc = counting_alloc, be.free = counting_free;
    int rc = pipeline_generate(&models, &sc, &r, watched, NULL, &err);
    be.alloc = rec.alloc, be.free = rec.free;
    CHECK(rc == 0, "%s", err.msg);
    CHECK(!rec.overflow, "more than %d live blocks", MAX_BLOCKS);
    const char *name[3] = {"text", "denoising", "decode"};
    for (int i = 0; i < 3; i++)
        EXPECT(rec.seen[i] == 1, "the %s arena (%zu bytes) was allocated %d times, not once",
               name[i], rec.watch[i], rec.seen[i]);
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            EXPECT(i == j || !rec.live_at[i][j],
                   "the %s arena was still live when the %s arena was allocated", name[j], name[i]);
    EXPECT(!rec.control_live_at_decode, "the control images were still live at the decode");
    EXPECT(rec.n == 0, "%d blocks of the run never given back", rec.n);
    EXPECT(memcmp(plain, watched, sizeof plain) == 0, "the image differs from the plain run's");
    cnet_sched_config_free(&sc);
    test_pipe_close(&tp);
    cnet_backend_free(&be);
}

int main(int argc, char **argv) {
    harness_init(argc, argv);
    RUN(test_decode_arena_alone);
    return harness_done();
}
