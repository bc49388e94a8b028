/* The command line's option reader and number parser (see cli_args.h). */
#include "server/cli/cli_args.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Whether the option name a (n bytes) is name, '-' and '_' alike. */
static int same_name(const char *a, size_t n, const char *name) {
    if (strlen(name) != n) return 0;
    for (size_t i = 0; i < n; i++) {
        const char x = a[i] == '-' ? '_' : a[i], y = name[i] == '-' ? '_' : name[i];
        if (x != y) return 0;
    }
    return 1;
}

int cli_flag(const char *arg, const char *name, const char **inline_value) {
    if (inline_value) *inline_value = NULL;
    if (strncmp(arg, "--", 2) != 0) return 0;
    const char *eq = strchr(arg + 2, '=');
    const size_t n = eq ? (size_t)(eq - arg - 2) : strlen(arg + 2);
    if (!same_name(arg + 2, n, name)) return 0;
    if (eq && !inline_value) return 0; /* a flag that takes no value given one */
    if (eq) *inline_value = eq + 1;
    return 1;
}

int cli_is_help(const char *arg) { return strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0; }

const char *cli_value(int argc, char **argv, int *i, const char *inline_value, cnet_error *err) {
    if (inline_value) return inline_value;
    /* "--x --y": --y is the next option, not --x's value (--x=--y gives one) */
    if (*i + 1 >= argc || strncmp(argv[*i + 1], "--", 2) == 0) {
        const char *eq = strchr(argv[*i], '=');
        cnet_fail(err, CNET_EINVAL, "%.*s needs a value",
                  (int)(eq ? eq - argv[*i] : (long)strlen(argv[*i])), argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

int cli_take(int argc, char **argv, int *i, const char *name, const char **out, cnet_error *err) {
    const char *v = NULL;
    if (!cli_flag(argv[*i], name, &v)) return 0;
    *out = cli_value(argc, argv, i, v, err);
    return 1;
}

int cli_long(const char *opt, const char *text, long long lo, long long hi, long long *out,
             cnet_error *err) {
    char *end;
    errno = 0;
    const long long v = strtoll(text, &end, 10);
    if (errno || end == text || *end || isspace((unsigned char)*text) || v < lo || v > hi)
        return cnet_fail(err, CNET_EINVAL, "%.*s wants an integer in %lld..%lld, got '%s'",
                         (int)strcspn(opt, "="), opt, lo, hi, text);
    *out = v;
    return 0;
}

int cli_u64(const char *opt, const char *text, uint64_t hi, uint64_t *out, cnet_error *err) {
    char *end;
    errno = 0;
    const unsigned long long v = strtoull(text, &end, 10);
    if (errno || end == text || *end || !isdigit((unsigned char)*text) || v > hi)
        return cnet_fail(err, CNET_EINVAL, "%.*s wants an integer in 0..%llu, got '%s'",
                         (int)strcspn(opt, "="), opt, (unsigned long long)hi, text);
    *out = v;
    return 0;
}

int cli_int(const char *opt, const char *text, int lo, int hi, int *out, cnet_error *err) {
    long long v;
    int rc = cli_long(opt, text, lo, hi, &v, err);
    if (!rc) *out = (int)v;
    return rc;
}

/* Whole decimal text of a finite number: no spaces, no trailing junk. */
static int read_double(const char *text, double *out) {
    char *end;
    errno = 0;
    *out = strtod(text, &end);
    return !errno && end != text && !*end && !isspace((unsigned char)*text) && isfinite(*out);
}

int cli_double(const char *opt, const char *text, double lo, double hi, double *out,
               cnet_error *err) {
    double v;
    if (!read_double(text, &v) || v < lo || v > hi)
        return cnet_fail(err, CNET_EINVAL, "%.*s wants a number in [%g, %g], got '%s'",
                         (int)strcspn(opt, "="), opt, lo, hi, text);
    *out = v;
    return 0;
}

int cli_next(const api_field *fields, int n, int argc, char **argv, int *i, cli_opt *out,
             cnet_error *err) {
    const char *a = argv[*i], *eq = strchr(a, '=');
    const size_t len = eq ? (size_t)(eq - a) : strlen(a);
    snprintf(out->flag, sizeof out->flag, "%.*s", (int)len, a);
    out->f = NULL, out->value = NULL;
    for (int k = 0; k < n && !out->f && strncmp(a, "--", 2) == 0; k++)
        if (!(fields[k].flags & AF_API_ONLY) &&
            (same_name(a + 2, len - 2, fields[k].name) ||
             (fields[k].alias && same_name(a + 2, len - 2, fields[k].alias))))
            out->f = &fields[k];
    if (!out->f) return cnet_fail(err, CNET_EINVAL, "unknown option '%s'", out->flag);
    if (out->f->type == AF_BOOL) { /* Python spells them True and False */
        const char *v = eq ? eq + 1 : "true";
        if (!strcasecmp(v, "true") || !strcmp(v, "1"))
            out->value = "true";
        else if (!strcasecmp(v, "false") || !strcmp(v, "0"))
            out->value = "false";
        else
            return cnet_fail(err, CNET_EINVAL,
                             "%s is a flag: no value, =true or =false (=1, =0); got '%s'",
                             out->flag, v);
        return 0;
    }
    out->value = cli_value(argc, argv, i, eq ? eq + 1 : NULL, err);
    return out->value ? 0 : CNET_EINVAL;
}

const char *cli_field_default(const api_field *f, char *buf, size_t cap) {
    if (!f->def) return NULL;
    size_t n = strlen(f->def);
    if (n >= 2 && f->def[0] == '"') /* a JSON string without escapes */
        snprintf(buf, cap, "%.*s", (int)(n - 2), f->def + 1);
    else
        snprintf(buf, cap, "%s", f->def);
    return buf;
}

int cli_field_long(const api_field *f, const char *flag, const char *text, long long *out,
                   cnet_error *err) {
    char def[64];
    if (!text) text = cli_field_default(f, def, sizeof def);
    const long long lo = (long long)f->lo + ((f->flags & AF_LO_OPEN) ? 1 : 0);
    const long long hi = f->hi >= 0x1p63 ? LLONG_MAX /* the rest: cli_field_u64 */
                                         : (long long)f->hi - ((f->flags & AF_HI_OPEN) ? 1 : 0);
    int rc = cli_long(flag, text ? text : "", lo, hi, out, err);
    if (!rc && f->multiple_of && *out % f->multiple_of)
        rc = cnet_fail(err, CNET_EINVAL, "%s %lld is not a multiple of %d", flag, *out,
                       f->multiple_of);
    return rc;
}

int cli_field_u64(const api_field *f, const char *flag, const char *text, uint64_t *out,
                  cnet_error *err) {
    char def[64];
    if (!text) text = cli_field_default(f, def, sizeof def);
    return cli_u64(flag, text ? text : "", f->hi >= 0x1p64 ? UINT64_MAX : (uint64_t)f->hi, out,
                   err);
}

int cli_field_double(const api_field *f, const char *flag, const char *text, double *out,
                     cnet_error *err) {
    char def[64];
    if (!text) text = cli_field_default(f, def, sizeof def);
    if (!text) text = "";
    double v;
    const int lo_open = (f->flags & AF_LO_OPEN) != 0, hi_open = (f->flags & AF_HI_OPEN) != 0;
    if (!read_double(text, &v) || (lo_open ? v <= f->lo : v < f->lo) ||
        (hi_open ? v >= f->hi : v > f->hi))
        return cnet_fail(err, CNET_EINVAL, "%.*s wants a number in %c%g, %g%c, got '%s'",
                         (int)strcspn(flag, "="), flag, lo_open ? '(' : '[', f->lo, f->hi,
                         hi_open ? ')' : ']', text);
    *out = v;
    return 0;
}

int cli_field_enum(const api_field *f, const char *flag, const char *text, int *out,
                   cnet_error *err) {
    char def[64], list[256] = "";
    if (!text) text = cli_field_default(f, def, sizeof def);
    for (int k = 0; text && f->choices[k]; k++)
        if (strcmp(f->choices[k], text) == 0) {
            *out = k;
            return 0;
        }
    for (int k = 0; f->choices[k]; k++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", k ? ", " : "",
                 f->choices[k]);
    return cnet_fail(err, CNET_EINVAL, "%s: unknown '%s' (%s)", flag, text ? text : "", list);
}

/* text on lines of at most CLI_USAGE_WIDTH columns, each indented. */
static void put_wrapped(FILE *out, const char *text, int indent) {
    while (*text) {
        int n = (int)strlen(text);
        if (n > CLI_USAGE_WIDTH - indent) { /* break at the last space that fits */
            n = CLI_USAGE_WIDTH - indent;
            while (n > 0 && text[n] != ' ') n--;
            if (n == 0) n = (int)strcspn(text, " ");
        }
        fprintf(out, "%*s%.*s\n", indent, "", n, text);
        text += n;
        while (*text == ' ') text++;
    }
}

void cli_usage(FILE *out, const api_field *fields, int n) {
    for (int k = 0; k < n; k++) {
        const api_field *f = &fields[k];
        if (f->flags & AF_API_ONLY) continue;
        char text[1024], def[64];
        int len = 0;
#define PUT(...)                                                                                   \
    len += snprintf(text + len,                                                                    \
                    sizeof text - (size_t)(len < (int)sizeof text ? len : (int)sizeof text),       \
                    __VA_ARGS__)
        fprintf(out, "  --%s%s%s%s%s\n", f->name,
                f->type == AF_BOOL                             ? ""
                : f->flags & AF_PER_CONTROLNET                 ? " V[,V...]"
                : f->type == AF_PROMPTS || f->type == AF_PATHS ? " V [V ...]"
                : f->type == AF_INT                            ? " N"
                : f->type == AF_SIZE                           ? " H,W"
                : f->type == AF_NUM                            ? " X"
                                                               : " VALUE",
                f->alias ? " (or --" : "", f->alias ? f->alias : "", f->alias ? ")" : "");
        PUT("%s", f->help ? f->help : "");
        if (f->flags & AF_REQUIRED) PUT("; required");
        if (f->type == AF_ENUM) {
            PUT("; one of ");
            for (int c = 0; f->choices[c]; c++) PUT("%s%s", c ? "|" : "", f->choices[c]);
        }
        if (f->hi >= 0x1p64) /* a seed: UINT64_MAX is no double */
            PUT("; 0..%llu", (unsigned long long)UINT64_MAX);
        else if (f->type == AF_INT || f->type == AF_NUM)
            PUT("; %c%.15g, %.15g%c", f->flags & AF_LO_OPEN ? '(' : '[', f->lo, f->hi,
                f->flags & AF_HI_OPEN ? ')' : ']');
        if (f->multiple_of) PUT(", a multiple of %d", f->multiple_of);
        if (cli_field_default(f, def, sizeof def) && def[0] && f->type != AF_BOOL)
            PUT("; default %s", def);
#undef PUT
        put_wrapped(out, text, 8);
    }
}
