#!/usr/bin/env bash
# Runs Graft's whole test suite (release build with testing enabled: the numeric tests are
# 10-100x slower in debug). BLAS runs on one thread so results do not depend on a busy core.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
export OPENBLAS_NUM_THREADS=1 GRAFT_THREADS=1
swift build -c release -Xswiftc -enable-testing --build-tests
swift test -c release -Xswiftc -enable-testing --skip-build
