#!/usr/bin/env bash
# What TLS costs a fetch (issue 20's target: TLS fetch at least 70% of plaintext), with a client that is not the
# limit: `ringbroker-bench consume --tls-ca` (rustls, ring) reads a backlog through a PLAINTEXT and an SSL listener
# of the same broker in alternating rounds, broker pinned to core 0 (CPUS_BROKER), the bench on core 1 (CPUS_BENCH).
# The same on Apache Kafka 4.4 (bench/reference/kafka.sh, an SSL listener with a PEM keystore) unless KAFKA=0.
# Prints one line per read: system, protocol, round, MB/s, broker and bench CPU s/GB. The first read of each system is a
# warm-up (ringbroker writes with O_DIRECT: it puts the backlog in the page cache, as Kafka's writes do).
#
#   bash bench/security/tls-fetch.sh [path/to/ringbroker] [path/to/ringbroker-bench]
#   RECORDS=2000000 ROUNDS=3 KAFKA=1 bash bench/security/tls-fetch.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN="${1:-target/release/ringbroker}"
BENCH="${2:-target/release/ringbroker-bench}"
RECORDS="${RECORDS:-2000000}"
ROUNDS="${ROUNDS:-3}"
KAFKA="${KAFKA:-1}"
CPUS_BROKER="${CPUS_BROKER:-0}"
CPUS_BENCH="${CPUS_BENCH:-1}"
for tool in "$BIN" "$BENCH"; do
    [ -x "$tool" ] || { echo "no binary at $tool (cargo build --release -p ringbroker-tools -p ringbroker-bench)" >&2; exit 1; }
done
BIN="$(realpath "$BIN")"
BENCH="$(realpath "$BENCH")"
WORK="$(mktemp -d)"
BROKER_PID=""
source bench/security/common.sh
cleanup() {
    stop_broker
    [ -d "$WORK/kafka" ] && bash bench/reference/kafka.sh stop --data-dir "$WORK/kafka" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT
make_certs "$WORK"

echo "records=$RECORDS (1 KiB) rounds=$ROUNDS load=$(cut -d' ' -f1-3 /proc/loadavg) $(date -u +%FT%TZ)"
echo "system protocol round MB/s broker_cpu_s_per_GB bench_cpu_s_per_GB"

# consume SYSTEM PROTOCOL ROUND ADDRESS PID [bench flags...]: one full read of the backlog.
consume() {
    local system="$1" protocol="$2" round="$3" address="$4" pid="$5"
    shift 5
    local out
    out="$(taskset -c "$CPUS_BENCH" "$BENCH" consume --bootstrap-server "$address" --topic tls-fetch \
        --records "$RECORDS" --cores "$CPUS_BENCH" --fetch-max-bytes 67108864 \
        --fetch-partition-max-bytes 16777216 --broker-pid "$pid" "$@" 2>&1)" || { echo "$out" >&2; return 1; }
    local mbs cpu bench_cpu
    mbs="$(echo "$out" | awk '/^  consume /{ for (i = 1; i <= NF; i++) if ($i == "MB/s") print $(i - 1) }' | head -1)"
    cpu="$(echo "$out" | awk '/^  cpu /{ for (i = 1; i <= NF; i++) if ($i == "broker") print $(i + 1) }' | head -1)"
    bench_cpu="$(echo "$out" | awk '/^  cpu /{ for (i = 1; i <= NF; i++) if ($i == "bench") print $(i + 1) }' | head -1)"
    awk -v s="$system" -v p="$protocol" -v r="$round" -v m="$mbs" -v c="$cpu" -v b="$bench_cpu" -v n="$RECORDS" \
        'BEGIN { gb = n * 1024 / 1e9; printf "%s %s %s %s %.2f %.2f\n", s, p, r, m, c / gb, b / gb }'
}

# read_rounds SYSTEM PLAINTEXT_ADDRESS SSL_ADDRESS PID
read_rounds() {
    local system="$1" plain="$2" ssl="$3" pid="$4"
    consume "$system" PLAINTEXT warm-up "$plain" "$pid" >/dev/null
    for round in $(seq "$ROUNDS"); do
        consume "$system" PLAINTEXT "$round" "$plain" "$pid"
        consume "$system" SSL "$round" "$ssl" "$pid" --tls-ca "$WORK/ca.pem"
    done
}

fill() {
    taskset -c "$CPUS_BENCH" "$BENCH" produce --bootstrap-server "$1" --topic tls-fetch --partitions 1 \
        --record-size 1024 --acks 1 --records "$RECORDS" --cores "$CPUS_BENCH" >/dev/null
}

taskset -c "$CPUS_BROKER" "$BIN" serve --listen 127.0.0.1:19620 --listener SSL://127.0.0.1:19621 \
    --ssl-cert "$WORK/server.pem" --ssl-key "$WORK/server.key" --data-dir "$WORK/data" --shards 1 \
    --metrics-listen none > "$WORK/broker.log" 2>&1 &
BROKER_PID=$!
for _ in $(seq 100); do grep -q "ringbroker ready" "$WORK/broker.log" && break; sleep 0.2; done
grep -q "ringbroker ready" "$WORK/broker.log" || { cat "$WORK/broker.log"; exit 1; }
fill 127.0.0.1:19620
read_rounds ringbroker 127.0.0.1:19620 127.0.0.1:19621 "$BROKER_PID"
stop_broker
rm -rf "$WORK/data"

if [ "$KAFKA" = "1" ]; then
    bash bench/reference/kafka.sh start --port 19720 --controller-port 19722 --data-dir "$WORK/kafka" \
        --cpus "$CPUS_BROKER" \
        --config "listeners=PLAINTEXT://127.0.0.1:19720,SSL://127.0.0.1:19721,CONTROLLER://127.0.0.1:19722" \
        --config "advertised.listeners=PLAINTEXT://127.0.0.1:19720,SSL://127.0.0.1:19721" \
        --config "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SSL:SSL,CONTROLLER:PLAINTEXT" \
        --config "ssl.keystore.type=PEM" --config "ssl.keystore.location=$WORK/kafka-keystore.pem" \
        >/dev/null
    KAFKA_PID="$(cat "$WORK/kafka/kafka.pid")"
    fill 127.0.0.1:19720
    read_rounds kafka 127.0.0.1:19720 127.0.0.1:19721 "$KAFKA_PID"
fi
