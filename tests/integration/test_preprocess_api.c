/* POST /v1/preprocess and GET /v1/preprocessors against a real `cnet serve`
 * (tests/lib/lib_server.h):
 *   - invert answers 255 - every channel (image/png), and the JSON answer
 *     (Accept: application/json) carries the same PNG, its size and names;
 *   - a multipart request (a file part and text parts) gives what the
 *     annotator gives in-process (the annotators themselves are checked
 *     against the extension's reference by tests/unit/annotators_test.sh);
 *   - refusals name their field: a threshold outside the annotator's range,
 *     an unknown member, no image, an image the annotator cannot take;
 *   - GET /v1/preprocessors lists the table, in order, with each
 *     parameter's field, range and default. */
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "engine/annotators/annotator.h"
#include "tests/lib/harness.h"
#include "tests/lib/lib_fs.h"
#include "tests/lib/lib_server.h"

#define W 12
#define H 10

static char dir[512], data[600];
static test_server srv;
static const char *const T = SERVER_TEST_TOKEN;
static image_rgb8 pic;
static uint8_t *pic_png;
static size_t pic_png_len;

static const char *const accept_json[] = {"Accept: application/json", NULL};

/* POSTs {"image": <pic>, extra...} as JSON. */
static void post_json(const char *extra, const char *const *headers, http_resp *r) {
    char *b64 = api_base64_encode(pic_png, pic_png_len);
    size_t cap = strlen(b64) + strlen(extra) + 64;
    char *body = malloc(cap);
    snprintf(body, cap, "{\"image\": \"%s\"%s%s}", b64, *extra ? ", " : "", extra);
    http_do(&srv, "POST", "/v1/preprocess", T, headers, body, strlen(body), 0, r);
    free(body);
    free(b64);
}

static const char *err_field(const http_resp *r, char *out, size_t n) {
    json_t *v = json_loadb(r->body, r->len, 0, NULL);
    snprintf(out, n, "%s",
             json_string_value(json_object_get(json_object_get(v, "error"), "field")) ?: "");
    json_decref(v);
    return out;
}

static void test_invert_png_and_json(void) {
    http_resp r;
    post_json("\"preprocess\": \"invert\"", NULL, &r);
    char ct[64] = "";
    http_header(&r, "Content-Type", ct, sizeof ct);
    CHECK(r.status == 200 && !strcmp(ct, "image/png"), "%ld %s %s", r.status, ct, r.body);
    image_rgb8 out = {0};
    cnet_error err = {0};
    CHECK(!image_decode(&out, r.body, r.len, "answer", 0, &err), "%s", err.msg);
    int same = out.width == W && out.height == H;
    for (int i = 0; same && i < W * H * 3; i++) same = out.data[i] == 255 - pic.data[i];
    EXPECT(same, "invert is not 255 - x (%dx%d)", out.width, out.height);
    http_resp j;
    post_json("\"preprocess\": \"invert\"", accept_json, &j);
    json_t *v = json_loadb(j.body, j.len, 0, NULL);
    const char *b64 = json_string_value(json_object_get(v, "image"));
    unsigned char *png = NULL;
    size_t len = 0;
    api_error e;
    CHECK(j.status == 200 && b64 && !api_base64_decode(b64, strlen(b64), "image", &png, &len, &e),
          "%ld %s", j.status, j.body);
    EXPECT(len == r.len && !memcmp(png, r.body, len), "the JSON answer's PNG differs");
    EXPECT(json_integer_value(json_object_get(v, "width")) == W &&
               json_integer_value(json_object_get(v, "height")) == H &&
               !strcmp(json_string_value(json_object_get(v, "module")) ?: "",
                       "invert (from white bg & black line)"),
           "%s", j.body);
    free(png);
    json_decref(v);
    image_free(&out);
    http_resp_free(&r);
    http_resp_free(&j);
}

static void test_multipart(void) {
    static const char *const bound = "cnetPreprocessBoundary42";
    char ctype[128];
    snprintf(ctype, sizeof ctype, "Content-Type: multipart/form-data; boundary=%s", bound);
    const char *const headers[] = {ctype, NULL};
    size_t cap = pic_png_len + 2048, n = 0;
    char *body = malloc(cap);
    n += (size_t)snprintf(body + n, cap - n,
                          "--%s\r\nContent-Disposition: form-data; name=\"preprocess\"\r\n\r\n"
                          "threshold\r\n--%s\r\nContent-Disposition: form-data; "
                          "name=\"threshold_a\"\r\n\r\n100\r\n--%s\r\nContent-Disposition: "
                          "form-data; name=\"processor_res\"\r\n\r\n20\r\n--%s\r\n"
                          "Content-Disposition: form-data; name=\"image\"; "
                          "filename=\"p.png\"\r\nContent-Type: image/png\r\n\r\n",
                          bound, bound, bound, bound);
    memcpy(body + n, pic_png, pic_png_len);
    n += pic_png_len;
    n += (size_t)snprintf(body + n, cap - n, "\r\n--%s--\r\n", bound);
    http_resp r;
    http_do(&srv, "POST", "/v1/preprocess", T, headers, body, n, 0, &r);
    free(body);
    CHECK(r.status == 200, "%ld %s", r.status, r.body);
    image_rgb8 got = {0}, want = {0};
    cnet_error err = {0};
    annotator_args args;
    const annotator *a = annotator_find("threshold");
    annotator_args_default(a, &args);
    args.value[0] = 100;
    args.processor_res = 20;
    CHECK(!image_decode(&got, r.body, r.len, "answer", 0, &err), "%s", err.msg);
    CHECK(!annotator_run(a, &want, &pic, &args, &err), "%s", err.msg);
    EXPECT(got.width == want.width && got.height == want.height && got.width == 24 &&
               !memcmp(got.data, want.data, (size_t)want.width * want.height * 3),
           "multipart threshold %dx%d differs from the annotator's %dx%d", got.width, got.height,
           want.width, want.height);
    image_free(&got);
    image_free(&want);
    http_resp_free(&r);
}

static void test_refusals(void) {
    static const struct {
        const char *extra;
        long status;
        const char *field;
    } cases[] = {
        {"\"preprocess\": \"threshold\", \"threshold_a\": 300", 400, "threshold_a"},
        {"\"preprocess\": \"canny\", \"threshold_a\": 10, \"canny_low_threshold\": 20", 400,
         "threshold_a"},
        {"\"preprocess\": \"sobel\"", 400, "preprocess"},
        {"\"preprocess\": \"invert\", \"steps\": 3", 400, "steps"},
        {"\"preprocess\": \"color\"", 400, "image"},
        {"\"processor_res\": -1", 400, "processor_res"},
        {"\"preprocess\": \"threshold\", \"processor_res\": 4000", 413, "processor_res"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        http_resp r;
        char field[64];
        post_json(cases[i].extra, NULL, &r);
        EXPECT(r.status == cases[i].status &&
                   !strcmp(err_field(&r, field, sizeof field), cases[i].field),
               "{%s}: %ld %s", cases[i].extra, r.status, r.body);
        http_resp_free(&r);
    }
    http_resp r;
    char field[64];
    const char *no_image = "{\"preprocess\": \"invert\"}";
    http_do(&srv, "POST", "/v1/preprocess", T, NULL, no_image, strlen(no_image), 0, &r);
    EXPECT(r.status == 400 && !strcmp(err_field(&r, field, sizeof field), "image"), "%ld %s",
           r.status, r.body);
    http_resp_free(&r);
    http_do(&srv, "POST", "/v1/preprocess", NULL, NULL, no_image, strlen(no_image), 0, &r);
    EXPECT(r.status == 401, "no token: %ld", r.status);
    http_resp_free(&r);
}

static void test_list(void) {
    http_resp r;
    http_do(&srv, "GET", "/v1/preprocessors", T, NULL, NULL, 0, 0, &r);
    json_t *v = json_loadb(r.body, r.len, 0, NULL), *list = json_object_get(v, "preprocessors");
    CHECK(r.status == 200 && (int)json_array_size(list) == annotator_count(), "%ld %s", r.status,
          r.body);
    for (int i = 0; i < annotator_count(); i++) {
        const annotator *a = annotator_at(i);
        json_t *p = json_array_get(list, (size_t)i);
        EXPECT(!strcmp(json_string_value(json_object_get(p, "name")) ?: "", a->name) &&
                   !strcmp(json_string_value(json_object_get(p, "module")) ?: "", a->a1111_name),
               "#%d is not %s", i, a->name);
    }
    json_t *thr = json_array_get(list, 3),
           *p0 = json_array_get(json_object_get(thr, "parameters"), 0);
    EXPECT(!strcmp(json_string_value(json_object_get(thr, "name")) ?: "", "threshold") &&
               !strcmp(json_string_value(json_object_get(p0, "field")) ?: "", "threshold_a") &&
               json_number_value(json_object_get(p0, "min")) == 0 &&
               json_number_value(json_object_get(p0, "max")) == 255 &&
               json_number_value(json_object_get(p0, "default")) == 127 &&
               json_is_true(json_object_get(thr, "processor_res")) &&
               json_is_false(json_object_get(json_array_get(list, 2), "processor_res")),
           "threshold's parameter: %s", r.body);
    json_decref(v);
    http_resp_free(&r);
}

int main(int argc, char **argv) {
    harness_init(argc, argv);
    cnet_error err = {0};
    if (tmpdir_make(dir, sizeof dir, "cnet-preprocess") || image_alloc(&pic, W, H, &err)) {
        printf("setup failed\ntest_preprocess_api: 0 passed, 1 failed\n");
        return 1;
    }
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            for (int c = 0; c < 3; c++)
                pic.data[(y * W + x) * 3 + c] = (uint8_t)(x > 5 ? 200 - 9 * y + c : 20 + 11 * x);
    snprintf(data, sizeof data, "%s/data", dir);
    if (image_encode_png(&pic, NULL, 0, &pic_png, &pic_png_len, &err) ||
        server_start(&srv, data, NULL)) {
        printf("setup failed: %s\ntest_preprocess_api: 0 passed, 1 failed\n", err.msg);
        return 1;
    }
    RUN(test_invert_png_and_json);
    RUN(test_multipart);
    RUN(test_refusals);
    RUN(test_list);
    server_stop(&srv, SIGTERM, 10000);
    free(pic_png);
    image_free(&pic);
    tmpdir_remove(dir);
    return harness_done();
}
