/* api/openapi.yaml embedded into the binary (served at GET /v1/openapi.yaml),
 * so the contract a running server shows is the one it was built with. The
 * Makefile makes this object depend on the YAML. */
#include "api/api.h"

__asm__(".section .rodata\n"
        ".global api_openapi_yaml\n"
        ".type api_openapi_yaml, @object\n"
        "api_openapi_yaml:\n"
        ".incbin \"api/openapi.yaml\"\n"
        "1:\n"
        ".byte 0\n"
        ".balign 8\n"
        ".global api_openapi_yaml_len\n"
        ".type api_openapi_yaml_len, @object\n"
        "api_openapi_yaml_len:\n"
        ".quad 1b - api_openapi_yaml\n"
        ".previous\n");
