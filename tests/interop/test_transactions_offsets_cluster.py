"""Issue 22: read-process-write transactions in a cluster whose group coordinator and transaction coordinator
are different brokers. Kafka clients send TxnOffsetCommit (`send_offsets_to_transaction`) to the group's
coordinator (the leader of the group's `__consumer_offsets` partition), which holds the offsets pending until
the transaction coordinator's marker reaches that partition (WriteTxnMarkers between brokers):

- a confluent-kafka read-process-write loop commits some transactions and aborts others: the group's committed
  offsets (a fresh consumer's OffsetFetch) are those of the last committed transaction, and a read_committed
  consumer of the output sees exactly the committed transactions' records;
- kill -9 of the group coordinator while a transaction holding pending offsets is open: the new leader of the
  offsets partition rebuilds them from its copy of the log, the transaction commits against it, and the offsets
  are committed exactly once (the records of that transaction are in the output once, the offsets equal its
  positions, nothing is read again); the application goes on to the end of its input;
- the same read-process-write loop with the Java client (4.4), coordinators apart.
"""

from __future__ import annotations

import re
import time

import pytest
from confluent_kafka import OFFSET_BEGINNING, KafkaException, TopicPartition

import clients
from test_cluster import wait_until
from test_java_client import java_classpath  # noqa: F401 (a fixture)
from test_replication import (  # noqa: F401 (cluster: a fixture)
    BINARY,
    cluster,
    committed_offsets,
    create_replicated,
    isr_sizes,
    offsets_partition,
    offsets_replicas,
)
from test_transactions_cluster import (
    KEY_TYPE_GROUP,
    KEY_TYPE_TRANSACTION,
    find_coordinator,
    read_all,
    transactional_producer,
)

PARTITIONS = 2
RECORDS_PER_PARTITION = 30
BATCH = 4
UNKNOWN_OFFSET = -1001

pytestmark = pytest.mark.skipif(not BINARY, reason="cluster tests start their own ringbroker nodes (RINGBROKER_BIN)")


def apart(c, topic: str) -> tuple[str, str, int, int]:
    """A group and a transactional id (Kafka's placement: abs(hashCode) % 50 for both topics) whose coordinators
    are different brokers; returns them and their coordinators."""
    for i in range(40):
        group, transactional_id = f"{topic}-g{i}", f"{topic}-tx{i}"
        with c.hosts.in_hub():
            group_node = wait_until(lambda: find_coordinator(c.nodes[0].bootstrap, group, KEY_TYPE_GROUP), 60,
                                    "the group's coordinator")
            txn_node = wait_until(lambda: find_coordinator(c.nodes[0].bootstrap, transactional_id, KEY_TYPE_TRANSACTION), 60,
                                  "the transactional id's coordinator")
        if group_node != txn_node:
            return group, transactional_id, group_node, txn_node
    raise AssertionError("no group and transactional id with different coordinators in 40 tries")


class ReadProcessWrite:
    """A read-process-write application: a consumer of `source` in `group`, a transactional producer writing
    each record to the same partition of `sink`, the consumer's positions sent to each transaction. An aborted
    transaction rewinds the consumer to where it began, as applications do."""

    def __init__(self, bootstrap: str, group: str, transactional_id: str, source: str, sink: str):
        self.source, self.sink = source, sink
        self.consumer = clients.consumer(bootstrap, **{"group.id": group, "isolation.level": "read_committed"})
        self.consumer.subscribe([source])
        deadline = time.monotonic() + 60
        while not self.consumer.assignment() and time.monotonic() < deadline:
            msg = self.consumer.poll(0.2)
            if msg is not None and not msg.error():  # read again by the first transaction
                self.consumer.seek(TopicPartition(source, msg.partition(), msg.offset()))
        assert len(self.consumer.assignment()) == PARTITIONS, "the member was not assigned the input"
        self.next_offsets: dict[int, int] = {}
        self.producer = transactional_producer(bootstrap, transactional_id)
        self.producer.init_transactions(90)
        self.committed_output: dict[int, list[bytes]] = {p: [] for p in range(PARTITIONS)}
        self.committed_positions: dict[int, int] = {}
        self.transactions = {"committed": 0, "aborted": 0}

    def positions(self) -> dict[int, int]:
        """The next offset to read of every partition read so far (-1001, Kafka's "none", for the others)."""
        return {p: self.next_offsets.get(p, UNKNOWN_OFFSET) for p in range(PARTITIONS)}

    def begin(self, limit: int = BATCH * PARTITIONS) -> tuple[dict[int, int], dict[int, list[bytes]]]:
        """Begins a transaction: reads up to `limit` records, writes them out, sends the positions to the
        transaction. Returns the positions it started from and what it wrote."""
        start = dict(self.next_offsets)
        self.producer.begin_transaction()
        written: dict[int, list[bytes]] = {p: [] for p in range(PARTITIONS)}
        read = 0
        end = time.monotonic() + 10
        while read < limit and time.monotonic() < end:
            msg = self.consumer.poll(0.2)
            if msg is None or msg.error():
                continue
            value = b"out-" + msg.value()
            self.producer.produce(self.sink, value=value, partition=msg.partition())
            written[msg.partition()].append(value)
            self.next_offsets[msg.partition()] = msg.offset() + 1
            read += 1
        assert self.producer.flush(60) == 0, "output not acknowledged"
        self.producer.send_offsets_to_transaction(
            [TopicPartition(self.source, p, o) for p, o in self.next_offsets.items()],
            self.consumer.consumer_group_metadata(), 60)
        return start, written

    def rewind(self, to: dict[int, int]) -> None:
        """Back to `to` (an aborted transaction's records are read again)."""
        self.next_offsets = dict(to)
        for p in range(PARTITIONS):
            self.consumer.seek(TopicPartition(self.source, p, to.get(p, OFFSET_BEGINNING)))

    def end(self, start: dict[int, int], written: dict[int, list[bytes]], commit: bool) -> None:
        if commit:
            deadline = time.monotonic() + 120
            while True:
                try:
                    self.producer.commit_transaction(90)
                    break
                except KafkaException as e:
                    error = e.args[0]
                    print(f"commit: {error}")
                    assert error.retriable() and time.monotonic() < deadline, error
            for p, values in written.items():
                self.committed_output[p].extend(values)
            self.committed_positions = self.positions()
            self.transactions["committed"] += 1
        else:
            self.producer.abort_transaction(90)
            self.rewind(start)
            self.transactions["aborted"] += 1

    def run(self) -> None:
        """One committed transaction; one the cluster made abortable (a rebalance, a lost coordinator while the
        offsets were sent) is aborted and its records read again by the next."""
        try:
            start, written = self.begin()
        except KafkaException as e:
            error = e.args[0]
            print(f"transaction: {error}")
            assert error.txn_requires_abort(), error
            self.producer.abort_transaction(90)
            self.rewind({p: o for p, o in self.committed_positions.items() if o >= 0})
            return
        self.end(start, written, commit=True)

    def close(self) -> None:
        self.consumer.close()


@pytest.mark.timeout(600)
def test_transactional_offsets_commit_through_the_groups_coordinator(cluster, topic_name):
    source, sink = f"{topic_name}-in", f"{topic_name}-out"
    for name in (source, sink):
        create_replicated(cluster, name, partitions=PARTITIONS, min_insync=2)
        wait_until(lambda: set(isr_sizes(cluster, name).values()) == {3}, 60, f"full ISRs of {name}")
    with cluster.hosts.in_hub():
        records = [(f"k{p}-{i}".encode(), f"p{p}-{i}".encode(), p)
                   for p in range(PARTITIONS) for i in range(RECORDS_PER_PARTITION)]
        producer = clients.producer(cluster.bootstrap)
        for key, value, p in records:
            producer.produce(source, key=key, value=value, partition=p)
        assert producer.flush(60) == 0
    group, transactional_id, group_node, txn_node = apart(cluster, topic_name)
    slot = offsets_partition(group)
    assert offsets_replicas(cluster, slot)[0] == group_node, "the group's coordinator leads its offsets partition"
    print(f"group {group}: offsets partition {slot} on node {group_node}; transactional id {transactional_id}: "
          f"coordinator node {txn_node}")

    with cluster.hosts.in_hub():
        app = ReadProcessWrite(cluster.bootstrap, group, transactional_id, source, sink)
        try:
            # Committed, committed, aborted, committed, aborted, committed.
            for t, commit in enumerate([True, True, False, True, False, True]):
                start, written = app.begin()
                app.end(start, written, commit)
                print(f"transaction {t}: {'committed' if commit else 'aborted'}, "
                      f"{sum(len(v) for v in written.values())} records, positions {app.positions()}")
            expected_positions = app.committed_positions
            committed = wait_until(lambda: committed_offsets(cluster.bootstrap, group, source, PARTITIONS), 60,
                                   "the group's committed offsets")
            assert committed == expected_positions, (committed, expected_positions)
            assert sum(expected_positions.values()) == 4 * BATCH * PARTITIONS, expected_positions

            # kill -9 of the group's coordinator while a transaction holds pending offsets on it.
            wait_until(lambda: len(offsets_replicas(cluster, slot)[2]) == 3, 60, "the offsets partition in sync")
            start, written = app.begin()
            pending_positions = app.positions()
            coordinator = cluster.node(group_node)
            coordinator.kill9()
            killed = time.monotonic()
            app.end(start, written, commit=True)
            print(f"the transaction open at the kill committed {time.monotonic() - killed:.2f} s after kill -9 of "
                  f"node {group_node}")
            survivor = next(n for n in cluster.nodes if n is not coordinator)
            new_leader = wait_until(lambda: (leader := offsets_replicas(cluster, slot, via=survivor)[0]) != group_node
                                    and leader >= 0 and leader, 60, "a new leader of the offsets partition")
            print(f"new group coordinator: node {new_leader}")
            committed = wait_until(lambda: committed_offsets(cluster.bootstrap, group, source, PARTITIONS), 90,
                                   "the committed offsets from the new group coordinator")
            assert committed == pending_positions, (committed, pending_positions)
            # librdkafka's producer keeps sending TxnOffsetCommit to the group coordinator it knew until that
            # broker answers (NOT_COORDINATOR, then it looks again): the killed broker comes back as a follower.
            coordinator.start()
            # The application goes on against the new coordinator to the end of the input.
            deadline = time.monotonic() + 180
            while sum(app.positions().values()) < len(records) and time.monotonic() < deadline:
                app.run()
            final_positions = app.committed_positions
        finally:
            app.close()
        committed = wait_until(lambda: committed_offsets(cluster.bootstrap, group, source, PARTITIONS), 60,
                               "the final committed offsets")
        expected = sum(len(v) for v in app.committed_output.values())
        seen = read_all(cluster.bootstrap, sink, "read_committed", expected, partitions=PARTITIONS)
    print(f"transactions: {app.transactions}")
    assert committed == final_positions == {p: RECORDS_PER_PARTITION for p in range(PARTITIONS)}, committed
    # Exactly the committed transactions' output, each input record once.
    assert seen == app.committed_output
    assert seen == {p: [f"out-p{p}-{i}".encode() for i in range(RECORDS_PER_PARTITION)] for p in range(PARTITIONS)}


@pytest.mark.timeout(420)
def test_the_java_read_process_write_loop_with_its_coordinators_apart(cluster, topic_name, java_classpath):
    """kafka-clients 4.4 (TransactionalCopy: sendOffsetsToTransaction, every third transaction aborted and
    rewound) with the group and the transactional id coordinated by different brokers."""
    import subprocess

    from test_java_client import log_flags

    source, sink = f"{topic_name}-in", f"{topic_name}-out"
    for name in (source, sink):
        create_replicated(cluster, name, partitions=1, min_insync=2)
    values = [b"record-%04d" % i for i in range(200)]
    with cluster.hosts.in_hub():
        clients.produce_all(clients.producer(cluster.bootstrap), source, [(None, v) for v in values], partition=0)
    group, transactional_id, group_node, txn_node = apart(cluster, topic_name)
    print(f"group coordinator node {group_node}, transaction coordinator node {txn_node}")
    cmd = cluster.hosts.hub_cmd([
        "java", "-Xmx512m", *log_flags(), "-cp", java_classpath, "ringbroker.interop.TransactionalCopy",
        cluster.bootstrap, source, sink, group, transactional_id, str(len(values)),
    ])
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    m = re.search(r"COMMITTED (\d+) ABORTED (\d+)", done.stdout)
    assert m and int(m.group(1)) == len(values) and int(m.group(2)) > 0, done.stdout
    with cluster.hosts.in_hub():
        seen = read_all(cluster.bootstrap, sink, "read_committed", len(values), partitions=1)
        committed = wait_until(lambda: committed_offsets(cluster.bootstrap, group, source, 1), 60,
                               "the group's committed offsets")
    assert seen == {0: [v.upper() for v in values]}
    assert committed == {0: len(values)}
