#!/usr/bin/env bash
# orc's first command: on a fresh Debian 12, as root, from a checkout of this repository:
#   sudo scripts/quickstart.sh
# Installs the apt packages orc uses, installs orc into the repository's .venv, links
# /usr/local/bin/orc, builds the offline image orc.local/busybox:latest (no registry), brings up
# examples/quickstart and curls it. Safe to run again: every step checks or converges.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
PORT="${QUICKSTART_PORT:-8080}"
CACHE=/var/cache/orc
export DEBIAN_FRONTEND=noninteractive

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

if [ "$(id -u)" -ne 0 ]; then
    echo "quickstart: run as root (orc creates namespaces, cgroups and bridges)" >&2
    exit 1
fi

step "apt packages"
APT=(python3 python3-venv busybox-static tini nftables iproute2 curl ca-certificates)
missing=()
for p in "${APT[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
    echo "installed: ${missing[*]}"
else
    echo "all present: ${APT[*]}"
fi

step "orc in $REPO/.venv"
[ -x "$REPO/.venv/bin/python" ] || /usr/bin/python3 -m venv "$REPO/.venv"  # Debian's python3 (apt above)
# checked from / so the checkout itself on sys.path cannot pass for an installed orc
if [ ! -x "$REPO/.venv/bin/orc" ] || ! (cd / && "$REPO/.venv/bin/python" -c 'import orchestrator' 2>/dev/null); then
    # compat: the checkout on sys.path through a plain .pth line, no import finder to load at
    # every start of orc (~10 ms per command)
    "$REPO/.venv/bin/pip" install -q --disable-pip-version-check -e "$REPO" --config-settings editable_mode=compat
fi
ln -sf "$REPO/.venv/bin/orc" /usr/local/bin/orc
echo "orc: $(command -v orc) -> $(readlink /usr/local/bin/orc)"

step "offline image orc.local/busybox:latest"
mkdir -p "$CACHE"
python3 "$REPO/scripts/pack-rootfs-image.py" --busybox --name orc.local/busybox:latest -o "$CACHE/busybox.tar"
orc image load -i "$CACHE/busybox.tar"

step "examples/quickstart: orc up -d --wait"
cd "$REPO/examples/quickstart"
# --wait returns once every service is running, and healthy where it has a health check
QUICKSTART_PORT="$PORT" orc up -d --wait --wait-timeout 60

step "curl http://127.0.0.1:$PORT/"
curl -fsS "http://127.0.0.1:$PORT/"
step "curl http://127.0.0.1:$PORT/cgi-bin/api   (web asks the api service by name)"
curl -fsS "http://127.0.0.1:$PORT/cgi-bin/api"
step "orc ps"
orc ps

cat <<NEXT

orc is running examples/quickstart. Try, from $REPO/examples/quickstart:
  orc logs -f worker        # the worker calling the api by its DNS name
  orc exec api ps           # processes inside the api container
  orc kill worker; orc ps   # restart: unless-stopped brings it back
  orc events                # live events (another shell: orc restart api)
  orc down                  # remove it all
More examples: $REPO/examples/*/README.md
NEXT
