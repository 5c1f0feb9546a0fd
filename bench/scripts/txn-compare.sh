#!/usr/bin/env bash
# Transactions side by side (issue 22): Apache Kafka 4.4 and ringbroker (--shards 1) both pinned to the broker
# core, `ringbroker-bench txn` on the bench core, one broker at a time, RUNS alternating pairs (Kafka, then
# ringbroker) per shape. A shape is "N P PRODUCERS": transactions of N records over P partitions, PRODUCERS
# transactional producers back to back. Prints commits/s and read_committed e2e p50/p99 per pair and the ratios
# ringbroker / Kafka (medians over the pairs); JSON per run in OUT_DIR.
#
#   bash bench/scripts/txn-compare.sh [OUT_DIR]
#
# Environment (defaults in brackets): SHAPES ["10 1 1;100 4 1;100 4 4;1000 8 1"], RUNS [3], DURATION [8s],
# WARMUP [2s], RECORD_SIZE [100], BROKER_CORE [0], BENCH_CORE [1], KAFKA_PORT [19830], RB_PORT [19840],
# DATA_ROOT [/tmp/ringbroker-txn-data; wiped], BUILD [1: cargo build --release], RINGBROKER_BIN / BENCH_BIN.
# Needs: cargo, java 17 + maven (kafka.sh fetches the jars), python3, taskset.
set -euo pipefail

cd "$(dirname "$0")/../.."
REPO="$(pwd)"
OUT_DIR="${1:-/tmp/ringbroker-txn}"
mkdir -p "${OUT_DIR}"
OUT_DIR="$(cd "${OUT_DIR}" && pwd)"
SHAPES="${SHAPES:-10 1 1;100 4 1;100 4 4;1000 8 1}"
RUNS="${RUNS:-3}"
DURATION="${DURATION:-8s}"
WARMUP="${WARMUP:-2s}"
RECORD_SIZE="${RECORD_SIZE:-100}"
BROKER_CORE="${BROKER_CORE:-0}"
BENCH_CORE="${BENCH_CORE:-1}"
KAFKA_PORT="${KAFKA_PORT:-19830}"
RB_PORT="${RB_PORT:-19840}"
DATA_ROOT="${DATA_ROOT:-/tmp/ringbroker-txn-data}"
# One bench run may not take longer than this (a stuck broker fails the pair, not the script's caller).
RUN_TIMEOUT_SECONDS=180

TARGET="${CARGO_TARGET_DIR:-${REPO}/target}"
if [ "${BUILD:-1}" = "1" ]; then
    cargo build --release -p ringbroker -p ringbroker-bench
fi
RINGBROKER_BIN="${RINGBROKER_BIN:-${TARGET}/release/ringbroker}"
BENCH_BIN="${BENCH_BIN:-${TARGET}/release/ringbroker-bench}"

log() { echo "[$(date -u +%H:%M:%S)] $*" | tee -a "${OUT_DIR}/log.txt"; }

rb_pid=""
start_kafka() {
    rm -rf "${DATA_ROOT}/kafka"
    bash bench/reference/kafka.sh start --port "${KAFKA_PORT}" --data-dir "${DATA_ROOT}/kafka" \
        --cpus "${BROKER_CORE}" >/dev/null
}
stop_kafka() { bash bench/reference/kafka.sh stop --data-dir "${DATA_ROOT}/kafka" >/dev/null 2>&1 || true; }
start_rb() {
    rm -rf "${DATA_ROOT}/ringbroker" "${OUT_DIR}/ringbroker.log" && mkdir -p "${DATA_ROOT}/ringbroker"
    taskset -c "${BROKER_CORE}" "${RINGBROKER_BIN}" serve --listen "127.0.0.1:${RB_PORT}" \
        --data-dir "${DATA_ROOT}/ringbroker" --shards 1 --metrics-listen none \
        > "${OUT_DIR}/ringbroker.log" 2>&1 &
    rb_pid=$!
    # Ready once it logs so (10 s at most), unless it exits first. The old log is gone: the wait cannot see
    # the previous start's line.
    if ! timeout 10 bash -c "until grep -qs 'ringbroker ready' '${OUT_DIR}/ringbroker.log'; do
            kill -0 ${rb_pid} 2>/dev/null || exit 1; sleep 0.1; done"; then
        tail -20 "${OUT_DIR}/ringbroker.log" >&2
        echo "ringbroker did not start" >&2
        exit 1
    fi
}
stop_rb() {
    [ -z "${rb_pid}" ] || { kill -TERM "${rb_pid}" 2>/dev/null || true; wait "${rb_pid}" 2>/dev/null || true; }
    rb_pid=""
}
cleanup() { stop_rb; stop_kafka; }
trap cleanup EXIT

# bench BROKER PORT RUN N P PRODUCERS: one measured run into OUT_DIR/BROKER-N-P-PRODUCERS-RUN.json
bench() {
    local broker="$1" port="$2" run="$3" n="$4" p="$5" producers="$6"
    local name="${broker}-${n}x${p}-p${producers}-${run}"
    timeout "${RUN_TIMEOUT_SECONDS}" taskset -c "${BENCH_CORE}" "${BENCH_BIN}" txn \
        --bootstrap-server "127.0.0.1:${port}" --topic "txn-${n}x${p}-${run}" --partitions "${p}" \
        --txn-records "${n}" --record-size "${RECORD_SIZE}" --producers "${producers}" \
        --transactional-id "bench-${name}" --duration "${DURATION}" --warmup "${WARMUP}" \
        --cores "${BENCH_CORE}" --label "${broker}" --json "${OUT_DIR}/${name}.json" \
        > "${OUT_DIR}/${name}.txt" 2>&1 || { log "FAILED ${name}: $(tail -2 "${OUT_DIR}/${name}.txt" | tr '\n' ' ')"; return 0; }
    sed -n 2,4p "${OUT_DIR}/${name}.txt" | sed "s/^/    ${broker}: /" | tee -a "${OUT_DIR}/log.txt"
}

log "commit $(git rev-parse --short HEAD), shapes '${SHAPES}', ${RUNS} pairs, ${DURATION} after ${WARMUP}"
IFS=';' read -r -a shape_list <<< "${SHAPES}"
for run in $(seq 1 "${RUNS}"); do
    for shape in "${shape_list[@]}"; do
        read -r n p producers <<< "${shape}"
        log "pair ${run}: ${n} records x ${p} partitions, ${producers} producer(s)"
        start_kafka
        bench kafka "${KAFKA_PORT}" "${run}" "${n}" "${p}" "${producers}"
        stop_kafka
        start_rb
        bench ringbroker "${RB_PORT}" "${run}" "${n}" "${p}" "${producers}"
        stop_rb
    done
done

python3 - "${OUT_DIR}" <<'PY' | tee "${OUT_DIR}/summary.md"
import glob, json, os, re, statistics, sys
out = sys.argv[1]
runs = {}
for path in glob.glob(os.path.join(out, "*.json")):
    m = re.match(r"(kafka|ringbroker)-(\d+)x(\d+)-p(\d+)-(\d+)\.json", os.path.basename(path))
    if m:
        runs.setdefault((int(m[2]), int(m[3]), int(m[4])), {}).setdefault(m[1], []).append(json.load(open(path)))
print("| N x P, producers | broker | commits/s | e2e p50 ms | e2e p99 ms | commit p99 ms |")
print("|---|---|---|---|---|---|")
ratios = []
for shape in sorted(runs):
    med = {}
    for broker in ("kafka", "ringbroker"):
        rs = runs[shape].get(broker, [])
        if not rs:
            continue
        m = {k: statistics.median(r[k] for r in rs) for k in
             ("commits_per_sec", "e2e_latency_us_p50", "e2e_latency_us_p99", "commit_latency_us_p99")}
        med[broker] = m
        print(f"| {shape[0]} x {shape[1]}, {shape[2]} | {broker} ({len(rs)} runs) | {m['commits_per_sec']:.0f} | "
              f"{m['e2e_latency_us_p50']/1000:.2f} | {m['e2e_latency_us_p99']/1000:.2f} | "
              f"{m['commit_latency_us_p99']/1000:.2f} |")
    if len(med) == 2:
        k, r = med["kafka"], med["ringbroker"]
        ratios.append((shape, r["commits_per_sec"] / k["commits_per_sec"],
                       r["e2e_latency_us_p99"] / k["e2e_latency_us_p99"]))
print()
print("| N x P, producers | commits/s ringbroker / Kafka (target >= 2) | e2e p99 ringbroker / Kafka (target <= 0.2) |")
print("|---|---|---|")
for shape, c, e in ratios:
    print(f"| {shape[0]} x {shape[1]}, {shape[2]} | {c:.2f} | {e:.2f} |")
PY
