/* TensorBoard's event encoding and file writer (engine/tensorboard/tensorboard_*)
 * against published truths: CRC-32C's check value and RFC 3720's B.4
 * vectors, TFRecord's mask applied by hand, the protobuf encoding guide's
 * examples (varints, field keys, 150 as 08 96 01, "testing" as
 * 12 07 74 65 73 74 69 6e 67) and IEEE-754 little-endian doubles/floats.
 * The writer: the file's name, its first record decoded byte by byte, and
 * a write that fails (a file size limit standing in for a full disk) as an
 * error naming the file. --report_to's names (engine/train/train_tracker.h).
 * The whole file read by an independent reader (Debian's protobuf) is
 * tests/integration/tensorboard_test.sh. */
#include <dirent.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/tensorboard/tensorboard_encode.h"
#include "engine/tensorboard/tensorboard_writer.h"
#include "engine/train/train_tracker.h"
#include "tests/lib/harness.h"
#include "tests/lib/lib_fs.h"

static int bytes_are(const tensorboard_buf *b, const char *hex) {
    char got[512] = "";
    for (size_t i = 0; i < b->len && 2 * i + 2 < sizeof got; i++)
        snprintf(got + 2 * i, 3, "%02x", b->data[i]);
    if (!strcmp(got, hex)) return 1;
    printf("    got %s, want %s\n", got, hex);
    return 0;
}

static void test_crc32c_vectors(void) {
    uint8_t buf[32];
    CHECK(tensorboard_crc32c("123456789", 9) == 0xE3069283u, "check value");
    CHECK(tensorboard_crc32c("", 0) == 0, "empty");
    memset(buf, 0, sizeof buf);
    CHECK(tensorboard_crc32c(buf, 32) == 0x8A9136AAu, "32 zeros");
    memset(buf, 0xFF, sizeof buf);
    CHECK(tensorboard_crc32c(buf, 32) == 0x62A8AB43u, "32 x ff");
    for (int i = 0; i < 32; i++) buf[i] = (uint8_t)i;
    CHECK(tensorboard_crc32c(buf, 32) == 0x46DD794Eu, "0..31");
    for (int i = 0; i < 32; i++) buf[i] = (uint8_t)(31 - i);
    CHECK(tensorboard_crc32c(buf, 32) == 0x113FDB5Cu, "31..0");
}

static void test_crc32c_mask(void) {
    CHECK(tensorboard_crc32c_mask(0) == 0xa282ead8u, "mask of 0 is the delta");
    /* 0xE3069283 rotated right by 15 is 0x2507C60D; + 0xa282ead8 */
    CHECK(tensorboard_crc32c_mask(0xE3069283u) == 0xc78ab0e5u, "mask of the check value %08x",
          tensorboard_crc32c_mask(0xE3069283u));
}

static void test_varints(void) {
    const struct {
        uint64_t v;
        const char *hex;
    } cases[] = {{0, "00"},
                 {1, "01"},
                 {127, "7f"},
                 {128, "8001"},
                 {300, "ac02"},
                 {16384, "808001"},
                 {UINT64_MAX, "ffffffffffffffffff01"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tensorboard_buf b = {0};
        tensorboard_put_varint(&b, cases[i].v);
        EXPECT(!b.failed && bytes_are(&b, cases[i].hex), "varint %llu",
               (unsigned long long)cases[i].v);
        tensorboard_buf_free(&b);
    }
}

static void test_fields(void) {
    tensorboard_buf b = {0};
    tensorboard_put_field_varint(&b, 1, 150);
    EXPECT(bytes_are(&b, "089601"), "field 1 = 150");
    tensorboard_buf_free(&b);
    tensorboard_put_field_bytes(&b, 2, "testing", 7);
    EXPECT(bytes_are(&b, "120774657374696e67"), "field 2 = testing");
    tensorboard_buf_free(&b);
    tensorboard_put_field_double(&b, 1, 1.0);
    EXPECT(bytes_are(&b, "09000000000000f03f"), "field 1 = 1.0 (double)");
    tensorboard_buf_free(&b);
    tensorboard_put_field_float(&b, 2, 0.5f);
    EXPECT(bytes_are(&b, "150000003f"), "field 2 = 0.5f (float)");
    tensorboard_buf_free(&b);
    tensorboard_put_field_varint(&b, 2, (uint64_t)(int64_t)-1); /* int64 -1: ten bytes */
    EXPECT(bytes_are(&b, "10ffffffffffffffffff01"), "field 2 = -1 (int64)");
    tensorboard_buf_free(&b);
}

/* Event {step 7, summary {value {tag "loss", simple_value 0.5}}}, built by
 * hand from the field numbers (wall time 1.0). */
static void test_scalar_event(void) {
    tensorboard_buf b = {0};
    const char *tags[] = {"loss"};
    const float values[] = {0.5f};
    tensorboard_event_scalars(&b, 1.0, 7, tags, values, 1);
    /* 09 <1.0> | 10 07 | 2a 0d { 0a 0b { 0a 04 "loss" | 15 <0.5f> } } */
    EXPECT(bytes_are(&b, "09000000000000f03f"
                         "1007"
                         "2a0d"
                         "0a0b"
                         "0a046c6f7373"
                         "150000003f"),
           "scalar event");
    tensorboard_buf_free(&b);
}

/* Event {wall_time 1.0, step 3, session_log {status START (1)}}: event.proto's
 * field 6, SessionLog's status field 1. */
static void test_session_start_event(void) {
    tensorboard_buf b = {0};
    tensorboard_event_session_start(&b, 1.0, 3);
    EXPECT(bytes_are(&b, "09000000000000f03f"
                         "1003"
                         "32020801"),
           "session_log START event");
    tensorboard_buf_free(&b);
}

/* Event {step 3, summary {value {tag "v", image {2, 5, 3, "PNG"}}}}. */
static void test_image_event(void) {
    tensorboard_buf b = {0};
    tensorboard_event_image(&b, 1.0, 3, "v", 2, 5, 3, "PNG", 3);
    /* image: 08 02 10 05 18 03 22 03 "PNG" (11 bytes); value: 0a 01 "v" 22 0b
     * <image> (16); summary: 0a 10 <value> (18) */
    EXPECT(bytes_are(&b, "09000000000000f03f"
                         "1003"
                         "2a12"
                         "0a10"
                         "0a0176"
                         "220b"
                         "0802"
                         "1005"
                         "1803"
                         "2203504e47"),
           "image event");
    tensorboard_buf_free(&b);
}

static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void test_record_framing(void) {
    tensorboard_buf r = {0};
    tensorboard_frame_record(&r, "abc", 3);
    CHECK(!r.failed && r.len == 8 + 4 + 3 + 4, "record of 3 bytes is %zu", r.len);
    const uint8_t len[8] = {3, 0, 0, 0, 0, 0, 0, 0};
    CHECK(!memcmp(r.data, len, 8), "length, little-endian uint64");
    CHECK(le32(r.data + 8) == tensorboard_crc32c_mask(tensorboard_crc32c(len, 8)), "length crc");
    CHECK(!memcmp(r.data + 12, "abc", 3), "data");
    CHECK(le32(r.data + 15) == tensorboard_crc32c_mask(tensorboard_crc32c("abc", 3)), "data crc");
    tensorboard_buf_free(&r);
}

/* The one file in dir whose name starts with prefix, into path. */
static int only_file(const char *dir, const char *prefix, char *path, size_t n) {
    DIR *d = opendir(dir);
    int found = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        if (!strncmp(e->d_name, prefix, strlen(prefix)))
            found++, snprintf(path, n, "%s/%s", dir, e->d_name);
    if (d) closedir(d);
    return found == 1;
}

static void test_writer_file(void) {
    char dir[512], path[1024];
    CHECK(!tmpdir_make(dir, sizeof dir, "cnet-tb"), "tmpdir");
    tensorboard_writer w;
    cnet_error err = {0};
    CHECK(!tensorboard_writer_open(&w, dir, &err), "%s", err.msg);
    tensorboard_writer_close(&w);
    CHECK(only_file(dir, "events.out.tfevents.", path, sizeof path), "one event file");
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    const char *name = strrchr(path, '/') + 1;
    char tail[512];
    snprintf(tail, sizeof tail, ".%s.%d.", host, (int)getpid());
    /* events.out.tfevents.<10 digits>.<host>.<pid>.<n> */
    EXPECT(strlen(name) > 30 && strspn(name + 20, "0123456789") == 10 && name[30] == '.' &&
               !strncmp(name + 30, tail, strlen(tail)),
           "file name %s", name);
    size_t n;
    uint8_t *data = (uint8_t *)file_read(path, &n);
    CHECK(data, "read %s", path);
    /* Event {wall_time (9 bytes), file_version "brain.Event:2"}: 24 bytes */
    const int ok = n == 8 + 4 + 24 + 4 && data[0] == 24 && data[12] == 0x09 && data[21] == 0x1a &&
                   data[22] == 13 && !memcmp(data + 23, "brain.Event:2", 13) &&
                   le32(data + 36) == tensorboard_crc32c_mask(tensorboard_crc32c(data + 12, 24));
    free(data);
    tmpdir_remove(dir);
    CHECK(ok, "the first record is Event {wall_time, file_version brain.Event:2} (%zu bytes)", n);
}

/* A write the file system refuses (here RLIMIT_FSIZE, as a full disk would)
 * is an error naming the file, not a silent loss. */
static void test_writer_refused_write(void) {
    char dir[512];
    CHECK(!tmpdir_make(dir, sizeof dir, "cnet-tb"), "tmpdir");
    tensorboard_writer w;
    cnet_error err = {0};
    CHECK(!tensorboard_writer_open(&w, dir, &err), "%s", err.msg);
    struct rlimit old, small;
    getrlimit(RLIMIT_FSIZE, &old);
    small = old;
    small.rlim_cur = 64; /* the file holds 40 bytes: the next record does not fit */
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    setrlimit(RLIMIT_FSIZE, &small);
    tensorboard_buf ev = {0};
    const char *tags[] = {"loss"};
    const float values[] = {1.0f};
    tensorboard_event_scalars(&ev, 1.0, 1, tags, values, 1);
    const int rc = tensorboard_writer_add(&w, &ev, &err);
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, prev);
    tensorboard_buf_free(&ev);
    tensorboard_writer_close(&w);
    tmpdir_remove(dir);
    CHECK(rc == CNET_EIO && strstr(err.msg, "events.out.tfevents.") && strstr(err.msg, dir),
          "rc %d: %s", rc, err.msg);
}

static void test_report_to_names(void) {
    unsigned bits = 0;
    cnet_error err = {0};
    EXPECT(!train_tracker_parse("tensorboard", &bits, &err) && bits == TRAIN_TRACKER_TENSORBOARD,
           "tensorboard");
    EXPECT(!train_tracker_parse("all", &bits, &err) && bits == TRAIN_TRACKERS_ALL, "all");
    EXPECT(train_tracker_parse("wandb", &bits, &err) == CNET_EINVAL && strstr(err.msg, "wandb") &&
               strstr(err.msg, "use --report_to tensorboard"),
           "wandb: %s", err.msg);
    EXPECT(train_tracker_parse("comet_ml", &bits, &err) == CNET_EINVAL &&
               strstr(err.msg, "use --report_to tensorboard"),
           "comet_ml: %s", err.msg);
    EXPECT(train_tracker_parse("mlflow", &bits, &err) == CNET_EINVAL && strstr(err.msg, "mlflow"),
           "unknown: %s", err.msg);
}

int main(int argc, char **argv) {
    harness_init(argc, argv);
    RUN(test_crc32c_vectors);
    RUN(test_crc32c_mask);
    RUN(test_varints);
    RUN(test_fields);
    RUN(test_scalar_event);
    RUN(test_image_event);
    RUN(test_session_start_event);
    RUN(test_record_framing);
    RUN(test_writer_file);
    RUN(test_writer_refused_write);
    RUN(test_report_to_names);
    return harness_done();
}
