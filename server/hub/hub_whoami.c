/* The token's user, and repo names completed with it (see hub_whoami.h). */
#include "server/hub/hub_whoami.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

int hub_whoami(hub_client *c, char *user, size_t cap, cnet_error *err) {
    char url[HUB_URL_MAX];
    hub_url(c, url, sizeof url, "/api/whoami-v2");
    hub_request req;
    hub_request_init(&req, "GET", url, "asking the Hub whose token this is");
    req.auth = 1;
    req.retry = 1;
    hub_response resp;
    int rc = hub_http_expect(c, &req, &resp, err);
    if (rc) return rc;
    json_t *j = json_loadb(resp.body, resp.body_len, 0, NULL);
    hub_response_free(&resp);
    const char *name = json_string_value(json_object_get(j, "name"));
    if (!name || !*name || strlen(name) >= cap) {
        json_decref(j);
        return cnet_fail(err, CNET_EFORMAT, "/api/whoami-v2: the answer has no usable \"name\"");
    }
    snprintf(user, cap, "%s", name);
    json_decref(j);
    return 0;
}

int hub_repo_id_for(hub_client *c, const char *name, char out[HUB_REPO_ID_MAX], cnet_error *err) {
    char user[HUB_REPO_PART_MAX + 1];
    if (!strchr(name, '/')) {
        int rc = hub_whoami(c, user, sizeof user, err);
        if (rc) return cnet_error_prefix(err, "naming the repo %s", name);
    }
    if (snprintf(out, HUB_REPO_ID_MAX, "%s%s%s", strchr(name, '/') ? "" : user,
                 strchr(name, '/') ? "" : "/", name) >= HUB_REPO_ID_MAX)
        return cnet_fail(err, CNET_EINVAL, "repo name '%.200s' is too long", name);
    return hub_repo_id_check(out, err);
}
