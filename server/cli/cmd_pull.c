/* `cnet pull`: download a Hub model repo into the huggingface_hub cache and
 * print the snapshot directory. A thin command over hub_pull
 * (server/hub/hub_pull.h). */
#include <stdio.h>
#include <string.h>

#include "api/hub_ref.h"
#include "server/cli/cli_args.h"
#include "server/cli/commands.h"
#include "server/cli/dl_progress.h"
#include "server/hub/hub_pull.h"

#define PULL_INCLUDE_MAX 32 /* --include options accepted */

static const char pull_usage[] =
    "usage: cnet pull REPO_ID [--revision REV] [--include GLOB]... [--endpoint URL]\n"
    "                 [--offline] [--cache DIR]\n"
    "\n"
    "Downloads the files of a model repo (or those matching any --include glob) into the\n"
    "Hugging Face cache and prints the snapshot directory. REPO_ID may also be written\n"
    "hf://NAMESPACE/NAME[@REV]. Interrupted downloads resume; files already cached are reused.\n"
    "\n"
    "  --revision REV   branch, tag or commit (default main)\n"
    "  --include GLOB   only paths matching GLOB (repeatable)\n"
    "  --endpoint URL   Hub URL (default: HF_ENDPOINT, else https://huggingface.co)\n"
    "  --offline        use only the cache (also HF_HUB_OFFLINE=1)\n"
    "  --cache DIR      cache root (default: HF_HUB_CACHE, else $HF_HOME/hub, else\n"
    "                   ~/.cache/huggingface/hub)\n"
    "\n"
    "Token (optional, for private repos): HF_TOKEN, HF_TOKEN_FILE, or $HF_HOME/token.\n";

static void on_log(void *ctx, const char *line) {
    dl_progress_end(ctx); /* a retry's line below the bar */
    fprintf(stderr, "%s\n", line);
}

int cmd_pull(int argc, char **argv) {
    const char *include[PULL_INCLUDE_MAX + 1] = {0};
    int n_include = 0;
    dl_progress downloads;
    dl_progress_init(&downloads, stderr, "");
    hub_pull_opts o = {.progress = dl_progress_file, .progress_ctx = &downloads};
    const char *endpoint = NULL, *id = NULL;
    cnet_error err = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        int rc = 0;
        if (cli_is_help(a)) {
            fputs(pull_usage, stdout);
            return 0;
        } else if (cli_flag(a, "offline", NULL)) {
            o.offline = 1;
        } else if (cli_take(argc, argv, &i, "revision", &o.revision, &err)) {
            rc = !o.revision;
        } else if (cli_take(argc, argv, &i, "include", &v, &err)) {
            if (v && n_include == PULL_INCLUDE_MAX)
                cnet_fail(&err, CNET_EINVAL, "more than %d --include patterns", PULL_INCLUDE_MAX);
            rc = !v || n_include == PULL_INCLUDE_MAX;
            if (!rc) include[n_include++] = v;
        } else if (cli_take(argc, argv, &i, "endpoint", &endpoint, &err)) {
            rc = !endpoint;
        } else if (cli_take(argc, argv, &i, "cache", &o.cache_dir, &err)) {
            rc = !o.cache_dir;
        } else if (a[0] != '-' && !id) {
            id = a;
        } else {
            rc = cnet_fail(&err, CNET_EINVAL, "unknown option '%s'", a);
        }
        if (rc) {
            fprintf(stderr, "cnet pull: %s\n%s", err.msg, pull_usage);
            return 2;
        }
    }
    if (!id) {
        fprintf(stderr, "cnet pull: REPO_ID is required\n%s", pull_usage);
        return 2;
    }
    char repo_id[HUB_REPO_ID_MAX], rev[HUB_REVISION_MAX];
    if (hub_ref_is_hub(id)) {
        if (hub_ref_parse(id, repo_id, rev, &err) != 0) {
            fprintf(stderr, "cnet pull: %s\n", err.msg);
            return 2;
        }
        if (!o.revision) o.revision = rev;
        o.repo_id = repo_id;
    } else {
        o.repo_id = id;
    }
    if (hub_repo_id_check(o.repo_id, &err) != 0) {
        fprintf(stderr, "cnet pull: %s\n", err.msg);
        return 2;
    }
    o.include = n_include ? include : NULL;
    hub_client c;
    int online = !o.offline;
    if (online && hub_client_init(&c, endpoint, 0, &err) != 0) {
        fprintf(stderr, "cnet pull: %s\n", err.msg);
        return err.code == CNET_EINVAL ? 2 : 1;
    }
    if (online) c.log = on_log, c.log_ctx = &downloads;
    char snapshot[HUB_PATH_MAX];
    hub_pull_result r;
    int rc = hub_pull(online ? &c : NULL, &o, snapshot, &r, &err);
    dl_progress_end(&downloads);
    if (rc != 0) {
        fprintf(stderr, "cnet pull: %s\n", err.msg);
    } else {
        fprintf(stderr, "%s@%s → commit %s: %d files (%d downloaded, %lld bytes; %d cached)\n",
                o.repo_id, o.revision ? o.revision : "main", r.commit, r.files, r.downloaded,
                r.bytes, r.cached);
        printf("%s\n", snapshot);
    }
    if (online) hub_client_free(&c);
    return rc == 0 ? 0 : 1;
}
