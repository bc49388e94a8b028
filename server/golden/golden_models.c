/* Golden checks of the model components: goldens/text_encoder, vae, unet and
 * controlnet.safetensors. Each runs the component of the fixture's model
 * folder on the golden inputs (`<stem>.in.*` and the inputs named in the
 * goldens README) on the CPU backend and compares every output. Inputs and
 * outputs are PyTorch NCHW; the engine is NHWC, so 4-d tensors are converted
 * at this boundary (server/golden/model_io.h). Run names (e.g.
 * controlnet.t_batch.scale0.5) are parsed, not listed, so other fixture
 * directories work as long as they keep the naming of the goldens README. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/models/clip_text.h"
#include "engine/models/controlnet.h"
#include "engine/core/layout.h"
#include "engine/models/unet.h"
#include "engine/models/vae.h"
#include "server/golden/golden.h"
#include "server/golden/golden_io.h"
#include "server/golden/model_io.h"

/* ---- text encoder ---- */

int golden_check_text_encoder(golden_ctx *ctx, const st_file *f, cnet_error *err) {
    char dir[PATH_MAX + 16];
    snprintf(dir, sizeof dir, "%s/text_encoder", ctx->model_dir);
    const st_entry *ids;
    int rc = mio_need(f, "text_encoder.input_ids", CNET_I64, 2, &ids, err);
    if (rc) return rc;
    const int P = (int)ids->view.shape[0], L = (int)ids->view.shape[1];
    int64_t *ids_host = malloc((size_t)P * L * sizeof *ids_host);
    if (!ids_host) return cnet_fail(err, CNET_ENOMEM, "golden: out of memory");
    memcpy(ids_host, ids->view.data, (size_t)P * L * sizeof *ids_host);
    golden_env env;
    clip_text_model m;
    if ((rc = golden_env_init(&env, ctx, err))) goto out_ids;
    if ((rc = clip_text_open(&m, &env.be, dir, err))) goto out_env;
    const int D = m.hidden;
    float *hidden = env.be.alloc(&env.be, (size_t)P * L * D * sizeof(float));
    float *pooled = env.be.alloc(&env.be, (size_t)P * D * sizeof(float));
    if (!hidden || !pooled) rc = cnet_fail(err, CNET_ENOMEM, "golden: out of memory");
    if (!rc) rc = golden_env_scratch(&env, clip_text_scratch_bytes(&m, P, L), err);
    if (!rc) rc = clip_text_forward(&m, &env.scratch, hidden, pooled, ids_host, P, L, 0, err);
    if (!rc) {
        const int64_t hs[3] = {P, L, D}, ps[2] = {P, D};
        golden_compare_nhwc(ctx, &env, f, "text_encoder.last_hidden_state", hidden, 3, hs);
        golden_compare_nhwc(ctx, &env, f, "text_encoder.pooler_output", pooled, 2, ps);
    }
    env.be.free(&env.be, hidden);
    env.be.free(&env.be, pooled);
    clip_text_free(&m);
out_env:
    golden_env_free(&env);
out_ids:
    free(ids_host);
    return rc;
}

/* ---- VAE ---- */

/* mean, logvar (clamped to [-30, 20]) and std from NCHW moments [B,2L,h,w]. */
static void report_distribution(golden_ctx *ctx, const st_file *f, const float *moments, int B,
                                int Lc, int hw) {
    size_t n = (size_t)B * Lc * hw;
    float *mean = malloc(n * sizeof(float)), *logvar = malloc(n * sizeof(float)),
          *stdev = malloc(n * sizeof(float));
    if (mean && logvar && stdev) {
        mio_vae_distribution(mean, logvar, stdev, moments, B, Lc, (size_t)hw);
        const char *names[3] = {"vae.encode.mean", "vae.encode.logvar", "vae.encode.std"};
        float *data[3] = {mean, logvar, stdev};
        for (int k = 0; k < 3; k++) {
            const st_entry *e = st_find(f, names[k]);
            if (!e) continue;
            cnet_tensor t = e->view;
            t.dtype = CNET_F32, t.data = data[k], t.device = -1;
            golden_compare(ctx, f, names[k], &t);
        }
    }
    free(mean);
    free(logvar);
    free(stdev);
}

int golden_check_vae(golden_ctx *ctx, const st_file *f, cnet_error *err) {
    char dir[PATH_MAX + 16];
    snprintf(dir, sizeof dir, "%s/vae", ctx->model_dir);
    const st_entry *x, *z;
    int rc;
    if ((rc = mio_need(f, "vae.encode.input", CNET_F32, 4, &x, err)) ||
        (rc = mio_need(f, "vae.decode.input", CNET_F32, 4, &z, err)))
        return rc;
    golden_env env;
    vae_model m;
    if ((rc = golden_env_init(&env, ctx, err))) return rc;
    if ((rc = vae_open(&m, &env.be, dir, err))) goto out_env;
    const int B = (int)x->view.shape[0], C = (int)x->view.shape[1], H = (int)x->view.shape[2],
              W = (int)x->view.shape[3], fct = vae_factor(&m), Lc = m.cfg.latent_channels;
    const int h = H / fct, w = W / fct;
    const int Bz = (int)z->view.shape[0], hz = (int)z->view.shape[2], wz = (int)z->view.shape[3];
    float *x_dev = mio_upload(&env.be, x, err), *z_dev = mio_upload(&env.be, z, err);
    float *moments = env.be.alloc(&env.be, (size_t)B * h * w * 2 * Lc * sizeof(float));
    float *image = env.be.alloc(&env.be, (size_t)Bz * hz * wz * fct * fct * m.cfg.out_channels *
                                             sizeof(float));
    float *host = malloc((size_t)B * h * w * 2 * Lc * sizeof(float) * 2);
    if (!x_dev || !z_dev || !moments || !image || !host)
        rc = cnet_fail(err, CNET_ENOMEM, "golden: out of memory");
    size_t need_bytes = vae_scratch_bytes(&m, B > Bz ? B : Bz, H > hz * fct ? H : hz * fct,
                                          W > wz * fct ? W : wz * fct);
    if (!rc) rc = golden_env_scratch(&env, need_bytes, err);
    if (!rc) rc = vae_encode(&m, &env.scratch, moments, x_dev, B, H, W, err);
    if (!rc) {
        (void)C;
        const int64_t ms[4] = {B, 2 * Lc, h, w};
        golden_compare_nhwc(ctx, &env, f, "vae.encode.moments", moments, 4, ms);
        float *nhwc = host + (size_t)B * h * w * 2 * Lc;
        env.be.download(&env.be, nhwc, moments, (size_t)B * h * w * 2 * Lc * sizeof(float));
        layout_nhwc_to_nchw(host, nhwc, B, 2 * Lc, h, w);
        report_distribution(ctx, f, host, B, Lc, h * w);
    }
    if (!rc) rc = vae_decode(&m, &env.scratch, image, z_dev, Bz, hz, wz, err);
    if (!rc) {
        const int64_t is[4] = {Bz, m.cfg.out_channels, hz * fct, wz * fct};
        golden_compare_nhwc(ctx, &env, f, "vae.decode.output", image, 4, is);
        cnet_tensor sf = {CNET_F32, 0, {0}, &m.cfg.scaling_factor, -1};
        golden_compare(ctx, f, "vae.scaling_factor", &sf);
    }
    free(host);
    env.be.free(&env.be, x_dev);
    env.be.free(&env.be, z_dev);
    env.be.free(&env.be, moments);
    env.be.free(&env.be, image);
    vae_free(&m);
out_env:
    golden_env_free(&env);
    return rc;
}

/* ---- UNet ---- */

/* Device buffers for the skip-shaped residual inputs "<prefix>.<i>" (NHWC). */
static int upload_residuals(golden_env *env, const st_file *f, const char *prefix, int n,
                            float **out, cnet_error *err) {
    for (int i = 0; i < n; i++) {
        char name[96];
        snprintf(name, sizeof name, "%s.%d", prefix, i);
        const st_entry *e;
        int rc = mio_need(f, name, CNET_F32, 4, &e, err);
        if (rc) return rc;
        if (!(out[i] = mio_upload(&env->be, e, err))) return err ? err->code : CNET_ENOMEM;
    }
    return 0;
}

int golden_check_unet(golden_ctx *ctx, const st_file *f, cnet_error *err) {
    char dir[PATH_MAX + 16];
    snprintf(dir, sizeof dir, "%s/unet", ctx->model_dir);
    const st_entry *xs, *ehs;
    int rc;
    if ((rc = mio_need(f, "unet.in.sample", CNET_F32, 4, &xs, err)) ||
        (rc = mio_need(f, "unet.in.encoder_hidden_states", CNET_F32, 3, &ehs, err)))
        return rc;
    const int B = (int)xs->view.shape[0], h = (int)xs->view.shape[2], w = (int)xs->view.shape[3];
    const int Nt = (int)ehs->view.shape[1];
    golden_env env;
    unet_model m;
    float *res[UNET_MAX_SKIPS] = {0}, *mid_res = NULL, *x = NULL, *text = NULL, *out = NULL;
    float *proj = NULL, *temb = NULL, *temb_act = NULL;
    if ((rc = golden_env_init(&env, ctx, err))) return rc;
    if ((rc = unet_open(&m, &env.be, dir, err))) goto out_env;
    unet_sizes s;
    const int Cout = m.enc.cfg.out_channels, C0 = m.enc.cfg.block_out_channels[0];
    if ((rc = unet_encoder_sizes(&m.enc, B, h, w, &s, err))) goto out_model;
    x = mio_upload(&env.be, xs, err);
    text = mio_upload(&env.be, ehs, err);
    out = env.be.alloc(&env.be, (size_t)B * h * w * Cout * sizeof(float));
    proj = env.be.alloc(&env.be, (size_t)B * C0 * sizeof(float));
    temb = env.be.alloc(&env.be, (size_t)B * m.enc.temb_channels * sizeof(float));
    temb_act = env.be.alloc(&env.be, (size_t)B * m.enc.temb_channels * sizeof(float));
    if (!x || !text || !out || !proj || !temb || !temb_act) {
        rc = cnet_fail(err, CNET_ENOMEM, "golden: out of memory");
        goto out_bufs;
    }
    if ((rc = golden_env_scratch(&env, unet_scratch_bytes(&m, B, h, w, Nt), err))) goto out_bufs;

    /* The timestep embedding of t_batch. */
    float t[MIO_MAX_BATCH];
    if ((rc = mio_timesteps(f, "unet.in.t_batch", B, t, err)) ||
        (rc = unet_encoder_time(&m.enc, &m.params, &env.scratch, temb_act, temb, proj, t, B, NULL,
                                NULL, err)))
        goto out_bufs;
    const int64_t ps[2] = {B, C0}, ts[2] = {B, m.enc.temb_channels};
    golden_compare_nhwc(ctx, &env, f, "unet.time_proj.t_batch", proj, 2, ps);
    golden_compare_nhwc(ctx, &env, f, "unet.time_emb.t_batch", temb, 2, ts);

    /* unet.out.plain.<t> for every timestep input the file has. */
    const int64_t os[4] = {B, Cout, h, w};
    static const char *const tsel[] = {"t_batch", "t_scalar", "t_float"};
    for (int k = 0; k < 3 && !rc; k++) {
        char in[64], name[64];
        snprintf(in, sizeof in, "unet.in.%s", tsel[k]);
        snprintf(name, sizeof name, "unet.out.plain.%s", tsel[k]);
        if (!st_find(f, in) || !st_find(f, name)) continue;
        if ((rc = mio_timesteps(f, in, B, t, err))) break;
        rc = unet_forward(&m, &env.scratch, out, x, t, text, NULL, NULL, B, h, w, Nt, NULL, NULL,
                          err);
        if (!rc) golden_compare_nhwc(ctx, &env, f, name, out, 4, os);
    }
    /* With ControlNet residuals. */
    if (!rc && st_find(f, "unet.out.residuals.t_batch")) {
        const st_entry *mr;
        if (!(rc = upload_residuals(&env, f, "unet.in.down_residual", s.n_skips, res, err)) &&
            !(rc = mio_need(f, "unet.in.mid_residual", CNET_F32, 4, &mr, err)) &&
            !(mid_res = mio_upload(&env.be, mr, err)))
            rc = err ? err->code : CNET_ENOMEM;
        if (!rc) rc = mio_timesteps(f, "unet.in.t_batch", B, t, err);
        if (!rc)
            rc = unet_forward(&m, &env.scratch, out, x, t, text, (const float *const *)res, mid_res,
                              B, h, w, Nt, NULL, NULL, err);
        if (!rc) golden_compare_nhwc(ctx, &env, f, "unet.out.residuals.t_batch", out, 4, os);
    }
out_bufs:
    for (int i = 0; i < UNET_MAX_SKIPS; i++)
        if (res[i]) env.be.free(&env.be, res[i]);
    float *bufs[] = {mid_res, x, text, out, proj, temb, temb_act};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (bufs[i]) env.be.free(&env.be, bufs[i]);
out_model:
    unet_free(&m);
out_env:
    golden_env_free(&env);
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

int golden_check_controlnet(golden_ctx *ctx, const st_file *f, cnet_error *err) {
    char dir[PATH_MAX + 16];
    snprintf(dir, sizeof dir, "%s/controlnet", ctx->model_dir);
    const st_entry *xs, *ehs, *cond;
    int rc;
    if ((rc = mio_need(f, "controlnet.in.sample", CNET_F32, 4, &xs, err)) ||
        (rc = mio_need(f, "controlnet.in.encoder_hidden_states", CNET_F32, 3, &ehs, err)) ||
        (rc = mio_need(f, "controlnet.in.controlnet_cond", CNET_F32, 4, &cond, err)))
        return rc;
    const int B = (int)xs->view.shape[0], h = (int)xs->view.shape[2], w = (int)xs->view.shape[3];
    const int Nt = (int)ehs->view.shape[1];
    const int H = (int)cond->view.shape[2], W = (int)cond->view.shape[3];
    golden_env env;
    controlnet_model m;
    float *down[UNET_MAX_SKIPS] = {0}, *mid = NULL, *x = NULL, *text = NULL, *c = NULL;
    float *emb = NULL, *temb = NULL, *temb_act = NULL;
    if ((rc = golden_env_init(&env, ctx, err))) return rc;
    if ((rc = controlnet_open(&m, &env.be, dir, err))) goto out_env;
    unet_sizes s;
    const int C0 = m.enc.cfg.block_out_channels[0];
    if ((rc = unet_encoder_sizes(&m.enc, B, h, w, &s, err))) goto out_model;
    x = mio_upload(&env.be, xs, err);
    text = mio_upload(&env.be, ehs, err);
    c = mio_upload(&env.be, cond, err);
    mid = env.be.alloc(&env.be, s.mid_floats * sizeof(float));
    emb = env.be.alloc(&env.be, (size_t)B * h * w * C0 * sizeof(float));
    temb = env.be.alloc(&env.be, (size_t)B * m.enc.temb_channels * sizeof(float));
    temb_act = env.be.alloc(&env.be, (size_t)B * m.enc.temb_channels * sizeof(float));
    rc = !x || !text || !c || !mid || !emb || !temb || !temb_act ? CNET_ENOMEM : 0;
    for (int i = 0; i < s.n_skips && !rc; i++)
        if (!(down[i] = env.be.alloc(&env.be, s.skip_floats[i] * sizeof(float)))) rc = CNET_ENOMEM;
    if (rc) {
        rc = cnet_fail(err, CNET_ENOMEM, "golden: out of memory");
        goto out_bufs;
    }
    if ((rc = golden_env_scratch(&env, controlnet_scratch_bytes(&m, B, h, w, Nt), err)))
        goto out_bufs;

    if (!(rc = controlnet_cond_embedding(&m, &env.scratch, emb, c, B, H, W, NULL, NULL, err))) {
        const int64_t es[4] = {B, C0, h, w};
        golden_compare_nhwc(ctx, &env, f, "controlnet.cond_embedding", emb, 4, es);
    }
    float t[MIO_MAX_BATCH];
    if (!rc && !(rc = mio_timesteps(f, "controlnet.in.t_batch", B, t, err)) &&
        !(rc = unet_encoder_time(&m.enc, &m.params, &env.scratch, temb_act, temb, NULL, t, B, NULL,
                                 NULL, err))) {
        const int64_t ts[2] = {B, m.enc.temb_channels};
        golden_compare_nhwc(ctx, &env, f, "controlnet.time_emb.t_batch", temb, 2, ts);
    }
    for (int e = 0; e < f->n && !rc; e++) {
        const char *name = f->entries[e].name;
        size_t len = strlen(name);
        if (strncmp(name, "controlnet.", 11) != 0 || len < 4 || strcmp(name + len - 4, ".mid"))
            continue;
        char tsel[32], in[64], prefix[128];
        float scale;
        int guess;
        if (parse_run(name, tsel, sizeof tsel, &scale, &guess)) {
            rc = cnet_fail(err, CNET_EFORMAT, "%s: cannot read the run of '%s'", f->path, name);
            break;
        }
        snprintf(in, sizeof in, "controlnet.in.%s", tsel);
        if ((rc = mio_timesteps(f, in, B, t, err))) break;
        rc = controlnet_forward(&m, &env.scratch, down, mid, x, c, t, text, scale, guess, B, h, w,
                                Nt, NULL, NULL, err);
        if (rc) break;
        snprintf(prefix, sizeof prefix, "%.*s", (int)(len - 4), name);
        for (int i = 0; i < s.n_skips; i++) {
            char dn[160];
            snprintf(dn, sizeof dn, "%s.down.%d", prefix, i);
            const int64_t ds[4] = {
                B, (int64_t)(s.skip_floats[i] / ((size_t)B * s.skip_h[i] * s.skip_w[i])),
                s.skip_h[i], s.skip_w[i]};
            golden_compare_nhwc(ctx, &env, f, dn, down[i], 4, ds);
        }
        const int64_t ms[4] = {B, m.enc.cfg.block_out_channels[m.enc.cfg.n_blocks - 1], s.mid_h,
                               s.mid_w};
        golden_compare_nhwc(ctx, &env, f, name, mid, 4, ms);
    }
out_bufs:
    for (int i = 0; i < UNET_MAX_SKIPS; i++)
        if (down[i]) env.be.free(&env.be, down[i]);
    float *bufs[] = {mid, x, text, c, emb, temb, temb_act};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (bufs[i]) env.be.free(&env.be, bufs[i]);
out_model:
    controlnet_free(&m);
out_env:
    golden_env_free(&env);
    return rc;
}
