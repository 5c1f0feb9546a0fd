#!/usr/bin/env bash
# Starts, stops and checks a single-node Apache Kafka 4.4 (KRaft, combined broker + controller) on loopback,
# from the jars bench/reference/pom.xml fetches. Used by the interop tests (to validate them against the real
# thing) and by the benchmarks (the side-by-side reference). Settings are documented in README.md here.
#
#   bench/reference/kafka.sh start  --port 9192 --data-dir /tmp/kref [--cpus 0] [--fsync] [--heap 1g]
#                                   [--config KEY=VALUE]...   (extra server.properties lines, win over ours)
#   bench/reference/kafka.sh status --data-dir /tmp/kref
#   bench/reference/kafka.sh stop   --data-dir /tmp/kref
#   bench/reference/kafka.sh fetch                        # only fetch the jars into target/lib
#
# start: fetches the jars if needed, writes <data-dir>/server.properties, formats the KRaft storage (first start
# only), launches the JVM in the background (pinned with taskset when --cpus is given), and returns once the
# broker answers an ApiVersions request on --port. Logs: <data-dir>/server.log (WARN+), JVM stdout/stderr in
# <data-dir>/kafka.out.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
LIB_DIR="${HERE}/target/lib"
# How long start waits for ApiVersions to be answered before giving up.
START_TIMEOUT_SECONDS=120
# How long stop waits after SIGTERM before SIGKILL.
STOP_TIMEOUT_SECONDS=60

usage() {
    sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

die() { echo "kafka.sh: $*" >&2; exit 1; }

[ $# -ge 1 ] || usage
ACTION="$1"; shift
PORT=""
DATA_DIR=""
CPUS=""
FSYNC=0
HEAP="1g"
CONTROLLER_PORT=""
EXTRA_CONFIG=()
while [ $# -gt 0 ]; do
    case "$1" in
        --port) PORT="$2"; shift 2 ;;
        --controller-port) CONTROLLER_PORT="$2"; shift 2 ;;
        --data-dir) DATA_DIR="$2"; shift 2 ;;
        --cpus) CPUS="$2"; shift 2 ;;
        --fsync) FSYNC=1; shift ;;
        --heap) HEAP="$2"; shift 2 ;;
        --config)
            [[ "$2" == *=* ]] || die "--config needs KEY=VALUE, got $2"
            EXTRA_CONFIG+=("$2"); shift 2 ;;
        -h|--help) usage ;;
        *) die "unknown argument: $1" ;;
    esac
done
if [ "${ACTION}" != "fetch" ]; then
    [ -n "${DATA_DIR}" ] || die "--data-dir is required"
    mkdir -p "${DATA_DIR}"
    DATA_DIR="$(cd "${DATA_DIR}" && pwd)"
fi
PID_FILE="${DATA_DIR}/kafka.pid"
PORT_FILE="${DATA_DIR}/kafka.port"

# Sends ApiVersions v0 to 127.0.0.1:$1 and succeeds if a well-formed answer with error_code 0 comes back.
api_versions_ok() {
    python3 - "$1" <<'PY'
import socket, struct, sys
port = int(sys.argv[1])
try:
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        client_id = b"kafka.sh"
        # request header v1: api_key INT16, api_version INT16, correlation_id INT32, client_id STRING
        body = struct.pack(">hhih", 18, 0, 1, len(client_id)) + client_id
        s.sendall(struct.pack(">i", len(body)) + body)
        buf = b""
        while len(buf) < 4:
            chunk = s.recv(4 - len(buf))
            if not chunk:
                sys.exit(1)
            buf += chunk
        (size,) = struct.unpack(">i", buf)
        while len(buf) < 4 + size:
            chunk = s.recv(4 + size - len(buf))
            if not chunk:
                sys.exit(1)
            buf += chunk
        correlation_id, error_code = struct.unpack(">ih", buf[4:10])
        sys.exit(0 if correlation_id == 1 and error_code == 0 else 1)
except OSError:
    sys.exit(1)
PY
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

running_pid() {
    [ -f "${PID_FILE}" ] || return 1
    local pid
    pid="$(cat "${PID_FILE}")"
    kill -0 "${pid}" 2>/dev/null || return 1
    echo "${pid}"
}

fetch_jars() {
    if [ ! -f "${LIB_DIR}/kafka_2.13-4.4.0.jar" ]; then
        command -v mvn >/dev/null 2>&1 || die "mvn not found (apt-get install maven)"
        echo "kafka.sh: fetching Apache Kafka jars with Maven into ${LIB_DIR}" >&2
        mvn -q -B -f "${HERE}/pom.xml" dependency:copy-dependencies >&2
    fi
}

write_properties() {
    local props="${DATA_DIR}/server.properties"
    cat > "${props}" <<PROPS
# Written by bench/reference/kafka.sh: single-node KRaft, combined broker + controller, loopback only.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:${CONTROLLER_PORT}
listeners=PLAINTEXT://127.0.0.1:${PORT},CONTROLLER://127.0.0.1:${CONTROLLER_PORT}
advertised.listeners=PLAINTEXT://127.0.0.1:${PORT}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=${DATA_DIR}/logs
metadata.log.dir=${DATA_DIR}/metadata
num.partitions=1
default.replication.factor=1
auto.create.topics.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
# 100 MiB requests, as ringbroker's default frame limit.
socket.request.max.bytes=104857600
PROPS
    if [ "${FSYNC}" = "1" ]; then
        # fsync before acknowledging: the "durable" level of the side-by-side benchmark.
        echo "log.flush.interval.messages=1" >> "${props}"
    fi
    if [ "${#EXTRA_CONFIG[@]}" -gt 0 ]; then
        # java.util.Properties keeps the last value of a repeated key, so these override the lines above.
        echo "# --config" >> "${props}"
        printf '%s\n' "${EXTRA_CONFIG[@]}" >> "${props}"
    fi
    echo "${props}"
}

start() {
    [ -n "${PORT}" ] || die "--port is required for start"
    if pid="$(running_pid)"; then
        die "already running (pid ${pid}) for ${DATA_DIR}"
    fi
    command -v java >/dev/null 2>&1 || die "java not found (apt-get install openjdk-17-jre-headless)"
    fetch_jars
    [ -n "${CONTROLLER_PORT}" ] || CONTROLLER_PORT="$(free_port)"
    local props
    props="$(write_properties)"
    local cp="${LIB_DIR}/*"
    if [ ! -f "${DATA_DIR}/metadata/meta.properties" ]; then
        local cluster_id
        cluster_id="$(java -cp "${cp}" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)"
        java -Dlog4j2.configurationFile="${HERE}/log4j2.xml" -Dkafka.logs.dir="${DATA_DIR}" -cp "${cp}" \
            kafka.tools.StorageTool format -t "${cluster_id}" -c "${props}" >"${DATA_DIR}/format.out" 2>&1 \
            || { cat "${DATA_DIR}/format.out" >&2; die "storage format failed"; }
    fi
    local pin=()
    if [ -n "${CPUS}" ]; then
        command -v taskset >/dev/null 2>&1 || die "taskset not found (apt-get install util-linux)"
        pin=(taskset -c "${CPUS}")
    fi
    # JVM flags: Kafka's kafka-server-start.sh / kafka-run-class.sh defaults, with the heap fixed at ${HEAP}.
    setsid nohup "${pin[@]}" java -Xms"${HEAP}" -Xmx"${HEAP}" \
        -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
        -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true \
        -Dlog4j2.configurationFile="${HERE}/log4j2.xml" -Dkafka.logs.dir="${DATA_DIR}" \
        -cp "${cp}" kafka.Kafka "${props}" >"${DATA_DIR}/kafka.out" 2>&1 < /dev/null &
    local pid=$!
    echo "${pid}" > "${PID_FILE}"
    echo "${PORT}" > "${PORT_FILE}"
    local deadline=$(( $(date +%s) + START_TIMEOUT_SECONDS ))
    until api_versions_ok "${PORT}"; do
        if ! kill -0 "${pid}" 2>/dev/null; then
            tail -n 50 "${DATA_DIR}/kafka.out" "${DATA_DIR}/server.log" >&2 2>/dev/null || true
            die "kafka exited during start-up"
        fi
        if [ "$(date +%s)" -ge "${deadline}" ]; then
            tail -n 50 "${DATA_DIR}/kafka.out" "${DATA_DIR}/server.log" >&2 2>/dev/null || true
            die "kafka did not answer ApiVersions on port ${PORT} within ${START_TIMEOUT_SECONDS} s"
        fi
        sleep 0.5
    done
    echo "kafka.sh: Apache Kafka 4.4.0 ready on 127.0.0.1:${PORT} (pid ${pid}, data ${DATA_DIR})"
}

stop() {
    local pid
    if ! pid="$(running_pid)"; then
        echo "kafka.sh: not running (${DATA_DIR})"
        rm -f "${PID_FILE}"
        return 0
    fi
    kill -TERM "${pid}"
    local deadline=$(( $(date +%s) + STOP_TIMEOUT_SECONDS ))
    while kill -0 "${pid}" 2>/dev/null; do
        if [ "$(date +%s)" -ge "${deadline}" ]; then
            echo "kafka.sh: no exit ${STOP_TIMEOUT_SECONDS} s after SIGTERM, sending SIGKILL" >&2
            kill -KILL "${pid}" 2>/dev/null || true
            break
        fi
        sleep 0.5
    done
    rm -f "${PID_FILE}"
    echo "kafka.sh: stopped (pid ${pid})"
}

status() {
    local pid port
    if ! pid="$(running_pid)"; then
        echo "kafka.sh: not running (${DATA_DIR})"
        return 1
    fi
    port="${PORT:-$(cat "${PORT_FILE}" 2>/dev/null || true)}"
    if [ -n "${port}" ] && api_versions_ok "${port}"; then
        echo "kafka.sh: running (pid ${pid}), answering on 127.0.0.1:${port}"
    else
        echo "kafka.sh: running (pid ${pid}) but not answering ApiVersions on port ${port:-?}"
        return 1
    fi
}

case "${ACTION}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    fetch) fetch_jars ;;
    *) usage ;;
esac
