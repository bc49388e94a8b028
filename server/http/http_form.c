/* multipart/form-data generate requests (RFC 7578) turned into the JSON
 * request they stand for, with libmicrohttpd's post processor over the body
 * already held in memory (the route's limit bounds it): the part "image" is
 * the control image's bytes, the parts "init_image" and "mask_image" the
 * img2img / inpainting images (put into the request base64, as JSON sends
 * them), every other part one option whose text is typed by the generate
 * field table (api_generate_form_value). A part given twice
 * is an error, like a duplicate JSON key. Not a general form parser: no
 * nested multipart, no other routes. */
#include <stdlib.h>
#include <string.h>

#include "server/http/http_internal.h"

#define FORM_VALUE_MAX 4096  /* bytes of one text part; above → 400 */
#define FORM_PP_BUFFER 16384 /* the post processor's working buffer */

/* The file parts: the control image, then the ones that go base64 into req. */
enum { FORM_IMAGE, FORM_FILES = 3 };
static const char *const file_parts[FORM_FILES] = {"image", "init_image", "mask_image"};

typedef struct form {
    json_t *req;
    unsigned char *file[FORM_FILES];
    size_t file_len[FORM_FILES];
    int have_file[FORM_FILES];
    char key[128]; /* the text part being collected */
    char value[FORM_VALUE_MAX + 1];
    size_t value_len;
    api_error *e;
    int failed;
} form;

/* Adds the collected text part to req. */
static int flush_value(form *f) {
    if (!f->key[0]) return 0;
    f->value[f->value_len] = '\0';
    if (json_object_get(f->req, f->key)) {
        f->failed = 1;
        return api_fail(f->e, 400, "invalid_field", f->key, "%s is given twice", f->key);
    }
    json_t *v = strlen(f->value) == f->value_len ? api_generate_form_value(f->key, f->value) : NULL;
    if (!v || json_object_set_new(f->req, f->key, v)) {
        f->failed = 1;
        return api_fail(f->e, 400, "invalid_field", f->key, "%s is not UTF-8 text", f->key);
    }
    f->key[0] = '\0', f->value_len = 0;
    return 0;
}

static enum MHD_Result on_part(void *cls, enum MHD_ValueKind kind, const char *key,
                               const char *filename, const char *content_type,
                               const char *transfer_encoding, const char *data, uint64_t off,
                               size_t size) {
    (void)kind, (void)filename, (void)content_type, (void)transfer_encoding;
    form *f = cls;
    if (f->failed) return MHD_NO;
    if (!key) { /* a part whose Content-Disposition names no field */
        f->failed = 1;
        api_fail(f->e, 400, "invalid_body", NULL, "a multipart part has no name");
        return MHD_NO;
    }
    for (int k = 0; k < FORM_FILES; k++) {
        if (strcmp(key, file_parts[k]) != 0) continue;
        if (off == 0 && f->have_file[k]) {
            f->failed = 1;
            api_fail(f->e, 400, "invalid_field", file_parts[k], "%s is given twice", file_parts[k]);
            return MHD_NO;
        }
        f->have_file[k] = 1;
        unsigned char *grown = realloc(f->file[k], f->file_len[k] + size + 1);
        if (!grown) {
            f->failed = 1;
            api_fail(f->e, 503, "out_of_memory", NULL, "out of memory");
            return MHD_NO;
        }
        f->file[k] = grown;
        memcpy(f->file[k] + f->file_len[k], data, size);
        f->file_len[k] += size;
        return MHD_YES;
    }
    if (off == 0 || strcmp(key, f->key) != 0) {
        if (flush_value(f)) return MHD_NO;
        if (strlen(key) >= sizeof f->key) {
            f->failed = 1;
            api_fail(f->e, 400, "unknown_field", NULL, "a part name is too long");
            return MHD_NO;
        }
        strcpy(f->key, key);
    }
    if (f->value_len + size > FORM_VALUE_MAX) {
        f->failed = 1;
        api_fail(f->e, 400, "too_long", key, "%s is over %d bytes", key, FORM_VALUE_MAX);
        return MHD_NO;
    }
    memcpy(f->value + f->value_len, data, size);
    f->value_len += size;
    return MHD_YES;
}

int http_form_parse(struct MHD_Connection *c, const char *body, size_t len, json_t **req,
                    unsigned char **image, size_t *image_len, api_error *e) {
    *req = NULL, *image = NULL, *image_len = 0;
    form *f = calloc(1, sizeof *f);
    if (!f) return api_fail(e, 503, "out_of_memory", NULL, "out of memory");
    f->e = e;
    f->req = json_object();
    struct MHD_PostProcessor *pp =
        f->req ? MHD_create_post_processor(c, FORM_PP_BUFFER, on_part, f) : NULL;
    int rc = 0;
    if (!pp)
        rc = api_fail(e, 400, "invalid_body", NULL,
                      "multipart/form-data without a usable boundary parameter");
    else if (MHD_post_process(pp, body, len) != MHD_YES || f->failed)
        rc = f->failed ? CNET_EINVAL
                       : api_fail(e, 400, "invalid_body", NULL, "malformed multipart body");
    if (pp && MHD_destroy_post_processor(pp) != MHD_YES && !rc)
        rc = api_fail(e, 400, "invalid_body", NULL, "the multipart body ends early");
    if (!rc) rc = flush_value(f);
    for (int k = FORM_IMAGE + 1; k < FORM_FILES && !rc; k++) {
        if (!f->have_file[k]) continue;
        char *b64 = api_base64_encode(f->file[k], f->file_len[k]);
        if (!b64 || json_object_set_new(f->req, file_parts[k], json_string(b64)))
            rc = api_fail(e, 503, "out_of_memory", NULL, "out of memory");
        free(b64);
    }
    if (!rc) {
        *req = f->req, *image = f->file[FORM_IMAGE], *image_len = f->file_len[FORM_IMAGE];
        f->req = NULL, f->file[FORM_IMAGE] = NULL;
    }
    json_decref(f->req);
    for (int k = 0; k < FORM_FILES; k++) free(f->file[k]);
    free(f);
    return rc;
}
