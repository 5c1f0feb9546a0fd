#!/usr/bin/env bash
# The side-by-side matrix of issue 11: Apache Kafka 4.4 and ringbroker on the same core, the bench on the
# other, both brokers alive at once so every workload runs as a back-to-back pair (Kafka, then ringbroker),
# at two durability levels. Writes one JSON per run, Kafka's own perf tools' output, the metrics on/off
# pairs of issue 7, summary.md (the tables) and the plots into OUT_DIR.
#
#   bash bench/scripts/suite.sh [OUT_DIR]            # full matrix, about 20-25 minutes on 2 cores
#   SMOKE=1 bash bench/scripts/suite.sh [OUT_DIR]    # every part once, tiny durations, about 2-3 minutes
#
# Default OUT_DIR: /tmp/ringbroker-suite. Steps (PARTS, in this order; a failed run is logged in
# failures.txt and the suite goes on):
#   limits    dd O_DIRECT write and read of the data dir, iperf3 loopback (broker core -> bench core)
#   produce   SIZES x ACKS x PARTITION_COUNTS, DURATION after WARMUP, 1 MiB batches, 5 in flight
#   consume   fill CONSUME_RECORDS x 1 KiB per partition count, then a catch-up read of all of it
#   e2e       e2e at full speed (1 KiB, 64 KiB batches, acks=all, 1 partition), twice -> each broker's max
#   sweep     e2e at fixed rates: SWEEP_FRACTIONS of the slower broker's max (0.5 is "half of the
#             slower broker's max", the same offered load for both) and SWEEP_FAST_FRACTIONS of the
#             faster one's, linger 1 ms
#   defaults  issue 19: Kafka's perf tools with the Java client's defaults (max and half-of-Kafka's-max
#             rate, 1 KiB and 100 B, 1 and 8 partitions), catch-up reads of a 2 GB backlog hot and cold,
#             64 KiB batches, one-record requests; see bench/scripts/defaults_part.sh and defaults.md
#   perftools Kafka's ProducerPerformance (PERF_RECORDS x 1 KiB, acks=all, unthrottled; PERF_RECORDS_FSYNC
#             at the fsync level) and
#             ConsumerPerformance (the same records) against both brokers
#   replicated  issue 18: bench/scripts/replicated.py after everything else (no other broker running): a
#             3-broker ringbroker and a 3-broker Kafka cluster on network-namespace hosts, RF 3, acks=all,
#             min.insync.replicas=2, and ringbroker alone; REPLICATED_RUNS rounds of REPLICATED_SECONDS
#             each, into OUT_DIR/replicated (needs root for the namespaces)
#   metrics   METRICS_PAIRS alternating pairs, ringbroker metrics on / --metrics-listen none (default
#             level only): produce 1 KiB with 1 MiB and with 16 KiB batches, MB/s and broker CPU s/GB
# Durability levels (LEVELS): "default" = each broker's default (Kafka leaves flushing to the OS;
# ringbroker flush_policy 10ms), "fsync" = fsync before the ack (Kafka log.flush.interval.messages=1,
# ringbroker --set flush_policy=always).
#
# Environment (defaults in brackets): DURATION [4s], WARMUP [1s], LEVELS [default fsync],
# PARTS [limits produce consume e2e sweep defaults perftools metrics replicated], SIZES [100 1024], ACKS [1 all],
# PARTITION_COUNTS [1 8], CONSUME_RECORDS [1000000], SWEEP_FRACTIONS [0.25 0.5 0.75 1.0],
# SWEEP_FAST_FRACTIONS [0.5 0.9], SWEEP_RATES (absolute rates instead of fractions), PERF_RECORDS
# [1000000], PERF_RECORDS_FSYNC [200000], METRICS_PAIRS [6], REPLICATED_RUNS [2], REPLICATED_SECONDS [20], BROKER_CORE [0], BENCH_CORE [1],
# KAFKA_PORT [19800], RB_PORT [19810], METRICS_PORT [19811], DATA_ROOT [/tmp/ringbroker-suite-data; wiped], BUILD [1: cargo build --release],
# RINGBROKER_BIN / BENCH_BIN (skip the build), SUITE_COMMIT (commit to report when the binaries were
# built elsewhere), CARGO_TARGET_DIR as usual.
# Needs: cargo, java 17 + maven (kafka.sh fetches the jars), python3, taskset; iperf3 for the loopback limit.
set -euo pipefail

cd "$(dirname "$0")/../.."
REPO="$(pwd)"
OUT_DIR="${1:-/tmp/ringbroker-suite}"
mkdir -p "${OUT_DIR}/runs" "${OUT_DIR}/plots" "${OUT_DIR}/perftools"
OUT_DIR="$(cd "${OUT_DIR}" && pwd)"

if [ "${SMOKE:-0}" = "1" ]; then
    : "${DURATION:=1s}" "${WARMUP:=0s}" "${SIZES:=1024}" "${ACKS:=all}" "${PARTITION_COUNTS:=1}"
    : "${CONSUME_RECORDS:=100000}" "${SWEEP_FRACTIONS:=0.5}" "${SWEEP_FAST_FRACTIONS:=0.9}"
    : "${PERF_RECORDS:=50000}" "${PERF_RECORDS_FSYNC:=20000}" "${METRICS_PAIRS:=1}" "${KAFKA_WARMUP:=1s}" "${LIMIT_TEST_MIB:=256}"
    : "${LOOPBACK_SECONDS:=1}" "${REPLICATED_RUNS:=1}" "${REPLICATED_SECONDS:=3}"
    : "${DEFAULTS_SIZES:=1024}" "${DEFAULTS_PARTITIONS:=1}" "${DEFAULTS_RECORDS_1024:=40000}"
    : "${DEFAULTS_RATE_SECONDS:=2}" "${DEFAULTS_BACKLOG_RECORDS:=50000}"
fi
DURATION="${DURATION:-4s}"
WARMUP="${WARMUP:-1s}"
LEVELS="${LEVELS-default fsync}"
PARTS="${PARTS:-limits produce consume e2e sweep defaults perftools metrics replicated}"
SIZES="${SIZES:-100 1024}"
ACKS="${ACKS:-1 all}"
PARTITION_COUNTS="${PARTITION_COUNTS:-1 8}"
CONSUME_RECORDS="${CONSUME_RECORDS:-1000000}"
SWEEP_FRACTIONS="${SWEEP_FRACTIONS:-0.25 0.5 0.75 1.0}"
SWEEP_FAST_FRACTIONS="${SWEEP_FAST_FRACTIONS:-0.5 0.9}"
SWEEP_RATES="${SWEEP_RATES:-}"
PERF_RECORDS="${PERF_RECORDS:-1000000}"
# At the fsync level Kafka syncs every append of the Java producer's 16 KiB batches: far fewer records fit
# in the time budget.
PERF_RECORDS_FSYNC="${PERF_RECORDS_FSYNC:-200000}"
METRICS_PAIRS="${METRICS_PAIRS:-6}"
REPLICATED_RUNS="${REPLICATED_RUNS:-2}"
REPLICATED_SECONDS="${REPLICATED_SECONDS:-20}"
BROKER_CORE="${BROKER_CORE:-0}"
BENCH_CORE="${BENCH_CORE:-1}"
KAFKA_PORT="${KAFKA_PORT:-19800}"
RB_PORT="${RB_PORT:-19810}"
METRICS_PORT="${METRICS_PORT:-19811}"
DATA_ROOT="${DATA_ROOT:-/tmp/ringbroker-suite-data}"
# Un-recorded produce run against each broker before a level's matrix: JIT-compiles Kafka's hot path.
KAFKA_WARMUP="${KAFKA_WARMUP:-5s}"
# dd test file: large enough to leave the device cache behind, small enough to take a second or two.
LIMIT_TEST_MIB="${LIMIT_TEST_MIB:-2048}"
LOOPBACK_SECONDS="${LOOPBACK_SECONDS:-3}"
# Batches of the throughput runs (the bench's --batch-size; Kafka's default message.max.bytes is ~1 MiB).
THROUGHPUT_BATCH_BYTES=1048576
# Batches of the latency runs.
E2E_BATCH_BYTES=65536
# Longest one bench run may take before it is killed (a broker that stops answering must not hang the suite).
RUN_TIMEOUT_SECONDS=180
# Longest a consume fill may take: a broker slower than CONSUME_RECORDS KiB / this many seconds leaves less
# to read (the catch-up read then takes what is there).
FILL_TIMEOUT_SECONDS=60
# Fetch sizes of the catch-up reads.
CONSUME_FETCH_MAX_BYTES=67108864
CONSUME_FETCH_PARTITION_MAX_BYTES=16777216

has_part() { [[ " ${PARTS} " == *" $1 "* ]]; }
log() { echo "==> $(date -u +%H:%M:%S) $*" | tee -a "${OUT_DIR}/log.txt"; }
fail() { echo "$(date -u +%H:%M:%S) $*" | tee -a "${OUT_DIR}/failures.txt" >&2; }
# jget FILE PYTHON-EXPR-ON-j: prints a value from a JSON file, or nothing if it is missing.
jget() { python3 -c "import json,sys; j=json.load(open(sys.argv[1])); print($2)" "$1" 2>/dev/null || true; }

if [ -z "${RINGBROKER_BIN:-}" ] || [ -z "${BENCH_BIN:-}" ]; then
    TARGET_DIR="${CARGO_TARGET_DIR:-target}"
    if [ "${BUILD:-1}" = "1" ]; then
        cargo build --release -p ringbroker-tools -p ringbroker-bench
    fi
    RINGBROKER_BIN="${RINGBROKER_BIN:-${TARGET_DIR}/release/ringbroker}"
    BENCH_BIN="${BENCH_BIN:-${TARGET_DIR}/release/ringbroker-bench}"
fi
RINGBROKER_BIN="$(realpath "${RINGBROKER_BIN}")"
BENCH_BIN="$(realpath "${BENCH_BIN}")"
KAFKA_SH="${REPO}/bench/reference/kafka.sh"
KAFKA_CP="${REPO}/bench/reference/target/lib/*"
bash "${KAFKA_SH}" fetch

rm -rf "${DATA_ROOT}" && mkdir -p "${DATA_ROOT}"
: > "${OUT_DIR}/log.txt"
rm -f "${OUT_DIR}/failures.txt" "${OUT_DIR}"/runs/* "${OUT_DIR}"/perftools/* "${OUT_DIR}"/plots/*

# ---------------------------------------------------------------- the machine and the versions
cat > "${OUT_DIR}/environment.json" <<JSON
{
  "started_utc": "$(date -u +%Y-%m-%dT%H:%M:%SZ)",
  "command": "$(printf '%q ' "$0" "$@" | sed 's/"/\\"/g')",
  "nproc": $(nproc),
  "kernel": "$(uname -r)",
  "cpu_model": "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//; s/"//g')",
  "memory_gib": $(awk '/MemTotal/ {printf "%.1f", $2 / 1048576}' /proc/meminfo),
  "load_average_at_start": "$(cut -d' ' -f1-3 /proc/loadavg)",
  "cpu_pressure_at_start": "$(head -1 /proc/pressure/cpu 2>/dev/null || echo n/a)",
  "io_pressure_at_start": "$(head -1 /proc/pressure/io 2>/dev/null || echo n/a)",
  "data_root": "${DATA_ROOT}",
  "data_filesystem": "$(df -T "${DATA_ROOT}" | awk 'NR==2 {print $2 " on " $1}')",
  "git_commit": "${SUITE_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- engine protocol tools schema tuning bench 2>/dev/null || echo ' (with local changes)')}",
  "ringbroker": "$("${RINGBROKER_BIN}" --version)",
  "kafka": "Apache Kafka $(ls "${REPO}"/bench/reference/target/lib/ | sed -n 's/^kafka_2.13-\(.*\)\.jar$/\1/p')",
  "java": "$(java -version 2>&1 | head -1 | sed 's/"//g')",
  "broker_core": ${BROKER_CORE},
  "bench_core": ${BENCH_CORE},
  "duration": "${DURATION}",
  "warmup": "${WARMUP}",
  "levels": "${LEVELS}",
  "parts": "${PARTS}"
}
JSON
log "environment: $(tr -d '\n' < "${OUT_DIR}/environment.json" | tr -s ' ')"

# ---------------------------------------------------------------- limits
if has_part limits; then
    log "dd O_DIRECT sequential write, 1 MiB blocks, ${LIMIT_TEST_MIB} MiB, on ${DATA_ROOT}"
    dd_line="$(dd if=/dev/zero of="${DATA_ROOT}/dd.test" bs=1M count="${LIMIT_TEST_MIB}" oflag=direct \
        conv=fdatasync 2>&1 | tail -1)"
    echo "${dd_line}" | tee -a "${OUT_DIR}/log.txt"
    log "dd O_DIRECT sequential read of the same file"
    dd_read_line="$(dd if="${DATA_ROOT}/dd.test" of=/dev/null bs=1M iflag=direct 2>&1 | tail -1)"
    rm -f "${DATA_ROOT}/dd.test"
    echo "${dd_read_line}" | tee -a "${OUT_DIR}/log.txt"
    # "2147483648 bytes (2.1 GB, 2.0 GiB) copied, 1.02 s, 2.1 GB/s": bytes / seconds.
    dd_mb_s() { awk -F', ' '{split($1, b, " "); split($3, t, " "); printf "%.0f", b[1] / t[1] / 1e6}'; }
    disk_mb_s="$(echo "${dd_line}" | dd_mb_s)"
    disk_read_mb_s="$(echo "${dd_read_line}" | dd_mb_s)"
    loop_mb_s=""
    loop_detail=""
    if command -v iperf3 >/dev/null; then
        # iperf3's default 128 KiB writes, then 1 MiB writes (a broker sends fetch responses of many MiB);
        # the better of the two is the loopback limit.
        for write_len in 128K 1M; do
            log "iperf3 loopback TCP, ${write_len} writes, server on core ${BROKER_CORE}, client on core ${BENCH_CORE}, ${LOOPBACK_SECONDS} s"
            taskset -c "${BROKER_CORE}" iperf3 -s -1 -p $((RB_PORT + 2)) >/dev/null 2>&1 &
            iperf_pid=$!
            sleep 0.5
            mb_s="$(taskset -c "${BENCH_CORE}" iperf3 -c 127.0.0.1 -p $((RB_PORT + 2)) -t "${LOOPBACK_SECONDS}" \
                -l "${write_len}" -J \
                | python3 -c "import json,sys; print('%.0f' % (json.load(sys.stdin)['end']['sum_received']['bits_per_second'] / 8e6))" \
                || true)"
            wait "${iperf_pid}" 2>/dev/null || true
            loop_detail="${loop_detail}${write_len} writes ${mb_s:-?} MB/s; "
            if [ -n "${mb_s}" ] && { [ -z "${loop_mb_s}" ] || [ "${mb_s}" -gt "${loop_mb_s}" ]; }; then
                loop_mb_s="${mb_s}"
            fi
        done
    else
        fail "iperf3 not installed: no loopback limit (apt-get install iperf3)"
    fi
    log "limits: disk write ${disk_mb_s} MB/s, read ${disk_read_mb_s} MB/s, loopback ${loop_mb_s:-?} MB/s (${loop_detail})"
    printf '{"disk_write_mb_s": %s, "disk_read_mb_s": %s, "loopback_mb_s": %s, "dd": "%s", "dd_read": "%s", "iperf3": "%s"}\n' \
        "${disk_mb_s:-null}" "${disk_read_mb_s:-null}" "${loop_mb_s:-null}" "${dd_line}" "${dd_read_line}" \
        "${loop_detail}" > "${OUT_DIR}/limits.json"
fi

# ---------------------------------------------------------------- brokers
kafka_pid=""
rb_pid=""
kafka_data=""
rb_data=""

start_kafka() {
    local level="$1"
    kafka_data="${DATA_ROOT}/kafka-${level}"
    local extra=()
    [ "${level}" = "fsync" ] && extra=(--fsync)
    # Kafka's default initial rebalance delay (kafka.sh sets 0 for the tests): ringbroker's is the same 3 s,
    # so ConsumerPerformance's group join costs both brokers the same.
    bash "${KAFKA_SH}" start --port "${KAFKA_PORT}" --data-dir "${kafka_data}" --cpus "${BROKER_CORE}" \
        --config group.initial.rebalance.delay.ms=3000 "${extra[@]}" \
        | tee -a "${OUT_DIR}/log.txt"
    kafka_pid="$(cat "${kafka_data}/kafka.pid")"
}

stop_kafka() {
    if [ -n "${kafka_data}" ]; then
        bash "${KAFKA_SH}" stop --data-dir "${kafka_data}" >> "${OUT_DIR}/log.txt" 2>&1 || true
        cp "${kafka_data}/server.log" "${OUT_DIR}/kafka-$(basename "${kafka_data}").log" 2>/dev/null || true
        rm -rf "${kafka_data}"
    fi
    kafka_pid=""
    kafka_data=""
}

# start_rb NAME [serve args...]: ringbroker --shards 1 pinned to the broker core, fresh data dir.
start_rb() {
    local name="$1"; shift
    rb_data="${DATA_ROOT}/ringbroker-${name}"
    rm -rf "${rb_data}" && mkdir -p "${rb_data}"
    taskset -c "${BROKER_CORE}" "${RINGBROKER_BIN}" serve --listen "127.0.0.1:${RB_PORT}" \
        --data-dir "${rb_data}" --shards 1 "$@" > "${OUT_DIR}/ringbroker-${name}.log" 2>&1 &
    rb_pid=$!
    for _ in $(seq 1 100); do
        grep -q "ringbroker ready" "${OUT_DIR}/ringbroker-${name}.log" && return 0
        kill -0 "${rb_pid}" 2>/dev/null || break
        sleep 0.1
    done
    tail -20 "${OUT_DIR}/ringbroker-${name}.log" >&2
    echo "ringbroker did not start" >&2
    exit 1
}

stop_rb() {
    if [ -n "${rb_pid}" ]; then
        kill -TERM "${rb_pid}" 2>/dev/null || true
        wait "${rb_pid}" 2>/dev/null || true
    fi
    [ -n "${rb_data}" ] && rm -rf "${rb_data}"
    rb_pid=""
    rb_data=""
}

cleanup() {
    stop_rb
    stop_kafka
    rm -rf "${DATA_ROOT}"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# CPU seconds (user + system) a process has used so far; empty when it is gone.
cpu_seconds() {
    [ -n "$1" ] && [ -r "/proc/$1/stat" ] || return 0
    # Fields 14 and 15 of /proc/PID/stat, counted after the ")" that ends the command name.
    sed 's/.*) //' "/proc/$1/stat" | awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($12 + $13) / hz}'
}

boot_of() { if [ "$1" = kafka ]; then echo "127.0.0.1:${KAFKA_PORT}"; else echo "127.0.0.1:${RB_PORT}"; fi; }
pid_of() { if [ "$1" = kafka ]; then echo "${kafka_pid}"; else echo "${rb_pid}"; fi; }

# bench NAME BROKER LABEL WORKLOAD ARGS...: one recorded run (runs/NAME.json, .txt, .hlog). `sync` first, so
# the previous run's dirty pages (Kafka writes through the page cache) are not written back during this one.
bench() {
    local name="$1" broker="$2" label="$3"; shift 3
    local other="" other_before=""
    if [ "${broker}" = kafka ]; then other="${rb_pid}"; else other="${kafka_pid}"; fi
    sync
    log "${name}: ringbroker-bench $*"
    other_before="$(cpu_seconds "${other}")"
    if ! timeout "${BENCH_TIMEOUT:-${RUN_TIMEOUT_SECONDS}}" taskset -c "${BENCH_CORE}" "${BENCH_BIN}" "$@" \
        --bootstrap-server "$(boot_of "${broker}")" --cores "${BENCH_CORE}" --broker-pid "$(pid_of "${broker}")" \
        --label "${label}" --json "${OUT_DIR}/runs/${name}.json" --hdr-log "${OUT_DIR}/runs/${name}.hlog" \
        > "${OUT_DIR}/runs/${name}.txt" 2>&1; then
        fail "${name} failed: $(tail -2 "${OUT_DIR}/runs/${name}.txt" | tr '\n' ' ')"
        rm -f "${OUT_DIR}/runs/${name}.json"
        return 0
    fi
    # The idle neighbour's CPU over the whole run (warm-up included): what it took from the broker core.
    if [ -n "${other_before}" ]; then
        python3 -c "print('%.2f' % (float('$(cpu_seconds "${other}")' or 0) - ${other_before}))" \
            > "${OUT_DIR}/runs/${name}.neighbour-cpu"
    fi
    grep -E "^  (produce|consume|cpu|e2e) " "${OUT_DIR}/runs/${name}.txt" | sed 's/^/    /' | tee -a "${OUT_DIR}/log.txt"
}

# Drops a run's topic. Kafka's topics are kept until the level ends (its data dir is wiped then): Kafka
# removes a deleted topic's files later, from a background task on the shared core, and that removal of GBs
# landed in ringbroker's next run (~120 ms stalls in its e2e runs, absent with ringbroker alone).
delete_topic() {
    [ "$1" = kafka ] && return 0
    "${RINGBROKER_BIN}" topics delete --bootstrap-server "$(boot_of "$1")" --topic "$2" >/dev/null 2>&1 \
        || fail "deleting topic $2 on $1 failed"
}

acks_name() { if [ "$1" = all ] || [ "$1" = -1 ]; then echo all; else echo "$1"; fi; }
size_name() { if [ "$1" -ge 1024 ] && [ $(($1 % 1024)) -eq 0 ]; then echo "$(($1 / 1024))KiB"; else echo "$1B"; fi; }

run_produce() {
    local level="$1" size acks parts broker topic name
    for size in ${SIZES}; do for acks in ${ACKS}; do for parts in ${PARTITION_COUNTS}; do
        for broker in kafka ringbroker; do
            topic="p${size}-a$(acks_name "${acks}")-p${parts}"
            name="${level}-${broker}-produce-$(size_name "${size}")-acks$(acks_name "${acks}")-p${parts}"
            bench "${name}" "${broker}" "${broker} ${level} $(size_name "${size}") acks=$(acks_name "${acks}") p${parts}" \
                produce --topic "${topic}" --partitions "${parts}" --record-size "${size}" \
                --batch-size "${THROUGHPUT_BATCH_BYTES}" --acks "${acks}" --duration "${DURATION}" --warmup "${WARMUP}"
            delete_topic "${broker}" "${topic}"
        done
    done; done; done
}

run_consume() {
    local level="$1" parts broker topic
    for parts in ${PARTITION_COUNTS}; do
        for broker in kafka ringbroker; do
            topic="c1024-p${parts}"
            BENCH_TIMEOUT="${FILL_TIMEOUT_SECONDS}" bench "${level}-${broker}-fill-1KiB-p${parts}" "${broker}" "${broker} ${level} fill p${parts}" \
                produce --topic "${topic}" --partitions "${parts}" --record-size 1024 \
                --batch-size "${THROUGHPUT_BATCH_BYTES}" --acks all --records "${CONSUME_RECORDS}"
            bench "${level}-${broker}-consume-1KiB-p${parts}" "${broker}" "${broker} ${level} consume p${parts}" \
                consume --topic "${topic}" --fetch-max-bytes "${CONSUME_FETCH_MAX_BYTES}" \
                --fetch-partition-max-bytes "${CONSUME_FETCH_PARTITION_MAX_BYTES}"
            delete_topic "${broker}" "${topic}"
        done
    done
}

e2e_args=(--partitions 1 --record-size 1024 --batch-size "${E2E_BATCH_BYTES}" --acks all)

# Twice per broker (alternating): on a shared machine one unthrottled run can meet a stall that makes the
# "max" a fraction of what the broker sustains, and every rate of the sweep derives from it. The better
# run counts.
run_e2e_max() {
    local level="$1" broker attempt
    for attempt in 1 2; do
        for broker in kafka ringbroker; do
            bench "${level}-${broker}-e2e-max${attempt}" "${broker}" "${broker} ${level} e2e max #${attempt}" \
                e2e --topic "e2e-max${attempt}" "${e2e_args[@]}" --duration "${DURATION}" --warmup "${WARMUP}"
            delete_topic "${broker}" "e2e-max${attempt}"
        done
    done
}

# Prints the sweep rates for a level: SWEEP_RATES, or fractions of the two brokers' e2e max.
sweep_rates() {
    local level="$1"
    if [ -n "${SWEEP_RATES}" ]; then echo "${SWEEP_RATES}"; return; fi
    python3 - "${OUT_DIR}/runs/${level}" "${SWEEP_FRACTIONS}" "${SWEEP_FAST_FRACTIONS}" <<'PY'
import json, sys
maxes = []
for broker in ("kafka", "ringbroker"):
    best = []
    for attempt in (1, 2):
        try:
            path = f"{sys.argv[1]}-{broker}-e2e-max{attempt}.json"
            best.append(json.load(open(path))["results"]["produce"]["records_per_s"])
        except (OSError, KeyError, TypeError, ValueError):
            pass
    if best:
        maxes.append(max(best))
if not maxes:
    sys.exit(1)
slow, fast = min(maxes), max(maxes)
rates = {round(slow * float(f), -2) for f in sys.argv[2].split()}
if len(maxes) == 2:
    rates |= {round(fast * float(f), -2) for f in sys.argv[3].split()}
print(" ".join(str(int(r)) for r in sorted(rates) if r > 0))
PY
}

run_sweep() {
    local level="$1" rates rate broker
    if ! rates="$(sweep_rates "${level}")" || [ -z "${rates}" ]; then
        fail "sweep ${level}: no e2e max to derive rates from (set SWEEP_RATES)"
        return 0
    fi
    log "sweep ${level}: rates ${rates}"
    for rate in ${rates}; do
        for broker in kafka ringbroker; do
            bench "${level}-${broker}-e2e-rate${rate}" "${broker}" "${broker} ${level} @${rate}" \
                e2e --topic "e2e-${rate}" "${e2e_args[@]}" --rate "${rate}" --linger-ms 1 \
                --duration "${DURATION}" --warmup "${WARMUP}"
            delete_topic "${broker}" "e2e-${rate}"
        done
    done
}

# shellcheck source=bench/scripts/defaults_part.sh
source "${REPO}/bench/scripts/defaults_part.sh"

# Kafka's own ProducerPerformance and ConsumerPerformance, on the bench core, with the jars kafka.sh fetched.
run_perftools() {
    local level="$1" broker boot out topic records="${PERF_RECORDS}"
    [ "${level}" = "fsync" ] && records="${PERF_RECORDS_FSYNC}"
    for broker in kafka ringbroker; do
        boot="$(boot_of "${broker}")"
        topic="perf"
        out="${OUT_DIR}/perftools/${level}-${broker}"
        "${RINGBROKER_BIN}" topics create --bootstrap-server "${boot}" --topic "${topic}" --partitions 1 \
            >/dev/null 2>&1 || fail "creating ${topic} on ${broker} failed"
        sync
        log "${level} ${broker}: ProducerPerformance ${records} x 1024 B, acks=all"
        timeout "${RUN_TIMEOUT_SECONDS}" taskset -c "${BENCH_CORE}" java -Xmx512M \
            -Dlog4j2.configurationFile="${REPO}/bench/reference/log4j2.xml" -Dkafka.logs.dir="${OUT_DIR}/perftools" \
            -cp "${KAFKA_CP}" org.apache.kafka.tools.ProducerPerformance --topic "${topic}" \
            --num-records "${records}" --record-size 1024 --throughput -1 \
            --producer-props "bootstrap.servers=${boot}" acks=all > "${out}-producer.txt" 2>&1 \
            || fail "ProducerPerformance against ${broker} (${level}) failed: $(tail -2 "${out}-producer.txt" | tr '\n' ' ')"
        tail -1 "${out}-producer.txt" | sed 's/^/    /' | tee -a "${OUT_DIR}/log.txt"
        sync
        log "${level} ${broker}: ConsumerPerformance ${records} records"
        timeout "${RUN_TIMEOUT_SECONDS}" taskset -c "${BENCH_CORE}" java -Xmx512M \
            -Dlog4j2.configurationFile="${REPO}/bench/reference/log4j2.xml" -Dkafka.logs.dir="${OUT_DIR}/perftools" \
            -cp "${KAFKA_CP}" org.apache.kafka.tools.ConsumerPerformance --bootstrap-server "${boot}" \
            --topic "${topic}" --messages "${records}" > "${out}-consumer.txt" 2>&1 \
            || fail "ConsumerPerformance against ${broker} (${level}) failed: $(tail -2 "${out}-consumer.txt" | tr '\n' ' ')"
        tail -1 "${out}-consumer.txt" | sed 's/^/    /' | tee -a "${OUT_DIR}/log.txt"
        delete_topic "${broker}" "${topic}"
    done
}

run_level() {
    local level="$1" rb_args=()
    [ "${level}" = "fsync" ] && rb_args=(--set flush_policy=always)
    log "level ${level}: starting Kafka and ringbroker on core ${BROKER_CORE}"
    start_kafka "${level}"
    start_rb "${level}" --metrics-listen "127.0.0.1:${METRICS_PORT}" "${rb_args[@]}"
    log "ringbroker pid ${rb_pid}, Kafka pid ${kafka_pid}"
    for broker in kafka ringbroker; do
        timeout "${RUN_TIMEOUT_SECONDS}" taskset -c "${BENCH_CORE}" "${BENCH_BIN}" produce --topic warmup \
            --partitions 1 --record-size 1024 --batch-size "${THROUGHPUT_BATCH_BYTES}" --duration "${KAFKA_WARMUP}" \
            --bootstrap-server "$(boot_of "${broker}")" --cores "${BENCH_CORE}" > "${OUT_DIR}/runs/${level}-${broker}-warmup.txt" 2>&1 \
            || fail "warm-up against ${broker} failed"
        delete_topic "${broker}" warmup
    done
    has_part produce && run_produce "${level}"
    has_part consume && run_consume "${level}"
    has_part e2e && run_e2e_max "${level}"
    has_part sweep && run_sweep "${level}"
    has_part defaults && run_defaults "${level}"
    has_part perftools && run_perftools "${level}"
    stop_rb
    stop_kafka
}

# Issue 7: the cost of the metrics hooks. Alternating pairs (on first in odd pairs, off first in even ones),
# a fresh broker per half; the runs report MB/s and the broker's CPU seconds.
run_metrics() {
    local i order mode name batch
    for i in $(seq 1 "${METRICS_PAIRS}"); do
        if [ $((i % 2)) -eq 1 ]; then order="on off"; else order="off on"; fi
        for mode in ${order}; do
            if [ "${mode}" = on ]; then
                start_rb "metrics-${mode}" --metrics-listen "127.0.0.1:${METRICS_PORT}"
            else
                start_rb "metrics-${mode}" --metrics-listen none
            fi
            for batch in 1048576 16384; do
                name="metrics-${mode}-b${batch}-${i}"
                bench "${name}" ringbroker "metrics ${mode} b${batch} #${i}" produce --topic "m${batch}" \
                    --partitions 1 --record-size 1024 --batch-size "${batch}" --acks 1 \
                    --duration "${DURATION}" --warmup "${WARMUP}"
            done
            stop_rb
        done
    done
}

for level in ${LEVELS}; do
    run_level "${level}"
done
has_part metrics && run_metrics
if has_part replicated; then
    log "replicated: bench/scripts/replicated.py, ${REPLICATED_RUNS} rounds of ${REPLICATED_SECONDS} s"
    python3 "${REPO}/bench/scripts/replicated.py" --out "${OUT_DIR}/replicated" --data-root "${DATA_ROOT}/replicated" \
        --runs "${REPLICATED_RUNS}" --duration-s "${REPLICATED_SECONDS}" --broker-core "${BROKER_CORE}" \
        --tool-core "${BENCH_CORE}" --ringbroker "${RINGBROKER_BIN}" --bench "${BENCH_BIN}" \
        > "${OUT_DIR}/replicated.txt" 2>&1 || fail "replicated.py failed: $(tail -2 "${OUT_DIR}/replicated.txt" | tr '\n' ' ')"
fi

# ---------------------------------------------------------------- report
python3 - "${OUT_DIR}/environment.json" <<'PY'
import json, sys
p = sys.argv[1]
j = json.load(open(p))
j["finished_utc"] = __import__("datetime").datetime.now(__import__("datetime").timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
j["load_average_at_end"] = " ".join(open("/proc/loadavg").read().split()[:3])
json.dump(j, open(p, "w"), indent=2)
PY

plot() {
    local out="$1"; shift
    local files=()
    for f in "$@"; do [ -f "${f}" ] && files+=("${f}"); done
    [ "${#files[@]}" -gt 0 ] || return 0
    "${BENCH_BIN}" compare "${files[@]}" --plot "${OUT_DIR}/plots/${out}.svg" >> "${OUT_DIR}/compare.txt" 2>&1 \
        || fail "plot ${out} failed"
}
: > "${OUT_DIR}/compare.txt"
R="${OUT_DIR}/runs"
for level in ${LEVELS}; do
    for size in ${SIZES}; do for acks in ${ACKS}; do
        s="$(size_name "${size}")"; a="$(acks_name "${acks}")"
        files=()
        for parts in ${PARTITION_COUNTS}; do
            files+=("${R}/${level}-kafka-produce-${s}-acks${a}-p${parts}.json" "${R}/${level}-ringbroker-produce-${s}-acks${a}-p${parts}.json")
        done
        plot "${level}-produce-${s}-acks${a}" "${files[@]}"
    done; done
    files=()
    for parts in ${PARTITION_COUNTS}; do
        files+=("${R}/${level}-kafka-consume-1KiB-p${parts}.json" "${R}/${level}-ringbroker-consume-1KiB-p${parts}.json")
    done
    plot "${level}-consume" "${files[@]}"
    half=""
    [ -z "${SWEEP_RATES}" ] && half="$(SWEEP_FRACTIONS=0.5 SWEEP_FAST_FRACTIONS='' sweep_rates "${level}" 2>/dev/null || true)"
    if [ -n "${half}" ]; then
        plot "${level}-e2e-half" "${R}/${level}-kafka-e2e-rate${half}.json" "${R}/${level}-ringbroker-e2e-rate${half}.json"
    fi
done
sweeps=()
for f in "${R}"/*-e2e-rate*.json; do [ -f "${f}" ] && sweeps+=("${f}"); done
if [ "${#sweeps[@]}" -gt 0 ]; then
    "${BENCH_BIN}" compare "${sweeps[@]}" --sweep-plot "${OUT_DIR}/plots/sweep.svg" > /dev/null 2>&1 \
        || fail "sweep plot failed"
fi

python3 "${REPO}/bench/scripts/suite_report.py" "${OUT_DIR}" > "${OUT_DIR}/summary.md" \
    || fail "summary failed"
if has_part defaults; then
    python3 "${REPO}/bench/scripts/defaults_report.py" "${OUT_DIR}" > "${OUT_DIR}/defaults.md" \
        || fail "defaults report failed"
fi
log "summary: ${OUT_DIR}/summary.md, plots: ${OUT_DIR}/plots/"
[ -f "${OUT_DIR}/failures.txt" ] && { echo "failures:" >&2; cat "${OUT_DIR}/failures.txt" >&2; }
exit 0
