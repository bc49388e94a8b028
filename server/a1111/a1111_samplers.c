/* A1111's sampler names and their diffusers counterparts among cnet's
 * schedulers (engine/sched), for /sdapi/v1/samplers and a request's
 * sampler_name. The names and aliases are stable-diffusion-webui's
 * (modules/sd_samplers_kdiffusion.py, sd_samplers_timesteps.py); the
 * counterparts are the schedulers diffusers' docs pair with them (Euler a =
 * EulerAncestralDiscreteScheduler, PLMS = PNDMScheduler, ...). The same
 * algorithm, not A1111's pixels: k-diffusion draws its noise and spaces its
 * sigmas its own way. A sampler cnet has no counterpart for (Heun, LMS,
 * DPM2, SDE samplers, "... Karras" sigmas) is not listed and refused by
 * name. */
#include <string.h>
#include <strings.h>

#include "server/a1111/a1111.h"

static const a1111_sampler samplers[] = {
    {"Euler a", {"k_euler_a", "k_euler_ancestral"}, "euler_a"},
    {"Euler", {"k_euler", NULL}, "euler"},
    {"DPM++ 2M", {"k_dpmpp_2m", NULL}, "dpmpp_2m"},
    {"DDIM", {"ddim", NULL}, "ddim"},
    {"PLMS", {"plms", NULL}, "pndm"},
    {"UniPC", {"unipc", NULL}, "unipc"},
};
#define N_SAMPLERS ((int)(sizeof samplers / sizeof samplers[0]))

int a1111_sampler_count(void) { return N_SAMPLERS; }

const a1111_sampler *a1111_sampler_at(int i) {
    return i >= 0 && i < N_SAMPLERS ? &samplers[i] : NULL;
}

const a1111_sampler *a1111_sampler_find(const char *name) {
    for (int i = 0; name && i < N_SAMPLERS; i++) {
        if (!strcmp(samplers[i].name, name)) return &samplers[i];
        for (int k = 0; k < 2; k++)
            if (samplers[i].aliases[k] && !strcasecmp(samplers[i].aliases[k], name))
                return &samplers[i];
    }
    return NULL;
}

json_t *a1111_samplers(void) {
    json_t *out = json_array();
    for (int i = 0; out && i < N_SAMPLERS; i++) {
        json_t *aliases = json_array();
        for (int k = 0; aliases && k < 2; k++)
            if (samplers[i].aliases[k])
                json_array_append_new(aliases, json_string(samplers[i].aliases[k]));
        json_t *one = json_pack("{s:s, s:o, s:{}, s:s}", "name", samplers[i].name, "aliases",
                                aliases, "options", "cnet_scheduler", samplers[i].scheduler);
        if (!one || json_array_append_new(out, one)) {
            json_decref(out);
            return NULL;
        }
    }
    return out;
}

const char *a1111_base64(const json_t *v) {
    const char *s = json_string_value(v);
    if (s && !strncmp(s, "data:", 5)) {
        const char *comma = strstr(s, ";base64,");
        if (comma) return comma + 8;
    }
    return s;
}
