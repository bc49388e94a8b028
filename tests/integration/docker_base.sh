#!/bin/sh
# docker_base.sh IMAGE: makes the Debian bookworm base image the container
# tests build on, offline from Debian's own packages (no registry is
# reachable from the test machines): `debootstrap --variant=minbase` into a
# temporary folder, imported into podman's store as IMAGE-STAMP and tagged
# IMAGE (localhost/debian:bookworm-0123abcd... and localhost/debian:bookworm).
# The stamp is a hash of what made the image (the suite, variant and mirror,
# debootstrap's version, and the steps after it, RECIPE), so an image already
# in the store with the same stamp is reused as it is and a change to any of
# them makes a new one. It is not the official debian:bookworm-slim (that one
# is what docker/Dockerfile builds on by default), only the same release.
# Prints "docker_base: reused IMAGE-STAMP" or "docker_base: made IMAGE-STAMP in N s".
set -eu
image=${1:?usage: docker_base.sh IMAGE}
SUITE=bookworm
VARIANT=minbase
# What is done to debootstrap's tree (change it with the steps below): apt's
# caches and lists go (a build runs apt-get update first), and so does the
# host name debootstrap copied; the image runs bash by default.
RECIPE="rm var/cache/apt/archives/*.deb var/lib/apt/lists/* etc/hostname; CMD bash"
# The mirror the host's apt uses (deb822 sources first, then sources.list).
mirror=$(sed -n 's/^URIs: *\([^ ]*\).*/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n 1)
[ -n "$mirror" ] || mirror=$(sed -n 's/^deb \(\[[^]]*\] \)\{0,1\}\([^ ]*\) .*/\2/p' /etc/apt/sources.list 2>/dev/null | head -n 1)
[ -n "$mirror" ] || mirror=http://deb.debian.org/debian
stamp=$(echo "$SUITE $VARIANT $mirror $(debootstrap --version) $RECIPE" | sha256sum | cut -c1-16)
if podman image exists "$image-$stamp"; then
    podman tag "$image-$stamp" "$image" || exit 1
    echo "docker_base: reused $image-$stamp"
    exit 0
fi
start=$(date +%s)
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
if ! debootstrap --variant="$VARIANT" "$SUITE" "$root" "$mirror" >"$root.log" 2>&1; then
    echo "docker_base: debootstrap $SUITE from $mirror failed:"
    tail -n 20 "$root.log"
    rm -f "$root.log"
    exit 1
fi
rm -f "$root.log"
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/etc/hostname
tar -C "$root" -c . | podman import --quiet --change 'CMD ["/bin/bash"]' - "$image-$stamp" >/dev/null
podman tag "$image-$stamp" "$image"
echo "docker_base: made $image-$stamp in $(($(date +%s) - start)) s"
