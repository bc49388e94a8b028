/* Backend-independent helpers of the table in backend.h: freeing, and the
 * compute precision (--mixed_precision) with its name table. */
#include "engine/core/backend.h"

#include <stdio.h>
#include <string.h>

void cnet_backend_free(cnet_backend *be) {
    if (be->destroy) be->destroy(be);
    memset(be, 0, sizeof *be);
}

static const char *const precision_names[CNET_PREC_COUNT] = {"no", "fp16", "bf16"};

const char *cnet_precision_name(cnet_precision p) {
    return (unsigned)p < CNET_PREC_COUNT ? precision_names[p] : "?";
}

int cnet_precision_parse(const char *name, cnet_precision *out, cnet_error *err) {
    for (int i = 0; name && i < CNET_PREC_COUNT; i++)
        if (strcmp(name, precision_names[i]) == 0) {
            *out = (cnet_precision)i;
            return 0;
        }
    return cnet_fail(err, CNET_EINVAL, "--mixed_precision '%s': expected no, fp16 or bf16",
                     name ? name : "(null)");
}

cnet_precision cnet_backend_set_precision(cnet_backend *be, cnet_precision p, char *note,
                                          size_t note_cap) {
    const cnet_precision prev = be->precision;
    if (note && note_cap) note[0] = '\0';
    /* CUDA has every 16-bit math; another backend says what it has. */
    const int cuda = be->name && strcmp(be->name, "cuda") == 0;
    if (p != CNET_PREC_F32 && !cuda && !(be->computes_at && be->computes_at(be, p))) {
        if (note && note_cap)
            snprintf(note, note_cap,
                     "%s backend computes in float32; --mixed_precision %s applies on cuda%s",
                     be->name ? be->name : "this", cnet_precision_name(p),
                     p == CNET_PREC_BF16 ? " and on a cpu with AVX512-BF16" : "");
        p = CNET_PREC_F32;
    }
    be->precision = (unsigned)p < CNET_PREC_COUNT ? p : CNET_PREC_F32;
    return prev;
}

cnet_dtype cnet_precision_dtype(cnet_precision p) {
    return p == CNET_PREC_BF16 ? CNET_BF16 : p == CNET_PREC_F16 ? CNET_F16 : CNET_F32;
}
