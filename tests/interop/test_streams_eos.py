"""Issue 22, first test: a Kafka Streams 4.4 word count (tests/java/streams/.../StreamsWordCount.java) with
`processing.guarantee=exactly_once_v2`, while the test kills (SIGKILL) the Streams app, the broker, or both at
random points several times and restarts them. Input arrives in chunks between the kills, so kills land while
the app is restoring, rebalancing or processing. At the end the app runs until its group has committed the whole
input; then the output topic, read with read_committed (last value per word), must hold exactly the known totals.

The same topology with `at_least_once` runs the same way; what it may do after a kill is process records again,
so the assertion there is: every word is present and no count is below its true total (and the counts are exact
when no kill happened, which the short form checks in a run without kills first).

Exercised broker paths: InitProducerId with transactional ids (and fencing the killed instance's producer),
AddPartitionsToTxn, AddOffsetsToTxn/TxnOffsetCommit, EndTxn, read_committed fetches (the changelog restore and
this test's reader), CreateTopics with configs (repartition and changelog topics), DeleteRecords on the
repartition topic, OffsetFetch with require_stable.

Short by default (CI); `STREAMS_EOS_LONG=1` runs more input and more kills. `STREAMS_EOS_SEED` replays a run."""

from __future__ import annotations

import os
import random
import signal
import struct
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, KafkaException, TopicPartition

import clients
from java_build import compile_against

REPO = Path(__file__).resolve().parents[2]
STREAMS_POM = REPO / "tests" / "java" / "streams" / "pom.xml"
STREAMS_LIB = REPO / "tests" / "java" / "streams" / "target" / "lib"
STREAMS_SRC = REPO / "tests" / "java" / "streams" / "src" / "main" / "java"

LONG = os.environ.get("STREAMS_EOS_LONG") == "1"
# Input chunks (one per kill round, plus the last one) and their size; kill rounds.
KILL_ROUNDS = 8 if LONG else 3
LINES_PER_CHUNK = 20_000 if LONG else 4_000
WORDS_PER_LINE = 6
VOCABULARY = [f"w{i:03d}" for i in range(97)]
INPUT_PARTITIONS = 3
# How long the app may run before a kill, after it printed RUNNING (seconds, drawn uniformly).
KILL_AFTER_RUNNING_S = (0.0, 4.0)
# The app must finish the whole input within this after its last start (rebalance, restore, processing).
FINISH_TIMEOUT_S = 240 if LONG else 120
# Kafka Streams' own log level in the app log (slf4j-simple): warn, info, debug.
LOG_LEVEL = os.environ.get("STREAMS_EOS_LOG_LEVEL", "warn")
# Waiting for RUNNING after a start (first start includes the JVM and topic creation).
RUNNING_TIMEOUT_S = 90


@pytest.fixture(scope="module")
def streams_classpath(tmp_path_factory) -> str:
    return compile_against(STREAMS_POM, STREAMS_LIB, "kafka-streams-*.jar", STREAMS_SRC,
                           tmp_path_factory.mktemp("streams-classes"))


class StreamsApp:
    """The word count JVM; its stdout goes to a log file that the test polls for state lines."""

    def __init__(self, classpath: str, bootstrap: str, app_id: str, source: str, sink: str, guarantee: str,
                 work_dir: Path):
        work_dir.mkdir(parents=True, exist_ok=True)
        self.cmd = ["java", "-Xmx384m", f"-Dorg.slf4j.simpleLogger.defaultLogLevel={LOG_LEVEL}", "-cp", classpath, "ringbroker.interop.StreamsWordCount", bootstrap, app_id,
                    source, sink, guarantee, str(work_dir / "state")]
        self.log_path = work_dir / f"streams-{app_id}.log"
        self.proc: subprocess.Popen | None = None
        self.log_offset = 0

    def start(self) -> None:
        assert self.proc is None
        self.log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            log.write(b"===== start =====\n")
            self.proc = subprocess.Popen(self.cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def output_since_start(self) -> str:
        with open(self.log_path, "rb") as f:
            f.seek(self.log_offset)
            return f.read().decode(errors="replace")

    def wait_running(self) -> None:
        deadline = time.monotonic() + RUNNING_TIMEOUT_S
        while time.monotonic() < deadline:
            self.check_alive()
            if "STATE RUNNING" in self.output_since_start():
                return
            time.sleep(0.1)
        raise AssertionError(f"Streams app not RUNNING within {RUNNING_TIMEOUT_S} s:\n{self.tail()}")

    def check_alive(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"Streams app exited on its own ({self.proc.returncode}):\n{self.tail()}")
        if "ERROR " in self.output_since_start():
            raise AssertionError(f"Streams app reported an error:\n{self.tail()}")

    def kill9(self) -> None:
        assert self.proc is not None
        self.check_alive()
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        self.proc = None

    def tail(self, lines: int = 60) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def make_chunk(rng: random.Random, count: int) -> list[str]:
    return [" ".join(rng.choice(VOCABULARY) for _ in range(WORDS_PER_LINE)) for _ in range(count)]


def produce_lines(bootstrap: str, topic: str, lines: list[str]) -> None:
    p = clients.producer(bootstrap)
    clients.produce_all(p, topic, ((str(i % 1000).encode(), line.encode()) for i, line in enumerate(lines)))


def stable_end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """End offsets as a read_committed reader sees them (the last stable offsets)."""
    c = clients.consumer(bootstrap, **{"isolation.level": "read_committed"})
    try:
        partitions = c.list_topics(topic, timeout=10).topics[topic].partitions
        return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions}
    finally:
        c.close()


def committed_offsets(bootstrap: str, group: str, topic: str, partitions) -> dict[int, int]:
    c = clients.consumer(bootstrap, **{"group.id": group})
    try:
        got = c.committed([TopicPartition(topic, p) for p in partitions], timeout=10)
        return {tp.partition: tp.offset for tp in got}
    finally:
        c.close()


def wait_input_committed(bootstrap: str, app_id: str, source: str, app: StreamsApp, deadline: float) -> None:
    """Until the Streams group committed the whole input (not transactional: its end is the high watermark)."""
    ends = stable_end_offsets(bootstrap, source)
    committed: dict[int, int] = {}
    while True:
        app.check_alive()
        assert time.monotonic() < deadline, f"input not committed in time: {committed}, end {ends}\n{app.tail()}"
        try:
            committed = committed_offsets(bootstrap, app_id, source, ends)
        except KafkaException:
            pass  # a coordinator may still be loading after a broker restart
        if all(committed.get(p, -1) >= end for p, end in ends.items()):
            return
        time.sleep(0.5)


class OutputReader:
    """Reads the output topic with read_committed from the beginning and keeps the last count per word, as a
    user's dashboard would. A killed app's open transaction holds the last stable offset back until the
    coordinator aborts it at its timeout (a restarted app has a new process id, so new transactional ids: the
    old one is not fenced at once), so "done" is decided on what read_committed shows, not on group offsets."""

    def __init__(self, bootstrap: str, topic: str):
        self.topic = topic
        self.consumer = clients.consumer(
            bootstrap, **{"isolation.level": "read_committed", "group.id": f"v-{uuid.uuid4().hex}"})
        self.assigned = False
        self.counts: dict[str, int] = {}

    def read_available(self, idle_s: float = 1.0) -> None:
        """Reads until nothing new came for `idle_s`."""
        if not self.assigned:
            partitions = self.consumer.list_topics(self.topic, timeout=10).topics[self.topic].partitions
            self.consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in partitions])
            self.assigned = True
        last_new = time.monotonic()
        while time.monotonic() - last_new < idle_s:
            msgs = self.consumer.consume(num_messages=10_000, timeout=0.2)
            for msg in msgs:
                if msg.error() is not None:
                    raise KafkaException(msg.error())
                self.counts[msg.key().decode()] = struct.unpack(">q", msg.value())[0]
            if msgs:
                last_new = time.monotonic()

    def wait_until(self, done, deadline: float, app: StreamsApp) -> dict[str, int]:
        """Reads until `done(counts)` or the deadline; returns the counts either way (the caller asserts)."""
        while time.monotonic() < deadline:
            app.check_alive()
            self.read_available()
            if done(self.counts):
                # A double count would show up after the totals were reached: keep reading a while.
                self.read_available(idle_s=3.0)
                break
        return dict(self.counts)

    def close(self) -> None:
        self.consumer.close()


def output_offsets(bootstrap: str, topic: str) -> dict[int, tuple[int, int]]:
    """(last stable offset, high watermark) per partition: for the failure message (a stuck LSO hides commits)."""
    plain = clients.consumer(bootstrap)
    try:
        partitions = plain.list_topics(topic, timeout=10).topics[topic].partitions
        high = {p: plain.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions}
    finally:
        plain.close()
    stable = stable_end_offsets(bootstrap, topic)
    return {p: (stable[p], high[p]) for p in sorted(high)}


def run_word_count(broker, classpath: str, topic_name: str, tmp_path: Path, guarantee: str,
                   kill_rounds: int, create_source=clients.create_topic,
                   victims: list[str] | None = None) -> tuple[dict[str, int], dict[str, int], list[str]]:
    """Runs the word count with `kill_rounds` random kills; returns (expected, final counts, what was killed).
    `broker` is anything with `bootstrap`, `kill9()` and `start()` (one broker, or a cluster that kills and
    restarts one of its nodes); `create_source(bootstrap, name, partitions)` creates the input topic; `victims`
    ("app", "broker" or "both" per round) replaces the random choice of what to kill."""
    seed = int(os.environ.get("STREAMS_EOS_SEED", random.randrange(1 << 30)))
    print(f"seed {seed} (STREAMS_EOS_SEED={seed} replays the input and kill choices)")
    rng = random.Random(seed)
    source, sink, app_id = f"{topic_name}-lines", f"{topic_name}-counts", f"wc-{topic_name}"
    create_source(broker.bootstrap, source, INPUT_PARTITIONS)
    expected: dict[str, int] = {}
    app = StreamsApp(classpath, broker.bootstrap, app_id, source, sink, guarantee, tmp_path)
    kills: list[str] = []
    try:
        for round_no in range(kill_rounds + 1):
            chunk = make_chunk(rng, LINES_PER_CHUNK)
            for line in chunk:
                for word in line.split():
                    expected[word] = expected.get(word, 0) + 1
            produce_lines(broker.bootstrap, source, chunk)
            if app.proc is None:
                app.start()
            app.wait_running()
            if round_no == kill_rounds:
                break
            time.sleep(rng.uniform(*KILL_AFTER_RUNNING_S))
            victim = victims[round_no % len(victims)] if victims else rng.choice(["app", "broker", "both"])
            kills.append(victim)
            print(f"round {round_no}: kill -9 {victim}")
            if victim in ("app", "both"):
                app.kill9()
            if victim in ("broker", "both"):
                broker.kill9()
                broker.start()
        deadline = time.monotonic() + FINISH_TIMEOUT_S
        wait_input_committed(broker.bootstrap, app_id, source, app, deadline)
        reader = OutputReader(broker.bootstrap, sink)
        try:
            counts = reader.wait_until(lambda got: all(got.get(w, 0) >= n for w, n in expected.items()),
                                       deadline, app)
        finally:
            reader.close()
        if counts != expected:
            kills.append(f"output (LSO, high watermark) {output_offsets(broker.bootstrap, sink)}")
    finally:
        app.stop()
    return expected, counts, kills


def check_managed(broker) -> None:
    if not getattr(broker, "managed", True):
        pytest.skip("needs a broker this test can kill and restart")


@pytest.mark.timeout(900 if LONG else 420)
@pytest.mark.parametrize("broker", [2], indirect=True, ids=["shards2"])
def test_streams_exactly_once_word_count_survives_kills(broker, topic_name, tmp_path, streams_classpath):
    check_managed(broker)
    expected, counts, kills = run_word_count(broker, streams_classpath, topic_name, tmp_path, "exactly_once_v2",
                                             KILL_ROUNDS)
    wrong = {w: (counts.get(w), n) for w, n in expected.items() if counts.get(w) != n}
    assert not wrong, f"after kills {kills}: (counted, true) differ for {len(wrong)} words: {sorted(wrong.items())[:10]}"
    assert set(counts) == set(expected), f"unexpected words in the output: {set(counts) - set(expected)}"


@pytest.mark.timeout(900 if LONG else 420)
@pytest.mark.parametrize("broker", [2], indirect=True, ids=["shards2"])
def test_streams_at_least_once_word_count(broker, topic_name, tmp_path, streams_classpath):
    """Without kills the counts are exact; with kills no count is below its true total."""
    check_managed(broker)
    expected, counts, _ = run_word_count(broker, streams_classpath, f"{topic_name}-calm", tmp_path / "calm",
                                         "at_least_once", 0)
    assert counts == expected, "at_least_once without failures must count exactly"
    expected, counts, kills = run_word_count(broker, streams_classpath, topic_name, tmp_path / "killed",
                                             "at_least_once", KILL_ROUNDS)
    low = {w: (counts.get(w), n) for w, n in expected.items() if counts.get(w, 0) < n}
    assert not low, f"after kills {kills}: words counted below their true total: {sorted(low.items())[:10]}"
