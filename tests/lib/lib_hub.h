/* Helpers for the Hub tests: run the emulator (tests/tools/tool_hub_emulator.c)
 * as a child process, talk to its control routes, make a training output
 * directory, run the cnet CLI and capture what it prints. */
#ifndef CNET_TEST_LIB_HUB_H
#define CNET_TEST_LIB_HUB_H

#include <stddef.h>
#include <sys/types.h>

typedef struct thub_emu {
    pid_t pid;
    int stdin_fd; /* closing it stops the emulator */
    int port;
    char dir[512];     /* scratch dir: emu data, log */
    char endpoint[64]; /* http://127.0.0.1:PORT */
    char log[600];
} thub_emu;

/* Starts the emulator with data under dir; extra: NULL-terminated options. */
int thub_emu_start(thub_emu *e, const char *dir, const char *const *extra);
void thub_emu_stop(thub_emu *e);
/* POST /_emu/<query> (e.g. "fault?route=commit&kind=drop"); returns the HTTP status. */
long thub_emu_ctl(const thub_emu *e, const char *query);
/* Requests seen on a route since the last reset; storage_auth when route is NULL. */
int thub_emu_count(const thub_emu *e, const char *route);
/* Faults fired on a route since the last reset. */
int thub_emu_faults(const thub_emu *e, const char *route);
/* Creates repo_id ("ns/name") on the emulator (or keeps it, when it
 * exists) and commits every regular file under dir (subfolders as paths, e.g. unet/config.json) as
 * one commit of inline files, with the write token. A whole diffusers pipeline can be published
 * this way (cnet push only sends a ControlNet's top level). 0 ok. */
int thub_seed_repo(const thub_emu *e, const char *token, const char *repo_id, const char *dir);
/* The same for a dataset repo. */
int thub_seed_dataset(const thub_emu *e, const char *token, const char *repo_id, const char *dir);
/* The same on ref (e.g. "refs/convert/parquet", the Hub's Parquet
 * conversion), created from main first: the repo must exist. */
int thub_seed_dataset_ref(const thub_emu *e, const char *token, const char *repo_id,
                          const char *dir, const char *ref);
/* Scans the emulator's request log for a secret: *with = lines holding it;
 * returns the lines where it is misplaced — anywhere but once, as
 * "Authorization: Bearer <secret>", on a Hub API route (never storage,
 * completion, control or unknown routes) — printing each; -1 if unreadable. */
int thub_log_misplaced(const thub_emu *e, const char *secret, int *with);

/* A fresh temp directory (0755) under $TMPDIR; path into out. */
int thub_tmpdir(char *out, size_t cap);
/* A training output dir: config.json, README.md, weights of weights_bytes
 * random bytes, two validation PNGs, plus checkpoint-10/, optimizer.bin and
 * logs/ that must not be pushed. seed varies the contents. */
int thub_make_outdir(const char *dir, long weights_bytes, unsigned seed);
/* Runs argv with extra env ("K=V", NULL-terminated; "K=" unsets K), output
 * (stdout+stderr) into out. as_nobody drops to uid/gid 65534 when root;
 * fsize_limit > 0 sets RLIMIT_FSIZE (writes past it fail like a full disk).
 * Returns the exit status, or -1. */
int thub_run(const char *const *argv, const char *const *env, int as_nobody, long fsize_limit,
             char *out, size_t cap);
/* SHA-256 hex of a file; 0 on success. */
int thub_sha256(const char *path, char out[65]);
/* Reads a whole file (caller frees); NULL on failure. */
char *thub_read(const char *path, size_t *len);
/* 1 if the needle occurs in any regular file (or symlink target) under dir. */
int thub_tree_contains(const char *dir, const char *needle);

#endif
