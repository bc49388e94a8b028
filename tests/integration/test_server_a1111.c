/* Several ControlNets through POST /v1/generate and the A1111-compatible
 * routes, against a real `cnet serve --device cpu` with two tiny models whose
 * ControlNets have random (non-zero) zero convs, so every control image
 * moves the pixels:
 *   - POST /v1/generate with a "controlnets" list of two (scales, a window,
 *     canny on one) makes the pixels `cnet generate` makes with the same two
 *     (the CLI is the truth: its own parser and files), synchronously and as
 *     an async job;
 *   - a prompt list (and a negative list) through /v1/generate makes the
 *     batch generate_run makes with it, each image's text naming its prompt;
 *   - POST /sdapi/v1/txt2img with a body recorded from the extension's
 *     examples (tests/fixtures-a1111/, two enabled units and a disabled one)
 *     answers A1111's {images, parameters, info} with the pixels of the
 *     same request to /v1/generate, and of the CLI;
 *   - the lists (samplers, sd-models, options, progress, model_list,
 *     module_list with and without alias_names) in their A1111 shapes, the
 *     module list equal to engine/annotators' table;
 *   - /controlnet/detect with canny equals engine/image/canny.h's canny_rgb8
 *     on the same image;
 *   - Basic auth: the token as password or user accepted, a wrong password
 *     refused (403), none challenged (401, Basic);
 *   - unknown sampler, module and model names, and what cnet cannot do
 *     ("My prompt is more important", hires fix), refused by name (422,
 *     "detail");
 *   - img2img's recorded body: only its translation (the init image,
 *     strength and mask fields come with the img2img pipeline's branch). */
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/api.h"
#include "engine/annotators/annotator.h"
#include "engine/image/canny.h"
#include "engine/image/image.h"
#include "engine/pipeline/generate.h"
#include "engine/pipeline/sd_base.h"
#include "engine/sched/scheduler.h"
#include "server/a1111/a1111.h"
#include "tests/lib/harness.h"
#include "tests/lib/lib_fs.h"
#include "tests/lib/lib_server.h"

#define T SERVER_TEST_TOKEN
#define SIZE 16 /* px: the tiny preset's sample size */

static char dir[512], models[600], bin[600];
static char *b64_a, *b64_b; /* the control images, base64 PNG */
static image_rgb8 img_a, img_b;
static image_rgb8 cli_truth; /* `cnet generate` with the two ControlNets */
static test_server srv;

/* A control image as PNG file and base64. */
static int make_image(image_rgb8 *img, int kind, const char *path, char **b64) {
    cnet_error err = {0};
    if (image_alloc(img, SIZE, SIZE, &err)) return -1;
    for (int y = 0; y < SIZE; y++)
        for (int x = 0; x < SIZE; x++) {
            const double d = hypot(x - 7.5, y - 7.5);
            const int on = kind == 0 ? d > 4 && d < 6 : (x > 3 && x < 12 && y > 5 && y < 14);
            memset(img->data + 3 * (y * SIZE + x), on ? 255 : 0, 3);
            if (kind == 1) img->data[3 * (y * SIZE + x)] = (uint8_t)(16 * x);
        }
    uint8_t *png = NULL;
    size_t len = 0;
    if (image_encode_png(img, NULL, 0, &png, &len, &err)) return -1;
    FILE *f = fopen(path, "wb");
    int rc = !f || fwrite(png, 1, len, f) != len;
    if (f) fclose(f);
    *b64 = api_base64_encode(png, len);
    free(png);
    return rc || !*b64;
}

/* images[i] of a JSON answer (base64 PNG) equal to want. */
static int same_b64(const image_rgb8 *want, const json_t *answer, size_t i, char *why, size_t cap) {
    const char *b64 = json_string_value(json_array_get(json_object_get(answer, "images"), i));
    unsigned char *png = NULL;
    size_t len = 0;
    api_error e;
    if (!b64 || api_base64_decode(b64, strlen(b64), "images", &png, &len, &e)) {
        snprintf(why, cap, "no images[%zu]", i);
        return 0;
    }
    int same = png_same_pixels(want, png, len, why, cap);
    free(png);
    return same;
}

static json_t *send_json(const char *method, const char *path, const char *auth_header,
                         const json_t *body, long *status) {
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    const char *const h[] = {"Content-Type: application/json", "Accept: application/json",
                             auth_header, NULL};
    http_resp r;
    http_do(&srv, method, path, auth_header ? NULL : T, h, text, text ? strlen(text) : 0, 0, &r);
    free(text);
    *status = r.status;
    json_t *j = json_loads(r.body ? r.body : "", 0, NULL);
    if (!j && r.status != 200) printf("    %s %s: %ld %s\n", method, path, r.status, r.body);
    http_resp_free(&r);
    return j;
}

/* Replaces every "IMAGE_A" / "IMAGE_B" string in v by the control images. */
static void put_images(json_t *v) {
    const char *key;
    json_t *m;
    size_t i;
    if (json_is_object(v)) {
        json_object_foreach(v, key, m) {
            if (json_is_string(m) && !strcmp(json_string_value(m), "IMAGE_A"))
                json_object_set_new(v, key, json_string(b64_a));
            else if (json_is_string(m) && !strcmp(json_string_value(m), "IMAGE_B"))
                json_object_set_new(v, key, json_string(b64_b));
            else
                put_images(m);
        }
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, m) {
            if (json_is_string(m) && !strcmp(json_string_value(m), "IMAGE_A"))
                json_array_set_new(v, i, json_string(b64_a));
            else if (json_is_string(m) && !strcmp(json_string_value(m), "IMAGE_B"))
                json_array_set_new(v, i, json_string(b64_b));
            else
                put_images(m);
        }
    }
}

static json_t *fixture(const char *name) {
    char path[600];
    snprintf(path, sizeof path, "tests/fixtures-a1111/%s", name);
    json_t *j = json_load_file(path, 0, NULL);
    if (j) put_images(j);
    return j;
}

/* The two ControlNets of the tests as /v1/generate takes them. */
static json_t *two_controlnets(void) {
    return json_pack("{s:s, s:s, s:s, s:i, s:i, s:i, s:i, s:f, s:s, s:f, s:f, s:[{s:s, s:s, "
                     "s:f}, {s:s, s:s, s:f, s:f, s:s, s:i}]}",
                     "model", "tiny", "prompt", "a red circle", "negative_prompt", "", "steps", 3,
                     "seed", 7, "width", SIZE, "height", SIZE, "guidance", 7.0, "scheduler", "ddim",
                     "canny_low_threshold", 50.0, "canny_high_threshold", 150.0, "controlnets",
                     "controlnet", "tiny/controlnet", "image", b64_a, "scale", 0.7, "controlnet",
                     "tiny2/controlnet", "image", b64_b, "scale", 1.3, "control_guidance_start",
                     0.2, "preprocess", "canny", "processor_res", 512);
}

static void test_two_controlnets_equal_the_cli(void) {
    char why[200];
    long st;
    json_t *req = two_controlnets();
    json_t *j = send_json("POST", "/v1/generate", NULL, req, &st);
    CHECK(st == 200 && j, "generate: %ld", st);
    EXPECT(same_b64(&cli_truth, j, 0, why, sizeof why), "sync vs cnet generate: %s", why);
    json_t *spec_list = json_object_get(json_object_get(j, "spec"), "controlnets");
    EXPECT(json_array_size(spec_list) == 2, "spec holds %zu controlnets",
           json_array_size(spec_list));
    json_decref(j);
    /* the same as an async job: both control images stored, the same pixels */
    json_object_set_new(req, "async", json_true());
    j = send_json("POST", "/v1/generate", NULL, req, &st);
    CHECK(st == 202 && j, "async: %ld", st);
    char path[200], state[32] = "";
    snprintf(path, sizeof path, "/v1/jobs/%s", json_string_value(json_object_get(j, "id")));
    json_decref(j);
    for (int i = 0; i < 3000 && strcmp(state, "succeeded") && strcmp(state, "failed"); i++) {
        j = send_json("GET", path, NULL, NULL, &st);
        snprintf(state, sizeof state, "%s", json_string_value(json_object_get(j, "state")));
        json_decref(j);
        if (strcmp(state, "succeeded")) usleep(100 * 1000);
    }
    CHECK(!strcmp(state, "succeeded"), "async job: %s", state);
    /* an item without its image, and the flat fields beside the list: named */
    json_decref(req);
    req = two_controlnets();
    json_object_del(json_array_get(json_object_get(req, "controlnets"), 1), "image");
    j = send_json("POST", "/v1/generate", NULL, req, &st);
    EXPECT(st == 400 &&
               !strcmp(json_string_value(json_object_get(json_object_get(j, "error"), "field")),
                       "controlnets[1].image"),
           "an item without its image: %ld", st);
    json_decref(j);
    json_object_set_new(req, "scale", json_real(0.5));
    j = send_json("POST", "/v1/generate", NULL, req, &st);
    EXPECT(st == 400 &&
               !strcmp(json_string_value(json_object_get(json_object_get(j, "error"), "field")),
                       "scale"),
           "scale beside controlnets: %ld", st);
    json_decref(j);
    json_decref(req);
    strcat(path, "/artifacts/image_0.png");
    http_resp r;
    http_do(&srv, "GET", path, T, NULL, NULL, 0, 0, &r);
    EXPECT(r.status == 200 && png_same_pixels(&cli_truth, r.body, r.len, why, sizeof why),
           "async vs cnet generate: %ld %s", r.status, why);
    http_resp_free(&r);
}

/* A prompt list: the batch generate_run makes in this process (the engine
 * library without the server) with the same two prompts, num_images each,
 * and each image's parameters text naming its own prompt. */
static void test_prompt_list(void) {
    static const char *const prompts[] = {"a red circle", "a blue square"};
    static const char *const negatives[] = {"", "green"};
    json_t *req = json_pack("{s:s, s:[s, s], s:[s, s], s:i, s:i, s:i, s:s, s:s, s:i}", "model",
                            "tiny", "prompt", prompts[0], prompts[1], "negative_prompt",
                            negatives[0], negatives[1], "steps", 3, "seed", 11, "num_images", 2,
                            "scheduler", "ddim", "image", b64_a, "width", SIZE);
    long st;
    json_t *j = send_json("POST", "/v1/generate", NULL, req, &st);
    json_decref(req);
    CHECK(st == 200 && json_array_size(json_object_get(j, "images")) == 4, "prompt list: %ld", st);
    cnet_backend be;
    sd_base base;
    controlnet_model cn;
    cnet_error err = {0};
    char path[700];
    generate_result res = {0};
    CHECK(cnet_backend_cpu_init(&be, &err) == 0, "%s", err.msg);
    snprintf(path, sizeof path, "%s/tiny", models);
    int rc = sd_base_open(&base, &be, path, &err);
    snprintf(path, sizeof path, "%s/tiny/controlnet", models);
    if (!rc && !(rc = controlnet_open(&cn, &be, path, &err))) {
        generate_request r = {.model_dir = path,
                              .base = &base,
                              .scheduler = CNET_SCHED_DDIM,
                              .prompt = prompts[0],
                              .prompts = prompts,
                              .negative_prompts = negatives,
                              .n_prompts = 2,
                              .steps = 3,
                              .num_images = 2,
                              .width = SIZE,
                              .guidance = 7.5f,
                              .seed = 11,
                              .n_controls = 1};
        r.controls[0] = (generate_control){.dir = path,
                                           .image_name = "a",
                                           .image = &img_a,
                                           .model = &cn,
                                           .scale = 1.0f,
                                           .end = 1.0f};
        rc = generate_run(&r, NULL, &res, &err);
        controlnet_free(&cn);
    }
    sd_base_free(&base);
    cnet_backend_free(&be);
    CHECK(rc == 0 && res.n == 4, "generate_run: %s", err.msg);
    char why[200];
    for (int i = 0; i < 4; i++) {
        EXPECT(same_b64(&res.images[i], j, (size_t)i, why, sizeof why), "image %d: %s", i, why);
        const char *b64 = json_string_value(json_array_get(json_object_get(j, "images"), i));
        unsigned char *png = NULL;
        size_t len = 0;
        api_error e;
        CHECK(!api_base64_decode(b64, strlen(b64), "images", &png, &len, &e), "base64");
        EXPECT(memmem(png, len, prompts[i / 2], strlen(prompts[i / 2])), "image %d's text", i);
        free(png);
    }
    generate_result_free(&res);
    json_decref(j);
}

static void test_txt2img_two_units(void) {
    char why[200];
    long st;
    json_t *body = fixture("txt2img_two_units.json");
    CHECK(body, "tests/fixtures-a1111/txt2img_two_units.json");
    json_t *j = send_json("POST", "/sdapi/v1/txt2img", NULL, body, &st);
    CHECK(st == 200 && j, "txt2img: %ld", st);
    EXPECT(json_array_size(json_object_get(j, "images")) == 1, "images");
    EXPECT(same_b64(&cli_truth, j, 0, why, sizeof why), "txt2img vs cnet generate: %s", why);
    EXPECT(json_equal(json_object_get(j, "parameters"), body), "parameters: the request");
    json_t *info = json_loads(json_string_value(json_object_get(j, "info")), 0, NULL);
    EXPECT(info && json_integer_value(json_object_get(info, "seed")) == 7 &&
               json_array_size(json_object_get(info, "all_seeds")) == 1 &&
               strstr(json_string_value(json_array_get(json_object_get(info, "infotexts"), 0)),
                      "Seed: 7"),
           "info: %s", json_string_value(json_object_get(j, "info")));
    json_decref(info);
    json_decref(j);
    /* the translated request through /v1/generate: the same pixels */
    json_t *req = NULL;
    api_error e;
    api_roots roots = {.models_dir = models};
    CHECK(a1111_txt2img_request(body, &roots, &req, &e) == 0, "%s", e.message);
    json_object_set_new(req, "scheduler", json_string("ddim"));
    j = send_json("POST", "/v1/generate", NULL, req, &st);
    EXPECT(st == 200 && same_b64(&cli_truth, j, 0, why, sizeof why), "translated: %ld %s", st, why);
    json_decref(j);
    json_decref(req);
    json_decref(body);
}

static void test_lists(void) {
    long st;
    json_t *j = send_json("GET", "/sdapi/v1/samplers", NULL, NULL, &st);
    CHECK(st == 200 && json_is_array(j), "samplers: %ld", st);
    int euler_a = 0;
    for (size_t i = 0; i < json_array_size(j); i++) {
        const json_t *s = json_array_get(j, i);
        const char *cnet = json_string_value(json_object_get(s, "cnet_scheduler"));
        EXPECT(json_is_string(json_object_get(s, "name")) &&
                   json_is_array(json_object_get(s, "aliases")) &&
                   json_is_object(json_object_get(s, "options")) && cnet &&
                   sched_kind_from_short(cnet) >= 0,
               "sampler %zu", i);
        euler_a |= !strcmp(json_string_value(json_object_get(s, "name")), "Euler a") &&
                   !strcmp(cnet, "euler_a");
    }
    EXPECT(euler_a && json_array_size(j) == 6, "Euler a -> euler_a, %zu samplers",
           json_array_size(j));
    json_decref(j);

    j = send_json("GET", "/sdapi/v1/sd-models", NULL, NULL, &st);
    CHECK(st == 200 && json_array_size(j) == 2, "sd-models: %ld", st);
    const json_t *m0 = json_array_get(j, 0);
    EXPECT(!strcmp(json_string_value(json_object_get(m0, "title")), "tiny") &&
               !strcmp(json_string_value(json_object_get(m0, "model_name")), "tiny") &&
               json_is_string(json_object_get(m0, "filename")) &&
               json_object_get(m0, "hash") != NULL,
           "sd-models[0]");
    json_decref(j);

    j = send_json("GET", "/sdapi/v1/options", NULL, NULL, &st);
    EXPECT(st == 200 &&
               !strcmp(json_string_value(json_object_get(j, "sd_model_checkpoint")), "tiny"),
           "options: %ld", st);
    json_decref(j);

    j = send_json("GET", "/sdapi/v1/progress", NULL, NULL, &st);
    EXPECT(st == 200 && json_is_number(json_object_get(j, "progress")) &&
               json_is_object(json_object_get(j, "state")) &&
               json_is_integer(json_object_get(json_object_get(j, "state"), "job_count")),
           "progress: %ld", st);
    json_decref(j);

    j = send_json("GET", "/controlnet/model_list", NULL, NULL, &st);
    const json_t *list = json_object_get(j, "model_list");
    EXPECT(st == 200 && json_array_size(list) == 2 &&
               !strcmp(json_string_value(json_array_get(list, 0)), "tiny/controlnet") &&
               !strcmp(json_string_value(json_array_get(list, 1)), "tiny2/controlnet"),
           "model_list: %ld", st);
    json_decref(j);

    for (int alias = 0; alias < 2; alias++) {
        j = send_json(
            "GET", alias ? "/controlnet/module_list?alias_names=true" : "/controlnet/module_list",
            NULL, NULL, &st);
        list = json_object_get(j, "module_list");
        CHECK(st == 200 && (int)json_array_size(list) == annotator_count(), "module_list: %ld", st);
        for (int i = 0; i < annotator_count(); i++) {
            const annotator *a = annotator_at(i);
            const char *want = alias ? a->a1111_name : a->name;
            EXPECT(!strcmp(json_string_value(json_array_get(list, (size_t)i)), want) &&
                       json_object_get(json_object_get(j, "module_detail"), want),
                   "module %d: %s", i, want);
        }
        json_decref(j);
    }
}

static void test_detect_canny(void) {
    long st;
    json_t *body = fixture("detect_canny.json");
    CHECK(body, "tests/fixtures-a1111/detect_canny.json");
    json_t *j = send_json("POST", "/controlnet/detect", NULL, body, &st);
    json_decref(body);
    CHECK(st == 200 && j, "detect: %ld", st);
    image_rgb8 want = {0};
    cnet_error err = {0};
    CHECK(canny_rgb8(&want, &img_a, 50, 150, &err) == 0, "%s", err.msg);
    char why[200];
    EXPECT(same_b64(&want, j, 0, why, sizeof why), "detect vs canny_rgb8: %s", why);
    EXPECT(!strcmp(json_string_value(json_object_get(j, "info")), "Success"), "info");
    json_decref(j);
    image_free(&want);
}

static void test_basic_auth(void) {
    char cred[128], b64[256], header[300];
    long st;
    const char *const creds[] = {"user:" T, T ":", "user:wrong-password-000"};
    const long want[] = {200, 200, 403};
    for (int i = 0; i < 3; i++) {
        snprintf(cred, sizeof cred, "%s", creds[i]);
        char *enc = api_base64_encode((const unsigned char *)cred, strlen(cred));
        snprintf(b64, sizeof b64, "%s", enc);
        free(enc);
        snprintf(header, sizeof header, "Authorization: Basic %s", b64);
        json_t *j = send_json("GET", "/sdapi/v1/options", header, NULL, &st);
        EXPECT(st == want[i], "Basic %s: %ld, want %ld", creds[i], st, want[i]);
        json_decref(j);
        j = send_json("GET", "/v1/models", header, NULL, &st); /* every route takes it */
        EXPECT(st == want[i], "Basic %s on /v1/models: %ld", creds[i], st);
        json_decref(j);
    }
    http_resp r;
    http_do(&srv, "GET", "/sdapi/v1/options", NULL, NULL, NULL, 0, 0, &r);
    char www[128] = "";
    http_header(&r, "WWW-Authenticate", www, sizeof www);
    EXPECT(r.status == 401 && !strncmp(www, "Basic", 5) && strstr(r.body, "\"detail\""),
           "no token: %ld %s %s", r.status, www, r.body);
    http_resp_free(&r);
}

/* body with unit 1's (or the top level's, unit < 0) member set to v, and
 * optionally a second member of that unit (member2, v2): 422 whose detail
 * names want. */
static int refused2(int unit, const char *member, json_t *v, const char *member2, json_t *v2,
                    const char *want) {
    json_t *body = fixture("txt2img_two_units.json");
    json_t *at =
        unit < 0 ? body
                 : json_array_get(
                       json_object_get(
                           json_object_get(json_object_get(body, "alwayson_scripts"), "controlnet"),
                           "args"),
                       (size_t)unit);
    json_object_set_new(at, member, v);
    if (member2) json_object_set_new(at, member2, v2);
    long st;
    json_t *j = send_json("POST", "/sdapi/v1/txt2img", NULL, body, &st);
    json_decref(body);
    const char *detail = json_string_value(json_object_get(j, "detail"));
    int ok = st == A1111_STATUS && detail && strstr(detail, want);
    if (!ok) printf("    %s: %ld %s\n", member, st, detail ? detail : "(no detail)");
    json_decref(j);
    return ok;
}

static int refused(int unit, const char *member, json_t *v, const char *want) {
    return refused2(unit, member, v, NULL, NULL, want);
}

static void test_refused_by_name(void) {
    EXPECT(refused(-1, "sampler_name", json_string("DPM++ 2M Karras"), "DPM++ 2M Karras"),
           "a Karras sampler");
    EXPECT(refused(-1, "sampler_name", json_string("Heun"), "sampler_name"), "Heun");
    EXPECT(refused(1, "module", json_string("depth_zoe"), "depth_zoe"), "an unknown module");
    EXPECT(refused(1, "model", json_string("no-such-net"), "no-such-net"), "an unknown model");
    EXPECT(refused(1, "control_mode", json_string("My prompt is more important"),
                   "args[1].control_mode"),
           "My prompt is more important");
    EXPECT(refused(0, "control_mode", json_integer(2), "control_mode"),
           "units of different control modes");
    EXPECT(refused(-1, "enable_hr", json_true(), "enable_hr"), "hires fix");
    EXPECT(refused(-1, "restore_faces", json_true(), "restore_faces"), "restore faces");
    EXPECT(refused(-1, "no_such_member", json_true(), "no_such_member"), "an unknown member");
    EXPECT(refused(1, "processor_res", json_real(40.5), "processor_res"),
           "a processor_res that is not whole pixels");
    /* refused by cnet's own table, named as the A1111 body named it */
    EXPECT(refused(-1, "cfg_scale", json_integer(60), "cfg_scale (cnet's guidance)"),
           "cfg_scale over the table's limit");
    EXPECT(refused(1, "weight", json_integer(9),
                   "alwayson_scripts.controlnet.args[1].weight (cnet's controlnets[1].scale)"),
           "a unit's weight over the table's limit");
}

/* A unit's sliders reach its own controlnets item: threshold_a/b, and
 * processor_res (absent or negative: the extension's default, 512; 0: the
 * image's own size), or pixel perfect's
 * resolution instead (the extension's pixel_perfect_resolution: the 16x16
 * image for a 16x16 output stays at 16). */
static void test_unit_sliders(void) {
    json_t *body = fixture("txt2img_two_units.json"), *req = NULL;
    CHECK(body, "tests/fixtures-a1111/txt2img_two_units.json");
    json_t *unit = json_array_get(
        json_object_get(json_object_get(json_object_get(body, "alwayson_scripts"), "controlnet"),
                        "args"),
        1);
    api_roots roots = {.models_dir = models};
    api_error e = {0};
    CHECK(a1111_txt2img_request(body, &roots, &req, &e) == 0, "%s", e.message);
    const json_t *item = json_array_get(json_object_get(req, "controlnets"), 1);
    EXPECT(json_number_value(json_object_get(item, "threshold_a")) == 50 &&
               json_number_value(json_object_get(item, "threshold_b")) == 150 &&
               json_integer_value(json_object_get(item, "processor_res")) == 512,
           "unit 1's thresholds, processor_res -1");
    json_decref(req);
    json_object_del(unit, "processor_res");
    CHECK(a1111_txt2img_request(body, &roots, &req, &e) == 0, "%s", e.message);
    item = json_array_get(json_object_get(req, "controlnets"), 1);
    EXPECT(json_integer_value(json_object_get(item, "processor_res")) == 512,
           "processor_res absent: 512");
    json_decref(req);
    json_object_set_new(unit, "processor_res", json_integer(0));
    CHECK(a1111_txt2img_request(body, &roots, &req, &e) == 0, "%s", e.message);
    item = json_array_get(json_object_get(req, "controlnets"), 1);
    EXPECT(!json_object_get(item, "processor_res"), "processor_res 0: the image's own size");
    json_decref(req);
    json_object_set_new(unit, "processor_res", json_integer(32));
    CHECK(a1111_txt2img_request(body, &roots, &req, &e) == 0, "%s", e.message);
    item = json_array_get(json_object_get(req, "controlnets"), 1);
    EXPECT(json_integer_value(json_object_get(item, "processor_res")) == 32, "processor_res 32");
    json_decref(req);
    json_object_set_new(unit, "pixel_perfect", json_true());
    CHECK(a1111_txt2img_request(body, &roots, &req, &e) == 0, "%s", e.message);
    item = json_array_get(json_object_get(req, "controlnets"), 1);
    EXPECT(json_integer_value(json_object_get(item, "processor_res")) == SIZE,
           "pixel perfect: %lld",
           (long long)json_integer_value(json_object_get(item, "processor_res")));
    json_decref(req);
    json_decref(body);
}

static void test_img2img_translation(void) {
    json_t *body = fixture("img2img_inpaint.json"), *req = NULL;
    CHECK(body, "tests/fixtures-a1111/img2img_inpaint.json");
    api_roots roots = {.models_dir = models};
    api_error e = {0};
    /* as recorded: mask_blur 4, which diffusers' inpainting does not do */
    CHECK(a1111_img2img_request(body, &roots, &req, &e) != 0 && e.status == A1111_STATUS &&
              !strncmp(e.field, "mask_blur", 9),
          "mask_blur 4: %d %s", e.status, e.field);
    json_object_set_new(body, "mask_blur", json_integer(0));
    json_object_set_new(body, "mask_blur_x", json_integer(0));
    json_object_set_new(body, "mask_blur_y", json_integer(0));
    CHECK(a1111_img2img_request(body, &roots, &req, &e) == 0, "%s", e.message);
    const json_t *cn = json_array_get(json_object_get(req, "controlnets"), 0);
    EXPECT(!strcmp(json_string_value(json_object_get(req, "init_image")), b64_a) &&
               !strcmp(json_string_value(json_object_get(req, "mask_image")), b64_b) &&
               json_number_value(json_object_get(req, "strength")) == 0.75 &&
               !json_object_get(req, "padding_mask_crop") &&
               !strcmp(json_string_value(json_object_get(req, "scheduler")), "euler_a") &&
               !strcmp(json_string_value(json_object_get(req, "model")), "tiny"),
           "img2img members");
    /* no unit image: the init image, as the extension does */
    EXPECT(!strcmp(json_string_value(json_object_get(cn, "image")), b64_a) &&
               !strcmp(json_string_value(json_object_get(cn, "controlnet")), "tiny/controlnet"),
           "the unit");
    json_decref(req);
    /* "only masked" is diffusers' padding_mask_crop */
    json_object_set_new(body, "inpaint_full_res", json_integer(1));
    CHECK(a1111_img2img_request(body, &roots, &req, &e) == 0, "%s", e.message);
    EXPECT(json_integer_value(json_object_get(req, "padding_mask_crop")) == 32,
           "padding_mask_crop");
    json_decref(req);
    json_decref(body);
}

int main(int argc, char **argv) {
    harness_init(argc, argv);
    setenv("OMP_NUM_THREADS", "1", 0); /* see test_server_engine.c */
    const char *build = getenv("BUILD");
    snprintf(bin, sizeof bin, "%s/cnet", build && *build ? build : "build");
    if (tmpdir_make(dir, sizeof dir, "cnet-a1111-")) return printf("no temp dir\n"), 1;
    snprintf(models, sizeof models, "%s/models", dir);
    char data[700], a_png[700], b_png[700], out[700], cmd[8192];
    snprintf(data, sizeof data, "%s/data", dir);
    snprintf(a_png, sizeof a_png, "%s/a.png", dir);
    snprintf(b_png, sizeof b_png, "%s/b.png", dir);
    snprintf(out, sizeof out, "%s/cli.png", dir);
    mkdir(models, 0700);
    mkdir(data, 0700);
    int rc = make_image(&img_a, 0, a_png, &b64_a) || make_image(&img_b, 1, b_png, &b64_b);
    /* two ControlNets that differ and move the pixels (non-zero zero convs) */
    snprintf(cmd, sizeof cmd,
             "%s init-model --out %s/tiny --preset tiny --nonzero-controlnet && %s init-model "
             "--out %s/tiny2 --preset tiny --nonzero-controlnet --seed 5",
             bin, models, bin, models);
    if (!rc) rc = run_quiet(cmd);
    snprintf(cmd, sizeof cmd,
             "%s generate --model %s/tiny --controlnet %s/tiny/controlnet,%s/tiny2/controlnet "
             "--image %s,%s --scale 0.7,1.3 --start 0,0.2 --preprocess none,canny "
             "--processor_res 0,512 "
             "--canny-low-threshold 50 --canny-high-threshold 150 --prompt 'a red circle' "
             "--negative-prompt '' --steps 3 --seed 7 --guidance 7 --scheduler ddim --width 16 "
             "--height 16 --out %s",
             bin, models, models, models, a_png, b_png, out);
    if (!rc) rc = run_quiet(cmd);
    cnet_error err = {0};
    if (!rc) rc = image_load(&cli_truth, out, 0, &err);
    const char *const args[] = {"--models", models, "--device", "cpu", NULL};
    if (rc || server_start(&srv, data, args)) {
        printf("setup failed (%s)\ntest_server_a1111: 0 passed, 1 failed\n", err.msg);
        return 1;
    }
    RUN(test_two_controlnets_equal_the_cli);
    RUN(test_prompt_list);
    RUN(test_txt2img_two_units);
    RUN(test_lists);
    RUN(test_detect_canny);
    RUN(test_basic_auth);
    RUN(test_refused_by_name);
    RUN(test_unit_sliders);
    RUN(test_img2img_translation);
    server_stop(&srv, SIGTERM, 10000);
    image_free(&img_a);
    image_free(&img_b);
    image_free(&cli_truth);
    free(b64_a);
    free(b64_b);
    tmpdir_remove(dir);
    return harness_done();
}
