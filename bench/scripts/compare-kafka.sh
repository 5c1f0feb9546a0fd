#!/usr/bin/env bash
# Runs the same ringbroker-bench commands against Apache Kafka 4.4 (bench/reference/kafka.sh, pinned to the
# broker core) and then against `ringbroker serve --shards 1` on the same core, back to back, and prints one
# `compare` table per workload. Same-moment pairs keep the comparison fair on a machine whose load changes.
#
#   bash bench/scripts/compare-kafka.sh [OUT_DIR]       # default OUT_DIR: /tmp/ringbroker-vs-kafka
#
# Environment: BROKER_CORE (0), BENCH_CORE (1), KAFKA_PORT (19700), PORT (19500), CARGO_TARGET_DIR as usual.
set -euo pipefail

cd "$(dirname "$0")/../.."
OUT_DIR="${1:-/tmp/ringbroker-vs-kafka}"
BROKER_CORE="${BROKER_CORE:-0}"
BENCH_CORE="${BENCH_CORE:-1}"
KAFKA_PORT="${KAFKA_PORT:-19700}"
PORT="${PORT:-19500}"
KAFKA_DATA="${OUT_DIR}/kafka-data"
RB_DATA="${OUT_DIR}/ringbroker-data"
mkdir -p "${OUT_DIR}"
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
cargo build --release -p ringbroker-tools -p ringbroker-bench
BENCH="${TARGET_DIR}/release/ringbroker-bench"

rb_pid=""
cleanup() {
    [ -n "${rb_pid}" ] && kill "${rb_pid}" 2>/dev/null && wait "${rb_pid}" 2>/dev/null || true
    bash bench/reference/kafka.sh stop --data-dir "${KAFKA_DATA}" >/dev/null 2>&1 || true
    rm -rf "${KAFKA_DATA}" "${RB_DATA}"
}
trap cleanup EXIT

# name boot pid: the four workloads against one broker
runset() {
    local n="$1" boot="$2" pid="$3"
    local common=(--bootstrap-server "${boot}" --cores "${BENCH_CORE}" --broker-pid "${pid}")
    run() { local w="$1"; shift; taskset -c "${BENCH_CORE}" "${BENCH}" "$@" "${common[@]}" --label "${n} ${w}" \
        --json "${OUT_DIR}/${n}-${w}.json" > "${OUT_DIR}/${n}-${w}.txt"; }
    run produce-100 produce --topic p100 --partitions 1 --record-size 100 --batch-size 1048576 --duration 5s --warmup 1s
    run produce-1k produce --topic p1k --partitions 1 --record-size 1024 --batch-size 1048576 --duration 5s --warmup 1s
    run consume-1k consume --topic p1k
    run e2e e2e --topic e2e --partitions 1 --record-size 1024 --batch-size 65536 --rate 100000 --linger-ms 1 \
        --duration 8s --warmup 2s
}

bash bench/reference/kafka.sh start --port "${KAFKA_PORT}" --data-dir "${KAFKA_DATA}" --cpus "${BROKER_CORE}"
runset kafka "127.0.0.1:${KAFKA_PORT}" "$(cat "${KAFKA_DATA}/kafka.pid")"
bash bench/reference/kafka.sh stop --data-dir "${KAFKA_DATA}"

rm -rf "${RB_DATA}" && mkdir -p "${RB_DATA}"
taskset -c "${BROKER_CORE}" "${TARGET_DIR}/release/ringbroker" serve --listen "127.0.0.1:${PORT}" \
    --data-dir "${RB_DATA}" --shards 1 > "${OUT_DIR}/ringbroker.log" 2>&1 &
rb_pid=$!
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/${PORT}") 2>/dev/null && break; sleep 0.1; done
runset ringbroker "127.0.0.1:${PORT}" "${rb_pid}"

for w in produce-100 produce-1k consume-1k e2e; do
    "${BENCH}" compare "${OUT_DIR}/kafka-${w}.json" "${OUT_DIR}/ringbroker-${w}.json" \
        --plot "${OUT_DIR}/${w}.svg" | tee -a "${OUT_DIR}/compare.txt"
done
