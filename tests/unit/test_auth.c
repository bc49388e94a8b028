/* server/http/auth.c's check of an Authorization header: Bearer, and Basic
 * credentials (RFC 7617) whose password or user is the token — the RFC's
 * own example ("Aladdin:open sesame", §2) as the truth for the decoding,
 * the user-id ending at the first colon, malformed and oversized
 * credentials refused without a match, other schemes missing. */
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "server/http/auth.h"
#include "tests/lib/harness.h"

/* RFC 7617 §2: the credentials of user "Aladdin", password "open sesame". */
#define RFC7617_EXAMPLE "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="

static auth_result basic(const char *credentials, const char *token) {
    char *b64 = api_base64_encode((const unsigned char *)credentials, strlen(credentials));
    char header[2048];
    snprintf(header, sizeof header, "Basic %s", b64);
    free(b64);
    return auth_check(header, token);
}

static void test_bearer(void) {
    CHECK(auth_check("Bearer token-0123456789abcdef", "token-0123456789abcdef") == AUTH_OK,
          "right token");
    CHECK(auth_check("bearer  token-0123456789abcdef", "token-0123456789abcdef") == AUTH_OK,
          "scheme case, extra space");
    CHECK(auth_check("Bearer token-0123456789abcdeX", "token-0123456789abcdef") == AUTH_WRONG,
          "wrong token");
    CHECK(auth_check(NULL, "token-0123456789abcdef") == AUTH_MISSING, "no header");
    CHECK(auth_check("Digest x", "token-0123456789abcdef") == AUTH_MISSING, "another scheme");
}

static void test_basic_rfc7617_example(void) {
    CHECK(auth_check(RFC7617_EXAMPLE, "open sesame") == AUTH_OK, "the password is the token");
    CHECK(auth_check(RFC7617_EXAMPLE, "Aladdin") == AUTH_OK, "the user is the token");
    CHECK(auth_check(RFC7617_EXAMPLE, "open sesame!") == AUTH_WRONG, "neither");
    CHECK(auth_check("basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==", "open sesame") == AUTH_OK,
          "scheme case");
}

static void test_basic_edges(void) {
    const char *t = "tok:en-0123456789"; /* a token may hold a colon: the password does */
    CHECK(basic("user:tok:en-0123456789", t) == AUTH_OK, "the password after the first colon");
    CHECK(basic("tok:en-0123456789:", t) == AUTH_WRONG, "a user-id ends at the first colon");
    CHECK(basic("tok-0123456789abcdef", "tok-0123456789abcdef") == AUTH_WRONG,
          "no colon: not credentials");
    CHECK(basic(":", "tok-0123456789abcdef") == AUTH_WRONG, "empty user and password");
    CHECK(auth_check("Basic !!!!", "tok-0123456789abcdef") == AUTH_WRONG, "not base64");
    char *big = malloc(AUTH_BASIC_MAX + 16);
    memset(big, 'A', AUTH_BASIC_MAX + 8);
    memcpy(big, "Basic ", 6);
    big[AUTH_BASIC_MAX + 8] = '\0';
    CHECK(auth_check(big, "tok-0123456789abcdef") == AUTH_WRONG, "over AUTH_BASIC_MAX");
    free(big);
}

int main(int argc, char **argv) {
    harness_init(argc, argv);
    RUN(test_bearer);
    RUN(test_basic_rfc7617_example);
    RUN(test_basic_edges);
    return harness_done();
}
