#!/bin/sh
# The repository's reference fixtures are the bytes the goldens were made
# from, and `make fixtures` copies a reference into them faithfully.
#   - every file a golden folder's manifest.json lists (with its sha256) is in
#     tests/fixtures with that sha256: a checkout that rewrote them (line
#     endings, LFS pointers, a partial copy) fails here, by name;
#   - tests/tools/fixtures_sync.sh on a planted reference: new and changed
#     files copied byte for byte and listed, unchanged ones counted, files
#     only in the copy kept and listed; no reference → nothing changes; a
#     reference holding a symlink is refused.
# Run from the repository root (tests/run.sh does).
. tests/lib/lib_check.sh

fx=tests/fixtures
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# manifest.json: one "path": "sha256" per line; a path is relative to the
# manifest's own folder or, where no such file is there, to the fixture root.
for m in "$fx"/*/manifest.json; do
    dir=$(dirname "$m")
    sed -n 's/^ *"\([^"]*\)": "\([0-9a-f]\{64\}\)",\{0,1\}$/\2 \1/p' "$m" |
        while read -r sum path; do
            f="$dir/$path"
            [ -f "$f" ] || f="$fx/$path"
            if [ ! -f "$f" ]; then
                echo "    $m: $path: missing"
            elif [ "$(sha256sum <"$f" | cut -d' ' -f1)" != "$sum" ]; then
                echo "    $m: $path: sha256 differs from the manifest"
            else
                echo "ok $path"
            fi
        done
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
check "sync: counts" grep -q "^fixtures: 1 new, 1 changed, 1 unchanged " "$tmp/out"
check "sync: keeps and lists a file only in the copy" \
    grep -q "only in .*(kept): a/extra.txt" "$tmp/out"
check "sync: the copy's README and extra file stay" \
    test -f "$tmp/dst/README.md" -a -f "$tmp/dst/a/extra.txt"

sh tests/tools/fixtures_sync.sh "$tmp/src" "$tmp/dst" >"$tmp/out2" 2>&1
check "sync: a second run changes nothing" \
    grep -q "^fixtures: 0 new, 0 changed, 3 unchanged " "$tmp/out2"

sh tests/tools/fixtures_sync.sh "$tmp/no_such_dir" "$tmp/dst" >"$tmp/out3" 2>&1
rc=$?
check "sync: no reference: says so, exits 0" \
    test "$rc" -eq 0 -a -n "$(grep "no '$tmp/no_such_dir' here" "$tmp/out3")"

ln -s same.json "$tmp/src/a/link.json"
sh tests/tools/fixtures_sync.sh "$tmp/src" "$tmp/dst" >"$tmp/out4" 2>&1
rc=$?
check "sync: a symlink in the reference is refused, naming it" \
    test "$rc" -ne 0 -a -n "$(grep -x "a/link.json" "$tmp/out4")"

summary fixtures_test
