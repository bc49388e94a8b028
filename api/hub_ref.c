/* Repo id, revision and hf:// reference checks (see hub_ref.h). */
#include "api/hub_ref.h"

#include <ctype.h>
#include <string.h>

static const char *part_problem(const char *p, size_t n) {
    if (n == 0) return "an empty part";
    if (n > HUB_REPO_PART_MAX) return "a part longer than 96 characters";
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)p[i]) && p[i] != '-' && p[i] != '_' && p[i] != '.')
            return "a character outside [A-Za-z0-9._-]";
    if (p[0] == '-' || p[0] == '.' || p[n - 1] == '-' || p[n - 1] == '.')
        return "a part starting or ending with '-' or '.'";
    for (size_t i = 0; i + 1 < n; i++)
        if ((p[i] == '-' && p[i + 1] == '-') || (p[i] == '.' && p[i + 1] == '.'))
            return "'--' or '..'";
    return NULL;
}

int hub_repo_id_check(const char *repo_id, cnet_error *err) {
    const char *slash = repo_id ? strchr(repo_id, '/') : NULL;
    if (!slash || strchr(slash + 1, '/'))
        return cnet_fail(err, CNET_EINVAL,
                         "invalid repo id '%.200s': it must be NAMESPACE/NAME with exactly one '/'",
                         repo_id ? repo_id : "");
    const char *name = slash + 1;
    size_t n = strlen(name);
    const char *why = part_problem(repo_id, (size_t)(slash - repo_id));
    if (!why) why = part_problem(name, n);
    if (!why && n >= 4 && strcmp(name + n - 4, ".git") == 0) why = "a name ending in .git";
    if (why)
        return cnet_fail(err, CNET_EINVAL, "invalid repo id '%.200s': it has %s", repo_id, why);
    return 0;
}

int hub_revision_check(const char *rev, cnet_error *err) {
    size_t n = rev ? strlen(rev) : 0;
    if (n == 0 || n >= HUB_REVISION_MAX)
        return cnet_fail(err, CNET_EINVAL, "invalid revision: must be 1..%d characters",
                         HUB_REVISION_MAX - 1);
    for (size_t i = 0; i < n; i++)
        if (!isgraph((unsigned char)rev[i]) || rev[i] == '\\')
            return cnet_fail(err, CNET_EINVAL, "invalid revision '%.200s': bad character", rev);
    if (rev[0] == '/' || strstr(rev, "..") || rev[n - 1] == '/')
        return cnet_fail(err, CNET_EINVAL, "invalid revision '%.200s'", rev);
    return 0;
}

int hub_config_check(const char *config, cnet_error *err) {
    const size_t n = config ? strlen(config) : 0;
    int ok = n > 0 && n <= HUB_CONFIG_MAX && config[0] != '.';
    for (size_t i = 0; ok && i < n; i++)
        ok = isalnum((unsigned char)config[i]) || strchr("._-", config[i]);
    if (!ok)
        return cnet_fail(err, CNET_EINVAL,
                         "dataset_config_name '%.200s': a config is 1..%d characters of "
                         "[A-Za-z0-9._-], not starting with '.'",
                         config ? config : "", HUB_CONFIG_MAX);
    return 0;
}

int hub_ref_is_hub(const char *s) {
    return s && strncmp(s, HUB_REF_PREFIX, strlen(HUB_REF_PREFIX)) == 0;
}

int hub_ref_is_dataset(const char *s) {
    return s && strncmp(s, HUB_DATASET_REF_PREFIX, strlen(HUB_DATASET_REF_PREFIX)) == 0;
}

/* "ns/name[@rev]" after prefix of ref into repo_id and revision. */
static int parse_after(const char *ref, const char *prefix, const char *form,
                       char repo_id[HUB_REPO_ID_MAX], char revision[HUB_REVISION_MAX],
                       cnet_error *err) {
    if (!ref || strncmp(ref, prefix, strlen(prefix)) != 0)
        return cnet_fail(err, CNET_EINVAL, "'%.200s' is not a %s reference", ref ? ref : "", form);
    const char *id = ref + strlen(prefix);
    const char *at = strchr(id, '@');
    size_t id_len = at ? (size_t)(at - id) : strlen(id);
    if (id_len >= HUB_REPO_ID_MAX)
        return cnet_fail(err, CNET_EINVAL, "invalid repo id in '%.200s': too long", ref);
    memcpy(repo_id, id, id_len);
    repo_id[id_len] = '\0';
    if (hub_repo_id_check(repo_id, err) != 0) return err ? err->code : CNET_EINVAL;
    const char *rev = at ? at + 1 : "main";
    if (hub_revision_check(rev, err) != 0) return err ? err->code : CNET_EINVAL;
    strcpy(revision, rev);
    return 0;
}

int hub_ref_parse(const char *ref, char repo_id[HUB_REPO_ID_MAX], char revision[HUB_REVISION_MAX],
                  cnet_error *err) {
    return parse_after(ref, HUB_REF_PREFIX, "hf://NAMESPACE/NAME", repo_id, revision, err);
}

int hub_dataset_ref_parse(const char *ref, char repo_id[HUB_REPO_ID_MAX],
                          char revision[HUB_REVISION_MAX], cnet_error *err) {
    return parse_after(ref, HUB_DATASET_REF_PREFIX, "hf://datasets/NAMESPACE/NAME", repo_id,
                       revision, err);
}

int hub_is_commit(const char *s) {
    if (!s || strlen(s) != 40) return 0;
    for (int i = 0; i < 40; i++)
        if (!isxdigit((unsigned char)s[i]) || isupper((unsigned char)s[i])) return 0;
    return 1;
}
