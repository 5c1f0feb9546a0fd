#!/usr/bin/env bash
# The long form of the replication fault test (issue 18): three ringbroker nodes on network-namespace test hosts,
# a topic with 6 partitions, RF 3, min.insync.replicas=2, an idempotent acks=all producer and a reader running
# while ROUNDS faults are applied in turn (kill -9 of a leader, kill -9 of the active controller, SIGSTOP for 10 s,
# a network cut for 10 s). Prints per round the failover and ISR-recovery times, then the counts (acknowledged,
# found, lost, duplicated, read and later gone); fails on any loss.
#
#   bash bench/scripts/replication_faults.sh            # 100 rounds (~30 min)
#   ROUNDS=20 bash bench/scripts/replication_faults.sh
#
# Needs root (network namespaces), a release build (cargo build --release) and the test venv (.venv, made by
# scripts/test.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS="${ROUNDS:-100}"
BIN="${RINGBROKER_BIN:-$PWD/target/release/ringbroker}"
[ -x "$BIN" ] || { echo "no broker binary at $BIN: cargo build --release" >&2; exit 1; }
[ -x .venv/bin/pytest ] || { echo "no .venv: run scripts/test.sh once" >&2; exit 1; }
cd tests/interop
REPLICATION_FAULT_ROUNDS="$ROUNDS" RINGBROKER_BIN="$BIN" ../../.venv/bin/pytest -q -s -p no:cacheprovider \
  test_replication.py -k survive 2>&1 | grep -v '^%'
