#!/usr/bin/env bash
# Issue 7: where metrics show up in a profile of the broker. Runs a produce of metrics-ab.sh (WORKLOAD=single,
# the default: one 100 B record per request, 64 in flight; or batched: 16 KiB batches, 4 M records) against a
# 1-shard broker with metrics on, samples the broker
# with `perf record -e cpu-clock` (software clock: works in VMs without PMU counters), and prints the share
# of the broker's samples whose source line is metrics code: engine/src/metrics/*, quanta (the hooks' clock)
# and glommio's latency sketch. Inlined code counts where its source line is, so `srcfile` sees the
# histogram adds inlined into the hooks. What it cannot see: inlined std/core helpers (atomics, Option)
# called from metrics code, which count under their own std files; treat the share as a lower bound and the
# end-to-end A/B (metrics-ab.sh) as the upper.
#   cargo build --release -p ringbroker-tools -p ringbroker-bench && bash bench/scripts/metrics-profile.sh
set -u
OUT="${1:-/tmp/metrics-profile}"
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
RB="${RB:-$TARGET_DIR/release/ringbroker}"
BENCH="${BENCH:-$TARGET_DIR/release/ringbroker-bench}"
PORT="${PORT:-19850}"
DATA=/tmp/ringbroker-metrics-profile
case "${WORKLOAD:-single}" in
  single) LOAD=(--record-size 100 --batch-size 120 --max-in-flight 64 --records 400000) ;;
  batched) LOAD=(--record-size 100 --batch-size 16384 --records 4000000) ;;
  *) echo "WORKLOAD must be single or batched" >&2; exit 2 ;;
esac
command -v perf >/dev/null || { echo "perf is not installed (apt-get install linux-perf)" >&2; exit 2; }
mkdir -p "$OUT"; rm -rf "$DATA"
taskset -c 0 "$RB" serve --listen "127.0.0.1:$PORT" --data-dir "$DATA" --shards 1 \
  --metrics-listen "127.0.0.1:$((PORT + 1))" >"$OUT/broker.log" 2>&1 &
broker=$!
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
perf record -F 1999 -e cpu-clock -p "$broker" -o "$OUT/perf.data" >"$OUT/perf.log" 2>&1 &
recorder=$!
taskset -c 1 "$BENCH" produce --bootstrap-server "127.0.0.1:$PORT" --topic m --partitions 1 --acks 1 \
  "${LOAD[@]}" --warmup 0s --cores 1 \
  --broker-pid "$broker" 2>&1 | grep -E "^ *(produce|cpu) " | head -2
kill -INT "$recorder"; wait "$recorder"
kill "$broker"; wait "$broker"; rm -rf "$DATA"
perf report -i "$OUT/perf.data" --stdio --no-children --sort srcfile --full-source-path 2>/dev/null \
  | grep -E '^ +[0-9.]+%' >"$OUT/srcfiles.txt"
python3 - "$OUT/srcfiles.txt" <<'PY'
import re, sys
rows = [re.match(r"\s*([\d.]+)%\s+(.*)", line).groups() for line in open(sys.argv[1])]
groups = {
    "engine/src/metrics/* (hooks, histograms, counters)": r"/engine/src/metrics/",
    "quanta (the hooks' TSC clock)": r"/quanta-[\d.]+/",
    "sketches-ddsketch (glommio's file read latency)": r"/sketches-ddsketch-",
}
total = 0.0
for name, pattern in groups.items():
    share = sum(float(p) for p, f in rows if re.search(pattern, f))
    total += share
    print(f"{share:6.2f}%  {name}")
print(f"{total:6.2f}%  metrics code, all of the above (share of the broker's CPU samples)")
PY
