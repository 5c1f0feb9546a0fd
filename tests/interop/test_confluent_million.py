"""Issue 2: confluent-kafka creates an 8-partition topic, produces 1,000,000 keyed records with acks=all and
reads them all back from the beginning: each exactly once, in order per key, on the partition murmur2 gives."""

from __future__ import annotations

import os
import time

import pytest
from confluent_kafka import OFFSET_BEGINNING, TopicPartition

import clients
from murmur2 import partition_for_key

RECORDS = int(os.environ.get("INTEROP_MILLION_RECORDS", "1000000"))
PARTITIONS = 8
KEYS = 1000


@pytest.mark.timeout(900)
@pytest.mark.parametrize("broker", [1, 2], indirect=True, ids=["shards1", "shards2"])
def test_million_keyed_records_round_trip(broker, topic_name):
    clients.create_topic(broker.bootstrap, topic_name, PARTITIONS)
    expected_partition = [partition_for_key(f"key-{k}".encode(), PARTITIONS) for k in range(KEYS)]
    keys = [f"key-{k}".encode() for k in range(KEYS)]

    # ---- produce
    started = time.monotonic()
    p = clients.producer(
        broker.bootstrap,
        # librdkafka's default partitioner is consistent_random (CRC32); the Java client's is murmur2.
        partitioner="murmur2_random",
        **{
            "linger.ms": 5,
            "batch.num.messages": 10_000,
            "queue.buffering.max.kbytes": 1_048_576,
            # Without idempotence a retried request may land after later ones; per-key order needs one request
            # in flight (the broker's order is what is under test, not librdkafka's retry order).
            "max.in.flight.requests.per.connection": 1,
        },
    )
    delivered = 0
    errors: list[str] = []
    wrong_partition: list[tuple[int, int]] = []

    def on_delivery(err, msg):
        nonlocal delivered
        if err is not None:
            errors.append(str(err))
            return
        delivered += 1
        seq = int(msg.value()[2:])
        if msg.partition() != expected_partition[seq % KEYS]:
            wrong_partition.append((seq, msg.partition()))

    produce = p.produce
    poll = p.poll
    for i in range(RECORDS):
        value = b"v-%09d" % i
        while True:
            try:
                produce(topic_name, key=keys[i % KEYS], value=value, on_delivery=on_delivery)
                break
            except BufferError:
                poll(0.05)
        if i == 0:
            # Wait for the first record: until librdkafka knows the partition count it parks records on an
            # unassigned queue, and records parked there can land after later ones (a client artefact, not
            # the broker's ordering).
            assert p.flush(30) == 0, "first record not delivered within 30 s"
        elif i % 1000 == 0:
            poll(0)
    remaining = p.flush(120)
    produce_s = time.monotonic() - started
    assert remaining == 0, f"{remaining} records undelivered after flush"
    assert not errors, f"{len(errors)} delivery errors, first: {errors[:3]}"
    assert delivered == RECORDS
    assert not wrong_partition, f"{len(wrong_partition)} records on the wrong partition, e.g. {wrong_partition[:5]}"

    # ---- consume everything from the beginning
    started = time.monotonic()
    c = clients.consumer(broker.bootstrap, **{"fetch.max.bytes": 52_428_800, "queued.max.messages.kbytes": 262_144})
    seen = bytearray(RECORDS)
    last_seq_per_key = [-1] * KEYS
    last_offset_per_partition = [-1] * PARTITIONS
    problems: list[str] = []
    received = 0
    try:
        high = clients.watermarks(c, topic_name, PARTITIONS)
        assert sum(hw - lo for lo, hw in high.values()) == RECORDS, f"watermarks {high}"
        c.assign([TopicPartition(topic_name, part, OFFSET_BEGINNING) for part in range(PARTITIONS)])
        deadline = time.monotonic() + 600
        idle_after_all = None
        while True:
            msgs = c.consume(num_messages=10_000, timeout=0.5)
            for msg in msgs:
                if msg.error() is not None:
                    problems.append(f"consumer error {msg.error()}")
                    continue
                received += 1
                seq = int(msg.value()[2:])
                key_index = seq % KEYS
                part = msg.partition()
                if msg.key() != keys[key_index]:
                    problems.append(f"seq {seq}: key {msg.key()!r}")
                if seen[seq]:
                    problems.append(f"seq {seq} delivered twice")
                seen[seq] = 1
                if seq <= last_seq_per_key[key_index]:
                    problems.append(f"key {key_index}: seq {seq} (partition {part} offset {msg.offset()}) after seq {last_seq_per_key[key_index]}")
                last_seq_per_key[key_index] = seq
                if part != expected_partition[key_index]:
                    problems.append(f"seq {seq} on partition {part}, murmur2 says {expected_partition[key_index]}")
                if msg.offset() <= last_offset_per_partition[part]:
                    problems.append(f"partition {part}: offset {msg.offset()} after {last_offset_per_partition[part]}")
                last_offset_per_partition[part] = msg.offset()
                if len(problems) > 20:
                    break
            if len(problems) > 20:
                break
            if received >= RECORDS:
                # keep polling a moment: a duplicate arriving late must still be caught
                if idle_after_all is None:
                    idle_after_all = time.monotonic()
                elif time.monotonic() - idle_after_all > 1.0:
                    break
            assert time.monotonic() < deadline, f"consume timed out with {received}/{RECORDS} records"
    finally:
        c.close()
    consume_s = time.monotonic() - started
    assert not problems, "\n".join(problems[:20])
    assert received == RECORDS
    assert all(seen), f"missing sequence numbers, first: {seen.index(0)}"
    print(
        f"\n{RECORDS} records: produce {produce_s:.1f} s ({RECORDS / produce_s:,.0f}/s), "
        f"consume {consume_s:.1f} s ({RECORDS / consume_s:,.0f}/s)"
    )
