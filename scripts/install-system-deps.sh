#!/usr/bin/env bash
# Installs the Debian packages the full test suite exercises: PostgreSQL (database tests against a
# real server), Chromium (dashboard screenshots) and astrometry.net with the Tycho-2 index files
# (plate solving). Idempotent; skips what is already installed. Needs root (CI runs as root).
set -euo pipefail
need=()
command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v chromium >/dev/null 2>&1 || need+=(chromium chromium-driver)
command -v solve-field >/dev/null 2>&1 || need+=(astrometry.net)
ls /usr/share/astrometry/index-tycho2-*.fits >/dev/null 2>&1 || need+=(astrometry-data-tycho2)
if [ ${#need[@]} -eq 0 ]; then
    echo "system packages present: postgresql, chromium, astrometry.net"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "install-system-deps: need root to install ${need[*]}; tests that need them will skip" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${need[@]}"
