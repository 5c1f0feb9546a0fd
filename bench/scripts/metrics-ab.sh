#!/usr/bin/env bash
# Issue 7: what metrics cost the produce hot path, end to end. Alternating pairs of runs with the metrics
# endpoint on and off (`--metrics-listen none`), a fresh 1-shard broker per run pinned to core 0 and the bench
# on core 1, one JSON per run (ringbroker-bench --json, broker CPU from --broker-pid), then the per-pair
# comparison of broker CPU per request (bench/scripts/metrics_ab_summary.py). Which of a pair runs first
# alternates, so a drift of the machine during a pair does not always favour one side.
#
# Two workloads bracket the cost: metrics record a fixed amount of work per request, so the more CPU a request
# takes besides, the smaller their share.
#   WORKLOAD=batched: 100 B records in 16 KiB batches (~140 records per request), 20 M records per run.
#   WORKLOAD=single:  one 100 B record per request, 64 requests in flight, 400,000 requests per run (the worst
#                     case: the least broker work per request there is).
# RATE=N (records per second) holds both sides at the same offered load: where the broker is partly bound by
# the disk, its CPU per request grows when the disk is slow (more data waits, more cache misses in the copies),
# so at full speed the disk's swings between runs (+-20% here) drown a per-request cost of a few tenths of a
# percent; at a fixed rate both sides do the same work per second.
# Usage (release build first):
#   cargo build --release -p ringbroker-tools -p ringbroker-bench
#   WORKLOAD=single PAIRS=20 bash bench/scripts/metrics-ab.sh /tmp/metrics-ab-single
set -u
OUT="${1:-/tmp/metrics-ab-${WORKLOAD:-batched}}"
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
RB="${RB:-$TARGET_DIR/release/ringbroker}"
BENCH="${BENCH:-$TARGET_DIR/release/ringbroker-bench}"
PORT="${PORT:-19850}"
METRICS_PORT="${METRICS_PORT:-19851}"
DATA="${DATA:-/tmp/ringbroker-metrics-ab}"  # the broker's data dir, emptied before each run
case "${WORKLOAD:-batched}" in
  batched) LOAD=(--record-size 100 --batch-size 16384 --records "${RECORDS:-20000000}") ;;
  single) LOAD=(--record-size 100 --batch-size 120 --max-in-flight 64 --records 400000) ;;
  *) echo "WORKLOAD must be batched or single" >&2; exit 2 ;;
esac
[ -n "${RATE:-}" ] && LOAD+=(--rate "$RATE")
mkdir -p "$OUT/runs"
run() { # pair mode
  local pair=$1 mode=$2 listen=none
  [ "$mode" = on ] && listen="127.0.0.1:$METRICS_PORT"
  rm -rf "$DATA"
  taskset -c 0 "$RB" serve --listen "127.0.0.1:$PORT" --data-dir "$DATA" --shards 1 --metrics-listen "$listen" \
    >"$OUT/broker.log" 2>&1 &
  local broker=$!
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
  taskset -c 1 "$BENCH" produce --bootstrap-server "127.0.0.1:$PORT" --topic m --partitions 1 --acks 1 \
    "${LOAD[@]}" --warmup 0s --cores 1 --broker-pid "$broker" --label "metrics-$mode" \
    --json "$OUT/runs/$(printf %02d "$pair")-$mode.json" 2>&1 | grep -E "^ *(produce|cpu) " | head -2
  kill "$broker"; wait "$broker"
}
for pair in $(seq 1 "${PAIRS:-10}"); do
  if [ $((pair % 2)) = 1 ]; then order="on off"; else order="off on"; fi
  for mode in $order; do echo "pair $pair metrics $mode"; run "$pair" "$mode"; done
done
rm -rf "$DATA"
python3 "$(dirname "$0")/metrics_ab_summary.py" "$OUT" | tee "$OUT/summary.md"
