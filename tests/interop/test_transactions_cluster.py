"""Issue 22: transactions in a cluster. Three ringbroker nodes on network-namespace test hosts, a topic whose
partitions are led by different brokers (replication factor 3):

- one transaction writes to every partition: its commit or abort marker reaches each partition's leader
  (Kafka's WriteTxnMarkers between brokers), so a read_committed consumer sees exactly the committed
  transactions and a read_uncommitted one sees everything;
- a transactional id has one coordinator whatever broker a client bootstraps from (the leader of the id's
  `__transaction_state` partition): a second producer with the same id, bootstrapped from another broker, fences
  the first (PRODUCER_FENCED) and nothing of the zombie's open transaction becomes visible.
"""

from __future__ import annotations

import time

import pytest
from confluent_kafka import OFFSET_BEGINNING, KafkaError, KafkaException, Producer, TopicPartition

import clients
from test_cluster import wait_until
from test_replication import BINARY, cluster, create_replicated, isr_sizes, leaders  # noqa: F401 (cluster: a fixture)

PARTITIONS = 3

pytestmark = pytest.mark.skipif(not BINARY, reason="cluster tests start their own ringbroker nodes (RINGBROKER_BIN)")


def transactional_producer(bootstrap: str, transactional_id: str) -> Producer:
    return Producer({"bootstrap.servers": bootstrap, "transactional.id": transactional_id,
                     "transaction.timeout.ms": 60_000, **clients.COMMON})


def read_all(bootstrap: str, topic: str, isolation: str, expected: int) -> dict[int, list[bytes]]:
    """Every record of the topic as a consumer with `isolation` reads it, waiting for `expected` records."""
    c = clients.consumer(bootstrap, **{"isolation.level": isolation, "group.id": f"{topic}-{isolation}"})
    out: dict[int, list[bytes]] = {p: [] for p in range(PARTITIONS)}
    try:
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
        deadline = time.monotonic() + 60
        while sum(len(v) for v in out.values()) < expected and time.monotonic() < deadline:
            msg = c.poll(0.5)
            if msg is not None and not msg.error():
                out[msg.partition()].append(msg.value())
        # Anything beyond what is expected would be a visible aborted record: read a little longer.
        end = time.monotonic() + 2
        while time.monotonic() < end:
            msg = c.poll(0.2)
            if msg is not None and not msg.error():
                out[msg.partition()].append(msg.value())
    finally:
        c.close()
    return out


@pytest.mark.timeout(300)
def test_a_transaction_commits_on_every_brokers_partitions(cluster, topic_name):
    create_replicated(cluster, topic_name, partitions=PARTITIONS, min_insync=2)
    wait_until(lambda: set(isr_sizes(cluster, topic_name).values()) == {3}, 60, "full ISRs")
    led_by = set(leaders(cluster, topic_name).values())
    print(f"partition leaders: {leaders(cluster, topic_name)}")
    assert len(led_by) > 1, "the placement put every leader on one broker"
    committed: dict[int, list[bytes]] = {p: [] for p in range(PARTITIONS)}
    everything: dict[int, list[bytes]] = {p: [] for p in range(PARTITIONS)}
    with cluster.hosts.in_hub():
        producer = transactional_producer(cluster.bootstrap, f"{topic_name}-tx")
        producer.init_transactions(60)
        for t in range(6):
            producer.begin_transaction()
            for p in range(PARTITIONS):
                for k in range(3):
                    value = f"t{t}-p{p}-{k}".encode()
                    producer.produce(topic_name, value=value, partition=p)
                    everything[p].append(value)
            producer.flush(30)
            if t % 3 == 2:
                producer.abort_transaction(60)
            else:
                producer.commit_transaction(60)
                for p in range(PARTITIONS):
                    committed[p].extend(v for v in everything[p][-3:])
        seen = read_all(cluster.bootstrap, topic_name, "read_committed", sum(len(v) for v in committed.values()))
        raw = read_all(cluster.bootstrap, topic_name, "read_uncommitted", sum(len(v) for v in everything.values()))
    assert seen == committed
    assert raw == everything


@pytest.mark.timeout(300)
def test_one_coordinator_per_transactional_id_fences_a_zombie_from_another_broker(cluster, topic_name):
    create_replicated(cluster, topic_name, partitions=PARTITIONS, min_insync=2)
    wait_until(lambda: set(isr_sizes(cluster, topic_name).values()) == {3}, 60, "full ISRs")
    transactional_id = f"{topic_name}-tx"
    first_node, other_node = cluster.nodes[0], cluster.nodes[2]
    with cluster.hosts.in_hub():
        zombie = transactional_producer(first_node.bootstrap, transactional_id)
        zombie.init_transactions(60)
        zombie.begin_transaction()
        for p in range(PARTITIONS):
            zombie.produce(topic_name, value=f"zombie-{p}".encode(), partition=p)
        zombie.flush(30)
        # Same id from another broker: the same coordinator bumps the epoch and aborts the open transaction.
        successor = transactional_producer(other_node.bootstrap, transactional_id)
        successor.init_transactions(60)
        with pytest.raises(KafkaException) as fenced:
            zombie.commit_transaction(30)
        error = fenced.value.args[0]
        print(f"zombie's commit: {error}")
        assert error.code() in (KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH), \
            error
        successor.begin_transaction()
        for p in range(PARTITIONS):
            successor.produce(topic_name, value=f"successor-{p}".encode(), partition=p)
        successor.commit_transaction(60)
        seen = read_all(cluster.bootstrap, topic_name, "read_committed", PARTITIONS)
    assert seen == {p: [f"successor-{p}".encode()] for p in range(PARTITIONS)}
