/* Who a token belongs to: GET /api/whoami-v2 (HUB.md §2), for a repo name
 * without a namespace (--hub_model_id NAME, or the output folder's name),
 * which the Hub puts under the token's user as huggingface_hub's
 * create_repo does. Called once per run: the route is strictly rate
 * limited. Reference: huggingface_hub hf_api.whoami. */
#ifndef CNET_HUB_WHOAMI_H
#define CNET_HUB_WHOAMI_H

#include <stddef.h>

#include "api/hub_ref.h"
#include "server/hub/hub_http.h"

/* The token's user name into user (cap bytes). */
int hub_whoami(hub_client *c, char *user, size_t cap, cnet_error *err);

/* name → "namespace/name" in out: a name with a '/' as it is, else under
 * the token's user. Either way a valid repo id (hub_ref.h's rules). */
int hub_repo_id_for(hub_client *c, const char *name, char out[HUB_REPO_ID_MAX], cnet_error *err);

#endif
