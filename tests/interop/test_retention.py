"""Issue 9: retention by time deletes old segments, the log start moves and a consumer from offset 0 is reset to
it; DeleteRecords moves the log start on request."""

from __future__ import annotations

import stat
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

import clients

TIMEOUT = 20
# 6 MiB of 1 KiB records into 1 MiB segments: five or six sealed segments.
RECORDS = 6000
VALUE = b"x" * 1024
# How long retention may take to notice: retention.ms (3 s) + the broker's 2 s check interval + slack.
RETENTION_WAIT_S = 15


def disk_bytes(directory: Path) -> int:
    """Bytes allocated by the files of `directory`. The broker keeps working while this runs: a file
    listed may be renamed or removed before its stat (a seal renames `*.tmp` index files), and is
    then no longer there to count."""
    total = 0
    for path in directory.iterdir():
        try:
            status = path.stat()
        except FileNotFoundError:
            continue
        if stat.S_ISREG(status.st_mode):
            total += status.st_blocks * 512
    return total


def segment_sizes(directory: Path) -> dict[int, int]:
    """Size of each segment file by base offset, skipping any that retention removes meanwhile."""
    sizes = {}
    for path in directory.glob("*.log"):
        try:
            sizes[int(path.stem)] = path.stat().st_size
        except FileNotFoundError:
            continue
    return sizes


def produce(bootstrap: str, topic: str) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for i in range(RECORDS):
        producer.produce(topic, value=VALUE, key=str(i).encode(), partition=0)
        if i % 500 == 0:
            producer.poll(0)
    assert producer.flush(TIMEOUT) == 0


def watermarks(bootstrap: str, topic: str) -> tuple[int, int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "wm"})
    try:
        return consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=TIMEOUT, cached=False)
    finally:
        consumer.close()


@pytest.mark.parametrize("broker", [1, 2], indirect=True, ids=["shards1", "shards2"])
def test_time_retention_deletes_segments_and_resets_consumers(broker, topic_name):
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    config = {"retention.ms": "3000", "segment.bytes": str(1 << 20)}
    admin.create_topics([NewTopic(topic_name, 1, 1, config=config)])[topic_name].result(timeout=TIMEOUT)
    clients.wait_for_topic(broker.bootstrap, admin, topic_name, 1)
    produce(broker.bootstrap, topic_name)
    partition_dir = Path(broker.partition_data_dir) / f"{topic_name}-0"
    segments_before = sorted(partition_dir.glob("*.log"))
    assert len(segments_before) >= 4, segments_before
    bytes_before = disk_bytes(partition_dir)

    deadline = time.monotonic() + RETENTION_WAIT_S
    low, high = watermarks(broker.bootstrap, topic_name)
    while low == 0 and time.monotonic() < deadline:
        time.sleep(0.5)
        low, high = watermarks(broker.bootstrap, topic_name)
    assert high == RECORDS
    assert 0 < low < high, (low, high)
    segments_after = sorted(partition_dir.glob("*.log"))
    assert len(segments_after) == 1, segments_after
    assert int(segments_after[0].stem) == low
    assert disk_bytes(partition_dir) < bytes_before

    consumer = Consumer(
        {
            "bootstrap.servers": broker.bootstrap,
            "group.id": f"{topic_name}-reader",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    try:
        consumer.assign([TopicPartition(topic_name, 0, 0)])
        first = None
        deadline = time.monotonic() + TIMEOUT
        while first is None and time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is not None and message.error() is None:
                first = message.offset()
        assert first == low
    finally:
        consumer.close()


def test_delete_records_moves_the_log_start(broker, topic_name):
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(topic_name, 1, 1, config={"segment.bytes": str(1 << 20)})])[topic_name].result(
        timeout=TIMEOUT
    )
    clients.wait_for_topic(broker.bootstrap, admin, topic_name, 1)
    produce(broker.bootstrap, topic_name)
    result = admin.delete_records([TopicPartition(topic_name, 0, 2500)])
    deleted = result[TopicPartition(topic_name, 0, 2500)].result(timeout=TIMEOUT)
    assert deleted.low_watermark == 2500
    assert watermarks(broker.bootstrap, topic_name) == (2500, RECORDS)
    partition_dir = Path(broker.partition_data_dir) / f"{topic_name}-0"
    # Segments wholly below the new start are gone: only the one holding 2500 starts at or before it.
    bases = sorted(int(p.stem) for p in partition_dir.glob("*.log"))
    assert bases[0] <= 2500 and all(base > 2500 for base in bases[1:]), bases

    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "dr", "auto.offset.reset": "earliest"})
    try:
        consumer.assign([TopicPartition(topic_name, 0, 0)])
        first = None
        deadline = time.monotonic() + TIMEOUT
        while first is None and time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is not None and message.error() is None:
                first = message.offset()
        # The batch holding 2500 is returned whole; the client skips nothing below the batch's base, so the
        # first offset seen is at most 2500 and never below the segment that holds it.
        assert first is not None and bases[0] <= first <= 2500
    finally:
        consumer.close()


def test_size_retention_set_by_incremental_alter_applies_to_the_open_log(broker, topic_name):
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource

    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(topic_name, 1, 1, config={"segment.bytes": str(1 << 20)})])[topic_name].result(
        timeout=TIMEOUT
    )
    clients.wait_for_topic(broker.bootstrap, admin, topic_name, 1)
    produce(broker.bootstrap, topic_name)
    partition_dir = Path(broker.partition_data_dir) / f"{topic_name}-0"
    assert len(list(partition_dir.glob("*.log"))) >= 4
    assert watermarks(broker.bootstrap, topic_name)[0] == 0
    resource = ConfigResource(
        ConfigResource.Type.TOPIC,
        topic_name,
        incremental_configs=[
            ConfigEntry("retention.bytes", str(2 << 20), incremental_operation=AlterConfigOpType.SET)
        ],
    )
    admin.incremental_alter_configs([resource])[resource].result(timeout=TIMEOUT)
    deadline = time.monotonic() + RETENTION_WAIT_S
    while watermarks(broker.bootstrap, topic_name)[0] == 0 and time.monotonic() < deadline:
        time.sleep(0.5)
    low, high = watermarks(broker.bootstrap, topic_name)
    assert 0 < low < high == RECORDS
    # What stays is at least retention.bytes and less than retention.bytes plus one segment.
    sizes = segment_sizes(partition_dir)
    kept = sum(size for base, size in sizes.items() if base != max(sizes))
    assert kept <= (2 << 20), kept
