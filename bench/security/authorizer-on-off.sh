#!/usr/bin/env bash
# What the ACL authorizer costs on the produce path (issue 20): one ringbroker (1 shard, PLAINTEXT) started
# fresh for each run, with the authorizer off, then on with ACLS_OTHER ACLs for other principals plus the one
# that lets User:ANONYMOUS (the bench's principal on PLAINTEXT) do everything on topics `bench-*`, written into
# acls.json before start (the broker moves it into its metadata log at start; the run waits for that).
# `ringbroker-bench produce` sends small batches (many requests: the check is made per
# request and topic) to one partition; the runs alternate off/on ROUNDS times. Prints ringbroker-bench's
# summary per run.
#
#   bash bench/security/authorizer-on-off.sh [path/to/ringbroker] [path/to/ringbroker-bench]
#   ROUNDS=3 DURATION=8s BATCH_BYTES=16384 RECORD_BYTES=100 ACLS_OTHER=1000 bash bench/security/authorizer-on-off.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN="${1:-target/release/ringbroker}"
BENCH="${2:-target/release/ringbroker-bench}"
ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-8s}"
BATCH_BYTES="${BATCH_BYTES:-16384}"
RECORD_BYTES="${RECORD_BYTES:-100}"
ACLS_OTHER="${ACLS_OTHER:-1000}"
PORT="${PORT:-19650}"
for tool in "$BIN" "$BENCH"; do
    [ -x "$tool" ] || { echo "no binary at $tool (cargo build --release -p ringbroker-tools -p ringbroker-bench)" >&2; exit 1; }
done
WORK="$(mktemp -d)"
BROKER_PID=""
stop_broker() {
    if [ -n "$BROKER_PID" ] && kill -0 "$BROKER_PID" 2>/dev/null; then
        kill "$BROKER_PID"
        wait "$BROKER_PID" || true
    fi
    BROKER_PID=""
}
trap 'stop_broker; rm -rf "$WORK"' EXIT

# acls.json as the broker stores it: ACLS_OTHER topic ACLs of other users, and the bench's.
write_acls() {
    python3 - "$1" "$ACLS_OTHER" <<'PY'
import json, sys
path, others = sys.argv[1], int(sys.argv[2])
acl = lambda name, pattern, principal, op: {"resource_type": "TOPIC", "resource_name": name, "pattern_type": pattern,
    "principal": principal, "host": "*", "operation": op, "permission": "ALLOW"}
acls = [acl(f"team-{i}-", "PREFIXED", f"User:user{i}", "WRITE") for i in range(others)]
acls.append(acl("bench-", "PREFIXED", "User:ANONYMOUS", "ALL"))
json.dump({"version": 1, "acls": acls}, open(path, "w"))
PY
}

run() {
    local mode="$1" round="$2" data="$WORK/data-$1-$2" flags=()
    mkdir -p "$data"
    if [ "$mode" = on ]; then
        write_acls "$data/acls.json"
        flags=(--authorizer acl)
    fi
    taskset -c 0 "$BIN" serve --listen "127.0.0.1:$PORT" --data-dir "$data" --shards 1 --metrics-listen none \
        "${flags[@]}" > "$WORK/broker-$mode-$round.log" 2>&1 &
    BROKER_PID=$!
    for _ in $(seq 100); do grep -qs "ringbroker ready" "$WORK/broker-$mode-$round.log" && break; sleep 0.2; done
    grep -q "ringbroker ready" "$WORK/broker-$mode-$round.log" || { cat "$WORK/broker-$mode-$round.log"; exit 1; }
    if [ "$mode" = on ]; then
        for _ in $(seq 100); do [ -e "$data/acls.json.migrated" ] && break; sleep 0.2; done
        [ -e "$data/acls.json.migrated" ] || { cat "$WORK/broker-$mode-$round.log"; exit 1; }
    fi
    echo "== authorizer $mode, round $round, load $(cut -d' ' -f1-3 /proc/loadavg)"
    taskset -c 1 "$BENCH" produce --bootstrap-server "127.0.0.1:$PORT" --topic "bench-$mode-$round" --partitions 1 \
        --record-size "$RECORD_BYTES" --batch-size "$BATCH_BYTES" --acks 1 --duration "$DURATION" --warmup 2s \
        --cores 1 --broker-pid "$BROKER_PID"
    stop_broker
    rm -rf "$data"
}

for round in $(seq "$ROUNDS"); do
    if [ $((round % 2)) = 1 ]; then order="off on"; else order="on off"; fi
    for mode in $order; do run "$mode" "$round"; done
done
