/* libFuzzer target: the config.json readers (engine/config/): the input's
 * first byte picks the reader — UNet, ControlNet, VAE, CLIP text encoder,
 * scheduler (its _class_name decides the class) or model_index.json — and
 * the rest is the file it reads (engine/config/config_json.c's strict JSON,
 * then each reader's fields and derived values). Corpus:
 * tests/fuzz/corpus/config (a seed's first byte names its reader). */
#include <limits.h>

#include "engine/config/config.h"
#include "tests/fuzz/lib_fuzz.h"

enum { FUZZ_UNET, FUZZ_CONTROLNET, FUZZ_VAE, FUZZ_CLIP_TEXT, FUZZ_SCHED, FUZZ_INDEX, FUZZ_READERS };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    char path[PATH_MAX];
    fuzz_file(path, sizeof path, "config.json", data + 1, size - 1);
    cnet_error err = {0};
    switch (data[0] % FUZZ_READERS) {
    case FUZZ_UNET: {
        cnet_unet_config c;
        cnet_unet_config_load(&c, path, &err);
        break;
    }
    case FUZZ_CONTROLNET: {
        cnet_unet_config c;
        cnet_controlnet_config_load(&c, path, &err);
        break;
    }
    case FUZZ_VAE: {
        cnet_vae_config c;
        cnet_vae_config_load(&c, path, &err);
        break;
    }
    case FUZZ_CLIP_TEXT: {
        cnet_clip_text_config c;
        cnet_clip_text_config_load(&c, path, &err);
        break;
    }
    case FUZZ_SCHED: {
        cnet_sched_config c;
        if (cnet_sched_config_load(&c, path, -1, &err) == 0) cnet_sched_config_free(&c);
        break;
    }
    case FUZZ_INDEX: {
        cnet_model_index m;
        if (cnet_model_index_load(&m, path, &err) == 0)
            for (int i = 0; i < m.n; i++) cnet_model_index_find(&m, m.components[i].name);
        break;
    }
    }
    return 0;
}
