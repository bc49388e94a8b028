/* The dashboard's files (web/), compiled into the binary so a deployed cnet
 * serves exactly the dashboard it was built with and no file system path is
 * ever derived from a URL. The table is fixed at build time: adding a file
 * to web/ means adding one line to server/http/web_assets.c.
 *
 * What it is not: no HTTP (server/http/http_static.c serves these). */
#ifndef CNET_WEB_ASSETS_H
#define CNET_WEB_ASSETS_H

#include <stddef.h>

typedef struct web_asset {
    const char *name;       /* the URL path segment it is served at: "app.js"; "" for "/" */
    const char *type;       /* Content-Type */
    const char *data, *end; /* the bytes: [data, end) */
} web_asset;

extern const web_asset web_assets[];
extern const int web_n_assets;

/* The asset named name (one URL path segment, exact match; "" is
 * index.html), or NULL. */
const web_asset *web_asset_find(const char *name);

/* Its strong ETag: "\"<first 16 bytes of sha256, hex>\"", computed once;
 * "" if hashing failed (then the asset is served without one). */
const char *web_asset_etag(const web_asset *a);

#endif
