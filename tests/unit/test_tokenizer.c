/* CLIP tokenizer.
 *
 * Truths: the ids transformers' CLIPTokenizer produced for the prompts in
 * goldens/tokenizer.safetensors (every id, mask and untruncated list);
 * cleanup, regex and byte-map expectations computed with Python 3.11's
 * unicodedata/str and the `regex` module on the same inputs; hand-made
 * two-merge tokenizers whose BPE results follow from the merge ranks by
 * hand; SD 2.x padding ("!") whose ids follow from the fixture vocabulary
 * and the golden ids of the same prompt. */
#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/core/safetensors.h"
#include "engine/text/tokenizer.h"
#include "engine/text/tokenizer_impl.h"
#include "engine/text/unicode.h"
#include "tests/lib/harness.h"

static const char *fixtures(void) { return harness_fixtures(); }

static void fixture_path(char *buf, size_t cap, const char *rel) {
    snprintf(buf, cap, "%s/%s", fixtures(), rel);
}

/* ---- temp tokenizer folders ---- */

static int write_file(const char *dir, const char *name, const char *text) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t n = strlen(text);
    int ok = fwrite(text, 1, n, f) == n;
    return fclose(f) == 0 && ok ? 0 : -1;
}

static int copy_fixture(const char *dir, const char *name) {
    char src[4096];
    snprintf(src, sizeof src, "%s/tiny-sd/tokenizer/%s", fixtures(), name);
    FILE *f = fopen(src, "rb");
    if (!f) return -1;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    int ok = buf && fread(buf, 1, (size_t)n, f) == (size_t)n;
    fclose(f);
    if (ok) buf[n] = '\0';
    int rc = ok ? write_file(dir, name, buf) : -1;
    free(buf);
    return rc;
}

static void remove_dir(const char *dir) {
    static const char *const names[] = {"vocab.json", "merges.txt", "tokenizer_config.json",
                                        "special_tokens_map.json"};
    char path[4096];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        unlink(path);
    }
    rmdir(dir);
}

static char *make_dir(char *buf, size_t cap) {
    snprintf(buf, cap, "/tmp/cnet_tok_XXXXXX");
    return mkdtemp(buf);
}

static const char *const plain_config = "{\"model_max_length\": 77}";

/* ---- golden ids ---- */

static const int64_t *golden_i64(const st_file *f, const char *name, int64_t *numel) {
    const st_entry *e = st_find(f, name);
    if (!e || e->view.dtype != CNET_I64) return NULL;
    *numel = cnet_tensor_numel(&e->view);
    return e->view.data;
}

static void test_tokenizer_golden(void) {
    char path[4096];
    cnet_error err;
    st_file f;
    fixture_path(path, sizeof path, "goldens/tokenizer.safetensors");
    CHECK(st_open(&f, path, &err) == 0, "%s", err.msg);
    tokenizer *tok = NULL;
    fixture_path(path, sizeof path, "tiny-sd/tokenizer");
    int rc = tokenizer_load(&tok, path, &err);
    json_t *prompts = json_loads(st_meta(&f, "prompts") ? st_meta(&f, "prompts") : "", 0, NULL);
    json_t *special =
        json_loads(st_meta(&f, "special_ids") ? st_meta(&f, "special_ids") : "", 0, NULL);
    int64_t n_ids, n_mask;
    const int64_t *ids = golden_i64(&f, "tokenizer.input_ids", &n_ids);
    const int64_t *mask = golden_i64(&f, "tokenizer.attention_mask", &n_mask);
    size_t p = json_array_size(prompts);
    int ok = rc == 0 && p > 0 && ids && mask && json_is_object(special);
    EXPECT(ok, "load: %s", rc ? err.msg : "golden file lacks prompts/ids/mask/special_ids");
    if (ok) {
        int L = tokenizer_max_length(tok);
        EXPECT(L == 77 && n_ids == (int64_t)p * L && n_mask == n_ids, "shapes");
        EXPECT(tokenizer_bos_id(tok) == json_integer_value(json_object_get(special, "bos")) &&
                   tokenizer_eos_id(tok) == json_integer_value(json_object_get(special, "eos")) &&
                   tokenizer_pad_id(tok) == json_integer_value(json_object_get(special, "pad")) &&
                   tokenizer_vocab_size(tok) ==
                       json_integer_value(json_object_get(special, "vocab_size")),
               "special ids");
        int64_t got[TOKENIZER_MAX_LENGTH], got_mask[TOKENIZER_MAX_LENGTH];
        /* Twice: the second pass reads the BPE cache. */
        for (int pass = 0; pass < 2 && n_ids == (int64_t)p * L; pass++) {
            for (size_t i = 0; i < p; i++) {
                const char *text = json_string_value(json_array_get(prompts, i));
                rc = tokenizer_encode(tok, text, strlen(text), got, got_mask, &err);
                EXPECT(rc == 0, "prompt %zu: %s", i, err.msg);
                for (int j = 0; rc == 0 && j < L; j++) {
                    EXPECT(got[j] == ids[i * (size_t)L + j], "prompt %zu id %d: %lld want %lld", i,
                           j, (long long)got[j], (long long)ids[i * (size_t)L + j]);
                    EXPECT(got_mask[j] == mask[i * (size_t)L + j], "prompt %zu mask %d", i, j);
                }
                char name[64];
                snprintf(name, sizeof name, "tokenizer.untruncated_ids.%zu", i);
                int64_t n_full, *full;
                size_t n;
                const int64_t *want = golden_i64(&f, name, &n_full);
                EXPECT(want != NULL, "%s missing", name);
                rc = tokenizer_encode_full(tok, text, strlen(text), &full, &n, &err);
                EXPECT(rc == 0, "prompt %zu: %s", i, err.msg);
                if (rc || !want) continue;
                EXPECT((int64_t)n == n_full, "prompt %zu: %zu untruncated ids, want %lld", i, n,
                       (long long)n_full);
                for (size_t j = 0; j < n && (int64_t)j < n_full; j++)
                    EXPECT(full[j] == want[j], "prompt %zu untruncated id %zu", i, j);
                free(full);
            }
        }
    }
    json_decref(prompts);
    json_decref(special);
    tokenizer_free(tok);
    st_close(&f);
}

/* ---- cleanup, regex, byte map ---- */

static size_t decode(const char *s, uint32_t *out) {
    size_t n = 0;
    cnet_error err;
    if (uni_utf8_decode(s, strlen(s), out, &n, &err)) return (size_t)-1;
    return n;
}

/* tok_clean(in) == want (UTF-8 strings). */
static int clean_is(const char *in, const char *want) {
    uint32_t a[256], w[256], *out;
    size_t n = decode(in, a), m = decode(want, w), k;
    cnet_error err;
    if (n == (size_t)-1 || m == (size_t)-1 || tok_clean(a, n, &out, &k, &err)) return 0;
    int same = k == m && memcmp(out, w, m * sizeof *w) == 0;
    free(out);
    return same;
}

static void test_tokenizer_clean(void) {
    /* Expected strings: transformers' BasicTokenizer(strip_accents=False,
     * do_split_on_punc=False) on Python 3.11. */
    CHECK(clean_is("  Hello\tWORLD\n", "hello world"), "whitespace and case");
    CHECK(clean_is("a\x01"
                   "b\x07"
                   "c\xe2\x80\x8b"
                   "d",
                   "abcd"),
          "controls and U+200B dropped");
    CHECK(clean_is("x\xef\xbf\xbdy", "xy"), "U+FFFD dropped");
    CHECK(clean_is("a\xe3\x80\x80"
                   "b\xc2\xa0"
                   "c",
                   "a b c"),
          "Zs becomes a space");
    CHECK(clean_is("a\xe2\x80\xa8"
                   "b",
                   "a b"),
          "U+2028 splits words");
    CHECK(clean_is("日本語", "日 本 語"), "spaces around CJK ideographs");
    CHECK(clean_is("cafe\xcc\x81", "caf\xc3\xa9"), "NFC composes e + U+0301");
    CHECK(clean_is("naïve", "naïve"), "accents kept (strip_accents=False)");
    CHECK(clean_is("ΟΔΥΣΣΕΥΣ", "οδυσσευς"), "final sigma at the end of a word");
    CHECK(clean_is("ΣΑ Σ", "σα σ"), "no final sigma without a cased letter before");
    CHECK(clean_is("\xc4\xb0", "i\xcc\x87"), "U+0130 lower-cases to i + U+0307");
    CHECK(clean_is("", ""), "empty");
    CHECK(clean_is(" \t\n ", ""), "only whitespace");
}

static int split_is(const char *in, const char *const *want, size_t n_want) {
    uint32_t a[256];
    tok_span spans[256];
    size_t n = decode(in, a);
    if (n == (size_t)-1) return 0;
    size_t k = tok_split(a, n, spans);
    if (k != n_want) return 0;
    for (size_t i = 0; i < k; i++) {
        uint32_t w[64];
        size_t m = decode(want[i], w);
        if (m != spans[i].len || memcmp(a + spans[i].start, w, m * sizeof *w) != 0) return 0;
    }
    return 1;
}

#define SPLIT_IS(in, ...)                                                                          \
    split_is(in, (const char *const[]){__VA_ARGS__},                                               \
             sizeof((const char *const[]){__VA_ARGS__}) / sizeof(const char *))

static void test_tokenizer_split(void) {
    /* Expected matches: regex.findall of the CLIP pattern, re.IGNORECASE. */
    CHECK(SPLIT_IS("it's the dog's", "it", "'s", "the", "dog", "'s"), "contractions");
    CHECK(SPLIT_IS("we'll 're'x", "we", "'ll", "'re", "'", "x"), "contraction order");
    CHECK(SPLIT_IS("3 cats12", "3", "cats", "1", "2"), "one digit per match");
    CHECK(SPLIT_IS("hello!!! ?", "hello", "!!!", "?"), "punctuation runs");
    CHECK(SPLIT_IS("<|endoftext|>abc", "<|endoftext|>", "abc"), "special token literal");
    CHECK(SPLIT_IS("'\xc5\xbf", "'\xc5\xbf"), "'s matches long s under IGNORECASE");
    CHECK(SPLIT_IS("x\xcd\x85y", "x", "y"), "U+0345 matches no branch");
    CHECK(SPLIT_IS("a\xcc\x81", "a", "\xcc\x81"), "a combining mark is not a letter");
    CHECK(SPLIT_IS("日本 🙂x", "日本", "🙂", "x"), "letters and symbols");
}

static void test_tokenizer_byte_encoder(void) {
    /* bytes_to_unicode(): printable Latin-1 maps to itself, the rest to
     * U+0100.. in byte order (values from transformers on Python). */
    static const unsigned bytes[] = {0, 32, 33, 126, 127, 128, 160, 161, 172, 173, 174, 255};
    static const uint32_t want[] = {256, 288, 33, 126, 289, 290, 322, 161, 172, 323, 174, 255};
    for (size_t i = 0; i < sizeof bytes / sizeof bytes[0]; i++)
        CHECK(tok_byte_to_unicode(bytes[i]) == want[i], "byte %u -> U+%04X, want U+%04X", bytes[i],
              tok_byte_to_unicode(bytes[i]), want[i]);
    int seen[512] = {0};
    for (unsigned b = 0; b < 256; b++) {
        uint32_t cp = tok_byte_to_unicode(b);
        CHECK(cp < 512 && !seen[cp], "byte %u: U+%04X repeats", b, cp);
        seen[cp] = 1;
    }
}

static void test_tokenizer_invalid_utf8(void) {
    char path[4096];
    cnet_error err;
    tokenizer *tok;
    fixture_path(path, sizeof path, "tiny-sd/tokenizer");
    CHECK(tokenizer_load(&tok, path, &err) == 0, "%s", err.msg);
    static const char *const bad[] = {"ab\xff"
                                      "cd",
                                      "ab\xe6\x97",
                                      "ab\xc0\xaf",
                                      "ab\xed\xa0\x80",
                                      "ab\xf4\x90\x80\x80",
                                      "ab\x80"};
    int64_t ids[TOKENIZER_MAX_LENGTH], mask[TOKENIZER_MAX_LENGTH];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = tokenizer_encode(tok, bad[i], strlen(bad[i]), ids, mask, &err);
        EXPECT(rc == CNET_EINVAL && strstr(err.msg, "offset 2"), "case %zu: rc %d '%s'", i, rc,
               err.msg);
    }
    /* An embedded NUL is valid UTF-8; cleanup drops it like Python does. */
    int64_t *a, *b;
    size_t na, nb;
    CHECK(tokenizer_encode_full(tok, "red\0 circle", 11, &a, &na, &err) == 0, "%s", err.msg);
    CHECK(tokenizer_encode_full(tok, "red circle", 10, &b, &nb, &err) == 0, "%s", err.msg);
    EXPECT(na == nb && memcmp(a, b, na * sizeof *a) == 0, "NUL not dropped");
    free(a), free(b);
    tokenizer_free(tok);
}

/* ---- hand-made tokenizers: BPE ranks and unknown tokens ---- */

static const char *const mini_vocab =
    "{\"<|startoftext|>\": 0, \"<|endoftext|>\": 1, \"a\": 2, \"b\": 3, \"c</w>\": 4,"
    " \"bc</w>\": 5, \"ab\": 6, \"a</w>\": 7, \"abc</w>\": 8}";

static void test_tokenizer_bpe_ranks(void) {
    char dir[64];
    CHECK(make_dir(dir, sizeof dir), "mkdtemp: %s", strerror(errno));
    cnet_error err;
    tokenizer *tok = NULL;
    int64_t *ids = NULL;
    size_t n = 0;
    /* "b c</w>" ranks before "a b": abc -> a, bc</w> (then "a bc</w>" has no
     * rank). */
    int ok = write_file(dir, "vocab.json", mini_vocab) == 0 &&
             write_file(dir, "merges.txt", "#version: 0.2\nb c</w>\na b\n") == 0 &&
             write_file(dir, "tokenizer_config.json", plain_config) == 0;
    EXPECT(ok, "writing %s", dir);
    if (ok && tokenizer_load(&tok, dir, &err) == 0) {
        EXPECT(tokenizer_encode_full(tok, "abc", 3, &ids, &n, &err) == 0, "%s", err.msg);
        EXPECT(n == 4 && ids[1] == 2 && ids[2] == 5, "abc -> a bc</w>");
        free(ids);
        /* 'd' is in no token: the unknown token <|endoftext|> (1). */
        EXPECT(tokenizer_encode_full(tok, "A d", 3, &ids, &n, &err) == 0, "%s", err.msg);
        EXPECT(n == 4 && ids[1] == 7 && ids[2] == 1 && ids[3] == 1, "a</w> unk");
        free(ids);
        tokenizer_free(tok);
        tok = NULL;
    } else {
        EXPECT(0, "load: %s", err.msg);
    }
    /* The other order: "a b" first gives ab, c</w>. */
    ok = write_file(dir, "merges.txt", "#version: 0.2\na b\nb c</w>\n") == 0;
    if (ok && tokenizer_load(&tok, dir, &err) == 0) {
        EXPECT(tokenizer_encode_full(tok, "abc", 3, &ids, &n, &err) == 0, "%s", err.msg);
        EXPECT(n == 4 && ids[1] == 6 && ids[2] == 4, "abc -> ab c</w>");
        free(ids);
        tokenizer_free(tok);
    } else {
        EXPECT(0, "load: %s", err.msg);
    }
    remove_dir(dir);
}

/* ---- SD 2.x padding and other config variants ---- */

/* A copy of the fixture tokenizer with the given config and map (NULL: none). */
static int make_variant(char *dir, size_t cap, const char *config, const char *map) {
    if (!make_dir(dir, cap)) return -1;
    if (copy_fixture(dir, "vocab.json") || copy_fixture(dir, "merges.txt") ||
        write_file(dir, "tokenizer_config.json", config))
        return -1;
    return map ? write_file(dir, "special_tokens_map.json", map) : 0;
}

/* Golden untruncated ids of prompt i (owned copy) and their count. */
static int64_t *golden_untruncated(int i, size_t *n) {
    char path[4096], name[64];
    cnet_error err;
    st_file f;
    fixture_path(path, sizeof path, "goldens/tokenizer.safetensors");
    if (st_open(&f, path, &err)) return NULL;
    snprintf(name, sizeof name, "tokenizer.untruncated_ids.%d", i);
    int64_t numel;
    const int64_t *v = golden_i64(&f, name, &numel);
    int64_t *copy = v ? malloc((size_t)numel * sizeof *copy) : NULL;
    if (copy) memcpy(copy, v, (size_t)numel * sizeof *copy), *n = (size_t)numel;
    st_close(&f);
    return copy;
}

static int64_t vocab_id(const char *token) {
    char path[4096];
    fixture_path(path, sizeof path, "tiny-sd/tokenizer/vocab.json");
    json_t *v = json_load_file(path, 0, NULL);
    json_t *id = json_object_get(v, token);
    int64_t r = json_is_integer(id) ? json_integer_value(id) : -1;
    json_decref(v);
    return r;
}

static void check_sd2(const char *dir, const char *what) {
    cnet_error err;
    tokenizer *tok;
    CHECK(tokenizer_load(&tok, dir, &err) == 0, "%s: %s", what, err.msg);
    int64_t bang = vocab_id("!");
    EXPECT(bang >= 0 && tokenizer_pad_id(tok) == bang, "%s: pad id %lld, want vocab[!] %lld", what,
           (long long)tokenizer_pad_id(tok), (long long)bang);
    /* Prompt 1 of the goldens ("a red circle with a blue background")
     * padded with "!" instead of EOS. */
    size_t n;
    int64_t *want = golden_untruncated(1, &n);
    int64_t ids[TOKENIZER_MAX_LENGTH], mask[TOKENIZER_MAX_LENGTH];
    const char *text = "a red circle with a blue background";
    EXPECT(want && tokenizer_encode(tok, text, strlen(text), ids, mask, &err) == 0, "%s", err.msg);
    for (size_t j = 0; want && j < 77; j++) {
        EXPECT(ids[j] == (j < n ? want[j] : bang), "%s: id %zu", what, j);
        EXPECT(mask[j] == (j < n), "%s: mask %zu", what, j);
    }
    free(want);
    /* "!" is now an added token: the trie cuts "!!!" into three of them
     * (vocab["!"] each) instead of BPE's "!", "!", "!</w>". Golden prompt
     * 2 ends in "!!!" + EOS. */
    want = golden_untruncated(2, &n);
    text = "A RED Circle, on a Blue background!!!";
    int64_t *got;
    size_t m;
    EXPECT(want && tokenizer_encode_full(tok, text, strlen(text), &got, &m, &err) == 0, "%s",
           err.msg);
    if (want && m == n) {
        for (size_t j = 0; j + 4 < n; j++) EXPECT(got[j] == want[j], "%s: id %zu", what, j);
        EXPECT(got[n - 4] == bang && got[n - 3] == bang && got[n - 2] == bang &&
                   got[n - 1] == want[n - 1],
               "%s: \"!!!\" not split into added tokens", what);
        free(got);
    } else {
        EXPECT(0, "%s: %zu ids, want %zu", what, m, n);
    }
    free(want);
    tokenizer_free(tok);
}

static void test_tokenizer_sd2_padding(void) {
    char dir[64];
    /* The SD 2.x layout: a legacy config (no added_tokens_decoder) whose
     * special_tokens_map.json says pad "!" and wins. */
    CHECK(make_variant(
              dir, sizeof dir, "{\"model_max_length\": 77, \"pad_token\": \"<|endoftext|>\"}",
              "{\"pad_token\": \"!\", \"eos_token\": {\"content\": \"<|endoftext|>\"}}") == 0,
          "making %s", dir);
    check_sd2(dir, "legacy map");
    remove_dir(dir);
    /* A config with added_tokens_decoder: the map is ignored, the config's
     * pad "!" holds. */
    CHECK(make_variant(dir, sizeof dir,
                       "{\"model_max_length\": 77, \"pad_token\": \"!\", \"added_tokens_decoder\": "
                       "{\"998\": {\"content\": \"<|startoftext|>\"}, \"999\": {\"content\": "
                       "\"<|endoftext|>\"}}}",
                       "{\"pad_token\": \"<|endoftext|>\"}") == 0,
          "making %s", dir);
    check_sd2(dir, "added_tokens_decoder");
    remove_dir(dir);
}

static void test_tokenizer_left_side(void) {
    char dir[64];
    cnet_error err;
    tokenizer *tok;
    CHECK(make_variant(dir, sizeof dir,
                       "{\"model_max_length\": 8, \"padding_side\": \"left\", "
                       "\"truncation_side\": \"left\"}",
                       NULL) == 0,
          "making %s", dir);
    int rc = tokenizer_load(&tok, dir, &err);
    remove_dir(dir);
    CHECK(rc == 0, "%s", err.msg);
    size_t n;
    int64_t *want = golden_untruncated(1, &n); /* BOS + 7 tokens + EOS */
    int64_t ids[8], mask[8];
    const char *text = "a red circle with a blue background";
    rc = want && n == 9 ? tokenizer_encode(tok, text, strlen(text), ids, mask, &err) : -1;
    EXPECT(rc == 0, "encode: %s", err.msg);
    /* Truncated from the left: BOS, the last 6 tokens, EOS. */
    for (int j = 0; rc == 0 && j < 8; j++)
        EXPECT(ids[j] == (j == 0 ? want[0] : want[j + 1]) && mask[j] == 1, "left truncation %d", j);
    const char *short_text = "a red";
    rc = rc ? rc : tokenizer_encode(tok, short_text, strlen(short_text), ids, mask, &err);
    /* Padded on the left: 4 pads (EOS), then BOS a red EOS. */
    for (int j = 0; rc == 0 && j < 8; j++) {
        int64_t w = j < 4 ? want[n - 1] : (j == 4 ? want[0] : (j == 7 ? want[n - 1] : want[j - 4]));
        EXPECT(ids[j] == w && mask[j] == (j >= 4), "left padding %d", j);
    }
    free(want);
    tokenizer_free(tok);
}

/* ---- load errors ---- */

/* Loading dir fails with a message containing each of the needles. */
static int load_fails(const char *dir, const char *needle1, const char *needle2) {
    cnet_error err;
    tokenizer *tok;
    if (tokenizer_load(&tok, dir, &err) == 0) {
        tokenizer_free(tok);
        printf("    loaded, expected an error with '%s'\n", needle1);
        return 0;
    }
    int ok = strstr(err.msg, needle1) && (!needle2 || strstr(err.msg, needle2));
    if (!ok) printf("    error was: %s\n", err.msg);
    return ok;
}

static void test_tokenizer_load_errors(void) {
    char dir[64];
    CHECK(make_dir(dir, sizeof dir), "mkdtemp");
    EXPECT(load_fails(dir, "vocab.json", "not found"), "missing vocab.json");
    write_file(dir, "vocab.json", "{\"a\": 1,\n \"b\": }");
    EXPECT(load_fails(dir, "vocab.json:2:", "malformed JSON"), "malformed vocab.json");
    write_file(dir, "vocab.json", "{\"a\": \"x\"}");
    EXPECT(load_fails(dir, "vocab.json", "\"a\""), "non-integer id");
    write_file(dir, "vocab.json", mini_vocab);
    EXPECT(load_fails(dir, "merges.txt", "not found"), "missing merges.txt");
    write_file(dir, "merges.txt", "#version: 0.2\nb c</w>\na b c\n");
    EXPECT(load_fails(dir, "merges.txt:3:", "two symbols"), "three symbols");
    write_file(dir, "merges.txt", "#version: 0.2\nb c</w>\nab c</w>\n");
    /* Valid merges: loading gets as far as the missing config. */
    EXPECT(load_fails(dir, "tokenizer_config.json", "not found"), "ab c</w> is a valid merge");
    write_file(dir, "merges.txt", "#version: 0.2\nb c</w>\na bc</w>\nc a\n");
    EXPECT(load_fails(dir, "merges.txt:4:", "\"ca\" is not in vocab.json"), "missing result");
    write_file(dir, "merges.txt", "#version: 0.2\nb c</w>\na \xff\n");
    EXPECT(load_fails(dir, "merges.txt:3:", "UTF-8"), "invalid UTF-8 in merges");
    write_file(dir, "merges.txt", "#version: 0.2\nb c</w>\n");
    EXPECT(load_fails(dir, "tokenizer_config.json", "not found"), "missing config");
    write_file(dir, "tokenizer_config.json", "{\"pad_token\": \"!\"}");
    EXPECT(load_fails(dir, "tokenizer_config.json", "model_max_length"), "no max length");
    write_file(dir, "tokenizer_config.json", "{\"model_max_length\": 77, \"pad_token\": \"!\"}");
    EXPECT(load_fails(dir, "pad_token", "\"!\""), "pad token not in vocab");
    write_file(dir, "tokenizer_config.json", "{\"model_max_length\": 77, \"bos_token\": null}");
    EXPECT(load_fails(dir, "bos_token", "null"), "null bos token");
    write_file(dir, "tokenizer_config.json", plain_config);
    write_file(dir, "special_tokens_map.json", "{\"unk_token\": 5");
    EXPECT(load_fails(dir, "special_tokens_map.json:1:", "malformed JSON"), "bad map");
    remove_dir(dir);
}

/* ---- SDXL's tokenizer_2: pad "!" as an added token ---- */

/* Ids of text by the tiny-sdxl tokenizer `which` (owned) and their count. */
static int64_t *sdxl_ids(const char *which, const char *text, size_t *n) {
    char dir[4096];
    cnet_error err;
    tokenizer *tok;
    snprintf(dir, sizeof dir, "%s/tiny-sdxl/%s", fixtures(), which);
    if (tokenizer_load(&tok, dir, &err)) return NULL;
    int64_t *ids = NULL;
    if (tokenizer_encode_full(tok, text, strlen(text), &ids, n, &err)) ids = NULL;
    tokenizer_free(tok);
    return ids;
}

static void test_tokenizer_sdxl_pad_split(void) {
    /* goldens-sdxl/README.md (transformers' output): "background!!!" ->
     * tokenizer [.., 0, 0, 256], tokenizer_2 [.., 0, 0, 0]: tokenizer_2's
     * pad "!" (id 0, added_tokens_decoder) is cut out of the text before
     * BPE, so it never becomes "!</w>" (256). */
    size_t n1, n2;
    int64_t *a = sdxl_ids("tokenizer", "background!!!", &n1);
    int64_t *b = sdxl_ids("tokenizer_2", "background!!!", &n2);
    CHECK(a && b && n1 == n2 && n1 >= 5, "ids: %zu vs %zu", n1, n2);
    for (size_t i = 0; i + 4 < n1; i++)
        EXPECT(a[i] == b[i], "id %zu: %lld vs %lld", i, (long long)a[i], (long long)b[i]);
    const int64_t tail1[4] = {0, 0, 256, 999}, tail2[4] = {0, 0, 0, 999};
    for (int i = 0; i < 4; i++) {
        EXPECT(a[n1 - 4 + i] == tail1[i], "tokenizer tail %d: %lld", i, (long long)a[n1 - 4 + i]);
        EXPECT(b[n2 - 4 + i] == tail2[i], "tokenizer_2 tail %d: %lld", i, (long long)b[n2 - 4 + i]);
    }
    free(a), free(b);
    /* Inside a word the cut splits the word: "red!circle" is "red", "!",
     * "circle" tokenised apart. */
    size_t nw, nr, nc;
    int64_t *w = sdxl_ids("tokenizer_2", "red!circle", &nw);
    int64_t *r = sdxl_ids("tokenizer_2", "red", &nr), *c = sdxl_ids("tokenizer_2", "circle", &nc);
    CHECK(w && r && c, "tokenizer_2 did not load or encode");
    EXPECT(nw == nr + nc - 1, "red!circle: %zu ids, want %zu", nw, nr + nc - 1);
    if (nw == nr + nc - 1) {
        EXPECT(memcmp(w, r, (nr - 1) * sizeof *w) == 0, "red!circle: red part");
        EXPECT(w[nr - 1] == 0, "red!circle: the ! is %lld, want 0", (long long)w[nr - 1]);
        EXPECT(memcmp(w + nr, c + 1, (nc - 1) * sizeof *w) == 0, "red!circle: circle part");
    }
    free(w), free(r), free(c);
    /* Padding with the tokenizer's own pad token: 0 for tokenizer_2. */
    char dir[4096];
    cnet_error err;
    tokenizer *tok;
    snprintf(dir, sizeof dir, "%s/tiny-sdxl/tokenizer_2", fixtures());
    CHECK(tokenizer_load(&tok, dir, &err) == 0, "%s", err.msg);
    int64_t ids[TOKENIZER_MAX_LENGTH], mask[TOKENIZER_MAX_LENGTH];
    EXPECT(tokenizer_pad_id(tok) == 0 && tokenizer_encode(tok, "", 0, ids, mask, &err) == 0,
           "pad %lld: %s", (long long)tokenizer_pad_id(tok), err.msg);
    EXPECT(ids[0] == 998 && ids[1] == 999 && mask[1] == 1, "BOS EOS: %lld %lld", (long long)ids[0],
           (long long)ids[1]);
    for (int i = 2; i < tokenizer_max_length(tok); i++)
        EXPECT(ids[i] == 0 && mask[i] == 0, "pad at %d: %lld", i, (long long)ids[i]);
    tokenizer_free(tok);
}

int main(int argc, char **argv) {
    harness_init(argc, argv);
    RUN(test_tokenizer_golden);
    RUN(test_tokenizer_clean);
    RUN(test_tokenizer_split);
    RUN(test_tokenizer_byte_encoder);
    RUN(test_tokenizer_invalid_utf8);
    RUN(test_tokenizer_bpe_ranks);
    RUN(test_tokenizer_sd2_padding);
    RUN(test_tokenizer_left_side);
    RUN(test_tokenizer_load_errors);
    RUN(test_tokenizer_sdxl_pad_split);
    return harness_done();
}
