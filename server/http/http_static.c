/* GET / and GET /{asset}: the dashboard. Files come only from the compiled-in
 * table (server/http/web_assets.h), looked up by exact path, so no URL can reach
 * the file system and `..`, encoded or not, is just an unknown name (404).
 *
 * Headers: the table's Content-Type; a strong ETag (sha256 of the bytes,
 * computed once) with `Cache-Control: no-cache`, so browsers revalidate
 * and get 304 while the binary is unchanged and the new files right after an
 * upgrade; a Content-Security-Policy that allows only this origin (no inline
 * script or style, images also from blob: URLs the page makes from
 * authenticated downloads) and forbids framing; nosniff; no Referer.
 *
 * Not here: auth (the page is public; the API it calls is not) or the API. */
#include <stdio.h>
#include <string.h>

#include "server/http/http_internal.h"
#include "server/http/web_assets.h"

#define STATIC_CSP                                                                                 \
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; "              \
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
/* If-None-Match is a list of entity tags or "*" (RFC 9110 §13.1.2). */
static int etag_matches(const char *header, const char *etag) {
    if (!header || !etag[0]) return 0;
    if (strcmp(header, "*") == 0) return 1;
    size_t n = strlen(etag);
    for (const char *p = strstr(header, etag); p; p = strstr(p + 1, etag)) {
        char after = p[n];
        if (after == '\0' || after == ',' || after == ' ') return 1;
    }
    return 0;
}

enum MHD_Result http_static(http_server *s, struct MHD_Connection *c, http_req *r) {
    const char *name = strcmp(r->route->pattern, "/") == 0 ? "" : r->params[0];
    const web_asset *a = web_asset_find(name);
    if (!a) return http_reply_error(s, c, r, 404, "not_found", NULL, "no file /%.200s", name);
    const char *etag = web_asset_etag(a);
    const char *inm = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "If-None-Match");
    int fresh = etag_matches(inm, etag);
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        fresh ? 0 : (size_t)(a->end - a->data), (void *)a->data, MHD_RESPMEM_PERSISTENT);
    if (!resp) return MHD_NO;
    if (!fresh) MHD_add_response_header(resp, "Content-Type", a->type);
    if (etag[0]) MHD_add_response_header(resp, "ETag", etag);
    MHD_add_response_header(resp, "Cache-Control", "no-cache");
    MHD_add_response_header(resp, "Content-Security-Policy", STATIC_CSP);
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, "X-Frame-Options", "DENY");
    MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
    return http_reply_response(s, c, r, fresh ? 304 : 200, resp);
}
