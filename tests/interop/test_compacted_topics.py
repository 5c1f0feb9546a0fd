"""Records on compacted topics (Kafka's LogValidator rule): a topic whose cleanup.policy includes compact refuses
records without a key, answering INVALID_RECORD (87) for the partition; keyed records to it, and keyless records to
a delete topic, are accepted. Checked with confluent-kafka (librdkafka), on every partition of a topic spread over
two shards (partitions owned by the other shard go over the mesh), with and without compression."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError
from confluent_kafka.admin import AdminClient, NewTopic

import clients

TIMEOUT = 30
PARTITIONS = 4
# A refused delivery must come back well within this (INVALID_RECORD is not retriable).
DELIVERY_TIMEOUT_MS = 20_000


def create(bootstrap: str, name: str, policy: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    config = {"cleanup.policy": policy}
    admin.create_topics([NewTopic(name, PARTITIONS, 1, config=config)])[name].result(timeout=TIMEOUT)
    clients.wait_for_topic(bootstrap, admin, name, PARTITIONS)


def deliver(bootstrap: str, topic: str, records, compression: str) -> list[tuple[int, KafkaError | None]]:
    """Produces (partition, key, value) triples; returns (partition, error) per delivery report."""
    overrides = {"compression.type": compression, "message.timeout.ms": DELIVERY_TIMEOUT_MS}
    producer = clients.producer(bootstrap, **overrides)
    reports: list[tuple[int, KafkaError | None]] = []

    def on_delivery(err, msg) -> None:
        reports.append((msg.partition(), err))

    for partition, key, value in records:
        producer.produce(topic, key=key, value=value, partition=partition, on_delivery=on_delivery)
    assert producer.flush(TIMEOUT) == 0
    assert len(reports) == len(records)
    return reports


@pytest.mark.parametrize("broker", [2], indirect=True, ids=["shards2"])
@pytest.mark.parametrize("policy", ["compact", "compact,delete"])
@pytest.mark.parametrize("compression", ["none", "zstd"])
def test_compacted_topic_refuses_keyless_records(broker, topic_name, policy, compression):
    create(broker.bootstrap, topic_name, policy)
    keyless = [(p, None, f"keyless-{p}".encode()) for p in range(PARTITIONS)]
    for partition, error in deliver(broker.bootstrap, topic_name, keyless, compression):
        assert error is not None, f"keyless record accepted on partition {partition}"
        assert error.code() == KafkaError.INVALID_RECORD, f"partition {partition}: {error}"

    keyed = [(p, f"key-{p}".encode(), f"keyed-{p}".encode()) for p in range(PARTITIONS)]
    for partition, error in deliver(broker.bootstrap, topic_name, keyed, compression):
        assert error is None, f"keyed record refused on partition {partition}: {error}"
    records, _ = clients.consume_all(broker.bootstrap, topic_name, PARTITIONS, timeout=TIMEOUT)
    # Only the keyed records were stored, each at offset 0 of its partition.
    assert records == {
        p: [(0, f"key-{p}".encode(), f"keyed-{p}".encode())] for p in range(PARTITIONS)
    }


def test_delete_topic_accepts_keyless_records(broker, topic_name):
    create(broker.bootstrap, topic_name, "delete")
    keyless = [(p, None, f"keyless-{p}".encode()) for p in range(PARTITIONS)]
    for partition, error in deliver(broker.bootstrap, topic_name, keyless, "lz4"):
        assert error is None, f"keyless record refused on partition {partition}: {error}"
    records, _ = clients.consume_all(broker.bootstrap, topic_name, PARTITIONS, timeout=TIMEOUT)
    assert {p: [v for _, _, v in rs] for p, rs in records.items()} == {
        p: [f"keyless-{p}".encode()] for p in range(PARTITIONS)
    }
