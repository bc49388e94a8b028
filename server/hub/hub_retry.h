/* When and how long to wait before repeating a Hub request.
 *
 * Copied from huggingface_hub utils/_http.py (http_backoff), as HUB.md §1
 * states it: retry on 408, 429, 500, 502, 503, 504 and on connection errors
 * and timeouts, at most HUB_MAX_RETRIES times, sleeping 1 s doubling to at
 * most 8 s; a 429 whose RateLimit header says r=0 waits t+1 s, otherwise a
 * Retry-After of delta-seconds is honoured. A 409 "another conflicting
 * operation is in progress" (repo creation) is transient too.
 * Pure functions; the sleeping itself is hub_http's. */
#ifndef CNET_HUB_RETRY_H
#define CNET_HUB_RETRY_H

#define HUB_MAX_RETRIES 5           /* retries after the first attempt */
#define HUB_BACKOFF_BASE_S 1.0      /* first backoff sleep */
#define HUB_BACKOFF_MAX_S 8.0       /* backoff cap */
#define HUB_RETRY_AFTER_MAX_S 300.0 /* cap on a server-requested wait */

/* 1 if an HTTP status (with its body, may be NULL) is worth repeating. */
int hub_retry_status(long status, const char *body);

/* Seconds to sleep before retry number attempt+1 (attempt counts from 0).
 * retry_after and ratelimit are the header values or NULL. */
double hub_retry_delay(int attempt, long status, const char *retry_after, const char *ratelimit);

/* Parses a RateLimit header ("api";r=<remaining>;t=<reset s>). Returns 0 and
 * fills remaining/reset, or -1 when either field is missing. */
int hub_ratelimit_parse(const char *value, long *remaining, long *reset_s);

#endif
