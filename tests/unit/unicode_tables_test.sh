#!/bin/sh
# engine/text/unicode_tables.c is what its generator writes: the output of
# engine/text/gen_unicode_tables.py equals the committed file byte for byte
# after clang-format (when clang-format is installed), and always with the
# whitespace taken out (what the formatting may change). Needs a python3
# with Unicode 14.0.0 (CPython 3.11, as on Debian 12); with another the
# tables cannot be regenerated and the test says so and checks nothing.
. tests/lib/lib_check.sh
gen=engine/text/gen_unicode_tables.py
committed=engine/text/unicode_tables.c
out=$(mktemp)
trap 'rm -f "$out" "$out.c"' EXIT
version=$(python3 -c 'import unicodedata; print(unicodedata.unidata_version)' 2>/dev/null)
if [ "$version" != "14.0.0" ]; then
    echo "unicode_tables: python3 has Unicode '$version', not 14.0.0: not regenerated"
    summary unicode_tables
    exit $?
fi
same_tokens() { [ "$(tr -d ' \n' <"$1")" = "$(tr -d ' \n' <"$2")" ]; }
python3 "$gen" >"$out"
check "the generator runs" [ $? -eq 0 ]
check "its output is the committed tables, whitespace aside" same_tokens "$out" "$committed"
if command -v clang-format >/dev/null 2>&1; then
    clang-format --style=file --assume-filename="$committed" <"$out" >"$out.c"
    check "formatted, it is the committed file byte for byte" cmp -s "$out.c" "$committed"
fi
summary unicode_tables
