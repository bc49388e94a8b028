#!/bin/sh
# The repository's reference fixtures are the bytes the goldens were made
# from, and `make fixtures` copies a reference into them faithfully.
#   - every file a golden folder's manifest.json lists (with its sha256) is in
#     tests/fixtures with that sha256: a checkout that rewrote them (line
#     endings, LFS pointers, a partial copy) fails here, by name; and every
#     sha256 a manifest holds was read (a line the parser missed fails);
#   - tests/tools/fixtures_sync.sh on a planted reference: new and changed
#     files copied byte for byte and listed, unchanged ones counted, files
#     only in the copy kept and listed; the copy's top-level README.md never
#     overwritten (a subfolder's README is copied); no reference → nothing
#     changes; a reference holding a symlink, or one that cannot be listed,
#     is refused.
# Run from the repository root (tests/run.sh does).
. tests/lib/lib_check.sh

fx=tests/fixtures
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# check_manifest M ROOT: "ok <path>" for each file manifest M lists that is
# there with its sha256, an indented error line otherwise. manifest.json: one
# "path": "sha256" per line; a path is relative to the manifest's own folder
# or, where no such file is there, to ROOT. Every sha256 in M must be read:
# a line of another form is an error, not a file silently left unchecked.
check_manifest() {
    dir=$(dirname "$1")
    sed -n 's/^ *"\([^"]*\)": "\([0-9a-f]\{64\}\)",\{0,1\}$/\2 \1/p' "$1" >"$tmp/entries"
    parsed=$(wc -l <"$tmp/entries")
    listed=$(grep -c '"[0-9a-f]\{64\}"' "$1")
    [ "$parsed" -eq "$listed" ] ||
        echo "    $1: $listed sha256 entries, $parsed read (a line of another form?)"
    while read -r sum path; do
        f="$dir/$path"
        [ -f "$f" ] || f="$2/$path"
        if [ ! -f "$f" ]; then
            echo "    $1: $path: missing"
        elif [ "$(sha256sum <"$f" | cut -d' ' -f1)" != "$sum" ]; then
            echo "    $1: $path: sha256 differs from the manifest"
        else
            echo "ok $path"
        fi
    done <"$tmp/entries"
}

# Self-check: a manifest with a line the parser does not read fails.
mkdir -p "$tmp/planted/g"
printf 'one\n' >"$tmp/planted/g/one.txt"
printf 'two\n' >"$tmp/planted/g/two.txt"
s1=$(sha256sum <"$tmp/planted/g/one.txt" | cut -d' ' -f1)
s2=$(sha256sum <"$tmp/planted/g/two.txt" | cut -d' ' -f1)
printf '{\n  "one.txt": "%s",\n  "two.txt" : "%s"\n}\n' "$s1" "$s2" >"$tmp/planted/g/manifest.json"
check_manifest "$tmp/planted/g/manifest.json" "$tmp/planted" >"$tmp/planted.out"
check "self-check: a manifest line of another form is reported" \
    grep -q "2 sha256 entries, 1 read" "$tmp/planted.out"

for m in "$fx"/*/manifest.json; do
    check_manifest "$m" "$fx"
done >"$tmp/manifests"
grep -v '^ok ' "$tmp/manifests"
n=$(grep -c '^ok ' "$tmp/manifests")
echo "    $n files checked against their manifest"
check "tests/fixtures holds every manifest's files, byte for byte" \
    test "$n" -ge 100 -a "$(grep -vc '^ok ' "$tmp/manifests")" -eq 0

# A planted reference and copy: one file unchanged, one changed, one new (in
# a new folder), one only in the copy, and the copy's README.
mkdir -p "$tmp/src/a" "$tmp/src/b" "$tmp/dst/a"
printf 'same\n' >"$tmp/src/a/same.json"
cp "$tmp/src/a/same.json" "$tmp/dst/a/same.json"
printf 'new bytes\0\n' >"$tmp/src/a/changed.bin"
printf 'old bytes\0\n' >"$tmp/dst/a/changed.bin"
printf 'fresh\n' >"$tmp/src/b/new.txt"
printf 'ours\n' >"$tmp/dst/README.md"
printf 'the reference says\n' >"$tmp/src/README.md"
printf 'a reference README\n' >"$tmp/src/a/README.md"
printf 'a reference README\n' >"$tmp/dst/a/README.md"
printf 'dropped upstream\n' >"$tmp/dst/a/extra.txt"
sh tests/tools/fixtures_sync.sh "$tmp/src" "$tmp/dst" >"$tmp/out" 2>&1
rc=$?
sed 's/^/    /' "$tmp/out"
check "sync: exits 0" test "$rc" -eq 0
check "sync: the new file copied byte for byte" cmp -s "$tmp/src/b/new.txt" "$tmp/dst/b/new.txt"
check "sync: the changed file copied byte for byte" \
    cmp -s "$tmp/src/a/changed.bin" "$tmp/dst/a/changed.bin"
check "sync: lists the new file" grep -qx "new      b/new.txt" "$tmp/out"
check "sync: lists the changed file" grep -qx "changed  a/changed.bin" "$tmp/out"
check "sync: counts (the top-level README not among them)" \
    grep -q "^fixtures: 1 new, 1 changed, 2 unchanged " "$tmp/out"
check "sync: keeps and lists a file only in the copy" \
    grep -q "only in .*(kept): a/extra.txt" "$tmp/out"
check "sync: the copy's README and extra file stay" \
    test "$(cat "$tmp/dst/README.md")" = ours -a -f "$tmp/dst/a/extra.txt"

sh tests/tools/fixtures_sync.sh "$tmp/src" "$tmp/dst" >"$tmp/out2" 2>&1
check "sync: a second run changes nothing" \
    grep -q "^fixtures: 0 new, 0 changed, 4 unchanged " "$tmp/out2"

sh tests/tools/fixtures_sync.sh "$tmp/no_such_dir" "$tmp/dst" >"$tmp/out3" 2>&1
rc=$?
check "sync: no reference: says so, exits 0" \
    test "$rc" -eq 0 -a -n "$(grep "no '$tmp/no_such_dir' here" "$tmp/out3")"

# A reference that cannot be listed (find fails): an error, not "0 new".
mkdir "$tmp/bin"
printf '#!/bin/sh\necho "find: cannot read" >&2\nexit 1\n' >"$tmp/bin/find"
chmod +x "$tmp/bin/find"
PATH="$tmp/bin:$PATH" sh tests/tools/fixtures_sync.sh "$tmp/src" "$tmp/dst" >"$tmp/out5" 2>&1
rc=$?
sed 's/^/    /' "$tmp/out5"
check "sync: a reference that cannot be listed fails, naming it" \
    test "$rc" -ne 0 -a -n "$(grep "cannot list '$tmp/src'" "$tmp/out5")"

ln -s same.json "$tmp/src/a/link.json"
sh tests/tools/fixtures_sync.sh "$tmp/src" "$tmp/dst" >"$tmp/out4" 2>&1
rc=$?
check "sync: a symlink in the reference is refused, naming it" \
    test "$rc" -ne 0 -a -n "$(grep -x "a/link.json" "$tmp/out4")"

summary fixtures_test
