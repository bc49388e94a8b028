/* The web/ files embedded with the assembler's .incbin (as api/api_openapi.c
 * embeds the OpenAPI document), the name → file table, and their ETags.
 * The Makefile makes this object depend on every file in web/. */
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "server/http/web_assets.h"

/* Defines the hidden symbols sym and sym##_end around the file's bytes. */
#define WEB_INCBIN(sym, file)                                                                      \
    __asm__(".section .rodata\n"                                                                   \
            ".global " #sym "\n"                                                                   \
            ".hidden " #sym "\n" #sym ":\n"                                                        \
            ".incbin \"" file "\"\n"                                                               \
            ".global " #sym "_end\n"                                                               \
            ".hidden " #sym "_end\n" #sym "_end:\n"                                                \
            ".previous\n");                                                                        \
    extern const char sym[], sym##_end[]

WEB_INCBIN(web_index_html, "web/index.html");
WEB_INCBIN(web_style_css, "web/style.css");
WEB_INCBIN(web_favicon_svg, "web/favicon.svg");
WEB_INCBIN(web_app_js, "web/app.js");
WEB_INCBIN(web_api_js, "web/api.js");
WEB_INCBIN(web_ui_js, "web/ui.js");
WEB_INCBIN(web_chart_js, "web/chart.js");
WEB_INCBIN(web_jobs_js, "web/jobs.js");
WEB_INCBIN(web_job_js, "web/job.js");
WEB_INCBIN(web_train_js, "web/train.js");
WEB_INCBIN(web_datasets_js, "web/datasets.js");
WEB_INCBIN(web_generate_js, "web/generate.js");
WEB_INCBIN(web_preprocess_js, "web/preprocess.js");
WEB_INCBIN(web_img2img_js, "web/img2img.js");
WEB_INCBIN(web_models_js, "web/models.js");

#define HTML "text/html; charset=utf-8"
#define JS "text/javascript; charset=utf-8"

const web_asset web_assets[] = {
    {"", HTML, web_index_html, web_index_html_end},
    {"index.html", HTML, web_index_html, web_index_html_end},
    {"style.css", "text/css; charset=utf-8", web_style_css, web_style_css_end},
    {"favicon.svg", "image/svg+xml", web_favicon_svg, web_favicon_svg_end},
    {"app.js", JS, web_app_js, web_app_js_end},
    {"api.js", JS, web_api_js, web_api_js_end},
    {"ui.js", JS, web_ui_js, web_ui_js_end},
    {"chart.js", JS, web_chart_js, web_chart_js_end},
    {"jobs.js", JS, web_jobs_js, web_jobs_js_end},
    {"job.js", JS, web_job_js, web_job_js_end},
    {"train.js", JS, web_train_js, web_train_js_end},
    {"datasets.js", JS, web_datasets_js, web_datasets_js_end},
    {"generate.js", JS, web_generate_js, web_generate_js_end},
    {"preprocess.js", JS, web_preprocess_js, web_preprocess_js_end},
    {"img2img.js", JS, web_img2img_js, web_img2img_js_end},
    {"models.js", JS, web_models_js, web_models_js_end},
};
#define WEB_N_ASSETS ((int)(sizeof web_assets / sizeof web_assets[0]))
const int web_n_assets = WEB_N_ASSETS;

const web_asset *web_asset_find(const char *name) {
    for (int i = 0; i < WEB_N_ASSETS; i++)
        if (strcmp(web_assets[i].name, name) == 0) return &web_assets[i];
    return NULL;
}

static char etags[WEB_N_ASSETS][36]; /* '"' + 32 hex + '"' + NUL */
static pthread_once_t etags_once = PTHREAD_ONCE_INIT;

static void etags_init(void) {
    for (int i = 0; i < WEB_N_ASSETS; i++) {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int n = 0;
        const web_asset *a = &web_assets[i];
        if (!EVP_Digest(a->data, (size_t)(a->end - a->data), md, &n, EVP_sha256(), NULL) || n < 16)
            continue;
        char *o = etags[i];
        *o++ = '"';
        for (int k = 0; k < 16; k++) o += sprintf(o, "%02x", md[k]);
        *o++ = '"';
        *o = '\0';
    }
}

const char *web_asset_etag(const web_asset *a) {
    pthread_once(&etags_once, etags_init);
    return etags[a - web_assets];
}
