/* The REST contract without a socket: the api/ validators and renderers
 * called directly, and the option tables held against what else claims to
 * know them.
 *
 *   - every field of the generate and train tables: its limits just inside
 *     and just outside, a value of the wrong type, its default filled in,
 *     and each error's status, code and field naming it (table-driven, over
 *     the exported tables), plus unknown members, missing required ones and
 *     CLI-only options (unknown to the API);
 *   - hand-written expectations that do not come from the table (the exact
 *     message of a range error, the HTTP cap on width, the scheduler list);
 *   - the command line reads the same table: every numeric field accepts
 *     and refuses the same values through server/cli/cli_args.h, except the
 *     named per-request cap (api_hi);
 *   - api/openapi.yaml (the embedded copy the server serves) against the
 *     tables: every field's name, type, default, minimum/maximum (exclusive
 *     or not), multipleOf, enum and required, no field missing on either
 *     side;
 *   - the tables against the engine: scheduler and preprocessor names
 *     (engine/sched, engine/pipeline/generate.h), precision names
 *     (engine/core/backend.h), train defaults (train_options_defaults);
 *   - the renderers: api_job_json, api_error_json, api_time, base64, the
 *     strict body parser and the canonical hash. */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "api/api_fields.h"
#include "engine/pipeline/generate.h"
#include "engine/sched/scheduler.h"
#include "engine/train/trainer.h"
#include "server/cli/cli_args.h"
#include "server/workers/gen_spec.h"
#include "tests/lib/harness.h"
#include "tests/lib/lib_fs.h"

#define DATASET_ID "d_0123456789abcdef0123456789abcdef"

static char tmp[PATH_MAX], models[PATH_MAX + 16], datasets[PATH_MAX + 16], jobs[PATH_MAX + 16];
static api_roots roots;

static int setup(void) {
    if (tmpdir_make(tmp, sizeof tmp, "cnet-contract")) return -1;
    snprintf(models, sizeof models, "%s/models", tmp);
    snprintf(datasets, sizeof datasets, "%s/datasets", tmp);
    snprintf(jobs, sizeof jobs, "%s/jobs", tmp);
    roots = (api_roots){.models_dir = models, .datasets_dir = datasets, .jobs_dir = jobs};
    return file_touch_json(models, "base", "model_index.json") ||
           file_touch_json(models, "cn", "config.json") ||
           file_touch_json(datasets, DATASET_ID, "report.json");
}

/* --- the tables, one request at a time ---------------------------------- */

typedef int (*spec_fn)(const json_t *req, const api_roots *r, json_t **spec, api_error *e);

typedef struct table {
    const char *name;
    const api_field *fields;
    int n;
    spec_fn check;
    const char *base; /* a valid request of the required members only */
} table;

static const table tables[] = {
    {"generate", api_generate_fields, 0, api_generate_spec,
     "{\"model\": \"base\", \"prompt\": \"a red circle\"}"},
    {"train", api_train_fields, 0, api_train_spec,
     "{\"pretrained_model_name_or_path\": \"base\", \"dataset\": \"" DATASET_ID "\"}"},
};

static int table_n(const table *t) {
    return t->fields == api_generate_fields ? api_generate_n_fields : api_train_n_fields;
}

/* The base request with member name set to v (stolen). */
static json_t *with(const table *t, const char *name, json_t *v) {
    json_t *req = json_loads(t->base, 0, NULL);
    if (name) json_object_set_new(req, name, v);
    if (name && !strcmp(name, "validation_image")) /* images come with prompts */
        json_object_set_new(req, "validation_prompt", json_pack("[s]", "a red circle"));
    if (name && !strcmp(name, "dataset_config_name")) /* a config is a Hub dataset's */
        json_object_set_new(req, "dataset", json_string("hf://datasets/ns/data"));
    return req;
}

/* Validates req (stolen): 0 ok (spec returned), else the api_error. */
static int run_check(const table *t, json_t *req, json_t **spec, api_error *e) {
    memset(e, 0, sizeof *e);
    json_t *out = NULL;
    int rc = t->check(req, &roots, &out, e);
    json_decref(req);
    if (spec)
        *spec = out;
    else
        json_decref(out);
    return rc;
}

static int accepts(const table *t, const char *name, json_t *v) {
    api_error e;
    int rc = run_check(t, with(t, name, v), NULL, &e);
    if (rc) printf("    %s %s: refused: %s\n", t->name, name, e.message);
    return rc == 0;
}

/* Refused with 400, code, the field named in e.field and in the message. */
static int refuses(const table *t, const char *name, json_t *v, const char *code,
                   const char *field) {
    api_error e;
    int rc = run_check(t, with(t, name, v), NULL, &e);
    if (!rc || e.status != 400 || strcmp(e.code, code) || strcmp(e.field, field) ||
        !strstr(e.message, field)) {
        printf("    %s %s: want 400 %s naming %s, got rc %d %d %s '%s' '%s'\n", t->name, name, code,
               field, rc, e.status, e.code, e.field, e.message);
        return 0;
    }
    return 1;
}

/* A value of the right type that the field accepts (references that exist). */
static json_t *good_value(const api_field *f) {
    switch (f->type) {
    case AF_INT:
    case AF_NUM:
        return json_integer((json_int_t)ceil(f->lo + ((f->flags & AF_LO_OPEN) ? 1 : 0)));
    case AF_BOOL:
        return json_true();
    case AF_ENUM:
        return json_string(f->choices[0]);
    case AF_MODEL:
        return json_string("base");
    case AF_CONTROLNET:
        return json_string("cn");
    case AF_DATASET:
        return json_string(DATASET_ID);
    case AF_TEXT:
    case AF_BASE64:
        return json_string("x");
    case AF_PROMPTS:
    case AF_PATHS:
        return json_pack("[s]", "a/b.png");
    case AF_HUB:
        return json_pack("{s:s}", "repo_id", "me/net");
    case AF_SIZE:
        return json_pack("[i, i]", (int)f->lo, (int)f->hi);
    case AF_CONTROLNETS:
        return json_pack("[{s:s}]", "controlnet", "cn");
    }
    return NULL;
}

/* A value of a type the field never takes. */
static json_t *wrong_type(const api_field *f) {
    switch (f->type) {
    case AF_INT:
    case AF_NUM:
    case AF_BOOL:
        return json_string("7");
    case AF_PROMPTS:
    case AF_PATHS:
    case AF_CONTROLNETS:
        return json_string("a");
    default:
        return json_integer(7);
    }
}

static void test_fields_limits_types_defaults(void) {
    int ok = 1, checked = 0;
    for (size_t k = 0; k < sizeof tables / sizeof tables[0]; k++) {
        const table *t = &tables[k];
        for (int i = 0; i < table_n(t); i++) {
            const api_field *f = &t->fields[i];
            const char *n = f->name;
            if (f->flags & AF_CLI_ONLY) { /* unknown to the API, unless the command
                                             line's spelling of an API member */
                if (api_field_find(t->fields, table_n(t), n) == f)
                    ok &= refuses(t, n, good_value(f), "unknown_field", n);
                continue;
            }
            checked++;
            ok &= accepts(t, n, good_value(f));
            ok &= refuses(t, n, wrong_type(f), "invalid_field", n);
            if (f->type == AF_INT || f->type == AF_NUM) {
                const double hi = api_field_api_hi(f);
                const double step = f->type == AF_INT ? (f->multiple_of ? f->multiple_of : 1)
                                                      : fmax(1e-9, fabs(hi) * 1e-9);
                const double lo_in = (f->flags & AF_LO_OPEN) ? f->lo + step : f->lo;
                const double hi_in = (f->flags & AF_HI_OPEN) ? hi - step : hi;
                const double lo_out = (f->flags & AF_LO_OPEN) ? f->lo : f->lo - step;
                const double hi_out = (f->flags & AF_HI_OPEN) ? hi : hi + step;
                json_t *(*mk)(double) = NULL;
                if (f->type == AF_NUM) mk = json_real;
#define NUM(x) (mk ? mk(x) : json_integer((json_int_t)(x)))
                ok &= accepts(t, n, NUM(lo_in));
                ok &= refuses(t, n, NUM(lo_out), "out_of_range", n);
                if (hi < 0x1p63) { /* the seeds' 2^63-1: json_int_t's end, by hand below */
                    ok &= accepts(t, n, NUM(hi_in));
                    ok &= refuses(t, n, NUM(hi_out), "out_of_range", n);
                }
                if (f->multiple_of) ok &= refuses(t, n, NUM(lo_in + 1), "out_of_range", n);
                if (f->type == AF_INT)
                    ok &= refuses(t, n, json_real(lo_in + 0.5), "invalid_field", n);
#undef NUM
            }
            if (f->type == AF_ENUM) {
                for (int c = 0; f->choices[c]; c++) ok &= accepts(t, n, json_string(f->choices[c]));
                ok &= refuses(t, n, json_string("no-such-choice"), "invalid_field", n);
            }
            if (f->type == AF_TEXT) {
                char *big = calloc(API_PROMPT_MAX + 2, 1);
                memset(big, 'a', API_PROMPT_MAX);
                ok &= accepts(t, n, json_string(big));
                big[API_PROMPT_MAX] = 'a';
                ok &= refuses(t, n, json_string(big), "too_long", n);
                free(big);
            }
            if (f->flags & AF_TEXT_LIST) { /* with a prompt list of the same length */
                json_t *req = with(t, n, json_pack("[s]", "a"));
                json_object_set_new(req, "prompt", json_pack("[s]", "a"));
                api_error le;
                ok &= run_check(t, req, NULL, &le) == 0;
                char item[64];
                snprintf(item, sizeof item, "%s[1]", n);
                ok &= refuses(t, n, json_pack("[s, i]", "a", 3), "invalid_field", item);
                json_t *many = json_array();
                for (int j = 0; j <= API_PROMPTS_MAX; j++)
                    json_array_append_new(many, json_string("a"));
                ok &= refuses(t, n, many, "out_of_range", n);
                ok &= refuses(t, n, json_array(), "out_of_range", n);
            }
            if (f->type == AF_SIZE) {
                ok &= accepts(t, n, json_pack("[i, i]", (int)f->hi, (int)f->lo));
                ok &= refuses(t, n, json_pack("[i]", (int)f->lo), "invalid_field", n);
                ok &= refuses(t, n, json_pack("[f, i]", 1.5, (int)f->lo), "invalid_field", n);
                ok &= refuses(t, n, json_pack("[i, i]", (int)f->lo - 1, (int)f->lo), "out_of_range",
                              n);
                ok &= refuses(t, n, json_pack("[i, i]", (int)f->lo, (int)f->hi + 1), "out_of_range",
                              n);
            }
            if (f->type == AF_MODEL || f->type == AF_CONTROLNET || f->type == AF_DATASET)
                ok &= refuses(t, n, json_string("../etc"), "invalid_reference", n);
            if (f->type == AF_CONTROLNETS) {
                json_t *many = json_array();
                for (int j = 0; j <= (int)f->hi; j++) json_array_append_new(many, json_object());
                ok &= refuses(t, n, many, "out_of_range", n);
                ok &= refuses(t, n, json_array(), "out_of_range", n);
            }
            if (f->type == AF_PROMPTS || f->type == AF_PATHS) {
                json_t *many = json_array();
                for (int j = 0; j <= API_PROMPTS_MAX; j++)
                    json_array_append_new(many, json_string("a"));
                ok &= refuses(t, n, many, "out_of_range", n);
                ok &= refuses(t, n, json_array(), "out_of_range", n);
            }
            /* required: missing is refused; else the default (or nothing) is filled in */
            json_t *req = json_loads(t->base, 0, NULL), *spec = NULL;
            api_error e;
            if (f->flags & AF_REQUIRED) {
                json_object_del(req, n);
                int rc = run_check(t, req, NULL, &e);
                EXPECT(rc && e.status == 400 && !strcmp(e.code, "missing_field") &&
                           !strcmp(e.field, n),
                       "%s: missing %s: %s %s", t->name, n, e.code, e.field);
                continue;
            }
            CHECK(run_check(t, req, &spec, &e) == 0, "%s base request: %s", t->name, e.message);
            json_t *got = json_object_get(spec, n),
                   *want = f->def ? json_loads(f->def, JSON_DECODE_ANY, NULL) : NULL;
            if (!strcmp(n, "async")) want = NULL; /* taken out of the spec: the route's */
            EXPECT(want ? got && json_equal(got, want) : !got, "%s: %s default: got %s, want %s",
                   t->name, n, got ? json_dumps(got, JSON_ENCODE_ANY) : "(absent)",
                   f->def ? f->def : "(absent)");
            ok &= want ? got && json_equal(got, want) : !got;
            json_decref(want);
            json_decref(spec);
        }
        ok &= refuses(t, "bogus", json_integer(1), "unknown_field", "bogus");
    }
    CHECK(ok, "a field did not behave as its table says (above)");
    CHECK(checked > 40, "only %d API fields checked", checked);
}

/* Written out by hand, not derived from the table. */
static void test_hand_written_expectations(void) {
    const table *g = &tables[0], *tr = &tables[1];
    api_error e;
    CHECK(run_check(g, with(g, "steps", json_integer(0)), NULL, &e) != 0, "steps 0 accepted");
    CHECK(!strcmp(e.message, "steps must be in [1, 1000], got 0"), "message: %s", e.message);
    /* the HTTP cap on the output size is 1024; the command line goes on */
    CHECK(refuses(g, "width", json_integer(1032), "out_of_range", "width"), "width 1032");
    CHECK(accepts(g, "height", json_integer(1024)), "height 1024");
    CHECK(accepts(g, "scheduler", json_string("ddpm")), "ddpm");
    /* one HTTP request makes at most 4 images; the command line 16 (below) */
    CHECK(accepts(g, "num_images", json_integer(4)), "4 images");
    CHECK(refuses(g, "num_images", json_integer(5), "out_of_range", "num_images"), "5 images");
    CHECK(accepts(g, "scale", json_real(-1.5)), "a negative conditioning scale");
    CHECK(refuses(g, "scale", json_real(-5.5), "out_of_range", "scale"), "scale -5.5");
    for (const table *t = g; t <= tr; t++) { /* seeds: every JSON integer from 0 */
        CHECK(accepts(t, "seed", json_integer(INT64_MAX)), "%s: seed 2^63-1", t->name);
        CHECK(accepts(t, "seed", json_integer(4294967296LL)), "%s: seed 2^32", t->name);
        CHECK(refuses(t, "seed", json_integer(-1), "out_of_range", "seed"), "%s: seed -1", t->name);
    }
    CHECK(refuses(g, "clip_skip", json_integer(65), "out_of_range", "clip_skip"), "clip_skip 65");
    CHECK(refuses(g, "out", json_string("x.png"), "unknown_field", "out"), "--out is the CLI's");
    CHECK(refuses(tr, "output_dir", json_string("/tmp"), "unknown_field", "output_dir"),
          "output_dir is the CLI's");
    CHECK(refuses(tr, "learning_rate", json_real(0), "out_of_range", "learning_rate"),
          "learning_rate 0 (open below)");
    CHECK(refuses(tr, "adam_beta1", json_real(1), "out_of_range", "adam_beta1"),
          "adam_beta1 1 (open above)");
    CHECK(refuses(tr, "gradient_accumulation_steps", json_integer(65), "out_of_range",
                  "gradient_accumulation_steps"),
          "accumulation 65 (the trainer's limit)");
    json_t *req = with(g, "control_guidance_start", json_real(0.9));
    json_object_set_new(req, "control_guidance_end", json_real(0.5));
    CHECK(run_check(g, req, NULL, &e) && !strcmp(e.field, "control_guidance_start"),
          "start after end: %s", e.field);
    /* prompt lists: a negative list as long, images within the request's 4 */
    req = with(g, "prompt", json_pack("[s, s]", "a", "b"));
    json_object_set_new(req, "negative_prompt", json_pack("[s]", "n"));
    CHECK(run_check(g, req, NULL, &e) && !strcmp(e.field, "negative_prompt"),
          "2 prompts, 1 negative: %s", e.field);
    req = with(g, "prompt", json_pack("[s, s, s]", "a", "b", "c"));
    json_object_set_new(req, "num_images", json_integer(2));
    CHECK(run_check(g, req, NULL, &e) && e.status == 400 && !strcmp(e.field, "prompt"),
          "3 prompts x 2 images: %s", e.field);
    req = with(g, "prompt", json_pack("[s, s]", "a", "b"));
    json_object_set_new(req, "num_images", json_integer(2));
    json_object_set_new(req, "negative_prompt", json_string("n"));
    CHECK(run_check(g, req, NULL, &e) == 0, "2 prompts x 2 images, one negative: %s", e.message);
    req = with(g, "prompt", json_pack("[s]", "a"));
    json_object_set_new(req, "prompt_2", json_string("b"));
    CHECK(run_check(g, req, NULL, &e) && !strcmp(e.field, "prompt_2"), "prompt_2 with a list");
    req = with(tr, NULL, NULL); /* images without prompts */
    json_object_set_new(req, "validation_image", json_pack("[s, s]", "a.png", "b.png"));
    CHECK(run_check(tr, req, NULL, &e) && !strcmp(e.field, "validation_prompt"),
          "images without prompts: %s", e.field);
    req = with(tr, "push_to_hub", json_pack("{s:s, s:i}", "repo_id", "me/net", "x", 1));
    CHECK(run_check(tr, req, NULL, &e) && !strcmp(e.code, "unknown_field") &&
              !strcmp(e.field, "push_to_hub.x"),
          "push_to_hub.x: %s %s", e.code, e.field);
    req = with(tr, "push_to_hub", json_pack("{s:s}", "repo_id", "not-a-repo"));
    CHECK(run_check(tr, req, NULL, &e) && !strcmp(e.field, "push_to_hub.repo_id"),
          "bad repo id: %s", e.field);
    req = with(tr, "validation_prompt", json_pack("[s, i]", "a", 3));
    CHECK(run_check(tr, req, NULL, &e) && !strcmp(e.field, "validation_prompt[1]"),
          "prompt 1 not a string: %s", e.field);
    req = with(tr, "controlnet_model_name_or_path",
               json_string("j_0123456789abcdef0123456789abcdef"));
    CHECK(run_check(tr, req, NULL, &e) && !strcmp(e.code, "not_found"),
          "unfinished job as ControlNet: %s", e.code);
}

/* The CLI reads the same limits: each numeric field's edges through cli_args. */
static void test_cli_follows_the_table(void) {
    int ok = 1;
    char text[64];
    for (size_t k = 0; k < sizeof tables / sizeof tables[0]; k++) {
        const table *t = &tables[k];
        for (int i = 0; i < table_n(t); i++) {
            const api_field *f = &t->fields[i];
            if ((f->flags & AF_API_ONLY) || (f->type != AF_INT && f->type != AF_NUM)) continue;
            cnet_error err = {0};
            double d;
            long long ll;
            const double lo_out = (f->flags & AF_LO_OPEN) ? f->lo : f->lo - 1;
            const double hi_out = (f->flags & AF_HI_OPEN) ? f->hi : f->hi + 1;
            const double values[2] = {lo_out, hi_out};
            for (int v = 0; v < 2; v++) {
                snprintf(text, sizeof text, "%.17g", values[v]);
                uint64_t u;
                int rc = f->type == AF_NUM ? cli_field_double(f, "--x", text, &d, &err)
                         : f->hi >= 0x1p63 ? cli_field_u64(f, "--x", text, &u, &err)
                                           : cli_field_long(f, "--x", text, &ll, &err);
                EXPECT(rc == CNET_EINVAL && strstr(err.msg, "--x"), "%s: the CLI took %s = %s",
                       t->name, f->name, text);
                ok &= rc == CNET_EINVAL;
            }
            if (f->def) {
                int rc = f->type == AF_INT ? cli_field_long(f, "--x", NULL, &ll, &err)
                                           : cli_field_double(f, "--x", NULL, &d, &err);
                EXPECT(rc == 0, "%s: %s's default refused by the CLI: %s", t->name, f->name,
                       err.msg);
                ok &= rc == 0;
            }
        }
    }
    const api_field *w = api_field_find(api_generate_fields, api_generate_n_fields, "width");
    long long ll;
    cnet_error err = {0};
    const api_field *ni = api_field_find(api_generate_fields, api_generate_n_fields, "num_images");
    CHECK(cli_field_long(ni, "--num-images", "16", &ll, &err) == 0 && ll == 16,
          "the CLI's num_images goes past the HTTP cap: %s", err.msg);
    CHECK(cli_field_long(ni, "--num-images", "17", &ll, &err) == CNET_EINVAL, "17 images");
    const api_field *sc = api_field_find(api_generate_fields, api_generate_n_fields, "scale");
    double d;
    CHECK(cli_field_double(sc, "--scale", "-2", &d, &err) == 0 && d == -2,
          "--scale -2 (diffusers takes negative scales): %s", err.msg);
    uint64_t u;
    for (const table *t = tables; t < tables + 2; t++) { /* seeds: any uint64 */
        const api_field *s = api_field_find(t->fields, table_n(t), "seed");
        CHECK(cli_field_u64(s, "--seed", "18446744073709551615", &u, &err) == 0 && u == UINT64_MAX,
              "%s: --seed 2^64-1: %s", t->name, err.msg);
        CHECK(cli_field_u64(s, "--seed", "18446744073709551616", &u, &err) == CNET_EINVAL &&
                  strstr(err.msg, "--seed wants an integer in 0..18446744073709551615"),
              "%s: --seed 2^64: %s", t->name, err.msg);
        CHECK(cli_field_u64(s, "--seed", "-1", &u, &err) == CNET_EINVAL, "%s: --seed -1", t->name);
        CHECK(cli_field_long(s, "--seed", "9223372036854775807", &ll, &err) == 0 && ll == INT64_MAX,
              "%s: cli_field_long stops at LLONG_MAX: %s", t->name, err.msg);
    }
    CHECK(cli_field_long(w, "--width", "2048", &ll, &err) == 0 && ll == 2048,
          "the CLI's width goes past the HTTP cap: %s", err.msg);
    CHECK(cli_field_long(w, "--width", "20", &ll, &err) == CNET_EINVAL &&
              strstr(err.msg, "--width 20 is not a multiple of 8"),
          "%s", err.msg);
    const char *argv[] = {"generate", "--clip-skip=3", "--guess_mode", "--negative-prompt", "n"};
    int i = 1;
    cli_opt o;
    CHECK(cli_next(api_generate_fields, api_generate_n_fields, 5, (char **)argv, &i, &o, &err) ==
                  0 &&
              !strcmp(o.f->name, "clip_skip") && !strcmp(o.value, "3") && i == 1,
          "kebab with =: %s", err.msg);
    i = 2;
    CHECK(cli_next(api_generate_fields, api_generate_n_fields, 5, (char **)argv, &i, &o, &err) ==
                  0 &&
              !strcmp(o.f->name, "guess_mode") && i == 2,
          "snake flag: %s", err.msg);
    i = 3;
    CHECK(cli_next(api_generate_fields, api_generate_n_fields, 5, (char **)argv, &i, &o, &err) ==
                  0 &&
              !strcmp(o.f->name, "negative_prompt") && !strcmp(o.value, "n") && i == 4,
          "kebab with a value: %s", err.msg);
    /* the flags of the subcommands without a table: the same spelling rules */
    const char *v = NULL;
    CHECK(cli_flag("--max_bad_fraction=0.1", "max-bad-fraction", &v) && !strcmp(v, "0.1"),
          "snake flag, kebab name, inline value");
    CHECK(cli_flag("--queue-cap", "queue_cap", &v) && !v, "kebab flag, snake name");
    CHECK(!cli_flag("--queue-capx", "queue-cap", NULL) && !cli_flag("queue-cap", "queue-cap", NULL),
          "a longer name or no dashes is another flag");
    const char *serve[] = {"serve", "--port", "8080", "--models"};
    i = 1;
    CHECK(cli_take(4, (char **)serve, &i, "port", &v, &err) && !strcmp(v, "8080") && i == 2,
          "--port 8080");
    i = 3;
    CHECK(cli_take(4, (char **)serve, &i, "models", &v, &err) && !v &&
              strstr(err.msg, "--models needs a value"),
          "a flag without its value: %s", err.msg);
    /* a flag's missing value is not taken from the next flag (--x=--y still gives one) */
    const char *list[] = {"train", "--validation_prompt", "--validation_image", "a.png"};
    i = 1;
    CHECK(cli_next(api_train_fields, api_train_n_fields, 4, (char **)list, &i, &o, &err) ==
                  CNET_EINVAL &&
              strstr(err.msg, "--validation_prompt needs a value") && i == 1,
          "a list flag took the next flag as its value: %s", err.msg);
    const char *dashes[] = {"generate", "--prompt=--odd", "--negative-prompt", "--x"};
    i = 1;
    CHECK(cli_next(api_generate_fields, api_generate_n_fields, 4, (char **)dashes, &i, &o, &err) ==
                  0 &&
              !strcmp(o.value, "--odd"),
          "--flag=--VALUE: %s", err.msg);
    i = 2;
    CHECK(cli_next(api_generate_fields, api_generate_n_fields, 4, (char **)dashes, &i, &o, &err) ==
                  CNET_EINVAL &&
              strstr(err.msg, "--negative-prompt needs a value"),
          "--negative-prompt --x: %s", err.msg);
    i = 1;
    CHECK(cli_take(4, (char **)list, &i, "validation-prompt", &v, &err) && !v &&
              strstr(err.msg, "--validation_prompt needs a value"),
          "cli_take: %s", err.msg);
    /* a flag without a value (cli_flag's NULL) does not match one given a value */
    CHECK(cli_flag("--guess-mode", "guess_mode", NULL), "--guess-mode");
    CHECK(!cli_flag("--guess-mode=false", "guess_mode", NULL), "--guess-mode=false matched");
    CHECK(cli_flag("--guess-mode=false", "guess_mode", &v) && !strcmp(v, "false"),
          "with an inline value wanted");
    CHECK(cli_int("--port", "8080x", 0, 65535, &i, &err) == CNET_EINVAL &&
              !strcmp(err.msg, "--port wants an integer in 0..65535, got '8080x'"),
          "%s", err.msg);
    CHECK(ok, "the CLI and the API disagree on a limit (above)");
}

/* A validated spec becomes the executor's request with the API's cost cap
 * (server/workers/gen_spec.c): max_pixels from the width/height fields'
 * api_hi, so generate_run refuses a bigger output on the job runner's path
 * too; a negative scale and a seed above 2^32 carried through. */
static void test_spec_to_request(void) {
    json_t *req = with(&tables[0], "controlnet", json_string("cn")), *spec = NULL;
    json_object_set_new(req, "scale", json_real(-0.5));
    json_object_set_new(req, "seed", json_integer(INT64_MAX));
    api_error e;
    CHECK(run_check(&tables[0], req, &spec, &e) == 0, "%s", e.message);
    gen_spec gs;
    cnet_error err = {0};
    CHECK(gen_spec_resolve(&gs, spec, models, jobs, &err) == 0, "%s", err.msg);
    EXPECT(gs.req.max_pixels == (int64_t)API_GENERATE_SIZE_MAX * API_GENERATE_SIZE_MAX,
           "max_pixels %lld", (long long)gs.req.max_pixels);
    EXPECT(gs.req.controls[0].scale == -0.5f, "scale %g", (double)gs.req.controls[0].scale);
    EXPECT(gs.req.seed == (uint64_t)INT64_MAX, "seed %llu", (unsigned long long)gs.req.seed);
    CHECK(gs.req.max_pixels == (int64_t)API_GENERATE_SIZE_MAX * API_GENERATE_SIZE_MAX &&
              gs.req.controls[0].scale == -0.5f && gs.req.seed == (uint64_t)INT64_MAX,
          "the request (above)");
    json_decref(spec);
    req = with(&tables[0], "prompt", json_pack("[s, s]", "a", "b"));
    json_object_set_new(req, "negative_prompt", json_pack("[s, s]", "na", "nb"));
    json_object_set_new(req, "controlnet", json_string("cn"));
    CHECK(run_check(&tables[0], req, &spec, &e) == 0, "%s", e.message);
    CHECK(gen_spec_resolve(&gs, spec, models, jobs, &err) == 0, "%s", err.msg);
    EXPECT(gs.req.n_prompts == 2 && !strcmp(gs.req.prompts[1], "b") &&
               !strcmp(gs.req.negative_prompts[1], "nb"),
           "prompt list: %d", gs.req.n_prompts);
    json_decref(spec);
}

/* "controlnets": every item holds exactly the table's per-ControlNet fields,
 * each checked and defaulted as its flat twin, and the list and the flat
 * fields exclude each other; the spec resolves to one engine control each. */
static void test_controlnets_list(void) {
    const table *g = &tables[0];
    const int n = api_generate_n_fields;
    api_error e;
    json_t *spec = NULL;
    int per = 0;
    for (int i = 0; i < n; i++) {
        const api_field *f = &api_generate_fields[i];
        if (!(f->flags & AF_PER_CONTROLNET) || (f->flags & AF_CLI_ONLY)) continue;
        per++;
        /* given in an item: accepted; a wrong type: refused naming the item's member */
        char path[96];
        snprintf(path, sizeof path, "controlnets[1].%s", f->name);
        json_t *item = json_object();
        json_object_set_new(item, f->name, good_value(f));
        EXPECT(accepts(g, "controlnets", json_pack("[{}, o]", item)), "%s in an item", f->name);
        item = json_object();
        json_object_set_new(item, f->name, wrong_type(f));
        EXPECT(refuses(g, "controlnets", json_pack("[{}, o]", item), "invalid_field", path),
               "%s of the wrong type", path);
        /* flat and list together: refused naming the flat one */
        json_t *req = with(g, "controlnets", json_pack("[{}]"));
        json_object_set_new(req, f->name, good_value(f));
        EXPECT(run_check(g, req, NULL, &e) && e.status == 400 && !strcmp(e.field, f->name),
               "%s with controlnets: %s", f->name, e.field);
        /* absent from an item: its default there, as at the top level */
        CHECK(run_check(g, with(g, "controlnets", json_pack("[{}]")), &spec, &e) == 0, "%s",
              e.message);
        const json_t *got =
            json_object_get(json_array_get(json_object_get(spec, "controlnets"), 0), f->name);
        json_t *want = f->def ? json_loads(f->def, JSON_DECODE_ANY, NULL) : NULL;
        EXPECT(want ? got && json_equal(got, want) : !got, "item default of %s", f->name);
        EXPECT(!json_object_get(spec, f->name), "%s also at the top level", f->name);
        json_decref(want);
        json_decref(spec);
    }
    CHECK(per >= 6, "only %d per-ControlNet fields", per);
    CHECK(refuses(g, "controlnets", json_pack("[{s:i}]", "steps", 3), "unknown_field",
                  "controlnets[0].steps"),
          "a run-wide field in an item");
    CHECK(refuses(g, "controlnets", json_pack("[{}, i]", 3), "invalid_field", "controlnets[1]"),
          "an item that is not an object");
    CHECK(refuses(g, "controlnets",
                  json_pack("[{}, {s:f, s:f}]", "control_guidance_start", 0.8,
                            "control_guidance_end", 0.2),
                  "out_of_range", "controlnets[1].control_guidance_start"),
          "an item's start after its end");
    CHECK(refuses(g, "controlnets", json_pack("[{s:s}]", "controlnet", "../x"), "invalid_reference",
                  "controlnets[0].controlnet"),
          "an item's reference outside the models dir");
    /* two ControlNets resolve to two engine controls, in order */
    json_t *req =
        with(g, "controlnets",
             json_pack("[{s:s, s:f, s:s}, {s:s, s:f, s:f, s:f}]", "controlnet", "cn", "scale", 0.5,
                       "preprocess", "canny", "controlnet", "cn", "scale", 1.5,
                       "control_guidance_start", 0.25, "control_guidance_end", 0.75));
    CHECK(run_check(g, req, &spec, &e) == 0, "%s", e.message);
    gen_spec gs;
    cnet_error err = {0};
    CHECK(gen_spec_resolve(&gs, spec, models, jobs, &err) == 0, "%s", err.msg);
    const generate_control *c = gs.req.controls;
    EXPECT(gs.req.n_controls == 2, "%d controls", gs.req.n_controls);
    EXPECT(c[0].scale == 0.5f && c[0].pre == annotator_find("canny") && c[0].start == 0.0f &&
               c[0].end == 1.0f,
           "control 0: %g %s %g %g", (double)c[0].scale, c[0].pre->name, (double)c[0].start,
           (double)c[0].end);
    EXPECT(c[1].scale == 1.5f && c[1].pre == annotator_find("none") && c[1].start == 0.25f &&
               c[1].end == 0.75f,
           "control 1: %g %s %g %g", (double)c[1].scale, c[1].pre->name, (double)c[1].start,
           (double)c[1].end);
    char want[2 * PATH_MAX];
    snprintf(want, sizeof want, "%s/cn", models);
    EXPECT(!strcmp(c[0].dir, want) && !strcmp(c[1].dir, want), "dirs %s %s", c[0].dir, c[1].dir);
    json_decref(spec);
}

/* preprocess_model (a network annotator's weights) is a folder under the
 * models dir: refused outside it, and resolved there into the run's
 * annotator arguments. */
static void test_preprocess_model(void) {
    const table *g = &tables[0];
    CHECK(refuses(g, "preprocess_model", json_string("../x"), "invalid_reference",
                  "preprocess_model"),
          "a reference outside the models dir");
    CHECK(refuses(g, "preprocess_model", json_string("nothing_here"), "not_found",
                  "preprocess_model"),
          "a folder without config.json");
    json_t *req = with(g, "controlnet", json_string("cn")), *spec = NULL;
    json_object_set_new(req, "preprocess", json_string("depth"));
    json_object_set_new(req, "preprocess_model", json_string("cn"));
    api_error e;
    CHECK(run_check(g, req, &spec, &e) == 0, "%s", e.message);
    gen_spec gs;
    cnet_error err = {0};
    char want[PATH_MAX + 32];
    snprintf(want, sizeof want, "%s/cn", models);
    const int rc = gen_spec_resolve(&gs, spec, models, jobs, &err);
    json_decref(spec);
    CHECK(rc == 0, "%s", err.msg);
    CHECK(gs.req.controls[0].pre_args.model_dir &&
              !strcmp(gs.req.controls[0].pre_args.model_dir, want),
          "model_dir %s", gs.req.controls[0].pre_args.model_dir);
}

/* A request's preprocessor and its parameters through the spec into the
 * run: threshold_a/b within the annotator's own range (400 naming the
 * field), canny's two spellings (one at a time), processor_res. */
static void test_spec_preprocessor(void) {
    const table *g = &tables[0];
    json_t *req = with(g, "preprocess", json_string("threshold"));
    json_object_set_new(req, "threshold_a", json_integer(300));
    api_error e;
    CHECK(run_check(g, req, NULL, &e) && e.status == 400 && !strcmp(e.code, "out_of_range") &&
              !strcmp(e.field, "threshold_a") && strstr(e.message, "[0, 255]"),
          "threshold 300: %d %s %s: %s", e.status, e.code, e.field, e.message);
    req = with(g, "preprocess", json_string("canny"));
    json_object_set_new(req, "threshold_a", json_integer(50));
    json_object_set_new(req, "canny_low_threshold", json_integer(60));
    CHECK(run_check(g, req, NULL, &e) && e.status == 400 && !strcmp(e.field, "threshold_a") &&
              strstr(e.message, "canny_low_threshold"),
          "both spellings: %d %s: %s", e.status, e.field, e.message);
    req = with(g, "preprocess", json_string("scribble_xdog"));
    json_object_set_new(req, "threshold_a", json_integer(0));
    CHECK(run_check(g, req, NULL, &e) && !strcmp(e.field, "threshold_a"),
          "xdog threshold 0 is under its 1: %s", e.message);
    req = with(g, "preprocess", json_string("canny"));
    json_object_set_new(req, "controlnet", json_string("cn"));
    json_object_set_new(req, "canny_low_threshold", json_integer(60));
    json_object_set_new(req, "threshold_b", json_integer(120));
    json_object_set_new(req, "processor_res", json_integer(256));
    json_t *spec = NULL;
    CHECK(run_check(g, req, &spec, &e) == 0, "%s", e.message);
    gen_spec gs;
    cnet_error err = {0};
    CHECK(gen_spec_resolve(&gs, spec, models, jobs, &err) == 0, "%s", err.msg);
    const generate_control *c = &gs.req.controls[0];
    EXPECT(c->pre == annotator_find("canny") && c->pre_args.value[0] == 60 &&
               c->pre_args.value[1] == 120 && c->pre_args.processor_res == 256,
           "canny %g %g res %d", c->pre_args.value[0], c->pre_args.value[1],
           c->pre_args.processor_res);
    json_decref(spec);
    /* a job spec stored before threshold_a/b existed: canny's own members */
    spec = json_pack("{s:s, s:s, s:s, s:s, s:f, s:f}", "model", "base", "controlnet", "cn",
                     "prompt", "p", "preprocess", "canny", "canny_low_threshold", 70.0,
                     "canny_high_threshold", 140.0);
    CHECK(gen_spec_resolve(&gs, spec, models, jobs, &err) == 0, "%s", err.msg);
    EXPECT(gs.req.controls[0].pre_args.value[0] == 70 &&
               gs.req.controls[0].pre_args.value[1] == 140,
           "an older canny spec: %g %g", gs.req.controls[0].pre_args.value[0],
           gs.req.controls[0].pre_args.value[1]);
    json_decref(spec);
    req = with(g, "preprocess", json_string("lineart_standard (from white bg & black line)"));
    CHECK(run_check(g, req, NULL, &e) && !strcmp(e.field, "preprocess"),
          "the API takes cnet's names only: %s", e.message);
    req = with(g, "preprocess", json_string("invert"));
    json_object_set_new(req, "controlnet", json_string("cn"));
    json_object_set_new(req, "threshold_a", json_integer(5));
    CHECK(run_check(g, req, &spec, &e) == 0, "invert ignores threshold_a: %s", e.message);
    CHECK(gen_spec_resolve(&gs, spec, models, jobs, &err) == 0, "%s", err.msg);
    EXPECT(gs.req.controls[0].pre == annotator_find("invert") &&
               !json_object_get(spec, "threshold_b"),
           "invert");
    json_decref(spec);
}

/* --- openapi.yaml against the tables ------------------------------------- */

/* The members of one flow or block map of a field, as text. */
typedef struct yfield {
    char name[64];
    char keys[16][24];
    char vals[16][512];
    int n;
} yfield;

static const char *yget(const yfield *y, const char *key) {
    for (int i = 0; i < y->n; i++)
        if (!strcmp(y->keys[i], key)) return y->vals[i];
    return NULL;
}

static void trim(char *s) {
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\n')) s[--n] = '\0';
    size_t k = strspn(s, " ");
    memmove(s, s + k, strlen(s + k) + 1);
}

static void yadd(yfield *y, const char *k, size_t kn, const char *v, size_t vn) {
    if (y->n == 16) return;
    snprintf(y->keys[y->n], sizeof y->keys[0], "%.*s", (int)kn, k);
    snprintf(y->vals[y->n], sizeof y->vals[0], "%.*s", (int)vn, v);
    trim(y->keys[y->n]);
    trim(y->vals[y->n]);
    y->n++;
}

/* "{a: 1, b: [x, y], c: 'p, q'}" → members. */
static void parse_flow(yfield *y, const char *s) {
    const char *p = s + 1, *start = p;
    int depth = 0;
    char quote = 0;
    for (; *p; p++) {
        if (quote) {
            if (*p == quote && p[1] == quote)
                p++;
            else if (*p == quote)
                quote = 0;
        } else if (*p == '\'' || *p == '"') {
            quote = *p;
        } else if (*p == '[' || *p == '{') {
            depth++;
        } else if ((*p == ']' || *p == '}') && depth) {
            depth--;
        } else if ((*p == ',' || *p == '}') && !depth) {
            const char *colon = memchr(start, ':', (size_t)(p - start));
            if (colon) yadd(y, start, (size_t)(colon - start), colon + 1, (size_t)(p - colon - 1));
            start = p + 1;
            if (*p == '}') return;
        }
    }
}

/* The properties of schema `schema` (and its required list) in the YAML. */
static int yaml_schema(const char *yaml, const char *schema, const char *props_indent, yfield *out,
                       int max, char *required, size_t req_cap) {
    char head[80];
    snprintf(head, sizeof head, "\n    %s:\n", schema);
    const char *p = strstr(yaml, head);
    if (!p) return -1;
    p += strlen(head);
    int n = 0;
    required[0] = '\0';
    const size_t ind = strlen(props_indent);
    yfield *cur = NULL;
    while (*p) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        char line[1024];
        snprintf(line, sizeof line, "%.*s", (int)len, p);
        size_t lead = strspn(line, " ");
        if (len && lead <= 4) break; /* the next schema */
        char *req = strstr(line, "required: [");
        if (req && lead < ind)
            snprintf(required + strlen(required), req_cap - strlen(required), "%s,", req + 11);
        if (lead == ind && line[lead] != '-' && n < max) {
            cur = &out[n++];
            memset(cur, 0, sizeof *cur);
            char *colon = strchr(line + lead, ':');
            snprintf(cur->name, sizeof cur->name, "%.*s", (int)(colon - line - lead), line + lead);
            char *rest = colon + 1;
            trim(rest);
            if (*rest == '{') parse_flow(cur, rest);
        } else if (cur && lead == ind + 2) {
            char *colon = strchr(line + lead, ':');
            if (colon)
                yadd(cur, line + lead, (size_t)(colon - line - lead), colon + 1, strlen(colon + 1));
        } else if (lead < ind) {
            cur = NULL;
        }
        if (!eol) break;
        p = eol + 1;
    }
    return n;
}

/* The table's default (JSON text) equals the YAML's default. */
static int same_default(const api_field *f, const char *ydef) {
    if (!f->def || !ydef) return !f->def == !ydef;
    json_t *j = json_loads(f->def, JSON_DECODE_ANY, NULL);
    int same = 0;
    if (json_is_number(j))
        same = strtod(ydef, NULL) == json_number_value(j);
    else if (json_is_boolean(j))
        same = !strcmp(ydef, json_is_true(j) ? "true" : "false");
    else if (json_is_string(j)) {
        char y[128];
        snprintf(y, sizeof y, "%s", ydef);
        if (y[0] == '\'') memmove(y, y + 1, strlen(y)), y[strlen(y) - 1] = '\0';
        same = !strcmp(y, json_string_value(j));
    }
    json_decref(j);
    return same;
}

/* "[a, 'b', c]" equals the NULL-terminated choices. */
static int same_enum(const char *const *choices, const char *y) {
    char buf[512], *save = NULL;
    snprintf(buf, sizeof buf, "%s", y);
    if (buf[0] != '[') return 0;
    buf[strlen(buf) - 1] = '\0';
    int k = 0;
    for (char *tok = strtok_r(buf + 1, ",", &save); tok; tok = strtok_r(NULL, ",", &save), k++) {
        trim(tok);
        if (tok[0] == '\'') tok++, tok[strlen(tok) - 1] = '\0';
        if (!choices[k] || strcmp(tok, choices[k])) return 0;
    }
    return !choices[k];
}

static int same_number(const char *y, double x) { return y && strtod(y, NULL) == x; }

/* One table field against its YAML field; prints each difference. */
static int field_matches(const char *schema, const api_field *f, const yfield *y) {
    int ok = 1;
#define DIFF(...)                                                                                  \
    (printf("    %s.%s: ", schema, f->name), printf(__VA_ARGS__), printf("\n"), ok = 0)
    const char *type = yget(y, "type");
    static const char *const type_names[] = {
        [AF_INT] = "integer",       [AF_NUM] = "number",       [AF_BOOL] = "boolean",
        [AF_ENUM] = NULL,           [AF_PROMPTS] = "array",    [AF_MODEL] = "string",
        [AF_CONTROLNET] = "string", [AF_DATASET] = "string",   [AF_HUB] = "object",
        [AF_TEXT] = "string",       [AF_BASE64] = "string",    [AF_PATHS] = "array",
        [AF_SIZE] = "array",        [AF_CONTROLNETS] = "array"};
    if (f->type == AF_ENUM) {
        const char *e = yget(y, "enum"), *c = yget(y, "const");
        if (c ? !(f->choices[0] && !f->choices[1] && !strcmp(c, f->choices[0]))
              : !e || !same_enum(f->choices, e))
            DIFF("enum %s", e ? e : c ? c : "(none)");
    } else if (!type ||
               strcmp(type, (f->flags & AF_TEXT_LIST) ? "[string, array]" : type_names[f->type])) {
        DIFF("type %s, the table's %s", type ? type : "(none)", type_names[f->type]);
    }
    if ((f->flags & AF_TEXT_LIST) && (!same_number(yget(y, "minItems"), 1) ||
                                      !same_number(yget(y, "maxItems"), API_PROMPTS_MAX)))
        DIFF("a list of 1..%d", API_PROMPTS_MAX);
    if (f->type == AF_INT || f->type == AF_NUM) {
        const char *lo = yget(y, (f->flags & AF_LO_OPEN) ? "exclusiveMinimum" : "minimum");
        const char *hi = yget(y, (f->flags & AF_HI_OPEN) ? "exclusiveMaximum" : "maximum");
        if (!same_number(lo, f->lo)) DIFF("minimum %s, the table's %g", lo ? lo : "-", f->lo);
        if (!same_number(hi, api_field_api_hi(f)))
            DIFF("maximum %s, the table's %.15g", hi ? hi : "-", api_field_api_hi(f));
        const char *m = yget(y, "multipleOf");
        if (f->multiple_of ? !same_number(m, f->multiple_of) : m != NULL)
            DIFF("multipleOf %s, the table's %d", m ? m : "-", f->multiple_of);
    }
    if (f->type == AF_TEXT && f->flags != AF_CLI_ONLY &&
        !same_number(yget(y, "maxLength"), API_PROMPT_MAX))
        DIFF("maxLength %s", yget(y, "maxLength") ? yget(y, "maxLength") : "-");
    if ((f->type == AF_PROMPTS || f->type == AF_PATHS) &&
        (!same_number(yget(y, "minItems"), 1) ||
         !same_number(yget(y, "maxItems"), API_PROMPTS_MAX)))
        DIFF("items 1..%d", API_PROMPTS_MAX);
    if (f->type == AF_CONTROLNETS &&
        (!same_number(yget(y, "minItems"), f->lo) || !same_number(yget(y, "maxItems"), f->hi)))
        DIFF("items %g..%g", f->lo, f->hi);
    if (f->type == AF_SIZE) {
        yfield items = {0};
        const char *it = yget(y, "items");
        if (it && it[0] == '{') parse_flow(&items, it);
        if (!same_number(yget(y, "minItems"), 2) || !same_number(yget(y, "maxItems"), 2) ||
            !yget(&items, "type") || strcmp(yget(&items, "type"), "integer") ||
            !same_number(yget(&items, "minimum"), f->lo) ||
            !same_number(yget(&items, "maximum"), api_field_api_hi(f)))
            DIFF("a pair of integers in [%g, %g]", f->lo, api_field_api_hi(f));
    }
    if (f->type != AF_ENUM || !yget(y, "const"))
        if (!same_default(f, yget(y, "default")))
            DIFF("default %s, the table's %s", yget(y, "default") ? yget(y, "default") : "-",
                 f->def ? f->def : "-");
#undef DIFF
    return ok;
}

/* Every API field of the table is in the schemas, and nothing else is. */
static int schema_matches(const char *what, const api_field *fields, int n, const yfield *y, int ny,
                          const char *required, const char *const *spec_only) {
    int ok = 1;
    for (int i = 0; i < n; i++) {
        const api_field *f = &fields[i];
        if (f->flags & AF_CLI_ONLY) continue;
        const yfield *m = NULL;
        for (int k = 0; k < ny && !m; k++)
            if (!strcmp(y[k].name, f->name)) m = &y[k];
        if (!m) {
            printf("    %s: %s is in the table, not in openapi.yaml\n", what, f->name);
            ok = 0;
            continue;
        }
        ok &= field_matches(what, f, m);
        char needle[80];
        snprintf(needle, sizeof needle, "%s", f->name);
        const char *r = strstr(required, needle);
        const int in_req =
            r && (r == required || strchr(" ,[", r[-1])) && strchr(",] ", r[strlen(needle)]);
        if (!!(f->flags & AF_REQUIRED) != in_req) {
            printf("    %s: %s required in the table %d, in openapi.yaml %d\n", what, f->name,
                   !!(f->flags & AF_REQUIRED), in_req);
            ok = 0;
        }
    }
    for (int k = 0; k < ny; k++) {
        const api_field *f = api_field_find(fields, n, y[k].name);
        int exempt = 0;
        for (int s = 0; spec_only && spec_only[s]; s++) exempt |= !strcmp(spec_only[s], y[k].name);
        if ((!f || (f->flags & AF_CLI_ONLY)) && !exempt) {
            printf("    %s: %s is in openapi.yaml, not in the table\n", what, y[k].name);
            ok = 0;
        }
    }
    return ok;
}

static void test_openapi_follows_the_tables(void) {
    static yfield y[96];
    char required[512], req2[256];
    const char *yaml = api_openapi_yaml;
    int n = yaml_schema(yaml, "TrainSpec", "        ", y, 96, required, sizeof required);
    CHECK(n > 30, "TrainSpec: %d properties read", n);
    CHECK(schema_matches("TrainSpec", api_train_fields, api_train_n_fields, y, n, required, NULL),
          "TrainSpec differs from api_train_fields (above)");
    /* GenerateSpec, plus the request-only members of GenerateRequest (image,
     * init_image, mask_image, async); "control_image", "init_image_file" and
     * "mask_image_file" are written into a job's spec by the route. */
    n = yaml_schema(yaml, "GenerateSpec", "        ", y, 96, required, sizeof required);
    CHECK(n > 15, "GenerateSpec: %d properties read", n);
    int m = yaml_schema(yaml, "GenerateRequest", "            ", y + n, 96 - n, req2, sizeof req2);
    /* image: required without controlnets (the route's check, not the schema's) */
    CHECK(m == 4 && !strstr(req2, "image"), "GenerateRequest: %d members, required %s", m, req2);
    static const char *const spec_only[] = {"control_image", "init_image_file", "mask_image_file",
                                            NULL};
    CHECK(schema_matches("GenerateSpec", api_generate_fields, api_generate_n_fields, y, n + m,
                         required, spec_only),
          "GenerateSpec differs from api_generate_fields (above)");
    /* a controlnets item: exactly the table's per-ControlNet API fields */
    static api_field per[64];
    int n_per = 0;
    for (int i = 0; i < api_generate_n_fields && n_per < 64; i++)
        if ((api_generate_fields[i].flags & AF_PER_CONTROLNET) &&
            !(api_generate_fields[i].flags & AF_CLI_ONLY))
            per[n_per++] = api_generate_fields[i];
    n = yaml_schema(yaml, "GenerateControlNet", "        ", y, 96, required, sizeof required);
    CHECK(n >= n_per, "GenerateControlNet: %d properties read", n);
    CHECK(schema_matches("GenerateControlNet", per, n_per, y, n, required, spec_only),
          "GenerateControlNet differs from the per-ControlNet fields (above)");
}

/* --- the tables against the engine ---------------------------------------- */

static void test_tables_follow_the_engine(void) {
    const api_field *f = api_field_find(api_generate_fields, api_generate_n_fields, "scheduler");
    int n = 0;
    for (; f->choices[n]; n++)
        CHECK(sched_kind_from_short(f->choices[n]) >= 0, "scheduler %s unknown to the engine",
              f->choices[n]);
    CHECK(n == CNET_SCHED_KIND_COUNT, "%d schedulers in the table, %d in the engine", n,
          (int)CNET_SCHED_KIND_COUNT);
    f = api_field_find(api_generate_fields, api_generate_n_fields, "preprocess");
    for (n = 0; f->choices[n]; n++)
        CHECK(annotator_at(n) && !strcmp(annotator_at(n)->name, f->choices[n]),
              "preprocess %s is not the annotator table's #%d", f->choices[n], n);
    CHECK(n == annotator_count(), "%d preprocessors in the table, %d annotators", n,
          annotator_count());
    const api_field *p[2] = {
        api_field_find(api_generate_fields, api_generate_n_fields, "mixed_precision"),
        api_field_find(api_train_fields, api_train_n_fields, "mixed_precision")};
    for (int t = 0; t < 2; t++)
        for (n = 0; p[t]->choices[n]; n++) {
            cnet_precision prec;
            cnet_error err = {0};
            CHECK(cnet_precision_parse(p[t]->choices[n], &prec, &err) == 0, "%s", p[t]->choices[n]);
        }
    f = api_field_find(api_generate_fields, api_generate_n_fields, "max_pixels");
    CHECK(strtoll(f->def, NULL, 10) == IMAGE_MAX_PIXELS_DEFAULT, "max_pixels default %s", f->def);
    /* the train defaults: the table's are the trainer's */
    train_options o;
    train_options_defaults(&o);
    const struct {
        const char *name;
        double engine;
    } d[] = {{"resolution", o.resolution},
             {"train_batch_size", o.train_batch_size},
             {"num_train_epochs", o.num_train_epochs},
             {"gradient_accumulation_steps", o.gradient_accumulation_steps},
             {"learning_rate", o.learning_rate},
             {"lr_warmup_steps", o.lr_warmup_steps},
             {"lr_num_cycles", o.lr_num_cycles},
             {"lr_power", o.lr_power},
             {"adam_beta1", o.adam_beta1},
             {"adam_beta2", o.adam_beta2},
             {"adam_weight_decay", o.adam_weight_decay},
             {"adam_epsilon", o.adam_epsilon},
             {"max_grad_norm", o.max_grad_norm},
             {"checkpointing_steps", o.checkpointing_steps},
             {"num_validation_images", o.num_validation_images},
             {"validation_steps", o.validation_steps},
             {"max_bad_fraction", o.max_bad_fraction},
             {"proportion_empty_prompts", o.proportion_empty_prompts},
             {"scale_lr", o.scale_lr},
             {"use_8bit_adam", o.use_8bit_adam}};
    for (size_t i = 0; i < sizeof d / sizeof d[0]; i++) {
        f = api_field_find(api_train_fields, api_train_n_fields, d[i].name);
        CHECK(f && f->def, "%s: no default in the table", d[i].name);
        json_t *j = json_loads(f->def, JSON_DECODE_ANY, NULL);
        const double v = json_is_boolean(j) ? json_is_true(j) : json_number_value(j);
        json_decref(j);
        EXPECT(v == d[i].engine, "%s: table %s, trainer %g", d[i].name, f->def, d[i].engine);
    }
    f = api_field_find(api_train_fields, api_train_n_fields, "lr_scheduler");
    CHECK(!strcmp(f->def, "\"constant\"") && !strcmp(o.lr_scheduler, "constant"), "lr_scheduler");
}

/* --- renderers --------------------------------------------------------- */

static void test_renderers(void) {
    job j;
    memset(&j, 0, sizeof j);
    snprintf(j.id, sizeof j.id, "j_0123456789abcdef0123456789abcdef");
    snprintf(j.kind, sizeof j.kind, "train");
    j.state = JOB_QUEUED;
    j.queue_position = 2;
    j.attempt = 0, j.max_attempts = 3;
    j.checkpoint_step = -1;
    j.spec_json = "{\"resolution\": 512}";
    j.created_at = 1714564800000; /* 2024-05-01T12:00:00Z */
    char *arts[] = {"config.json"};
    json_t *v = api_job_json(&j, arts, 1);
    CHECK(v, "api_job_json: NULL");
    const json_t *links = json_object_get(v, "links");
    EXPECT(!strcmp(json_string_value(json_object_get(v, "state")), "queued") &&
               json_integer_value(json_object_get(v, "queue_position")) == 2 &&
               json_is_null(json_object_get(v, "started_at")) &&
               json_is_null(json_object_get(v, "checkpoint_step")) &&
               json_is_null(json_object_get(v, "error")) &&
               json_integer_value(json_object_get(json_object_get(v, "spec"), "resolution")) ==
                   512 &&
               !strcmp(json_string_value(json_object_get(v, "created_at")),
                       "2024-05-01T12:00:00.000Z") &&
               !strcmp(json_string_value(json_object_get(links, "self")),
                       "/v1/jobs/j_0123456789abcdef0123456789abcdef") &&
               !strcmp(json_string_value(json_object_get(
                           json_array_get(json_object_get(links, "artifacts"), 0), "href")),
                       "/v1/jobs/j_0123456789abcdef0123456789abcdef/artifacts/config.json"),
           "queued job: %s", json_dumps(v, JSON_COMPACT));
    json_decref(v);
    j.state = JOB_FAILED;
    j.error_code = "bad_input", j.error_detail = "no such dataset";
    j.checkpoint_step = 4;
    v = api_job_json(&j, NULL, 0);
    EXPECT(json_is_null(json_object_get(v, "queue_position")) &&
               json_integer_value(json_object_get(v, "checkpoint_step")) == 4 &&
               !strcmp(json_string_value(json_object_get(json_object_get(v, "error"), "message")),
                       "no such dataset"),
           "failed job: %s", json_dumps(v, JSON_COMPACT));
    json_decref(v);

    api_error e;
    api_fail(&e, 400, "out_of_range", "steps", "steps must be in [1, 1000], got %d", 0);
    v = api_error_json(&e);
    char *text = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
    EXPECT(!strcmp(text, "{\"error\":{\"code\":\"out_of_range\",\"field\":\"steps\","
                         "\"message\":\"steps must be in [1, 1000], got 0\"}}"),
           "%s", text);
    free(text);
    json_decref(v);
    api_fail(&e, 503, "unavailable", NULL, "busy");
    v = api_error_json(&e);
    EXPECT(!json_object_get(json_object_get(v, "error"), "field"), "no field member when none");
    json_decref(v);

    char t[32];
    api_time(0, t);
    EXPECT(!strcmp(t, "1970-01-01T00:00:00.000Z"), "%s", t);
    api_time(1714564800123, t);
    EXPECT(!strcmp(t, "2024-05-01T12:00:00.123Z"), "%s", t);

    /* RFC 4648 §10's test vectors */
    static const char *const plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *const coded[] = {"",         "Zg==",     "Zm8=",    "Zm9v",
                                        "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (int i = 0; i < 7; i++) {
        char *b = api_base64_encode((const unsigned char *)plain[i], strlen(plain[i]));
        EXPECT(b && !strcmp(b, coded[i]), "encode %s: %s", plain[i], b);
        free(b);
        unsigned char *out;
        size_t len;
        EXPECT(api_base64_decode(coded[i], strlen(coded[i]), "image", &out, &len, &e) == 0 &&
                   len == strlen(plain[i]) && !memcmp(out, plain[i], len),
               "decode %s", coded[i]);
        free(out);
    }
    unsigned char *out;
    size_t len;
    EXPECT(api_base64_decode("Zm9v!", 5, "image", &out, &len, &e) && !strcmp(e.field, "image"),
           "bad base64: %s", e.field);

    json_t *body;
    EXPECT(api_parse_body("{\"a\": 1, \"a\": 2}", 16, &body, &e) && !strcmp(e.code, "invalid_json"),
           "duplicate key: %s", e.code);
    EXPECT(api_parse_body("[1]", 3, &body, &e) != 0, "an array body");
    char h1[65], h2[65];
    json_t *a = json_loads("{\"b\": 1, \"a\": [1, 2]}", 0, NULL);
    json_t *b = json_loads("{\"a\": [1, 2], \"b\": 1}", 0, NULL);
    EXPECT(api_hash_json(a, h1) == 0 && api_hash_json(b, h2) == 0 && !strcmp(h1, h2),
           "the hash is of the canonical form");
    json_decref(a);
    json_decref(b);
    EXPECT(api_safe_name("config.json") && !api_safe_name(".hidden") && !api_safe_name("a/b") &&
               !api_safe_name(""),
           "api_safe_name");
}

int main(int argc, char **argv) {
    harness_init(argc, argv);
    if (setup()) {
        printf("setup failed\ntest_api_contract: 0 passed, 1 failed\n");
        return 1;
    }
    RUN(test_fields_limits_types_defaults);
    RUN(test_hand_written_expectations);
    RUN(test_cli_follows_the_table);
    RUN(test_spec_to_request);
    RUN(test_preprocess_model);
    RUN(test_controlnets_list);
    RUN(test_spec_preprocessor);
    RUN(test_openapi_follows_the_tables);
    RUN(test_tables_follow_the_engine);
    RUN(test_renderers);
    tmpdir_remove(tmp);
    return harness_done();
}
