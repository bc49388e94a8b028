/* Golden checks of the model components: goldens/text_encoder, vae, unet and
 * controlnet.safetensors (and the same tensors of goldens-sdxl's
 * unet_sdxl / controlnet_sdxl, whose added conditions are read too). Each runs the component of the
 * fixture's model folder on the golden inputs (`<stem>.in.*` and the inputs named in the goldens
 * README) on the CPU backend and compares every output. Inputs and outputs are PyTorch NCHW; the
 * engine is NHWC, so 4-d tensors are converted at this boundary (server/golden/model_io.h). Run
 * names (e.g. controlnet.t_batch.scale0.5) are parsed, not listed, so other fixture directories
 * work as long as they keep the naming of the goldens README. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/golden/golden.h"
#include "server/golden/golden_io.h"
#include "server/golden/model_io.h"

/* Compares output `got` of a run with the golden `want` (NULL: the same
 * name); a run without that output is reported as a failed comparison. */
static void compare_output(golden_ctx *ctx, const st_file *f, const mio_outputs *o, const char *got,
                           const char *want) {
    const cnet_tensor *t = mio_output(o, got);
    if (t) {
        golden_compare(ctx, f, want ? want : got, t);
        return;
    }
    golden_report(ctx, want ? want : got, "?", INFINITY, 0, 0, "the run gave no such output");
}

/* Opens the backend and the component the golden file `f` checks. */
static int open_component(golden_ctx *ctx, golden_env *env, mio_model *m, mio_component c,
                          cnet_error *err) {
    int rc = golden_env_init(env, ctx, err);
    if (rc) return rc;
    if ((rc = mio_open(m, &env->be, c, ctx->model_dir, err))) golden_env_free(env);
    return rc;
}

static void close_component(golden_env *env, mio_model *m, mio_outputs *o) {
    mio_outputs_free(o);
    mio_close(m);
    golden_env_free(env);
}

/* ---- text encoder ---- */

int golden_check_text_encoder(golden_ctx *ctx, const st_file *f, cnet_error *err) {
    golden_env env;
    mio_model m;
    mio_outputs o = {0};
    const mio_options opt = mio_defaults();
    int rc = open_component(ctx, &env, &m, MIO_TEXT_ENCODER, err);
    if (rc) return rc;
    if (!(rc = mio_run(&m, MIO_TEXT_ENCODER, f, &opt, &o, err))) {
        compare_output(ctx, f, &o, "text_encoder.last_hidden_state", NULL);
        compare_output(ctx, f, &o, "text_encoder.pooler_output", NULL);
    }
    close_component(&env, &m, &o);
    return rc;
}

/* ---- VAE ---- */

int golden_check_vae(golden_ctx *ctx, const st_file *f, cnet_error *err) {
    golden_env env;
    mio_model m;
    mio_outputs o = {0};
    const mio_options opt = mio_defaults();
    int rc = open_component(ctx, &env, &m, MIO_VAE_ENCODE, err);
    if (rc) return rc;
    if (!(rc = mio_run(&m, MIO_VAE_ENCODE, f, &opt, &o, err))) {
        compare_output(ctx, f, &o, "vae.encode.moments", NULL);
        /* the distribution's tensors where the golden file has them */
        const char *const dist[] = {"vae.encode.mean", "vae.encode.logvar", "vae.encode.std"};
        for (int k = 0; k < 3; k++)
            if (st_find(f, dist[k])) compare_output(ctx, f, &o, dist[k], NULL);
    }
    if (!rc && !(rc = mio_run(&m, MIO_VAE_DECODE, f, &opt, &o, err))) {
        compare_output(ctx, f, &o, "vae.decode.output", NULL);
        cnet_tensor sf = {CNET_F32, 0, {0}, &m.m.vae.cfg.scaling_factor, -1};
        golden_compare(ctx, f, "vae.scaling_factor", &sf);
    }
    close_component(&env, &m, &o);
    return rc;
}

/* ---- UNet ---- */

/* time_embedding(time_proj(t)) [B,T] into temb (and proj [B,C0] when
 * non-NULL) for timesteps t. An SDXL (text_time) model's engine adds
 * aug_emb from "<stem>.in.text_embeds/time_ids"; it is subtracted again
 * here (unet_encoder_added), which costs at most an ulp of each. */
static int plain_time_emb(golden_env *env, mio_model *mm, const unet_encoder *enc,
                          const cnet_params *p, const st_file *f, const char *stem, const float *t,
                          int B, float *temb, float *proj, cnet_error *err) {
    cnet_backend *be = &env->be;
    const size_t T = (size_t)B * enc->temb_channels;
    const size_t P = (size_t)B * enc->cfg.projection_class_embeddings_input_dim;
    mio_added added;
    int rc = mio_added_load(&added, be, f, stem, &enc->cfg, B, err);
    if (rc) return rc;
    float *temb_act = be->alloc(be, T * sizeof(float)), *aug = NULL, *add = NULL, *a1 = NULL;
    if (!temb_act) rc = cnet_fail(err, CNET_ENOMEM, "golden: out of memory");
    if (!rc)
        rc = unet_encoder_time(enc, p, &mm->scratch, temb_act, temb, proj, t,
                               mio_added_cond(&added), B, NULL, NULL, err);
    if (!rc && enc->cfg.add_text_time) {
        aug = be->alloc(be, T * sizeof(float));
        add = be->alloc(be, P * sizeof(float));
        a1 = be->alloc(be, 2 * T * sizeof(float));
        rc = aug && add && a1 ? unet_encoder_added(enc, p, &mm->scratch, aug, add, a1, a1 + T,
                                                   mio_added_cond(&added), B, err)
                              : cnet_fail(err, CNET_ENOMEM, "golden: out of memory");
        if (!rc) be->axpy(be, temb, -1.0f, aug, (long)T);
    }
    float *bufs[] = {temb_act, aug, add, a1};
    for (int i = 0; i < 4; i++)
        if (bufs[i]) be->free(be, bufs[i]);
    mio_added_free(&added, be);
    return rc;
}

/* unet.time_proj and unet.time_emb of t_batch: the timestep embedding,
 * which mio_run does not return. */
static int check_unet_time(golden_ctx *ctx, golden_env *env, mio_model *mm, const st_file *f,
                           cnet_error *err) {
    unet_model *m = &mm->m.unet;
    const st_entry *xs, *ehs;
    int rc;
    if ((rc = mio_need(f, "unet.in.sample", CNET_F32, 4, &xs, err)) ||
        (rc = mio_need(f, "unet.in.encoder_hidden_states", CNET_F32, 3, &ehs, err)))
        return rc;
    const int B = (int)xs->view.shape[0], h = (int)xs->view.shape[2], w = (int)xs->view.shape[3];
    const int Nt = (int)ehs->view.shape[1], C0 = m->enc.cfg.block_out_channels[0];
    const int T = m->enc.temb_channels;
    float t[MIO_MAX_BATCH];
    float *proj = env->be.alloc(&env->be, (size_t)B * C0 * sizeof(float));
    float *temb = env->be.alloc(&env->be, (size_t)B * T * sizeof(float));
    if (!proj || !temb) rc = cnet_fail(err, CNET_ENOMEM, "golden: out of memory");
    if (!rc) rc = mio_timesteps(f, "unet.in.t_batch", B, t, err);
    if (!rc) rc = mio_scratch(mm, unet_scratch_bytes(m, B, h, w, Nt), err);
    if (!rc) rc = plain_time_emb(env, mm, &m->enc, &m->params, f, "unet", t, B, temb, proj, err);
    if (!rc) rc = cnet_backend_status(&env->be, err); /* nothing to compare from a failed one */
    if (!rc) {
        const int64_t ps[2] = {B, C0}, ts[2] = {B, T};
        golden_compare_nhwc(ctx, env, f, "unet.time_proj.t_batch", proj, 2, ps);
        golden_compare_nhwc(ctx, env, f, "unet.time_emb.t_batch", temb, 2, ts);
    }
    float *bufs[] = {proj, temb};
    for (int i = 0; i < 2; i++)
        if (bufs[i]) env->be.free(&env->be, bufs[i]);
    return rc;
}

int golden_check_unet(golden_ctx *ctx, const st_file *f, cnet_error *err) {
    golden_env env;
    mio_model m;
    mio_outputs o = {0};
    int rc = open_component(ctx, &env, &m, MIO_UNET, err);
    if (rc) return rc;
    rc = check_unet_time(ctx, &env, &m, f, err);
    /* unet.out.plain.<t> for every timestep input the file has */
    static const char *const tsel[] = {"t_batch", "t_scalar", "t_float"};
    for (int k = 0; k < 3 && !rc; k++) {
        char in[64], name[64];
        snprintf(in, sizeof in, "unet.in.%s", tsel[k]);
        snprintf(name, sizeof name, "unet.out.plain.%s", tsel[k]);
        if (!st_find(f, in) || !st_find(f, name)) continue;
        mio_options opt = mio_defaults();
        opt.timestep = tsel[k], opt.no_residuals = 1;
        if (!(rc = mio_run(&m, MIO_UNET, f, &opt, &o, err)))
            compare_output(ctx, f, &o, "unet.out", name);
    }
    /* with ControlNet residuals */
    if (!rc && st_find(f, "unet.out.residuals.t_batch")) {
        mio_options opt = mio_defaults();
        opt.timestep = "t_batch";
        if (!st_find(f, "unet.in.mid_residual"))
            rc = cnet_fail(err, CNET_ENOTFOUND, "%s: no tensor 'unet.in.mid_residual'", f->path);
        else if (!(rc = mio_run(&m, MIO_UNET, f, &opt, &o, err)))
            compare_output(ctx, f, &o, "unet.out", "unet.out.residuals.t_batch");
    }
    close_component(&env, &m, &o);
    return rc;
}

/* ---- ControlNet ---- */

/* "controlnet.<tsel>.<mode>.mid" -> tsel ("t_scalar"/"t_batch"), scale and
 * guess mode ("scale<x>" or "guess_mode", which runs at scale 1). */
static int parse_run(const char *name, char *tsel, size_t cap, float *scale, int *guess) {
    const char *p = name + strlen("controlnet."), *dot = strchr(p, '.');
    if (!dot || (size_t)(dot - p) >= cap) return -1;
    memcpy(tsel, p, (size_t)(dot - p));
    tsel[dot - p] = '\0';
    const char *mode = dot + 1, *end = strrchr(mode, '.');
    if (!end || strcmp(end, ".mid") != 0) return -1;
    if (strncmp(mode, "guess_mode.", 11) == 0) {
        *guess = 1, *scale = 1.0f;
        return 0;
    }
    char num[32], *num_end;
    size_t len = (size_t)(end - mode);
    *guess = 0;
    if (strncmp(mode, "scale", 5) != 0 || len - 5 >= sizeof num) return -1;
    memcpy(num, mode + 5, len - 5);
    num[len - 5] = '\0';
    *scale = strtof(num, &num_end);
    return *num && *num_end == '\0' ? 0 : -1;
}

/* controlnet.cond_embedding and controlnet.time_emb.t_batch: the parts of
 * the model mio_run does not return. */
static int check_controlnet_parts(golden_ctx *ctx, golden_env *env, mio_model *mm, const st_file *f,
                                  cnet_error *err) {
    controlnet_model *m = &mm->m.controlnet;
    const st_entry *xs, *ehs, *cond;
    int rc;
    if ((rc = mio_need(f, "controlnet.in.sample", CNET_F32, 4, &xs, err)) ||
        (rc = mio_need(f, "controlnet.in.encoder_hidden_states", CNET_F32, 3, &ehs, err)) ||
        (rc = mio_need(f, "controlnet.in.controlnet_cond", CNET_F32, 4, &cond, err)))
        return rc;
    const int B = (int)xs->view.shape[0], h = (int)xs->view.shape[2], w = (int)xs->view.shape[3];
    const int Nt = (int)ehs->view.shape[1];
    const int H = (int)cond->view.shape[2], W = (int)cond->view.shape[3];
    const int C0 = m->enc.cfg.block_out_channels[0], T = m->enc.temb_channels;
    float t[MIO_MAX_BATCH];
    float *c = mio_upload(&env->be, cond, err);
    float *emb = env->be.alloc(&env->be, (size_t)B * h * w * C0 * sizeof(float));
    float *temb = env->be.alloc(&env->be, (size_t)B * T * sizeof(float));
    if (!c || !emb || !temb) rc = cnet_fail(err, CNET_ENOMEM, "golden: out of memory");
    if (!rc) rc = mio_scratch(mm, controlnet_scratch_bytes(m, B, h, w, Nt), err);
    if (!rc &&
        !(rc = controlnet_cond_embedding(m, &mm->scratch, emb, c, B, H, W, NULL, NULL, err)) &&
        !(rc = cnet_backend_status(&env->be, err))) {
        const int64_t es[4] = {B, C0, h, w};
        golden_compare_nhwc(ctx, env, f, "controlnet.cond_embedding", emb, 4, es);
    }
    if (!rc && !(rc = mio_timesteps(f, "controlnet.in.t_batch", B, t, err)) &&
        !(rc = plain_time_emb(env, mm, &m->enc, &m->params, f, "controlnet", t, B, temb, NULL,
                              err)) &&
        !(rc = cnet_backend_status(&env->be, err))) {
        const int64_t ts[2] = {B, T};
        golden_compare_nhwc(ctx, env, f, "controlnet.time_emb.t_batch", temb, 2, ts);
    }
    float *bufs[] = {c, emb, temb};
    for (int i = 0; i < 3; i++)
        if (bufs[i]) env->be.free(&env->be, bufs[i]);
    return rc;
}

int golden_check_controlnet(golden_ctx *ctx, const st_file *f, cnet_error *err) {
    golden_env env;
    mio_model m;
    mio_outputs o = {0};
    int rc = open_component(ctx, &env, &m, MIO_CONTROLNET, err);
    if (rc) return rc;
    rc = check_controlnet_parts(ctx, &env, &m, f, err);
    for (int e = 0; e < f->n && !rc; e++) {
        const char *name = f->entries[e].name;
        size_t len = strlen(name);
        if (strncmp(name, "controlnet.", 11) != 0 || len < 4 || strcmp(name + len - 4, ".mid"))
            continue;
        char tsel[GOLDEN_RUN_MAX + 1], prefix[GOLDEN_NAME_MAX];
        mio_options opt = mio_defaults();
        if (len - 4 >= sizeof prefix) {
            rc = cnet_fail(err, CNET_EFORMAT, "%s: the run of '%s' is longer than %d bytes",
                           f->path, name, GOLDEN_RUN_MAX);
            break;
        }
        if (parse_run(name, tsel, sizeof tsel, &opt.scale, &opt.guess_mode)) {
            rc = cnet_fail(err, CNET_EFORMAT, "%s: cannot read the run of '%s'", f->path, name);
            break;
        }
        opt.timestep = tsel;
        if ((rc = mio_run(&m, MIO_CONTROLNET, f, &opt, &o, err))) break;
        snprintf(prefix, sizeof prefix, "%.*s", (int)(len - 4), name);
        for (int i = 0; i < o.n; i++) {
            const char *got = o.names[i], *down = "controlnet.down.";
            if (strncmp(got, down, strlen(down)) != 0) continue;
            char dn[GOLDEN_NAME_MAX + MIO_NAME_MAX];
            snprintf(dn, sizeof dn, "%s.down.%s", prefix, got + strlen(down));
            compare_output(ctx, f, &o, got, dn);
        }
        compare_output(ctx, f, &o, "controlnet.mid", name);
    }
    close_component(&env, &m, &o);
    return rc;
}
