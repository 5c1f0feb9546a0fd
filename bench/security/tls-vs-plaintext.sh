#!/usr/bin/env bash
# What TLS and SASL_SSL cost against plaintext (issue 20): one ringbroker with a PLAINTEXT, an SSL and a
# SASL_SSL (SCRAM-SHA-512) listener; Kafka's ProducerPerformance and ConsumerPerformance (the Java client,
# jars from bench/reference/kafka.sh fetch) produce then consume RECORDS records of RECORD_BYTES through each,
# one topic per protocol. Prints one line per run with the tool's MB/s and the broker's CPU seconds per GB.
#
#   bash bench/security/tls-vs-plaintext.sh [path/to/ringbroker]
#   RECORDS=500000 RECORD_BYTES=1024 SHARDS=1 bash bench/security/tls-vs-plaintext.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN="${1:-target/release/ringbroker}"
RECORDS="${RECORDS:-200000}"
RECORD_BYTES="${RECORD_BYTES:-1024}"
SHARDS="${SHARDS:-1}"
LIB="bench/reference/target/lib"
[ -x "$BIN" ] || { echo "no ringbroker binary at $BIN (cargo build --release)" >&2; exit 1; }
ls "$LIB"/kafka-clients-*.jar >/dev/null 2>&1 || bash bench/reference/kafka.sh fetch
WORK="$(mktemp -d)"
BROKER_PID=""
source bench/security/common.sh
cleanup() {
    stop_broker
    rm -rf "$WORK"
}
trap cleanup EXIT
make_certs "$WORK"

"$BIN" serve --listen 127.0.0.1:19600 --listener SSL://127.0.0.1:19601 --listener SASL_SSL://127.0.0.1:19602 \
    --ssl-cert "$WORK/server.pem" --ssl-key "$WORK/server.key" --sasl-mechanisms SCRAM-SHA-512 \
    --add-scram 'SCRAM-SHA-512=[name=bench,password=bench-secret]' --data-dir "$WORK/data" --shards "$SHARDS" \
    --metrics-listen none > "$WORK/broker.log" 2>&1 &
BROKER_PID=$!
for _ in $(seq 100); do grep -q "ringbroker ready" "$WORK/broker.log" && break; sleep 0.2; done
grep -q "ringbroker ready" "$WORK/broker.log" || { cat "$WORK/broker.log"; exit 1; }

printf 'security.protocol=PLAINTEXT\n' > "$WORK/PLAINTEXT.properties"
printf 'security.protocol=SSL\nssl.truststore.type=PEM\nssl.truststore.location=%s\n' "$WORK/ca.pem" \
    > "$WORK/SSL.properties"
printf 'security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\nssl.truststore.type=PEM\nssl.truststore.location=%s\nsasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="bench" password="bench-secret";\n' \
    "$WORK/ca.pem" > "$WORK/SASL_SSL.properties"

# Broker CPU seconds (user + system) so far.
broker_cpu_s() {
    awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$BROKER_PID/stat"
}
java_tool() {
    java -Xmx1g -Dlog4j2.configurationFile=bench/reference/log4j2.xml -Dkafka.logs.dir="$WORK/java-logs" \
        -cp "$LIB/*" "$@" 2>/dev/null
}
GB=$(awk -v r="$RECORDS" -v b="$RECORD_BYTES" 'BEGIN { printf "%.4f", r * b / 1e9 }')
echo "records=$RECORDS record_bytes=$RECORD_BYTES shards=$SHARDS load=$(cut -d' ' -f1-3 /proc/loadavg)"
for entry in PLAINTEXT:19600 SSL:19601 SASL_SSL:19602; do
    protocol="${entry%%:*}"
    address="127.0.0.1:${entry##*:}"
    topic="bench-$protocol"
    before=$(broker_cpu_s)
    produced=$(java_tool org.apache.kafka.tools.ProducerPerformance --topic "$topic" --num-records "$RECORDS" \
        --record-size "$RECORD_BYTES" --throughput -1 --command-config "$WORK/$protocol.properties" \
        --command-property "bootstrap.servers=$address" acks=1 linger.ms=5 batch.size=262144 | tail -1)
    after=$(broker_cpu_s)
    echo "$protocol produce: $produced | broker CPU $(awk -v a="$after" -v b="$before" -v g="$GB" 'BEGIN { printf "%.2f s, %.2f s/GB", a - b, (a - b) / g }')"
    before=$(broker_cpu_s)
    consumed=$(java_tool org.apache.kafka.tools.ConsumerPerformance --topic "$topic" --messages "$RECORDS" \
        --bootstrap-server "$address" --command-config "$WORK/$protocol.properties" --timeout 60000 | tail -1)
    after=$(broker_cpu_s)
    echo "$protocol consume: $consumed | broker CPU $(awk -v a="$after" -v b="$before" -v g="$GB" 'BEGIN { printf "%.2f s, %.2f s/GB", a - b, (a - b) / g }')"
done
