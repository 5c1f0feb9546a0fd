#!/usr/bin/env bash
# Builds the Debian package target/debian/ringbroker_<version>-1_<arch>.deb with cargo-deb, from the
# release build (`cargo build --release --workspace`, the build scripts/test.sh makes; a no-op when it
# is up to date). The binary generates its shell completions and man pages first (from its clap
# definitions). Installs cargo-deb from crates.io if missing.
#
#   bash scripts/package.sh               # prints the .deb's path on its last line
#   PACKAGE_FAST=1 bash scripts/package.sh   # lighter compression (the package test)
set -euo pipefail

cd "$(dirname "$0")/.."

if ! command -v cargo-deb >/dev/null 2>&1; then
    echo "==> installing cargo-deb (cargo install cargo-deb --locked)" >&2
    cargo install cargo-deb --locked >&2
fi

cargo build --release --workspace >&2
TARGET_DIR="$(cargo metadata --format-version 1 --no-deps \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
BIN="${TARGET_DIR}/release/ringbroker"
GENERATED="${TARGET_DIR}/release/packaging"

rm -rf "${GENERATED}"
mkdir -p "${GENERATED}/completions" "${GENERATED}/man"
"${BIN}" completions bash > "${GENERATED}/completions/ringbroker.bash"
"${BIN}" completions zsh > "${GENERATED}/completions/_ringbroker"
"${BIN}" completions fish > "${GENERATED}/completions/ringbroker.fish"
"${BIN}" man --out-dir "${GENERATED}/man"
gzip -9n "${GENERATED}"/man/*.1

# Debug symbols (the release profile keeps them) go into a separate ringbroker-dbgsym .ddeb, as Debian does.
FLAGS=(-p ringbroker-tools --no-build --dbgsym --output "${TARGET_DIR}/debian/")
if [ "${PACKAGE_FAST:-0}" = "1" ]; then
    FLAGS+=(--fast)
fi
cargo deb "${FLAGS[@]}" >&2
ls -t "${TARGET_DIR}"/debian/ringbroker_*.deb | head -n 1
