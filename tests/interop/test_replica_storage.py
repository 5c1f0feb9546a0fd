"""Issue 18, replication robustness: replicas whose own log cannot simply continue. Three ringbroker nodes on
network-namespace test hosts (cluster_helpers.py), a topic with one partition, replication factor 3 and
min.insync.replicas=2:

- a follower below the leader's log start: a follower is killed (kill -9), the leader's retention deletes the
  segments it would fetch next, and the follower restarted truncates its log fully and starts it at the leader's
  log start (Kafka's `truncateFullyAndStartAt`), rejoins the ISR, and holds the leader's bytes from there;
- a follower whose disk fails: its data directory (a small loop-mounted ext4) is filled while an acks=all producer
  writes; it reports the directory offline and leaves the ISR within a few seconds (not replica.lag.time.max.ms),
  acks=all goes on with the other two, and once space is freed it is back in the ISR with identical bytes; the
  same with the leader's disk, whose leadership moves;
- a lagging follower of a compacted topic: killed while the leader compacts away whole batches it still needs, it
  takes the leader's log with its offset gaps (as Kafka's followers do), catches up, rejoins the ISR, holds the
  leader's bytes, and serves every key's latest value once it leads;
- followers follow the leader's log start (DeleteRecords): their own start moves with it, whole segments below it
  go, and a follower that becomes leader answers ListOffsets (earliest) with the new start.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest
from confluent_kafka import TopicPartition
from confluent_kafka.admin import NewTopic

import clients
from cluster_helpers import Cluster, reporting, segment_batches
from test_cluster import admin, metadata, wait_until

BINARY = os.environ.get("RINGBROKER_BIN", "")

pytestmark = pytest.mark.skipif(
    not BINARY or os.environ.get("INTEROP_BROKER") == "kafka" or os.environ.get("RINGBROKER_BOOTSTRAP"),
    reason="replica storage tests start their own ringbroker nodes (RINGBROKER_BIN)",
)

# Small segments, so that retention deletes whole segments after a few MiB and a full disk is hit at the next roll.
SEGMENT_BYTES = 1 << 20  # Kafka's smallest segment.bytes
# What the leader keeps: a few segments.
RETENTION_BYTES = 3 << 20
# The follower must be out of the ISR well before replica.lag.time.max.ms (30 s) would take it out.
ISR_SHRINK_BOUND_S = 15


def create_topic(c: Cluster, name: str, config: dict[str, str]) -> None:
    """One partition on nodes 1, 2, 3 (node 1 leads: the preferred replica), min.insync.replicas=2."""
    with c.hosts.in_hub():
        client = admin(c.bootstrap)
        futures = client.create_topics([NewTopic(
            name, num_partitions=1, replica_assignment=[[1, 2, 3]],
            config={"min.insync.replicas": "2", "segment.bytes": str(SEGMENT_BYTES), **config})])
        futures[name].result(timeout=30)
    wait_until(lambda: isr(c, name) == [1, 2, 3], 30, "every replica in the ISR")


def isr(c: Cluster, topic: str, via=None) -> list[int]:
    md = metadata(c, via=via, topic=topic)
    return sorted(md.topics[topic].partitions[0].isrs)


def leader(c: Cluster, topic: str, via=None) -> int:
    return metadata(c, via=via, topic=topic).topics[topic].partitions[0].leader


def log_start_and_end(c: Cluster, topic: str) -> tuple[int, int]:
    """The partition's log start offset and high watermark, as its leader reports them."""
    with c.hosts.in_hub():
        consumer = clients.consumer(c.bootstrap)
        try:
            return clients.watermarks(consumer, topic, 1)[0]
        finally:
            consumer.close()


def log_start(c: Cluster, topic: str) -> int:
    return log_start_and_end(c, topic)[0]


def value(i: int, size: int) -> bytes:
    """`size` bytes without a zero byte (segment comparisons strip zero-filled preallocated tails)."""
    return bytes([1 + i % 250]) * size


def batches(data_dir: Path, topic: str) -> list[tuple[int, bytes]]:
    return segment_batches(data_dir, topic, 0)


def first_base_offset(data_dir: Path, topic: str) -> int:
    return min(int(p.stem) for p in (data_dir / f"{topic}-0").glob("*.log"))


def compare_replicas(c: Cluster, topic: str, start: int | None = None) -> tuple[int, int]:
    """Stops every node and checks that the replicas hold the same batches from `start` on (default: from where
    all three still hold data; each replica applies retention by itself); returns how many, and from where."""
    for node in c.nodes:
        node.stop()
    if start is None:
        start = max(first_base_offset(n.data_dir, topic) for n in c.nodes)
    copies = [[(base, raw) for base, raw in batches(n.data_dir, topic) if base >= start] for n in c.nodes]
    for node, copy in zip(c.nodes[1:], copies[1:]):
        assert len(copy) == len(copies[0]), f"node {node.node_id}: {len(copy)} batches, node 1: {len(copies[0])}"
        for (base, raw), (base0, raw0) in zip(copy, copies[0]):
            assert base == base0 and raw == raw0, f"node {node.node_id}: batch at {base} differs from node 1's"
    assert copies[0], "no batch compared"
    return len(copies[0]), start


def multi_record_batch_after(data_dir: Path, topic: str, offset: int) -> tuple[int, int]:
    """(base offset, last offset) of the first batch past `offset` holding several records."""
    for base, raw in batches(data_dir, topic):
        last = base + int.from_bytes(raw[23:27], "big", signed=True)
        if base > offset and last > base:
            return base, last
    raise AssertionError(f"no batch of several records past {offset}")


@pytest.mark.timeout(300)
@pytest.mark.parametrize("moved_by", ["retention", "delete-records"])
def test_a_follower_below_the_leaders_log_start_restarts_there(tmp_path, topic_name, moved_by):
    """`retention`: the leader's start is a segment's base. `delete-records`: DeleteRecords then puts it inside a
    batch; the follower, restarted there, gets that batch (it starts before its log) and restarts again at the
    batch's base offset, as Kafka's follower does."""
    c = Cluster(BINARY, tmp_path)
    with reporting(c):
        c.start()
        create_topic(c, topic_name, {"retention.bytes": str(RETENTION_BYTES)})
        victim = c.node(3)
        with c.hosts.in_hub():
            # Batches of about ten records: many of them to compare, and several records in each.
            producer = clients.producer(c.bootstrap, **{"enable.idempotence": True, "batch.size": 100_000})
            clients.produce_all(producer, topic_name, [(b"k", value(i, 1000)) for i in range(200)], partition=0)
        # Every replica holds what was acknowledged (acks=all, all three in the ISR): node 3's log ends there.
        victim_end = log_start_and_end(c, topic_name)[1]
        victim.kill9()
        # About 6 MiB more: retention on the leader deletes the segments node 3 would fetch next.
        with c.hosts.in_hub():
            acked = clients.produce_all(producer, topic_name,
                                        [(b"k", value(i, 10_000)) for i in range(600)], partition=0)
        assert len(acked) == 600
        wait_until(lambda: log_start(c, topic_name) > victim_end, 60,
                   f"the leader's log start past node 3's log end ({victim_end})", interval=0.5)

        def settled_log_start():
            # Retention runs every 2 s: the start has settled when two passes left it alone.
            before = log_start(c, topic_name)
            time.sleep(4.5)
            return before if log_start(c, topic_name) == before else None
        start = wait_until(settled_log_start, 60, "the leader's log start settled")
        first_base = start
        if moved_by == "delete-records":
            first_base, last = multi_record_batch_after(c.node(1).data_dir, topic_name, start)
            start = first_base + 1
            with c.hosts.in_hub():
                client = admin(c.bootstrap)
                client.list_topics(topic_name, timeout=10)
                deleted = client.delete_records([TopicPartition(topic_name, 0, start)], request_timeout=30)
                low = next(iter(deleted.values())).result(timeout=60).low_watermark
            assert low == start, f"DeleteRecords moved the start to {low}, not {start}"
            print(f"DeleteRecords: the leader's log starts at {start}, inside the batch {first_base}..{last}")
        print(f"node 3 killed at log end ~{victim_end}; the leader's log now starts at {start}")
        restarted = time.monotonic()
        victim.start()
        wait_until(lambda: isr(c, topic_name, via=c.nodes[0]) == [1, 2, 3], 60, "node 3 back in the ISR")
        print(f"node 3 back in the ISR {time.monotonic() - restarted:.2f} s after its restart")
        lines = [line for line in victim.log_since_start().splitlines() if "truncated fully and starting" in line]
        assert lines, "node 3 did not restart its log at the leader's log start"
        restarted_at = int(re.search(r"start_offset=(\d+)", lines[0]).group(1))
        assert restarted_at == start, f"node 3 restarted at {restarted_at}, the leader's log start is {start}"
        if moved_by == "delete-records":
            again = [line for line in victim.log_since_start().splitlines() if "inside a batch" in line]
            assert again, "node 3 did not restart at the base offset of the batch holding the leader's start"
            assert f"start_offset={first_base}" in again[0], again[0]
        assert first_base_offset(victim.data_dir, topic_name) >= first_base
        compared, common = compare_replicas(c, topic_name)
        print(f"{compared} batches from offset {common} identical on the three replicas")


class Writer:
    """An idempotent acks=all producer writing 4 KiB records to partition 0 until stopped; remembers every
    acknowledgement (value, when) and delivery error."""

    def __init__(self, bootstrap: str, topic: str):
        self.producer = clients.producer(bootstrap, **{"enable.idempotence": True, "message.timeout.ms": 120_000})
        self.topic = topic
        self.acked: list[tuple[bytes, float]] = []
        self.errors: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _on_delivery(self, err, msg):
        if err is not None:
            self.errors.append(str(err))
        else:
            self.acked.append((msg.value(), time.monotonic()))

    def _run(self):
        i = 0
        while not self.stop.is_set():
            try:
                self.producer.produce(self.topic, partition=0, value=b"%08d" % i + value(i, 4088),
                                      on_delivery=self._on_delivery)
                i += 1
            except BufferError:
                self.producer.poll(0.05)
            self.producer.poll(0)
            time.sleep(0.002)
        self.producer.flush(120)

    def acked_since(self, t: float) -> int:
        return sum(1 for _, when in self.acked if when > t)


@pytest.mark.timeout(420)
@pytest.mark.parametrize("victim_id", [3, 1], ids=["follower", "leader"])
def test_a_replica_whose_disk_fails_leaves_the_isr_and_comes_back(tmp_path, topic_name, victim_id):
    """The follower case of the brief; the leader case also moves the leadership (its appends fail, clients get
    KAFKA_STORAGE_ERROR and retry at the new leader) and the old leader, now a follower on a full disk, must
    truncate to the new leader's log before it fetches."""
    from test_chaos import mount_small_fs, unmount_small_fs

    image, mount = tmp_path / "victim.img", tmp_path / "victim-fs"
    mount_small_fs(image, mount)
    c = Cluster(BINARY, tmp_path)
    victim = c.node(victim_id)
    other = next(n for n in c.nodes if n is not victim)
    name = f"node {victim_id}"
    victim.data_dir = mount / "data"
    # The metadata quorum's log stays off the small disk, as Kafka's `metadata.log.dir` may: this test is about
    # the partition data's directory (a quorum member whose own log cannot be written stops).
    victim.data_dir.mkdir(parents=True)
    (tmp_path / "victim-metadata").mkdir()
    (victim.data_dir / "__cluster_metadata-0").symlink_to(tmp_path / "victim-metadata")
    filler = mount / "filler"
    try:
        with reporting(c):
            c.start()
            create_topic(c, topic_name, {})
            assert leader(c, topic_name) == 1
            with c.hosts.in_hub():
                writer = Writer(c.bootstrap, topic_name)
                writer.thread.start()
                wait_until(lambda: len(writer.acked) > 500, 60, "records acknowledged before the fault")
                # Fill the victim's disk while it runs: dd stops at ENOSPC.
                subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=1M", "status=none"], check=False)
                filled = time.monotonic()
                print(f"{name}'s disk filled: {shutil.disk_usage(mount).free} bytes free")
                wait_until(lambda: victim_id not in isr(c, topic_name, via=other), ISR_SHRINK_BOUND_S,
                           f"{name} out of the ISR after its disk filled", interval=0.2)
                shrunk = time.monotonic()
                offline = [line for line in victim.log_since_start().splitlines()
                           if "reporting the data directory offline" in line]
                assert offline, f"{name} did not report its data directory offline"
                print(f"{name} out of the ISR {shrunk - filled:.2f} s after its disk filled")
                assert leader(c, topic_name, via=other) != victim_id
                wait_until(lambda: writer.acked_since(shrunk) > 200, 30, "acks=all going on with the other two")
                assert not writer.errors, writer.errors[:5]
                time.sleep(2)
                filler.unlink()
                freed = time.monotonic()
                wait_until(lambda: isr(c, topic_name, via=other) == [1, 2, 3], 120,
                           f"{name} back in the ISR once space is back", interval=0.5)
                print(f"{name} back in the ISR {time.monotonic() - freed:.2f} s after space came back")
                wait_until(lambda: writer.acked_since(freed) > 100, 30, "records acknowledged after the heal")
                writer.stop.set()
                writer.thread.join(150)
            assert not writer.errors, writer.errors[:5]
            with c.hosts.in_hub():
                consumed, _ = clients.consume_all(c.bootstrap, topic_name, 1, timeout=120)
            found = {v for _, _, v in consumed[0]}
            lost = [v[:8] for v, _ in writer.acked if v not in found]
            print(f"acknowledged {len(writer.acked)}, consumed {len(consumed[0])}, lost {len(lost)}")
            assert not lost, lost[:10]
            assert len(found) == len(consumed[0]), "duplicates"
            compared, _ = compare_replicas(c, topic_name, 0)
            print(f"{compared} batches identical on the three replicas")
    finally:
        unmount_small_fs(image, mount)


# Compaction soon and often: a pass at most every second per partition (log.cleaner.backoff.ms), segments rolled
# every 2 s, any dirty share worth cleaning.
CLEANER_ARGS = ["--set", "log_cleaner_interval_ms=1000"]
COMPACTED = {"cleanup.policy": "compact", "segment.ms": "2000", "min.cleanable.dirty.ratio": "0.01"}
COMPACT_KEYS = 20
# Rounds of updates while the follower is down: one batch per round (each flushed), every key twice, so that
# each round's batch supersedes the one before it whole.
COMPACT_ROUNDS = 150


def batch_spans(data_dir: Path, topic: str) -> list[tuple[int, int]]:
    """(base offset, last offset) of every batch of the partition's segment files."""
    return [(base, base + int.from_bytes(raw[23:27], "big", signed=True)) for base, raw in batches(data_dir, topic)]


def gaps_after(data_dir: Path, topic: str, offset: int) -> list[tuple[int, int]]:
    """The offset ranges ([first, last]) from `offset` on that no batch holds, before the partition's last batch:
    what compaction removed. Read while the broker runs: a segment its cleaner just replaced counts as no gap this
    time."""
    try:
        spans = batch_spans(data_dir, topic)
    except FileNotFoundError:
        return []
    gaps, expected = [], offset
    for base, last in spans:
        if last < offset:
            continue
        if base > expected:
            gaps.append((expected, base - 1))
        expected = last + 1
    return gaps


def set_topic_config(c: Cluster, topic: str, name: str, value: str) -> None:
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource

    resource = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[
        ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET)])
    with c.hosts.in_hub():
        client = admin(c.bootstrap)  # kept alive until the answer came
        client.incremental_alter_configs([resource])[resource].result(timeout=30)


def compact_update(key: int, round_: int) -> tuple[bytes, bytes]:
    return f"key-{key:02d}".encode(), b"%06d-" % round_ + value(round_, 1000)


@pytest.mark.timeout(420)
def test_a_lagging_follower_of_a_compacted_topic_catches_up_across_the_gaps(tmp_path, topic_name):
    """Node 3 is killed; the leader (node 1) compacts away whole batches node 3 would fetch next; node 3 restarted
    gets the leader's batches with offset gaps and must store them as they are. Compaction is switched off (policy
    `delete`) before node 3 comes back: each replica compacts by itself, so only a log no replica rewrites any more
    can be compared byte for byte. Then node 3 leads (node 2 paused until it left the ISR, node 1 killed) and a
    consumer reads every key's latest value from it."""
    c = Cluster(BINARY, tmp_path, extra_args=CLEANER_ARGS)
    with reporting(c):
        c.start()
        create_topic(c, topic_name, COMPACTED)
        victim, other = c.node(3), c.node(2)
        latest: dict[bytes, bytes] = {}
        with c.hosts.in_hub():
            producer = clients.producer(c.bootstrap, **{"enable.idempotence": False})
            first = [compact_update(k, 0) for k in range(COMPACT_KEYS)]
            clients.produce_all(producer, topic_name, first, partition=0)
            latest.update(first)
        victim_end = log_start_and_end(c, topic_name)[1]
        victim.kill9()
        with c.hosts.in_hub():
            for round_ in range(1, COMPACT_ROUNDS + 1):
                updates = [compact_update(k, round_) for k in range(COMPACT_KEYS)] * 2
                clients.produce_all(producer, topic_name, updates, partition=0)
                latest.update(updates)
        wait_until(lambda: gaps_after(c.node(1).data_dir, topic_name, victim_end), 90,
                   f"the leader compacted away batches past node 3's log end ({victim_end})", interval=0.5)
        set_topic_config(c, topic_name, "cleanup.policy", "delete")
        # A pass already running finishes its swaps; none starts after the new config reached the shards.
        time.sleep(5)
        leader_gaps = gaps_after(c.node(1).data_dir, topic_name, victim_end)
        print(f"node 3 killed at log end {victim_end}; the leader's log has {len(leader_gaps)} gaps past it")
        restarted = time.monotonic()
        victim.start()
        wait_until(lambda: isr(c, topic_name, via=c.nodes[0]) == [1, 2, 3], 90, "node 3 back in the ISR")
        print(f"node 3 back in the ISR {time.monotonic() - restarted:.2f} s after its restart")
        start, high = log_start_and_end(c, topic_name)

        def fetched(node):
            # Node 3's batches below `victim_end` are its own copy from before the kill (the leader compacted
            # its copy since); everything after was fetched.
            return [(base, raw) for base, raw in batches(node.data_dir, topic_name) if victim_end <= base < high]
        wait_until(lambda: fetched(victim) == fetched(c.node(1)), 30,
                   "node 3's batches from its old log end to the high watermark equal the leader's")
        victim_gaps = gaps_after(victim.data_dir, topic_name, victim_end)
        assert victim_gaps, "node 3's log has no gap: the leader's compaction was not exercised"
        refused = [line for line in victim.log_since_start().splitlines() if "follower append refused" in line]
        assert not refused, refused[:3]
        print(f"node 3 holds {len(fetched(victim))} batches from {victim_end} to {high} (log start {start}), "
              f"{len(victim_gaps)} gaps, identical to the leader's")

        # Node 3 leads: node 2 out of the ISR first (paused: fenced after the broker session timeout), then node 1
        # killed. Node 2 resumes at once, so that two of the three controllers form a quorum again.
        other.pause()
        try:
            wait_until(lambda: isr(c, topic_name, via=c.nodes[0]) == [1, 3], 60, "node 2 out of the ISR")
            c.node(1).kill9()
        finally:
            other.resume()
        wait_until(lambda: leader(c, topic_name, via=victim) == 3, 60, "node 3 leading")
        with c.hosts.in_hub():
            consumed, _ = clients.consume_all(victim.bootstrap, topic_name, 1, timeout=120)
        read: dict[bytes, bytes] = {}
        for _, key, val in consumed[0]:
            read[key] = val
        assert read == latest, f"{sum(read.get(k) != v for k, v in latest.items())} keys differ"
        print(f"node 3 as leader: {len(consumed[0])} records read, the latest value of all {len(latest)} keys")


@pytest.mark.timeout(300)
def test_followers_follow_the_leaders_log_start(tmp_path, topic_name):
    """DeleteRecords on the leader: each follower raises its log start to the leader's from its next fetch answer,
    deleting its whole segments below it (Kafka's `maybeIncrementLogStartOffset` on followers); after a failover
    the new leader answers ListOffsets (earliest) with that start."""
    c = Cluster(BINARY, tmp_path)
    with reporting(c):
        c.start()
        create_topic(c, topic_name, {})
        with c.hosts.in_hub():
            producer = clients.producer(c.bootstrap, **{"enable.idempotence": True})
            clients.produce_all(producer, topic_name, [(b"k", value(i, 10_000)) for i in range(300)], partition=0)
        _, high = log_start_and_end(c, topic_name)
        target = high - 20
        with c.hosts.in_hub():
            client = admin(c.bootstrap)
            deleted = client.delete_records([TopicPartition(topic_name, 0, target)], request_timeout=30)
            low = next(iter(deleted.values())).result(timeout=60).low_watermark
        assert low == target, f"DeleteRecords moved the start to {low}, not {target}"

        def saved_start(node) -> int | None:
            try:
                return int((node.data_dir / f"{topic_name}-0" / "log-start-offset").read_text().strip())
            except (OSError, ValueError):
                return None
        followers = [c.node(2), c.node(3)]
        wait_until(lambda: all(saved_start(n) == target for n in followers), 30,
                   f"the followers' log start at {target}")
        for node in followers:
            assert first_base_offset(node.data_dir, topic_name) > 0, f"node {node.node_id} kept its first segment"
        c.node(1).kill9()
        wait_until(lambda: leader(c, topic_name, via=followers[0]) in (2, 3), 60, "a new leader")
        new_leader = leader(c, topic_name, via=followers[0])
        assert log_start(c, topic_name) == target, "the new leader's log start (ListOffsets earliest)"
        print(f"log start {target} on both followers; node {new_leader} leads and answers it")
