/* Chooses the reader of a weights file by its first bytes; see
 * weights_file.h. */
#include "engine/core/weights_file.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "engine/core/torch_pickle.h"
#include "engine/core/zip_read.h"

/* A safetensors file's 8-byte header length and the '{' its JSON opens
 * with: enough to tell it from a zip or pickle header (a header length of
 * 640 starts with the bytes 0x80 0x02 of a protocol-2 pickle). */
#define WEIGHTS_SNIFF_BYTES 9

int weights_file_open(st_file *f, const char *path, cnet_error *err) {
    unsigned char head[WEIGHTS_SNIFF_BYTES] = {0};
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        memset(f, 0, sizeof *f);
        return cnet_fail(err, CNET_EIO, "%s: cannot open: %s", path, strerror(errno));
    }
    size_t n = fread(head, 1, sizeof head, fp);
    fclose(fp);
    int safetensors = n == WEIGHTS_SNIFF_BYTES && head[8] == '{';
    if (zip_is_zip(head, n) || (!safetensors && torch_pickle_sniff(head, n)))
        return torch_pickle_open(f, path, err);
    return st_open(f, path, err);
}
