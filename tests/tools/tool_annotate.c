/* tool_annotate NAME IN.rgb WIDTH HEIGHT OUT.rgb [A B PROCESSOR_RES SEED]:
 * runs one annotator (engine/annotators/annotator.h) on raw 8-bit RGB
 * pixels, for tests/tools/annotators_ref.py to compare with its pure-Python
 * reference. A or B "-" keeps that parameter's default. Writes the control
 * image's raw pixels to OUT.rgb and prints "WIDTH HEIGHT"; on an annotator
 * error prints "error: MESSAGE" and exits 1; bad usage exits 2. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/annotators/annotator.h"

int main(int argc, char **argv) {
    if (argc != 6 && argc != 10) {
        fprintf(stderr, "usage: tool_annotate NAME IN.rgb W H OUT.rgb [A B RES SEED]\n");
        return 2;
    }
    const annotator *a = annotator_find(argv[1]);
    if (!a) {
        fprintf(stderr, "tool_annotate: unknown annotator %s\n", argv[1]);
        return 2;
    }
    image_rgb8 in = {0}, out = {0};
    cnet_error err = {0};
    if (image_alloc(&in, atoi(argv[3]), atoi(argv[4]), &err)) {
        fprintf(stderr, "tool_annotate: %s\n", err.msg);
        return 2;
    }
    FILE *f = fopen(argv[2], "rb");
    const size_t n = (size_t)in.width * in.height * 3;
    if (!f || fread(in.data, 1, n, f) != n) {
        fprintf(stderr, "tool_annotate: cannot read %zu bytes from %s\n", n, argv[2]);
        return 2;
    }
    fclose(f);
    annotator_args args;
    annotator_args_default(a, &args);
    if (argc == 10) {
        for (int k = 0; k < 2; k++)
            if (strcmp(argv[6 + k], "-")) args.value[k] = atof(argv[6 + k]);
        args.processor_res = atoi(argv[8]);
        args.seed = strtoull(argv[9], NULL, 10);
    }
    if (annotator_run(a, &out, &in, &args, &err)) {
        printf("error: %s\n", err.msg);
        return 1;
    }
    f = fopen(argv[5], "wb");
    const size_t m = (size_t)out.width * out.height * 3;
    if (!f || fwrite(out.data, 1, m, f) != m || fclose(f)) {
        fprintf(stderr, "tool_annotate: cannot write %s\n", argv[5]);
        return 2;
    }
    printf("%d %d\n", out.width, out.height);
    image_free(&in);
    image_free(&out);
    return 0;
}
