#!/usr/bin/env bash
# Installs the Debian packages Graft builds against (utf8proc, OpenBLAS, SQLite, pkg-config),
# and Open MPI for the data-parallel tests (graft itself builds and runs without it: it loads
# libmpi only under mpirun), only when one is missing. Uses sudo when not run as root.
# GRAFT_SKIP_MPI=1 leaves Open MPI out (its tests are then skipped).
set -euo pipefail
packages=(libutf8proc-dev libopenblas-dev libsqlite3-dev pkg-config)
[ "${GRAFT_SKIP_MPI:-0}" = 1 ] || packages+=(openmpi-bin libopenmpi-dev)
missing=()
for p in "${packages[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "installing: ${missing[*]}" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
command -v swift >/dev/null || { echo "error: Swift 6 is not on PATH (https://swift.org/install)" >&2; exit 1; }
