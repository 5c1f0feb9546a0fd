#!/usr/bin/env python3
"""Issue 21 benchmark: a member joins a consuming group; how long until the assignment is stable again, and the
longest pause any partition sees, with the classic protocol (the Java client's default assignors) and the
consumer protocol (KIP-848, server-side `uniform`), against ringbroker or Apache Kafka 4.4.

Each run: a fresh broker (defaults: ringbroker's profile, or bench/reference/kafka.sh), a topic of PARTITIONS
partitions fed by a steady keyed producer, MEMBERS kafka-clients 4.4 consumers in one JVM (tests/java
GroupMembers) that settle to an even split; then one more member joins. Printed as one JSON line per run:
  stable_s      join command -> every member's assignment even, complete and disjoint again (members report
                consumer.assignment() every second, so this is exact to about 1 s)
  moved         partitions whose owner changed
  max_gap_s     longest time any partition went without a processed batch, from the join to stable + 2 s
  kept_gap_s    the same over the partitions that kept their owner
Usage (from the repository root, after `cargo build --release` and `bash bench/reference/kafka.sh fetch`):
  .venv/bin/python bench/scripts/group_rebalance.py --broker ringbroker --protocol consumer --runs 3
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "interop"))

import clients  # noqa: E402
from conftest import BrokerProcess, KafkaReferenceProcess  # noqa: E402
from test_consumer_protocol import Members, longest_gaps  # noqa: E402
from test_group_restart import JavaGroup, SteadyProducer  # noqa: E402

LIB_DIR = REPO / "bench" / "reference" / "target" / "lib"
JAVA_SRC = REPO / "tests" / "java" / "src" / "main" / "java"
# Records per second: 25 per partition on 120 partitions, so a partition's natural gap (~40 ms plus the
# members' 100 ms polls) is far below the pauses being measured.
PRODUCE_RATE = 3_000
# Settle bound for one membership change (default heartbeat intervals: 3 s classic, 5 s consumer protocol).
SETTLE_TIMEOUT_S = 180.0


def compile_java(out: Path) -> str:
    sources = [str(p) for p in JAVA_SRC.rglob("*.java")]
    subprocess.run(["javac", "-d", str(out), "-cp", f"{LIB_DIR}/*", *sources], check=True)
    return f"{out}:{LIB_DIR}/*"


def start_broker(kind: str, tmp: Path):
    if kind == "kafka":
        broker = KafkaReferenceProcess(tmp / "kafka", 1)
    else:
        binary = str(REPO / "target" / "release" / "ringbroker")
        broker = BrokerProcess(binary, tmp / "data", 2, tmp)
    broker.start()
    return broker


def settle(members: Members, count: int, partitions: int) -> dict[int, tuple[str, int]]:
    """Until `count` live members own an even (floor/ceil), complete, disjoint split; returns the owners."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    since = time.monotonic()
    low, high = partitions // count, -(-partitions // count)
    while time.monotonic() < deadline:
        owners = members.owners(since)
        if owners is not None and len(owners) == count:
            flat = sorted(p for parts in owners.values() for p in parts)
            if flat == list(range(partitions)) and all(low <= len(p) <= high for p in owners.values()):
                return {p: m for m, parts in owners.items() for p in parts}
        time.sleep(0.2)
    raise SystemExit(f"no stable split of {partitions} over {count} members within {SETTLE_TIMEOUT_S} s")


def one_run(args, classpath: str) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="group-rebalance-"))
    broker = start_broker(args.broker, tmp)
    members = Members()
    producer = None
    try:
        topic = f"rebalance-{int(time.time())}"
        clients.create_topic(broker.bootstrap, topic, args.partitions)
        producer = SteadyProducer(broker.bootstrap, topic, rate=PRODUCE_RATE)
        config = [f"group.protocol={args.protocol}", "metadata.recovery.strategy=none"]
        members.jvms["main"] = JavaGroup(classpath, broker.bootstrap, topic, f"bench-{topic}", tmp / "main",
                                         *config, members=args.members)
        before = settle(members, args.members, args.partitions)
        time.sleep(3)
        joined_at = time.monotonic()
        members.jvms["main"].proc.stdin.write("add\n")
        members.jvms["main"].proc.stdin.flush()
        after = settle(members, args.members + 1, args.partitions)
        stable_s = time.monotonic() - joined_at
        time.sleep(2)
        until = time.monotonic()
        changed = moved_all(before, after, args.partitions)
        gaps = longest_gaps(members.records(), joined_at, until)
        kept = [p for p in range(args.partitions) if p not in changed]
        return {
            "broker": args.broker,
            "protocol": args.protocol,
            "members": args.members,
            "partitions": args.partitions,
            "stable_s": round(stable_s, 2),
            "moved": len(changed),
            "max_gap_s": round(max(gaps.get(p, until - joined_at) for p in range(args.partitions)), 2),
            "kept_gap_s": round(max((gaps.get(p, until - joined_at) for p in kept), default=0.0), 2),
        }
    finally:
        if producer is not None:
            producer.stopped.set()
        members.quit()
        broker.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def moved_all(before, after, partitions: int) -> list[int]:
    return [p for p in range(partitions) if before.get(p) != after.get(p)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--broker", choices=["ringbroker", "kafka"], default="ringbroker")
    parser.add_argument("--protocol", choices=["classic", "consumer"], default="consumer")
    parser.add_argument("--members", type=int, default=12)
    parser.add_argument("--partitions", type=int, default=120)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    classpath = compile_java(Path(tempfile.mkdtemp(prefix="group-rebalance-java-")))
    for _ in range(args.runs):
        print(json.dumps(one_run(args, classpath)), flush=True)


if __name__ == "__main__":
    main()
