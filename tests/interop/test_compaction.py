"""Issue 9: log compaction. A cleanup.policy=compact topic with 100,000 updates over 1,000 keys compacts to at
most one record per key in its sealed segments, the latest value wins for every key, tombstoned keys vanish after
delete.retention.ms, and all of it holds after a restart."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

import clients

TIMEOUT = 30
KEYS = 1000
UPDATES = 100_000
# Keys whose last record is a tombstone.
TOMBSTONED = range(0, 100)
# Updates of other keys after the tombstones, so the tombstones end up in a sealed segment (> 1 segment).
FILLER_UPDATES = 20_000
FILLER_KEYS = 50
PADDING = b"p" * 80
# delete.retention.ms of the topic: short, so the test sees tombstones go.
DELETE_RETENTION_MS = 4000
# How long compaction may take to show: the broker's retention tick (2 s) and log_cleaner_interval_ms (5 s
# default) for the first pass, then delete.retention.ms and another interval for the tombstones; plus slack for a
# loaded machine.
COMPACTION_WAIT_S = 90
# A read that saw no record for this long after the last one is at the end of the log.
QUIET_S = 2.0


def produce_updates(bootstrap: str, topic: str) -> dict[bytes, bytes | None]:
    """Produces the updates, tombstones and filler; returns the expected latest value per key."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    latest: dict[bytes, bytes | None] = {}

    def send(key: bytes, value: bytes | None, i: int) -> None:
        producer.produce(topic, key=key, value=value, partition=0)
        latest[key] = value
        if i % 1000 == 0:
            producer.poll(0)

    for i in range(UPDATES):
        send(f"key-{i % KEYS}".encode(), f"value-{i}-".encode() + PADDING, i)
    for k in TOMBSTONED:
        send(f"key-{k}".encode(), None, k)
    for i in range(FILLER_UPDATES):
        send(f"filler-{i % FILLER_KEYS}".encode(), f"filler-{i}-".encode() + PADDING, i)
    assert producer.flush(TIMEOUT) == 0
    return latest


def consume_all(bootstrap: str, topic: str) -> list[tuple[int, bytes, bytes | None]]:
    """(offset, key, value) of every record from offset 0 to the high watermark. Compaction may have removed the
    records just below the high watermark, so a quiet second after the last record also ends the read."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"{topic}-reader",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        _, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=TIMEOUT, cached=False)
        consumer.assign([TopicPartition(topic, 0, 0)])
        records: list[tuple[int, bytes, bytes | None]] = []
        deadline = time.monotonic() + TIMEOUT
        last_message = time.monotonic()
        while not records or records[-1][0] + 1 < high:
            now = time.monotonic()
            assert now < deadline, f"consumed {len(records)} records, high watermark {high}"
            messages = consumer.consume(1000, 0.5)
            for message in messages:
                assert message.error() is None, message.error()
                records.append((message.offset(), message.key(), message.value()))
            if messages:
                last_message = now
            elif records and now - last_message > QUIET_S:
                break
        return records
    finally:
        consumer.close()


def active_base(partition_dir: Path) -> int:
    return max(int(p.stem) for p in partition_dir.glob("*.log"))


def check_compacted(records, partition_dir: Path, expected: dict[bytes, bytes | None], tombstones_gone: bool) -> None:
    offsets = [offset for offset, _, _ in records]
    assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets)
    sealed_end = active_base(partition_dir)
    seen: set[bytes] = set()
    for offset, key, _ in records:
        if offset < sealed_end:
            assert key not in seen, f"key {key!r} twice in sealed segments (offset {offset})"
            seen.add(key)
    latest: dict[bytes, bytes | None] = {}
    for _, key, value in records:
        latest[key] = value
    live = {key: value for key, value in expected.items() if value is not None}
    assert {key: value for key, value in latest.items() if value is not None} == live
    if tombstones_gone:
        dead = {key for key, value in expected.items() if value is None}
        assert not dead & latest.keys(), "tombstoned keys still present after delete.retention.ms"


def compacted_state(bootstrap: str, topic: str, partition_dir: Path, expected, tombstones_gone: bool) -> str | None:
    """None when the log is compacted as expected, else what is still wrong."""
    try:
        check_compacted(consume_all(bootstrap, topic), partition_dir, expected, tombstones_gone)
    except AssertionError as e:
        return str(e)
    return None


def create_compacted_topic(bootstrap: str, topic: str) -> None:
    """One partition, compacted as soon as a segment is sealed (1 MiB segments), tombstones kept
    DELETE_RETENTION_MS."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    config = {
        "cleanup.policy": "compact",
        "segment.bytes": str(1 << 20),
        "min.compaction.lag.ms": "0",
        "delete.retention.ms": str(DELETE_RETENTION_MS),
    }
    admin.create_topics([NewTopic(topic, 1, 1, config=config)])[topic].result(timeout=TIMEOUT)
    clients.wait_for_topic(bootstrap, admin, topic, 1)


@pytest.mark.parametrize("broker", [1, 2], indirect=True, ids=["shards1", "shards2"])
def test_compacted_topic_keeps_the_latest_value_per_key(broker, topic_name):
    create_compacted_topic(broker.bootstrap, topic_name)
    expected = produce_updates(broker.bootstrap, topic_name)
    partition_dir = Path(broker.partition_data_dir) / f"{topic_name}-0"
    assert len(list(partition_dir.glob("*.log"))) >= 3

    # Compaction runs in the background: at most one record per key in the sealed segments, latest values.
    deadline = time.monotonic() + COMPACTION_WAIT_S
    for tombstones_gone in (False, True):
        problem = "not checked"
        while time.monotonic() < deadline:
            problem = compacted_state(broker.bootstrap, topic_name, partition_dir, expected, tombstones_gone)
            if problem is None:
                break
            time.sleep(1)
        assert problem is None, f"tombstones_gone={tombstones_gone}: {problem}"

    broker.restart()
    check_compacted(consume_all(broker.bootstrap, topic_name), partition_dir, expected, tombstones_gone=True)


# kill -9 moments (s after the produce finished) of the crash test: before, during and after the first passes.
KILL_AFTER_S = (0.5, 2.0, 4.0, 6.5)


def test_kill9_during_compaction_leaves_a_valid_log(broker, topic_name):
    if not getattr(broker, "managed", False):
        pytest.skip("needs a broker the test can kill")
    create_compacted_topic(broker.bootstrap, topic_name)
    expected = produce_updates(broker.bootstrap, topic_name)
    partition_dir = Path(broker.partition_data_dir) / f"{topic_name}-0"
    for delay in KILL_AFTER_S:
        time.sleep(delay)
        broker.kill9()
        broker.start()
        # Whatever the cleaner had done, every live key reads back with its latest value.
        records = consume_all(broker.bootstrap, topic_name)
        latest: dict[bytes, bytes | None] = {}
        for _, key, value in records:
            latest[key] = value
        live = {key: value for key, value in expected.items() if value is not None}
        assert {key: value for key, value in latest.items() if value is not None} == live, f"after kill at {delay} s"
    log = broker.log_tail(100_000)
    print("cleaner passes before the last start:", log.count("compacted dir="))
    print("swaps finished by recovery:", log.count("finishing an interrupted segment swap"))
    leftovers = [p.name for p in partition_dir.iterdir() if p.name.endswith((".cleaned", ".swap"))]
    assert len(leftovers) <= 1, leftovers  # at most the swap of a pass running right now
    deadline = time.monotonic() + COMPACTION_WAIT_S
    problem = "not checked"
    while time.monotonic() < deadline:
        problem = compacted_state(broker.bootstrap, topic_name, partition_dir, expected, tombstones_gone=True)
        if problem is None:
            break
        time.sleep(1)
    assert problem is None, problem
