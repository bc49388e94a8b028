/* WebDataset tar shards, streamed with libarchive (never extracted).
 *
 * Naming (WebDataset's): a member's key is its path up to the first '.' of
 * its file name, the rest is its extension; key.png|jpg|jpeg is the target,
 * key.cond.png|jpg|jpeg the conditioning image, key.txt the caption (UTF-8,
 * taken verbatim); other extensions are ignored. A sample's members must be
 * consecutive. Refused outright, naming shard and member (the whole dataset,
 * as for an uploaded archive): absolute names, `..` segments, control
 * characters, symbolic and hard links, devices, a key's members split apart,
 * a member given twice.
 *
 * Opening scans each shard once: headers, and the small .txt members (kept in
 * the listing); image data is skipped. Reading streams the shards in the
 * epoch's shard order (dataset_stream.c: the shuffle buffer's slots) one
 * member at a time, keeping the bytes of wanted samples until they are
 * yielded. Shards are plain tar, optionally gzip/bzip2/xz/zstd compressed
 * (only built-in decoders; libarchive's external-program filters are not
 * enabled). A shard that fails mid-stream makes its remaining samples
 * unreadable (each returns the error) without stopping the others. */
#include <archive.h>
#include <archive_entry.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "engine/data/dataset_stream.h"
#include "engine/core/strmap.h"

#define TAR_BLOCK 65536 /* bytes libarchive reads at a time */

typedef enum part { PART_NONE = 0, PART_TARGET = 1, PART_COND = 2, PART_CAPTION = 4 } part;

static int is_image_ext(const char *ext) {
    return !strcasecmp(ext, "png") || !strcasecmp(ext, "jpg") || !strcasecmp(ext, "jpeg");
}

/* What member `name` is, and the length of its key. */
static part member_part(const char *name, size_t *key_len) {
    const char *slash = strrchr(name, '/');
    const char *dot = strchr(slash ? slash + 1 : name, '.');
    if (!dot || dot == (slash ? slash + 1 : name)) return PART_NONE;
    *key_len = (size_t)(dot - name);
    const char *ext = dot + 1;
    if (is_image_ext(ext)) return PART_TARGET;
    if (!strncasecmp(ext, "cond.", 5) && is_image_ext(ext + 5)) return PART_COND;
    if (!strcasecmp(ext, "txt")) return PART_CAPTION;
    return PART_NONE;
}

static const char *base_name(const char *path) {
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* Refuses what could escape or deceive; 1 for a folder (skip), 0 a file. */
static int check_member(const char *shard, struct archive_entry *ae, cnet_error *err) {
    const char *name = archive_entry_pathname(ae);
    if (!name || !*name) return cnet_fail(err, CNET_EFORMAT, "%s: a member has no name", shard);
    if (archive_entry_hardlink(ae))
        return cnet_fail(err, CNET_EFORMAT, "%s: member %s is a hard link (refused)", shard, name);
    mode_t type = archive_entry_filetype(ae);
    if (type != AE_IFREG && type != AE_IFDIR)
        return cnet_fail(err, CNET_EFORMAT, "%s: member %s is a %s (refused)", shard, name,
                         type == AE_IFLNK ? "symbolic link" : "special file");
    if (name[0] == '/')
        return cnet_fail(err, CNET_EFORMAT, "%s: member %s has an absolute name (refused)", shard,
                         name);
    if (strlen(name) >= DATASET_PATH_MAX)
        return cnet_fail(err, CNET_EFORMAT, "%s: a member name is longer than %d bytes", shard,
                         DATASET_PATH_MAX - 1);
    for (const char *c = name; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f || *c == '\\')
            return cnet_fail(err, CNET_EFORMAT,
                             "%s: member %s has a control character or backslash (refused)", shard,
                             name);
    for (const char *seg = name; seg; seg = strchr(seg, '/') ? strchr(seg, '/') + 1 : NULL)
        if (seg[0] == '.' && seg[1] == '.' && (seg[2] == '/' || seg[2] == '\0'))
            return cnet_fail(err, CNET_EFORMAT, "%s: member %s has a '..' segment (refused)", shard,
                             name);
    return type == AE_IFDIR;
}

static struct archive *open_shard(const char *path, cnet_error *err) {
    struct archive *a = archive_read_new();
    if (!a) {
        cnet_fail(err, CNET_ENOMEM, "%s: out of memory", path);
        return NULL;
    }
    archive_read_support_format_tar(a);
    archive_read_support_filter_gzip(a);
    archive_read_support_filter_bzip2(a);
    archive_read_support_filter_xz(a);
    archive_read_support_filter_zstd(a);
    if (archive_read_open_filename(a, path, TAR_BLOCK) != ARCHIVE_OK) {
        cnet_fail(err, CNET_EFORMAT, "%s: %s", path,
                  archive_error_string(a) ? archive_error_string(a) : "not a tar shard");
        archive_read_free(a);
        return NULL;
    }
    return a;
}

/* Reads the current member's data into buf (cap bytes at most; more is
 * CNET_ELIMIT after the data is skipped). */
static int read_member(struct archive *a, uint8_t **buf, size_t *cap, size_t *len, size_t max,
                       const char *what, cnet_error *err) {
    *len = 0;
    for (;;) {
        if (*len == *cap) {
            size_t ncap = *cap ? 2 * *cap : 1 << 16;
            if (ncap > max + 1) ncap = max + 1;
            if (*len == ncap)
                return cnet_fail(err, CNET_ELIMIT, "%s is larger than %zu bytes", what, max);
            uint8_t *p = realloc(*buf, ncap);
            if (!p) return cnet_fail(err, CNET_ENOMEM, "%s: out of memory", what);
            *buf = p, *cap = ncap;
        }
        la_ssize_t r = archive_read_data(a, *buf + *len, *cap - *len);
        if (r == 0) return 0;
        if (r < 0)
            return cnet_fail(err, CNET_EFORMAT, "%s: %s", what,
                             archive_error_string(a) ? archive_error_string(a) : "read error");
        *len += (size_t)r;
        if (*len > max)
            return cnet_fail(err, CNET_ELIMIT, "%s is larger than %zu bytes", what, max);
    }
}

/* ---- index scan ---------------------------------------------------------- */

typedef struct scan {
    dataset *ds;
    const char *shard;
    int s;
    dataset_entry *cur; /* the key being filled */
    size_t cur_key;     /* pool offset of the current key text */
    strmap seen;        /* keys met in this shard */
    uint8_t *text;
    size_t text_cap;
} scan;

static int scan_member(scan *sc, struct archive *a, const char *name, cnet_error *err) {
    size_t klen;
    part p = member_part(name, &klen);
    if (p == PART_NONE) return 0;
    dataset *ds = sc->ds;
    if (!sc->cur || strncmp(ds->pool + sc->cur_key, name, klen) != 0 ||
        ds->pool[sc->cur_key + klen] != '\0') {
        int64_t dummy;
        if (strmap_get(&sc->seen, name, klen, &dummy))
            return cnet_fail(err, CNET_EFORMAT,
                             "%s: the members of key %.*s are not consecutive (WebDataset "
                             "needs each sample's files together)",
                             sc->shard, (int)klen, name);
        if (strmap_put(&sc->seen, name, klen, 1))
            return cnet_fail(err, CNET_ENOMEM, "%s: out of memory", sc->shard);
        dataset_entry *e = dataset_entry_add(ds, err);
        if (!e) return err ? err->code : CNET_ENOMEM;
        e->shard = sc->s;
        e->absent = DATASET_PART_TARGET | DATASET_PART_COND | DATASET_PART_CAPTION;
        char label[2 * DATASET_PATH_MAX];
        int n = snprintf(label, sizeof label, "%s:%.*s", base_name(sc->shard), (int)klen, name);
        int64_t off = dataset_pool_add(ds, label, (size_t)n, err);
        if (off < 0) return (int)off;
        e->name = off;
        sc->cur_key = (size_t)off + strlen(base_name(sc->shard)) + 1;
        sc->cur = e;
    }
    dataset_entry *e = sc->cur;
    if (!(e->absent & p))
        return cnet_fail(err, CNET_EFORMAT, "%s: key %.*s has two %s members (second: %s)",
                         sc->shard, (int)klen, name,
                         p == PART_CAPTION ? "caption"
                         : p == PART_COND  ? "conditioning"
                                           : "target",
                         name);
    e->absent &= (uint8_t)~p;
    if (p != PART_CAPTION) {
        int64_t off = dataset_pool_add(ds, name, strlen(name), err);
        if (off < 0) return (int)off;
        if (p == PART_TARGET)
            e->target = off;
        else
            e->cond = off;
        return 0;
    }
    char what[DATASET_PATH_MAX + 64];
    snprintf(what, sizeof what, "%s: caption %s", sc->shard, name);
    size_t len;
    int rc = read_member(a, &sc->text, &sc->text_cap, &len, DATASET_CAPTION_MAX, what, err);
    if (rc) return rc;
    if (memchr(sc->text, '\0', len))
        return cnet_fail(err, CNET_EFORMAT, "%s: a NUL byte in the text", what);
    return dataset_caption_add(ds, e, (const char *)sc->text, len, err);
}

static int scan_shard(scan *sc, cnet_error *err) {
    struct archive *a = open_shard(sc->shard, err);
    if (!a) return err ? err->code : CNET_EFORMAT;
    int rc = 0;
    while (!rc) {
        struct archive_entry *ae;
        int r = archive_read_next_header(a, &ae);
        if (r == ARCHIVE_EOF) break;
        if (r != ARCHIVE_OK) {
            rc = cnet_fail(err, CNET_EFORMAT, "%s: %s", sc->shard,
                           archive_error_string(a) ? archive_error_string(a) : "unreadable");
            break;
        }
        rc = check_member(sc->shard, ae, err);
        if (rc == 0) rc = scan_member(sc, a, archive_entry_pathname(ae), err);
        if (rc == 1) rc = 0; /* a folder */
    }
    archive_read_free(a);
    return rc;
}

int dataset_tar_index(dataset *ds, cnet_error *err) {
    scan sc = {.ds = ds};
    int rc = 0;
    for (int s = 0; !rc && s < ds->n_shards; s++) {
        sc.shard = ds->shards[s], sc.s = s, sc.cur = NULL;
        strmap_clear(&sc.seen);
        rc = scan_shard(&sc, err);
    }
    strmap_free(&sc.seen);
    free(sc.text);
    return rc;
}

/* ---- streaming ------------------------------------------------------------ */

struct dataset_tar_stream {
    dataset_stream base;
    struct archive *a; /* the open shard, NULL between shards */
    char cond_name[2 * DATASET_PATH_MAX];
};

static void close_shard(dataset *ds) {
    if (ds->tar->a) archive_read_free(ds->tar->a);
    ds->tar->a = NULL;
}

void dataset_tar_close(dataset *ds) {
    dataset_tar_stream *st = ds->tar;
    if (!st) return;
    close_shard(ds);
    dataset_stream_free(&st->base);
    free(st);
    ds->tar = NULL;
}

static int tar_open(dataset *ds, int s, cnet_error *err) {
    ds->tar->a = open_shard(ds->shards[s], err);
    return ds->tar->a ? 0 : err->code;
}

static void mark_broken(dataset *ds, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The shard being read failed: close it; its unread samples will say why. */
static void mark_broken(dataset *ds, const char *fmt, ...) {
    char msg[CNET_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    dataset_stream_break(ds, &ds->tar->base, msg);
}

/* One step inside the open shard: reads one member. CNET_ELIMIT if the
 * slots overflow (a bug). */
static int tar_step(dataset *ds, cnet_error *err) {
    dataset_tar_stream *ts = ds->tar;
    dataset_stream *st = &ts->base;
    const char *shard = ds->shards[ds->shard_order[st->pos]];
    struct archive_entry *ae;
    int r = archive_read_next_header(ts->a, &ae);
    if (r == ARCHIVE_EOF) {
        dataset_stream_end_shard(ds, st);
        return 0;
    }
    cnet_error me;
    if (r != ARCHIVE_OK || check_member(shard, ae, &me) < 0) {
        mark_broken(ds, "%s: %s", shard,
                    r != ARCHIVE_OK
                        ? (archive_error_string(ts->a) ? archive_error_string(ts->a) : "unreadable")
                        : me.msg);
        return 0;
    }
    const char *name = archive_entry_pathname(ae);
    size_t klen;
    part p = archive_entry_filetype(ae) == AE_IFDIR ? PART_NONE : member_part(name, &klen);
    if (p == PART_NONE || p == PART_CAPTION) return 0; /* captions are in the listing */
    int64_t end = st->first[ds->shard_order[st->pos] + 1];
    size_t label = strlen(base_name(shard)) + 1; /* entry names are "<shard>:<key>" */
    for (; st->e < end; st->e++) {
        const char *key = ds->pool + ds->entries[st->e].name + label;
        if (strncmp(key, name, klen) == 0 && key[klen] == '\0') break;
    }
    if (st->e == end) {
        mark_broken(ds, "%s: member %s was not there when the shard was indexed (changed?)", shard,
                    name);
        return 0;
    }
    if (!st->want[st->e]) return 0;
    dataset_stream_slot *slot = dataset_stream_slot_for(st, st->e);
    if (!slot) return cnet_fail(err, CNET_ELIMIT, "tar reader: shuffle slots overflow");
    int k = p == PART_TARGET ? 0 : 1;
    char what[2 * DATASET_PATH_MAX];
    snprintf(what, sizeof what, "%s: member %s", shard, name);
    cnet_error re;
    int rc = read_member(ts->a, &slot->buf[k], &slot->cap[k], &slot->len[k], DATASET_FILE_MAX, what,
                         &re);
    slot->have |= (uint8_t)(k ? DATASET_SLOT_COND : DATASET_SLOT_TARGET);
    if (rc == CNET_ELIMIT && !slot->fail) {
        slot->fail = rc;
        memcpy(slot->msg, re.msg, sizeof slot->msg);
    } else if (rc) {
        mark_broken(ds, "%s", re.msg);
    }
    return 0;
}

static const dataset_stream_ops tar_ops = {
    .open = tar_open, .step = tar_step, .close = close_shard};

int dataset_tar_start(dataset *ds, uint8_t *want, cnet_error *err) {
    dataset_tar_close(ds);
    ds->tar = calloc(1, sizeof *ds->tar);
    int rc = dataset_stream_start(ds, ds->tar ? &ds->tar->base : NULL, &tar_ops, want, "tar reader",
                                  err);
    if (rc) dataset_tar_close(ds);
    return rc;
}

int dataset_tar_fetch(dataset *ds, int64_t id, dataset_sample *s, cnet_error *err) {
    dataset_tar_stream *st = ds->tar;
    dataset_stream_release(&st->base); /* before a refusal below, as for any fetch */
    const dataset_entry *e = &ds->entries[id];
    const char *label = ds->pool + e->name, *shard = ds->shards[e->shard];
    snprintf(st->cond_name, sizeof st->cond_name, "%s:%s", base_name(shard),
             e->absent & DATASET_PART_COND ? "(none)" : ds->pool + e->cond);
    s->name = label, s->cond_name = st->cond_name;
    if (e->absent)
        return cnet_fail(err, CNET_ENOTFOUND, "%s: no %s%s%s member in the shard", label,
                         e->absent & DATASET_PART_TARGET ? "target (key.png|jpg) " : "",
                         e->absent & DATASET_PART_COND ? "conditioning (key.cond.png|jpg) " : "",
                         e->absent & DATASET_PART_CAPTION ? "caption (key.txt) " : "");
    return dataset_stream_fetch(ds, &st->base, id, s, err);
}
