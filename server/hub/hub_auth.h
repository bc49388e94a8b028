/* Who cnet is and which Hub it talks to: token discovery and the endpoint.
 *
 * Token sources, first found wins (huggingface_hub constants.py / _auth.py):
 *   HF_TOKEN                the token itself
 *   HF_TOKEN_FILE           a file holding it (Docker secrets); an error if set but unreadable
 *   HF_TOKEN_PATH           huggingface_hub's override of the token file path
 *   $HF_HOME/token          HF_HOME defaults to $XDG_CACHE_HOME/huggingface, else
 *                           ~/.cache/huggingface (the file `hf auth login` writes)
 * Endpoint: an explicit --endpoint, else HF_ENDPOINT, else https://huggingface.co.
 * Only https is accepted, except plain http to a loopback host (127.0.0.1,
 * localhost, [::1]) given explicitly — that is for local emulators.
 *
 * The token is kept in memory only; it is never part of a message. Not an
 * OAuth client; it does not validate the token against the Hub. */
#ifndef CNET_HUB_AUTH_H
#define CNET_HUB_AUTH_H

#include <stddef.h>

#include "engine/core/error.h"

#define HUB_DEFAULT_ENDPOINT "https://huggingface.co"
#define HUB_ENDPOINT_MAX 512 /* characters in an endpoint URL */
#define HUB_TOKEN_MAX 4096   /* bytes read from a token file */
#define HUB_TOKEN_HELP                                                                             \
    "set HF_TOKEN to the token, or HF_TOKEN_FILE to a file holding it, or save it in "             \
    "$HF_HOME/token (default ~/.cache/huggingface/token, written by `hf auth login`); "            \
    "create one at https://huggingface.co/settings/tokens"

/* Finds the token. *token is a new string (free with hub_token_free) or NULL
 * when none is configured; *source names where it came from ("HF_TOKEN", a
 * path) for messages. Fails only when a configured source is unusable. */
int hub_token_find(char **token, char *source, size_t source_cap, cnet_error *err);

/* Wipes and frees a token from hub_token_find. */
void hub_token_free(char *token);

/* Picks and checks the endpoint (explicit may be NULL) into out without a
 * trailing '/'; *plain_http is set when it is an allowed loopback http URL. */
int hub_endpoint_resolve(const char *explicit_url, char out[HUB_ENDPOINT_MAX], int *plain_http,
                         cnet_error *err);

/* Replaces anything that looks like a Hub token (hf_ + 10 or more
 * alphanumerics) or a bearer credential in s with "***", in place. A second
 * line of defence for text that came from a server. */
void hub_redact(char *s);

#endif
