#!/usr/bin/env bash
# Builds the release binary that runs on glibc 2.28 and newer (Debian 10,
# Ubuntu 20.04, RHEL 8), into target/dist/raaft-relay: cargo-zigbuild links
# it with zig's toolchain against glibc 2.28's symbols, without packed
# relocations (which need glibc 2.36). The local toolchain is enough: zig
# and cargo-zigbuild come from PyPI (ziglang, and cargo-zigbuild's own
# prebuilt wheel of the release it publishes on crates.io).
set -euo pipefail
cd "$(dirname "$0")/.."

GLIBC=2.28
TARGET=x86_64-unknown-linux-gnu
ZIGBUILD=cargo-zigbuild==0.24.1
ZIG=ziglang==0.17.1

if ! command -v cargo-zigbuild >/dev/null 2>&1; then
    pip install --quiet "$ZIGBUILD" "$ZIG"
    # pyenv's shims learn of a new command on a rehash.
    if command -v pyenv >/dev/null 2>&1; then pyenv rehash; fi
fi
command -v zig >/dev/null 2>&1 || python3 -c 'import ziglang' 2>/dev/null || pip install --quiet "$ZIG"

# Its own target folder: the zig-linked objects are not the local build's.
# RAAFT_RELAY_PORTABLE_TARGET_DIR keeps it elsewhere (CI keeps it between
# runs, so that only what changed is built again).
TARGET_DIR="${RAAFT_RELAY_PORTABLE_TARGET_DIR:-target/portable}"
RAAFT_RELAY_PORTABLE=1 cargo zigbuild --release --locked --bin raaft-relay \
    --target "$TARGET.$GLIBC" --target-dir "$TARGET_DIR"
mkdir -p target/dist
cp "$TARGET_DIR/$TARGET/release/raaft-relay" target/dist/raaft-relay
echo "target/dist/raaft-relay (glibc $GLIBC and newer)"
