/* `cnet train` with the base model named by its Hub id, against the Hub
 * emulator (tests/tools/tool_hub_emulator.c), and --push_to_hub.
 *   - a Hub id trains exactly as the local folder it was published from
 *     (same final weights), the model card's base_model is the Hub id, and
 *     only the pipeline's files are fetched (no .bin, no single-file
 *     checkpoint, no safety checker, no other variant);
 *   - --variant fp16 trains as a local folder holding the fp16 files'
 *     weights under the plain names;
 *   - HF_HUB_OFFLINE=1 re-runs from --cache_dir without a request, and
 *     fails naming the cache when the model is not there;
 *   - cnet generate --model <Hub id> gives the local folder's image;
 *   - --revision <commit> trains the older commit after main moved;
 *   - a missing repo and a repo without the UNet's weights are errors that
 *     name them;
 *   - --dataset_name of an imagefolder dataset repo trains as its local
 *     folder, with only the train split in the datasets cache; of a
 *     Parquet repo, only the train split's files (of --dataset_config_name);
 *   - --dataset_name of a script-based dataset (no Parquet, no imagefolder
 *     metadata on main) trains on the Hub's refs/convert/parquet conversion
 *     (default/train/<n>.parquet, or a named config's partial-train/)
 *     exactly as on the same Parquet file in a local folder, with only the
 *     conversion's train files in the cache,
 *     and again offline from the cache; without a conversion the error
 *     names what was looked for;
 *   - --tokenizer_name, a folder or a Hub id (only the tokenizer's files
 *     pulled), trains as the base model holding that tokenizer would;
 *   - --push_to_hub lands the output in the emulator (read back with
 *     `cnet pull`, byte for byte), under the token's user when
 *     --hub_model_id has no namespace, and --hub_token is never echoed.
 * Truth: the local folders the repos were published from, trained by the
 * same binary without the Hub. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/image/image.h"
#include "tests/lib/harness.h"
#include "tests/lib/lib_fs.h"
#include "tests/lib/lib_hub.h"
#include "tests/lib/lib_parquet.h"

#define HUB_TOKEN "hf_trainhubtestwritetoken1"
#define OUT_MAX (1 << 16)

static char root[512], bin[600], fill[600], model_a[600], model_c[600], cache_x[600];
static char endpoint_env[128];
static thub_emu emu;
static char out[OUT_MAX];

/* cnet train on the tiny model: 2 steps at 16 px; extra: NULL-terminated
 * flags; env as thub_run's. */
static int train(const char *model, const char *outdir, const char *const *extra,
                 const char *const *env) {
    const char *argv[64] = {bin,
                            "train",
                            "--pretrained_model_name_or_path",
                            model,
                            "--train_data_dir",
                            fill,
                            "--output_dir",
                            outdir,
                            "--resolution",
                            "16",
                            "--train_batch_size",
                            "2",
                            "--max_train_steps",
                            "2",
                            "--learning_rate",
                            "1e-4",
                            "--lr_warmup_steps",
                            "0",
                            "--seed",
                            "3"};
    int n = 20;
    for (int i = 0; extra && extra[i] && n < 62; i++) argv[n++] = extra[i];
    argv[n] = NULL;
    const char *base_env[16] = {endpoint_env, "HF_HUB_OFFLINE=", "HF_TOKEN=" HUB_TOKEN};
    int m = 3;
    for (int i = 0; env && env[i] && m < 15; i++) base_env[m++] = env[i];
    base_env[m] = NULL;
    return thub_run(argv, base_env, 0, 0, out, sizeof out);
}

static int same_file(const char *a, const char *b) {
    char ha[65], hb[65];
    return !thub_sha256(a, ha) && !thub_sha256(b, hb) && !strcmp(ha, hb);
}

static void weights_of(const char *dir, char *path, size_t cap) {
    snprintf(path, cap, "%s/diffusion_pytorch_model.safetensors", dir);
}

/* The one snapshot folder of repo under cache (its first entry). */
static int snapshot_of(const char *cache, const char *repo_dir, char *path, size_t cap) {
    char snaps[2048];
    snprintf(snaps, sizeof snaps, "%s/%s/snapshots", cache, repo_dir);
    DIR *d = opendir(snaps);
    if (!d) return -1;
    struct dirent *e;
    int rc = -1;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') {
            snprintf(path, cap, "%.1000s/%.200s", snaps, e->d_name);
            rc = 0;
            break;
        }
    closedir(d);
    return rc;
}

static int exists(const char *dir, const char *rel) {
    char p[3600];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", dir, rel);
    return lstat(p, &st) == 0;
}

static char local_a[700], local_c[700];

static void test_hub_id_trains_as_local_folder(void) {
    snprintf(local_a, sizeof local_a, "%s/out-local-a", root);
    CHECK(train(model_a, local_a, NULL, NULL) == 0, "local run: %s", out);
    char hub_out[700], wa[2600], wh[2600], card[800];
    snprintf(hub_out, sizeof hub_out, "%s/out-hub", root);
    const char *extra[] = {"--cache_dir", cache_x, NULL};
    CHECK(train("tester/tiny-sd", hub_out, extra, NULL) == 0, "hub run: %s", out);
    weights_of(local_a, wa, sizeof wa);
    weights_of(hub_out, wh, sizeof wh);
    EXPECT(same_file(wa, wh), "the Hub id trained other weights than its local folder");
    snprintf(card, sizeof card, "%s/README.md", hub_out);
    size_t n;
    char *text = thub_read(card, &n);
    EXPECT(text && strstr(text, "\nbase_model: tester/tiny-sd\n"), "model card: %s",
           text ? text : "(none)");
    free(text);
    char snap[2400];
    CHECK(!snapshot_of(cache_x, "models--tester--tiny-sd", snap, sizeof snap),
          "nothing under --cache_dir %s", cache_x);
    EXPECT(exists(snap, "unet/diffusion_pytorch_model.safetensors") &&
               exists(snap, "tokenizer/vocab.json") && exists(snap, "model_index.json"),
           "the pipeline's files are missing from %s", snap);
    const char *never[] = {"unet/diffusion_pytorch_model.bin", "v1-5-pruned.safetensors",
                           "safety_checker/model.safetensors",
                           "unet/diffusion_pytorch_model.fp16.safetensors"};
    for (size_t i = 0; i < sizeof never / sizeof *never; i++)
        EXPECT(!exists(snap, never[i]), "%s was downloaded", never[i]);
}

static void test_variant(void) {
    snprintf(local_c, sizeof local_c, "%s/out-local-c", root);
    CHECK(train(model_c, local_c, NULL, NULL) == 0, "local run: %s", out);
    char hub_out[700], wc[1400], wh[1400];
    snprintf(hub_out, sizeof hub_out, "%s/out-hub-fp16", root);
    const char *extra[] = {"--cache_dir", cache_x, "--variant=fp16", NULL};
    CHECK(train("tester/tiny-sd", hub_out, extra, NULL) == 0, "hub run: %s", out);
    weights_of(local_c, wc, sizeof wc);
    weights_of(hub_out, wh, sizeof wh);
    EXPECT(same_file(wc, wh), "--variant fp16 did not train on the fp16 files");
}

static void test_offline(void) {
    thub_emu_ctl(&emu, "reset");
    char hub_out[700], wa[2600], wh[2600], other[700];
    snprintf(hub_out, sizeof hub_out, "%s/out-offline", root);
    const char *extra[] = {"--cache_dir", cache_x, NULL};
    const char *env[] = {"HF_HUB_OFFLINE=1", NULL};
    CHECK(train("tester/tiny-sd", hub_out, extra, env) == 0, "offline run: %s", out);
    EXPECT(thub_emu_count(&emu, "resolve") == 0 && thub_emu_count(&emu, "info") == 0,
           "offline, yet the Hub was asked");
    weights_of(local_a, wa, sizeof wa);
    weights_of(hub_out, wh, sizeof wh);
    EXPECT(same_file(wa, wh), "the offline run trained other weights");
    snprintf(other, sizeof other, "%s/empty-cache", root);
    const char *extra2[] = {"--cache_dir", other, NULL};
    snprintf(hub_out, sizeof hub_out, "%s/out-offline2", root);
    EXPECT(train("tester/tiny-sd", hub_out, extra2, env) != 0 && strstr(out, "offline") &&
               strstr(out, "tester/tiny-sd"),
           "offline without a cache: %s", out);
}

/* cnet generate --model <Hub id>: the image of the local folder it was
 * published from (read offline from the cache the runs above filled). */
static void test_generate_by_hub_id(void) {
    char image[700], a_png[700], h_png[700], cache_env[700];
    snprintf(image, sizeof image, "%s/conditioning_images/00000.png", fill);
    snprintf(a_png, sizeof a_png, "%s/gen-local.png", root);
    snprintf(h_png, sizeof h_png, "%s/gen-hub.png", root);
    snprintf(cache_env, sizeof cache_env, "HF_HUB_CACHE=%s", cache_x);
    const char *local[] = {bin,      "generate", "--model", model_a,   "--image",
                           image,    "--prompt", "a ring",  "--steps", "2",
                           "--seed", "1",        "--out",   a_png,     NULL};
    const char *env[] = {endpoint_env, cache_env, "HF_HUB_OFFLINE=1", NULL};
    CHECK(thub_run(local, env, 0, 0, out, sizeof out) == 0, "local generate: %s", out);
    const char *hub[] = {bin,       "generate", "--model",  "tester/tiny-sd",
                         "--image", image,      "--prompt", "a ring",
                         "--steps", "2",        "--seed",   "1",
                         "--out",   h_png,      NULL};
    CHECK(thub_run(hub, env, 0, 0, out, sizeof out) == 0, "generate by Hub id: %s", out);
    /* the pixels (the PNG's text chunk names the model folder) */
    image_rgb8 a = {0}, h = {0};
    cnet_error err = {0};
    CHECK(!image_load(&a, a_png, 0, &err) && !image_load(&h, h_png, 0, &err), "%s", err.msg);
    EXPECT(a.width == h.width && a.height == h.height &&
               !memcmp(a.data, h.data, (size_t)a.width * a.height * 3),
           "the Hub id's image differs from the local folder's");
    image_free(&a);
    image_free(&h);
}

static void test_revision(void) {
    char ref[700], sha[64] = "", model_b[600];
    snprintf(ref, sizeof ref, "%s/models--tester--tiny-sd/refs/main", cache_x);
    size_t n;
    char *text = thub_read(ref, &n);
    CHECK(text && n >= 40, "no refs/main in the cache");
    snprintf(sha, sizeof sha, "%.40s", text);
    free(text);
    snprintf(model_b, sizeof model_b, "%s/model-b", root);
    CHECK(thub_seed_repo(&emu, HUB_TOKEN, "tester/tiny-sd", model_b) == 0, "second commit");
    char hub_out[700], wa[2600], wh[2600], cache_y[700];
    snprintf(cache_y, sizeof cache_y, "%s/cache-y", root);
    snprintf(hub_out, sizeof hub_out, "%s/out-rev", root);
    const char *extra[] = {"--cache_dir", cache_y, "--revision", sha, NULL};
    CHECK(train("tester/tiny-sd", hub_out, extra, NULL) == 0, "revision run: %s", out);
    weights_of(local_a, wa, sizeof wa);
    weights_of(hub_out, wh, sizeof wh);
    EXPECT(same_file(wa, wh), "--revision %s did not train the first commit", sha);
    snprintf(hub_out, sizeof hub_out, "%s/out-main", root);
    const char *extra2[] = {"--cache_dir", cache_y, NULL};
    CHECK(train("tester/tiny-sd", hub_out, extra2, NULL) == 0, "main run: %s", out);
    weights_of(hub_out, wh, sizeof wh);
    EXPECT(!same_file(wa, wh), "main moved, yet the first commit was trained");
}

static void test_missing(void) {
    char hub_out[700];
    snprintf(hub_out, sizeof hub_out, "%s/out-missing", root);
    const char *extra[] = {"--cache_dir", cache_x, NULL};
    EXPECT(train("tester/nope", hub_out, extra, NULL) != 0 && strstr(out, "tester/nope") &&
               strstr(out, "RepoNotFound"),
           "a missing repo: %s", out);
    EXPECT(train("tester/no-unet", hub_out, extra, NULL) != 0 && strstr(out, "unet") &&
               strstr(out, "weights"),
           "a repo without the UNet's weights: %s", out);
}

/* cnet train --dataset_name NAME [--dataset_config_name config] on model A
 * (2 steps at 16 px, seed 3) into outdir, with --cache_dir cache_x
 * (offline: HF_HUB_OFFLINE=1); the exit status. */
static int train_on_dataset(const char *name, const char *config, const char *outdir, int offline) {
    const char *argv[] = {bin,
                          "train",
                          "--pretrained_model_name_or_path",
                          model_a,
                          "--dataset_name",
                          name,
                          "--output_dir",
                          outdir,
                          "--resolution",
                          "16",
                          "--train_batch_size",
                          "2",
                          "--max_train_steps",
                          "2",
                          "--learning_rate",
                          "1e-4",
                          "--lr_warmup_steps",
                          "0",
                          "--seed",
                          "3",
                          "--cache_dir",
                          cache_x,
                          config ? "--dataset_config_name" : NULL,
                          config,
                          NULL};
    const char *env[] = {endpoint_env, offline ? "HF_HUB_OFFLINE=1" : "HF_HUB_OFFLINE=", NULL};
    return thub_run(argv, env, 0, 0, out, sizeof out);
}

/* --dataset_name NS/NAME: an imagefolder dataset repo trains as the local
 * folder it was published from; only the train split lands in the
 * datasets cache. A Parquet repo: its train files only (of the config). */
static void test_dataset_name(void) {
    char hub_out[700], wa[2600], wh[2600], snap[2400];
    snprintf(hub_out, sizeof hub_out, "%s/out-dataset", root);
    const char *extra[] = {"--cache_dir", cache_x, "--dataset_name", "tester/fill", NULL};
    /* train() passes --train_data_dir; this run replaces it */
    CHECK(train(model_a, hub_out, extra, NULL) != 0 && strstr(out, "not both"),
          "both dataset flags: %s", out);
    CHECK(train_on_dataset("tester/fill", NULL, hub_out, 0) == 0, "--dataset_name run: %s", out);
    const char *env[] = {endpoint_env, "HF_HUB_OFFLINE=", NULL};
    weights_of(local_a, wa, sizeof wa);
    weights_of(hub_out, wh, sizeof wh);
    EXPECT(same_file(wa, wh), "the Hub dataset trained other weights than its local folder");
    CHECK(!snapshot_of(cache_x, "datasets--tester--fill", snap, sizeof snap),
          "no datasets--tester--fill under %s", cache_x);
    EXPECT(exists(snap, "metadata.jsonl") && exists(snap, "images/00000.png") &&
               !exists(snap, "test/metadata.jsonl") && !exists(snap, "README.md"),
           "the wrong files of the dataset repo were downloaded");

    const char *pq[] = {bin,
                        "train",
                        "--pretrained_model_name_or_path",
                        model_a,
                        "--dataset_name",
                        "tester/pq",
                        "--output_dir",
                        hub_out,
                        "--cache_dir",
                        cache_x,
                        NULL,
                        NULL,
                        NULL};
    thub_run(pq, env, 0, 0, out, sizeof out);
    CHECK(!snapshot_of(cache_x, "datasets--tester--pq", snap, sizeof snap), "no Parquet pull: %s",
          out);
    EXPECT(exists(snap, "data/train-00000-of-00001.parquet") &&
               !exists(snap, "data/test-00000-of-00001.parquet") &&
               !exists(snap, "other/train-00000-of-00001.parquet"),
           "the Parquet repo's train split only");
    pq[10] = "--dataset_config_name";
    pq[11] = "other";
    thub_run(pq, env, 0, 0, out, sizeof out);
    EXPECT(exists(snap, "other/train-00000-of-00001.parquet"), "config other: %s", out);
}

/* A script-based dataset repo (a loading script and a card on main) whose
 * train split is the Hub's Parquet conversion on refs/convert/parquet:
 * trained as the same Parquet file in a local folder (the truth, no Hub),
 * only the conversion's train files pulled. Without a conversion: an error
 * naming the dataset and what was looked for. */
static void test_convert_parquet(void) {
    char gen[700], script[700], conv[700], local_out[700], hub_out[700], wl[2600], wh[2600];
    char snap[2400];
    snprintf(gen, sizeof gen, "%s/conv-gen", root);
    snprintf(script, sizeof script, "%s/conv-script", root);
    snprintf(conv, sizeof conv, "%s/conv-branch", root);
    snprintf(local_out, sizeof local_out, "%s/out-conv-local", root);
    snprintf(hub_out, sizeof hub_out, "%s/out-conv-hub", root);
    CHECK(parquet_generate("fill50k", gen) == 0, "the Parquet writer ran");
    CHECK(!shell_run("mkdir -p %s %s/default/train && echo 'import datasets' >%s/scripted.py && "
                     "echo card >%s/README.md && cp %s/repo/data/train-00000-of-00001.parquet "
                     "%s/default/train/0000.parquet && echo held-out >%s/default/test.txt && "
                     "mkdir -p %s/big/partial-train && cp %s/default/train/0000.parquet "
                     "%s/big/partial-train/",
                     script, conv, script, script, gen, conv, conv, conv, conv, conv),
          "the repo folders");
    CHECK(thub_seed_dataset(&emu, HUB_TOKEN, "tester/scripted", script) == 0 &&
              thub_seed_dataset_ref(&emu, HUB_TOKEN, "tester/scripted", conv,
                                    "refs/convert/parquet") == 0 &&
              thub_seed_dataset(&emu, HUB_TOKEN, "tester/scripted-only", script) == 0,
          "publishing the script datasets");

    char local[800];
    snprintf(local, sizeof local, "%s/repo", gen);
    CHECK(train_on_dataset(local, NULL, local_out, 0) == 0, "the local Parquet folder: %s", out);
    CHECK(train_on_dataset("tester/scripted", NULL, hub_out, 0) == 0, "the converted dataset: %s",
          out);
    weights_of(local_out, wl, sizeof wl);
    weights_of(hub_out, wh, sizeof wh);
    EXPECT(same_file(wl, wh), "the conversion trained other weights than its local Parquet file");
    CHECK(!snapshot_of(cache_x, "datasets--tester--scripted", snap, sizeof snap),
          "no datasets--tester--scripted under %s", cache_x);
    EXPECT(exists(snap, "default/train/0000.parquet") && !exists(snap, "scripted.py") &&
               !exists(snap, "default/test.txt"),
           "not the conversion's train files only");
    char ref[900];
    snprintf(ref, sizeof ref, "%s/datasets--tester--scripted/refs/refs/convert/parquet", cache_x);
    struct stat st;
    EXPECT(stat(ref, &st) == 0 && S_ISREG(st.st_mode), "no cache ref %s", ref);

    /* a config whose split is larger than the conversion keeps: partial-train */
    CHECK(train_on_dataset("tester/scripted", "big", hub_out, 0) == 0, "config big: %s", out);
    weights_of(hub_out, wh, sizeof wh);
    EXPECT(same_file(wl, wh) && exists(snap, "big/partial-train/0000.parquet"),
           "the partial-train conversion");
    thub_emu_ctl(&emu, "reset");
    CHECK(train_on_dataset("tester/scripted", NULL, hub_out, 1) == 0, "offline, from the cache: %s",
          out);
    weights_of(hub_out, wh, sizeof wh);
    EXPECT(same_file(wl, wh) && thub_emu_count(&emu, "info") == 0,
           "offline: other weights, or a request to the Hub");
    EXPECT(train_on_dataset("tester/scripted-only", NULL, hub_out, 0) != 0 &&
               strstr(out, "tester/scripted-only") && strstr(out, "refs/convert/parquet") &&
               strstr(out, "data/train-*.parquet") && strstr(out, "metadata.jsonl"),
           "a script dataset without a conversion: %s", out);
}

/* --tokenizer_name: model A trained with the tokenizer of model T (A with
 * a shorter model_max_length) equals model T trained (and differs from A),
 * whether the tokenizer is a folder elsewhere or a Hub repo holding its
 * files at the top level next to files a tokenizer pull leaves alone. */
static void test_tokenizer_name(void) {
    char model_t[700], tok_dir[700], hub_out[700], wt[2600], wh[2600], wa[2600], snap[2400];
    snprintf(model_t, sizeof model_t, "%s/model-t", root);
    snprintf(tok_dir, sizeof tok_dir, "%s/tok-t", root);
    CHECK(!shell_run("cp -r %s %s && sed -i 's/\"model_max_length\": 77/\"model_max_length\": 20/' "
                     "%s/tokenizer/tokenizer_config.json && grep -q '\"model_max_length\": 20' "
                     "%s/tokenizer/tokenizer_config.json && cp -r %s/tokenizer %s && "
                     "echo junk >%s/model.safetensors && echo junk >%s/pytorch_model.bin",
                     model_a, model_t, model_t, model_t, model_t, tok_dir, tok_dir, tok_dir),
          "making model T");
    CHECK(thub_seed_repo(&emu, HUB_TOKEN, "tester/tok", tok_dir) == 0, "publishing tester/tok");
    char truth[700];
    snprintf(truth, sizeof truth, "%s/out-model-t", root);
    CHECK(train(model_t, truth, NULL, NULL) == 0, "model T: %s", out);
    weights_of(truth, wt, sizeof wt);
    weights_of(local_a, wa, sizeof wa);
    CHECK(!same_file(wt, wa), "the tokenizer change does not change training");

    snprintf(hub_out, sizeof hub_out, "%s/out-tok-folder", root);
    const char *folder[] = {"--tokenizer_name", tok_dir, NULL};
    CHECK(train(model_a, hub_out, folder, NULL) == 0, "--tokenizer_name folder: %s", out);
    weights_of(hub_out, wh, sizeof wh);
    EXPECT(same_file(wt, wh), "--tokenizer_name %s was not the tokenizer trained with", tok_dir);

    snprintf(hub_out, sizeof hub_out, "%s/out-tok-hub", root);
    const char *hub[] = {"--tokenizer_name", "tester/tok", "--cache_dir", cache_x, NULL};
    CHECK(train(model_a, hub_out, hub, NULL) == 0, "--tokenizer_name tester/tok: %s", out);
    weights_of(hub_out, wh, sizeof wh);
    EXPECT(same_file(wt, wh), "--tokenizer_name tester/tok was not the tokenizer trained with");
    CHECK(!snapshot_of(cache_x, "models--tester--tok", snap, sizeof snap), "no tokenizer pull");
    EXPECT(exists(snap, "vocab.json") && exists(snap, "merges.txt") &&
               exists(snap, "tokenizer_config.json") && !exists(snap, "model.safetensors") &&
               !exists(snap, "pytorch_model.bin"),
           "a tokenizer pull brought the wrong files into %s", snap);

    const char *missing[] = {"--tokenizer_name", "tester/no-such-tokenizer", "--cache_dir", cache_x,
                             NULL};
    EXPECT(train(model_a, hub_out, missing, NULL) != 0 && strstr(out, "--tokenizer_name") &&
               strstr(out, "tester/no-such-tokenizer"),
           "a missing tokenizer repo: %s", out);
}

static void test_push_to_hub(void) {
    char hub_out[700], pulled[700], snap[2400], wo[2600], wp[2600];
    snprintf(hub_out, sizeof hub_out, "%s/cn-pushed", root);
    const char *extra[] = {"--validation_prompt", "a ring", "--validation_image", NULL, NULL, NULL};
    char image[700];
    snprintf(image, sizeof image, "%s/conditioning_images/00000.png", fill);
    extra[3] = image;
    extra[4] = "--push_to_hub";
    const char *env[] = {"HF_TOKEN=", NULL}; /* the token only on the command line */
    const char *extra_tok[8] = {extra[0], extra[1],      extra[2],  extra[3],
                                extra[4], "--hub_token", HUB_TOKEN, NULL};
    CHECK(train(model_a, hub_out, extra_tok, env) == 0, "push run: %s", out);
    EXPECT(strstr(out, "HF_TOKEN") && !strstr(out, HUB_TOKEN),
           "--hub_token: no warning, or the token echoed: %s", out);
    EXPECT(strstr(out, "tester/cn-pushed"), "not pushed under the token's user: %s", out);
    snprintf(pulled, sizeof pulled, "%s/pulled", root);
    const char *argv[] = {bin, "pull", "tester/cn-pushed", "--cache", pulled, NULL};
    const char *penv[] = {endpoint_env, "HF_TOKEN=" HUB_TOKEN, NULL};
    CHECK(thub_run(argv, penv, 0, 0, out, sizeof out) == 0, "pull: %s", out);
    CHECK(!snapshot_of(pulled, "models--tester--cn-pushed", snap, sizeof snap), "no snapshot");
    weights_of(hub_out, wo, sizeof wo);
    weights_of(snap, wp, sizeof wp);
    EXPECT(same_file(wo, wp), "the pushed weights differ from the output's");
    EXPECT(exists(snap, "README.md") && exists(snap, "images_0.png") && exists(snap, "config.json"),
           "model card, validation image or config not pushed");
}

static int setup(void) {
    const char *build = getenv("BUILD");
    snprintf(bin, sizeof bin, "%s/cnet", build && *build ? build : "build");
    if (thub_tmpdir(root, sizeof root)) return -1;
    snprintf(fill, sizeof fill, "%s/fill", root);
    snprintf(model_a, sizeof model_a, "%s/model-a", root);
    snprintf(model_c, sizeof model_c, "%s/model-c", root);
    snprintf(cache_x, sizeof cache_x, "%s/cache-x", root);
    char b[700], repo[700], nounet[700], emu_dir[700];
    snprintf(b, sizeof b, "%s/model-b", root);
    snprintf(repo, sizeof repo, "%s/repo", root);
    snprintf(nounet, sizeof nounet, "%s/repo-no-unet", root);
    snprintf(emu_dir, sizeof emu_dir, "%s/emu", root);
    int rc =
        shell_run("%s init-model --out %s --preset tiny --seed 1 >/dev/null 2>&1", bin, model_a);
    if (!rc)
        rc = shell_run("%s init-model --out %s --preset tiny --seed 2 >/dev/null 2>&1", bin, b);
    if (!rc)
        rc = shell_run("%s dataset make-fill --n 4 --size 16 --out %s >/dev/null 2>&1", bin, fill);
    /* the repo: model A, model B's weights as the fp16 variant, and files
     * a pipeline download must leave alone */
    if (!rc) rc = shell_run("cp -r %s %s", model_a, repo);
    const char *const weights[] = {"unet/diffusion_pytorch_model", "vae/diffusion_pytorch_model",
                                   "text_encoder/model"};
    char from[800], to[800];
    for (int i = 0; i < 3 && !rc; i++) {
        snprintf(from, sizeof from, "%s/%s.safetensors", b, weights[i]);
        snprintf(to, sizeof to, "%s/%s.fp16.safetensors", repo, weights[i]);
        rc = shell_run("cp %s %s", from, to);
    }
    if (!rc)
        rc = shell_run("mkdir -p %s/safety_checker && echo junk >%s/v1-5-pruned.safetensors", repo,
                       repo);
    if (!rc)
        rc = shell_run("echo junk >%s/safety_checker/model.safetensors; echo junk >%s/unet/"
                       "diffusion_pytorch_model.bin",
                       repo, repo);
    /* model C: A with B's weights, the truth of --variant fp16 */
    if (!rc) rc = shell_run("cp -r %s %s", model_a, model_c);
    for (int i = 0; i < 3 && !rc; i++) {
        snprintf(from, sizeof from, "%s/%s.safetensors", b, weights[i]);
        snprintf(to, sizeof to, "%s/%s.safetensors", model_c, weights[i]);
        rc = shell_run("cp %s %s", from, to);
    }
    if (!rc) rc = shell_run("cp -r %s %s", model_a, nounet);
    if (!rc) rc = shell_run("rm %s/unet/diffusion_pytorch_model.safetensors", nounet);
    mkdir(emu_dir, 0755);
    const char *extra[] = {"--token", HUB_TOKEN, NULL};
    if (rc) return printf("could not make the models and dataset\n"), -1;
    if (thub_emu_start(&emu, emu_dir, extra)) return printf("the emulator did not start\n"), -1;
    snprintf(endpoint_env, sizeof endpoint_env, "HF_ENDPOINT=%s", emu.endpoint);
    rc = thub_seed_repo(&emu, HUB_TOKEN, "tester/tiny-sd", repo);
    if (!rc) rc = thub_seed_repo(&emu, HUB_TOKEN, "tester/no-unet", nounet);
    /* dataset repos: the fill folder with a test split and a card; a
     * Parquet layout (the bytes are not read here, only downloaded) */
    char ds[700], pq[700];
    snprintf(ds, sizeof ds, "%s/ds-repo", root);
    snprintf(pq, sizeof pq, "%s/pq-repo", root);
    if (!rc) rc = shell_run("cp -r %s %s", fill, ds);
    if (!rc)
        rc = shell_run(
            "mkdir -p %s/test && cp %s/metadata.jsonl %s/test/ && echo card >%s/README.md", ds, ds,
            ds, ds);
    if (!rc) rc = shell_run("mkdir -p %s/data %s/other", pq, pq);
    if (!rc)
        rc = shell_run("echo a >%s/data/train-00000-of-00001.parquet; echo b >%s/data/"
                       "test-00000-of-00001.parquet",
                       pq, pq);
    if (!rc)
        rc = shell_run("echo c >%s/other/train-00000-of-00001.parquet; echo card >%s/README.md", pq,
                       pq);
    if (!rc) rc = thub_seed_dataset(&emu, HUB_TOKEN, "tester/fill", ds);
    if (!rc) rc = thub_seed_dataset(&emu, HUB_TOKEN, "tester/pq", pq);
    if (rc) printf("could not publish the repos\n");
    return rc;
}

int main(int argc, char **argv) {
    harness_init(argc, argv);
    setenv("OMP_NUM_THREADS", "1", 0); /* shared cores */
    if (setup()) {
        printf("setup failed\ntest_train_hub: 0 passed, 1 failed\n");
        return 1;
    }
    RUN(test_hub_id_trains_as_local_folder);
    RUN(test_variant);
    RUN(test_offline);
    RUN(test_generate_by_hub_id);
    RUN(test_revision);
    RUN(test_missing);
    RUN(test_dataset_name);
    RUN(test_convert_parquet);
    RUN(test_tokenizer_name);
    RUN(test_push_to_hub);
    thub_emu_stop(&emu);
    tmpdir_remove(root);
    return harness_done();
}
