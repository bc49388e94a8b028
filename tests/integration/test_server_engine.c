/* The engine pool behind a real `cnet serve --device cpu` on 127.0.0.1, with
 * a tiny model from `cnet init-model --preset tiny` and a `cnet dataset
 * make-fill` dataset at 16x16:
 *   - POST /v1/generate answers image/png (with the parameters chunk), JSON
 *     with base64 images, multipart, and async jobs — all with the pixels a
 *     direct pipeline_generate call on the same models makes (the truth is
 *     the engine library, called here without the server);
 *   - img2img (init_image, at another size than the control image) and
 *     inpainting (mask_image) the same way — JSON, multipart file parts and
 *     async — their pixels those of the direct pipeline_generate with the
 *     init image and mask through engine/image/inpaint_image.h and the
 *     pipelines' default conditioning scales (0.8, 0.5) given explicitly;
 *     a mask without an init image, strength 0 and an undecodable mask are
 *     400s naming the field;
 *   - the same for an SDXL base (tests/fixtures/tiny-sdxl) with prompt_2 and
 *     the micro-conditioning sizes, its pixels those of the direct SDXL
 *     pipeline; SDXL fields on an SD base are refused naming them;
 *   - validation errors name the field; a body over 20 MiB is a 413;
 *   - two training jobs and generate requests on one base model load it
 *     exactly once (cnet_base_model_loads_total), and a generate sent while
 *     a job trains is answered before the job ends (interleaving);
 *   - kill -9 during a training job → restart → the job finishes, no job is
 *     lost, and its final weights are byte-identical (sha256) to an
 *     uninterrupted run's — CRASH_TRIALS times, killed at different steps;
 *   - SIGTERM during a training job → a checkpoint at the next step, the job
 *     back in the queue without using an attempt, exit 0 within 10 s. */
#include <glob.h>
#include <jansson.h>
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "api/api.h"
#include "engine/image/image.h"
#include "engine/image/inpaint_image.h"
#include "engine/image/preprocess.h"
#include "engine/pipeline/sd_base.h"
#include "kernels/cpu/gemm_bf16.h"
#include "tests/lib/harness.h"
#include "tests/lib/lib_fs.h"
#include "tests/lib/lib_server.h"

#define T SERVER_TEST_TOKEN
#define CRASH_TRIALS 3
#define SIZE 16 /* px: the tiny preset's sample size */
#define TRAIN_STEPS 6

static char dir[512], models[600], fill[600], bin[600];
static uint8_t control_png_px[SIZE * SIZE * 3];
static char *control_b64;
static unsigned char *control_png;
static size_t control_png_len;
static char ref_sha[65];    /* final weights of an uninterrupted run */
static image_rgb8 truth;    /* the direct pipeline's image for gen_body */
static image_rgb8 truth_xl; /* the same for the SDXL request (xl_extra) */
/* img2img / inpainting: the init images (img2img's I2I_W x SIZE, so the
 * output size comes from it) and the mask, PNG and base64, and the direct
 * pipeline's images for them */
#define I2I_W 24
#define I2I_STRENGTH 0.75
static unsigned char *init_png[2], *mask_png;
static size_t init_png_len[2], mask_png_len;
static char *init_b64[2], *mask_b64;
static image_rgb8 init_img[2], mask_img, truth_i2i, truth_inp;

/* The SDXL request's own members, and the same as the direct pipeline's
 * request: the folder's own scheduler (Euler), negative prompt None. */
static const char *const xl_extra =
    ", \"prompt_2\": \"red ring\", \"original_size\": [32, 24], \"crops_coords_top_left\": [2, 4], "
    "\"negative_original_size\": [8, 12], \"negative_target_size\": [12, 20]";
static const pipe_micro xl_micro = {.original_size = {32, 24},
                                    .crops_coords_top_left = {2, 4},
                                    .negative_original_size = {8, 12},
                                    .negative_target_size = {12, 20}};

static const char *const train_spec =
    "{\"pretrained_model_name_or_path\": \"tiny\", \"dataset\": \"%s\", \"resolution\": 16, "
    "\"train_batch_size\": 2, \"max_train_steps\": %d, \"checkpointing_steps\": %d, "
    "\"learning_rate\": 0.001, \"lr_warmup_steps\": 0, \"seed\": 11%s}";
/* Spec variants that do not change the weights: validation images at the
 * last step, 1 with a conditioning image named, 2 with the dataset's first
 * one; 3 as 2 at mixed_precision bf16, which a CPU engine computes in
 * float32 unless the CPU has AVX512-BF16 (then its weights differ). */
static const char *const spec_extra[] = {
    "",
    ", \"validation_prompt\": [\"red circle\"], \"validation_image\": "
    "[\"conditioning_images/00000.png\"], \"validation_steps\": 6, \"num_validation_images\": 1",
    ", \"validation_prompt\": [\"red circle\"], \"validation_steps\": 6, "
    "\"num_validation_images\": 1",
    ", \"validation_prompt\": [\"red circle\"], \"validation_steps\": 6, "
    "\"num_validation_images\": 1, \"mixed_precision\": \"bf16\""};

static int start(test_server *s, const char *data, const char *device) {
    const char *const args[] = {"--models", models, "--data-root", dir, "--device", device, NULL};
    return server_start(s, data, args);
}

/* A generate request body (JSON) with the test's control image: on the SD
 * base with DDIM, or (xl) on the SDXL base with its own scheduler. */
static char *gen_body_of(int xl, const char *extra) {
    char *b = malloc(strlen(control_b64) + 1024);
    sprintf(b,
            "{\"model\": \"%s\", \"prompt\": \"a red circle\", \"steps\": 3, \"seed\": 7, "
            "%s\"image\": \"%s\"%s}",
            xl ? "tiny-sdxl" : "tiny", xl ? "" : "\"scheduler\": \"ddim\", ", control_b64,
            extra ? extra : "");
    return b;
}

static char *gen_body(const char *extra) { return gen_body_of(0, extra); }

static long post_json(test_server *s, const char *path, const char *body, const char *accept,
                      http_resp *r) {
    char acc[64];
    snprintf(acc, sizeof acc, "Accept: %s", accept ? accept : "image/png");
    const char *const h[] = {"Content-Type: application/json", acc, NULL};
    http_do(s, "POST", path, T, h, body, strlen(body), 0, r);
    return r->status;
}

static json_t *get_json(test_server *s, const char *path) {
    http_resp r;
    http_do(s, "GET", path, T, NULL, NULL, 0, 0, &r);
    json_t *v = r.status == 200 ? json_loads(r.body, 0, NULL) : NULL;
    http_resp_free(&r);
    return v;
}

/* The job's state ("" when unreadable) and, if asked, its progress step. */
static void read_state(test_server *s, const char *id, char state[16], int *step) {
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    json_t *j = get_json(s, path);
    snprintf(state, 16, "%s", j ? json_string_value(json_object_get(j, "state")) : "");
    if (step)
        *step = (int)json_integer_value(json_object_get(json_object_get(j, "progress"), "step"));
    json_decref(j);
}

static int wait_state(test_server *s, const char *id, const char *want, double timeout_s) {
    char st[16];
    for (double t0 = test_now_s(); test_now_s() - t0 < timeout_s; usleep(20000)) {
        read_state(s, id, st, NULL);
        if (!strcmp(st, want)) return 0;
        if (!strcmp(st, "failed") || !strcmp(st, "cancelled")) return -1;
    }
    return -1;
}

static int submit_train(test_server *s, int steps, int ckpt, int variant, char id[64]) {
    char body[2048];
    snprintf(body, sizeof body, train_spec, fill, steps, ckpt, spec_extra[variant]);
    http_resp r;
    long st = post_json(s, "/v1/jobs", body, "application/json", &r);
    json_t *j = json_loads(r.body, 0, NULL);
    snprintf(id, 64, "%s", j ? json_string_value(json_object_get(j, "id")) : "");
    json_decref(j);
    http_resp_free(&r);
    return st == 202 && id[0] ? 0 : -1;
}

static long long metric(test_server *s, const char *name) {
    http_resp r;
    http_do(s, "GET", "/metrics", NULL, NULL, NULL, 0, 0, &r);
    char line[128];
    snprintf(line, sizeof line, "\n%s ", name); /* the sample line, not # HELP */
    const char *p = strstr(r.body, line);
    long long v = p ? atoll(p + strlen(line)) : -1;
    http_resp_free(&r);
    return v;
}

static int weights_sha(const char *data, const char *id, char hex[65]) {
    char path[900];
    snprintf(path, sizeof path, "%s/jobs/%s/diffusion_pytorch_model.safetensors", data, id);
    return file_sha256_hex(path, hex);
}

static int same_as_truth(const void *png, size_t len, char *why, size_t cap) {
    return png_same_pixels(&truth, png, len, why, cap);
}

/* The truth: pipeline_generate on the same folder, without the server:
 * models/tiny with DDIM into truth, or (xl) models/tiny-sdxl with its own
 * scheduler and the SDXL request's fields into truth_xl. */
static int direct_pipeline(int xl, cnet_error *err) {
    image_rgb8 *want = xl ? &truth_xl : &truth;
    const char *name = xl ? "tiny-sdxl" : "tiny";
    cnet_backend be;
    sd_base base;
    controlnet_model cn;
    char path[700];
    int rc = cnet_backend_cpu_init(&be, err);
    if (rc) return rc;
    snprintf(path, sizeof path, "%s/%s", models, name);
    if ((rc = sd_base_open(&base, &be, path, err))) return rc;
    snprintf(path, sizeof path, "%s/%s/controlnet", models, name);
    if (!(rc = controlnet_open(&cn, &be, path, err))) {
        cnet_sched_config sc;
        image_rgb8 in = {SIZE, SIZE, control_png_px};
        float control[SIZE * SIZE * 3], out[SIZE * SIZE * 3];
        rc = preprocess_control(control, &in, SIZE, SIZE, err);
        if (!rc) rc = sd_base_scheduler(&base, xl ? -1 : CNET_SCHED_DDIM, &sc, err);
        if (!rc) {
            pipe_request r = {.prompt = "a red circle",
                              .negative_prompt = xl ? NULL : "",
                              .prompt_2 = xl ? "red ring" : NULL,
                              .steps = 3,
                              .guidance = 7.5f,
                              .seed = 7,
                              .width = SIZE,
                              .height = SIZE,
                              .num_images = 1,
                              .n_controlnets = 1};
            if (xl) r.micro = xl_micro;
            r.controlnets[0] = (pipe_controlnet){
                .model = &cn, .image = control, .scale = 1.0f, .start = 0.0f, .end = 1.0f};
            pipe_models m = sd_base_models(&base);
            rc = pipeline_generate(&m, &sc, &r, out, NULL, err);
            cnet_sched_config_free(&sc);
        }
        if (!rc) rc = image_alloc(want, SIZE, SIZE, err);
        for (int i = 0; !rc && i < SIZE * SIZE * 3; i++) {
            float v = nearbyintf(out[i] * 255.0f);
            want->data[i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
        controlnet_free(&cn);
    }
    sd_base_free(&base);
    cnet_backend_free(&be);
    return rc;
}

/* The truth of img2img (inpaint 0) or inpainting: pipeline_generate with
 * the init image (and mask) processed by engine/image/inpaint_image.h, DDIM,
 * the request's seed and the pipeline's default conditioning scale. */
static int direct_init(int inpaint, cnet_error *err) {
    const image_rgb8 *init = &init_img[inpaint];
    const int W = init->width, H = init->height;
    image_rgb8 *want = inpaint ? &truth_inp : &truth_i2i;
    cnet_backend be;
    sd_base base;
    controlnet_model cn;
    char path[700];
    int rc = cnet_backend_cpu_init(&be, err);
    if (rc) return rc;
    snprintf(path, sizeof path, "%s/tiny", models);
    if ((rc = sd_base_open(&base, &be, path, err))) return rc;
    snprintf(path, sizeof path, "%s/tiny/controlnet", models);
    if (!(rc = controlnet_open(&cn, &be, path, err))) {
        cnet_sched_config sc;
        image_rgb8 in = {SIZE, SIZE, control_png_px};
        float *control = malloc((size_t)W * H * 3 * sizeof(float)),
              *x = malloc((size_t)W * H * 3 * sizeof(float)),
              *m = malloc((size_t)W * H * sizeof(float)),
              *out = malloc((size_t)W * H * 3 * sizeof(float));
        rc = preprocess_control(control, &in, W, H, err);
        if (!rc) rc = inpaint_init_image(x, init, W, H, err);
        if (!rc && inpaint) rc = inpaint_mask(m, NULL, &mask_img, W, H, err);
        if (!rc) rc = sd_base_scheduler(&base, CNET_SCHED_DDIM, &sc, err);
        if (!rc) {
            pipe_request r = {.prompt = "a red circle",
                              .negative_prompt = "",
                              .steps = 3,
                              .guidance = 7.5f,
                              .seed = 7,
                              .width = W,
                              .height = H,
                              .num_images = 1,
                              .n_controlnets = 1,
                              .init = {.image = x,
                                       .n_images = 1,
                                       .mask = inpaint ? m : NULL,
                                       .strength = I2I_STRENGTH}};
            r.controlnets[0] = (pipe_controlnet){.model = &cn,
                                                 .image = control,
                                                 .scale = inpaint ? 0.5f : 0.8f,
                                                 .start = 0.0f,
                                                 .end = 1.0f};
            pipe_models pm = sd_base_models(&base);
            rc = pipeline_generate(&pm, &sc, &r, out, NULL, err);
            cnet_sched_config_free(&sc);
        }
        if (!rc) rc = image_alloc(want, W, H, err);
        for (int i = 0; !rc && i < W * H * 3; i++) {
            float v = nearbyintf(out[i] * 255.0f);
            want->data[i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
        free(control), free(x), free(m), free(out);
        controlnet_free(&cn);
    }
    sd_base_free(&base);
    cnet_backend_free(&be);
    return rc;
}

/* The init images (a colour gradient) and the mask (a white square) as
 * PNG and base64. */
static int make_init_inputs(cnet_error *err) {
    int rc = 0;
    for (int k = 0; k < 2 && !rc; k++) {
        image_rgb8 *im = &init_img[k];
        if ((rc = image_alloc(im, k ? SIZE : I2I_W, SIZE, err))) break;
        for (int y = 0; y < im->height; y++)
            for (int x = 0; x < im->width; x++) {
                uint8_t *p = im->data + 3 * (y * im->width + x);
                p[0] = (uint8_t)(10 * x), p[1] = (uint8_t)(15 * y), p[2] = (uint8_t)(200 - 5 * x);
            }
        if (!(rc = image_encode_png(im, NULL, 0, &init_png[k], &init_png_len[k], err)))
            init_b64[k] = api_base64_encode(init_png[k], init_png_len[k]);
    }
    if (!rc) rc = image_alloc(&mask_img, SIZE, SIZE, err);
    for (int p = 0; !rc && p < SIZE * SIZE; p++) {
        const int x = p % SIZE, y = p / SIZE;
        memset(mask_img.data + 3 * p, x >= 4 && x < 11 && y >= 5 && y < 12 ? 255 : 0, 3);
    }
    if (!rc && !(rc = image_encode_png(&mask_img, NULL, 0, &mask_png, &mask_png_len, err)))
        mask_b64 = api_base64_encode(mask_png, mask_png_len);
    return rc;
}

static test_server srv; /* the shared server of the first tests */
static char data1[600];

static void test_generate_sync_png_json_multipart_async(void) {
    char why[200], *body = gen_body(NULL);
    http_resp r;
    CHECK(post_json(&srv, "/v1/generate", body, NULL, &r) == 200, "png: %ld %s", r.status, r.body);
    char ct[64] = "", seed[32] = "";
    http_header(&r, "Content-Type", ct, sizeof ct);
    http_header(&r, "X-Seed", seed, sizeof seed);
    EXPECT(!strcmp(ct, "image/png") && !strcmp(seed, "7"), "content type %s, seed %s", ct, seed);
    EXPECT(memmem(r.body, r.len, "tEXtparameters", 14) && memmem(r.body, r.len, "Seed: 7", 7),
           "no parameters chunk");
    EXPECT(same_as_truth(r.body, r.len, why, sizeof why), "png vs direct pipeline: %s", why);
    http_resp_free(&r);

    CHECK(post_json(&srv, "/v1/generate", body, "application/json", &r) == 200, "json: %ld",
          r.status);
    json_t *j = json_loads(r.body, 0, NULL);
    http_resp_free(&r);
    const char *b64 = json_string_value(json_array_get(json_object_get(j, "images"), 0));
    unsigned char *png = NULL;
    size_t len = 0;
    api_error e;
    CHECK(b64 && !api_base64_decode(b64, strlen(b64), "images[0]", &png, &len, &e), "json body");
    EXPECT(json_integer_value(json_object_get(j, "seed")) == 7, "seed");
    EXPECT(same_as_truth(png, len, why, sizeof why), "json vs direct pipeline: %s", why);
    free(png);
    json_decref(j);

    /* multipart: the image as a file part, options as text parts */
    const char *B = "cnetBoundary7MA4YWxk";
    size_t cap = control_png_len + 2048, n = 0;
    char *mp = malloc(cap);
    const char *fields[][2] = {{"model", "tiny"},
                               {"prompt", "a red circle"},
                               {"steps", "3"},
                               {"seed", "7"},
                               {"scheduler", "ddim"}};
    for (int i = 0; i < 5; i++)
        n += (size_t)sprintf(mp + n,
                             "--%s\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n%s\r\n", B,
                             fields[i][0], fields[i][1]);
    n += (size_t)sprintf(mp + n,
                         "--%s\r\nContent-Disposition: form-data; name=\"image\"; "
                         "filename=\"c.png\"\r\nContent-Type: image/png\r\n\r\n",
                         B);
    memcpy(mp + n, control_png, control_png_len), n += control_png_len;
    n += (size_t)sprintf(mp + n, "\r\n--%s--\r\n", B);
    char ctype[128];
    snprintf(ctype, sizeof ctype, "Content-Type: multipart/form-data; boundary=%s", B);
    const char *const mh[] = {ctype, NULL};
    http_do(&srv, "POST", "/v1/generate", T, mh, mp, n, 0, &r);
    free(mp);
    EXPECT(r.status == 200 && same_as_truth(r.body, r.len, why, sizeof why), "multipart: %ld %s",
           r.status, r.status == 200 ? why : r.body);
    http_resp_free(&r);

    char *abody = gen_body(", \"async\": true");
    CHECK(post_json(&srv, "/v1/generate", abody, "application/json", &r) == 202, "async: %ld %s",
          r.status, r.body);
    free(abody);
    j = json_loads(r.body, 0, NULL);
    http_resp_free(&r);
    char id[64], path[200];
    snprintf(id, sizeof id, "%s", json_string_value(json_object_get(j, "id")));
    json_decref(j);
    CHECK(wait_state(&srv, id, "succeeded", 30) == 0, "async job %s did not succeed", id);
    snprintf(path, sizeof path, "/v1/jobs/%s/artifacts/image_0.png", id);
    http_do(&srv, "GET", path, T, NULL, NULL, 0, 0, &r);
    EXPECT(r.status == 200 && same_as_truth(r.body, r.len, why, sizeof why), "async: %ld %s",
           r.status, why);
    http_resp_free(&r);
    free(body);
}

static void expect_400(const char *extra, const char *field) {
    char *body = gen_body(extra);
    http_resp r;
    long st = post_json(&srv, "/v1/generate", body, NULL, &r);
    json_t *j = json_loads(r.body, 0, NULL);
    const char *f = json_string_value(json_object_get(json_object_get(j, "error"), "field"));
    EXPECT(st == 400 && f && !strcmp(f, field), "%s: want 400 naming %s, got %ld %s", extra, field,
           st, r.body);
    json_decref(j);
    http_resp_free(&r);
    free(body);
}

/* img2img and inpainting through JSON, multipart and an async job: the
 * direct pipeline's pixels; the parameters say the strength. */
static void test_generate_img2img_inpaint(void) {
    char why[200], extra[8192];
    http_resp r;
    snprintf(extra, sizeof extra, ", \"init_image\": \"%s\", \"strength\": %g", init_b64[0],
             I2I_STRENGTH);
    char *body = gen_body(extra);
    CHECK(post_json(&srv, "/v1/generate", body, NULL, &r) == 200, "img2img: %ld %s", r.status,
          r.body);
    free(body);
    EXPECT(png_same_pixels(&truth_i2i, r.body, r.len, why, sizeof why), "img2img vs direct: %s",
           why);
    EXPECT(memmem(r.body, r.len, "Denoising strength: 0.75", 24) &&
               memmem(r.body, r.len, "Weight: 0.8", 11),
           "img2img parameters");
    http_resp_free(&r);

    snprintf(extra, sizeof extra,
             ", \"init_image\": \"%s\", \"mask_image\": \"%s\", \"strength\": %g", init_b64[1],
             mask_b64, I2I_STRENGTH);
    body = gen_body(extra);
    CHECK(post_json(&srv, "/v1/generate", body, NULL, &r) == 200, "inpaint: %ld %s", r.status,
          r.body);
    EXPECT(png_same_pixels(&truth_inp, r.body, r.len, why, sizeof why), "inpaint vs direct: %s",
           why);
    EXPECT(memmem(r.body, r.len, "Weight: 0.5", 11), "inpaint parameters: default scale 0.5");
    http_resp_free(&r);
    free(body);

    /* multipart: the three images as file parts */
    const char *B = "cnetBoundaryI2I";
    size_t cap = control_png_len + init_png_len[1] + mask_png_len + 4096, n = 0;
    char *mp = malloc(cap);
    const char *fields[][2] = {{"model", "tiny"}, {"prompt", "a red circle"}, {"steps", "3"},
                               {"seed", "7"},     {"scheduler", "ddim"},      {"strength", "0.75"}};
    for (int i = 0; i < 6; i++)
        n += (size_t)sprintf(mp + n,
                             "--%s\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n%s\r\n", B,
                             fields[i][0], fields[i][1]);
    const struct {
        const char *name;
        const unsigned char *png;
        size_t len;
    } files[] = {{"image", control_png, control_png_len},
                 {"init_image", init_png[1], init_png_len[1]},
                 {"mask_image", mask_png, mask_png_len}};
    for (int i = 0; i < 3; i++) {
        n += (size_t)sprintf(mp + n,
                             "--%s\r\nContent-Disposition: form-data; name=\"%s\"; "
                             "filename=\"f.png\"\r\nContent-Type: image/png\r\n\r\n",
                             B, files[i].name);
        memcpy(mp + n, files[i].png, files[i].len), n += files[i].len;
        n += (size_t)sprintf(mp + n, "\r\n");
    }
    n += (size_t)sprintf(mp + n, "--%s--\r\n", B);
    char ctype[128];
    snprintf(ctype, sizeof ctype, "Content-Type: multipart/form-data; boundary=%s", B);
    const char *const mh[] = {ctype, NULL};
    http_do(&srv, "POST", "/v1/generate", T, mh, mp, n, 0, &r);
    free(mp);
    EXPECT(r.status == 200 && png_same_pixels(&truth_inp, r.body, r.len, why, sizeof why),
           "inpaint multipart: %ld %s", r.status, r.status == 200 ? why : r.body);
    http_resp_free(&r);

    snprintf(extra, sizeof extra,
             ", \"init_image\": \"%s\", \"mask_image\": \"%s\", \"strength\": %g, "
             "\"async\": true",
             init_b64[1], mask_b64, I2I_STRENGTH);
    body = gen_body(extra);
    CHECK(post_json(&srv, "/v1/generate", body, "application/json", &r) == 202,
          "inpaint async: %ld %s", r.status, r.body);
    free(body);
    json_t *j = json_loads(r.body, 0, NULL);
    http_resp_free(&r);
    char id[64], path[200];
    snprintf(id, sizeof id, "%s", json_string_value(json_object_get(j, "id")));
    json_decref(j);
    CHECK(wait_state(&srv, id, "succeeded", 30) == 0, "inpaint job %s did not succeed", id);
    snprintf(path, sizeof path, "/v1/jobs/%s/artifacts/image_0.png", id);
    http_do(&srv, "GET", path, T, NULL, NULL, 0, 0, &r);
    EXPECT(r.status == 200 && png_same_pixels(&truth_inp, r.body, r.len, why, sizeof why),
           "inpaint async: %ld %s", r.status, why);
    http_resp_free(&r);
}

/* A mask without an init image, strength 0 and an undecodable mask. */
static void test_generate_img2img_validation(void) {
    char extra[8192];
    snprintf(extra, sizeof extra, ", \"mask_image\": \"%s\"", mask_b64);
    expect_400(extra, "mask_image");
    snprintf(extra, sizeof extra, ", \"init_image\": \"%s\", \"strength\": 0", init_b64[1]);
    expect_400(extra, "strength");
    snprintf(extra, sizeof extra, ", \"init_image\": \"%s\", \"mask_image\": \"aGVsbG8=\"",
             init_b64[1]);
    expect_400(extra, "mask_image");
}

/* The SDXL base: the answer is the direct SDXL pipeline's image and its
 * parameters carry the SDXL fields; the SD base refuses them by name. */
static void test_generate_sdxl(void) {
    char why[200], *body = gen_body_of(1, xl_extra);
    http_resp r;
    CHECK(post_json(&srv, "/v1/generate", body, NULL, &r) == 200, "sdxl: %ld %s", r.status, r.body);
    EXPECT(png_same_pixels(&truth_xl, r.body, r.len, why, sizeof why),
           "sdxl vs direct pipeline: %s", why);
    EXPECT(memmem(r.body, r.len, "Prompt 2: red ring", 18) &&
               memmem(r.body, r.len, "Original size: \"[32, 24]\"", 25),
           "no SDXL parameters in the PNG");
    EXPECT(!png_same_pixels(&truth, r.body, r.len, why, sizeof why), "the SD image came back");
    http_resp_free(&r);
    free(body);
    body = gen_body(", \"prompt_2\": \"red ring\"");
    post_json(&srv, "/v1/generate", body, NULL, &r);
    EXPECT(r.status == 400 && strstr(r.body, "prompt_2") && strstr(r.body, "not SDXL"),
           "prompt_2 on SD: %ld %s", r.status, r.body);
    http_resp_free(&r);
    free(body);
    /* the dashboard shows the SDXL fields by the base's pipeline class */
    json_t *root = get_json(&srv, "/v1/models"), *ms = json_object_get(root, "models");
    const char *xl_class = NULL, *sd_class = NULL;
    for (size_t i = 0; i < json_array_size(ms); i++) {
        const json_t *m = json_array_get(ms, i);
        const char *name = json_string_value(json_object_get(m, "name")),
                   *cls = json_string_value(json_object_get(m, "pipeline"));
        if (name && !strcmp(name, "tiny-sdxl")) xl_class = cls;
        if (name && !strcmp(name, "tiny")) sd_class = cls;
    }
    EXPECT(xl_class && !strcmp(xl_class, "StableDiffusionXLControlNetPipeline") && sd_class &&
               strncmp(sd_class, "StableDiffusionXL", 17) != 0,
           "/v1/models pipelines: %s, %s", xl_class ? xl_class : "-", sd_class ? sd_class : "-");
    json_decref(root);
    body = gen_body_of(1, ", \"original_size\": [32]");
    post_json(&srv, "/v1/generate", body, NULL, &r);
    EXPECT(r.status == 400 && strstr(r.body, "\"field\":\"original_size\""),
           "original_size [32]: %ld %s", r.status, r.body);
    http_resp_free(&r);
    free(body);
}

static void test_generate_validation(void) {
    expect_400(", \"width\": 12", "width");
    expect_400(", \"clip_skip\": -1", "clip_skip");
    expect_400(", \"guidance\": \"high\"", "guidance");
    expect_400(", \"bogus\": 1", "bogus");
    expect_400(", \"controlnet\": \"../etc\"", "controlnet");
    expect_400(", \"num_images\": 2", "num_images"); /* two images do not fit one PNG */
    expect_400(", \"control_guidance_start\": 0.9, \"control_guidance_end\": 0.5",
               "control_guidance_start");
    http_resp r;
    const char *bad = "{\"model\": \"tiny\", \"prompt\": \"x\", \"image\": \"%%%%\"}";
    post_json(&srv, "/v1/generate", bad, NULL, &r);
    EXPECT(r.status == 400 && strstr(r.body, "\"field\":\"image\""), "bad base64: %ld %s", r.status,
           r.body);
    http_resp_free(&r);
    const char *notimg = "{\"model\": \"tiny\", \"prompt\": \"x\", \"image\": \"aGVsbG8=\"}";
    post_json(&srv, "/v1/generate", notimg, NULL, &r);
    EXPECT(r.status == 400 && strstr(r.body, "\"field\":\"image\""), "not an image: %ld %s",
           r.status, r.body);
    http_resp_free(&r);
    /* 20 MiB is the limit: one byte over is a 413, never a truncation. */
    size_t big = API_GENERATE_BODY_MAX + 1;
    char *huge = malloc(big);
    memset(huge, ' ', big);
    memcpy(huge, "{}", 2);
    const char *const h[] = {"Content-Type: application/json", NULL};
    http_do(&srv, "POST", "/v1/generate", T, h, huge, big, 0, &r);
    EXPECT(r.status == 413, "over the limit: %ld", r.status);
    http_resp_free(&r);
    http_do(&srv, "POST", "/v1/generate", T, h, huge, big - 1, 0, &r);
    EXPECT(r.status == 400, "at the limit: %ld (want 400: an empty object)", r.status);
    http_resp_free(&r);
    free(huge);
}

typedef struct gen_thread {
    double done_at;
    long status;
} gen_thread;

static void *gen_main(void *arg) {
    gen_thread *g = arg;
    char *body = gen_body(NULL);
    http_resp r;
    g->status = post_json(&srv, "/v1/generate", body, NULL, &r);
    g->done_at = test_now_s();
    http_resp_free(&r);
    free(body);
    return NULL;
}

/* Two training jobs and generates on one base: one load. The generate sent
 * while job A trains is answered before job A ends. */
static void test_two_trains_one_base_load(void) {
    char a[64], b[64], st[16];
    CHECK(submit_train(&srv, TRAIN_STEPS, 2, 1, a) == 0 &&
              submit_train(&srv, TRAIN_STEPS, 2, 3, b) == 0,
          "submit");
    int step = 0;
    for (double t0 = test_now_s(); test_now_s() - t0 < 30 && step < 1; usleep(5000))
        read_state(&srv, a, st, &step);
    CHECK(!strcmp(st, "running"), "job A is %s", st);
    gen_thread g = {0};
    pthread_t th;
    pthread_create(&th, NULL, gen_main, &g);
    pthread_join(th, NULL);
    read_state(&srv, a, st, &step);
    EXPECT(g.status == 200, "generate during training: %ld", g.status);
    EXPECT(!strcmp(st, "running") && step < TRAIN_STEPS,
           "the generate waited for the job (%s, step %d)", st, step);
    CHECK(wait_state(&srv, a, "succeeded", 60) == 0 && wait_state(&srv, b, "succeeded", 60) == 0,
          "jobs did not succeed");
    long long loads = metric(&srv, "cnet_base_model_loads_total");
    printf("    base loads after 2 train jobs and 6 generates: %lld\n", loads);
    EXPECT(loads == 1, "cnet_base_model_loads_total = %lld, want 1", loads);
    char ha[65], hb[65];
    CHECK(weights_sha(data1, a, ha) == 0 && weights_sha(data1, b, hb) == 0, "weights missing");
    if (!cpu_bf16_supported())
        EXPECT(!strcmp(ha, hb), "two runs of one spec differ: %s vs %s", ha, hb);
    memcpy(ref_sha, ha, sizeof ref_sha);
    /* The trained ControlNet serves generates by its job id. */
    char extra[120];
    snprintf(extra, sizeof extra, ", \"controlnet\": \"%s\"", a);
    char *body = gen_body(extra);
    http_resp r;
    EXPECT(post_json(&srv, "/v1/generate", body, NULL, &r) == 200, "trained controlnet: %ld %s",
           r.status, r.body);
    http_resp_free(&r);
    free(body);
    EXPECT(metric(&srv, "cnet_controlnet_loads_total") == 2, "controlnet loads %lld",
           metric(&srv, "cnet_controlnet_loads_total"));
    char path[120];
    snprintf(path, sizeof path, "/v1/jobs/%s", a);
    json_t *j = get_json(&srv, path);
    char *text = json_dumps(j, 0);
    EXPECT(text && strstr(text, "images_0.png") && strstr(text, "README.md") &&
               strstr(text, "diffusion_pytorch_model.safetensors") && strstr(text, "step_6_0.png"),
           "artefacts: %s", text);
    free(text);
    json_decref(j);
    char file[800];
    snprintf(file, sizeof file, "%s/jobs/%s/images_0.png", data1, b);
    struct stat sb;
    EXPECT(stat(file, &sb) == 0, "job B (validation images from the dataset) has no %s", file);
    /* B asked for bf16: the same weights as A (checked above, float32
     * only), and its card records what the CPU engine computed in */
    snprintf(file, sizeof file, "%s/jobs/%s/README.md", data1, b);
    size_t n = 0;
    char *card = file_read(file, &n);
    EXPECT(card &&
               strstr(card, cpu_bf16_supported() ? "mixed precision bf16." : "mixed precision no."),
           "job B's model card: %.400s", card ? card : "(missing)");
    free(card);
    /* the trainer's TensorBoard events, in the job's dir (one run, one file) */
    char pattern[800];
    snprintf(pattern, sizeof pattern, "%s/jobs/%s/logs/train_controlnet/events.out.tfevents.*",
             data1, a);
    glob_t events;
    const int grc = glob(pattern, 0, NULL, &events);
    EXPECT(grc == 0 && events.gl_pathc == 1, "event files %s: %d", pattern,
           grc ? 0 : (int)events.gl_pathc);
    if (grc == 0) globfree(&events);
    snprintf(path, sizeof path, "/v1/jobs/%s/events", a);
    http_do(&srv, "GET", path, T, NULL, NULL, 0, 0, &r);
    EXPECT(strstr(r.body, "event: validation") && strstr(r.body, "event: checkpoint"),
           "events: %.300s", r.body);
    http_resp_free(&r);
}

/* An SDXL base (tiny-sdxl from the fixtures) trains as a job: the trainer
 * picks train_controlnet_sdxl.py from the model, the job succeeds with its
 * checkpoints, SDXL model card and the weights `cnet train` gives for the
 * same options on the same folder. Skipped without fixtures/tiny-sdxl. */
static void test_sdxl_train_job(void) {
    char path[900], cmd[4096], id[64], body[1024], want[65], got[65];
    struct stat sb;
    snprintf(path, sizeof path, "%s/tiny-sdxl/model_index.json", models);
    if (stat(path, &sb) != 0) return;
    static const char *const opts =
        "\"resolution\": 16, \"train_batch_size\": 2, \"max_train_steps\": 4, "
        "\"checkpointing_steps\": 2, \"learning_rate\": 0.001, \"lr_warmup_steps\": 0, "
        "\"seed\": 11, \"crops_coords_top_left_h\": 2, \"crops_coords_top_left_w\": 6";
    snprintf(body, sizeof body,
             "{\"pretrained_model_name_or_path\": \"tiny-sdxl\", \"dataset\": \"%s\", %s}", fill,
             opts);
    http_resp r;
    long st = post_json(&srv, "/v1/jobs", body, "application/json", &r);
    json_t *j = json_loads(r.body, 0, NULL);
    snprintf(id, sizeof id, "%s", j ? json_string_value(json_object_get(j, "id")) : "");
    json_decref(j);
    EXPECT(st == 202 && id[0], "submit: %ld %.300s", st, r.body);
    http_resp_free(&r);
    if (!id[0]) return;
    CHECK(wait_state(&srv, id, "succeeded", 120) == 0, "SDXL job %s did not succeed", id);
    snprintf(path, sizeof path, "%s/jobs/%s/checkpoint-4/trainer_state.json", data1, id);
    EXPECT(stat(path, &sb) == 0, "no %s", path);
    snprintf(path, sizeof path, "%s/jobs/%s/README.md", data1, id);
    char *card = file_read(path, NULL);
    EXPECT(card && strstr(card, "- stable-diffusion-xl\n"), "SDXL job's model card: %.300s",
           card ? card : "(missing)");
    free(card);
    snprintf(cmd, sizeof cmd,
             "%s train --pretrained_model_name_or_path %s/tiny-sdxl --train_data_dir %s "
             "--output_dir %s/sdxl-cli --resolution 16 --train_batch_size 2 --max_train_steps 4 "
             "--checkpointing_steps 2 --learning_rate 0.001 --lr_warmup_steps 0 --seed 11 "
             "--crops_coords_top_left_h 2 --crops_coords_top_left_w 6",
             bin, models, fill, dir);
    CHECK(run_quiet(cmd) == 0, "cnet train on tiny-sdxl");
    snprintf(path, sizeof path, "%s/sdxl-cli/diffusion_pytorch_model.safetensors", dir);
    CHECK(file_sha256_hex(path, want) == 0 && weights_sha(data1, id, got) == 0, "weights");
    EXPECT(!strcmp(want, got), "SDXL job's weights differ from cnet train's");
    printf("    SDXL job %s: 4 steps, weights %.12s (cnet train: %.12s)\n", id, got, want);
}

static void test_kill9_resume_identical(void) {
    CHECK(ref_sha[0], "no reference run");
    for (int trial = 0; trial < CRASH_TRIALS; trial++) {
        char data[700], id[64], st[16], sha[65];
        snprintf(data, sizeof data, "%s/crash%d", dir, trial);
        mkdir(data, 0700);
        test_server s;
        CHECK(start(&s, data, "cpu") == 0, "start");
        CHECK(submit_train(&s, TRAIN_STEPS, 2, 0, id) == 0, "submit");
        const int kill_at = 1 + 2 * trial; /* steps 1, 3, 5: around the checkpoints at 2 and 4 */
        int step = 0;
        for (double t0 = test_now_s(); test_now_s() - t0 < 30 && step < kill_at; usleep(2000))
            read_state(&s, id, st, &step);
        CHECK(server_stop(&s, SIGKILL, 5000) == 128 + SIGKILL, "kill -9");
        CHECK(start(&s, data, "cpu") == 0, "restart");
        int ok = wait_state(&s, id, "succeeded", 60) == 0;
        json_t *list = get_json(&s, "/v1/jobs");
        size_t n = json_array_size(json_object_get(list, "jobs"));
        json_decref(list);
        server_stop(&s, SIGTERM, 10000);
        printf("    trial %d: killed at step %d, %s, %zu job(s) in the store\n", trial, step,
               ok ? "finished" : "NOT finished", n);
        CHECK(ok && n == 1, "trial %d: finished %d, jobs %zu", trial, ok, n);
        CHECK(weights_sha(data, id, sha) == 0, "no final weights");
        CHECK(!strcmp(sha, ref_sha), "trial %d: weights %s differ from the uninterrupted %s", trial,
              sha, ref_sha);
    }
}

static void test_sigterm_checkpoints_and_requeues(void) {
    char data[700], id[64], st[16], path[900];
    snprintf(data, sizeof data, "%s/term", dir);
    mkdir(data, 0700);
    test_server s;
    CHECK(start(&s, data, "cpu") == 0, "start");
    CHECK(submit_train(&s, 400, 1000, 0, id) == 0, "submit");
    int step = 0;
    for (double t0 = test_now_s(); test_now_s() - t0 < 30 && step < 2; usleep(5000))
        read_state(&s, id, st, &step);
    double t0 = test_now_s();
    int rc = server_stop(&s, SIGTERM, 10000);
    double took = test_now_s() - t0;
    printf("    SIGTERM at step %d → exit %d in %.2f s\n", step, rc, took);
    CHECK(rc == 0 && took < 10, "exit %d after %.1f s", rc, took);
    CHECK(start(&s, data, "none") == 0, "restart without an engine");
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    json_t *j = get_json(&s, path);
    server_stop(&s, SIGTERM, 10000);
    char state[16];
    snprintf(state, sizeof state, "%s", j ? json_string_value(json_object_get(j, "state")) : "?");
    int ck = (int)json_integer_value(json_object_get(j, "checkpoint_step"));
    int attempt = (int)json_integer_value(json_object_get(j, "attempt"));
    json_decref(j);
    CHECK(!strcmp(state, "queued"), "state %s", state);
    EXPECT(ck >= step && attempt == 0, "checkpoint_step %d (stopped at >= %d), attempt %d", ck,
           step, attempt);
    snprintf(path, sizeof path, "%s/jobs/%s/checkpoint-%d/trainer_state.json", data, id, ck);
    struct stat sb;
    EXPECT(stat(path, &sb) == 0, "no %s", path);
}

int main(int argc, char **argv) {
    harness_init(argc, argv);
    /* One OpenMP thread per process: the servers and this process share two
     * cores, where spinning OpenMP teams slow every model call down 10x. */
    setenv("OMP_NUM_THREADS", "1", 0);
    /* and this process's truths too (libgomp read the variable before main):
     * a reduction split over another thread count can round one pixel the
     * other way */
    omp_set_num_threads(atoi(getenv("OMP_NUM_THREADS")));
    const char *build = getenv("BUILD");
    snprintf(bin, sizeof bin, "%s/cnet", build && *build ? build : "build");
    if (tmpdir_make(dir, sizeof dir, "cnet-engine-")) return printf("no temp dir\n"), 1;
    snprintf(models, sizeof models, "%s/models", dir);
    snprintf(fill, sizeof fill, "%s/fill", dir);
    snprintf(data1, sizeof data1, "%s/data", dir);
    mkdir(models, 0700);
    mkdir(data1, 0700);
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s init-model --out %s/tiny --preset tiny", bin, models);
    int rc = run_quiet(cmd);
    snprintf(cmd, sizeof cmd, "%s dataset make-fill --n 4 --size 16 --out %s", bin, fill);
    if (!rc) rc = run_quiet(cmd);
    /* the SDXL job's base, when the fixtures have one */
    snprintf(cmd, sizeof cmd, "test ! -d %s/tiny-sdxl || cp -r %s/tiny-sdxl %s/tiny-sdxl",
             harness_fixtures(), harness_fixtures(), models);
    if (!rc) rc = run_quiet(cmd);
    /* The control image: a white ring on black, like the fill dataset's. */
    for (int y = 0; y < SIZE; y++)
        for (int x = 0; x < SIZE; x++) {
            double d = hypot(x - 7.5, y - 7.5);
            memset(control_png_px + 3 * (y * SIZE + x), d > 4 && d < 6 ? 255 : 0, 3);
        }
    image_rgb8 img = {SIZE, SIZE, control_png_px};
    cnet_error err = {0};
    if (!rc) rc = image_encode_png(&img, NULL, 0, &control_png, &control_png_len, &err);
    if (!rc) control_b64 = api_base64_encode(control_png, control_png_len);
    if (!rc) rc = direct_pipeline(0, &err);
    if (!rc) rc = direct_pipeline(1, &err);
    if (!rc) rc = make_init_inputs(&err);
    if (!rc) rc = direct_init(0, &err);
    if (!rc) rc = direct_init(1, &err);
    if (rc || start(&srv, data1, "cpu")) {
        printf("setup failed (%s)\ntest_server_engine: 0 passed, 1 failed\n", err.msg);
        return 1;
    }
    RUN(test_generate_sync_png_json_multipart_async);
    RUN(test_generate_validation);
    RUN(test_generate_img2img_inpaint);
    RUN(test_generate_img2img_validation);
    RUN(test_two_trains_one_base_load); /* counts loads: before the SDXL bases are loaded */
    RUN(test_sdxl_train_job);
    RUN(test_generate_sdxl);
    server_stop(&srv, SIGTERM, 10000);
    RUN(test_kill9_resume_identical);
    RUN(test_sigterm_checkpoints_and_requeues);
    image_free(&truth);
    image_free(&truth_xl);
    image_free(&truth_i2i), image_free(&truth_inp), image_free(&mask_img);
    for (int k = 0; k < 2; k++) free(init_png[k]), free(init_b64[k]), image_free(&init_img[k]);
    free(mask_png), free(mask_b64);
    free(control_b64);
    free(control_png);
    tmpdir_remove(dir);
    return harness_done();
}
