#!/bin/sh
# docker_base.sh IMAGE: makes the Debian bookworm base image the container
# tests build on, offline from Debian's own packages (no registry is
# reachable from the test machines): `debootstrap --variant=minbase` into a
# temporary folder, imported into podman's store as IMAGE with the label
# cnet.base.stamp. The stamp is a hash of what made the image (this script,
# debootstrap's version, the suite and the mirror), so an image already in
# the store with the same stamp is reused as it is and a change to any of
# them makes a new one. It is not the official debian:bookworm-slim (that
# one is what docker/Dockerfile builds on by default), only the same
# release made the same way Debian's image makers start theirs.
# Prints "docker_base: reused IMAGE" or "docker_base: made IMAGE in N s".
set -eu
image=${1:?usage: docker_base.sh IMAGE}
SUITE=bookworm
VARIANT=minbase
# The mirror the host's apt uses (deb822 sources first, then sources.list).
mirror=$(sed -n 's/^URIs: *\([^ ]*\).*/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n 1)
[ -n "$mirror" ] || mirror=$(sed -n 's/^deb \(\[[^]]*\] \)\{0,1\}\([^ ]*\) .*/\2/p' /etc/apt/sources.list 2>/dev/null | head -n 1)
[ -n "$mirror" ] || mirror=http://deb.debian.org/debian
stamp=$( (cat "$0" && debootstrap --version && echo "$SUITE $VARIANT $mirror") | sha256sum | cut -c1-16)
have=$(podman image inspect --format '{{index .Labels "cnet.base.stamp"}}' "$image" 2>/dev/null || true)
if [ "$have" = "$stamp" ]; then
    echo "docker_base: reused $image (stamp $stamp)"
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
# What a container image leaves out: apt's caches and lists (a build runs
# apt-get update first) and the host name debootstrap copied.
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/etc/hostname
tar -C "$root" -c . | podman import --change "LABEL cnet.base.stamp=$stamp" \
    --change 'CMD ["/bin/bash"]' - "$image" >/dev/null
echo "docker_base: made $image (stamp $stamp) in $(($(date +%s) - start)) s"
