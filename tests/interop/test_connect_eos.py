"""Issue 22: Kafka Connect 4.4 exactly-once source support (KIP-618) against the broker.

Two distributed workers with `exactly.once.source.support=enabled` (their leader writes the config topic in
transactions and every worker reads it read_committed; each source task writes its records and its source offsets
in one transaction with the transactional id `<group.id>-<connector>-<task>`; the leader fences a connector's
earlier task generations with Admin.fenceProducers). A FileStreamSource connector with `exactly.once.support=required`
and `transaction.boundary=interval` moves a file of numbered lines into a one-partition topic. While its task has a
transaction open (the topic's high watermark is above its last stable offset), the worker running it is killed
with SIGKILL; the other worker takes the task over, and its producer's InitProducerId fences the dead one and
aborts that transaction. At the end a read_committed consumer reads every line exactly once, in order, and nothing
of the killed worker's open transaction (those records are in the log, as a read_uncommitted reader shows, but
aborted). Then the connector is stopped, its source offsets are written back through the REST API (KIP-875: the
leader fences out its tasks' producers with Admin.fenceProducers first) and it is resumed: lines appended after
that arrive once too.

A second test kills both workers inside a transaction: with no successor to fence it, the coordinator aborts the
dead transaction at its `transaction.timeout.ms`, and read_committed shows the committed prefix of the file once,
in order, and nothing of that transaction.

Why `interval` rather than `poll`: the task's transactions then last long enough (TRANSACTION_INTERVAL_MS) that the
kill lands inside one, which the test checks (the last stable offset stays below the high watermark after the
kill, until the survivor fences the dead producer).

`CONNECT_EOS_LINES` sets the number of lines (default DEFAULT_LINES, issue 22's 100,000: the run takes under a
minute either way, the appending is paced to ~20 s whatever the count)."""

from __future__ import annotations

import os
import threading
import time
import uuid

import pytest
from confluent_kafka import OFFSET_BEGINNING, KafkaException, TopicPartition

import clients
from test_connect import (  # noqa: F401  (broker, connect_classpath and workers are fixtures used below)
    REASSIGN_TIMEOUT_S,
    RUNNING_TIMEOUT_S,
    broker,
    check_requests,
    check_worker_logs,
    connect_classpath,
    rest,
    rest_or_none,
    start_distributed_workers,
    status_all_running,
    wait_for,
    workers,
    write_lines,
)

DEFAULT_LINES = 100_000
LINES = int(os.environ.get("CONNECT_EOS_LINES", DEFAULT_LINES))
# Lines in the file when the connector starts; the rest is appended while the task runs, in APPEND_CHUNKS chunks
# APPEND_PAUSE_S apart (~20 s in all, whatever LINES is: the task reads a file far faster), so that the kill lands
# in the middle of the stream, after some transactions committed, and the survivor has lines left to move.
INITIAL_LINES = LINES // 2
APPEND_CHUNKS = 80
APPEND_PAUSE_S = 0.25
# The task commits a transaction this often (transaction.boundary=interval); long enough for the test to see one
# open and kill the worker inside it, short enough for the test to move along.
TRANSACTION_INTERVAL_MS = 3_000
# The kill waits until this many lines are committed (so the survivor resumes from committed offsets, not from
# the start) and a transaction is open.
KILL_AFTER_COMMITTED = LINES // 4
# Until every line is readable with read_committed after the takeover (the survivor rereads from the last committed
# offset; the lines of the aborted transaction are sent again).
DELIVERY_TIMEOUT_S = 240
# Until the survivor runs the task: the failover bound of test_connect.py, plus the dead producer's transaction
# timeout (Connect leaves `transaction.timeout.ms` at the producer default, 60 s) and the coordinator's abort sweep
# (10 s): if the dead transaction had written offsets, the survivor's read_committed offset reads wait for it to end.
TAKEOVER_TIMEOUT_S = REASSIGN_TIMEOUT_S + 60 + 10
# Lines appended after the connector was stopped, its offsets rewritten and resumed.
RESUME_LINES = 1_000
# transaction.timeout.ms of the task producers when no worker survives to fence a dead task's transaction, and
# how often the coordinator looks for transactions past their timeout (Kafka's
# transaction.abort.timed.out.transaction.cleanup.interval.ms default).
DEAD_TRANSACTION_TIMEOUT_MS = 10_000
ABORT_SWEEP_S = 10
# The workers' exactly-once settings (KIP-618): the leader's config topic producer is transactional, source tasks
# use transactional producers, and the internal topics are read with read_committed.
EOS_WORKER_PROPS = "exactly.once.source.support=enabled\n"


def offsets(bootstrap: str, topic: str, isolation: str) -> int:
    """The end offset of partition 0 as a reader with `isolation` sees it: the last stable offset for
    read_committed, the high watermark for read_uncommitted (ListOffsets with that isolation level)."""
    c = clients.consumer(bootstrap, **{"isolation.level": isolation, "group.id": f"w-{uuid.uuid4().hex[:8]}"})
    try:
        return c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10, cached=False)[1]
    finally:
        c.close()


def read_values(bootstrap: str, topic: str, isolation: str, expect: int, idle_s: float = 3.0,
                timeout: float = DELIVERY_TIMEOUT_S) -> list[str]:
    """Values of partition 0 from the beginning with `isolation`, until at least `expect` arrived and nothing more
    came for `idle_s` (so that duplicates past the expected count would show), or the timeout."""
    c = clients.consumer(bootstrap, **{"isolation.level": isolation, "group.id": f"r-{uuid.uuid4().hex[:8]}"})
    out: list[str] = []
    try:
        c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        deadline = time.monotonic() + timeout
        last_new = time.monotonic()
        while time.monotonic() < deadline:
            msgs = c.consume(num_messages=5_000, timeout=0.5)
            for msg in msgs:
                if msg.error() is not None:
                    raise KafkaException(msg.error())
                out.append(msg.value().decode())
            if msgs:
                last_new = time.monotonic()
            if len(out) >= expect and time.monotonic() - last_new >= idle_s:
                break
        return out
    finally:
        c.close()


def check_exactly_once(expected: list[str], got: list[str]) -> None:
    """`got` must be `expected`: every line once, in order. Says what differs first when not."""
    seen: set[str] = set()
    duplicates = [v for v in got if v in seen or seen.add(v)]
    missing = [v for v in expected if v not in seen]
    assert not duplicates, f"{len(duplicates)} duplicate lines (read_committed), first: {duplicates[:5]}"
    assert not missing, f"{len(missing)} lines missing, first: {missing[:5]}"
    first_wrong = next((i for i, (a, b) in enumerate(zip(expected, got)) if a != b), None)
    assert len(got) == len(expected) and first_wrong is None, (
        f"lines out of order at index {first_wrong}: {got[first_wrong:first_wrong + 3]}"
    )


class Appender(threading.Thread):
    """Appends lines to the source file in chunks, like a log being written, until `count` lines are written."""

    def __init__(self, path, start_at: int, count: int):
        super().__init__(daemon=True)
        self.path, self.start_at, self.count = path, start_at, count
        self.lines: list[str] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            chunk = max(1, -(-self.count // APPEND_CHUNKS))
            for at in range(self.start_at, self.start_at + self.count, chunk):
                n = min(chunk, self.start_at + self.count - at)
                self.lines += write_lines(self.path, "line", at, n)
                time.sleep(APPEND_PAUSE_S)
        except BaseException as e:  # reported by the test thread
            self.error = e


def start_eos_source(broker, topic: str, tmp_path, classpath: str, started: list, worker_props: str):
    """Two exactly-once workers and the FileStreamSource connector `eos-source` reading `source.txt` (INITIAL_LINES
    lines, then an Appender adds the rest) into `topic`; returns once a transaction of its task is open after
    KILL_AFTER_COMMITTED lines were committed: (ports, workers by name, the task's worker, lines written so far,
    the appender, last stable offset, high watermark)."""
    clients.create_topic(broker.bootstrap, topic, 1)
    source = tmp_path / "source.txt"
    written = write_lines(source, "line", 0, INITIAL_LINES)
    ports, ws = start_distributed_workers(classpath, tmp_path, broker.bootstrap, started, worker_props)
    by_id = {f"127.0.0.1:{p}": n for n, p in ports.items()}
    config = {
        "connector.class": "org.apache.kafka.connect.file.FileStreamSourceConnector",
        "tasks.max": "1", "file": str(source), "topic": topic,
        "exactly.once.support": "required",
        "transaction.boundary": "interval",
        "transaction.boundary.interval.ms": str(TRANSACTION_INTERVAL_MS),
    }
    rest(ports["worker-a"], "PUT", "/connectors/eos-source/config", config)
    st = wait_for("eos-source RUNNING", lambda: status_all_running(ports["worker-b"], "eos-source"),
                  RUNNING_TIMEOUT_S, detail=lambda: "".join(w.tail(40) for w in started))
    appender = Appender(source, INITIAL_LINES, LINES - INITIAL_LINES)
    appender.start()
    runner = by_id[st["tasks"][0]["worker_id"]]

    def mid_transaction():
        lso = offsets(broker.bootstrap, topic, "read_committed")
        hw = offsets(broker.bootstrap, topic, "read_uncommitted")
        return (lso, hw) if lso >= KILL_AFTER_COMMITTED and hw > lso else None

    lso, hw = wait_for(f"{KILL_AFTER_COMMITTED} lines committed and a transaction open", mid_transaction,
                       DELIVERY_TIMEOUT_S, interval=0.1, detail=lambda: ws[runner].tail(40))
    return ports, ws, runner, written, appender, lso, hw


def assert_transaction_open(bootstrap: str, topic: str) -> None:
    """A transaction is open on `topic` (its last stable offset is behind its high watermark)."""
    lso = offsets(bootstrap, topic, "read_committed")
    hw = offsets(bootstrap, topic, "read_uncommitted")
    assert lso < hw, f"no transaction open after the kill (last stable offset {lso}, high watermark {hw})"


@pytest.mark.timeout(900)
def test_exactly_once_source_survives_worker_kill(broker, topic_name, tmp_path, connect_classpath, workers):
    started = time.monotonic()
    ports, ws, victim, expected, appender, lso, hw = start_eos_source(
        broker, topic_name, tmp_path, connect_classpath, workers, EOS_WORKER_PROPS)
    # Kill -9 the worker running the task while one of its transactions is open and some are committed.
    survivor = "worker-b" if victim == "worker-a" else "worker-a"
    survivor_id = f"127.0.0.1:{ports[survivor]}"
    ws[victim].kill9()
    killed_at = time.monotonic()
    print(f"killed {victim} at last stable offset {lso}, high watermark {hw}")
    # The dead producer's transaction stays open (it holds the last stable offset back) until the survivor's
    # producer fences it, or the transaction times out.
    time.sleep(1)
    assert_transaction_open(broker.bootstrap, topic_name)

    wait_for(f"eos-source RUNNING on {survivor}",
             lambda: status_all_running(ports[survivor], "eos-source", on_worker=survivor_id),
             TAKEOVER_TIMEOUT_S, detail=lambda: ws[survivor].tail(60))
    print(f"task RUNNING on {survivor} {time.monotonic() - killed_at:.1f} s after the kill")
    appender.join(timeout=120)
    assert not appender.is_alive() and appender.error is None, f"appending to the source failed: {appender.error}"
    expected += appender.lines
    assert len(expected) == LINES

    got = read_values(broker.bootstrap, topic_name, "read_committed", LINES)
    elapsed = time.monotonic() - started
    check_exactly_once(expected, got)
    raw = read_values(broker.bootstrap, topic_name, "read_uncommitted", LINES, idle_s=1.0)
    print(f"{LINES} lines exactly once with read_committed after {elapsed:.1f} s; read_uncommitted sees "
          f"{len(raw)} records ({len(raw) - LINES} of them from the aborted transaction)")
    assert len(raw) > LINES, "the killed worker's open transaction left no records: the kill missed it"
    # Nothing is left open: the survivor's last transaction committed (or nothing was pending).
    wait_for("no open transaction on the topic",
             lambda: offsets(broker.bootstrap, topic_name, "read_committed")
             == offsets(broker.bootstrap, topic_name, "read_uncommitted"),
             TRANSACTION_INTERVAL_MS / 1000 * 3)

    alter_offsets_with_fencing(ports[survivor], ws[survivor])
    # The task resumes from the offsets written back: lines appended now arrive once, after the others.
    expected += write_lines(tmp_path / "source.txt", "after-resume", 0, RESUME_LINES)
    got = read_values(broker.bootstrap, topic_name, "read_committed", len(expected))
    check_exactly_once(expected, got)
    print(f"after stop, offsets rewritten (zombie fencing) and resume: {len(expected)} lines exactly once")

    for w in workers:
        w.stop()
    # The survivor took over without an ERROR or unexpected WARN line (the killed worker logged none either).
    check_worker_logs(workers, [])
    check_requests(workers, broker.bootstrap)


def alter_offsets_with_fencing(port: int, leader) -> None:
    """KIP-875 on an exactly-once source connector: stop it, write its current source offsets back (the leader
    first fences out every producer of its tasks with Admin.fenceProducers, then writes the offsets in a
    transaction), resume it."""
    current = rest(port, "GET", "/connectors/eos-source/offsets")
    assert current["offsets"], f"no committed source offsets: {current}"
    rest(port, "PUT", "/connectors/eos-source/stop")
    wait_for("eos-source STOPPED",
             lambda: (rest_or_none(port, "/connectors/eos-source/status") or {}).get("connector", {}).get("state")
             == "STOPPED", RUNNING_TIMEOUT_S, detail=lambda: leader.tail(40))
    answer = rest(port, "PATCH", "/connectors/eos-source/offsets", current, timeout=RUNNING_TIMEOUT_S)
    print(f"offsets {current['offsets']} written back: {answer}")
    # Admin.fenceProducers is an InitProducerId from an admin client, for each task's transactional id (Connect
    # logs the fencing itself at DEBUG only).
    fencing = [line for line in leader.api_log.read_text(errors="replace").splitlines()
               if line.startswith("[AdminClient ") and "Sending INIT_PRODUCER_ID request" in line]
    assert fencing, "the leader wrote the offsets without fencing the task's producers (Admin.fenceProducers)"
    rest(port, "PUT", "/connectors/eos-source/resume")
    wait_for("eos-source RUNNING after resume", lambda: status_all_running(port, "eos-source"), RUNNING_TIMEOUT_S,
             detail=lambda: leader.tail(40))


@pytest.mark.timeout(600)
def test_a_dead_tasks_open_transaction_is_aborted_at_its_timeout(broker, topic_name, tmp_path, connect_classpath,
                                                                  workers):
    """Both workers killed with SIGKILL while the task has a transaction open: no successor fences it, so the
    coordinator aborts it once its `transaction.timeout.ms` (DEAD_TRANSACTION_TIMEOUT_MS, set on the workers'
    producers) has passed. read_committed then shows the committed transactions only: a prefix of the file, each
    line once, in order, and nothing of the open transaction."""
    ports, ws, runner, written, appender, lso, hw = start_eos_source(
        broker, topic_name, tmp_path, connect_classpath, workers,
        EOS_WORKER_PROPS + f"producer.transaction.timeout.ms={DEAD_TRANSACTION_TIMEOUT_MS}\n")
    for w in ws.values():
        w.kill9()
    killed_at = time.monotonic()
    print(f"killed both workers at last stable offset {lso}, high watermark {hw}")
    assert_transaction_open(broker.bootstrap, topic_name)
    appender.join(timeout=120)
    end = wait_for("the dead transaction aborted",
                   lambda: (lambda lso, hw: hw if lso == hw else None)(
                       offsets(broker.bootstrap, topic_name, "read_committed"),
                       offsets(broker.bootstrap, topic_name, "read_uncommitted")),
                   DEAD_TRANSACTION_TIMEOUT_MS / 1000 + ABORT_SWEEP_S + 30, interval=0.5)
    print(f"the dead transaction ended {time.monotonic() - killed_at:.1f} s after the kill (high watermark {end})")
    assert "aborting a transaction past its timeout" in broker.log_tail(100_000)
    got = read_values(broker.bootstrap, topic_name, "read_committed", 0, idle_s=2.0, timeout=60)
    raw = read_values(broker.bootstrap, topic_name, "read_uncommitted", 0, idle_s=2.0, timeout=60)
    # The committed transactions before the kill (a few markers count in the last stable offset, hence the slack).
    assert len(got) >= KILL_AFTER_COMMITTED - 100, f"only {len(got)} lines readable with read_committed"
    check_exactly_once((written + appender.lines)[:len(got)], got)
    # The open transaction's records are in the log right after the committed ones, and read_committed skips them.
    assert len(raw) > len(got) and raw[:len(got)] == got, (
        f"read_uncommitted sees {len(raw)} records, read_committed {len(got)}: the kill missed the transaction")
    print(f"read_committed: the first {len(got)} lines once, in order; not the {len(raw) - len(got)} records of "
          "the aborted transaction")
