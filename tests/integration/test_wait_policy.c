/* The OpenMP wait policy `cnet serve` runs with (server/cli/wait_policy.h):
 * a real server's environment, read from /proc/PID/environ (the environment
 * libgomp read when the process loaded it, since the server re-executes
 * itself to set it), holds OMP_WAIT_POLICY=passive when the caller set
 * neither variable, and the caller's own OMP_WAIT_POLICY or GOMP_SPINCOUNT
 * otherwise, untouched. The server answers requests after the re-exec (the
 * port it printed is the re-executed process's). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/lib/harness.h"
#include "tests/lib/lib_fs.h"
#include "tests/lib/lib_server.h"

/* The value of name in process pid's initial environment into out; 0 when
 * found. */
static int environ_of(pid_t pid, const char *name, char *out, size_t cap) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/environ", (int)pid);
    size_t n = 0;
    char *env = file_read(path, &n);
    if (!env) return -1;
    const size_t len = strlen(name);
    int rc = 1;
    for (size_t i = 0; i < n; i += strlen(env + i) + 1)
        if (strncmp(env + i, name, len) == 0 && env[i + len] == '=') {
            snprintf(out, cap, "%s", env + i + len + 1);
            rc = 0;
            break;
        }
    free(env);
    return rc;
}

/* Starts a server under the given variables (NULL: unset), returns
 * OMP_WAIT_POLICY's value in its environment ("" when absent). */
static int serve_with(const char *policy, const char *spincount, char *got, size_t cap) {
    char dir[512];
    if (tmpdir_make(dir, sizeof dir, "cnet_waitpolicy_")) return -1;
    policy ? setenv("OMP_WAIT_POLICY", policy, 1) : unsetenv("OMP_WAIT_POLICY");
    spincount ? setenv("GOMP_SPINCOUNT", spincount, 1) : unsetenv("GOMP_SPINCOUNT");
    test_server s;
    int rc = server_start(&s, dir, NULL);
    if (!rc) {
        got[0] = '\0';
        environ_of(s.pid, "OMP_WAIT_POLICY", got, cap);
        http_resp r;
        rc = http_do(&s, "GET", "/healthz", NULL, NULL, NULL, 0, 0, &r) || r.status != 200;
        http_resp_free(&r);
        server_stop(&s, 15, 10000);
    }
    unsetenv("OMP_WAIT_POLICY");
    unsetenv("GOMP_SPINCOUNT");
    tmpdir_remove(dir);
    return rc;
}

static void test_serve_defaults_to_passive(void) {
    char got[64];
    CHECK(serve_with(NULL, NULL, got, sizeof got) == 0, "the server did not start or answer");
    EXPECT(strcmp(got, "passive") == 0, "OMP_WAIT_POLICY of the server: '%s'", got);
}

static void test_user_setting_rules(void) {
    char got[64];
    CHECK(serve_with("active", NULL, got, sizeof got) == 0, "the server did not start or answer");
    EXPECT(strcmp(got, "active") == 0, "the user's OMP_WAIT_POLICY=active became '%s'", got);
    CHECK(serve_with(NULL, "10000", got, sizeof got) == 0, "the server did not start or answer");
    EXPECT(got[0] == '\0', "GOMP_SPINCOUNT set, yet OMP_WAIT_POLICY='%s' was added", got);
}

int main(int argc, char **argv) {
    harness_init(argc, argv);
    RUN(test_serve_defaults_to_passive);
    RUN(test_user_setting_rules);
    return harness_done();
}
