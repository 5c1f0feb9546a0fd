#!/usr/bin/env bash
# Issue 23, part 2: what moving segment-file reads off the blocking pool costs catch-up consumers. Alternating
# pairs of runs of two broker binaries (BEFORE: blocking sendfile on the executor's blocking pool; AFTER:
# non-blocking sendfile for ranges the page cache holds, an io_uring read and a send for the others), a fresh
# 1-shard broker per run pinned to core 0, the bench on core 1: fill a partition with 1 GB of 1 KiB records
# (written with O_DIRECT, so the page cache does not hold them), then consume it all twice: "cold" (every range
# read from the disk) and "warm" (the first consume left it in the page cache). One JSON per consume run, then
# the per-pair summary (bench/scripts/catchup_ab_summary.py).
# Usage:
#   BEFORE=/tmp/before/ringbroker AFTER=target/release/ringbroker PAIRS=4 bash bench/scripts/catchup-ab.sh /tmp/catchup-ab
set -u
OUT="${1:-/tmp/catchup-ab}"
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
BEFORE="${BEFORE:?set BEFORE to the broker binary with the blocking sendfile pool}"
AFTER="${AFTER:-$TARGET_DIR/release/ringbroker}"
BENCH="${BENCH:-$TARGET_DIR/release/ringbroker-bench}"
PORT="${PORT:-19870}"
DATA="${DATA:-/tmp/ringbroker-catchup-ab}"
RECORDS="${RECORDS:-1000000}"
mkdir -p "$OUT/runs"
run() { # pair side
  local pair=$1 side=$2 binary
  binary=$BEFORE; [ "$side" = after ] && binary=$AFTER
  rm -rf "$DATA"
  taskset -c 0 "$binary" serve --listen "127.0.0.1:$PORT" --data-dir "$DATA" --shards 1 --metrics-listen none \
    >"$OUT/broker.log" 2>&1 &
  local broker=$!
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
  taskset -c 1 "$BENCH" produce --bootstrap-server "127.0.0.1:$PORT" --topic c --partitions 1 --acks 1 \
    --record-size 1024 --batch-size 1048576 --records "$RECORDS" --cores 1 >/dev/null 2>&1
  for pass in cold warm; do
    taskset -c 1 "$BENCH" consume --bootstrap-server "127.0.0.1:$PORT" --topic c --records "$RECORDS" \
      --fetch-max-bytes 67108864 --fetch-partition-max-bytes 16777216 --cores 1 --broker-pid "$broker" \
      --label "$pass-$side" --json "$OUT/runs/$pass-$(printf %02d "$pair")-$side.json" 2>&1 \
      | grep -E "^ *(consume|cpu) " | head -2
  done
  kill "$broker"; wait "$broker"
}
for pair in $(seq 1 "${PAIRS:-4}"); do
  if [ $((pair % 2)) = 1 ]; then order="before after"; else order="after before"; fi
  for side in $order; do echo "pair $pair $side"; run "$pair" "$side"; done
done
rm -rf "$DATA"
python3 "$(dirname "$0")/catchup_ab_summary.py" "$OUT" | tee "$OUT/summary.md"
