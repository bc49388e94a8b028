/* The command line's one option reader and one number parser, for every
 * subcommand. A flag is --name VALUE or --name=VALUE, and every name may be
 * spelled --snake_case (diffusers' spelling) or --kebab-case: '-' and '_'
 * are the same letter in an option name. Numbers are whole decimal text
 * (no spaces, no trailing junk) inside a stated range, and a bad one is
 * refused with the option and the accepted range named.
 *
 * cli_next reads options against an option table (api/api_fields.h: the
 * same table the API validates against), so names, limits and defaults are
 * written once; subcommands without a table match their flags with
 * cli_flag. Not getopt: no short options beyond -h, no option bundling. */
#ifndef CNET_CLI_ARGS_H
#define CNET_CLI_ARGS_H

#include <stdint.h>
#include <stdio.h>

#include "api/api_fields.h"
#include "engine/core/error.h"

#define CLI_FLAG_MAX 96    /* bytes of a flag name as typed; longer is unknown */
#define CLI_USAGE_WIDTH 80 /* columns of cli_usage's lines */

/* Whether arg is --name or --name=VALUE ('-' and '_' alike); *inline_value
 * gets VALUE or NULL. inline_value NULL: a flag that takes no value, so
 * --name=VALUE does not match (it ends as an unknown option). */
int cli_flag(const char *arg, const char *name, const char **inline_value);
/* -h or --help. */
int cli_is_help(const char *arg);

/* The value of the flag at argv[*i]: its inline =VALUE, else argv[*i + 1]
 * (then *i advances). NULL, with err naming the flag, when there is none —
 * argv[*i + 1] starting with "--" is the next option, not a value (a value
 * that starts with "--" is given as --flag=VALUE). */
const char *cli_value(int argc, char **argv, int *i, const char *inline_value, cnet_error *err);

/* Whether argv[*i] is --name (--name=VALUE); if so, its value goes to
 * *out (NULL, with err set, when it has none) and *i advances past it. */
int cli_take(int argc, char **argv, int *i, const char *name, const char **out, cnet_error *err);

/* The number parser: opt (the flag as typed) names the option in errors. */
int cli_long(const char *opt, const char *text, long long lo, long long hi, long long *out,
             cnet_error *err);
int cli_int(const char *opt, const char *text, int lo, int hi, int *out, cnet_error *err);
/* 0..hi, up to UINT64_MAX (a seed): digits only, no sign. */
int cli_u64(const char *opt, const char *text, uint64_t hi, uint64_t *out, cnet_error *err);
int cli_double(const char *opt, const char *text, double lo, double hi, double *out,
               cnet_error *err);

/* One option of a table, as read from argv. */
typedef struct cli_opt {
    const api_field *f;
    char flag[CLI_FLAG_MAX]; /* as typed, without =VALUE: "--clip-skip" */
    const char *value;       /* an AF_BOOL flag: "true" or "false" */
} cli_opt;

/* Reads the option at argv[*i] (advancing *i past its value) against
 * fields[0..n) — its name or alias, not AF_API_ONLY fields. CNET_EINVAL
 * "unknown option" when no field matches (out->flag still holds the flag,
 * so a caller may handle options of its own first). */
int cli_next(const api_field *fields, int n, int argc, char **argv, int *i, cli_opt *out,
             cnet_error *err);

/* A value of an AF_INT / AF_NUM field within the field's limits (and
 * multiple); of an AF_ENUM field, its index in f->choices. text NULL: the
 * field's default. */
int cli_field_long(const api_field *f, const char *flag, const char *text, long long *out,
                   cnet_error *err);
int cli_field_double(const api_field *f, const char *flag, const char *text, double *out,
                     cnet_error *err);
/* An AF_INT field with lo 0 whose hi passes LLONG_MAX (the seeds; there
 * cli_field_long stops at LLONG_MAX). */
int cli_field_u64(const api_field *f, const char *flag, const char *text, uint64_t *out,
                  cnet_error *err);
int cli_field_enum(const api_field *f, const char *flag, const char *text, int *out,
                   cnet_error *err);
/* The default of a field as text (a JSON string unquoted); NULL: none. */
const char *cli_field_default(const api_field *f, char *buf, size_t cap);

/* The options of fields[0..n) (not AF_API_ONLY): "--name VALUE", then its
 * help, choices, range and default, indented and wrapped. */
void cli_usage(FILE *f, const api_field *fields, int n);

#endif
