/* One generate request on the device thread: its base pipeline and
 * ControlNets from the device's caches (pinned for the run), then the one
 * executor, engine/pipeline/generate.h — the same run `cnet generate` makes.
 *
 * Not here: parsing or validating a request (api/api_generate.c), image
 * files or PNG text (the HTTP handler and the job runner). */
#include <string.h>

#include "server/workers/worker_internal.h"

int worker_gen_run(worker *e, const generate_request *req, generate_result *out, cnet_error *err) {
    memset(out, 0, sizeof *out);
    if (req->n_controls < 1 || req->n_controls > PIPE_MAX_CONTROLNETS)
        return cnet_fail(err, CNET_EINVAL, "%d ControlNets: 1..%d", req->n_controls,
                         PIPE_MAX_CONTROLNETS);
    generate_request r = *req;
    r.base = NULL;
    int rc = worker_base_acquire(e, r.model_dir, &r.base, err), pinned = 0;
    for (; !rc && pinned < r.n_controls; pinned++)
        if ((rc = worker_cn_acquire(e, r.controls[pinned].dir, &r.controls[pinned].model, err)))
            break;
    if (!rc) rc = generate_run(&r, NULL, out, err);
    for (int k = 0; k < pinned; k++) worker_cn_release(e, r.controls[k].model);
    if (r.base) worker_base_release(e, r.base);
    return rc;
}
