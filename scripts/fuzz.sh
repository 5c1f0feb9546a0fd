#!/usr/bin/env bash
# Runs every afl.rs fuzz target in fuzz/ for a bounded time and fails on any crash or hang (fuzz/README.md).
# Installs cargo-afl from crates.io if it is missing. scripts/test.sh runs it when FUZZ_SECONDS is set.
#
#   FUZZ_SECONDS=60 bash scripts/fuzz.sh            # each target 60 s, one after the other
#   FUZZ_SECONDS=60 bash scripts/fuzz.sh tls_accept  # only the targets named
#
# Findings stay in fuzz/out/<target>/default/{crashes,hangs}/ (fuzz/out is recreated on each run).
set -euo pipefail

cd "$(dirname "$0")/../fuzz"
FUZZ_SECONDS="${FUZZ_SECONDS:-60}"
# afl's cap on the target's address space (MiB): a lying length that allocates gigabytes is a finding.
MEMORY_LIMIT_MB=1024

if ! cargo afl --version >/dev/null 2>&1; then
    echo "==> installing cargo-afl from crates.io"
    cargo install cargo-afl
fi

# Every [[bin]] of fuzz/Cargo.toml but the seed writer, unless targets are named.
if [ "$#" -gt 0 ]; then
    TARGETS=("$@")
else
    mapfile -t TARGETS < <(sed -n 's/^name = "\(.*\)"$/\1/p' Cargo.toml | grep -v -e '^ringbroker-fuzz$' -e '^make_seeds$')
fi
[ "${#TARGETS[@]}" -gt 0 ] || { echo "no fuzz targets found in fuzz/Cargo.toml" >&2; exit 1; }

TARGET_DIR="${CARGO_TARGET_DIR:-$(pwd)/target}"
BIN_ARGS=()
for target in "${TARGETS[@]}"; do BIN_ARGS+=(--bin "${target}"); done
cargo afl build --release "${BIN_ARGS[@]}"

rm -rf out && mkdir -p out
failed=0
for target in "${TARGETS[@]}"; do
    echo "==> fuzzing ${target} for ${FUZZ_SECONDS} s"
    AFL_NO_UI=1 AFL_SKIP_CPUFREQ=1 AFL_NO_AFFINITY=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 \
        timeout $(( FUZZ_SECONDS + 120 )) cargo afl fuzz -V "${FUZZ_SECONDS}" -m "${MEMORY_LIMIT_MB}" \
        -i "in/${target}" -o "out/${target}" "${TARGET_DIR}/release/${target}" > "out/${target}.log" 2>&1 \
        || { echo "afl-fuzz failed for ${target}; last lines of out/${target}.log:" >&2; tail -20 "out/${target}.log" >&2; failed=1; continue; }
    stats="out/${target}/default/fuzzer_stats"
    value() { sed -n "s/^$1 *: *//p" "${stats}"; }
    echo "    execs $(value execs_done), $(value execs_per_sec)/s, corpus $(value corpus_count), crashes $(value saved_crashes), hangs $(value saved_hangs)"
    if [ "$(value saved_crashes)" != "0" ] || [ "$(value saved_hangs)" != "0" ]; then
        echo "FINDING in ${target}: see fuzz/out/${target}/default/crashes and hangs (fuzz/README.md: Crashes and hangs)" >&2
        failed=1
    fi
done
exit "${failed}"
