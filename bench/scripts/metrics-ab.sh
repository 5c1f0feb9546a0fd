#!/usr/bin/env bash
# Issue 7: metrics hot-path cost. Alternating pairs (metrics endpoint on / --metrics-listen none) of a CPU-bound
# produce: 100 B records, 16 KiB batches (~140 records per request), 20,000,000 records, fresh broker each run,
# broker pinned to core 0, bench to core 1. Prints records/s, MB/s and broker CPU seconds per run.
#   cargo build --release -p ringbroker-tools -p ringbroker-bench && PAIRS=6 bash bench/scripts/metrics-ab.sh
set -u
TARGET_DIR="${CARGO_TARGET_DIR:-target}"; RB="${RB:-$TARGET_DIR/release/ringbroker}"; BENCH="${BENCH:-$TARGET_DIR/release/ringbroker-bench}"
P=19850; MP=19851; D=/tmp/ringbroker-metrics-ab
for pair in $(seq 1 ${PAIRS:-8}); do
  for mode in on off; do
    rm -rf $D
    if [ $mode = on ]; then M="127.0.0.1:$MP"; else M=none; fi
    taskset -c 0 $RB serve --listen 127.0.0.1:$P --data-dir $D --shards 1 --metrics-listen $M >/tmp/cu/mab.log 2>&1 & BP=$!
    for i in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$P) 2>/dev/null && break; sleep 0.1; done
    out=$(taskset -c 1 $BENCH produce --bootstrap-server 127.0.0.1:$P --topic m --partitions 1 --record-size 100 --batch-size 16384 --acks 1 --records 20000000 --warmup 0s --cores 1 --broker-pid $BP 2>&1)
    echo "$pair $mode $(echo "$out" | grep -E "^ *produce " | head -1 | tr -s ' ') | $(echo "$out" | grep -E "cpu" | head -1 | tr -s ' ')"
    kill $BP; wait $BP
  done
done
rm -rf $D
