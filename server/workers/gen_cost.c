/* A generate request's cost (see gen_cost.h). */
#include "server/workers/gen_cost.h"

#include <limits.h>
#include <stdio.h>
#include <unistd.h>

#include "engine/config/config.h"
#include "engine/image/preprocess.h"
#include "engine/pipeline/pipeline_init.h"

/* The model's native side in px and its VAE factor, from
 * <dir>/unet/config.json (sample_size, in latent px) and
 * <dir>/vae/config.json (its levels; sample_size in px when the UNet has
 * none). */
static int native_size(const char *dir, int *native_px, int *factor, cnet_error *err) {
    char path[PATH_MAX + 32];
    cnet_vae_config vae;
    cnet_unet_config unet;
    snprintf(path, sizeof path, "%s/vae/config.json", dir);
    int rc = cnet_vae_config_load(&vae, path, err);
    if (rc) return cnet_error_prefix(err, "the model's cost");
    *factor = 1 << (vae.n_blocks > 0 ? vae.n_blocks - 1 : 0);
    snprintf(path, sizeof path, "%s/unet/config.json", dir);
    if ((rc = cnet_unet_config_load(&unet, path, err)))
        return cnet_error_prefix(err, "the model's cost");
    *native_px = unet.sample_size > 0  ? unet.sample_size * *factor
                 : vae.sample_size > 0 ? vae.sample_size
                                       : GEN_COST_NATIVE_DEFAULT_PX;
    return 0;
}

int gen_cost_estimate(gen_cost *out, const generate_request *r, int image_w, int image_h,
                      int with_init, cnet_error *err) {
    *out = (gen_cost){0};
    int rc = native_size(r->model_dir, &out->native_px, &out->factor, err);
    if (rc) return rc;
    if ((rc = preprocess_control_size(image_w, image_h, r->width, r->height, out->factor,
                                      &out->width, &out->height, err)))
        return cnet_error_prefix(err, "image");
    const double native_latent = (double)(out->native_px / out->factor);
    out->area = (double)(out->width / out->factor) * (double)(out->height / out->factor) /
                (native_latent * native_latent);
    out->steps = with_init ? pipe_init_steps(r->steps, r->strength) : r->steps;
    out->passes = out->steps * r->num_images * (r->n_prompts > 0 ? r->n_prompts : 1) *
                  (r->guidance > 1.0f ? 2 : 1);
    out->units = out->area * out->passes;
    return 0;
}

int gen_cost_check(const gen_cost *c, const generate_request *r, cnet_error *err) {
    if (c->area > GEN_COST_AREA_MAX)
        return cnet_fail(err, CNET_ELIMIT,
                         "width x height %dx%d is %.1fx the area of this model's native %dx%d, "
                         "over the limit of %dx: give a smaller width and height",
                         c->width, c->height, c->area, c->native_px, c->native_px,
                         GEN_COST_AREA_MAX);
    if (c->units > GEN_COST_UNITS_MAX)
        return cnet_fail(err, CNET_ELIMIT,
                         "this request costs %.0f units (steps run %d x num_images %d x %d "
                         "prompts x %d for guidance %g x %.2f for %dx%d against the model's "
                         "native %dx%d), over the limit of %.0f: lower steps, num_images, the "
                         "prompts or width and height, or send it with \"async\": true",
                         c->units, c->steps, r->num_images, r->n_prompts > 0 ? r->n_prompts : 1,
                         r->guidance > 1.0f ? 2 : 1, (double)r->guidance, c->area, c->width,
                         c->height, c->native_px, c->native_px, GEN_COST_UNITS_MAX);
    return 0;
}
