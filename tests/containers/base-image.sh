#!/bin/sh
# Builds the base image the container tests run in, without any container
# registry: debootstrap a minimal Debian bookworm (the same release as the
# machine that builds the `flotilla` binary, so its glibc matches), with curl
# (compose health checks) and haproxy (the front), and `docker import` it.
# The root file system is kept as a tarball in CACHE_DIR, so a removed image
# is imported again without downloading anything.
#
# usage: base-image.sh TAG CACHE_DIR
set -eu
tag=$1
cache=$2
if docker image inspect "$tag" >/dev/null 2>&1; then
    exit 0
fi
mkdir -p "$cache"
name=$(echo "$tag" | tr ':/' '--')
tarball="$cache/$name.tar"
# One build at a time per machine; a waiter finds the image made.
exec 9>"$cache/$name.lock"
flock 9
if docker image inspect "$tag" >/dev/null 2>&1; then
    exit 0
fi
if [ ! -s "$tarball" ]; then
    root="$cache/$name.rootfs"
    rm -rf "$root"
    debootstrap --variant=minbase --include=ca-certificates,curl,haproxy \
        bookworm "$root" "${FLOTILLA_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
    # The user and data directory the published Dockerfile creates.
    chroot "$root" groupadd --gid 10001 flotilla
    chroot "$root" useradd --uid 10001 --gid 10001 --home-dir /var/lib/flotilla \
        --no-create-home --shell /usr/sbin/nologin flotilla
    mkdir -p "$root/var/lib/flotilla" "$root/etc/flotilla"
    chown 10001:10001 "$root/var/lib/flotilla"
    chroot "$root" apt-get clean
    rm -rf "$root/var/lib/apt/lists/"* "$root/var/cache/apt/"*
    tar -C "$root" -cf "$tarball.tmp" .
    mv "$tarball.tmp" "$tarball"
    rm -rf "$root"
fi
docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'USER 10001:10001' \
    --change 'WORKDIR /var/lib/flotilla' \
    "$tarball" "$tag" >/dev/null
