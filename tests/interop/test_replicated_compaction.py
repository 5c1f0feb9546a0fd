"""Issue 18: compaction of replicated internal topics and DeleteRecords waiting for the followers. Three ringbroker
nodes (broker + controller each, one shard) on network-namespace test hosts:

- a group commits the same 50 offsets over and over: its `__consumer_offsets` partition (three replicas) is
  compacted on every replica (Kafka's log cleaner runs on leaders and followers alike; offsets stay, gaps appear):
  each replica's on-disk log shrinks; then kill -9 of the group's coordinator, and the new coordinator (rebuilt
  from its compacted copy) serves exactly the last committed offsets;
- DeleteRecords of a partition whose follower is paused (SIGSTOP) waits for that follower's log start and answers
  REQUEST_TIMED_OUT after the request's timeout; once the follower resumes it answers, and with every replica up
  it answers with the low watermark (the smallest log start of the replicas), as Kafka's DelayedDeleteRecords.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import NewTopic

import clients
from cluster_helpers import Cluster
from test_cluster import admin, wait_until
from test_replication import (  # noqa: F401 (cluster: a fixture; pytestmark: the same skip)
    OFFSETS_TOPIC,
    cluster,
    committed_offsets,
    create_replicated,
    offsets_partition,
    offsets_replicas,
    pytestmark,
)

# Offsets per commit and commits: ~10 MiB of commits to one key set (more than one 8 MiB segment of
# __consumer_offsets), the sealed part compacted to one commit's worth.
COMMIT_PARTITIONS = 50
COMMITS = int(os.environ.get("INTEROP_OFFSETS_COMMITS", "1200"))
# What compaction must at least take off each replica's log.
SHRINK_FACTOR = 3


def log_bytes(data_dir: Path, topic: str, partition: int) -> int:
    """Bytes of the partition's segment files (`.log`) on one node."""
    directory = data_dir / f"{topic}-{partition}"
    return sum(f.stat().st_size for f in directory.glob("*.log")) if directory.is_dir() else 0


def dir_bytes(data_dir: Path, topic: str, partition: int) -> int:
    """Bytes of every file of the partition's directory on one node (indexes and checkpoints included)."""
    directory = data_dir / f"{topic}-{partition}"
    return sum(f.stat().st_size for f in directory.iterdir() if f.is_file()) if directory.is_dir() else 0


@pytest.mark.timeout(420)
@pytest.mark.parametrize("pending", [False, True], ids=["plain", "open-transaction"])
def test_replicated_offsets_are_compacted_on_every_replica(cluster, topic_name, pending):
    """`open-transaction`: a transactional producer's offset (TxnOffsetCommit) is pending in the log while the
    commits go on: no replica compacts past it (the last stable offset) until its transaction commits; then they
    do, and the new coordinator after the failover serves the transaction's offset too."""
    # The committed-to topic itself needs no replicas (its partitions only have to exist).
    with cluster.hosts.in_hub():
        client = admin(cluster.bootstrap)
        client.create_topics([NewTopic(topic_name, COMMIT_PARTITIONS, 1)])[topic_name].result(30)
    group = f"{topic_name}-g"
    slot = offsets_partition(group)
    last: dict[int, int] = {}
    txn_offset = 999_999

    def sizes() -> dict[int, int]:
        return {n.node_id: log_bytes(n.data_dir, OFFSETS_TOPIC, slot) for n in cluster.nodes}

    # The largest each replica's log got while the commits went on (passes run meanwhile too).
    largest = {n.node_id: 0 for n in cluster.nodes}
    producer = None
    with cluster.hosts.in_hub():
        committer = clients.consumer(cluster.bootstrap, **{"group.id": group})
        try:
            started = time.monotonic()
            partitions = list(range(COMMIT_PARTITIONS))
            for round_ in range(COMMITS):
                if pending and round_ == COMMITS // 6:
                    # Partition 0's offset goes pending in a transaction; the plain commits leave partition 0 alone.
                    producer = clients.producer(cluster.bootstrap, **{"transactional.id": f"{group}-txn"})
                    producer.init_transactions(30)
                    producer.begin_transaction()
                    producer.send_offsets_to_transaction([TopicPartition(topic_name, 0, txn_offset)],
                                                         committer.consumer_group_metadata(), 30)
                    partitions = list(range(1, COMMIT_PARTITIONS))
                offsets = [TopicPartition(topic_name, p, round_ * 10 + p) for p in partitions]
                committer.commit(offsets=offsets, asynchronous=False)
                for p in partitions:
                    last[p] = round_ * 10 + p
                if round_ % 50 == 0:
                    largest = {k: max(v, largest[k]) for k, v in sizes().items()}
            print(f"{COMMITS} commits of {COMMIT_PARTITIONS} offsets in {time.monotonic() - started:.1f} s")
        finally:
            committer.close()
    largest = {k: max(v, largest[k]) for k, v in sizes().items()}
    if producer is not None:
        # Two passes at least (log.cleaner.backoff.ms is 5 s): none may clean past the pending offset.
        time.sleep(12)
        held = sizes()
        print(f"with the transaction open, 12 s later: {held}")
        assert all(held[node] == largest[node] for node in held), (held, largest)
        with cluster.hosts.in_hub():
            producer.commit_transaction(30)
        last[0] = txn_offset
    wait_until(lambda: len(offsets_replicas(cluster, slot)[2]) == 3, 60, "the group's offsets partition in sync")
    leader = offsets_replicas(cluster, slot)[0]
    print(f"__consumer_offsets-{slot} (leader node {leader}), largest on disk during the commits: "
          + ", ".join(f"node {k}: {v} B" for k, v in sorted(largest.items())))

    # Every replica compacts on its own: each one's log ends up far below its largest.
    def compacted() -> bool:
        return all(size * SHRINK_FACTOR < largest[node] for node, size in sizes().items())

    try:
        wait_until(compacted, 90, "every replica of the offsets partition compacted")
    finally:
        after = sizes()
        print(f"__consumer_offsets-{slot} after compaction: "
              + ", ".join(f"node {n.node_id}: {after[n.node_id]} B of segments, "
                          f"{dir_bytes(n.data_dir, OFFSETS_TOPIC, slot)} B in its directory" for n in cluster.nodes))
        for n in cluster.nodes:
            segments = sorted((f.name, f.stat().st_size) for f in (n.data_dir / f"{OFFSETS_TOPIC}-{slot}").glob("*.log"))
            print(f"node {n.node_id} segments: {segments}")

    with cluster.hosts.in_hub():
        before = committed_offsets(cluster.bootstrap, group, topic_name, COMMIT_PARTITIONS)
    assert before == last, "the coordinator's offsets before the failover"
    coordinator = cluster.node(leader)
    others = [n for n in cluster.nodes if n is not coordinator]
    coordinator.kill9()
    killed = time.monotonic()
    with cluster.hosts.in_hub():
        after_failover = wait_until(
            lambda: committed_offsets(cluster.bootstrap, group, topic_name, COMMIT_PARTITIONS), 90,
            "the committed offsets from a new coordinator")
    new_leader = offsets_replicas(cluster, slot, via=others[0])[0]
    print(f"node {new_leader} coordinates the group {time.monotonic() - killed:.2f} s after kill -9 of node {leader}, "
          "from its compacted copy")
    assert new_leader != leader
    assert after_failover == last, {p: (after_failover.get(p), o) for p, o in last.items()
                                    if after_failover.get(p) != o}


def delete_records(bootstrap: str, topic: str, offset: int, operation_timeout: float):
    """DeleteRecords of partition 0 below `offset`: (low watermark, None) or (None, the Kafka error)."""
    client = admin(bootstrap)
    futures = client.delete_records([TopicPartition(topic, 0, offset)], operation_timeout=operation_timeout,
                                    request_timeout=operation_timeout + 30)
    try:
        return next(iter(futures.values())).result(timeout=operation_timeout + 60).low_watermark, None
    except KafkaException as e:
        return None, e.args[0]


@pytest.mark.timeout(300)
def test_delete_records_waits_for_the_followers_log_starts(cluster, topic_name):
    create_replicated(cluster, topic_name, partitions=1, min_insync=1)
    with cluster.hosts.in_hub():
        delivered = clients.produce_all(clients.producer(cluster.bootstrap), topic_name,
                                        [(b"k", f"v{i}".encode()) for i in range(1000)], partition=0)
        assert len(delivered) == 1000
        md = admin(cluster.bootstrap).list_topics(topic_name, timeout=10)
    partition = md.topics[topic_name].partitions[0]
    wait_until(lambda: len(admin_isr(cluster, topic_name)) == 3, 60, "all replicas in sync")
    # Not the active controller: its successor would fence it at once (no heartbeat of it on record), and a fenced
    # broker's log start no longer holds the low watermark back (Kafka counts live brokers only).
    controller = cluster.active_controller().node_id
    follower = cluster.node(next(r for r in partition.replicas if r not in (partition.leader, controller)))

    # A follower paused: its log start cannot follow, the call waits and times out (well within the 9 s the
    # controller takes to fence the paused broker, after which it no longer counts, as in Kafka).
    follower.pause()
    try:
        started = time.monotonic()
        with cluster.hosts.in_hub():
            low, error = delete_records(cluster.bootstrap, topic_name, 300, operation_timeout=2)
        waited = time.monotonic() - started
        print(f"DeleteRecords with node {follower.node_id} paused: {error} after {waited:.2f} s")
        assert low is None and error.code() == KafkaError.REQUEST_TIMED_OUT, (low, error)
        assert waited >= 1.9, waited

        # Asked again with a long timeout, it answers once the follower resumes and fetches.
        answer: list = []
        asking = threading.Thread(target=lambda: answer.append(
            _in_hub(cluster, lambda: delete_records(cluster.bootstrap, topic_name, 400, operation_timeout=30))))
        started = time.monotonic()
        asking.start()
        time.sleep(1.5)
        assert not answer, f"answered while a follower was paused: {answer}"
    finally:
        follower.resume()
    resumed = time.monotonic()
    asking.join(timeout=60)
    assert answer and answer[0] == (400, None), answer
    print(f"DeleteRecords answered {time.monotonic() - resumed:.2f} s after node {follower.node_id} resumed "
          f"({time.monotonic() - started:.2f} s in all): low watermark {answer[0][0]}")

    # Every replica up: it answers with the low watermark at once (well, at the followers' next fetches).
    started = time.monotonic()
    with cluster.hosts.in_hub():
        low, error = delete_records(cluster.bootstrap, topic_name, 700, operation_timeout=30)
    print(f"DeleteRecords with every replica up: low watermark {low} in {time.monotonic() - started:.2f} s")
    assert (low, error) == (700, None)


def _in_hub(cluster: Cluster, call):
    with cluster.hosts.in_hub():
        return call()


def admin_isr(cluster: Cluster, topic: str) -> list[int]:
    with cluster.hosts.in_hub():
        md = admin(cluster.bootstrap).list_topics(topic, timeout=10)
    return list(md.topics[topic].partitions[0].isrs)
