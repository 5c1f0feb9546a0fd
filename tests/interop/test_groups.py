"""Issue 6: consumer groups. Several confluent-kafka consumers (separate processes, so one can be SIGKILLed
without a LeaveGroup) share a 6-partition topic: two partitions each, every record consumed once with commits
after processing; a killed member's partitions move to the others within its session timeout and resume from
its last commit; a clean close() rebalances at once; commits survive a broker restart; kcat's balanced consumer
(`kcat -G`) reads everything and two of them split the partitions; `ringbroker groups describe` reports the
members, assignment and lag the consumers see.

The consumer processes run CONSUMER_SCRIPT: they print one JSON event per line on stdout (assign / revoke /
commit, stamped with time.monotonic(), which is system-wide on Linux so the test can compare it with its own
clock) and append every processed record as "partition offset" to a file BEFORE committing it, so after a
SIGKILL the file holds everything the victim processed, committed or not.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
from confluent_kafka import TopicPartition

import clients
from conftest import BROKER_BIN

PARTITIONS = 6
# Issue 6 asks for 300,000 records; test 1 takes ~6 s with them (release binary, 2 loaded cores).
RECORDS = 300_000
# Records for the kill test: the victim must be killed mid-stream, so its consumers are throttled
# (PROCESS_DELAY_S per batch); 300,000 throttled records would take minutes, so 60,000.
KILL_RECORDS = 60_000
# Small records for the tests that are about membership rather than volume.
SMALL_RECORDS = 3_000
SESSION_MS = 6_000
HEARTBEAT_MS = 1_000
# JoinGroup's rebalance timeout is max.poll.interval.ms: keep it small so a stuck rebalance fails fast.
MAX_POLL_MS = 20_000
SESSION_S = SESSION_MS / 1000
# Slack on top of the session timeout for the survivors to notice (one heartbeat) and rejoin/sync on a
# loaded 2-core machine.
REJOIN_SLACK_S = 4.0
# Upper bound for a group to become stable / for consumers to drain a topic.
STABLE_TIMEOUT_S = 30.0
DRAIN_TIMEOUT_S = 90.0
# Messages per consume() call in the consumer processes (one commit per batch).
BATCH = 1_000
# Seconds the kill test's consumers "process" each batch, so the kill lands mid-stream.
PROCESS_DELAY_S = 0.05
KILL_BATCH = 200

GROUP_TIMEOUTS = {
    "session.timeout.ms": SESSION_MS,
    "heartbeat.interval.ms": HEARTBEAT_MS,
    "max.poll.interval.ms": MAX_POLL_MS,
}

CONSUMER_SCRIPT = r"""
import json, signal, sys, time
from confluent_kafka import Consumer, KafkaException, TopicPartition

bootstrap, group, topic, out_path, batch, delay, config_json = sys.argv[1:8]
batch, delay = int(batch), float(delay)
stop = False

def on_term(*_):
    global stop
    stop = True

signal.signal(signal.SIGTERM, on_term)

def emit(**event):
    event["t"] = time.monotonic()
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()

config = {
    "bootstrap.servers": bootstrap,
    "group.id": group,
    "enable.auto.commit": False,
    "auto.offset.reset": "earliest",
    "socket.timeout.ms": 10000,
}
config.update(json.loads(config_json))
c = Consumer(config)

def on_assign(consumer, parts):
    emit(ev="assign", parts=sorted(p.partition for p in parts), member=consumer.memberid())

def on_revoke(consumer, parts):
    emit(ev="revoke", parts=sorted(p.partition for p in parts))

c.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke)
out = open(out_path, "a")
first = {}
while not stop:
    msgs = c.consume(num_messages=batch, timeout=0.2)
    if not msgs:
        continue
    upto = {}
    for m in msgs:
        if m.error() is not None:
            emit(ev="error", error=str(m.error()))
            continue
        p, o = m.partition(), m.offset()
        if p not in first:
            first[p] = o
            emit(ev="first", partition=p, offset=o)
        out.write("%d %d\n" % (p, o))
        upto[p] = o + 1
    out.flush()
    if delay:
        time.sleep(delay)
    if not upto:
        continue
    try:
        c.commit(offsets=[TopicPartition(topic, p, o) for p, o in upto.items()], asynchronous=False)
        emit(ev="commit", offsets={str(p): o for p, o in upto.items()})
    except KafkaException as e:
        emit(ev="commit_error", error=str(e))
emit(ev="closing")
c.close()
emit(ev="closed")
"""


class ConsumerProc:
    """One consumer process running CONSUMER_SCRIPT; its events are read by a background thread."""

    def __init__(self, tmp: Path, name: str, bootstrap: str, group: str, topic: str, batch: int = BATCH,
                 delay: float = 0.0, **config):
        self.name = name
        self.out_path = tmp / f"{name}.records"
        self.out_path.touch()
        cfg = {**GROUP_TIMEOUTS, **config}
        self.proc = subprocess.Popen(
            [sys.executable, "-c", CONSUMER_SCRIPT, bootstrap, group, topic, str(self.out_path), str(batch),
             str(delay), json.dumps(cfg)],
            stdout=subprocess.PIPE,
            stderr=open(tmp / f"{name}.stderr", "wb"),
            stdin=subprocess.DEVNULL,
            text=True,
        )
        self.events: list[dict] = []
        self.lock = threading.Lock()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            with self.lock:
                self.events.append(json.loads(line))

    def snapshot(self) -> list[dict]:
        with self.lock:
            return list(self.events)

    def assignment(self) -> list[int] | None:
        """The partitions of the last assign event, [] after a revoke, None before any assignment."""
        current = None
        for e in self.snapshot():
            if e["ev"] == "assign":
                current = e["parts"]
            elif e["ev"] == "revoke":
                current = []
        return current

    def last_assign(self) -> dict | None:
        assigns = [e for e in self.snapshot() if e["ev"] == "assign"]
        return assigns[-1] if assigns else None

    def committed(self) -> dict[int, int]:
        """The latest committed offset per partition this process reported."""
        out: dict[int, int] = {}
        for e in self.snapshot():
            if e["ev"] == "commit":
                for p, o in e["offsets"].items():
                    out[int(p)] = o
        return out

    def records(self) -> list[tuple[int, int]]:
        text = self.out_path.read_text()
        return [tuple(map(int, line.split())) for line in text.splitlines() if line.count(" ") == 1]

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM: the script leaves the loop and close()s (LeaveGroup)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"consumer {self.name} did not close within {timeout} s")
        self.reader.join(timeout=5)

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.reader.join(timeout=5)


def group_name() -> str:
    return f"g-{uuid.uuid4().hex[:10]}"


def wait_until(cond, timeout: float, what, poll: float = 0.1):
    """Polls cond() until it returns something truthy; `what` (a string, or a callable giving one at the
    time of failure, so it can show the state then) names the awaited condition."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout} s waiting for {what() if callable(what) else what}")


def wait_split(consumers: list[ConsumerProc], per_consumer: int, timeout: float = STABLE_TIMEOUT_S):
    """Until every consumer's current assignment has per_consumer partitions and together they cover all."""

    def stable():
        parts = [c.assignment() for c in consumers]
        if any(p is None or len(p) != per_consumer for p in parts):
            return None
        flat = [x for p in parts for x in p]
        return parts if sorted(flat) == list(range(PARTITIONS)) else None

    return wait_until(stable, timeout, lambda: f"each of {len(consumers)} consumers to own {per_consumer} partitions "
                                       f"(got {[c.assignment() for c in consumers]})")


def produce_n(bootstrap: str, topic: str, n: int, start: int = 0) -> list[clients.Delivered]:
    """Keyed records, so murmur2 spreads them over every partition (key-less records go through the sticky
    partitioner, which can leave a partition empty and a consumer with nothing to commit there)."""
    p = clients.producer(bootstrap)
    return clients.produce_all(p, topic, ((b"key-%d" % i, b"rec-%d" % i) for i in range(start, start + n)))


def stop_all(consumers: list[ConsumerProc]) -> None:
    for c in consumers:
        if c.proc.poll() is None:
            c.proc.send_signal(signal.SIGTERM)
    for c in consumers:
        c.stop()


def ringbroker_cli() -> str:
    if BROKER_BIN:
        return BROKER_BIN
    pytest.skip("`ringbroker groups describe` needs RINGBROKER_BIN")


def describe(bootstrap: str, group: str) -> dict:
    proc = subprocess.run(
        [ringbroker_cli(), "groups", "describe", "--bootstrap-server", bootstrap, "--group", group,
         "--output", "json"],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, f"groups describe exited {proc.returncode}: {proc.stderr}"
    return json.loads(proc.stdout)


SHARDS = pytest.mark.parametrize("broker", [1, 2], indirect=True, ids=["shards1", "shards2"])


@SHARDS
@pytest.mark.timeout(150)
def test_three_consumers_two_partitions_each_exactly_once(broker, topic_name, tmp_path):
    clients.create_topic(broker.bootstrap, topic_name, PARTITIONS)
    group = group_name()
    consumers = [ConsumerProc(tmp_path, f"c{i}", broker.bootstrap, group, topic_name) for i in range(3)]
    try:
        split = wait_split(consumers, 2)
        delivered = produce_n(broker.bootstrap, topic_name, RECORDS)
        produced = {(d.partition, d.offset) for d in delivered}
        assert len(produced) == RECORDS
        high = Counter(d.partition for d in delivered)

        def all_committed():
            got: dict[int, int] = {}
            for c in consumers:
                got.update(c.committed())
            return all(got.get(p, 0) == high[p] for p in range(PARTITIONS))

        wait_until(all_committed, DRAIN_TIMEOUT_S, "commits up to the end of every partition", poll=0.5)
        # The assignment did not move while consuming (no spurious rebalance).
        assert [c.assignment() for c in consumers] == split
    finally:
        stop_all(consumers)
    per_consumer = [c.records() for c in consumers]
    for c, recs, parts in zip(consumers, per_consumer, split):
        assert {p for p, _ in recs} <= set(parts), f"{c.name} read partitions outside its assignment {parts}"
    counts = Counter(r for recs in per_consumer for r in recs)
    dups = {r: n for r, n in counts.items() if n > 1}
    assert not dups, f"{len(dups)} records consumed more than once, e.g. {list(dups.items())[:5]}"
    assert set(counts) == produced, f"missing {len(produced - set(counts))}, unexpected {len(set(counts) - produced)}"


@SHARDS
@pytest.mark.timeout(150)
def test_killed_consumer_partitions_move_within_session_timeout(broker, topic_name, tmp_path):
    clients.create_topic(broker.bootstrap, topic_name, PARTITIONS)
    group = group_name()
    consumers = [
        ConsumerProc(tmp_path, f"c{i}", broker.bootstrap, group, topic_name, batch=KILL_BATCH, delay=PROCESS_DELAY_S)
        for i in range(3)
    ]
    try:
        split = wait_split(consumers, 2)
        delivered = produce_n(broker.bootstrap, topic_name, KILL_RECORDS)
        produced = {(d.partition, d.offset) for d in delivered}
        high = Counter(d.partition for d in delivered)
        victim, survivors = consumers[0], consumers[1:]
        victim_parts = split[0]
        # Let the victim process and commit a few batches, then kill it (no LeaveGroup).
        wait_until(lambda: len(victim.committed()) == 2 and sum(victim.committed().values()) >= 4 * KILL_BATCH,
                   STABLE_TIMEOUT_S, "the victim to commit a few batches")
        victim.kill9()
        killed_at = time.monotonic()
        victim_committed = victim.committed()
        victim_records = victim.records()
        assert sum(high[p] for p in victim_parts) > len(victim_records), (
            "the victim drained its partitions before the kill: raise KILL_RECORDS or PROCESS_DELAY_S"
        )

        def taken_over():
            parts = [c.assignment() for c in survivors]
            if any(p is None for p in parts) or sorted(x for p in parts for x in p) != list(range(PARTITIONS)):
                return None
            return max(c.last_assign()["t"] for c in survivors)

        assigned_at = wait_until(taken_over, SESSION_S + 30, "the survivors to own all 6 partitions")
        takeover_s = assigned_at - killed_at
        assert takeover_s < SESSION_S + REJOIN_SLACK_S, (
            f"survivors owned all partitions {takeover_s:.2f} s after the kill (session timeout {SESSION_S} s)"
        )

        def all_committed():
            got: dict[int, int] = {}
            for c in survivors:
                got.update(c.committed())
            return all(got.get(p, 0) == high[p] for p in range(PARTITIONS))

        wait_until(all_committed, DRAIN_TIMEOUT_S, "the survivors to commit the end of every partition", poll=0.5)
    finally:
        stop_all(consumers)

    # The new owner of each of the victim's partitions started where the victim's last commit left it: at its
    # last reported commit, or later if the victim was killed between a commit and its report, never past
    # what it processed.
    victim_max = {}
    for p, o in victim_records:
        victim_max[p] = max(victim_max.get(p, -1), o)
    resumed = {}
    for c in survivors:
        for e in c.snapshot():
            if e["ev"] == "first" and e["partition"] in victim_parts and e["t"] > killed_at:
                resumed.setdefault(e["partition"], e["offset"])
    # "first" is per process lifetime, so a survivor that owned none of victim_parts before reports it now.
    for p in victim_parts:
        assert p in resumed, f"no survivor reported reading partition {p} after the kill: {resumed}"
        lo, hi = victim_committed.get(p, 0), victim_max.get(p, -1) + 1
        assert lo <= resumed[p] <= hi, (
            f"partition {p} resumed at {resumed[p]}, expected within [{lo}, {hi}] (last commit, end of processed)"
        )

    all_records = victim_records + [r for c in survivors for r in c.records()]
    counts = Counter(all_records)
    assert set(counts) >= produced, f"{len(produced - set(counts))} produced records never consumed"
    dups = [r for r, n in counts.items() if n > 1]
    # Duplicates only in the window the victim processed but had not committed.
    for p, o in dups:
        assert p in victim_parts and victim_committed.get(p, 0) <= o <= victim_max.get(p, -1), (
            f"duplicate ({p}, {o}) outside the victim's uncommitted window"
        )
    print(f"\ntakeover {takeover_s:.2f} s after SIGKILL; {len(dups)} duplicates from the uncommitted window; "
          f"victim processed {len(victim_records)} records")


@SHARDS
@pytest.mark.timeout(90)
def test_clean_leave_rebalances_immediately(broker, topic_name, tmp_path):
    clients.create_topic(broker.bootstrap, topic_name, PARTITIONS)
    group = group_name()
    a = ConsumerProc(tmp_path, "a", broker.bootstrap, group, topic_name)
    b = ConsumerProc(tmp_path, "b", broker.bootstrap, group, topic_name)
    try:
        wait_split([a, b], 3)
        left_at = time.monotonic()
        a.stop()

        def b_owns_all():
            last = b.last_assign()
            if b.assignment() == list(range(PARTITIONS)) and last["t"] > left_at:
                return last["t"]
            return None

        got_all = wait_until(b_owns_all, SESSION_S + 30, "the remaining consumer to own all partitions")
        elapsed = got_all - left_at
        assert elapsed < SESSION_S, (
            f"remaining consumer got all partitions {elapsed:.2f} s after close(); a LeaveGroup should rebalance "
            f"at once, not after the {SESSION_S} s session timeout"
        )
        print(f"\nrebalance after close(): {elapsed:.2f} s")
    finally:
        stop_all([a, b])


@SHARDS
@pytest.mark.timeout(120)
def test_committed_offsets_survive_restart(broker, topic_name):
    if not broker.managed:
        pytest.skip("needs a broker this test can restart")
    clients.create_topic(broker.bootstrap, topic_name, PARTITIONS)
    delivered = produce_n(broker.bootstrap, topic_name, SMALL_RECORDS)
    high = Counter(d.partition for d in delivered)
    group = group_name()
    # Consume about half of the records, committing what was processed.
    c = clients.consumer(broker.bootstrap, **{"group.id": group, **GROUP_TIMEOUTS})
    committed: dict[int, int] = {}
    try:
        c.subscribe([topic_name])
        seen = 0
        deadline = time.monotonic() + STABLE_TIMEOUT_S
        while seen < SMALL_RECORDS // 2:
            assert time.monotonic() < deadline, f"consumed only {seen} records"
            msgs = c.consume(num_messages=100, timeout=0.5)
            upto = {}
            for m in msgs:
                assert m.error() is None, m.error()
                upto[m.partition()] = m.offset() + 1
            if upto:
                c.commit(offsets=[TopicPartition(topic_name, p, o) for p, o in upto.items()], asynchronous=False)
                committed.update(upto)
                seen += len(msgs)
    finally:
        c.close()
    assert any(0 < committed.get(p, 0) < high[p] for p in range(PARTITIONS)), (committed, high)

    broker.restart()

    c = clients.consumer(broker.bootstrap, **{"group.id": group, **GROUP_TIMEOUTS})
    try:
        fetched = c.committed([TopicPartition(topic_name, p) for p in range(PARTITIONS)], timeout=30)
        got = {tp.partition: tp.offset for tp in fetched if tp.offset >= 0}
        assert got == committed, f"committed offsets after restart {got}, before {committed}"
        c.subscribe([topic_name])
        first: dict[int, int] = {}
        expect = {p for p in range(PARTITIONS) if committed.get(p, 0) < high[p]}
        deadline = time.monotonic() + STABLE_TIMEOUT_S
        while set(first) != expect:
            assert time.monotonic() < deadline, f"first offsets {first}, expected partitions {expect}"
            for m in c.consume(num_messages=1000, timeout=0.5):
                assert m.error() is None, m.error()
                first.setdefault(m.partition(), m.offset())
        for p in expect:
            assert first[p] == committed.get(p, 0), (
                f"partition {p}: resumed at {first[p]}, committed {committed.get(p)}"
            )
    finally:
        c.close()


KCAT_ASSIGNED = re.compile(r"assigned:(.*)")


def kcat_group(bootstrap: str, group: str, topic: str, *extra: str) -> list[str]:
    return ["kcat", "-u", "-b", bootstrap, "-G", group, "-o", "beginning", "-f", "%p %o\\n",
            "-X", f"session.timeout.ms={SESSION_MS}", "-X", f"heartbeat.interval.ms={HEARTBEAT_MS}", *extra, topic]


@SHARDS
@pytest.mark.timeout(120)
def test_kcat_balanced_consumer_reads_every_record_once(broker, topic_name):
    clients.create_topic(broker.bootstrap, topic_name, PARTITIONS)
    delivered = produce_n(broker.bootstrap, topic_name, SMALL_RECORDS)
    produced = {(d.partition, d.offset) for d in delivered}
    proc = subprocess.run(kcat_group(broker.bootstrap, group_name(), topic_name, "-e"),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"kcat -G exited {proc.returncode}: {proc.stderr[-2000:]}"
    got = Counter(tuple(map(int, line.split())) for line in proc.stdout.splitlines())
    dups = {r: n for r, n in got.items() if n > 1}
    assert not dups, f"{len(dups)} records read more than once"
    assert set(got) == produced, f"missing {len(produced - set(got))}, unexpected {len(set(got) - produced)}"


@SHARDS
@pytest.mark.timeout(120)
def test_two_kcat_balanced_consumers_split_partitions(broker, topic_name, tmp_path):
    clients.create_topic(broker.bootstrap, topic_name, PARTITIONS)
    group = group_name()
    procs, outs, errs = [], [], []
    for i in range(2):
        out, err = tmp_path / f"kcat{i}.out", tmp_path / f"kcat{i}.err"
        outs.append(out)
        errs.append(err)
        procs.append(subprocess.Popen(kcat_group(broker.bootstrap, group, topic_name), stdout=open(out, "wb"),
                                      stderr=open(err, "wb"), stdin=subprocess.DEVNULL))

    def assignment(err: Path) -> list[int] | None:
        lines = [m.group(1) for m in KCAT_ASSIGNED.finditer(err.read_text(errors="replace"))]
        return sorted(int(x) for x in re.findall(r"\[(\d+)\]", lines[-1])) if lines else None

    try:
        def split():
            parts = [assignment(e) for e in errs]
            if any(p is None or len(p) != 3 for p in parts) or sorted(parts[0] + parts[1]) != list(range(PARTITIONS)):
                return None
            return parts

        parts = wait_until(split, STABLE_TIMEOUT_S, lambda: "two kcat -G consumers to split 6 partitions 3+3 "
                           f"(stderr: {[e.read_text(errors='replace')[-500:] for e in errs]})")
        delivered = produce_n(broker.bootstrap, topic_name, SMALL_RECORDS)
        produced = {(d.partition, d.offset) for d in delivered}

        def read_all():
            recs = [[tuple(map(int, l.split())) for l in o.read_text().splitlines() if l.count(" ") == 1] for o in outs]
            return recs if sum(len(r) for r in recs) >= len(produced) else None

        recs = wait_until(read_all, DRAIN_TIMEOUT_S, "the two kcat consumers to read every record", poll=0.5)
        assert [assignment(e) for e in errs] == parts, "assignment moved while consuming"
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    for r, mine in zip(recs, parts):
        assert {p for p, _ in r} <= set(mine), f"a kcat consumer read partitions outside {mine}"
    counts = Counter(x for r in recs for x in r)
    assert not [x for x, n in counts.items() if n > 1], "records read more than once"
    assert set(counts) == produced


@SHARDS
@pytest.mark.timeout(120)
def test_groups_describe_members_assignment_lag(broker, topic_name, tmp_path):
    clients.create_topic(broker.bootstrap, topic_name, PARTITIONS)
    group = group_name()
    consumers = [ConsumerProc(tmp_path, f"c{i}", broker.bootstrap, group, topic_name) for i in range(2)]
    try:
        split = wait_split(consumers, 3)
        delivered = produce_n(broker.bootstrap, topic_name, SMALL_RECORDS)
        high = Counter(d.partition for d in delivered)

        def all_committed():
            got: dict[int, int] = {}
            for c in consumers:
                got.update(c.committed())
            return all(got.get(p, 0) == high[p] for p in range(PARTITIONS))

        wait_until(all_committed, DRAIN_TIMEOUT_S, "commits up to the end of every partition", poll=0.3)
        d = describe(broker.bootstrap, group)
        assert d["group"] == group and d["state"] == "Stable", d
        members = {c.last_assign()["member"]: parts for c, parts in zip(consumers, split)}
        assert sorted(m["member_id"] for m in d["members"]) == sorted(members), (d["members"], members)
        rows = {r["partition"]: r for r in d["partitions"] if r["topic"] == topic_name}
        assert sorted(rows) == list(range(PARTITIONS)), d["partitions"]
        for p, r in rows.items():
            owner = [m for m, parts in members.items() if p in parts]
            assert r["member_id"] == owner[0], f"partition {p}: describe says {r['member_id']}, consumers say {owner}"
            assert r["current_offset"] == high[p] == r["log_end_offset"] and r["lag"] == 0, r
    finally:
        stop_all(consumers)

    more = 1_234
    produce_n(broker.bootstrap, topic_name, more, start=SMALL_RECORDS)
    c = clients.consumer(broker.bootstrap)
    try:
        marks = clients.watermarks(c, topic_name, PARTITIONS)
    finally:
        c.close()
    d = describe(broker.bootstrap, group)
    assert d["state"] == "Empty" and d["members"] == [], d
    rows = {r["partition"]: r for r in d["partitions"] if r["topic"] == topic_name}
    for p, r in rows.items():
        assert r["current_offset"] == high[p], r
        assert r["log_end_offset"] == marks[p][1], (r, marks[p])
        assert r["lag"] == marks[p][1] - high[p], r
    assert sum(r["lag"] for r in rows.values()) == more
