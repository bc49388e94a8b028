/* Model inputs and outputs at the file boundary, shared by `cnet golden` and
 * `cnet forward`: load one component of a diffusers pipeline folder and run
 * it on tensors named as in the goldens (tests/fixtures/goldens/README.md), in
 * safetensors files and PyTorch layout (NCHW); the outputs come back as host
 * tensors in PyTorch layout under the goldens' names. The engine is NHWC:
 * 4-d tensors are converted at this boundary, others copied as they are.
 *
 *   text_encoder  text_encoder.input_ids [P,L] int64
 *                 -> text_encoder.last_hidden_state [P,L,D], .pooler_output [P,D]
 *   vae.encode    vae.encode.input [B,3,H,W]
 *                 -> vae.encode.moments [B,2L,h,w], .mean, .logvar, .std [B,L,h,w]
 *   vae.decode    vae.decode.input [B,L,h,w] -> vae.decode.output [B,3,H,W]
 *   unet          unet.in.sample [B,C,h,w], unet.in.encoder_hidden_states [B,N,D],
 *                 a timestep unet.in.t_batch | t_scalar | t_float (scalar or [B]),
 *                 optional unet.in.down_residual.<i> and unet.in.mid_residual
 *                 -> unet.out [B,C,h,w]
 *   controlnet    controlnet.in.sample, .encoder_hidden_states, .controlnet_cond
 *                 [B,3,H,W] in [0,1], a timestep controlnet.in.t_batch | ...
 *                 -> controlnet.down.<i>, controlnet.mid
 *   SDXL (addition_embed_type "text_time") unet / controlnet models also read
 *                 <stem>.in.text_embeds [B,Dp] and <stem>.in.time_ids [B,6]
 *
 * What it is not: the comparison with the goldens (server/golden/golden.h)
 * or the command lines (server/cli/cmd_forward.c, cmd_golden.c). */
#ifndef CNET_MODEL_IO_H
#define CNET_MODEL_IO_H

#include <stdint.h>

#include "engine/core/arena.h"
#include "engine/core/backend.h"
#include "engine/core/safetensors.h"
#include "engine/models/clip_text.h"
#include "engine/models/controlnet.h"
#include "engine/models/unet.h"
#include "engine/models/vae.h"

/* Most samples a timestep input may hold. */
#define MIO_MAX_BATCH 64

/* The tensor `name` of f, required to be of dtype and (ndim >= 0) rank ndim. */
int mio_need(const st_file *f, const char *name, cnet_dtype dtype, int ndim, const st_entry **out,
             cnet_error *err);

/* A device copy (float32; NCHW -> NHWC when 4-d) of a file tensor; free it
 * with be->free. NULL (and err set) when out of memory. */
float *mio_upload(cnet_backend *be, const st_entry *e, cnet_error *err);

/* A malloc'd host copy in PyTorch layout of the device buffer dev holding
 * a tensor of that PyTorch shape (NHWC -> NCHW when 4-d). NULL when out of
 * memory. */
float *mio_download(cnet_backend *be, const float *dev, int ndim, const int64_t *shape);

/* Host float timesteps [B] from an int64 or f32 scalar or [B] tensor `name`. */
int mio_timesteps(const st_file *f, const char *name, int B, float *t, cnet_error *err);

/* SDXL's added conditions (unet_added_cond) read from a file. */
typedef struct mio_added {
    unet_added_cond cond;
    float *text_dev;                          /* owned device copy of text_embeds */
    float ids[MIO_MAX_BATCH * CNET_TIME_IDS]; /* host time_ids */
    int present;
} mio_added;

/* For a text_time model (cfg->add_text_time), "<stem>.in.text_embeds"
 * [B, Dp] and "<stem>.in.time_ids" [B, 6] (float32; Dp from the config),
 * errors naming the file and tensor; for other models nothing is read and
 * mio_added_cond gives NULL. Free with mio_added_free. */
int mio_added_load(mio_added *a, cnet_backend *be, const st_file *f, const char *stem,
                   const cnet_unet_config *cfg, int B, cnet_error *err);
/* The conditions to pass to the model: NULL when none were loaded. */
const unet_added_cond *mio_added_cond(const mio_added *a);
void mio_added_free(mio_added *a, cnet_backend *be);

/* Most output tensors one run gives (ControlNet: every skip + mid). */
#define MIO_MAX_OUTPUTS (UNET_MAX_SKIPS + 4)
/* Longest tensor name a run writes, with its terminating NUL. */
#define MIO_NAME_MAX 96

typedef enum {
    MIO_TEXT_ENCODER,
    MIO_VAE_ENCODE,
    MIO_VAE_DECODE,
    MIO_UNET,
    MIO_CONTROLNET,
    MIO_COMPONENTS
} mio_component;

/* "text_encoder", "vae.encode", "vae.decode", "unet", "controlnet". */
extern const char *const mio_component_names[MIO_COMPONENTS];
/* The component of that name; MIO_COMPONENTS when there is none. */
mio_component mio_component_by_name(const char *name);

/* How a run reads its inputs; zero is the default except scale (1). */
typedef struct mio_options {
    const char *timestep; /* t_batch | t_scalar | t_float; NULL: the only one in the file */
    int clip_skip;        /* text encoder: run all but the last clip_skip layers */
    float scale;          /* controlnet: conditioning scale */
    int guess_mode;       /* controlnet */
    int no_residuals;     /* unet: ignore unet.in.down_residual.* and mid_residual */
} mio_options;

static inline mio_options mio_defaults(void) { return (mio_options){.scale = 1.0f}; }

/* The outputs of a run: host float32 tensors in PyTorch layout, owned. */
typedef struct mio_outputs {
    int n;
    char names[MIO_MAX_OUTPUTS][MIO_NAME_MAX];
    cnet_tensor t[MIO_MAX_OUTPUTS];
} mio_outputs;

/* The output of that name, NULL when the run gave none. */
const cnet_tensor *mio_output(const mio_outputs *o, const char *name);
void mio_outputs_free(mio_outputs *o);

/* One loaded component folder (text_encoder/, vae/, unet/ or controlnet/)
 * and the scratch arena its runs share. be is borrowed. */
typedef struct mio_model {
    cnet_backend *be;
    const char *folder; /* the component folder's name */
    cnet_arena scratch;
    union {
        clip_text_model text;
        vae_model vae;
        unet_model unet;
        controlnet_model controlnet;
    } m;
} mio_model;

/* What can be checked of a run's inputs without the model, so that a bad
 * file fails before the weights load: every input component c needs is
 * there (named as above) with its dtype and rank, the inputs agree on the
 * batch, and unet / controlnet find exactly one timestep input (o->timestep's
 * when set) that fits it. Errors name the file and the tensor. mio_run
 * checks the same first; the sizes the model fixes are checked there. */
int mio_check_inputs(mio_component c, const st_file *in, const mio_options *o, cnet_error *err);

/* Loads <model_dir>/<the folder of component c> on be. On failure m holds
 * nothing. */
int mio_open(mio_model *m, cnet_backend *be, mio_component c, const char *model_dir,
             cnet_error *err);
/* Grows m->scratch to at least `bytes` (for callers that run parts of the
 * model themselves, as the golden checks of intermediate tensors do). */
int mio_scratch(mio_model *m, size_t bytes, cnet_error *err);
/* Runs component c (whose folder m holds) on the named inputs of `in` and
 * replaces out's tensors with its outputs (out zeroed before the first
 * run). Checks the inputs' shapes against the model, naming the file and
 * the tensor. A failed backend's error (cnet_backend_status) is returned,
 * and no outputs with it. */
int mio_run(mio_model *m, mio_component c, const st_file *in, const mio_options *o,
            mio_outputs *out, cnet_error *err);
void mio_close(mio_model *m);

#endif
