"""confluent-kafka helpers shared by the interop tests: topic creation, produce with delivery reports,
consume a whole topic, watermarks."""

from __future__ import annotations

import time
from dataclasses import dataclass

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

# librdkafka settings every test client uses: fail fast instead of retrying for minutes.
COMMON = {
    "socket.timeout.ms": 10_000,
    "api.version.request.timeout.ms": 10_000,
}


def create_topic(bootstrap: str, name: str, partitions: int, timeout: float = 30.0) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap, **COMMON})
    futures = admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
    futures[name].result(timeout=timeout)
    wait_for_topic(bootstrap, admin, name, partitions, timeout)


def wait_for_topic(bootstrap: str, admin: AdminClient, name: str, partitions: int, timeout: float = 30.0) -> None:
    """Until Metadata shows every partition with a leader and every partition answers ListOffsets (Apache
    Kafka shows leaders a moment before the partitions accept requests: NOT_LEADER_OR_FOLLOWER meanwhile)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        md = admin.list_topics(name, timeout=10)
        t = md.topics.get(name)
        last = t
        if t is not None and t.error is None and len(t.partitions) == partitions:
            if all(p.leader >= 0 for p in t.partitions.values()) and _partitions_answer(bootstrap, name, partitions):
                return
        time.sleep(0.1)
    raise AssertionError(f"topic {name} not ready with {partitions} partitions: {last}")


def _partitions_answer(bootstrap: str, name: str, partitions: int) -> bool:
    c = consumer(bootstrap)
    try:
        for p in range(partitions):
            c.get_watermark_offsets(TopicPartition(name, p), timeout=5)
        return True
    except KafkaException:
        return False
    finally:
        c.close()


@dataclass
class Delivered:
    partition: int
    offset: int
    key: bytes | None
    value: bytes


def producer(bootstrap: str, **overrides) -> Producer:
    config = {
        "bootstrap.servers": bootstrap,
        "acks": "all",
        "linger.ms": 5,
        "batch.num.messages": 10_000,
        "queue.buffering.max.messages": 500_000,
        "message.timeout.ms": 60_000,
        **COMMON,
    }
    config.update(overrides)
    return Producer(config)


class DeliveryTally:
    """An `on_delivery` callback that counts a producer's delivered records and keeps its errors."""

    def __init__(self) -> None:
        self.delivered = 0
        self.errors: list[str] = []

    def __call__(self, err, _msg) -> None:
        if err is not None:
            self.errors.append(str(err))
        else:
            self.delivered += 1


def produce_all(p: Producer, topic: str, records, partition: int | None = None) -> list[Delivered]:
    """Produces (key, value) pairs, flushes, and returns the delivery reports; fails on any delivery error."""
    delivered: list[Delivered] = []
    errors: list[str] = []

    def on_delivery(err, msg):
        if err is not None:
            errors.append(str(err))
        else:
            delivered.append(Delivered(msg.partition(), msg.offset(), msg.key(), msg.value()))

    for key, value in records:
        while True:
            try:
                if partition is None:
                    p.produce(topic, key=key, value=value, on_delivery=on_delivery)
                else:
                    p.produce(topic, key=key, value=value, partition=partition, on_delivery=on_delivery)
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
    remaining = p.flush(60)
    assert remaining == 0, f"{remaining} records still undelivered after 60 s"
    assert not errors, f"{len(errors)} delivery errors, first: {errors[:3]}"
    return delivered


def consumer(bootstrap: str, **overrides) -> Consumer:
    config = {
        "bootstrap.servers": bootstrap,
        "group.id": "interop-tests",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "enable.partition.eof": False,
        **COMMON,
    }
    config.update(overrides)
    return Consumer(config)


def watermarks(c: Consumer, topic: str, partitions: int) -> dict[int, tuple[int, int]]:
    return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10) for p in range(partitions)}


def consume_all(bootstrap: str, topic: str, partitions: int, timeout: float = 60.0):
    """Every record of the topic from the beginning up to the high watermarks read at the start:
    {partition: [(offset, key, value), ...]} in consumption order."""
    c = consumer(bootstrap)
    try:
        high = {p: hw for p, (_, hw) in watermarks(c, topic, partitions).items()}
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        out: dict[int, list[tuple[int, bytes | None, bytes]]] = {p: [] for p in range(partitions)}
        done = {p for p in range(partitions) if high[p] == 0}
        deadline = time.monotonic() + timeout
        while len(done) < partitions:
            assert time.monotonic() < deadline, (
                f"timed out: got {[len(v) for v in out.values()]} records, high watermarks {high}"
            )
            for msg in c.consume(num_messages=10_000, timeout=0.5):
                if msg.error() is not None:
                    raise KafkaException(msg.error())
                part = msg.partition()
                out[part].append((msg.offset(), msg.key(), msg.value()))
                if msg.offset() >= high[part] - 1:
                    done.add(part)
        return out, high
    finally:
        c.close()
