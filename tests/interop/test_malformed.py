"""Issues 2 and 8 (subset): hostile bytes over a raw socket. Each case asserts the broker's answer (a Kafka
error code, or a closed connection) and then that other clients are unaffected: a confluent-kafka producer and
consumer that stay connected through the whole module still produce and read back a fresh record, and a raw
connection opened at the start still gets ApiVersions answered.

All cases share one broker (2 shards). The request layouts are documented in kafka_wire.py."""

from __future__ import annotations

import struct
import time
import uuid

import pytest
from confluent_kafka import TopicPartition

import clients
import kafka_wire as kw

# Default request size limit (issue 2: a setting, default 100 MiB; Kafka's socket.request.max.bytes, which
# bench/reference/kafka.sh sets to the same value).
MAX_REQUEST_BYTES = 100 * 1024 * 1024
# How long the broker may take to close a connection it should drop.
CLOSE_TIMEOUT_S = 10.0
# Errors a broker may answer for a record batch that is not valid (Kafka answers one of these).
BATCH_REJECTED = {kw.ERROR_CORRUPT_MESSAGE, kw.ERROR_INVALID_RECORD}


class Witness:
    """The 'everyone else' of the suite: long-lived clients that must keep working after each bad input."""

    def __init__(self, bootstrap: str):
        self.bootstrap = bootstrap
        self.topic = f"witness-{uuid.uuid4().hex[:8]}"
        self.target = f"target-{uuid.uuid4().hex[:8]}"  # raw produces go here
        clients.create_topic(bootstrap, self.topic, 2)
        clients.create_topic(bootstrap, self.target, 1)
        self.producer = clients.producer(bootstrap, **{"message.timeout.ms": 15_000})
        self.consumer = clients.consumer(bootstrap, **{"group.id": "malformed-witness"})
        self.raw = kw.connect(bootstrap)
        self.raw_correlation = 0
        self.checks = 0

    def check(self) -> None:
        self.checks += 1
        value = b"witness-%d-%s" % (self.checks, uuid.uuid4().hex.encode())
        delivered = clients.produce_all(self.producer, self.topic, [(None, value)], partition=self.checks % 2)
        d = delivered[0]
        self.consumer.assign([TopicPartition(self.topic, d.partition, d.offset)])
        deadline = time.monotonic() + 15
        while True:
            assert time.monotonic() < deadline, "witness consumer did not get its record back within 15 s"
            msg = self.consumer.poll(0.5)
            if msg is None:
                continue
            assert msg.error() is None, f"witness consumer error: {msg.error()}"
            if msg.offset() == d.offset:
                assert msg.value() == value
                break
        self.raw_correlation += 1
        self.raw.sendall(kw.api_versions_v0(self.raw_correlation))
        got = kw.read_response(self.raw)
        assert got is not None, "an unrelated raw connection was closed"
        assert got[0] == self.raw_correlation

    def target_high_watermark(self) -> int:
        return self.consumer.get_watermark_offsets(TopicPartition(self.target, 0), timeout=10)[1]

    def close(self) -> None:
        self.producer.flush(10)
        self.consumer.close()
        self.raw.close()


@pytest.fixture(scope="module")
def witness(module_broker):
    w = Witness(module_broker.bootstrap)
    w.check()
    yield w
    w.close()


@pytest.fixture
def sock(module_broker, witness):
    """A fresh raw connection for the bad input; after the test, the witness must still work."""
    s = kw.connect(module_broker.bootstrap)
    yield s
    s.close()
    witness.check()


def expect_closed(s) -> None:
    kw.wait_closed(s, CLOSE_TIMEOUT_S)


def expect_closed_or_answer(s, correlation_id: int) -> str:
    """The broker may drop the connection, or answer with the request's correlation id (and then keep serving
    the connection: a following ApiVersions must be answered). Returns which it was."""
    s.settimeout(CLOSE_TIMEOUT_S)
    try:
        got = kw.read_response(s)
    except (ConnectionResetError, TimeoutError):
        raise AssertionError("broker neither answered nor closed the connection")
    if got is None:
        return "closed"
    assert got[0] == correlation_id, f"answer with correlation id {got[0]}, expected {correlation_id}"
    s.sendall(kw.api_versions_v0(correlation_id + 1))
    follow = kw.read_response(s)
    if follow is not None:
        assert follow[0] == correlation_id + 1
    return "answered"


def produce_raw(s, correlation_id: int, topic: str, records: bytes) -> kw.ProducePartition:
    s.sendall(kw.produce_v7(correlation_id, topic, {0: records}))
    got = kw.read_response(s)
    assert got is not None, "broker closed the connection instead of answering the Produce"
    assert got[0] == correlation_id
    return kw.parse_produce_v7(got[1])[topic][0]


# ------------------------------------------------------------------------------------------------- framing
def test_truncated_frame_then_close(module_broker, witness):
    s = kw.connect(module_broker.bootstrap)
    s.sendall(struct.pack(">i", 100) + b"\x00\x12\x00\x00" + b"x" * 6)  # 10 of the 100 promised bytes
    s.close()
    witness.check()


def test_truncated_frame_then_half_close(sock):
    sock.sendall(struct.pack(">i", 100) + b"\x00\x12\x00\x00" + b"x" * 6)
    sock.shutdown(kw.socket.SHUT_WR)
    expect_closed(sock)


def test_size_zero(sock):
    sock.sendall(struct.pack(">i", 0))
    expect_closed(sock)


def test_negative_size(sock):
    sock.sendall(struct.pack(">i", -5))
    expect_closed(sock)


def test_size_int32_max(sock):
    sock.sendall(struct.pack(">i", 2**31 - 1))
    expect_closed(sock)


def test_frame_above_max_request_size(sock):
    sock.sendall(struct.pack(">i", MAX_REQUEST_BYTES + 1))  # only the prefix: the broker must not wait for 100 MiB
    expect_closed(sock)


# ------------------------------------------------------------------------------------------------- headers
def test_unknown_api_key(sock):
    sock.sendall(kw.request(32000, 0, 5, b""))
    expect_closed_or_answer(sock, 5)


def test_unsupported_api_versions_version(sock):
    """KIP-511: answer a v0 body with UNSUPPORTED_VERSION and the ApiVersions range, and keep the connection."""
    sock.sendall(kw.request(kw.API_API_VERSIONS, 127, 9, b"\x00garbage that must not be parsed", flexible=True))
    got = kw.read_response(sock)
    assert got is not None, "broker closed the connection instead of answering UNSUPPORTED_VERSION"
    correlation_id, reader = got
    assert correlation_id == 9
    result = kw.parse_api_versions(reader, 0)
    assert result.error_code == kw.ERROR_UNSUPPORTED_VERSION, result
    assert kw.API_API_VERSIONS in result.ranges, result
    lo, hi = result.ranges[kw.API_API_VERSIONS]
    assert lo == 0 and hi >= 3, result
    # the client retries on the same connection with a version we know
    sock.sendall(kw.api_versions_v0(10))
    got = kw.read_response(sock)
    assert got is not None and got[0] == 10
    assert kw.parse_api_versions(got[1], 0).error_code == 0


def test_negative_array_length(sock, witness):
    # Produce v7 whose topics array claims -2 entries (-1 would be null; -2 is never valid)
    body = kw.string(None) + kw.i16(-1) + kw.i32(30_000) + kw.i32(-2)
    sock.sendall(kw.request(kw.API_PRODUCE, 7, 21, body))
    expect_closed_or_answer(sock, 21)


def test_negative_partition_array_length(sock, witness):
    body = kw.string(None) + kw.i16(-1) + kw.i32(30_000) + kw.i32(1) + kw.string(witness.target) + kw.i32(-7)
    sock.sendall(kw.request(kw.API_PRODUCE, 7, 22, body))
    expect_closed_or_answer(sock, 22)


def test_string_length_past_frame_end(sock):
    # Metadata v1 with one topic whose name claims 1000 bytes; 3 follow
    body = kw.i32(1) + kw.i16(1000) + b"abc"
    sock.sendall(kw.request(kw.API_METADATA, 1, 23, body))
    expect_closed_or_answer(sock, 23)


def test_records_length_past_frame_end(sock, witness):
    body = kw.string(None) + kw.i16(-1) + kw.i32(30_000) + kw.i32(1) + kw.string(witness.target)
    body += kw.i32(1) + kw.i32(0) + kw.i32(1_000_000) + kw.record_batch([b"x"])
    sock.sendall(kw.request(kw.API_PRODUCE, 7, 24, body))
    expect_closed_or_answer(sock, 24)


# ------------------------------------------------------------------------------------------------- batches
def test_valid_raw_produce_is_accepted(sock, witness):
    """Control case: the hand-built batch is right, so the rejections below are about the lie, not the builder."""
    before = witness.target_high_watermark()
    r = produce_raw(sock, 30, witness.target, kw.record_batch([b"good-1", b"good-2"]))
    assert r.error_code == kw.ERROR_NONE and r.base_offset == before
    assert witness.target_high_watermark() == before + 2


@pytest.mark.parametrize(
    "name,batch",
    [
        ("bad_crc", lambda: kw.record_batch([b"a", b"b"], corrupt_crc=True)),
        ("magic_1", lambda: kw.record_batch([b"a"], magic=1)),
        ("magic_3", lambda: kw.record_batch([b"a"], magic=3)),
        ("batch_length_too_long", lambda: kw.record_batch([b"a", b"b"], batch_length_delta=1000)),
        ("batch_length_too_short", lambda: kw.record_batch([b"a", b"b"], batch_length_delta=-10)),
        ("batch_length_negative", lambda: kw.record_batch([b"a"], batch_length_delta=-10_000)),
        ("record_count_too_high", lambda: kw.record_batch([b"a", b"b"], record_count=1_000_000)),
        ("record_count_negative", lambda: kw.record_batch([b"a", b"b"], record_count=-1)),
        ("truncated_batch", lambda: kw.record_batch([b"a", b"b", b"c"])[:-5]),
    ],
)
def test_invalid_batch_is_rejected_and_not_stored(sock, witness, name, batch):
    before = witness.target_high_watermark()
    r = produce_raw(sock, 40, witness.target, batch())
    assert r.error_code in BATCH_REJECTED, f"{name}: error_code {r.error_code}, expected one of {BATCH_REJECTED}"
    if name == "bad_crc":
        assert r.error_code == kw.ERROR_CORRUPT_MESSAGE
    assert witness.target_high_watermark() == before, f"{name}: the rejected batch was stored"


# ------------------------------------------------------------------------------------------------- fetch
def test_fetch_with_huge_max_bytes(sock, witness):
    r = produce_raw(sock, 50, witness.target, kw.record_batch([b"fetch-me-%d" % i for i in range(3)]))
    assert r.error_code == kw.ERROR_NONE
    fetch = kw.fetch_v4(51, witness.target, {0: r.base_offset}, max_bytes=2**31 - 1, partition_max_bytes=2**31 - 1)
    sock.sendall(fetch)
    got = kw.read_response(sock)
    assert got is not None and got[0] == 51
    part = kw.parse_fetch_v4(got[1])[witness.target][0]
    assert part.error_code == kw.ERROR_NONE
    assert part.records is not None, "null records"
    batches = kw.parse_batches(part.records)
    assert batches and batches[0].base_offset == r.base_offset
    assert batches[0].values == [b"fetch-me-%d" % i for i in range(3)]
    assert len(part.records) < 1 << 20, "the answer carries far more than the partition holds"


@pytest.mark.parametrize(
    "name,offset_or_partition,expected",
    [
        ("negative_offset", ("offset", -5), 1),  # OFFSET_OUT_OF_RANGE
        ("offset_past_end", ("offset", 1_000_000_000), 1),
        ("unknown_partition", ("partition", 7), 3),  # UNKNOWN_TOPIC_OR_PARTITION
    ],
)
def test_fetch_out_of_range(sock, witness, name, offset_or_partition, expected):
    kind, v = offset_or_partition
    partitions = {0: v} if kind == "offset" else {v: 0}
    sock.sendall(kw.fetch_v4(60, witness.target, partitions))
    got = kw.read_response(sock)
    assert got is not None and got[0] == 60
    part = next(iter(kw.parse_fetch_v4(got[1])[witness.target].values()))
    assert part.error_code == expected, f"{name}: error_code {part.error_code}, expected {expected}"
    assert part.records == b"", f"{name}: records {part.records!r}, expected empty bytes (never null)"
    # Kafka answers a failed read with -1 bounds (the client asks ListOffsets for them).
    assert part.high_watermark == -1, f"{name}: high watermark {part.high_watermark}, expected -1"


def test_produce_to_unknown_partition(sock, witness):
    sock.sendall(kw.produce_v7(61, witness.target, {9: kw.record_batch([b"nowhere"])}))
    got = kw.read_response(sock)
    assert got is not None and got[0] == 61
    assert kw.parse_produce_v7(got[1])[witness.target][9].error_code == 3  # UNKNOWN_TOPIC_OR_PARTITION


# ------------------------------------------------------------------------------------------------- logging
def test_bad_frame_leaves_a_log_line(module_broker, witness):
    if not module_broker.managed:
        pytest.skip("reads the broker's log: needs RINGBROKER_BIN")
    before = module_broker.log_size()
    s = kw.connect(module_broker.bootstrap)
    s.sendall(struct.pack(">i", -77))
    expect_closed(s)
    s.close()
    deadline = time.monotonic() + 5
    while module_broker.log_size() == before:
        assert time.monotonic() < deadline, "no log line for a connection dropped over a negative frame size"
        time.sleep(0.1)
    witness.check()
