/* The token that guards every /v1 (and A1111) route: where it comes from and
 * how a request's Authorization header is checked — `Bearer TOKEN`, or
 * `Basic` credentials (RFC 7617) whose password or user is the token, as
 * A1111 clients send them (their --api-auth user:password). The map header
 * of auth.
 *
 * Sources, first found wins: --token-file, $CNET_TOKEN, <data>/token (written
 * by an earlier start), else a fresh random token written there with mode
 * 0600 (and printed once by the caller). Compared in constant time on SHA-256
 * digests, so neither content nor length leaks through timing. Not here: per
 * token rate limits or multiple users. */
#ifndef CNET_AUTH_H
#define CNET_AUTH_H

#include "engine/core/error.h"

#define AUTH_TOKEN_MAX 256 /* bytes of a token; longer → CNET_ELIMIT */
#define AUTH_TOKEN_MIN 16  /* bytes of a token; shorter → CNET_EINVAL */
/* base64 bytes of Basic credentials; longer → AUTH_WRONG (no decoding) */
#define AUTH_BASIC_MAX 1024

typedef enum { AUTH_OK, AUTH_MISSING, AUTH_WRONG } auth_result;

/* Fills token[AUTH_TOKEN_MAX + 1]; *generated = 1 when it was just created. */
int auth_load_token(const char *token_file, const char *data_dir, char *token, int *generated,
                    cnet_error *err);

/* Checks an Authorization header value (NULL when absent) against token. */
auth_result auth_check(const char *header, const char *token);

#endif
