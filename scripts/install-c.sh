#!/usr/bin/env bash
# Installs libeddy for C and C++ users under PREFIX (default /usr/local):
#   PREFIX/lib/libeddy.a, PREFIX/lib/libeddy.so, PREFIX/include/eddy.h, eddy.hpp,
#   PREFIX/lib/pkgconfig/eddy.pc (from ffi/eddy.pc.in).
# Builds the release library first unless it is already built.
#   scripts/install-c.sh [PREFIX]
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=${1:-/usr/local}
[ -f target/release/libeddy.a ] || cargo build --release -p eddy-ffi
version=$(grep -m1 '^version' Cargo.toml | cut -d'"' -f2)
mkdir -p "$prefix/lib/pkgconfig" "$prefix/include"
cp target/release/libeddy.a "$prefix/lib/"
if [ -f target/release/libeddy.so ]; then cp target/release/libeddy.so "$prefix/lib/"; fi
if [ -f target/release/libeddy.dylib ]; then cp target/release/libeddy.dylib "$prefix/lib/"; fi
cp include/eddy.h include/eddy.hpp "$prefix/include/"
sed -e "s|@PREFIX@|$prefix|g" -e "s|@VERSION@|$version|g" ffi/eddy.pc.in \
  > "$prefix/lib/pkgconfig/eddy.pc"
echo "installed libeddy $version under $prefix"
