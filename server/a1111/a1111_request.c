/* An A1111 txt2img / img2img body (stable-diffusion-webui's
 * StableDiffusionTxt2ImgProcessingAPI / Img2ImgProcessingAPI members, as
 * modules/api/models.py derives them from processing.py) into cnet's
 * generate request: one table of the members, each translated, accepted as
 * changing no pixel, or accepted only "off" (refused by name otherwise).
 * A member A1111 leaves out takes A1111's default (512x512, 50 steps, CFG 7,
 * a random seed); the values then meet api/api_generate.c's table, whose
 * limits decide. The ControlNet units are a1111_units.c's.
 *
 * Samplers: a1111_samplers.c ("... Karras" and A1111's scheduler member other
 * than "Automatic" are refused: cnet's schedulers space their steps as the
 * base folder's scheduler config says). override_settings:
 * sd_model_checkpoint (the base model, " [hash]" dropped; default
 * a1111_default_model's) and CLIP_stop_at_last_layers (N → clip_skip N-1).
 * img2img: init_images[0] → init_image, denoising_strength → strength,
 * mask → mask_image, inpaint_full_res + inpaint_full_res_padding →
 * padding_mask_crop (diffusers' crop around the mask is A1111's "only
 * masked"); the mask's own options only at the values diffusers' pipeline
 * has (no blur, "original" fill, not inverted). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "server/a1111/a1111.h"

typedef enum {
    R_COPY, /* the value as is, to .cnet */
    R_SEED,
    R_SAMPLER,
    R_SCHEDULER,
    R_OVERRIDE,
    R_SCRIPTS,
    R_INIT_IMAGES, /* img2img */
    R_MASK,        /* img2img */
    R_FULL_RES,    /* img2img */
    R_INERT,       /* changes no pixel */
    R_OFF,         /* accepted only off: null, false, 0, "", [], {} or .also */
    R_MASK_OFF,    /* R_OFF where a mask is given; inert without one */
} req_kind;

enum { TXT2IMG = 1, IMG2IMG = 2, BOTH = 3 };

typedef struct req_member {
    const char *name;
    req_kind kind;
    int routes;       /* TXT2IMG | IMG2IMG */
    const char *cnet; /* the cnet field it becomes (R_COPY's, and in error names) */
    const char *also; /* R_OFF, R_MASK_OFF: one more value that is off (JSON) */
} req_member;

static const req_member members[] = {
    {"prompt", R_COPY, BOTH, "prompt", NULL},
    {"negative_prompt", R_COPY, BOTH, "negative_prompt", NULL},
    {"steps", R_COPY, BOTH, "steps", NULL},
    {"cfg_scale", R_COPY, BOTH, "guidance", NULL},
    {"width", R_COPY, BOTH, "width", NULL},
    {"height", R_COPY, BOTH, "height", NULL},
    {"batch_size", R_COPY, BOTH, "num_images", NULL},
    {"eta", R_COPY, BOTH, "eta", NULL},
    {"denoising_strength", R_COPY, IMG2IMG, "strength", NULL},
    {"seed", R_SEED, BOTH, NULL, NULL},
    {"sampler_name", R_SAMPLER, BOTH, "scheduler", NULL},
    {"sampler_index", R_SAMPLER, BOTH, NULL, NULL},
    {"scheduler", R_SCHEDULER, BOTH, NULL, NULL},
    {"override_settings", R_OVERRIDE, BOTH, NULL, NULL},
    {"alwayson_scripts", R_SCRIPTS, BOTH, NULL, NULL},
    {"init_images", R_INIT_IMAGES, IMG2IMG, "init_image", NULL},
    {"mask", R_MASK, IMG2IMG, "mask_image", NULL},
    {"inpaint_full_res", R_FULL_RES, IMG2IMG, "padding_mask_crop", NULL},
    {"inpaint_full_res_padding", R_INERT, IMG2IMG, NULL, NULL}, /* read by inpaint_full_res */
    {"n_iter", R_OFF, BOTH, NULL, "1"},
    {"styles", R_OFF, BOTH, NULL, NULL},
    {"restore_faces", R_OFF, BOTH, NULL, NULL},
    {"tiling", R_OFF, BOTH, NULL, NULL},
    {"enable_hr", R_OFF, TXT2IMG, NULL, NULL},
    {"subseed_strength", R_OFF, BOTH, NULL, NULL},
    {"seed_resize_from_h", R_OFF, BOTH, NULL, "-1"},
    {"seed_resize_from_w", R_OFF, BOTH, NULL, "-1"},
    {"s_churn", R_OFF, BOTH, NULL, NULL},
    {"s_tmin", R_OFF, BOTH, NULL, NULL},
    {"s_tmax", R_OFF, BOTH, NULL, NULL},
    {"s_noise", R_OFF, BOTH, NULL, "1"},
    {"s_min_uncond", R_OFF, BOTH, NULL, NULL},
    {"script_name", R_OFF, BOTH, NULL, NULL},
    {"script_args", R_OFF, BOTH, NULL, NULL},
    {"refiner_checkpoint", R_OFF, BOTH, NULL, NULL},
    {"infotext", R_OFF, BOTH, NULL, NULL},
    {"firstpass_image", R_OFF, TXT2IMG, NULL, NULL},
    {"latent_mask", R_OFF, IMG2IMG, NULL, NULL},
    {"initial_noise_multiplier", R_OFF, IMG2IMG, NULL, "1"},
    {"resize_mode", R_OFF, IMG2IMG, NULL, NULL}, /* 0: "Just resize", diffusers' image processor */
    {"mask_blur", R_MASK_OFF, IMG2IMG, NULL, NULL},
    {"mask_blur_x", R_MASK_OFF, IMG2IMG, NULL, NULL},
    {"mask_blur_y", R_MASK_OFF, IMG2IMG, NULL, NULL},
    {"inpainting_fill", R_MASK_OFF, IMG2IMG, NULL, "1"}, /* 1: "original" */
    {"inpainting_mask_invert", R_MASK_OFF, IMG2IMG, NULL, NULL},
    {"mask_round", R_INERT, IMG2IMG, NULL, NULL},
    {"image_cfg_scale", R_INERT, IMG2IMG, NULL, NULL}, /* instruct-pix2pix models only */
    {"include_init_images", R_INERT, IMG2IMG, NULL, NULL},
    {"subseed", R_INERT, BOTH, NULL, NULL}, /* with subseed_strength 0 */
    {"seed_enable_extras", R_INERT, BOTH, NULL, NULL},
    {"refiner_switch_at", R_INERT, BOTH, NULL, NULL},
    {"do_not_save_samples", R_INERT, BOTH, NULL, NULL},
    {"do_not_save_grid", R_INERT, BOTH, NULL, NULL},
    {"save_images", R_INERT, BOTH, NULL, NULL},
    {"send_images", R_INERT, BOTH, NULL, NULL},
    {"comments", R_INERT, BOTH, NULL, NULL},
    {"disable_extra_networks", R_INERT, BOTH, NULL, NULL},
    {"override_settings_restore_afterwards", R_INERT, BOTH, NULL, NULL},
    {"force_task_id", R_INERT, BOTH, NULL, NULL},
    /* hires fix's members, with enable_hr off */
    {"hr_scale", R_INERT, TXT2IMG, NULL, NULL},
    {"hr_upscaler", R_INERT, TXT2IMG, NULL, NULL},
    {"hr_second_pass_steps", R_INERT, TXT2IMG, NULL, NULL},
    {"hr_resize_x", R_INERT, TXT2IMG, NULL, NULL},
    {"hr_resize_y", R_INERT, TXT2IMG, NULL, NULL},
    {"hr_checkpoint_name", R_INERT, TXT2IMG, NULL, NULL},
    {"hr_sampler_name", R_INERT, TXT2IMG, NULL, NULL},
    {"hr_scheduler", R_INERT, TXT2IMG, NULL, NULL},
    {"hr_prompt", R_INERT, TXT2IMG, NULL, NULL},
    {"hr_negative_prompt", R_INERT, TXT2IMG, NULL, NULL},
    {"hr_cfg", R_INERT, TXT2IMG, NULL, NULL},
    {"hr_additional_modules", R_INERT, TXT2IMG, NULL, NULL},
    {"firstphase_width", R_INERT, TXT2IMG, NULL, NULL},
    {"firstphase_height", R_INERT, TXT2IMG, NULL, NULL},
    {"denoising_strength", R_INERT, TXT2IMG, NULL, NULL}, /* hires fix's */
};
#define N_MEMBERS ((int)(sizeof members / sizeof members[0]))

static int is_off(const json_t *v, const char *also) {
    if (json_is_null(v) || json_is_false(v) || (json_is_number(v) && json_number_value(v) == 0) ||
        (json_is_string(v) && !json_string_length(v)) ||
        (json_is_array(v) && !json_array_size(v)) || (json_is_object(v) && !json_object_size(v)))
        return 1;
    json_t *a = also ? json_loads(also, JSON_DECODE_ANY, NULL) : NULL;
    const int same = a && json_is_number(a) && json_is_number(v)
                         ? json_number_value(a) == json_number_value(v)
                         : a && json_equal(a, v);
    json_decref(a);
    return same;
}

/* name without a trailing " [hash]" into out. */
static int strip_hash(const char *name, char *out, size_t cap) {
    size_t n = strcspn(name, "[");
    while (n && name[n - 1] == ' ') n--;
    if (!n || n >= cap) return -1;
    snprintf(out, cap, "%.*s", (int)n, name);
    return 0;
}

static int set(json_t *req, const char *key, json_t *v, api_error *e) {
    return json_object_set_new(req, key, v)
               ? api_fail(e, 503, "out_of_memory", NULL, "out of memory")
               : 0;
}

/* override_settings: the base model and CLIP skip; other settings refused by name. */
static int overrides(const json_t *o, json_t *req, api_error *e) {
    const char *key;
    json_t *v;
    char path[128];
    if (o && !json_is_object(o) && !json_is_null(o))
        return api_fail(e, A1111_STATUS, "invalid_field", "override_settings",
                        "override_settings must be an object");
    json_object_foreach((json_t *)o, key, v) {
        snprintf(path, sizeof path, "override_settings.%.64s", key);
        if (!strcmp(key, "sd_model_checkpoint")) {
            char ref[API_REF_MAX + 1];
            if (!json_is_string(v) || strip_hash(json_string_value(v), ref, sizeof ref))
                return api_fail(e, A1111_STATUS, "invalid_field", path,
                                "%s must name a model of GET /sdapi/v1/sd-models", path);
            int rc = set(req, "model", json_string(ref), e);
            if (rc) return rc;
        } else if (!strcmp(key, "CLIP_stop_at_last_layers")) {
            if (!json_is_integer(v) || json_integer_value(v) < 1)
                return api_fail(e, A1111_STATUS, "invalid_field", path,
                                "%s must be an integer from 1 (no layer skipped)", path);
            int rc = set(req, "clip_skip", json_integer(json_integer_value(v) - 1), e);
            if (rc) return rc;
        } else {
            return api_fail(e, A1111_STATUS, "unsupported", path,
                            "%s: cnet takes sd_model_checkpoint and CLIP_stop_at_last_layers "
                            "here, no other setting",
                            path);
        }
    }
    return 0;
}

static int sampler(const char *name, const json_t *v, json_t *req, api_error *e) {
    const a1111_sampler *s = json_is_string(v) ? a1111_sampler_find(json_string_value(v)) : NULL;
    if (json_is_null(v)) return 0;
    if (!s)
        return api_fail(e, A1111_STATUS, "unknown_sampler", name,
                        "%s: cnet has no sampler '%s' (GET /sdapi/v1/samplers names those it "
                        "runs; \"... Karras\" sigmas it has not)",
                        name, json_is_string(v) ? json_string_value(v) : "(not a string)");
    return set(req, "scheduler", json_string(s->scheduler), e);
}

/* One member of body into req (or refused). */
static int member(const req_member *m, const json_t *v, const json_t *body, json_t *req,
                  api_error *e) {
    const char *n = m->name;
    switch (m->kind) {
    case R_COPY:
        return json_is_null(v) ? 0 : set(req, m->cnet, json_deep_copy(v), e);
    case R_SEED:
        if (json_is_integer(v) && json_integer_value(v) == -1) return 0; /* random */
        return set(req, "seed", json_deep_copy(v), e);
    case R_SAMPLER:
        return sampler(n, v, req, e);
    case R_SCHEDULER:
        if (is_off(v, "\"Automatic\"")) return 0;
        return api_fail(e, A1111_STATUS, "unsupported", n,
                        "%s: cnet spaces the steps as the base model's scheduler config says "
                        "(\"Automatic\"), not '%s'",
                        n, json_is_string(v) ? json_string_value(v) : "?");
    case R_OVERRIDE:
        return overrides(v, req, e);
    case R_INIT_IMAGES:
        if (!json_is_array(v) || json_array_size(v) != 1 || !json_is_string(json_array_get(v, 0)))
            return api_fail(e, A1111_STATUS, "invalid_field", n,
                            "%s must hold one base64 image (cnet makes a batch from one init "
                            "image)",
                            n);
        return set(req, "init_image", json_string(a1111_base64(json_array_get(v, 0))), e);
    case R_MASK:
        return json_is_null(v) ? 0 : set(req, "mask_image", json_string(a1111_base64(v)), e);
    case R_FULL_RES: {
        if (!json_is_true(v) && !(json_is_integer(v) && json_integer_value(v) == 1)) return 0;
        const json_t *pad = json_object_get(body, "inpaint_full_res_padding");
        return set(req, "padding_mask_crop", pad ? json_deep_copy(pad) : json_integer(32), e);
    }
    case R_MASK_OFF:
        if (!json_is_string(json_object_get(body, "mask"))) return 0;
        /* fall through */
    case R_OFF:
        if (is_off(v, m->also)) return 0;
        return api_fail(e, A1111_STATUS, "unsupported", n,
                        "%s: cnet has no such feature (it runs diffusers' pipelines); leave it "
                        "off",
                        n);
    case R_SCRIPTS: /* a1111_units, once the size is known */
    case R_INERT:
        return 0;
    }
    return 0;
}

static int translate(const json_t *body, const api_roots *roots, int route, json_t **out,
                     api_error *e) {
    *out = NULL;
    json_t *req =
        json_pack("{s:s, s:i, s:i, s:i, s:f}", "prompt", "", "width", A1111_DEFAULT_SIZE, "height",
                  A1111_DEFAULT_SIZE, "steps", A1111_DEFAULT_STEPS, "guidance", A1111_DEFAULT_CFG);
    if (!req) return api_fail(e, 503, "out_of_memory", NULL, "out of memory");
    const char *key;
    json_t *v;
    int rc = 0;
    json_object_foreach((json_t *)body, key, v) {
        const req_member *m = NULL;
        for (int i = 0; i < N_MEMBERS && !m; i++)
            if ((members[i].routes & route) && !strcmp(members[i].name, key)) m = &members[i];
        rc = m ? member(m, v, body, req, e)
               : api_fail(e, A1111_STATUS, "unknown_field", key,
                          "%.100s: not a member of %s that cnet knows", key,
                          route == TXT2IMG ? "txt2img" : "img2img");
        if (rc) break;
    }
    if (!rc && !json_object_get(req, "model")) {
        char model[API_REF_MAX + 1];
        a1111_default_model(roots->models_dir, model, sizeof model);
        rc = model[0]
                 ? set(req, "model", json_string(model), e)
                 : api_fail(e, A1111_STATUS, "not_found", "override_settings.sd_model_checkpoint",
                            "no base model under --models to generate with");
    }
    if (!rc) rc = a1111_units(body, req, e);
    if (rc) {
        json_decref(req);
        return rc;
    }
    *out = req;
    return 0;
}

/* The A1111 member a cnet top-level field comes from; NULL when none. */
static const char *member_of(const char *cnet) {
    if (!strcmp(cnet, "model")) return "override_settings.sd_model_checkpoint";
    if (!strcmp(cnet, "clip_skip")) return "override_settings.CLIP_stop_at_last_layers";
    for (int i = 0; i < N_MEMBERS; i++)
        if (members[i].cnet && !strcmp(members[i].cnet, cnet)) return members[i].name;
    return NULL;
}

void a1111_error_names(const json_t *body, api_error *e) {
    char name[sizeof e->field], rest[sizeof e->field];
    int k = -1, n = 0;
    if (sscanf(e->field, "controlnets[%d].%127s%n", &k, rest, &n) == 2 && k >= 0) {
        if (a1111_unit_field(body, k, rest, name, sizeof name)) return;
    } else {
        const char *m = e->field[0] ? member_of(e->field) : NULL;
        if (!m || !strcmp(m, e->field)) return;
        snprintf(name, sizeof name, "%s", m);
    }
    char message[sizeof e->message + 2 * sizeof e->field + 16];
    snprintf(message, sizeof message, "%s (cnet's %s): %s", name, e->field, e->message);
    const size_t len =
        strlen(message) < sizeof e->message ? strlen(message) : sizeof e->message - 1;
    memcpy(e->message, message, len); /* cut at the message's size */
    e->message[len] = '\0';
    memcpy(e->field, name, sizeof e->field);
}

int a1111_txt2img_request(const json_t *body, const api_roots *roots, json_t **req, api_error *e) {
    return translate(body, roots, TXT2IMG, req, e);
}

int a1111_img2img_request(const json_t *body, const api_roots *roots, json_t **req, api_error *e) {
    return translate(body, roots, IMG2IMG, req, e);
}
