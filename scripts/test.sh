#!/usr/bin/env bash
# The whole test suite, as the README documents it: unit, integration and CLI tests, the real-input
# import check, and a build of every bench and fuzz target. Needs nothing beyond this machine kind
# (Rust, qemu-utils, python3); installs e2fsprogs with apt only if mkfs.ext4 is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
# Azurite (pinned by package.json / package-lock.json, installed by npm ci on first use) runs on
# a free loopback port for the whole suite, so the Azure tests run too (scripts/azurite.sh; an
# EXIT trap stops it). Needs node and npm.
# shellcheck source=scripts/azurite.sh
source scripts/azurite.sh

echo "== cargo test (debug build, both I/O engines)"
cargo test --all-features --lib --bins --tests 2>&1

echo "== real input: OS files and an ext4 VHD, prepared, imported, checked with md5sum/cmp/e2fsck"
REAL_INPUT_MIN_BYTES=${REAL_INPUT_MIN_BYTES:-300000000} \
  ./scripts/real-input.sh

echo "== benches and fuzz targets build"
cargo bench --no-run --quiet 2>&1
if [ -f fuzz/Cargo.toml ]; then
  cargo check --quiet --manifest-path fuzz/Cargo.toml --bins 2>&1
fi
echo "== all tests passed"
