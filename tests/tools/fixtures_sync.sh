#!/bin/sh
# Copies a reference fixture directory into the repository's copy (`make
# fixtures`: ../shared/fixtures into tests/fixtures) and says what changed.
#   fixtures_sync.sh SRC DST
# Every file of SRC lands byte-identical at the same relative path in DST:
# new and changed files are copied and listed, unchanged ones counted. Files
# only in DST are listed and kept; a top-level README.md is the repository's
# own on both sides (DST/README.md says where the copy comes from): never
# copied, never listed. Delete files with git rm when the reference dropped
# them. A missing SRC is not an error: the committed copy is what the tests
# use; a SRC that cannot be read is (exit 1, nothing copied).
# Not a test: it changes DST; commit the result.
set -u
if [ $# -ne 2 ]; then
    echo "usage: fixtures_sync.sh SRC DST" >&2
    exit 2
fi
src=$1
dst=$2
if [ ! -d "$src" ]; then
    echo "fixtures: no '$src' here: nothing to copy; the tests use '$dst' as committed"
    exit 0
fi
if [ ! -d "$dst" ]; then
    echo "fixtures: '$dst' is not a directory (run from the repository root)" >&2
    exit 1
fi
list=$(mktemp)
trap 'rm -f "$list" "$list.raw"' EXIT
new=0
changed=0
same=0
# The reference is plain files only: anything else would not copy byte-identical.
# A SRC that cannot be entered or listed is an error, not an empty reference.
if ! odd=$(cd "$src" && find . ! -type f ! -type d); then
    echo "fixtures: cannot list '$src'" >&2
    exit 1
fi
odd=$(printf '%s' "$odd" | sed 's|^\./||')
if [ -n "$odd" ]; then
    echo "fixtures: '$src' holds entries that are not plain files or folders:" >&2
    echo "$odd" >&2
    exit 1
fi
if ! (cd "$src" && find . -type f ! -path ./README.md) >"$list.raw"; then
    echo "fixtures: cannot list '$src'" >&2
    exit 1
fi
sed 's|^\./||' "$list.raw" | LC_ALL=C sort >"$list"
while IFS= read -r f; do
    if [ ! -e "$dst/$f" ]; then
        echo "new      $f"
        new=$((new + 1))
    elif cmp -s "$src/$f" "$dst/$f"; then
        same=$((same + 1))
        continue
    else
        echo "changed  $f"
        changed=$((changed + 1))
    fi
    mkdir -p "$(dirname "$dst/$f")" &&
        cp -f "$src/$f" "$dst/$f" && chmod u+w,go-w "$dst/$f" || exit 1
done <"$list"
(cd "$dst" && find . -type f | sed 's|^\./||' | LC_ALL=C sort) |
    while IFS= read -r f; do
        [ "$f" = README.md ] && continue
        grep -qxF "$f" "$list" || echo "only in $dst (kept): $f"
    done
here=$(cd "$dst" && find . -type f ! -path ./README.md | wc -l)
echo "fixtures: $new new, $changed changed, $same unchanged ($src -> $dst, $here files there)"
if [ $((new + changed)) -gt 0 ]; then
    echo "fixtures: commit them: git add $dst && git commit"
fi
