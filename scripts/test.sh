#!/usr/bin/env bash
# Installs everything orc's tests need on a fresh Debian 12 machine (as root) and runs them all:
# lint, types, layer contracts, unit tests, the differential loader test against Docker Compose,
# and the real-kernel tests (which must not skip here: ORC_REQUIRE_KERNEL=1).
set -euo pipefail
cd "$(dirname "$0")/.."

export DEBIAN_FRONTEND=noninteractive
APT_PACKAGES=(python3 python3-venv python3-dev gcc iproute2 busybox-static tini nftables skopeo umoci
              docker-registry libseccomp2 iperf3 openssl libc6-dev debootstrap)
missing=()
for p in "${APT_PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

[ -x .venv/bin/python ] || /usr/bin/python3 -m venv .venv  # Debian's python3 (apt above), not the first on PATH
# compat: the checkout goes on sys.path through a plain .pth line; the default editable mode
# imports a finder module at every interpreter start (~10 ms for each orc command)
.venv/bin/pip install -q --disable-pip-version-check -e '.[test]' --config-settings editable_mode=compat
export PATH="$PWD/.venv/bin:$PATH"

echo "== ruff";          ruff check orchestrator tests bench && ruff format --check orchestrator tests bench
echo "== mypy";          mypy
echo "== import-linter"; lint-imports
echo "== pytest"
ORC_REQUIRE_KERNEL=1 pytest -q "$@"
