/* Weights-file lookup in a diffusers component folder; see model_files.h. */
#include "engine/config/model_files.h"

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* The refusal when no weights file fits: it names what the folder holds
 * instead (a variant's safetensors, a PyTorch pickle) and what to do. */
static int weights_missing(const char *component_dir, const char *variant, cnet_error *err) {
    char found[768] = "";
    size_t len = 0;
    DIR *d = opendir(component_dir);
    struct dirent *e;
    while (d && (e = readdir(d)) && len + 256 < sizeof found) {
        const char *name = e->d_name, *ext = strrchr(name, '.');
        if (!ext || name[0] == '.') continue;
        const int is_safetensors = !strcmp(ext, ".safetensors");
        const int is_pickle = !strcmp(ext, ".bin") || !strcmp(ext, ".ckpt") || !strcmp(ext, ".pt");
        if (!is_safetensors && !is_pickle) continue;
        /* "<stem>.<variant>.safetensors": the variant is the middle part */
        const char *dot = strchr(name, '.');
        if (is_safetensors && dot != ext)
            len += (size_t)snprintf(found + len, sizeof found - len,
                                    "%s%s (a '%.*s' variant: pass --variant %.*s)", len ? ", " : "",
                                    name, (int)(ext - dot - 1), dot + 1, (int)(ext - dot - 1),
                                    dot + 1);
        else if (is_pickle)
            len += (size_t)snprintf(found + len, sizeof found - len,
                                    "%s%s (a PyTorch pickle: cnet convert makes a folder of it)",
                                    len ? ", " : "", name);
    }
    if (d) closedir(d);
    return cnet_fail(err, CNET_ENOTFOUND,
                     "%s: no %s%s%sweights (looked for diffusion_pytorch_model and model "
                     ".safetensors, sharded .safetensors.index.json, and "
                     "diffusion_pytorch_model / pytorch_model .bin)%s%s",
                     component_dir, variant ? "'" : "", variant ? variant : "",
                     variant ? "' variant " : "", len ? "; found " : "", found);
}

/* Fills path (cap bytes) with the weights file of component_dir; variant
 * may be NULL ("fp16" selects *.fp16.safetensors). */
static int model_weights_path(char *path, size_t cap, const char *component_dir,
                              const char *variant, cnet_error *err) {
    static const char *const stems[] = {"diffusion_pytorch_model", "model"};
    static const char *const suffixes[] = {"safetensors", "safetensors.index.json"};
    for (int s = 0; s < 2; s++)
        for (int k = 0; k < 2; k++) {
            int n = variant ? snprintf(path, cap, "%s/%s.%s.%s", component_dir, stems[s], variant,
                                       suffixes[k])
                            : snprintf(path, cap, "%s/%s.%s", component_dir, stems[s], suffixes[k]);
            if (n < 0 || (size_t)n >= cap)
                return cnet_fail(err, CNET_ELIMIT, "%s: path too long", component_dir);
            if (access(path, R_OK) == 0) return 0;
        }
    /* PyTorch pickles, read by engine/core/torch_pickle.h's restricted
     * unpickler, after every safetensors spelling (diffusers prefers them
     * the same way) */
    static const char *const pickles[] = {"diffusion_pytorch_model", "pytorch_model"};
    for (int s = 0; s < 2; s++) {
        int n = variant ? snprintf(path, cap, "%s/%s.%s.bin", component_dir, pickles[s], variant)
                        : snprintf(path, cap, "%s/%s.bin", component_dir, pickles[s]);
        if (n < 0 || (size_t)n >= cap)
            return cnet_fail(err, CNET_ELIMIT, "%s: path too long", component_dir);
        if (access(path, R_OK) == 0) return 0;
    }
    return weights_missing(component_dir, variant, err);
}

int model_component_files(char *config_path, char *weights_path, size_t cap,
                          const char *component_dir, cnet_error *err) {
    int n = snprintf(config_path, cap, "%s/config.json", component_dir);
    if (n < 0 || (size_t)n >= cap)
        return cnet_fail(err, CNET_ELIMIT, "%s: path too long", component_dir);
    return model_weights_path(weights_path, cap, component_dir, NULL, err);
}
