"""Issue 21 part 2: the consumer group protocol (KIP-848) with the Java 4.4 client (`group.protocol=consumer`).

Members (tests/java GroupMembers; one JVM holds several, a second JVM holds a member the test can SIGKILL)
consume a 12-partition topic while a producer writes keyed records steadily. Three members get four
partitions each; a fourth joins, one leaves cleanly, one is killed: each time only the partitions that must
move do (three), the others keep consuming without a pause (the longest gap per partition is printed and
bounded), every record is consumed, per-partition order is kept within each member, and duplicates come
only from the killed member's uncommitted batch. Kafka's `kafka-consumer-groups --describe --members
--verbose` and `ringbroker groups describe` show the group; a broker restart (SIGTERM, then SIGKILL) changes
no member id, no epoch and fires no rebalance callback. A member asking for an unknown assignor fails with
UnsupportedAssignorException.

The broker runs with a short consumer session (`group_consumer_session_timeout_ms`) and heartbeat interval, so
a killed member is noticed in seconds; against Apache Kafka (INTEROP_BROKER=kafka) its 45 s default applies.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

import clients
import conftest
from conftest import BrokerProcess, _launch, _shutdown
from test_group_restart import JavaGroup, SteadyProducer, callbacks_of, restart_twice
from test_groups import group_name, wait_until
from test_java_client import GROUP_COMMAND, java_classpath, log_flags, run_ok  # noqa: F401 (fixture)

PARTITIONS = 12
# The broker's consumer-group session timeout and heartbeat interval here (Kafka's defaults: 45 s and 5 s).
SESSION_MS = 6_000
HEARTBEAT_MS = 500
BROKER_FLAGS = [
    "--set", f"group_consumer_session_timeout_ms={SESSION_MS}",
    "--set", f"group_consumer_heartbeat_interval_ms={HEARTBEAT_MS}",
]
# Apache Kafka's default session timeout (the reference broker runs with its defaults).
KAFKA_SESSION_MS = 45_000
# Every member's consumer settings: the new protocol, and no re-bootstrap when the broker restarts (see
# test_group_restart.py: a client-side rejoin trigger that has nothing to do with the coordinator).
CONSUMER_PROTOCOL = ["group.protocol=consumer", "metadata.recovery.strategy=none"]
# Upper bounds: a membership change settling (several heartbeats of every member), JVM start included.
SETTLE_TIMEOUT_S = 60.0
DRAIN_TIMEOUT_S = 90.0
# Longest pause a member may see on a partition it keeps while others join or leave. Records arrive every
# few ms per partition and members poll every 100 ms; this leaves room for a loaded 2-core machine, far below
# the multi-second stop-the-world pause of a classic eager rebalance.
KEPT_PARTITION_GAP_MAX_S = 2.0

SHARDS = pytest.mark.parametrize("broker", [1, 2], indirect=True, ids=["shards1", "shards2"])


@pytest.fixture
def broker(request, tmp_path):
    """conftest's broker with the short consumer-group timeouts (ringbroker only)."""
    shards = getattr(request, "param", 1)
    if conftest.EXTERNAL_BOOTSTRAP or conftest.REFERENCE_KAFKA or not conftest.BROKER_BIN:
        b = _launch(tmp_path, shards)
    else:
        b = BrokerProcess(conftest.BROKER_BIN, tmp_path / "data", shards, tmp_path, extra_args=BROKER_FLAGS)
        conftest._ACTIVE.append(b)
        b.start()
    yield b
    _shutdown(b)


def session_s() -> float:
    return (KAFKA_SESSION_MS if conftest.REFERENCE_KAFKA else SESSION_MS) / 1000


class Members:
    """Every JVM of the group by name; ownership from each live member's latest status (printed every
    second with `consumer.assignment()`)."""

    def __init__(self):
        self.jvms: dict[str, JavaGroup] = {}
        self.gone: set[tuple[str, int]] = set()

    def owners(self, since: float) -> dict[tuple[str, int], list[int]] | None:
        """(jvm, member) -> partitions, from statuses newer than `since` (time.monotonic()); None while a live
        member has not reported since then."""
        out = {}
        for name, jvm in self.jvms.items():
            started = {e["c"] for e in jvm.snapshot() if e["ev"] == "started"}
            latest = {c: e for c, e in jvm.latest("status").items()}
            for c in started:
                if (name, c) in self.gone:
                    continue
                status = latest.get(c)
                if status is None or status["t"] / 1e9 < since:
                    return None
                out[(name, c)] = status["parts"]
        return out

    def wait_split(self, count: int, per_member: int, what: str) -> dict[int, tuple[str, int]]:
        """Until `count` live members own `per_member` partitions each, together all of them, disjoint;
        returns partition -> owner."""
        since = time.monotonic()

        def split():
            owners = self.owners(since)
            if owners is None or len(owners) != count or any(len(p) != per_member for p in owners.values()):
                return None
            flat = sorted(p for parts in owners.values() for p in parts)
            if flat != list(range(PARTITIONS)):
                return None
            return {p: m for m, parts in owners.items() for p in parts}

        return wait_until(split, SETTLE_TIMEOUT_S, lambda: f"{what}: {count} members with {per_member} partitions "
                          f"each (now {self.owners(since)})", poll=0.5)

    def records(self) -> list[tuple[int, int, int, str]]:
        """(partition, offset, nanos, member) of every processed record."""
        out = []
        for name, jvm in self.jvms.items():
            for path in jvm.out_dir.glob("member-*.records"):
                member = f"{name}/{path.stem}"
                for line in path.read_text().splitlines():
                    parts = line.split()
                    if len(parts) == 3:
                        out.append((int(parts[0]), int(parts[1]), int(parts[2]), member))
        return out

    def quit(self) -> None:
        for jvm in self.jvms.values():
            jvm.quit()


def moved(before: dict[int, tuple[str, int]], after: dict[int, tuple[str, int]]) -> list[int]:
    return [p for p in range(PARTITIONS) if before.get(p) != after.get(p)]


def longest_gaps(records, since: float, until: float) -> dict[int, float]:
    """Per partition, the longest time between two consecutive processed batches within [since, until]
    (seconds, monotonic clock)."""
    times: dict[int, set[int]] = {}
    for partition, _, nanos, _ in records:
        if since * 1e9 <= nanos <= until * 1e9:
            times.setdefault(partition, set()).add(nanos)
    gaps = {}
    for partition, stamps in times.items():
        ordered = sorted(stamps)
        edges = [since * 1e9, *ordered, until * 1e9]
        gaps[partition] = max(b - a for a, b in zip(edges, edges[1:])) / 1e9
    return gaps


def check_kept_partitions_flowed(records, kept: list[int], since: float, until: float, step: str) -> float:
    gaps = longest_gaps(records, since, until)
    worst = max((gaps.get(p, until - since) for p in kept), default=0.0)
    print(f"\n{step}: longest gap on the {len(kept)} partitions that stayed put: {worst:.2f} s "
          f"(per partition: {', '.join(f'{p}:{gaps.get(p, until - since):.2f}' for p in kept)})")
    assert worst < KEPT_PARTITION_GAP_MAX_S, f"{step}: a kept partition paused {worst:.2f} s"
    return worst


def describe_members(classpath: str, bootstrap: str, group: str) -> list[list[str]]:
    out = run_ok(classpath, GROUP_COMMAND, "--bootstrap-server", bootstrap, "--describe", "--group", group,
                 "--members", "--verbose")
    return [line.split() for line in out.splitlines() if line.startswith(group + " ")]


@SHARDS
@pytest.mark.timeout(600)
def test_members_join_leave_and_die_while_records_flow(broker, topic_name, tmp_path, java_classpath):
    clients.create_topic(broker.bootstrap, topic_name, PARTITIONS)
    group = group_name()
    members = Members()
    producer = SteadyProducer(broker.bootstrap, topic_name)
    try:
        members.jvms["main"] = JavaGroup(java_classpath, broker.bootstrap, topic_name, group, tmp_path / "main",
                                         *CONSUMER_PROTOCOL)
        three = members.wait_split(3, 4, "start")

        rows = describe_members(java_classpath, broker.bootstrap, group)
        assert len(rows) == 3, rows
        # GROUP CONSUMER-ID HOST CLIENT-ID #PARTITIONS CURRENT-EPOCH CURRENT-ASSIGNMENT TARGET-EPOCH TARGET-ASSIGNMENT
        assert all(row[4] == "4" and row[6] == row[8] and row[6].startswith(topic_name + ":") for row in rows), rows
        if conftest.BROKER_BIN and not conftest.REFERENCE_KAFKA:
            described = json.loads(subprocess.run(
                [conftest.BROKER_BIN, "groups", "describe", "--bootstrap-server", broker.bootstrap, "--group", group,
                 "--output", "json"], capture_output=True, text=True, timeout=60, check=True).stdout)
            assert described["state"] == "Stable" and described["protocol_type"] == "consumer", described
            assert len(described["members"]) == 3, described
            assert all(r["member_id"] for r in described["partitions"] if r["topic"] == topic_name), described

        steps = []
        # One joins: each of the three gives up one partition, nothing else moves.
        at = time.monotonic()
        members.jvms["main"].proc.stdin.write("add\n")
        members.jvms["main"].proc.stdin.flush()
        four = members.wait_split(4, 3, "a member joined")
        assert len(moved(three, four)) == 3, f"join moved {moved(three, four)}"
        steps.append(("join", at, time.monotonic(), [p for p in range(PARTITIONS) if p not in moved(three, four)]))

        # One leaves cleanly: its three partitions go one to each of the others.
        at = time.monotonic()
        members.jvms["main"].proc.stdin.write("stop 1\n")
        members.jvms["main"].proc.stdin.flush()
        members.gone.add(("main", 1))
        three_again = members.wait_split(3, 4, "a member left")
        assert sorted(moved(four, three_again)) == sorted(p for p, m in four.items() if m == ("main", 1))
        steps.append(("leave", at, time.monotonic(), [p for p in range(PARTITIONS) if p not in moved(four, three_again)]))

        # One is killed (its own JVM, SIGKILL): its partitions move once the session timeout removes it.
        members.jvms["victim"] = JavaGroup(java_classpath, broker.bootstrap, topic_name, group, tmp_path / "victim",
                                           *CONSUMER_PROTOCOL, members=1)
        with_victim = members.wait_split(4, 3, "the victim joined")
        victim_parts = [p for p, m in with_victim.items() if m[0] == "victim"]
        time.sleep(2)  # let it process and commit a few batches
        members.jvms["victim"].proc.send_signal(signal.SIGKILL)
        members.jvms["victim"].proc.wait()
        members.gone.add(("victim", 0))
        killed_at = time.monotonic()
        after_kill = members.wait_split(3, 4, "the victim's partitions moved")
        took = time.monotonic() - killed_at
        assert sorted(moved(with_victim, after_kill)) == sorted(victim_parts)
        assert took < session_s() + 15, f"the killed member's partitions moved {took:.1f} s after the kill"
        steps.append(("kill", killed_at, time.monotonic(), [p for p in range(PARTITIONS) if p not in victim_parts]))
        print(f"\nkilled member's partitions {victim_parts} moved {took:.1f} s after SIGKILL "
              f"(session timeout {session_s():.0f} s)")

        produced = producer.stop()
        producer = None
        wait_until(lambda: {(p, o) for p, o, _, _ in members.records()} >= produced, DRAIN_TIMEOUT_S,
                   "every produced record to be consumed", poll=0.5)
        records = members.records()
        for step, since, until, kept in steps:
            check_kept_partitions_flowed(records, kept, since, until, step)
        errors = [e for jvm in members.jvms.values() for e in jvm.snapshot() if e["ev"] == "error"]
        assert not errors, errors
    finally:
        if producer is not None:
            producer.stopped.set()
        members.quit()

    records = members.records()
    by_member: dict[str, dict[int, list[int]]] = {}
    for partition, offset, _, member in records:
        by_member.setdefault(member, {}).setdefault(partition, []).append(offset)
    for member, partitions in by_member.items():
        for partition, offsets in partitions.items():
            assert offsets == sorted(offsets), f"{member} read partition {partition} out of order"
    counts = Counter((p, o) for p, o, _, _ in records)
    dups = sorted(r for r, n in counts.items() if n > 1)
    assert all(p in victim_parts for p, _ in dups), (
        f"records consumed twice outside the killed member's partitions: {[d for d in dups if d[0] not in victim_parts][:5]}"
    )
    print(f"\n{len(counts)} records consumed; {len(dups)} twice (the killed member's uncommitted batch)")


@SHARDS
@pytest.mark.timeout(420)
def test_consumer_protocol_group_survives_broker_restarts(broker, topic_name, tmp_path, java_classpath):
    if not broker.managed:
        pytest.skip("needs a broker this test can restart")
    clients.create_topic(broker.bootstrap, topic_name, PARTITIONS)
    group = group_name()
    members = Members()
    producer = SteadyProducer(broker.bootstrap, topic_name)
    try:
        members.jvms["main"] = JavaGroup(java_classpath, broker.bootstrap, topic_name, group, tmp_path / "main",
                                         *CONSUMER_PROTOCOL, "group.remote.assignor=range")
        members.wait_split(3, 4, "start")
        time.sleep(2)
        jvm = members.jvms["main"]
        identity = {c: (e["gen"], e["member"]) for c, e in jvm.latest("status").items()}
        settled = len(callbacks_of(jvm.snapshot()))
        state = run_ok(java_classpath, GROUP_COMMAND, "--bootstrap-server", broker.bootstrap, "--describe",
                       "--group", group, "--state")
        assert "range" in state and "Stable" in state, state
        restart_twice(broker, producer, lambda: len(jvm.records()), "consumer-protocol")
        after = {c: (e["gen"], e["member"]) for c, e in jvm.latest("status").items()}
        assert after == identity, f"member epoch or id changed across the restarts: {identity} -> {after}"
        late = callbacks_of(jvm.snapshot())[settled:]
        assert not late, f"rebalance callbacks fired across the restarts: {late}"
        produced = producer.stop()
        producer = None
        wait_until(lambda: set(jvm.records()) >= produced, DRAIN_TIMEOUT_S, "every record consumed", poll=0.5)
    finally:
        if producer is not None:
            producer.stopped.set()
        members.quit()
    counts = Counter(jvm.records())
    assert not [r for r, n in counts.items() if n > 1], "records consumed twice without any rebalance"


@pytest.mark.timeout(180)
def test_unknown_server_assignor_is_refused(broker, topic_name, tmp_path, java_classpath):
    clients.create_topic(broker.bootstrap, topic_name, 1)
    jvm = JavaGroup(java_classpath, broker.bootstrap, topic_name, group_name(), tmp_path / "bad",
                    *CONSUMER_PROTOCOL, "group.remote.assignor=nonesuch", members=1)
    try:
        error = wait_until(lambda: [e for e in jvm.snapshot() if e["ev"] == "error"], SETTLE_TIMEOUT_S,
                           "the member to fail")
        assert "UnsupportedAssignorException" in error[0]["error"], error
    finally:
        jvm.quit()


@pytest.mark.timeout(240)
def test_regex_subscription_follows_matching_topics(broker, tmp_path, java_classpath):
    """`subscribe(SubscriptionPattern)`: the broker matches the regex (RE2/J syntax) against topic names, and a
    topic created later that matches joins the subscription (within the regex refresh interval)."""
    prefix = f"regex-{group_name()}"
    for name, partitions in ((f"{prefix}-a", 2), (f"{prefix}-b", 2), (f"other-{prefix}", 2)):
        clients.create_topic(broker.bootstrap, name, partitions)
    jvm = JavaGroup(java_classpath, broker.bootstrap, f"{prefix}-a", group_name(), tmp_path / "regex",
                    *CONSUMER_PROTOCOL, f"subscription.pattern={prefix}-[ab]|{prefix}-c", members=1)

    def owned():
        status = jvm.latest("status").get(0)
        return set(status.get("tps", [])) if status else set()

    try:
        first = {f"{prefix}-{t}-{p}" for t in "ab" for p in range(2)}
        wait_until(lambda: owned() == first, SETTLE_TIMEOUT_S, lambda: f"the regex's topics (own {owned()})")
        clients.create_topic(broker.bootstrap, f"{prefix}-c", 3)
        both = first | {f"{prefix}-c-{p}" for p in range(3)}
        wait_until(lambda: owned() == both, SETTLE_TIMEOUT_S, lambda: f"the new matching topic (own {owned()})")
        errors = [e for e in jvm.snapshot() if e["ev"] == "error"]
        assert not errors, errors
    finally:
        jvm.quit()
