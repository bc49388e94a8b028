/* Config loaders against the fixture configs (every value compared with the
 * JSON read independently), diffusers' defaults and head-count rule on SD1.5-
 * and SD2.1-style configs written here, the effective scheduler configs that
 * real diffusers produced (goldens/schedulers.safetensors metadata
 * 'sched.<s>.config'), SDXL's text_time fields and per-layer transformer
 * depths (with the UNet parameters they declare), and the wrong-type /
 * unsupported / malformed cases. */
#include <errno.h>
#include <jansson.h>
#include <unistd.h>

#include "engine/config/config.h"
#include "engine/core/safetensors.h"
#include "engine/models/unet.h"
#include "tests/lib/harness.h"

static char tmpdir[] = "/tmp/cnet_cfg_XXXXXX";

static const char *fixtures(void) { return harness_fixtures(); }

static void fixture_path(char *buf, size_t cap, const char *pipe, const char *rel) {
    snprintf(buf, cap, "%s/%s/%s", fixtures(), pipe, rel);
}

/* Writes text to tmpdir/name; returns the path in a static buffer. */
static const char *write_cfg(const char *name, const char *text) {
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *fp = fopen(path, "w");
    if (fp) {
        fputs(text, fp);
        fclose(fp);
    }
    return path;
}

static int json_int_at(const json_t *obj, const char *key, int i) {
    const json_t *v = json_object_get(obj, key);
    return (int)json_integer_value(json_is_array(v) ? json_array_get(v, (size_t)i) : v);
}

static int same_block_names(const json_t *list, const cnet_block_type *got, int n) {
    if ((int)json_array_size(list) != n) return 0;
    for (int i = 0; i < n; i++)
        if (strcmp(json_string_value(json_array_get(list, (size_t)i)),
                   cnet_block_type_name(got[i])) != 0)
            return 0;
    return 1;
}

static const char *const pipes[] = {"tiny-sd", "small-sd"};
/* UNet / ControlNet configs are also compared for the SDXL fixture. */
static const char *const unet_pipes[] = {"tiny-sd", "small-sd", "tiny-sdxl"};

static void check_unet_like(const char *pipe, int controlnet) {
    char path[4096];
    fixture_path(path, sizeof path, pipe,
                 controlnet ? "controlnet/config.json" : "unet/config.json");
    if (access(path, F_OK) != 0) return; /* not every fixture dir has every model */
    cnet_unet_config c;
    cnet_error err = {0};
    int rc = controlnet ? cnet_controlnet_config_load(&c, path, &err)
                        : cnet_unet_config_load(&c, path, &err);
    CHECK(rc == CNET_OK, "%s", err.msg);
    json_t *j = json_load_file(path, 0, NULL);
    CHECK(j, "plain parse of %s", path);
    int n = (int)json_array_size(json_object_get(j, "down_block_types"));
    int ok = c.n_blocks == n && c.in_channels == json_int_at(j, "in_channels", 0) &&
             same_block_names(json_object_get(j, "down_block_types"), c.down_block_types, n) &&
             strcmp(cnet_block_type_name(c.mid_block_type),
                    json_string_value(json_object_get(j, "mid_block_type"))) == 0 &&
             c.norm_num_groups == json_int_at(j, "norm_num_groups", 0) &&
             c.norm_eps == (float)json_number_value(json_object_get(j, "norm_eps")) &&
             c.use_linear_projection == json_is_true(json_object_get(j, "use_linear_projection")) &&
             c.upcast_attention == json_is_true(json_object_get(j, "upcast_attention")) &&
             c.flip_sin_to_cos == json_is_true(json_object_get(j, "flip_sin_to_cos")) &&
             c.freq_shift == json_int_at(j, "freq_shift", 0) &&
             c.downsample_padding == json_int_at(j, "downsample_padding", 0) &&
             c.time_embed_dim == 4 * json_int_at(j, "block_out_channels", 0) &&
             c.is_controlnet == controlnet;
    for (int i = 0; ok && i < n; i++) {
        /* num_attention_heads is null in these files: heads = attention_head_dim. */
        ok = c.block_out_channels[i] == json_int_at(j, "block_out_channels", i) &&
             c.layers_per_block[i] == json_int_at(j, "layers_per_block", i) &&
             c.cross_attention_dim[i] == json_int_at(j, "cross_attention_dim", i) &&
             c.heads[i] == json_int_at(j, "attention_head_dim", i) &&
             c.up_heads[n - 1 - i] == c.heads[i];
        /* these files write one int per block: every layer, up blocks mirrored */
        const int depth = json_int_at(j, "transformer_layers_per_block", i);
        for (int l = 0; ok && l < c.layers_per_block[i]; l++)
            ok = c.down_transformer_layers[i][l] == depth &&
                 (controlnet || c.up_transformer_layers[n - 1 - i][l] == depth);
        if (!ok) printf("    block %d differs\n", i);
    }
    const json_t *add = json_object_get(j, "addition_embed_type");
    ok = ok && c.mid_transformer_layers == json_int_at(j, "transformer_layers_per_block", n - 1) &&
         c.add_text_time == json_is_string(add) &&
         (!c.add_text_time ||
          (c.addition_time_embed_dim == json_int_at(j, "addition_time_embed_dim", 0) &&
           c.projection_class_embeddings_input_dim ==
               json_int_at(j, "projection_class_embeddings_input_dim", 0)));
    if (ok && !controlnet)
        ok = c.out_channels == json_int_at(j, "out_channels", 0) &&
             c.sample_size == json_int_at(j, "sample_size", 0) &&
             same_block_names(json_object_get(j, "up_block_types"), c.up_block_types, n);
    if (ok && controlnet) {
        const json_t *cond = json_object_get(j, "conditioning_embedding_out_channels");
        ok = c.conditioning_channels == json_int_at(j, "conditioning_channels", 0) &&
             c.n_cond_blocks == (int)json_array_size(cond) && !c.cond_bgr &&
             c.global_pool_conditions == json_is_true(json_object_get(j, "global_pool_conditions"));
        for (int i = 0; ok && i < c.n_cond_blocks; i++)
            ok = c.conditioning_embedding_out_channels[i] ==
                 json_int_at(j, "conditioning_embedding_out_channels", i);
    }
    json_decref(j);
    CHECK(ok, "%s differs from its JSON", path);
}

static void test_fixture_unet_and_controlnet(void) {
    for (size_t p = 0; p < sizeof unet_pipes / sizeof unet_pipes[0]; p++) {
        check_unet_like(unet_pipes[p], 0);
        check_unet_like(unet_pipes[p], 1);
    }
}

static void test_fixture_vae_clip_index(void) {
    for (size_t p = 0; p < sizeof pipes / sizeof pipes[0]; p++) {
        char path[4096];
        cnet_error err = {0};
        fixture_path(path, sizeof path, pipes[p], "vae/config.json");
        cnet_vae_config v;
        CHECK(cnet_vae_config_load(&v, path, &err) == CNET_OK, "%s", err.msg);
        json_t *j = json_load_file(path, 0, NULL);
        int n = (int)json_array_size(json_object_get(j, "block_out_channels"));
        int ok =
            v.n_blocks == n && v.in_channels == json_int_at(j, "in_channels", 0) &&
            v.out_channels == json_int_at(j, "out_channels", 0) &&
            v.latent_channels == json_int_at(j, "latent_channels", 0) &&
            v.layers_per_block == json_int_at(j, "layers_per_block", 0) &&
            v.norm_num_groups == json_int_at(j, "norm_num_groups", 0) &&
            v.sample_size == json_int_at(j, "sample_size", 0) &&
            v.scaling_factor == (float)json_number_value(json_object_get(j, "scaling_factor")) &&
            v.force_upcast && v.mid_block_add_attention && v.use_quant_conv &&
            v.use_post_quant_conv && v.shift_factor == 0 &&
            same_block_names(json_object_get(j, "down_block_types"), v.down_block_types, n) &&
            same_block_names(json_object_get(j, "up_block_types"), v.up_block_types, n);
        for (int i = 0; ok && i < n; i++)
            ok = v.block_out_channels[i] == json_int_at(j, "block_out_channels", i);
        json_decref(j);
        CHECK(ok, "%s differs from its JSON", path);

        fixture_path(path, sizeof path, pipes[p], "text_encoder/config.json");
        cnet_clip_text_config t;
        CHECK(cnet_clip_text_config_load(&t, path, &err) == CNET_OK, "%s", err.msg);
        j = json_load_file(path, 0, NULL);
        ok = t.vocab_size == json_int_at(j, "vocab_size", 0) &&
             t.hidden_size == json_int_at(j, "hidden_size", 0) &&
             t.intermediate_size == json_int_at(j, "intermediate_size", 0) &&
             t.num_hidden_layers == json_int_at(j, "num_hidden_layers", 0) &&
             t.num_attention_heads == json_int_at(j, "num_attention_heads", 0) &&
             t.max_position_embeddings == json_int_at(j, "max_position_embeddings", 0) &&
             t.projection_dim == json_int_at(j, "projection_dim", 0) &&
             t.eos_token_id == json_int_at(j, "eos_token_id", 0) &&
             t.bos_token_id == json_int_at(j, "bos_token_id", 0) &&
             t.pad_token_id == json_int_at(j, "pad_token_id", 0) &&
             t.layer_norm_eps == (float)json_number_value(json_object_get(j, "layer_norm_eps")) &&
             t.hidden_act ==
                 (strcmp(json_string_value(json_object_get(j, "hidden_act")), "gelu") == 0
                      ? CNET_CLIP_GELU
                      : CNET_CLIP_QUICK_GELU);
        json_decref(j);
        CHECK(ok, "%s differs from its JSON", path);

        fixture_path(path, sizeof path, pipes[p], "model_index.json");
        cnet_model_index m;
        CHECK(cnet_model_index_load(&m, path, &err) == CNET_OK, "%s", err.msg);
        const cnet_model_component *unet = cnet_model_index_find(&m, "unet");
        const cnet_model_component *te = cnet_model_index_find(&m, "text_encoder");
        const cnet_model_component *sc = cnet_model_index_find(&m, "safety_checker");
        CHECK(unet && strcmp(unet->library, "diffusers") == 0 &&
                  strcmp(unet->class_name, "UNet2DConditionModel") == 0,
              "unet component");
        CHECK(te && strcmp(te->library, "transformers") == 0 &&
                  strcmp(te->class_name, "CLIPTextModel") == 0,
              "text_encoder component");
        CHECK(sc && sc->library[0] == '\0' && sc->class_name[0] == '\0', "[null, null]");
        CHECK(!cnet_model_index_find(&m, "requires_safety_checker"), "plain values skipped");
        CHECK(strcmp(m.class_name, "StableDiffusionControlNetPipeline") == 0, "%s", m.class_name);
    }
}

/* The text of a diffusers UNet config with the given head fields. */
static const char *unet_json(const char *heads_fields, int controlnet) {
    static char buf[2048];
    snprintf(buf, sizeof buf,
             "{\"_class_name\": \"%s\", \"block_out_channels\": [320, 640, 1280, 1280],"
             " \"down_block_types\": [\"CrossAttnDownBlock2D\", \"CrossAttnDownBlock2D\","
             " \"CrossAttnDownBlock2D\", \"DownBlock2D\"], %s}",
             controlnet ? "ControlNetModel" : "UNet2DConditionModel", heads_fields);
    return buf;
}

static void test_head_resolution(void) {
    cnet_unet_config c;
    cnet_error err = {0};
    /* SD1.5: attention_head_dim 8 is the head COUNT: 8 heads of 40..160. */
    const char *p = write_cfg("sd15.json", unet_json("\"attention_head_dim\": 8, "
                                                     "\"cross_attention_dim\": 768",
                                                     0));
    CHECK(cnet_unet_config_load(&c, p, &err) == CNET_OK, "%s", err.msg);
    for (int i = 0; i < 4; i++)
        CHECK(c.heads[i] == 8 && c.up_heads[i] == 8 && c.cross_attention_dim[i] == 768,
              "SD1.5 block %d: %d heads", i, c.heads[i]);
    CHECK(c.mid_heads == 8 && c.block_out_channels[0] / c.heads[0] == 40, "SD1.5 mid/head dim");
    CHECK(!c.use_linear_projection, "SD1.5 uses conv projections");

    /* SD2.1: a list, one per block; every head is 64 wide. */
    p = write_cfg("sd21.json", unet_json("\"attention_head_dim\": [5, 10, 20, 20], "
                                         "\"use_linear_projection\": true, "
                                         "\"cross_attention_dim\": 1024, \"num_attention_heads\": "
                                         "null",
                                         0));
    CHECK(cnet_unet_config_load(&c, p, &err) == CNET_OK, "%s", err.msg);
    static const int want[] = {5, 10, 20, 20}, want_up[] = {20, 20, 10, 5};
    for (int i = 0; i < 4; i++) {
        CHECK(c.heads[i] == want[i] && c.up_heads[i] == want_up[i], "SD2.1 block %d: %d/%d", i,
              c.heads[i], c.up_heads[i]);
        CHECK(c.block_out_channels[i] / c.heads[i] == 64, "SD2.1 head dim of block %d", i);
    }
    CHECK(c.mid_heads == 20 && c.use_linear_projection && c.cross_attention_dim[3] == 1024,
          "SD2.1 mid heads %d", c.mid_heads);

    /* ControlNet may give num_attention_heads; it wins over attention_head_dim. */
    p = write_cfg("cn_heads.json",
                  unet_json("\"attention_head_dim\": 8, \"num_attention_heads\": [2, 4, 8, 8]", 1));
    CHECK(cnet_controlnet_config_load(&c, p, &err) == CNET_OK, "%s", err.msg);
    CHECK(c.heads[0] == 2 && c.heads[1] == 4 && c.mid_heads == 8 && c.attention_head_dim[0] == 8,
          "ControlNet heads %d %d %d", c.heads[0], c.heads[1], c.mid_heads);

    /* UNet2DConditionModel refuses num_attention_heads, as diffusers does. */
    p = write_cfg("unet_heads.json", unet_json("\"num_attention_heads\": 8", 0));
    CHECK(cnet_unet_config_load(&c, p, &err) == CNET_EINVAL &&
              strstr(err.msg, "'num_attention_heads'") && strstr(err.msg, "unsupported"),
          "'%s'", err.msg);
}

static void test_defaults_are_diffusers(void) {
    cnet_error err = {0};
    cnet_unet_config u;
    CHECK(cnet_unet_config_load(&u, write_cfg("empty_unet.json", "{}"), &err) == CNET_OK, "%s",
          err.msg);
    CHECK(u.n_blocks == 4 && u.block_out_channels[3] == 1280 && u.layers_per_block[0] == 2 &&
              u.cross_attention_dim[0] == 1280 && u.heads[0] == 8 && u.norm_num_groups == 32 &&
              u.norm_eps == 1e-5f && u.in_channels == 4 && u.out_channels == 4 &&
              u.sample_size == 0 && u.flip_sin_to_cos && u.freq_shift == 0 &&
              u.time_embed_dim == 1280 && u.downsample_padding == 1 &&
              u.mid_block_scale_factor == 1.0f && u.conv_in_kernel == 3 &&
              u.down_block_types[0] == CNET_BLOCK_CROSS_ATTN_DOWN &&
              u.down_block_types[3] == CNET_BLOCK_DOWN && u.up_block_types[0] == CNET_BLOCK_UP &&
              u.mid_block_type == CNET_BLOCK_MID_CROSS_ATTN && !u.only_cross_attention[0] &&
              u.down_transformer_layers[2][1] == 1 && u.mid_transformer_layers == 1 &&
              u.up_transformer_layers[1][2] == 1 && !u.add_text_time,
          "UNet defaults");
    cnet_unet_config cn;
    CHECK(cnet_controlnet_config_load(&cn, write_cfg("empty_cn.json", "{}"), &err) == CNET_OK, "%s",
          err.msg);
    CHECK(cn.conditioning_channels == 3 && cn.n_cond_blocks == 4 &&
              cn.conditioning_embedding_out_channels[2] == 96 && !cn.cond_bgr &&
              !cn.global_pool_conditions && cn.layers_per_block[3] == 2,
          "ControlNet defaults");
    cnet_vae_config v;
    CHECK(cnet_vae_config_load(&v, write_cfg("empty_vae.json", "{}"), &err) == CNET_OK, "%s",
          err.msg);
    CHECK(v.n_blocks == 1 && v.block_out_channels[0] == 64 && v.layers_per_block == 1 &&
              v.latent_channels == 4 && v.norm_num_groups == 32 && v.sample_size == 32 &&
              v.scaling_factor == 0.18215f && v.force_upcast && v.mid_block_add_attention,
          "VAE defaults");
    cnet_clip_text_config t;
    CHECK(cnet_clip_text_config_load(&t, write_cfg("empty_clip.json", "{}"), &err) == CNET_OK, "%s",
          err.msg);
    CHECK(t.vocab_size == 49408 && t.hidden_size == 512 && t.intermediate_size == 2048 &&
              t.num_hidden_layers == 12 && t.num_attention_heads == 8 &&
              t.max_position_embeddings == 77 && t.hidden_act == CNET_CLIP_QUICK_GELU &&
              t.bos_token_id == 49406 && t.eos_token_id == 49407 && t.pad_token_id == 1,
          "CLIP defaults");
    /* A full CLIPConfig: the text_config is read. */
    CHECK(cnet_clip_text_config_load(&t,
                                     write_cfg("clip_full.json",
                                               "{\"model_type\": \"clip\", \"text_config\": "
                                               "{\"hidden_size\": 1024, \"num_attention_heads\": "
                                               "16, \"hidden_act\": \"gelu\"}}"),
                                     &err) == CNET_OK,
          "%s", err.msg);
    CHECK(t.hidden_size == 1024 && t.num_attention_heads == 16 && t.hidden_act == CNET_CLIP_GELU,
          "text_config read");
}

/* Effective configs diffusers built from tiny-sd's PNDM config with
 * Cls.from_config, against ours built from the same file. */
static void test_scheduler_effective_configs(void) {
    static const struct {
        const char *golden;
        cnet_sched_kind kind;
    } runs[] = {{"ddim", CNET_SCHED_DDIM},
                {"pndm", CNET_SCHED_PNDM},
                {"euler", CNET_SCHED_EULER},
                {"euler_a", CNET_SCHED_EULER_ANCESTRAL},
                {"dpmpp2m", CNET_SCHED_DPMSOLVER_MULTISTEP},
                {"unipc", CNET_SCHED_UNIPC}};
    char gpath[4096], src[4096];
    snprintf(gpath, sizeof gpath, "%s/goldens/schedulers.safetensors", fixtures());
    fixture_path(src, sizeof src, "tiny-sd", "scheduler/scheduler_config.json");
    st_file g;
    cnet_error err = {0};
    CHECK(st_open(&g, gpath, &err) == CNET_OK, "%s", err.msg);
    int ok = 1;
    for (size_t r = 0; r < sizeof runs / sizeof runs[0] && ok; r++) {
        char key[64];
        snprintf(key, sizeof key, "sched.%s.config", runs[r].golden);
        const char *text = st_meta(&g, key);
        ok = text != NULL;
        if (!ok) break;
        cnet_sched_config ours, theirs;
        /* The golden text contains Python's -Infinity: the loader copes. */
        ok = cnet_sched_config_load(&ours, src, (int)runs[r].kind, &err) == CNET_OK &&
             cnet_sched_config_load(&theirs, write_cfg("eff.json", text), -1, &err) == CNET_OK;
        if (!ok) {
            printf("    %s: %s\n", key, err.msg);
            break;
        }
        ok = ours.kind == runs[r].kind && theirs.kind == runs[r].kind &&
             ours.num_train_timesteps == theirs.num_train_timesteps &&
             ours.beta_start == theirs.beta_start && ours.beta_end == theirs.beta_end &&
             ours.beta_schedule == theirs.beta_schedule &&
             ours.prediction_type == theirs.prediction_type &&
             ours.timestep_spacing == theirs.timestep_spacing &&
             ours.steps_offset == theirs.steps_offset &&
             ours.set_alpha_to_one == theirs.set_alpha_to_one &&
             ours.clip_sample == theirs.clip_sample && ours.thresholding == theirs.thresholding &&
             ours.rescale_betas_zero_snr == theirs.rescale_betas_zero_snr &&
             ours.use_karras_sigmas == theirs.use_karras_sigmas &&
             ours.skip_prk_steps == theirs.skip_prk_steps &&
             ours.solver_order == theirs.solver_order &&
             ours.algorithm_type == theirs.algorithm_type &&
             ours.solver_type == theirs.solver_type &&
             ours.lower_order_final == theirs.lower_order_final &&
             ours.final_sigmas_type == theirs.final_sigmas_type &&
             ours.lambda_min_clipped == theirs.lambda_min_clipped &&
             ours.predict_x0 == theirs.predict_x0 &&
             ours.interpolation_type == theirs.interpolation_type &&
             ours.variance_type == theirs.variance_type;
        /* And spot values straight from the golden JSON. */
        json_t *j = json_loads(text, 0, NULL); /* NULL when it holds -Infinity */
        if (ok && j) {
            const char *spacing = json_string_value(json_object_get(j, "timestep_spacing"));
            static const char *const sp[] = {"leading", "trailing", "linspace"};
            ok = strcmp(sp[ours.timestep_spacing], spacing) == 0 &&
                 ours.steps_offset == json_integer_value(json_object_get(j, "steps_offset"));
        }
        json_decref(j);
        if (!ok) printf("    %s: effective config differs\n", key);
        cnet_sched_config_free(&ours);
        cnet_sched_config_free(&theirs);
    }
    st_close(&g);
    CHECK(ok, "effective scheduler configs");

    cnet_sched_config s;
    CHECK(cnet_sched_config_load(&s, src, -1, &err) == CNET_OK, "%s", err.msg);
    CHECK(s.kind == CNET_SCHED_PNDM && s.skip_prk_steps && !s.set_alpha_to_one &&
              s.steps_offset == 1 && s.beta_schedule == CNET_BETA_SCALED_LINEAR &&
              s.beta_start == 0.00085 && s.beta_end == 0.012 && s.trained_betas == NULL &&
              s.timestep_spacing == CNET_SPACING_LEADING,
          "tiny-sd PNDM config");
    /* Remaps: UniPC's bh2 read by DPM-Solver is midpoint; deis is dpmsolver++. */
    const char *p = write_cfg("remap.json", "{\"_class_name\": \"UniPCMultistepScheduler\", "
                                            "\"solver_type\": \"bh2\", \"algorithm_type\": "
                                            "\"deis\", \"trained_betas\": [0.1, 0.2], "
                                            "\"num_train_timesteps\": 2}");
    CHECK(cnet_sched_config_load(&s, p, CNET_SCHED_DPMSOLVER_MULTISTEP, &err) == CNET_OK, "%s",
          err.msg);
    CHECK(s.solver_type == CNET_SOLVER_MIDPOINT && s.algorithm_type == CNET_ALGO_DPMSOLVER_PP &&
              s.n_trained_betas == 2 && s.trained_betas[1] == 0.2,
          "DPM remaps");
    cnet_sched_config_free(&s);
    CHECK(cnet_sched_config_load(&s, p, -1, &err) == CNET_OK && s.solver_type == CNET_SOLVER_BH2,
          "UniPC keeps bh2: %s", err.msg);
    cnet_sched_config_free(&s);
}

static void test_bad_configs_refused(void) {
    static const struct {
        int which; /* 0 UNet, 1 ControlNet, 2 VAE, 3 CLIP, 4 scheduler, 5 model_index */
        const char *text;
        int code;
        const char *want1, *want2;
    } cases[] = {
        {0, "{\"block_out_channels\": \"abc\"}", CNET_EFORMAT, "field 'block_out_channels'",
         "expected a list of 1 to 8 integers"},
        {0, "{\"block_out_channels\": [320, 640, 1280, 1280, 1, 1, 1, 1, 1]}", CNET_EFORMAT,
         "field 'block_out_channels'", "1 to 8"},
        {0, "{\"block_out_channels\": [320, -640, 1280, 1280]}", CNET_EFORMAT,
         "field 'block_out_channels[1]'", "got a JSON integer -640"},
        {0, "{\"block_out_channels\": [32, 64]}", CNET_EFORMAT, "'block_out_channels' has 2",
         "'down_block_types' has 4"},
        {0, "{\"layers_per_block\": [2, 2]}", CNET_EFORMAT, "field 'layers_per_block'",
         "expected 4"},
        {0, "{\"layers_per_block\": \"2\"}", CNET_EFORMAT, "field 'layers_per_block'",
         "expected an integer"},
        {0, "{\"use_linear_projection\": 1}", CNET_EFORMAT, "field 'use_linear_projection'",
         "expected true or false"},
        {0, "{\"norm_eps\": \"1e-5\"}", CNET_EFORMAT, "field 'norm_eps'", "expected a number"},
        {0, "{\"norm_num_groups\": 48}", CNET_EFORMAT, "not divisible by norm_num_groups", NULL},
        {0, "{\"class_embed_type\": \"timestep\"}", CNET_EINVAL, "field 'class_embed_type'",
         "unsupported"},
        {0, "{\"addition_embed_type\": \"text\"}", CNET_EINVAL,
         "field 'addition_embed_type' = \"text\" is unsupported", "text_time"},
        {0, "{\"addition_embed_type\": \"text_time\"}", CNET_EFORMAT, "needs the integer fields",
         "'addition_time_embed_dim'"},
        {0,
         "{\"addition_embed_type\": \"text_time\", \"addition_time_embed_dim\": 8, "
         "\"projection_class_embeddings_input_dim\": 48}",
         CNET_EFORMAT, "field 'projection_class_embeddings_input_dim' (48) must exceed", NULL},
        {0,
         "{\"addition_embed_type\": \"text_time\", \"addition_time_embed_dim\": \"8\", "
         "\"projection_class_embeddings_input_dim\": 80}",
         CNET_EFORMAT, "field 'addition_time_embed_dim'", "expected an integer"},
        {0, "{\"projection_class_embeddings_input_dim\": 80}", CNET_EINVAL,
         "field 'projection_class_embeddings_input_dim'", "unsupported"},
        {1, "{\"addition_embed_type\": \"text_image\"}", CNET_EINVAL, "field 'addition_embed_type'",
         "unsupported"},
        {0, "{\"dual_cross_attention\": true}", CNET_EINVAL, "field 'dual_cross_attention'",
         "unsupported"},
        {0, "{\"time_embedding_type\": \"fourier\"}", CNET_EINVAL,
         "field 'time_embedding_type' = \"fourier\" is unsupported", NULL},
        {0, "{\"resnet_time_scale_shift\": \"scale_shift\"}", CNET_EINVAL,
         "field 'resnet_time_scale_shift'", "unsupported"},
        {0, "{\"act_fn\": \"gelu\"}", CNET_EINVAL, "field 'act_fn'", "unsupported"},
        {0, "{\"act_fn\": \"tanhx\"}", CNET_EFORMAT, "field 'act_fn'", "\"tanhx\""},
        {0, "{\"transformer_layers_per_block\": [[1, 2], 1, 1, 1]}", CNET_EFORMAT,
         "field 'transformer_layers_per_block' has per-layer lists",
         "'reverse_transformer_layers_per_block'"},
        {0,
         "{\"transformer_layers_per_block\": [[1], 1, 1, 1], "
         "\"reverse_transformer_layers_per_block\": [1, 1, 1, 1]}",
         CNET_EFORMAT, "field 'transformer_layers_per_block[0]'", "has 1 entries, the block has 2"},
        {0,
         "{\"transformer_layers_per_block\": [[1, 0], 1, 1, 1], "
         "\"reverse_transformer_layers_per_block\": [1, 1, 1, 1]}",
         CNET_EFORMAT, "field 'transformer_layers_per_block[0][1]'", "in [1, 64]"},
        {0, "{\"transformer_layers_per_block\": [1, 1, 1]}", CNET_EFORMAT,
         "field 'transformer_layers_per_block'", "expected 4"},
        {0, "{\"transformer_layers_per_block\": [1, 1, \"2\", 1]}", CNET_EFORMAT,
         "field 'transformer_layers_per_block[2]'", "expected an integer"},
        {0, "{\"reverse_transformer_layers_per_block\": [1, 1]}", CNET_EFORMAT,
         "field 'reverse_transformer_layers_per_block'", "expected 4"},
        {0, "{\"reverse_transformer_layers_per_block\": 2}", CNET_EFORMAT,
         "field 'reverse_transformer_layers_per_block'", "a list"},
        {0, "{\"reverse_transformer_layers_per_block\": [1, [2, 2], 1, 1]}", CNET_EFORMAT,
         "field 'reverse_transformer_layers_per_block[1]'", "the block has 3 layers"},
        {0, "{\"layers_per_block\": 9}", CNET_EFORMAT, "field 'layers_per_block'", "[1, 8]"},
        {1, "{\"transformer_layers_per_block\": [1, [1], 1, 1]}", CNET_EFORMAT,
         "field 'transformer_layers_per_block[1]'", "the block has 2 layers"},
        {0,
         "{\"down_block_types\": [\"AttnDownBlock2D\", \"DownBlock2D\"], \"up_block_types\": "
         "[\"UpBlock2D\", \"UpBlock2D\"], \"block_out_channels\": [32, 64]}",
         CNET_EINVAL, "field 'down_block_types[0]'", "\"AttnDownBlock2D\" is unsupported"},
        {0, "{\"mid_block_type\": null}", CNET_EINVAL, "field 'mid_block_type'", "unsupported"},
        {0, "{\"attention_head_dim\": [8, 8, 2000, 8]}", CNET_EFORMAT, "block 2 has 2000",
         "attention_head_dim"},
        {0, "{\"_class_name\": \"ControlNetModel\"}", CNET_EFORMAT, "field '_class_name'",
         "expected \"UNet2DConditionModel\""},
        {0, "{\"in_channels\": 4,}", CNET_EFORMAT, "not valid JSON", NULL},
        {0, "{\"in_channels\": 4, \"in_channels\": 9}", CNET_EFORMAT, "not valid JSON",
         "duplicate"},
        {0, "[1, 2]", CNET_EFORMAT, "config is a JSON list, expected an object", NULL},
        {1, "{\"layers_per_block\": [2, 2, 2, 2]}", CNET_EFORMAT, "field 'layers_per_block'",
         "expected an integer"},
        {1, "{\"controlnet_conditioning_channel_order\": \"rbg\"}", CNET_EFORMAT,
         "field 'controlnet_conditioning_channel_order'", "\"rgb\""},
        {1, "{\"num_attention_heads\": [8, 8]}", CNET_EFORMAT, "field 'num_attention_heads'",
         "expected 4"},
        {2, "{\"down_block_types\": [\"DownBlock2D\"]}", CNET_EINVAL, "field 'down_block_types[0]'",
         "supported: DownEncoderBlock2D"},
        {2, "{\"scaling_factor\": null}", CNET_EFORMAT, "field 'scaling_factor'",
         "expected a number"},
        {3, "{\"hidden_act\": \"relu\"}", CNET_EINVAL, "field 'hidden_act'", "unsupported"},
        {3, "{\"hidden_size\": 100, \"num_attention_heads\": 8}", CNET_EFORMAT,
         "'hidden_size' (100) is not divisible", NULL},
        {4, "{\"_class_name\": \"LMSDiscreteScheduler\"}", CNET_EINVAL, "field '_class_name'",
         "unsupported"},
        {4, "{\"beta_start\": 0.1}", CNET_EFORMAT, "field '_class_name' is missing", NULL},
        {4, "{\"_class_name\": \"DDIMScheduler\", \"beta_schedule\": \"cosine\"}", CNET_EFORMAT,
         "field 'beta_schedule'", "\"cosine\""},
        {4, "{\"_class_name\": \"DDIMScheduler\", \"prediction_type\": 3}", CNET_EFORMAT,
         "field 'prediction_type'", "\"v_prediction\""},
        {4, "{\"_class_name\": \"DPMSolverMultistepScheduler\", \"algorithm_type\": \"dpmsolver\"}",
         CNET_EINVAL, "field 'final_sigmas_type'", "unsupported"},
        {4, "{\"_class_name\": \"DDPMScheduler\", \"trained_betas\": [0.1]}", CNET_EFORMAT,
         "'trained_betas' has 1 entries but num_train_timesteps is 1000", NULL},
        {4, "{\"_class_name\": \"EulerDiscreteScheduler\", \"beta_schedule\": \"sigmoid\"}",
         CNET_EINVAL, "field 'beta_schedule'", "unsupported"},
        {5, "{\"unet\": [\"diffusers\"]}", CNET_EFORMAT, "field 'unet'", "a [library, class] pair"},
        {5, "{\"unet\": [\"diffusers\", 3]}", CNET_EFORMAT, "field 'unet'", "JSON integer 3"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char name[64];
        snprintf(name, sizeof name, "bad_%02zu.json", i);
        const char *p = write_cfg(name, cases[i].text);
        cnet_error err = {0};
        int rc;
        cnet_unet_config u;
        cnet_vae_config v;
        cnet_clip_text_config t;
        cnet_sched_config s;
        cnet_model_index m;
        switch (cases[i].which) {
        case 0:
            rc = cnet_unet_config_load(&u, p, &err);
            break;
        case 1:
            rc = cnet_controlnet_config_load(&u, p, &err);
            break;
        case 2:
            rc = cnet_vae_config_load(&v, p, &err);
            break;
        case 3:
            rc = cnet_clip_text_config_load(&t, p, &err);
            break;
        case 4:
            rc = cnet_sched_config_load(&s, p, -1, &err);
            if (rc == CNET_OK) cnet_sched_config_free(&s);
            break;
        default:
            rc = cnet_model_index_load(&m, p, &err);
            break;
        }
        EXPECT(rc == cases[i].code && strstr(err.msg, p) && strstr(err.msg, cases[i].want1) &&
                   (!cases[i].want2 || strstr(err.msg, cases[i].want2)),
               "case %zu: rc %d, '%s'", i, rc, err.msg);
    }
    cnet_unet_config u;
    cnet_error err = {0};
    char missing[600];
    snprintf(missing, sizeof missing, "%s/none.json", tmpdir);
    CHECK(cnet_unet_config_load(&u, missing, &err) == CNET_EIO && strstr(err.msg, missing),
          "missing file: '%s'", err.msg);
}

/* Per-layer transformer depths as diffusers v0.27.2 reads them (worked out
 * by hand from unet_2d_condition.py and unet_2d_blocks.py): down block i,
 * layer j gets transformer_layers_per_block[i][j] (an int entry: every
 * layer); the mid block the last entry's first value; up block i
 * reverse_transformer_layers_per_block[i] per layer, or without it the
 * down entry of the level it mirrors. The UNet's declared parameters follow
 * (transformer_blocks.<k> up to the depth, none beyond). */
static void test_asymmetric_depths(void) {
    static const char base[] =
        "{\"down_block_types\": [\"DownBlock2D\", \"CrossAttnDownBlock2D\", "
        "\"CrossAttnDownBlock2D\"], \"up_block_types\": [\"CrossAttnUpBlock2D\", "
        "\"CrossAttnUpBlock2D\", \"UpBlock2D\"], \"block_out_channels\": [8, 16, 32], "
        "\"norm_num_groups\": 8, \"attention_head_dim\": [1, 2, 4], \"cross_attention_dim\": 8, "
        "\"layers_per_block\": 2, ";
    char text[1024];
    cnet_error err = {0};
    cnet_unet_config c;
    snprintf(text, sizeof text,
             "%s\"transformer_layers_per_block\": [1, [1, 2], [3, 4]], "
             "\"reverse_transformer_layers_per_block\": [[5, 6, 7], [1, 2, 3], 1]}",
             base);
    CHECK(cnet_unet_config_load(&c, write_cfg("asym.json", text), &err) == CNET_OK, "%s", err.msg);
    EXPECT(c.down_transformer_layers[1][0] == 1 && c.down_transformer_layers[1][1] == 2 &&
               c.down_transformer_layers[2][0] == 3 && c.down_transformer_layers[2][1] == 4 &&
               c.mid_transformer_layers == 3,
           "down %d %d %d %d, mid %d", c.down_transformer_layers[1][0],
           c.down_transformer_layers[1][1], c.down_transformer_layers[2][0],
           c.down_transformer_layers[2][1], c.mid_transformer_layers);
    static const int want_up[2][3] = {{5, 6, 7}, {1, 2, 3}};
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 3; j++)
            EXPECT(c.up_transformer_layers[i][j] == want_up[i][j], "up %d layer %d: %d, want %d", i,
                   j, c.up_transformer_layers[i][j], want_up[i][j]);
    cnet_backend be;
    unet_model m;
    CHECK(cnet_backend_cpu_init(&be, &err) == 0, "%s", err.msg);
    int rc = unet_declare(&m, &be, &c, &err);
    EXPECT(rc == 0, "declare: %s", err.msg);
    static const struct {
        const char *name;
        int present;
    } params[] = {
        {"down_blocks.1.attentions.1.transformer_blocks.1.attn1.to_q.weight", 1},
        {"down_blocks.1.attentions.1.transformer_blocks.2.attn1.to_q.weight", 0},
        {"down_blocks.2.attentions.0.transformer_blocks.2.attn1.to_q.weight", 1},
        {"down_blocks.2.attentions.0.transformer_blocks.3.attn1.to_q.weight", 0},
        {"mid_block.attentions.0.transformer_blocks.2.attn1.to_q.weight", 1},
        {"mid_block.attentions.0.transformer_blocks.3.attn1.to_q.weight", 0},
        {"up_blocks.0.attentions.2.transformer_blocks.6.attn2.to_k.weight", 1},
        {"up_blocks.0.attentions.2.transformer_blocks.7.attn2.to_k.weight", 0},
        {"up_blocks.1.attentions.0.transformer_blocks.0.ff.net.2.weight", 1},
        {"up_blocks.1.attentions.0.transformer_blocks.1.ff.net.2.weight", 0},
    };
    for (size_t i = 0; !rc && i < sizeof params / sizeof params[0]; i++)
        EXPECT((params_find(&m.params, params[i].name) != NULL) == params[i].present,
               "'%s' should be %s", params[i].name, params[i].present ? "declared" : "absent");
    unet_free(&m);
    cnet_backend_free(&be);
    /* an int list: up blocks mirror it (no reverse list needed) */
    snprintf(text, sizeof text, "%s\"transformer_layers_per_block\": [1, 2, 3]}", base);
    CHECK(cnet_unet_config_load(&c, write_cfg("asym.json", text), &err) == CNET_OK, "%s", err.msg);
    EXPECT(c.up_transformer_layers[0][2] == 3 && c.up_transformer_layers[1][0] == 2 &&
               c.mid_transformer_layers == 3 && c.down_transformer_layers[2][1] == 3,
           "int list: up %d %d mid %d", c.up_transformer_layers[0][2],
           c.up_transformer_layers[1][0], c.mid_transformer_layers);
    /* the ControlNet takes per-layer lists without a reverse list */
    snprintf(text, sizeof text,
             "{\"_class_name\": \"ControlNetModel\", \"down_block_types\": [\"DownBlock2D\", "
             "\"CrossAttnDownBlock2D\", \"CrossAttnDownBlock2D\"], \"block_out_channels\": [8, 16, "
             "32], \"norm_num_groups\": 8, \"attention_head_dim\": [1, 2, 4], "
             "\"transformer_layers_per_block\": [1, [1, 2], [3, 4]]}");
    CHECK(cnet_controlnet_config_load(&c, write_cfg("asym.json", text), &err) == CNET_OK, "%s",
          err.msg);
    EXPECT(c.down_transformer_layers[2][1] == 4 && c.mid_transformer_layers == 3,
           "ControlNet: %d, mid %d", c.down_transformer_layers[2][1], c.mid_transformer_layers);
}

static void remove_tmpdir(void) {
    static const char *const names[] = {"sd15.json",       "sd21.json",       "cn_heads.json",
                                        "unet_heads.json", "empty_unet.json", "empty_cn.json",
                                        "empty_vae.json",  "empty_clip.json", "clip_full.json",
                                        "eff.json",        "remap.json",      "asym.json"};
    char path[600];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", tmpdir, names[i]);
        unlink(path);
    }
    for (int i = 0; i < 100; i++) {
        snprintf(path, sizeof path, "%s/bad_%02d.json", tmpdir, i);
        unlink(path);
    }
    rmdir(tmpdir);
}

int main(int argc, char **argv) {
    harness_init(argc, argv);
    if (!mkdtemp(tmpdir)) {
        printf("cannot create a temp dir: %s\n", strerror(errno));
        return 1;
    }
    RUN(test_fixture_unet_and_controlnet);
    RUN(test_fixture_vae_clip_index);
    RUN(test_head_resolution);
    RUN(test_defaults_are_diffusers);
    RUN(test_scheduler_effective_configs);
    RUN(test_bad_configs_refused);
    RUN(test_asymmetric_depths);
    remove_tmpdir();
    return harness_done();
}
