/* libFuzzer target: the image decoders' wrappers (engine/image/image.c,
 * image_png.c, image_jpeg.c) over arbitrary bytes, as a generate request's
 * control image or a dataset's sample reaches them: image_decode sniffs the
 * format and decodes to RGB under a pixel cap. A decoded image must be within
 * the cap, and every byte of the size it claims is read (ASan catches a buffer
 * shorter than that). Corpus: tests/fuzz/corpus/image. */
#include <stdint.h>
#include <stdlib.h>

#include "engine/image/image.h"
#include "tests/fuzz/lib_fuzz.h"

/* Small enough that a bomb stops fast, large enough for the seeds. */
#define FUZZ_IMAGE_MAX_PIXELS (1 << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    image_rgb8 img = {0};
    cnet_error err = {0};
    if (image_decode(&img, data, size, "fuzz", FUZZ_IMAGE_MAX_PIXELS, &err) == 0) {
        if (img.width <= 0 || img.height <= 0 ||
            (int64_t)img.width * img.height > FUZZ_IMAGE_MAX_PIXELS)
            abort();
        for (size_t i = 0; i < (size_t)img.width * img.height * 3; i++) fuzz_sink ^= img.data[i];
    }
    image_free(&img);
    return 0;
}
