#!/usr/bin/env bash
# Reproduces BENCHMARKS.md on this machine: measures the machine's limits (O_DIRECT write and read bandwidth
# of the data directory with dd and fio, loopback TCP with iperf3), then runs ringbroker-bench against
# `ringbroker serve --shards 1` pinned to core 0, with the bench pinned to core 1. Each run is short (<= 20 s).
#
#   bash bench/scripts/run-benchmarks.sh [OUT_DIR]        # default OUT_DIR: /tmp/ringbroker-bench-results
#
# Environment: DATA_DIR (default /tmp/ringbroker-bench-data; removed and recreated), PORT (default 19500),
# BROKER_CORE (0), BENCH_CORE (1), SKIP_LIMITS=1 to skip the limit measurements, CARGO_TARGET_DIR as usual.
# Disk: a 1 KiB produce run writes about 1 GB per second and the broker preallocates 1 GiB segments, so keep
# ~15 GB free; the data directory is wiped before each broker start and at the end.
# Needs: cargo, taskset; fio and iperf3 if the limits are measured (apt-get install fio iperf3).
set -euo pipefail

cd "$(dirname "$0")/../.."
OUT_DIR="${1:-/tmp/ringbroker-bench-results}"
DATA_DIR="${DATA_DIR:-/tmp/ringbroker-bench-data}"
PORT="${PORT:-19500}"
BROKER_CORE="${BROKER_CORE:-0}"
BENCH_CORE="${BENCH_CORE:-1}"
# Size of the dd/fio test files: large enough to leave the device cache behind, small enough to be quick.
LIMIT_TEST_MIB=2048

mkdir -p "${OUT_DIR}"
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
cargo build --release -p ringbroker-tools -p ringbroker-bench
BROKER="${TARGET_DIR}/release/ringbroker"
BENCH="${TARGET_DIR}/release/ringbroker-bench"
BOOT="127.0.0.1:${PORT}"

log() { echo "==> $*" | tee -a "${OUT_DIR}/log.txt"; }

broker_pid=""
stop_broker() {
    if [ -n "${broker_pid}" ]; then
        kill "${broker_pid}" 2>/dev/null || true
        wait "${broker_pid}" 2>/dev/null || true
        broker_pid=""
    fi
}
trap stop_broker EXIT

start_broker() {
    stop_broker
    rm -rf "${DATA_DIR}" && mkdir -p "${DATA_DIR}"
    taskset -c "${BROKER_CORE}" "${BROKER}" serve --listen "${BOOT}" --data-dir "${DATA_DIR}" --shards 1 \
        > "${OUT_DIR}/broker.log" 2>&1 &
    broker_pid=$!
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/${PORT}") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "broker did not start; see ${OUT_DIR}/broker.log" >&2
    exit 1
}

bench() {
    local name="$1"; shift
    log "ringbroker-bench $* (${name})"
    taskset -c "${BENCH_CORE}" "${BENCH}" "$@" --bootstrap-server "${BOOT}" --cores "${BENCH_CORE}" --broker-pid "${broker_pid}" \
        --label "${name}" --json "${OUT_DIR}/${name}.json" --hdr-log "${OUT_DIR}/${name}.hlog" \
        | tee -a "${OUT_DIR}/log.txt"
}

if [ "${SKIP_LIMITS:-0}" != "1" ]; then
    mkdir -p "${DATA_DIR}"
    log "machine: $(nproc) cores, $(uname -sr), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
    log "dd O_DIRECT sequential write, 1 MiB blocks, ${LIMIT_TEST_MIB} MiB"
    dd if=/dev/zero of="${DATA_DIR}/dd.test" bs=1M count="${LIMIT_TEST_MIB}" oflag=direct conv=fdatasync 2>&1 \
        | tail -1 | tee -a "${OUT_DIR}/log.txt"
    rm -f "${DATA_DIR}/dd.test"
    if command -v fio >/dev/null; then
        for rw in write read; do
            log "fio O_DIRECT sequential ${rw}, 1 MiB blocks, io_uring, queue depth 8"
            fio --name="seq${rw}" --filename="${DATA_DIR}/fio.test" --rw="${rw}" --bs=1M --direct=1 \
                --ioengine=io_uring --iodepth=8 --size="${LIMIT_TEST_MIB}M" --output-format=json \
                | python3 -c "import json,sys; j=json.load(sys.stdin)['jobs'][0]['${rw}']; print('fio ${rw}: %.0f MB/s' % (j['bw_bytes'] / 1e6))" \
                | tee -a "${OUT_DIR}/log.txt"
        done
        rm -f "${DATA_DIR}/fio.test"
    fi
    if command -v iperf3 >/dev/null; then
        log "iperf3 loopback TCP, server on core ${BROKER_CORE}, client on core ${BENCH_CORE}, 5 s"
        taskset -c "${BROKER_CORE}" iperf3 -s -1 -p $((PORT + 1)) >/dev/null 2>&1 &
        sleep 0.5
        taskset -c "${BENCH_CORE}" iperf3 -c 127.0.0.1 -p $((PORT + 1)) -t 5 -f m | grep -E "receiver" \
            | tee -a "${OUT_DIR}/log.txt"
        wait || true
    fi
fi

# 1. produce, 1 KiB records, acks=1 (target: >= 85% of the O_DIRECT write bandwidth)
start_broker
bench produce-1k produce --topic p1k --partitions 1 --record-size 1024 --batch-size 1048576 --acks 1 \
    --duration 6s --warmup 1s
# 4. consume (catch-up) the data just written (target: >= 1.5 GB/s or the loopback limit)
bench consume-1k consume --topic p1k --fetch-max-bytes 67108864 --fetch-partition-max-bytes 16777216
# 2. produce, 100-byte records, batched (target: >= 3,000,000 records/s)
start_broker
bench produce-100 produce --topic p100 --partitions 1 --record-size 100 --batch-size 1048576 --acks 1 \
    --duration 8s --warmup 2s
# 3. e2e at full speed, then at half of that rate (target: p99 <= 2 ms, p99.9 <= 5 ms)
start_broker
bench e2e-max e2e --topic e2e --partitions 1 --record-size 1024 --batch-size 65536 --duration 10s --warmup 2s
max_rate=$(python3 -c "import json; print(int(json.load(open('${OUT_DIR}/e2e-max.json'))['results']['produce']['records_per_s']))")
bench e2e-half e2e --topic e2e --record-size 1024 --batch-size 65536 --rate $((max_rate / 2)) --linger-ms 1 \
    --duration 15s --warmup 3s
stop_broker
rm -rf "${DATA_DIR}"

"${BENCH}" compare "${OUT_DIR}/produce-1k.json" "${OUT_DIR}/produce-100.json" "${OUT_DIR}/consume-1k.json" \
    "${OUT_DIR}/e2e-max.json" "${OUT_DIR}/e2e-half.json" --plot "${OUT_DIR}/compare.svg" | tee -a "${OUT_DIR}/log.txt"
log "results in ${OUT_DIR}"
