"""Helpers for test_chaos.py: a broker started with extra `serve` flags, raw batches with a compression codec,
a CRC-checking full consume, and process memory readings."""

from __future__ import annotations

import time
from pathlib import Path

from confluent_kafka import OFFSET_BEGINNING, KafkaException, TopicPartition

import clients
import kafka_wire as kw
from conftest import BrokerProcess

# Record batch attribute bits 0-2: the compression codec (Kafka: 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd).
CODEC_GZIP = 1
CODEC_SNAPPY = 2
CODEC_LZ4 = 3
CODEC_ZSTD = 4

ERROR_KAFKA_STORAGE_ERROR = 56


class ConfiguredBroker(BrokerProcess):
    """A BrokerProcess whose `serve` command line carries extra flags (e.g. `--set max_connections=50`)."""

    def __init__(self, binary: str, data_dir: Path, shards: int, log_dir: Path, extra_args: list[str]):
        super().__init__(binary, data_dir, shards, log_dir, extra_args=extra_args)


def vm_rss_bytes(pid: int) -> int:
    """Resident set size of a process, from /proc/<pid>/status (VmRSS is in kB)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS in /proc/{pid}/status")


def raw_batch(records: bytes, record_count: int, attributes: int) -> bytes:
    """A v2 record batch whose `records` section is `records` verbatim (e.g. compressed bytes, or garbage that
    claims to be compressed), with a correct CRC32C, so the batch is well formed at the batch level."""
    return kw.raw_batch(records, record_count, attributes=attributes)


def plain_batch(values: list[bytes]) -> bytes:
    """An uncompressed v2 batch of null-key records."""
    return kw.record_batch(values)


def produce_raw(sock, correlation_id: int, topic: str, batch: bytes, partition: int = 0) -> kw.ProducePartition:
    sock.sendall(kw.produce_v7(correlation_id, topic, {partition: batch}))
    got = kw.read_response(sock)
    assert got is not None, "broker closed the connection instead of answering the Produce"
    assert got[0] == correlation_id, f"correlation id {got[0]}, expected {correlation_id}"
    return kw.parse_produce_v7(got[1])[topic][partition]


def fetch_raw(sock, correlation_id: int, topic: str, partition: int, offset: int, max_bytes: int = 8 << 20):
    sock.sendall(kw.fetch_v4(correlation_id, topic, {partition: offset}, max_bytes=max_bytes,
                             partition_max_bytes=max_bytes))
    got = kw.read_response(sock)
    assert got is not None, "broker closed the connection instead of answering the Fetch"
    assert got[0] == correlation_id
    return kw.parse_fetch_v4(got[1])[topic][partition]


def consume_checked(bootstrap: str, topic: str, partitions: int, timeout: float = 120.0):
    """Every record of the topic from the beginning up to the high watermarks, with librdkafka checking every
    batch's CRC (check.crcs): {partition: [(offset, value), ...]}, and the high watermarks. Any consumer error
    fails."""
    c = clients.consumer(bootstrap, **{"check.crcs": True, "group.id": "chaos-check"})
    try:
        high = {p: hw for p, (_, hw) in clients.watermarks(c, topic, partitions).items()}
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        out: dict[int, list[tuple[int, bytes]]] = {p: [] for p in range(partitions)}
        done = {p for p in range(partitions) if high[p] == 0}
        deadline = time.monotonic() + timeout
        while len(done) < partitions:
            assert time.monotonic() < deadline, f"timed out: got {[len(v) for v in out.values()]}, high {high}"
            for msg in c.consume(num_messages=10_000, timeout=0.5):
                if msg.error() is not None:
                    raise KafkaException(msg.error())
                part = msg.partition()
                out[part].append((msg.offset(), msg.value()))
                if msg.offset() >= high[part] - 1:
                    done.add(part)
        return out, high
    finally:
        c.close()
