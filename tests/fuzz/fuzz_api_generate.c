/* libFuzzer target: a generate request's JSON body as the route reads it
 * (server/http/http_generate.c's read_request): strict parsing
 * (api/api_json.c), the base64 control image (api_base64_decode), the field
 * table's validation into a spec (api/api_generate.c), the Idempotency-Key
 * hash, then the spec resolved into the executor's request
 * (server/workers/gen_spec.c, models under the fuzz roots, the Hub cache
 * only) and its PNG "parameters" text (engine/pipeline/generate_infotext.c).
 * A spec the validator accepts must resolve or fail with an error, never
 * crash. Corpus: tests/fuzz/corpus/api_generate, dictionary api.dict. */
#include <jansson.h>
#include <stdlib.h>

#include "api/api.h"
#include "server/workers/gen_spec.h"
#include "tests/fuzz/lib_fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > API_GENERATE_BODY_MAX) return 0; /* the route answers 413 first */
    json_t *req = NULL, *spec = NULL;
    unsigned char *image = NULL;
    size_t image_len = 0;
    api_error e = {0};
    const api_roots roots = {.models_dir = fuzz_models_dir(), .jobs_dir = fuzz_jobs_dir()};
    int rc = api_parse_body((const char *)data, size, &req, &e);
    const json_t *img = rc ? NULL : json_object_get(req, "image");
    if (!rc && json_is_string(img))
        rc = api_base64_decode(json_string_value(img), json_string_length(img), "image", &image,
                               &image_len, &e);
    char hash[65];
    if (!rc && api_hash_json(req, hash)) abort();
    if (!rc && api_generate_spec(req, &roots, &spec, &e) == 0) {
        gen_spec *gs = malloc(sizeof *gs);
        cnet_error err = {0};
        if (!gs) abort();
        if (gen_spec_resolve(gs, spec, fuzz_models_dir(), fuzz_jobs_dir(), &err) == 0) {
            const generate_result res = {.n = 1, .width = gs->req.width, .height = gs->req.height};
            free(gen_spec_parameters(gs, &res, 0));
        }
        free(gs);
    }
    json_decref(spec);
    json_decref(req);
    free(image);
    return 0;
}
