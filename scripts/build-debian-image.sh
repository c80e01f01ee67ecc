#!/usr/bin/env bash
# Build an orc image from Debian packages, offline-after-first-run, and load it into orc's store.
#
#   scripts/build-debian-image.sh NAME PACKAGE...
#   scripts/build-debian-image.sh orc.local/debian-redis:bookworm redis-server python3
#
# debootstrap (minbase, bookworm) installs the packages into a rootfs, which
# scripts/pack-rootfs-image.py packs as a one-layer image and `orc image load` imports.
# The rootfs and the image tar are cached in $ORC_IMAGE_CACHE (default /var/cache/orc/debian)
# under a key hashed from this script, the packer, the suite, the name and the packages, so a
# rerun only loads the cached tar (seconds). Environment: ORC (the orc command, default `orc`),
# ORC_ROOT (orc's --root), DEBIAN_MIRROR, DEBIAN_SUITE.
set -euo pipefail

if [ $# -lt 2 ]; then
    sed -n '2,13p' "$0" >&2
    exit 2
fi
NAME="$1"; shift
PACKAGES="$(printf '%s\n' "$@" | sort -u | paste -sd, -)"
HERE="$(cd "$(dirname "$0")" && pwd)"
ORC="${ORC:-orc}"
SUITE="${DEBIAN_SUITE:-bookworm}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
CACHE="${ORC_IMAGE_CACHE:-/var/cache/orc/debian}"

KEY="$(cat "$0" "$HERE/pack-rootfs-image.py" | sha256sum | cut -c1-16)-$(printf '%s|%s|%s' "$SUITE" "$NAME" "$PACKAGES" | sha256sum | cut -c1-16)"
DIR="$CACHE/$KEY"
TAR="$DIR/image.tar"

if [ ! -s "$TAR" ]; then
    command -v debootstrap >/dev/null || { apt-get update -q >/dev/null; apt-get install -y -q debootstrap >/dev/null; }
    rm -rf "$DIR.partial"
    mkdir -p "$DIR.partial"
    echo "debootstrap $SUITE (minbase + $PACKAGES) into $DIR.partial/rootfs ..."
    debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$DIR.partial/rootfs" "$MIRROR" \
        > "$DIR.partial/debootstrap.log" 2>&1 || { tail -20 "$DIR.partial/debootstrap.log" >&2; exit 1; }
    # The runtime mounts /dev, /proc, /sys and binds /etc/hosts etc.; apt's caches are dead weight.
    rm -rf "$DIR.partial/rootfs/dev/"* "$DIR.partial/rootfs/var/cache/apt/"*.bin \
        "$DIR.partial/rootfs/var/cache/apt/archives/"*.deb "$DIR.partial/rootfs/var/lib/apt/lists/"*_* \
        "$DIR.partial/rootfs/usr/share/doc" "$DIR.partial/rootfs/usr/share/man" "$DIR.partial/rootfs/usr/share/locale"
    python3 "$HERE/pack-rootfs-image.py" --rootfs "$DIR.partial/rootfs" --name "$NAME" --cmd bash \
        -o "$DIR.partial/image.tar"
    rm -rf "$DIR"
    mv "$DIR.partial" "$DIR"
else
    echo "cached: $TAR"
fi
$ORC ${ORC_ROOT:+--root "$ORC_ROOT"} image load -i "$TAR"
