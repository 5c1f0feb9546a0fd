"""Issue 18: replication. Three ringbroker nodes (broker + controller each, one shard) on network-namespace test
hosts, a topic with 6 partitions, replication factor 3 and min.insync.replicas=2:

- an idempotent producer (confluent-kafka, acks=all) writes keyed records without pause through five rounds of
  faults (kill -9 of a partition leader, kill -9 of the active controller, SIGSTOP of a broker for 10 s, a broker
  cut off the network for 10 s, kill -9 of a leader again), each healed before the next: every acknowledged
  record is in the log exactly once, in per-key order; each round prints the time from the fault to the first
  acknowledgement by a new leader and from the heal until the broker is back in every ISR;
- after the run all three replicas of every partition hold the same bytes (segment files compared);
- a broker restarted with its disk full loses nothing and catches up once space is back;
- kcat keeps consuming across kill -9 of the partition's leader;
- committed group offsets survive kill -9 of their coordinator (__consumer_offsets has three replicas) and never
  go backwards (a group member commits through the fault rounds too);
- bad input: min.insync.replicas above the replication factor (INVALID_CONFIG); acks=all with too few in-sync
  replicas (NOT_ENOUGH_REPLICAS) while acks=1 still works.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import NewTopic

import clients
from cluster_helpers import Cluster, first_difference, reporting, segment_bytes
from test_cluster import admin, metadata, wait_until
from test_java_client import java_classpath  # noqa: F401 (a fixture)

BINARY = os.environ.get("RINGBROKER_BIN", "")
PARTITIONS = 6
# Records the Java producer writes across a leader kill.
JAVA_RECORDS = int(os.environ.get("INTEROP_JAVA_REPLICATED_RECORDS", "400000"))
# Small segments: every node preallocates its segments, three nodes share the disk.
NODE_ARGS = ["--set", "segment_bytes=4MiB"]

pytestmark = pytest.mark.skipif(
    not BINARY or os.environ.get("INTEROP_BROKER") == "kafka" or os.environ.get("RINGBROKER_BOOTSTRAP"),
    reason="replication tests start their own ringbroker nodes (RINGBROKER_BIN)",
)


@pytest.fixture
def cluster(tmp_path):
    c = Cluster(BINARY, tmp_path, extra_args=NODE_ARGS)
    print(f"test hosts: {c.hosts.mode}")
    with reporting(c):
        c.start()
        yield c


def create_replicated(c: Cluster, name: str, partitions: int = PARTITIONS, min_insync: int = 2) -> None:
    with c.hosts.in_hub():
        client = admin(c.bootstrap)
        futures = client.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=3,
                                                 config={"min.insync.replicas": str(min_insync)})])
        futures[name].result(timeout=30)


def isr_sizes(c: Cluster, topic: str, via=None) -> dict[int, int]:
    md = metadata(c, via=via, topic=topic)
    return {p.id: len(p.isrs) for p in md.topics[topic].partitions.values()}


def leaders(c: Cluster, topic: str, via=None) -> dict[int, int]:
    md = metadata(c, via=via, topic=topic)
    return {p.id: p.leader for p in md.topics[topic].partitions.values()}


class KeyedWriter:
    """An idempotent acks=all producer writing `key-<k>` = `<k>:<seq>` records until stopped; remembers what was
    acknowledged (and when) and every delivery error."""

    KEYS = 24

    def __init__(self, bootstrap: str):
        self.producer = Producer({
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "message.timeout.ms": 120_000,
            **clients.COMMON,
        })
        # (partition, key, value, when acknowledged: time.monotonic(), when created: the record's CreateTime in s)
        self.acked: list[tuple[int, bytes, bytes, float, float]] = []
        self.errors: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.sent = 0

    def _on_delivery(self, err, msg):
        if err is not None:
            self.errors.append(str(err))
        else:
            created = msg.timestamp()[1] / 1000.0
            self.acked.append((msg.partition(), msg.key(), msg.value(), time.monotonic(), created))

    def _run(self):
        seq = 0
        while not self.stop.is_set():
            for k in range(self.KEYS):
                key = f"key-{k}".encode()
                try:
                    self.producer.produce(self.topic, key=key, value=f"{k}:{seq}".encode(),
                                          on_delivery=self._on_delivery)
                    self.sent += 1
                except BufferError:
                    self.producer.poll(0.05)
            seq += 1
            self.producer.poll(0.01)
            time.sleep(0.005)
        self.producer.flush(120)

    def start(self, topic: str):
        self.topic = topic
        self.thread.start()

    def finish(self):
        self.stop.set()
        self.thread.join(180)
        assert not self.thread.is_alive(), "the producer did not finish flushing"


class TailReader:
    """A consumer reading every partition from the beginning while the faults happen: what it read must still be
    in the log afterwards, at the same offsets (it only ever sees records below the high watermark)."""

    def __init__(self, bootstrap: str, topic: str):
        from confluent_kafka import OFFSET_BEGINNING, TopicPartition

        self.consumer = clients.consumer(bootstrap, **{"group.id": f"tail-reader-{topic}"})
        self.consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
        self.read: dict[tuple[int, int], tuple[bytes, bytes]] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop.is_set():
            msg = self.consumer.poll(0.2)
            if msg is None or msg.error():
                continue
            self.read[(msg.partition(), msg.offset())] = (msg.key(), msg.value())

    def finish(self):
        self.stop.set()
        self.thread.join(30)
        self.consumer.close()


class CommittingMember:
    """A member of a consumer group reading the topic while the faults happen and committing its position
    synchronously every half second. Committed offsets must never go backwards: whenever partitions are
    (re)assigned to it, the first record it reads of each is at or above the highest offset it committed there
    successfully (the group resumes from its committed offsets, wherever its coordinator moved)."""

    COMMIT_EVERY_S = 0.5

    def __init__(self, bootstrap: str, topic: str):
        self.consumer = clients.consumer(bootstrap, **{"group.id": f"committer-{topic}"})
        self.highest: dict[int, int] = {}
        self.resumed_below: list[tuple[int, int, int]] = []
        self.commits = 0
        self.records = 0
        self.fresh: set[int] = set()
        self.stop = threading.Event()
        self.consumer.subscribe([topic], on_assign=self._assigned)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _assigned(self, consumer, partitions):
        self.fresh.update(tp.partition for tp in partitions)

    def _run(self):
        last_commit = time.monotonic()
        while not self.stop.is_set():
            msg = self.consumer.poll(0.2)
            if msg is not None and not msg.error():
                self.records += 1
                p = msg.partition()
                if p in self.fresh:
                    self.fresh.discard(p)
                    if msg.offset() < self.highest.get(p, -1):
                        self.resumed_below.append((p, msg.offset(), self.highest[p]))
            if time.monotonic() - last_commit >= self.COMMIT_EVERY_S:
                last_commit = time.monotonic()
                try:
                    committed = self.consumer.commit(asynchronous=False)
                except KafkaException:
                    continue  # no coordinator right now, or nothing to commit: retried next time
                for tp in committed or []:
                    if tp.error is None and tp.offset >= 0:
                        self.highest[tp.partition] = max(self.highest.get(tp.partition, -1), tp.offset)
                        self.commits += 1

    def finish(self) -> dict[int, int]:
        self.stop.set()
        self.thread.join(60)
        self.consumer.close()
        return self.highest


def consume_everything(c: Cluster, topic: str) -> dict[int, list[tuple[int, bytes, bytes]]]:
    with c.hosts.in_hub():
        consumed, _ = clients.consume_all(c.bootstrap, topic, PARTITIONS, timeout=120)
    return consumed


# One fault per round, healed before the next; the short form of the fault test (bench/scripts has the long one).
NEMESIS_ROUNDS = ["kill-leader", "kill-controller", "pause", "cut", "kill-leader"]
# How long a paused or cut-off broker stays away.
FAULT_S = 10
# Rounds of the short form; bench/scripts/replication_faults.sh runs the long form (100).
FAULT_ROUNDS = int(os.environ.get("REPLICATION_FAULT_ROUNDS", str(len(NEMESIS_ROUNDS))))


def quorum_leader_seen(node) -> str | None:
    """The metadata quorum leader `node` last logged knowing (its raft id), None when it knows none."""
    last = None
    for line in node.log_since_start().splitlines():
        if "quorum leadership changed" in line:
            last = line
    if last is None:
        return None
    leader = next((w for w in last.split() if w.startswith("leader=")), "leader=0")
    return None if leader == "leader=0" else leader


def quorum_whole(c: Cluster) -> bool:
    """Every running node follows the same metadata quorum leader: a healed or restarted node is back in the
    quorum, so the next fault is a single fault (two of three voters are needed to elect a controller)."""
    seen = {quorum_leader_seen(n) for n in c.nodes if n.running()}
    return len(seen) == 1 and None not in seen


def run_round(c: Cluster, topic: str, fault: str, writer: "KeyedWriter") -> None:
    """Applies one fault while the writer keeps producing, heals it, and waits until every ISR is full again."""
    if fault == "kill-leader":
        victim = c.node(leaders(c, topic)[0])
    elif fault == "kill-controller":
        victim = c.active_controller()
    else:
        # A follower of partition 0 (so that the faulted broker is not the only one anybody asks).
        leader = leaders(c, topic)[0]
        victim = next(n for n in c.nodes if n.node_id != leader)
    others = [n for n in c.nodes if n is not victim]
    led = {p for p, leader in leaders(c, topic, via=others[0]).items() if leader == victim.node_id}
    role = "the active controller" if victim is c.active_controller() else "not the controller"
    started = time.monotonic()
    started_wall = time.time()
    if fault.startswith("kill"):
        victim.kill9()
    elif fault == "pause":
        victim.pause()
    elif fault == "cut":
        if not c.hosts.can_cut:
            print("cut: loopback test hosts cannot be cut off; pausing instead")
            victim.pause()
            fault = "pause"
        else:
            c.hosts.cut(victim.host)
    if led:
        # The first record created after the fault, of a partition the faulted broker led, acknowledged.
        def new_leader_acks():
            return [when for p, _, _, when, created in writer.acked if p in led and created > started_wall]
        wait_until(new_leader_acks, 60, f"{fault}: an acknowledgement from a new leader")
        first = min(new_leader_acks())
        print(f"{fault} of node {victim.node_id} ({role}, leader of {len(led)} partitions): first acks=all "
              f"acknowledgement by a new leader after {first - started:.2f} s")
    remaining = FAULT_S - (time.monotonic() - started)
    if remaining > 0:
        time.sleep(remaining)
    healed = time.monotonic()
    if fault.startswith("kill"):
        victim.start()
    elif fault == "pause":
        victim.resume()
    else:
        c.hosts.heal(victim.host)
    wait_until(lambda: set(isr_sizes(c, topic, via=others[0]).values()) == {3}, 120,
               f"{fault}: node {victim.node_id} back in every ISR", interval=0.5)
    print(f"{fault}: node {victim.node_id} back in every ISR {time.monotonic() - healed:.2f} s after the heal")
    wait_until(lambda: quorum_whole(c), 60, f"{fault}: node {victim.node_id} back in the metadata quorum")
    # Produce latency (created to acknowledged) of the records created while the fault lasted, every partition.
    during = sorted((when - started) - (created - started_wall) for _, _, _, when, created in writer.acked
                    if started_wall <= created < started_wall + FAULT_S)
    if during:
        def pct(q: float) -> float:
            return during[min(len(during) - 1, int(q * len(during)))]
        print(f"{fault}: acks=all latency of the {len(during)} records created during the fault: "
              f"p50 {pct(0.5) * 1000:.0f} ms, p99 {pct(0.99) * 1000:.0f} ms, max {during[-1] * 1000:.0f} ms")


@pytest.mark.timeout(180 + 60 * FAULT_ROUNDS)
def test_acknowledged_records_survive_faults(cluster, topic_name):
    create_replicated(cluster, topic_name)
    wait_until(lambda: set(isr_sizes(cluster, topic_name).values()) == {3}, 30, "every ISR holds 3 replicas")
    with cluster.hosts.in_hub():
        # Created in the hub: librdkafka's threads connect from the namespace they start in.
        writer = KeyedWriter(cluster.bootstrap)
        writer.start(topic_name)
        reader = TailReader(cluster.bootstrap, topic_name)
        member = CommittingMember(cluster.bootstrap, topic_name)
        wait_until(lambda: len(writer.acked) > 2000, 60, "records acknowledged before the faults")
        for round_number in range(FAULT_ROUNDS):
            run_round(cluster, topic_name, NEMESIS_ROUNDS[round_number % len(NEMESIS_ROUNDS)], writer)
        time.sleep(2)
        writer.finish()
        time.sleep(2)
        reader.finish()
        highest = member.finish()
        final_commits = wait_until(
            lambda: committed_offsets(cluster.bootstrap, f"committer-{topic_name}", topic_name, PARTITIONS), 60,
            "the group's committed offsets")
    # Committed group offsets never went backwards, across every fault.
    print(f"group member: {member.records} records read, {member.commits} partition offsets committed, "
          f"resumed below a committed offset {len(member.resumed_below)} times")
    assert member.commits > 0
    assert not member.resumed_below, member.resumed_below[:10]
    behind = {p: (final_commits.get(p), o) for p, o in highest.items() if final_commits.get(p, -1) < o}
    assert not behind, f"committed offsets went back (now, highest acknowledged): {behind}"
    assert not writer.errors, writer.errors[:5]
    acked = writer.acked
    assert len(acked) > 2000

    consumed = consume_everything(cluster, topic_name)
    found = {(p, k, v) for p, records in consumed.items() for _, k, v in records}
    counts: dict[tuple[int, bytes, bytes], int] = {}
    for p, records in consumed.items():
        for _, k, v in records:
            counts[(p, k, v)] = counts.get((p, k, v), 0) + 1
    lost = [(p, k, v) for p, k, v, _, _ in acked if (p, k, v) not in found]
    duplicated = [r for r, n in counts.items() if n > 1]
    print(f"acknowledged {len(acked)}, found {sum(len(r) for r in consumed.values())}, lost {len(lost)}, "
          f"duplicated {len(duplicated)}")
    assert not lost, lost[:10]
    assert not duplicated, duplicated[:10]
    # Nothing a consumer read during the faults went away or changed.
    final = {(p, offset): (k, v) for p, records in consumed.items() for offset, k, v in records}
    vanished = [(at, kv) for at, kv in reader.read.items() if final.get(at) != kv]
    print(f"read during the faults {len(reader.read)}, later gone or changed {len(vanished)}")
    assert reader.read, "the reader read nothing"
    assert not vanished, vanished[:10]
    # Per key: the sequence numbers only go up along the log.
    for p, records in consumed.items():
        last: dict[bytes, int] = {}
        for offset, k, v in records:
            seq = int(v.split(b":")[1])
            assert seq > last.get(k, -1), f"partition {p} offset {offset}: {k!r} seq {seq} after {last.get(k)}"
            last[k] = seq

    # All three replicas hold the same bytes: stop the nodes (logs closed), then compare the segments.
    for node in cluster.nodes:
        node.stop()
    for partition in range(PARTITIONS):
        copies = [segment_bytes(node.data_dir, topic_name, partition) for node in cluster.nodes]
        assert copies[0], f"partition {partition} is empty"
        assert copies[0] == copies[1] == copies[2], (
            f"partition {partition}: replicas differ ({[len(c) for c in copies]} bytes)")


@pytest.mark.timeout(300)
def test_min_insync_replicas_is_enforced(cluster, topic_name):
    # A topic whose acks=all could never succeed is refused.
    with cluster.hosts.in_hub():
        client = admin(cluster.bootstrap)  # kept alive until the answer came
        futures = client.create_topics(
            [NewTopic(f"{topic_name}-bad", num_partitions=1, replication_factor=2,
                      config={"min.insync.replicas": "3"})])
        with pytest.raises(KafkaException) as refused:
            futures[f"{topic_name}-bad"].result(timeout=30)
    assert refused.value.args[0].code() == KafkaError.INVALID_CONFIG

    # min.insync.replicas=3 on RF 3: with one broker down (fenced, out of the ISR) acks=all is refused with
    # NOT_ENOUGH_REPLICAS, acks=1 still works.
    create_replicated(cluster, topic_name, partitions=1, min_insync=3)
    wait_until(lambda: isr_sizes(cluster, topic_name) == {0: 3}, 30, "a full ISR")
    leader = leaders(cluster, topic_name)[0]
    follower = next(n for n in cluster.nodes if n.node_id != leader)
    follower.kill9()
    wait_until(lambda: isr_sizes(cluster, topic_name) == {0: 2}, 60, "the killed follower out of the ISR")
    with cluster.hosts.in_hub():
        strict = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all", "retries": 0,
                           "message.timeout.ms": 10_000, **clients.COMMON})
        outcome: list = []
        strict.produce(topic_name, value=b"needs three", on_delivery=lambda err, msg: outcome.append(err))
        strict.flush(30)
        assert outcome and outcome[0] is not None, outcome
        assert outcome[0].code() == KafkaError.NOT_ENOUGH_REPLICAS, outcome[0]
        relaxed = clients.producer(cluster.bootstrap, acks="1")
        delivered = clients.produce_all(relaxed, topic_name, [(b"k", b"one is enough")])
        assert len(delivered) == 1


# Records of 100 KiB written while the restarted broker's disk is full (60 MiB: every partition rolls a segment).
BULK_RECORDS = 600


def bulk_value(i: int) -> bytes:
    """100 KiB without a zero byte: replicas roll segments independently, and `segment_bytes` strips each
    segment's zero-filled preallocated tail, which would also strip a record's trailing zeros."""
    return bytes([1 + i % 250]) * (100 << 10)


@pytest.mark.timeout(420)
def test_a_broker_restarted_with_its_disk_full_loses_nothing(tmp_path, topic_name):
    """The nemesis's disk-full round: a broker is killed, its data disk filled (a small loop-mounted ext4), and it
    is restarted on the full disk while an idempotent acks=all producer keeps writing. The other two replicas
    carry on (min.insync.replicas=2); once space is back the broker catches up and rejoins every ISR. Every
    acknowledged record is in the log exactly once and all replicas hold the same bytes."""
    import subprocess

    from test_chaos import mount_small_fs, unmount_small_fs

    image, mount = tmp_path / "node-3.img", tmp_path / "node-3-fs"
    mount_small_fs(image, mount)
    c = Cluster(BINARY, tmp_path, extra_args=NODE_ARGS)
    victim = c.nodes[2]
    victim.data_dir = mount / "data"
    filler = mount / "filler"
    try:
        c.start()
        create_replicated(c, topic_name)
        wait_until(lambda: set(isr_sizes(c, topic_name).values()) == {3}, 30, "every ISR holds 3 replicas")
        with c.hosts.in_hub():
            writer = KeyedWriter(c.bootstrap)
            writer.start(topic_name)
            wait_until(lambda: len(writer.acked) > 2000, 60, "records acknowledged before the fault")
            victim.kill9()
            # Fill the disk: dd stops at ENOSPC.
            subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=1M", "status=none"], check=False)
            print(f"node 3's disk: {shutil.disk_usage(mount).free} bytes free")
            victim.launch()
            # Enough new data that node 3 needs new space (its segments are preallocated 4 MiB at a time).
            bulk = clients.producer(c.bootstrap, **{"enable.idempotence": True, "message.timeout.ms": 120_000})
            started = time.monotonic()
            bulk_acked = clients.produce_all(bulk, topic_name,
                                             [(f"bulk-{i}".encode(), bulk_value(i)) for i in range(BULK_RECORDS)])
            print(f"{len(bulk_acked)} bulk records ({BULK_RECORDS * 100 // 1024} MiB) acknowledged in "
                  f"{time.monotonic() - started:.1f} s while node 3 had no space")
            state = "running" if victim.running() else f"exited with {victim.proc.returncode}"
            print(f"node 3 restarted on a full disk: {state}; ISR sizes {isr_sizes(c, topic_name, via=c.nodes[0])}")
            during = len(writer.acked)
            time.sleep(3)
            assert len(writer.acked) > during, "the other replicas stopped acknowledging"
            filler.unlink()
            if not victim.running():
                victim.start()
            healed = time.monotonic()
            wait_until(lambda: set(isr_sizes(c, topic_name, via=c.nodes[0]).values()) == {3}, 120,
                       "node 3 back in every ISR once space is back", interval=0.5)
            print(f"node 3 back in every ISR {time.monotonic() - healed:.2f} s after space came back")
            time.sleep(2)
            writer.finish()
        assert not writer.errors, writer.errors[:5]
        consumed = consume_everything(c, topic_name)
        found = {(p, k, v) for p, records in consumed.items() for _, k, v in records}
        lost = [(p, k, v) for p, k, v, _, _ in writer.acked if (p, k, v) not in found]
        lost += [(d.partition, d.key, d.value) for d in bulk_acked if (d.partition, d.key, d.value) not in found]
        total = sum(len(r) for r in consumed.values())
        print(f"acknowledged {len(writer.acked) + len(bulk_acked)}, found {total}, lost {len(lost)}, duplicated {total - len(found)}")
        assert not lost, lost[:10]
        assert total == len(found), "duplicates"
        for node in c.nodes:
            node.stop()
        for partition in range(PARTITIONS):
            copies = [segment_bytes(node.data_dir, topic_name, partition) for node in c.nodes]
            assert copies[0] == copies[1] == copies[2], (
                f"partition {partition}: replicas differ ({[len(x) for x in copies]} bytes; "
                f"{first_difference(copies)})")
    except Exception:
        print(c.logs())
        raise
    finally:
        c.close()
        unmount_small_fs(image, mount)


OFFSETS_TOPIC = "__consumer_offsets"
OFFSETS_PARTITIONS = 50


def offsets_partition(group: str) -> int:
    """Kafka's placement of a group: abs(Java's String.hashCode) % 50 (the group names here are ASCII)."""
    h = 0
    for ch in group:
        h = (31 * h + ord(ch)) & 0xFFFFFFFF
    return (h & 0x7FFFFFFF) % OFFSETS_PARTITIONS


def committed_offsets(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int] | None:
    """The group's committed offsets as a new member of it reads them (OffsetFetch through FindCoordinator), or
    None while no coordinator answers."""
    from confluent_kafka import TopicPartition

    c = clients.consumer(bootstrap, **{"group.id": group})
    try:
        got = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
        return {tp.partition: tp.offset for tp in got}
    except KafkaException:
        return None
    finally:
        c.close()


def consume_and_commit(bootstrap: str, group: str, topic: str, count: int) -> dict[int, int]:
    """A member of `group` consumes `count` records and commits its positions; returns {partition: first offset
    it read} (where the group's committed offsets, or the beginning, put it)."""
    c = clients.consumer(bootstrap, **{"group.id": group})
    first: dict[int, int] = {}
    try:
        c.subscribe([topic])
        read = 0
        deadline = time.monotonic() + 90
        while read < count and time.monotonic() < deadline:
            msg = c.poll(0.5)
            if msg is None or msg.error():
                continue
            first.setdefault(msg.partition(), msg.offset())
            read += 1
        assert read == count, f"read {read} of {count} records"
        wait_until(lambda: _commit(c), 60, "a synchronous commit succeeding")
    finally:
        c.close()
    return first


def _commit(c) -> bool:
    try:
        c.commit(asynchronous=False)
        return True
    except KafkaException:
        return False


def offsets_replicas(c: Cluster, partition: int, via=None) -> tuple[int, list[int], list[int]]:
    md = metadata(c, via=via, topic=OFFSETS_TOPIC)
    p = md.topics[OFFSETS_TOPIC].partitions[partition]
    return p.leader, list(p.replicas), list(p.isrs)


@pytest.mark.timeout(420)
def test_committed_offsets_survive_the_loss_of_their_coordinator(cluster, topic_name):
    """__consumer_offsets is replicated (RF 3, as Kafka's offsets.topic.replication.factor): kill -9 of the
    group's coordinator loses no committed offset; the group moves to the new leader of its offsets partition and
    consumes on from where it committed; the killed broker catches up and, once it coordinates again, serves the
    newest commits (committed offsets never go backwards)."""
    partitions = 2
    create_replicated(cluster, topic_name, partitions=partitions, min_insync=2)
    group = f"{topic_name}-g"
    with cluster.hosts.in_hub():
        delivered = clients.produce_all(clients.producer(cluster.bootstrap), topic_name,
                                        [(f"k{i}".encode(), f"v{i}".encode()) for i in range(300)])
        assert len(delivered) == 300
        first_read = consume_and_commit(cluster.bootstrap, group, topic_name, 100)
        assert first_read == {p: 0 for p in first_read}
        before = committed_offsets(cluster.bootstrap, group, topic_name, partitions)
    # A partition the member read nothing of has no committed offset (-1001).
    assert before is not None and sum(max(o, 0) for o in before.values()) == 100, before

    slot = offsets_partition(group)
    md = metadata(cluster, topic=OFFSETS_TOPIC)
    assert len(md.topics[OFFSETS_TOPIC].partitions) == OFFSETS_PARTITIONS
    assert {len(p.replicas) for p in md.topics[OFFSETS_TOPIC].partitions.values()} == {3}
    wait_until(lambda: len(offsets_replicas(cluster, slot)[2]) == 3, 60, "the group's offsets partition in sync")
    coordinator = cluster.node(offsets_replicas(cluster, slot)[0])
    others = [n for n in cluster.nodes if n is not coordinator]

    coordinator.kill9()
    killed = time.monotonic()
    with cluster.hosts.in_hub():
        after = wait_until(lambda: committed_offsets(cluster.bootstrap, group, topic_name, partitions), 90,
                           "the committed offsets from a new coordinator")
        print(f"committed offsets served by a new coordinator {time.monotonic() - killed:.2f} s after kill -9")
        assert after == before, (after, before)
        # The group consumes on from its committed offsets, on the new coordinator, and commits there.
        resumed = consume_and_commit(cluster.bootstrap, group, topic_name, 100)
        assert resumed == {p: max(before[p], 0) for p in resumed}, (resumed, before)
        newest = committed_offsets(cluster.bootstrap, group, topic_name, partitions)
    assert newest is not None and sum(max(o, 0) for o in newest.values()) == 200, newest
    new_leader = offsets_replicas(cluster, slot, via=others[0])[0]
    assert new_leader in {n.node_id for n in others}

    # The killed broker comes back and catches up (back in the ISR); then the group's new coordinator is killed
    # too: whichever broker leads the offsets partition next (the restarted one or the third) must serve the
    # newest commits, not older ones (committed offsets never go backwards).
    coordinator.start()
    wait_until(lambda: len(offsets_replicas(cluster, slot, via=others[0])[2]) == 3, 120,
               "the restarted broker back in the ISR of the group's offsets partition")
    second = cluster.node(new_leader)
    second.kill9()
    killed = time.monotonic()
    with cluster.hosts.in_hub():
        last = wait_until(lambda: committed_offsets(cluster.bootstrap, group, topic_name, partitions), 90,
                          "the committed offsets after the second coordinator's loss")
    leader_now = offsets_replicas(cluster, slot, via=coordinator)[0]
    print(f"second failover: node {leader_now} coordinates the group, offsets served "
          f"{time.monotonic() - killed:.2f} s after kill -9")
    assert last == newest, (last, newest)


@pytest.mark.timeout(300)
@pytest.mark.skipif(shutil.which("kcat") is None, reason="kcat not installed (apt-get install kcat)")
def test_kcat_keeps_consuming_across_a_leader_kill(cluster, topic_name):
    """A kcat consumer (librdkafka) reading a replicated partition keeps consuming when its leader is killed with
    kill -9: it gets every record, those written before the kill and those written to the new leader after it,
    each once, in order."""
    import subprocess

    create_replicated(cluster, topic_name, partitions=1, min_insync=2)
    wait_until(lambda: isr_sizes(cluster, topic_name) == {0: 3}, 30, "a full ISR")
    total = 2000
    with cluster.hosts.in_hub():
        reader = subprocess.Popen(
            ["kcat", "-C", "-b", cluster.bootstrap, "-t", topic_name, "-o", "beginning", "-c", str(total), "-q",
             "-X", "socket.timeout.ms=10000"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            writer = clients.producer(cluster.bootstrap, **{"enable.idempotence": True})
            clients.produce_all(writer, topic_name, [(None, f"r{i}".encode()) for i in range(total // 2)])
            wait_until(lambda: isr_sizes(cluster, topic_name) == {0: 3}, 30, "followers caught up")
            victim = cluster.node(leaders(cluster, topic_name)[0])
            victim.kill9()
            clients.produce_all(writer, topic_name, [(None, f"r{i}".encode()) for i in range(total // 2, total)])
            out, err = reader.communicate(timeout=120)
        finally:
            if reader.poll() is None:
                reader.kill()
    assert reader.returncode == 0, err.decode()[-2000:]
    assert out.decode().split() == [f"r{i}" for i in range(total)]


@pytest.mark.timeout(420)
def test_default_java_producer_across_a_leader_kill(cluster, topic_name, java_classpath):
    """kafka-clients 4.4 with its defaults (acks=all, idempotent) keeps producing while the leader of a partition
    is killed with kill -9: no error reaches the application, and a consumer group then reads every record
    exactly once (DefaultProducerRoundTrip prints the counts)."""
    _java_round_trip(cluster, topic_name, java_classpath, JAVA_RECORDS)


def _java_round_trip(cluster: Cluster, topic: str, classpath: str, records: int) -> None:
    import re
    import subprocess
    from test_java_client import log_flags

    cmd = cluster.hosts.hub_cmd([
        "java", "-Xmx1g", *log_flags(), "-cp", classpath,
        "ringbroker.interop.DefaultProducerRoundTrip", cluster.bootstrap, topic, str(PARTITIONS), str(records), "3",
    ])
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    killed = None
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip())
            m = re.match(r"PROGRESS (\d+)", line)
            if m and killed is None and int(m.group(1)) >= records // 2:
                killed = cluster.node(leaders(cluster, topic)[0])
                killed.kill9()
                # Back before the consumer phase: the group coordinator's partition has one replica.
                time.sleep(4)
                killed.start()
        rc = proc.wait(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = "\n".join(lines)
    print(output[-2000:])
    assert killed is not None, f"the producer never reached half way:\n{output[-3000:]}"
    result = [line for line in lines if line.startswith("RESULT ")]
    assert result, f"no RESULT line (exit {rc}):\n{output[-3000:]}"
    fields = dict(kv.split("=", 1) for kv in result[0].split()[1:])
    assert int(fields["errors"]) == 0, result[0]
    assert int(fields["missing"]) == 0 and int(fields["duplicates"]) == 0, result[0]
    assert rc == 0, result[0]


@pytest.fixture
def manual_cluster(tmp_path):
    """A cluster whose controller does not give leaderships back by itself (auto.leader.rebalance.enable=false)."""
    c = Cluster(BINARY, tmp_path, extra_args=[*NODE_ARGS, "--auto-leader-rebalance", "false"])
    with reporting(c):
        c.start()
        yield c


@pytest.mark.timeout(300)
def test_kafka_leader_election_restores_preferred_leaders(manual_cluster, topic_name, java_classpath):
    """After a leader's broker died and came back, its partitions stay with the new leaders until
    `kafka-leader-election --election-type preferred` gives them back (Kafka's ElectLeaders)."""
    import subprocess
    from test_java_client import log_flags

    c = manual_cluster
    create_replicated(c, topic_name)
    wait_until(lambda: set(isr_sizes(c, topic_name).values()) == {3}, 30, "every ISR holds 3 replicas")
    preferred = leaders(c, topic_name)
    victim = c.node(preferred[0])
    victim.kill9()
    others = [n for n in c.nodes if n is not victim]
    wait_until(lambda: victim.node_id not in leaders(c, topic_name, via=others[0]).values(), 60,
               "the killed broker's partitions led elsewhere")
    victim.start()
    wait_until(lambda: set(isr_sizes(c, topic_name).values()) == {3}, 120, "the broker back in every ISR")
    assert leaders(c, topic_name) != preferred, "nothing gave the leaderships back by itself"

    elect = subprocess.run(
        c.hosts.hub_cmd(["java", "-Xmx256m", *log_flags(), "-cp", java_classpath,
                         "org.apache.kafka.tools.LeaderElectionCommand", "--bootstrap-server", c.bootstrap,
                         "--election-type", "preferred", "--all-topic-partitions"]),
        capture_output=True, text=True, timeout=120)
    print(elect.stdout, elect.stderr)
    assert elect.returncode == 0, elect.stderr
    assert "Successfully completed leader election (PREFERRED)" in elect.stdout, elect.stdout
    wait_until(lambda: leaders(c, topic_name) == preferred, 30, "the preferred replicas lead again")


def _replica_fetch_v9(correlation_id: int, replica_id: int, topic: str, partition: int, leader_epoch: int,
                      offset: int) -> bytes:
    """Fetch v9 as a follower (or, with replica_id -1, a consumer) sends it: one partition, no session."""
    from kafka_wire import i8, i32, i64, request, string

    body = (i32(replica_id) + i32(0) + i32(1) + i32(1 << 20) + i8(0) + i32(0) + i32(-1)
            + i32(1) + string(topic) + i32(1)
            + i32(partition) + i32(leader_epoch) + i64(offset) + i64(-1) + i32(1 << 20)
            + i32(0))
    return request(1, 9, correlation_id, body)


def _fetch_v9_answer(bootstrap: str, payload: bytes) -> tuple[int, int, bytes | None]:
    """(error code, high watermark, records) of the one partition of a Fetch v9 response."""
    import kafka_wire as kw

    with kw.connect(bootstrap) as sock:
        sock.sendall(payload)
        answer = kw.read_response(sock)
    assert answer is not None, "the broker closed the connection"
    _, r = answer
    r.i32()  # throttle_time_ms
    assert r.i16() == 0, "top-level error"
    r.i32()  # session_id
    assert r.i32() == 1
    r.string()
    assert r.i32() == 1
    r.i32()
    error_code, high_watermark = r.i16(), r.i64()
    r.i64()  # last_stable_offset
    r.i64()  # log_start_offset
    for _ in range(max(r.i32(), 0)):
        r.take(16)
    return error_code, high_watermark, r.bytes_field()


@pytest.mark.timeout(300)
def test_replica_fetch_fencing_and_reads_above_the_high_watermark(cluster, topic_name):
    create_replicated(cluster, topic_name, partitions=1, min_insync=1)
    wait_until(lambda: isr_sizes(cluster, topic_name) == {0: 3}, 30, "a full ISR")
    # A new leader (epoch 1) after the first one's broker died.
    first = cluster.node(leaders(cluster, topic_name)[0])
    first.kill9()
    others = [n for n in cluster.nodes if n is not first]
    wait_until(lambda: leaders(cluster, topic_name, via=others[0])[0] not in (first.node_id, -1), 60, "a new leader")
    leader = cluster.node(leaders(cluster, topic_name, via=others[0])[0])
    follower = next(n for n in others if n is not leader)
    with cluster.hosts.in_hub():
        stale = _fetch_v9_answer(leader.bootstrap, _replica_fetch_v9(1, follower.node_id, topic_name, 0, 0, 0))
        newer = _fetch_v9_answer(leader.bootstrap, _replica_fetch_v9(2, follower.node_id, topic_name, 0, 9, 0))
        not_leader = _fetch_v9_answer(follower.bootstrap, _replica_fetch_v9(3, leader.node_id, topic_name, 0, 1, 0))
    assert stale[0] == 74, f"FENCED_LEADER_EPOCH expected: {stale}"
    assert newer[0] == 75, f"UNKNOWN_LEADER_EPOCH expected: {newer}"
    assert not_leader[0] == 6, f"NOT_LEADER_OR_FOLLOWER expected: {not_leader}"
    first.start()
    wait_until(lambda: isr_sizes(cluster, topic_name) == {0: 3}, 120, "the broker back in the ISR")

    # Followers paused: acks=1 records are written on the leader but not replicated, so the high watermark
    # stays below the log end. A consumer fetch between them waits (no error, no records); above the log end it
    # is OFFSET_OUT_OF_RANGE (Kafka's rule).
    leader = cluster.node(leaders(cluster, topic_name)[0])
    followers = [n for n in cluster.nodes if n is not leader]
    with cluster.hosts.in_hub():
        clients.produce_all(clients.producer(cluster.bootstrap, acks="all"), topic_name, [(b"k", b"v0")])
        for f in followers:
            f.pause()
        try:
            fast = clients.producer(leader.bootstrap, acks="1")
            clients.produce_all(fast, topic_name, [(b"k", f"v{i}".encode()) for i in range(1, 11)])
            error, high_watermark, records = _fetch_v9_answer(
                leader.bootstrap, _replica_fetch_v9(4, -1, topic_name, 0, -1, 3))
            assert error == 0 and high_watermark <= 3 and not records, (error, high_watermark, records)
            beyond = _fetch_v9_answer(leader.bootstrap, _replica_fetch_v9(5, -1, topic_name, 0, -1, 50))
            assert beyond[0] == 1, f"OFFSET_OUT_OF_RANGE expected: {beyond}"
        finally:
            for f in followers:
                f.resume()
