/* Golden checks: what cnet computes against the reference tensors of a
 * fixture directory (tests/fixtures layout: goldens/<stem>.safetensors,
 * goldens/tolerances.json, goldens/manifest.json, the model folder; the
 * same for goldens-sdxl/ with its own model folder).
 *
 * One check function per golden file (golden_check_<stem>), listed in the
 * table of server/cli/cmd_golden.c. A check computes its tensors and hands each
 * to golden_compare, which prints one line (name, shape, max abs error, the
 * allowed error, PASS/FAIL) and counts it. Everything is taken from the
 * fixture files and their metadata, nothing about a particular fixture is
 * built in. A check whose backend failed (cnet_backend_status) returns that
 * error instead of comparing outputs the skipped ops never wrote. Not a test harness: `cnet golden`
 * runs it; tests may too. */
#ifndef CNET_GOLDEN_H
#define CNET_GOLDEN_H

#include <jansson.h>
#include <limits.h>
#include <stdint.h>

#include "engine/core/error.h"
#include "engine/core/safetensors.h"
#include "engine/core/tensor.h"

/* Allowed error of a float tensor: this many times the float32-vs-float64
 * figure of the reference (tolerances.json), and never below the floor. */
#define GOLDEN_TOL_FACTOR 10.0
#define GOLDEN_TOL_FLOOR 1e-5
/* Tensors one golden file may hold (for the "not checked" listing). */
#define GOLDEN_MAX_SEEN 16384
/* Longest run, variant or scheduler id a golden file may name (the part
 * between the stem and a tensor's own name, e.g. "t_batch.scale0.5" in
 * controlnet.t_batch.scale0.5.mid); a longer one is refused (CNET_EFORMAT)
 * rather than cut short, so every name built from it fits GOLDEN_NAME_MAX. */
#define GOLDEN_RUN_MAX 63
/* Room for a tensor name built from a run: "<stem>.<run>.<tensor>.<index>". */
#define GOLDEN_NAME_MAX 160

/* The golden folders of a fixture directory: SD 1.x's (always checked) and
 * SDXL's (checked when present). */
#define GOLDEN_DIR "goldens"
#define GOLDEN_DIR_SDXL "goldens-sdxl"
/* The img2img / inpainting pipelines' goldens (checked when present). */
#define GOLDEN_DIR_IMG2IMG "goldens-img2img"
/* train_text_to_image.py's goldens, made with the SD 1.x model folder. */
#define GOLDEN_DIR_UNET_TRAIN "goldens-unet-train"
#define GOLDEN_UNET_TRAIN_MODEL "tiny-sd"

typedef struct golden_ctx {
    const char *fixtures;     /* borrowed: the fixture root */
    const char *goldens;      /* borrowed: the golden folder under it, e.g. GOLDEN_DIR */
    const char *device;       /* borrowed: backend every check opens ("cpu" unless set) */
    json_t *tolerances;       /* owned: goldens/tolerances.json */
    char model_dir[PATH_MAX]; /* the model folder the goldens were made with */
    const char *stem;         /* golden file being checked, e.g. "tokenizer" */
    int passed, failed;       /* tensors so far */
    const char **seen;        /* owned array; names compared in the current file */
    int n_seen;
} golden_ctx;

/* Reads <goldens>/tolerances.json and finds the model folder: the one
 * folder whose model_index.json <goldens>/manifest.json lists. */
int golden_init_dir(golden_ctx *ctx, const char *fixtures, const char *goldens, cnet_error *err);
/* The same for a golden folder made with the fixture's model folder
 * `model` (NULL: the manifest's), whose manifest does not list it. */
int golden_init_dir_model(golden_ctx *ctx, const char *fixtures, const char *goldens,
                          const char *model, cnet_error *err);
/* The model folder goldens-img2img was made with (its README: ../tiny-sd). */
#define GOLDEN_IMG2IMG_MODEL "tiny-sd"
/* golden_init_dir of GOLDEN_DIR. */
int golden_init(golden_ctx *ctx, const char *fixtures, cnet_error *err);
void golden_free(golden_ctx *ctx);

/* Allowed max abs error of tensor `name` in golden file `stem`: 0 when
 * tolerances.json says "exact", else max(GOLDEN_TOL_FACTOR * max_abs,
 * GOLDEN_TOL_FLOOR). Keys are "<stem>/<name>". */
int golden_tolerance(const golden_ctx *ctx, const char *stem, const char *name, double *allowed,
                     cnet_error *err);

/* Compares got (host F32, I64 or U8) with the golden tensor `name` of f in
 * the current file: same dtype class and shape, max abs error within the
 * allowed one (integers exactly). Prints the line and counts it; returns 1
 * on PASS, 0 on FAIL. */
int golden_compare(golden_ctx *ctx, const st_file *f, const char *name, const cnet_tensor *got);

/* The same with the allowed error raised to at least min_allowed, for
 * tensors whose README states an absolute tolerance. */
int golden_compare_atol(golden_ctx *ctx, const st_file *f, const char *name, const cnet_tensor *got,
                        double min_allowed);
/* golden_compare with an explicit allowed max abs error for float tensors,
 * for golden files whose README gives no float32-vs-float64 figure
 * (integers are still compared exactly). */
int golden_compare_within(golden_ctx *ctx, const st_file *f, const char *name,
                          const cnet_tensor *got, double allowed);

/* Prints and counts a result computed elsewhere (note may be NULL). */
void golden_report(golden_ctx *ctx, const char *name, const char *shape, double max_err,
                   double allowed, int pass, const char *note);

/* The checks, one per golden file. Each returns 0 when it ran (its tensors
 * counted, passed or not) or an error that kept it from running. */
int golden_check_tokenizer(golden_ctx *ctx, const st_file *f, cnet_error *err);
int golden_check_text_encoder(golden_ctx *ctx, const st_file *f, cnet_error *err);
int golden_check_vae(golden_ctx *ctx, const st_file *f, cnet_error *err);
int golden_check_unet(golden_ctx *ctx, const st_file *f, cnet_error *err);
int golden_check_controlnet(golden_ctx *ctx, const st_file *f, cnet_error *err);
int golden_check_train(golden_ctx *ctx, const st_file *f, cnet_error *err);
int golden_check_pipeline(golden_ctx *ctx, const st_file *f, cnet_error *err);
int golden_check_schedulers(golden_ctx *ctx, const st_file *f, cnet_error *err);
int golden_check_preprocess(golden_ctx *ctx, const st_file *f, cnet_error *err);
/* <goldens>/controlnet_from_unet.json at path (server/golden/golden_from_unet.c). */
int golden_check_from_unet(golden_ctx *ctx, const char *path, cnet_error *err);
/* goldens-sdxl (server/golden/golden_sdxl_models.c, golden_sdxl_text.c). */
int golden_check_unet_sdxl(golden_ctx *ctx, const st_file *f, cnet_error *err);
int golden_check_controlnet_sdxl(golden_ctx *ctx, const st_file *f, cnet_error *err);
int golden_check_text_encoders_sdxl(golden_ctx *ctx, const st_file *f, cnet_error *err);
/* goldens-sdxl/pipeline_sdxl (server/golden/golden_sdxl_pipeline.c). */
int golden_check_pipeline_sdxl(golden_ctx *ctx, const st_file *f, cnet_error *err);
/* goldens-img2img (server/golden/golden_img2img.c, golden_img2img_pre.c). */
int golden_check_img2img(golden_ctx *ctx, const st_file *f, cnet_error *err);
int golden_check_inpaint(golden_ctx *ctx, const st_file *f, cnet_error *err);
int golden_check_img2img_preprocess(golden_ctx *ctx, const st_file *f, cnet_error *err);
/* goldens-sdxl/train_sdxl (server/golden/golden_sdxl_train.c). */
int golden_check_train_sdxl(golden_ctx *ctx, const st_file *f, cnet_error *err);
/* goldens-unet-train/train_unet (server/golden/golden_unet_train.c). */
int golden_check_train_unet(golden_ctx *ctx, const st_file *f, cnet_error *err);
/* goldens-unet-train/preprocess_t2i (server/golden/golden_preprocess_t2i.c). */
int golden_check_preprocess_t2i(golden_ctx *ctx, const st_file *f, cnet_error *err);

#endif
