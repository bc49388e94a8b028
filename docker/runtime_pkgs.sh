#!/bin/sh
# runtime_pkgs.sh BINARY [SKIP]: the packages that hold the shared libraries BINARY
# links directly (its NEEDED entries, found as the loader finds them by ldd,
# each looked up in dpkg's database), one a line, sorted. docker/Dockerfile's
# build stage runs it on build/cnet, and its runtime stage installs exactly
# that list, under the base image's own names: libjpeg62-turbo on Debian,
# libjpeg-turbo8 on Ubuntu, the CUDA and cuDNN libraries on NVIDIA's images.
# It is not a dependency solver: apt installs what these packages need.
# A library the loader does not find, or no package holds, is an error that
# names it. SKIP (an extended regex of library names) leaves those libraries
# out: docker_test.sh passes the CUDA libraries when the host's toolkit is
# not from packages (NVIDIA's images install them as packages).
set -eu
bin=${1:?usage: runtime_pkgs.sh BINARY [SKIP]}
skip=${2:-}
libs=$(readelf -d "$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
[ -z "$skip" ] || libs=$(printf '%s\n' $libs | grep -vE "$skip" || true)
[ -n "$libs" ] || { echo "runtime_pkgs: $bin links no shared library (readelf -d)" >&2; exit 1; }
pkgs=""
for lib in $libs; do
    path=$(ldd "$bin" | awk -v l="$lib" '$1 == l && $3 ~ /^\// {print $3}')
    [ -n "$path" ] || { echo "runtime_pkgs: the loader does not find $lib, which $bin needs" >&2; exit 1; }
    # dpkg knows a file by the path its package ships (/lib/... before
    # merged /usr, /usr/local/cuda-X/... behind the lib64 link): try the
    # path ldd gives, then the file it resolves to.
    pkg=$( (dpkg -S "$path" || dpkg -S "$(readlink -f "$path")") 2>/dev/null | head -n 1 | cut -d: -f1)
    [ -n "$pkg" ] || { echo "runtime_pkgs: no installed package holds $path ($lib)" >&2; exit 1; }
    pkgs="$pkgs $pkg"
done
# shellcheck disable=SC2086 # one package a word
printf '%s\n' $pkgs | sort -u
