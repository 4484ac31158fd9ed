#!/usr/bin/env bash
# Packs a release `graft` for a machine without Swift or the Debian libraries (issue 11's
# 16-core thread curve runs on such a machine): the Swift runtime linked in
# (`--static-swift-stdlib`), and beside it the libraries it loads that a bare machine may lack
# (OpenBLAS with gfortran and quadmath, utf8proc, SQLite), started through `run-graft`, which
# puts them on LD_LIBRARY_PATH for graft alone (never for the Python beside it).
#
#   scripts/make-device-bundle.sh [OUT.tar.xz]     # default .build-device/graft-bundle.tar.xz
#
# The C library, libstdc++ and libgcc_s are the target's own (the bundle is built on Debian 12,
# glibc 2.36: it runs where glibc is that or newer). benchmarks/device_scaling.sh unpacks and
# uses it.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-.build-device/graft-bundle.tar.xz}
swift build -c release --static-swift-stdlib --build-path .build-static --product graft
bin=.build-static/release/graft
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/graft/lib"
cp "$bin" "$stage/graft/graft"
strip "$stage/graft/graft"
# Every library graft loads, less the ones every glibc system has (and must keep its own of).
ldd "$bin" | awk '/=> \//{print $3}' | while read -r lib; do
    case $(basename "$lib") in
        libc.so*|libm.so*|libpthread.so*|libdl.so*|librt.so*|ld-linux*|libgcc_s.so*|libstdc++.so*|libutil.so*) ;;
        *) cp -L "$lib" "$stage/graft/lib/" ;;
    esac
done
cat > "$stage/graft/run-graft" <<'EOF'
#!/bin/sh
here=$(cd "$(dirname "$0")" && pwd)
LD_LIBRARY_PATH="$here/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" exec "$here/graft" "$@"
EOF
chmod +x "$stage/graft/run-graft"
git rev-parse HEAD > "$stage/graft/COMMIT"
mkdir -p "$(dirname "$out")"
tar -C "$stage" -cJf "$out.tmp" graft
mv "$out.tmp" "$out"
echo "$out: $(du -h "$out" | cut -f1) ($(ls "$stage/graft/lib" | tr '\n' ' '))" >&2
