#!/usr/bin/env bash
# Issue 23: what record validation costs the produce path. Alternating pairs of runs of two broker binaries,
# BEFORE (no record walk) and AFTER (every record walked, compressed batches streamed through the decompressor),
# a fresh 1-shard broker per run pinned to core 0 with its own empty data directory, the bench on core 1, one
# JSON per run (ringbroker-bench --json, broker CPU from --broker-pid), then per workload the per-pair change of
# throughput and of broker CPU per GB (bench/scripts/validation_ab_summary.py). Which side of a pair runs first
# alternates, so a drift of the machine during a pair does not always favour one side.
#
# Workloads: record size (100 B or 1 KiB) x codec (none, lz4, zstd), 1 MiB batches, acks=1, 6 s measured after a
# 1 s warm-up. The bench's values are random letters: lz4 barely shrinks them, zstd saves about 40%.
# Usage (release builds of both sides first; e.g. BEFORE from a checkout of the commit before the change):
#   BEFORE=/tmp/before/ringbroker AFTER=target/release/ringbroker PAIRS=5 bash bench/scripts/validation-ab.sh /tmp/validation-ab
set -u
OUT="${1:-/tmp/validation-ab}"
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
BEFORE="${BEFORE:?set BEFORE to the broker binary without record validation}"
AFTER="${AFTER:-$TARGET_DIR/release/ringbroker}"
BENCH="${BENCH:-$TARGET_DIR/release/ringbroker-bench}"
PORT="${PORT:-19860}"
DATA="${DATA:-/tmp/ringbroker-validation-ab}"  # the broker's data dir, emptied before each run
WORKLOADS="${WORKLOADS:-1k-none 1k-lz4 1k-zstd 100-none 100-lz4 100-zstd}"
mkdir -p "$OUT/runs"
run() { # pair side workload
  local pair=$1 side=$2 workload=$3 binary size codec
  binary=$BEFORE; [ "$side" = after ] && binary=$AFTER
  size=${workload%-*}; codec=${workload#*-}
  [ "$size" = 1k ] && size=1024
  rm -rf "$DATA"
  taskset -c 0 "$binary" serve --listen "127.0.0.1:$PORT" --data-dir "$DATA" --shards 1 --metrics-listen none \
    >"$OUT/broker.log" 2>&1 &
  local broker=$!
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
  taskset -c 1 "$BENCH" produce --bootstrap-server "127.0.0.1:$PORT" --topic v --partitions 1 --acks 1 \
    --record-size "$size" --batch-size 1048576 --compression "$codec" --duration 6s --warmup 1s --cores 1 \
    --broker-pid "$broker" --label "$workload-$side" \
    --json "$OUT/runs/$workload-$(printf %02d "$pair")-$side.json" 2>&1 | grep -E "^ *(produce|cpu) " | head -2
  kill "$broker"; wait "$broker"
}
for pair in $(seq 1 "${PAIRS:-5}"); do
  for workload in $WORKLOADS; do
    if [ $((pair % 2)) = 1 ]; then order="before after"; else order="after before"; fi
    for side in $order; do echo "pair $pair $workload $side"; run "$pair" "$side" "$workload"; done
  done
done
rm -rf "$DATA"
python3 "$(dirname "$0")/validation_ab_summary.py" "$OUT" | tee "$OUT/summary.md"
