/* The annotator table (engine/annotators/annotator.h): lookups by both names,
 * defaults, the parameter range checks, and "canny" equal to canny_rgb8 (the
 * detector itself is checked against OpenCV's recorded output by test_canny),
 * canny's processor_res, and processor_res doing what each annotator's
 * takes_res says. The other annotators' pixels: tests/unit/annotators_test.sh. */
#include <string.h>

#include "engine/annotators/annotator.h"
#include "engine/image/canny.h"
#include "tests/lib/harness.h"

static void test_table(void) {
    CHECK(annotator_count() >= 2, "%d annotators", annotator_count());
    CHECK(!strcmp(annotator_at(0)->name, "none"), "none first");
    CHECK(annotator_at(annotator_count()) == NULL && annotator_at(-1) == NULL, "out of range");
    for (int i = 0; i < annotator_count(); i++) {
        const annotator *a = annotator_at(i);
        CHECK(annotator_find(a->name) == a, "%s by name", a->name);
        CHECK(annotator_find(a->a1111_name) == a, "%s by module name", a->a1111_name);
        for (int j = 0; j < i; j++)
            CHECK(strcmp(annotator_at(j)->name, a->name), "%s twice", a->name);
        for (int k = 0; k < ANNOTATOR_MAX_PARAMS; k++)
            if (a->param[k].name)
                CHECK(a->param[k].lo <= a->param[k].def && a->param[k].def <= a->param[k].hi,
                      "%s.%s default in range", a->name, a->param[k].name);
    }
    CHECK(annotator_find("no_such_module") == NULL, "unknown");
    CHECK(annotator_find(NULL) == NULL, "NULL");
}

static void test_canny_and_checks(void) {
    image_rgb8 in = {0}, out = {0}, ref = {0};
    cnet_error err = {0};
    CHECK(!image_alloc(&in, 9, 7, &err), "alloc");
    for (int y = 0; y < 7; y++)
        for (int x = 0; x < 9; x++)
            for (int c = 0; c < 3; c++) in.data[(y * 9 + x) * 3 + c] = x > 4 ? 250 : 10;
    const annotator *a = annotator_find("canny");
    annotator_args args;
    annotator_args_default(a, &args);
    CHECK(args.value[0] == 100 && args.value[1] == 200, "canny defaults");
    CHECK(!annotator_run(a, &out, &in, &args, &err), "canny: %s", err.msg);
    CHECK(!canny_rgb8(&ref, &in, 100, 200, &err), "ref");
    CHECK(out.width == 9 && out.height == 7 && !memcmp(out.data, ref.data, 9 * 7 * 3),
          "canny equals canny_rgb8");
    int edges = 0;
    for (int i = 0; i < 9 * 7 * 3; i++) edges += out.data[i] == 255;
    CHECK(edges > 0, "the step has edges");
    image_free(&out);
    args.value[1] = 5000;
    CHECK(annotator_run(a, &out, &in, &args, &err) == CNET_EINVAL &&
              strstr(err.msg, "high_threshold"),
          "range check names the parameter: %s", err.msg);
    CHECK(out.data == NULL, "nothing on failure");
    const annotator *none = annotator_find("none");
    annotator_args_default(none, &args);
    CHECK(!annotator_run(none, &out, &in, &args, &err) && !memcmp(out.data, in.data, 9 * 7 * 3),
          "none copies");
    image_free(&out);
    image_free(&ref);
    image_free(&in);
}

/* canny with processor_res is the extension's: the picture scaled (here 9x7
 * to short side 14: 18x14, cubic), edge-padded to 64x64, Canny, cropped back
 * to 18x14; without it the picture keeps its size. */
static void test_canny_processor_res(void) {
    image_rgb8 in = {0}, out = {0}, plain = {0};
    cnet_error err = {0};
    CHECK(!image_alloc(&in, 9, 7, &err), "alloc");
    for (int i = 0; i < 9 * 7 * 3; i++) in.data[i] = (i / 3) % 9 > 4 ? 250 : 10;
    const annotator *a = annotator_find("canny");
    annotator_args args;
    annotator_args_default(a, &args);
    args.processor_res = 14;
    CHECK(!annotator_run(a, &out, &in, &args, &err), "canny: %s", err.msg);
    CHECK(out.width == 18 && out.height == 14, "size %dx%d", out.width, out.height);
    args.processor_res = 0;
    CHECK(!annotator_run(a, &plain, &in, &args, &err) && plain.width == 9, "plain");
    int edges = 0;
    for (int i = 0; i < 18 * 14 * 3; i++) edges += out.data[i] == 255;
    CHECK(edges > 0, "the scaled step has edges");
    image_free(&out);
    image_free(&plain);
    image_free(&in);
}

/* takes_res says what processor_res does: those that take it make a
 * 140x128 picture at processor_res 64 into 70x64 (the short side scaled);
 * the others ignore it and keep 140x128. */
static void test_takes_res(void) {
    image_rgb8 in = {0};
    cnet_error err = {0};
    CHECK(!image_alloc(&in, 140, 128, &err), "alloc");
    for (int i = 0; i < 140 * 128 * 3; i++) in.data[i] = (uint8_t)(i * 7 % 251);
    for (int i = 0; i < annotator_count(); i++) {
        const annotator *a = annotator_at(i);
        annotator_args args;
        annotator_args_default(a, &args);
        args.processor_res = 64;
        if (a->needs_model) args.model_dir = "tests/fixtures-dpt/model"; /* depth's tiny DPT */
        image_rgb8 out = {0};
        CHECK(!annotator_run(a, &out, &in, &args, &err), "%s: %s", a->name, err.msg);
        const int w = a->takes_res ? 70 : 140, h = a->takes_res ? 64 : 128;
        EXPECT(out.width == w && out.height == h, "%s (takes_res %d) made %dx%d, not %dx%d",
               a->name, a->takes_res, out.width, out.height, w, h);
        image_free(&out);
    }
    image_free(&in);
}

/* processor_res on a thin image: the working size is refused before any
 * pixel of it is allocated (a 4000x2 picture at 4096 would be 8192000x4096). */
static void test_processor_res_limit(void) {
    image_rgb8 in = {0}, out = {0};
    cnet_error err = {0};
    CHECK(!image_alloc(&in, 4000, 2, &err), "alloc");
    const annotator *a = annotator_find("canny");
    annotator_args args;
    annotator_args_default(a, &args);
    args.processor_res = 4096;
    CHECK(annotator_run(a, &out, &in, &args, &err) == CNET_ELIMIT && strstr(err.msg, "4096"),
          "refused: %s", err.msg);
    CHECK(out.data == NULL, "nothing on failure");
    args.processor_res = 4;
    CHECK(!annotator_run(a, &out, &in, &args, &err), "a small one runs: %s", err.msg);
    image_free(&out);
    image_free(&in);
}

int main(int argc, char **argv) {
    harness_init(argc, argv);
    RUN(test_table);
    RUN(test_canny_and_checks);
    RUN(test_canny_processor_res);
    RUN(test_takes_res);
    RUN(test_processor_res_limit);
    return harness_done();
}
