#!/bin/sh
# Every path the code's comments and the documents cite exists in the
# repository, so a reader who follows one lands on a file. Cited paths are the
# repository-relative ones (engine/..., server/..., kernels/..., api/...,
# tests/..., web/..., docker/...) and the top-level documents (DESIGN.md,
# RELIABILITY.md ...), found in the comments of C, CUDA, shell, the Makefile
# and the Dockerfiles, and anywhere in the *.md documents (tests/fixtures/*/
# excepted: byte-identical copies of the reference's READMEs). A path written
# after another word's slash (huggingface_hub/tests/...) is another project's;
# a glob (tests/*/*_test.sh, engine/pipeline/generate.[ch]) must match a file;
# a placeholder (kernels/<backend>) is checked up to the folder before it; a
# brace list (engine/{core,config}) ends the path. Each missing one is
# reported as file:line: path.
# Run from the repository root (tests/run.sh does).
. tests/lib/lib_check.sh

# c_comments FILE...: "file:line:text" for the comment text of each line of C,
# CUDA (or JavaScript) source; string and character literals are skipped.
c_comments() {
    awk '
    FNR == 1 { block = 0 }
    {
        line = $0; out = ""; i = 1; n = length(line)
        while (i <= n) {
            if (block) {
                e = index(substr(line, i), "*/")
                if (e == 0) { out = out " " substr(line, i); i = n + 1; break }
                out = out " " substr(line, i, e - 1); i += e + 1; block = 0; continue
            }
            rest = substr(line, i)
            if (!match(rest, /["\047\/]/)) break
            i += RSTART - 1
            c = substr(line, i, 1)
            if (c == "/") {
                d = substr(line, i + 1, 1)
                if (d == "/") { out = out " " substr(line, i + 2); break }
                if (d == "*") { block = 1; i += 2; continue }
                i++; continue
            }
            for (i++; i <= n; i++) {         # a literal: to its closing quote
                ch = substr(line, i, 1)
                if (ch == "\\") { i++; continue }
                if (ch == c) { i++; break }
            }
        }
        if (out != "") print FILENAME ":" FNR ":" out
    }' "$@"
}

# sh_comments FILE...: "file:line:text" for whole-line "# ..." comments and
# trailing " # ..." ones (shell, Makefile, Dockerfile, YAML).
sh_comments() {
    awk '
    /^[ \t]*#!/ { next }
    /^[ \t]*#/ { print FILENAME ":" FNR ":" $0; next }
    match($0, /[ \t]#[ \t]/) { print FILENAME ":" FNR ":" substr($0, RSTART) }' "$@"
}

# all_text FILE...: "file:line:text" for every line (documents).
all_text() { awk '{ print FILENAME ":" FNR ":" $0 }' "$@"; }

# cited: reads "file:line:text", prints "file:line<TAB>path" for every cited path.
cited() {
    awk '
    function emit(loc, p, next_ch) {
        if (next_ch == "<") sub(/[^\/]*$/, "", p)  # a placeholder: its folder
        if (p !~ /\[/) sub(/\].*$/, "", p)          # a bracket closing text, no glob
        sub(/[.]+$/, "", p)
        if (p != "") printf "%s\t%s\n", loc, p
    }
    {
        k = index($0, ":"); k += index(substr($0, k + 1), ":")
        loc = substr($0, 1, k - 1)               # file:line (the text may hold colons)
        t = " " substr($0, k + 1)
        room = "(engine|server|kernels|api|tests|web|docker)"
        while (match(t, "[^A-Za-z0-9_./-]" room "/[][A-Za-z0-9_./*-]*")) {
            emit(loc, substr(t, RSTART + 1, RLENGTH - 1), substr(t, RSTART + RLENGTH, 1))
            t = substr(t, RSTART + RLENGTH)
        }
        t = " " substr($0, k + 1)
        while (match(t, /[^A-Za-z0-9_.\/-][A-Z][A-Z0-9_]*\.md/)) {
            if (substr(t, RSTART + RLENGTH, 1) !~ /[A-Za-z0-9_]/)
                emit(loc, substr(t, RSTART + 1, RLENGTH - 1), "")
            t = substr(t, RSTART + RLENGTH)
        }
    }'
}

# Files the documents tell the user to create, never in the repository (the
# Docker secrets; .dockerignore keeps them out of images).
made_by_user=" docker/cnet_token docker/hf_token docker/pg_password docker/pgpass "

# missing ROOT: reads "file:line<TAB>path", prints "file:line: path" for each
# path that does not exist under ROOT. A module may be cited by its stem
# (server/store/jobs for jobs.c and jobs.h); a glob must match a file.
missing() {
    tab=$(printf '\t')
    while IFS="$tab" read -r loc p; do
        case "$made_by_user" in *" $p "*) continue ;; esac
        for f in "$1"/$p "$1/$p.c" "$1/$p.h"; do
            [ -e "$f" ] && continue 2
        done
        echo "$loc: $p"
    done
}

# The file lists (no build outputs, no node_modules, no reference copies).
sources() {
    find engine server kernels api tests web -type f \( -name '*.[ch]' -o -name '*.cu' \
        -o -name '*.cuh' -o -name '*.js' -o -name '*.mjs' \) ! -path '*/node_modules/*' |
        LC_ALL=C sort
}
scripts() {
    {
        echo Makefile
        find .ci -type f
        find tests docker -type f \( -name '*.sh' -o -name 'Dockerfile*' -o -name '*.yaml' \) \
            ! -path '*/node_modules/*'
    } | LC_ALL=C sort
}
documents() {
    find . -name '*.md' ! -path './tests/fixtures/*/*' ! -path '*/node_modules/*' \
        ! -path './.git/*' ! -path './build*' ! -path './data/*' | sed 's|^\./||' | LC_ALL=C sort
}

# Reports a list of missing citations; true when there are none.
none() {
    if [ -s "$1" ]; then
        sed 's/^/    /' "$1"
        return 1
    fi
}

repo=$(pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Self-check: planted bad paths are reported with their file:line; existing
# paths, globs, string literals and other projects' paths are not.
mkdir "$tmp/planted"
cat >"$tmp/planted/a.c" <<'EOF'
/* cites engine/core/tensor.h and engine/core/no_such_file.h */
const char *s = "engine/core/in_a_string.h"; // and tests/no_such_dir/x.sh.
/* two lines: api/, server/store/jobs, kernels/cpu/*.c and kernels/<x> exist,
 * RELIABILITY.md too, NO_SUCH_DOC.md and server/no_such_*.c not */
/* engine/pipeline/generate.[ch] exists, server/golden/no_such.[ch] not */
char q = '"'; /* huggingface_hub/tests/cassettes/x.yaml is theirs */
EOF
printf '%s\n' '# runs server/no_such_file.c' \
    'echo "server/in_a_string.c" # then tests/lib/lib_check.sh' >"$tmp/planted/b.sh"
cat >"$tmp/planted/c.md" <<'EOF'
See README.md and `engine/core/no_such_doc.md`.
In [engine/core/tensor.h] and [engine/core/no_such], brackets are not globs.
EOF
cat >"$tmp/expected" <<'EOF'
a.c:1: engine/core/no_such_file.h
a.c:2: tests/no_such_dir/x.sh
a.c:4: server/no_such_*.c
a.c:4: NO_SUCH_DOC.md
a.c:5: server/golden/no_such.[ch]
b.sh:1: server/no_such_file.c
c.md:1: engine/core/no_such_doc.md
c.md:2: engine/core/no_such
EOF
(cd "$tmp/planted" && { c_comments a.c; sh_comments b.sh; all_text c.md; } | cited |
    missing "$repo") >"$tmp/got"
diff "$tmp/expected" "$tmp/got" | sed 's/^/    /'
check "self-check: planted bad paths reported as file:line, nothing else" \
    cmp -s "$tmp/expected" "$tmp/got"

sources >"$tmp/sources"
scripts >"$tmp/scripts"
documents >"$tmp/documents"
check "the file lists are not empty" \
    test -s "$tmp/sources" -a -s "$tmp/scripts" -a -s "$tmp/documents"

# The lists hold no spaces or glob characters (repository file names).
c_comments $(cat "$tmp/sources") | cited | missing "$repo" >"$tmp/m1"
check "every path cited in a C, CUDA or JavaScript comment exists" none "$tmp/m1"
sh_comments $(cat "$tmp/scripts") | cited | missing "$repo" >"$tmp/m2"
check "every path cited in a shell, Makefile or Dockerfile comment exists" \
    none "$tmp/m2"
all_text $(cat "$tmp/documents") | cited | missing "$repo" >"$tmp/m3"
check "every path cited in a document (*.md) exists" none "$tmp/m3"

# The repository stands alone: nothing cites the reference copy beside it
# (../shared), except the files of `make fixtures`, which copies from there,
# and this test.
grep -n '\.\./shared' $(cat "$tmp/sources" "$tmp/scripts" "$tmp/documents") |
    grep -v -e '^Makefile:' -e '^tests/fixtures/README.md:' -e '^tests/tools/fixtures_sync.sh:' \
        -e '^tests/unit/paths_test.sh:' >"$tmp/m4"
check "nothing cites ../shared but make fixtures" none "$tmp/m4"

summary paths_test
