# shellcheck shell=bash
# The `defaults` part of suite.sh (issue 19): what a Kafka user measures first, with both brokers side by side.
# Sourced by suite.sh, which provides the brokers (both running at the level), bench(), log(), fail(),
# boot_of(), pid_of(), delete_topic(), cpu_seconds() and the KAFKA_CP/RINGBROKER_BIN/BENCH_BIN/OUT_DIR variables.
# bench/scripts/defaults_report.py turns what this writes into defaults.md (each target met or missed).
#
# Per level, in this order (every Kafka tool runs on BENCH_CORE, each run after `sync`):
#   max     ProducerPerformance with the Java client's defaults (acks=all, idempotent, 16 KiB batches,
#           linger.ms=5, 5 in flight: no --producer-props but bootstrap.servers), unthrottled,
#           DEFAULTS_SIZES x DEFAULTS_PARTITIONS; --warmup-records sets the client's start-up aside.
#   half    the same at a fixed rate: half of Kafka's steady records/s of that workload (the slower broker's
#           when Kafka's run failed), DEFAULTS_RATE_SECONDS of steady state after 3 s of warm-up: the p99.
#   catchup a backlog of DEFAULTS_BACKLOG_RECORDS x 1 KiB in one partition (written by ringbroker-bench),
#           read by ConsumerPerformance and by `ringbroker-bench consume`: hot (just written), then cold
#           (after `echo 3 > /proc/sys/vm/drop_caches`, when the suite may write it: root).
#   medium  `ringbroker-bench produce` with its default 64 KiB batches, 4 partitions, acks=1 (against the
#           limits part's O_DIRECT write bandwidth).
#   request one-record Produce requests (`--batch-size 1`, acks=1, 1 partition): broker CPU per request.
# The tail-read target (e2e p99 at half the slower broker's max) comes from the e2e and sweep parts.
#
# Environment (defaults in brackets): DEFAULTS_SIZES [1024 100], DEFAULTS_PARTITIONS [1 8],
# DEFAULTS_RECORDS_1024 [1000000], DEFAULTS_RECORDS_100 [4000000] (a quarter of each is warm-up),
# DEFAULTS_RATE_SECONDS [15], DEFAULTS_BACKLOG_RECORDS [2000000], DEFAULTS_BENCH_DURATION [DURATION].

DEFAULTS_SIZES="${DEFAULTS_SIZES:-1024 100}"
DEFAULTS_PARTITIONS="${DEFAULTS_PARTITIONS:-1 8}"
DEFAULTS_RECORDS_1024="${DEFAULTS_RECORDS_1024:-1000000}"
DEFAULTS_RECORDS_100="${DEFAULTS_RECORDS_100:-4000000}"
DEFAULTS_RATE_SECONDS="${DEFAULTS_RATE_SECONDS:-15}"
DEFAULTS_BACKLOG_RECORDS="${DEFAULTS_BACKLOG_RECORDS:-2000000}"
DEFAULTS_BENCH_DURATION="${DEFAULTS_BENCH_DURATION:-${DURATION}}"
# Records the client may spend starting (JIT, metadata, InitProducerId) in a fixed-rate run: 3 s worth.
DEFAULTS_RATE_WARMUP_SECONDS=3

defaults_records_for() {
    case "$1" in
        1024) echo "${DEFAULTS_RECORDS_1024}" ;;
        100) echo "${DEFAULTS_RECORDS_100}" ;;
        *) echo $((1024000000 / $1)) ;;
    esac
}

# perf_producer OUT BROKER TOPIC SIZE RECORDS WARMUP THROUGHPUT: one ProducerPerformance run, Java defaults.
perf_producer() {
    local out="$1" broker="$2" topic="$3" size="$4" records="$5" warmup="$6" throughput="$7"
    sync
    log "defaults: ProducerPerformance ${broker} ${topic}: ${records} x ${size} B (warm-up ${warmup}), throughput ${throughput}"
    if ! timeout "${RUN_TIMEOUT_SECONDS}" taskset -c "${BENCH_CORE}" java -Xmx512M \
        -Dlog4j2.configurationFile="${REPO}/bench/reference/log4j2.xml" -Dkafka.logs.dir="${OUT_DIR}/perftools" \
        -cp "${KAFKA_CP}" org.apache.kafka.tools.ProducerPerformance --topic "${topic}" \
        --num-records "${records}" --warmup-records "${warmup}" --record-size "${size}" \
        --throughput "${throughput}" --reporting-interval 5000 \
        --producer-props "bootstrap.servers=$(boot_of "${broker}")" > "${out}" 2>&1; then
        fail "ProducerPerformance ${out##*/} failed: $(tail -2 "${out}" | tr '\n' ' ')"
        return 0
    fi
    grep "steady state" "${out}" | tail -1 | sed 's/^/    /' | tee -a "${OUT_DIR}/log.txt"
}

# steady_records_per_s FILE: the steady-state records/s of a ProducerPerformance output, or nothing.
steady_records_per_s() {
    sed -n 's/^[0-9]* steady state records sent, \([0-9.]*\) records\/sec.*/\1/p' "$1" 2>/dev/null | tail -1
}

# perf_consumer OUT BROKER TOPIC RECORDS: one ConsumerPerformance run (Java consumer defaults).
perf_consumer() {
    local out="$1" broker="$2" topic="$3" records="$4"
    log "defaults: ConsumerPerformance ${broker} ${topic}: ${records} records"
    if ! timeout "${RUN_TIMEOUT_SECONDS}" taskset -c "${BENCH_CORE}" java -Xmx512M \
        -Dlog4j2.configurationFile="${REPO}/bench/reference/log4j2.xml" -Dkafka.logs.dir="${OUT_DIR}/perftools" \
        -cp "${KAFKA_CP}" org.apache.kafka.tools.ConsumerPerformance --bootstrap-server "$(boot_of "${broker}")" \
        --topic "${topic}" --num-records "${records}" > "${out}" 2>&1; then
        fail "ConsumerPerformance ${out##*/} failed: $(tail -2 "${out}" | tr '\n' ' ')"
        return 0
    fi
    tail -1 "${out}" | sed 's/^/    /' | tee -a "${OUT_DIR}/log.txt"
}

# Drops the page cache so the next read comes from the device; false (and logged once) when not allowed.
drop_page_cache() {
    sync
    if [ -w /proc/sys/vm/drop_caches ]; then
        echo 3 > /proc/sys/vm/drop_caches
        return 0
    fi
    fail "defaults: /proc/sys/vm/drop_caches is not writable (not root): no cold catch-up reads"
    return 1
}

run_defaults() {
    local level="$1" size parts broker topic records warmup half kafka_max rb_max out
    local P="${OUT_DIR}/perftools/defaults-${level}"
    for size in ${DEFAULTS_SIZES}; do for parts in ${DEFAULTS_PARTITIONS}; do
        records="$(defaults_records_for "${size}")"
        warmup=$((records / 4))
        for broker in kafka ringbroker; do
            topic="dmax-${size}-p${parts}"
            "${RINGBROKER_BIN}" topics create --bootstrap-server "$(boot_of "${broker}")" --topic "${topic}" \
                --partitions "${parts}" >/dev/null 2>&1 || fail "creating ${topic} on ${broker} failed"
            perf_producer "${P}-${broker}-max-${size}-p${parts}.txt" "${broker}" "${topic}" "${size}" \
                "${records}" "${warmup}" -1
            delete_topic "${broker}" "${topic}"
        done
        kafka_max="$(steady_records_per_s "${P}-kafka-max-${size}-p${parts}.txt")"
        rb_max="$(steady_records_per_s "${P}-ringbroker-max-${size}-p${parts}.txt")"
        # The issue's "half of Kafka's max rate"; the slower broker's when Kafka has no figure.
        half="$(python3 -c "import sys; v=[float(x) for x in sys.argv[1:] if x]; print(int(v[0] / 2) if v else '')" \
            "${kafka_max}" "${rb_max}")"
        if [ -z "${half}" ] || [ "${half}" -le 0 ]; then
            fail "defaults ${level} ${size} B p${parts}: no max rate to halve, no fixed-rate runs"
            continue
        fi
        echo "${half}" > "${P}-half-rate-${size}-p${parts}.txt"
        for broker in kafka ringbroker; do
            topic="dhalf-${size}-p${parts}"
            "${RINGBROKER_BIN}" topics create --bootstrap-server "$(boot_of "${broker}")" --topic "${topic}" \
                --partitions "${parts}" >/dev/null 2>&1 || fail "creating ${topic} on ${broker} failed"
            perf_producer "${P}-${broker}-half-${size}-p${parts}.txt" "${broker}" "${topic}" "${size}" \
                $((half * (DEFAULTS_RATE_SECONDS + DEFAULTS_RATE_WARMUP_SECONDS))) \
                $((half * DEFAULTS_RATE_WARMUP_SECONDS)) "${half}"
            delete_topic "${broker}" "${topic}"
        done
    done; done

    for broker in kafka ringbroker; do
        topic="dbacklog"
        BENCH_TIMEOUT="${FILL_TIMEOUT_SECONDS}" bench "defaults-${level}-${broker}-backlog-fill" "${broker}" \
            "${broker} ${level} backlog fill" produce --topic "${topic}" --partitions 1 --record-size 1024 \
            --batch-size "${THROUGHPUT_BATCH_BYTES}" --acks all --records "${DEFAULTS_BACKLOG_RECORDS}"
        sync
        perf_consumer "${P}-${broker}-catchup-hot.txt" "${broker}" "${topic}" "${DEFAULTS_BACKLOG_RECORDS}"
        bench "defaults-${level}-${broker}-catchup-hot" "${broker}" "${broker} ${level} catch-up hot" \
            consume --topic "${topic}" --fetch-max-bytes "${CONSUME_FETCH_MAX_BYTES}" \
            --fetch-partition-max-bytes "${CONSUME_FETCH_PARTITION_MAX_BYTES}"
        if drop_page_cache; then
            perf_consumer "${P}-${broker}-catchup-cold.txt" "${broker}" "${topic}" "${DEFAULTS_BACKLOG_RECORDS}"
            drop_page_cache
            bench "defaults-${level}-${broker}-catchup-cold" "${broker}" "${broker} ${level} catch-up cold" \
                consume --topic "${topic}" --fetch-max-bytes "${CONSUME_FETCH_MAX_BYTES}" \
                --fetch-partition-max-bytes "${CONSUME_FETCH_PARTITION_MAX_BYTES}"
        fi
        delete_topic "${broker}" "${topic}"

        topic="dmedium"
        bench "defaults-${level}-${broker}-medium" "${broker}" "${broker} ${level} 64 KiB batches" \
            produce --topic "${topic}" --partitions 4 --record-size 1024 --acks 1 \
            --duration "${DEFAULTS_BENCH_DURATION}" --warmup "${WARMUP}"
        delete_topic "${broker}" "${topic}"

        topic="drequest"
        bench "defaults-${level}-${broker}-request" "${broker}" "${broker} ${level} one-record requests" \
            produce --topic "${topic}" --partitions 1 --record-size 100 --batch-size 1 --acks 1 \
            --duration "${DEFAULTS_BENCH_DURATION}" --warmup "${WARMUP}"
        delete_topic "${broker}" "${topic}"
    done
}
