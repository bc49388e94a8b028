/* Request parsing and the error shape shared by every route: strict JSON
 * (duplicate keys rejected), {"error": {"code", "message", "field"?}}, the
 * canonical hash used for Idempotency-Key and RFC 3339 times.
 *
 * Not here: what a valid spec is (api_train.c) or how a job looks
 * (api_render.c). The error shape follows GNU Taler's {code, hint, field}
 * idea with our own names. */
#include <openssl/sha.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/api.h"

int api_fail(api_error *e, int status, const char *code, const char *field, const char *fmt, ...) {
    e->status = status;
    snprintf(e->code, sizeof e->code, "%s", code);
    snprintf(e->field, sizeof e->field, "%s", field ? field : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return CNET_EINVAL;
}

json_t *api_error_json(const api_error *e) {
    json_t *inner = json_pack("{s:s, s:s}", "code", e->code, "message", e->message);
    if (inner && e->field[0] && json_object_set_new(inner, "field", json_string(e->field))) {
        json_decref(inner);
        return NULL;
    }
    return inner ? json_pack("{s:o}", "error", inner) : NULL;
}

int api_parse_body(const char *body, size_t len, json_t **out, api_error *e) {
    *out = NULL;
    if (len == 0) return api_fail(e, 400, "invalid_json", NULL, "the request body is empty");
    json_error_t jerr;
    json_t *v = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!v)
        return api_fail(e, 400, "invalid_json", NULL, "the body is not valid JSON: %s at byte %d",
                        jerr.text, jerr.position);
    if (!json_is_object(v)) {
        json_decref(v);
        return api_fail(e, 400, "invalid_json", NULL, "the body must be a JSON object");
    }
    *out = v;
    return 0;
}

int api_hash_json(const json_t *v, char hex[65]) {
    char *text = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
    if (!text) return CNET_ENOMEM;
    unsigned char d[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)text, strlen(text), d);
    free(text);
    for (int i = 0; i < SHA256_DIGEST_LENGTH; i++) sprintf(hex + 2 * i, "%02x", d[i]);
    return 0;
}

void api_time(int64_t ms, char buf[32]) {
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    size_t n = strftime(buf, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, 32 - n, ".%03dZ", (int)(ms % 1000));
}

int api_safe_name(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > 128 || s[0] == '.') return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}
