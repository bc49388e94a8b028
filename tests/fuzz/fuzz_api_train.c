/* libFuzzer target: a training job's JSON body from the route to the
 * trainer's options: strict parsing (api/api_json.c), the train field
 * table's validation into a spec (api/api_train.c), the spec stored as text
 * and read back as the job runner reads it, then turned into train_options
 * through the trainer's option table (server/workers/runner_train.c's
 * runner_train_options, engine/train/train_options_names.c). A spec the API
 * accepts must become options: the two tables must agree. hf:// references are left at the spec
 * (the runner would download them). Corpus: tests/fuzz/corpus/api_train, dictionary api.dict. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

#include "api/api.h"
#include "api/hub_ref.h"
#include "engine/train/trainer.h"
#include "server/workers/runner.h"
#include "server/workers/runner_train.h"
#include "tests/fuzz/lib_fuzz.h"

static int is_hub(const json_t *spec, const char *key) {
    const char *s = json_string_value(json_object_get(spec, key));
    return s && hub_ref_is_hub(s);
}

static void to_options(const json_t *stored) {
    static runner_train_paths paths;
    static train_options o;
    cnet_error err = {0};
    const runner_config cfg = {.models_dir = fuzz_models_dir(),
                               .jobs_dir = fuzz_jobs_dir(),
                               .datasets_dir = fuzz_datasets_dir()};
    const pool_job job = {.id = "j_fuzz", .kind = "train", .dir = fuzz_jobs_dir(), .attempt = 1};
    runner_job x = {.cfg = &cfg, .job = &job, .err = &err};
    if (runner_train_options(&x, stored, &paths, &o)) {
        fprintf(stderr, "fuzz: a spec the API accepted is refused by the trainer: %s\n", err.msg);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > API_JSON_BODY_MAX) return 0; /* the route answers 413 first */
    json_t *req = NULL, *spec = NULL;
    api_error e = {0};
    const api_roots roots = {.models_dir = fuzz_models_dir(),
                             .datasets_dir = fuzz_datasets_dir(),
                             .jobs_dir = fuzz_jobs_dir()};
    char hash[65];
    if (api_parse_body((const char *)data, size, &req, &e) == 0 && api_hash_json(req, hash) == 0 &&
        api_train_spec(req, &roots, &spec, &e) == 0 &&
        !is_hub(spec, "pretrained_model_name_or_path") &&
        !is_hub(spec, "controlnet_model_name_or_path")) {
        char *text = json_dumps(spec, JSON_COMPACT);
        json_t *stored = text ? json_loads(text, 0, NULL) : NULL;
        if (!stored) abort();
        to_options(stored);
        json_decref(stored);
        free(text);
    }
    json_decref(spec);
    json_decref(req);
    return 0;
}
