/* `cnet push`: publish a training output directory to a Hub model repo.
 * A thin command over hub_push (server/hub/hub_push.h): options, progress on
 * stderr, the resulting commit on stdout. */
#include <stdio.h>
#include <string.h>

#include "api/hub_ref.h"
#include "server/cli/cli_args.h"
#include "server/cli/commands.h"
#include "server/hub/hub_push.h"

static const char push_usage[] =
    "usage: cnet push --repo NAMESPACE/NAME --dir OUTPUT_DIR [--private] [--revision main]\n"
    "                 [--endpoint URL] [--message TEXT]\n"
    "\n"
    "Uploads config.json, *.safetensors, README.md and validation images (*.png, *.jpg) from\n"
    "the top level of OUTPUT_DIR (never checkpoint-* directories, optimizer state or logs) in\n"
    "one commit. Files already identical on the Hub are skipped; when nothing changed no\n"
    "commit is made and the current head is printed.\n"
    "\n"
    "  --repo ID        target model repo, created if missing\n"
    "  --dir DIR        the training output directory\n"
    "  --private        create the repo private (an existing repo keeps its visibility)\n"
    "  --revision REV   branch to commit to (default main)\n"
    "  --endpoint URL   Hub URL (default: HF_ENDPOINT, else https://huggingface.co); only\n"
    "                   https, or http to 127.0.0.1/localhost for a local emulator\n"
    "  --message TEXT   commit summary\n"
    "\n"
    "Token (needs write access), first found wins:\n"
    "  HF_TOKEN         environment variable holding the token\n"
    "  HF_TOKEN_FILE    path of a file holding it (e.g. a Docker secret)\n"
    "  HF_TOKEN_PATH, else $HF_HOME/token (default ~/.cache/huggingface/token), the file\n"
    "                   `hf auth login` writes\n"
    "The token is never printed, logged or sent to storage URLs. There is deliberately no\n"
    "--token option: command lines are visible to other users.\n";

static void on_progress(void *ctx, const hub_push_progress *p) {
    (void)ctx;
    switch (p->phase) {
    case HUB_PUSH_HASH:
        fprintf(stderr, "hashing %s\n", p->file);
        break;
    case HUB_PUSH_CHECK:
        fprintf(stderr, "checked %lld/%lld files\n", p->done, p->total);
        break;
    case HUB_PUSH_UPLOAD:
        if (p->file)
            fprintf(stderr, "uploading %s: %lld/%lld bytes of all LFS files\n", p->file, p->done,
                    p->total);
        break;
    case HUB_PUSH_COMMIT:
        fprintf(stderr, "committing\n");
        break;
    case HUB_PUSH_DONE:
        break;
    }
}

static void on_log(void *ctx, const char *line) {
    (void)ctx;
    fprintf(stderr, "%s\n", line);
}

int cmd_push(int argc, char **argv) {
    hub_push_opts o = {.revision = "main", .progress = on_progress};
    const char *endpoint = NULL;
    cnet_error err = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int rc = 0;
        if (cli_is_help(a)) {
            fputs(push_usage, stdout);
            return 0;
        } else if (cli_flag(a, "private", NULL)) {
            o.private_repo = 1;
        } else if (cli_take(argc, argv, &i, "repo", &o.repo_id, &err)) {
            rc = !o.repo_id;
        } else if (cli_take(argc, argv, &i, "dir", &o.dir, &err)) {
            rc = !o.dir;
        } else if (cli_take(argc, argv, &i, "revision", &o.revision, &err)) {
            rc = !o.revision;
        } else if (cli_take(argc, argv, &i, "endpoint", &endpoint, &err)) {
            rc = !endpoint;
        } else if (cli_take(argc, argv, &i, "message", &o.message, &err)) {
            rc = !o.message;
        } else {
            rc = cnet_fail(&err, CNET_EINVAL, "unknown option '%s'", a);
        }
        if (rc) {
            fprintf(stderr, "cnet push: %s\n%s", err.msg, push_usage);
            return 2;
        }
    }
    if (!o.repo_id || !o.dir) {
        fprintf(stderr, "cnet push: --repo and --dir are required\n%s", push_usage);
        return 2;
    }
    hub_client c;
    if (hub_repo_id_check(o.repo_id, &err) != 0 || hub_client_init(&c, endpoint, 1, &err) != 0) {
        fprintf(stderr, "cnet push: %s\n", err.msg);
        return err.code == CNET_EINVAL ? 2 : 1;
    }
    c.log = on_log;
    hub_push_result r;
    int rc = hub_push(&c, &o, &r, &err);
    if (rc != 0) {
        fprintf(stderr, "cnet push: %s\n", err.msg);
    } else if (r.created_commit) {
        printf("pushed %s@%s: commit %s (%d files: %d unchanged, %d inline, %d LFS uploaded, "
               "%d LFS already stored; %d retries)\n",
               o.repo_id, o.revision, r.commit, r.files, r.unchanged, r.inline_files,
               r.lfs_uploaded, r.lfs_present, c.stats.retries);
        if (r.commit_url[0]) printf("%s\n", r.commit_url);
    } else {
        printf("unchanged %s@%s: already at commit %s (%d files identical); no commit made\n",
               o.repo_id, o.revision, r.commit, r.files);
    }
    hub_client_free(&c);
    return rc == 0 ? 0 : 1;
}
