"""Issue 23, part 1: record batches whose header and CRC are right but whose records are not what the header says.
Each case sends one such batch over a raw socket (Produce v8, so the answer carries `record_errors` and
`error_message`), checks the error code, checks that the partition's log end offset did not move, and then makes
a healthy produce + fetch round trip that must return the exact record.

Expected codes are ringbroker's, and beside them Apache Kafka 4.4's answer to the same bytes, measured against it
(`INTEROP_BROKER=kafka` checks those). They differ where Kafka does not check (offset deltas of uncompressed
records, decompression bombs, a transactional batch without a producer id in a transactional request) or answers
UNKNOWN_SERVER_ERROR (undecodable compressed payloads, an over-long varint). Compressed batches for snappy, lz4
and zstd are written by librdkafka (confluent-kafka) to a scratch topic and fetched back raw, then lied about;
gzip ones are made here with zlib."""

from __future__ import annotations

import time
import uuid
import zlib
from dataclasses import dataclass
from typing import Callable

import pytest

import clients
import conftest
import kafka_wire as kw

GZIP, SNAPPY, LZ4, ZSTD = 1, 2, 3, 4
# A batch the Java client wrote (snappy-java's xerial framing): one record, value "sdfdsf".
JAVA_XERIAL_SNAPPY = bytes.fromhex(
    "82534e41505059000000000100000001" "0000000f0d3018000000010c736466647366" "00"
)
# Uncompressed size of the gzip bomb's single value: past the 256 MiB decompression cap and, at gzip's ~1030x,
# past the 1000x ratio bound too.
BOMB_VALUE_BYTES = 300 << 20
# How long a refused produce may take to be answered.
ANSWER_TIMEOUT_S = 30.0


def gzip(data: bytes) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 31: the gzip container
    return c.compress(data) + c.flush()


def gzip_bomb() -> bytes:
    """One record whose value is BOMB_VALUE_BYTES zeros, gzip-compressed as a stream (never held whole)."""
    head = kw.i8(0) + kw.varint(0) + kw.varint(0) + kw.varint(-1) + kw.varint(BOMB_VALUE_BYTES)
    tail = kw.varint(0)
    body_len = len(head) + BOMB_VALUE_BYTES + len(tail)
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    out = [c.compress(kw.varint(body_len) + head)]
    zeros = bytes(1 << 20)
    for _ in range(BOMB_VALUE_BYTES >> 20):
        out.append(c.compress(zeros))
    out.append(c.compress(tail))
    out.append(c.flush())
    return b"".join(out)


def good(i: int) -> bytes:
    return kw.raw_record(i, None, b"v%d" % i)


@dataclass
class Corpus:
    """Compressed batches of two records by codec, as librdkafka wrote them (gzip: zlib)."""

    batches: dict[int, bytes]

    def recounted(self, codec: int, count: int) -> bytes:
        """The codec's batch with its header claiming `count` records (CRC fixed): the records disagree."""
        batch = self.batches[codec]
        records = batch[kw.RECORD_BATCH_HEADER_BYTES:]
        return kw.raw_batch(records, count, attributes=codec)


@dataclass
class Case:
    name: str
    build: Callable[[Corpus], bytes]
    ringbroker: int
    kafka: int
    # Index of the record at fault, reported in record_errors (ringbroker only; Kafka leaves it empty).
    record_index: int | None = None
    transactional_id: str | None = None


CASES = [
    Case("key_length_int_max",
         lambda c: kw.raw_batch(good(0) + kw.raw_record(1, b"k", b"v", key_length=2**31 - 1), 2),
         kw.ERROR_INVALID_RECORD, kw.ERROR_INVALID_RECORD, record_index=1),
    Case("header_count_1e9", lambda c: kw.raw_batch(kw.raw_record(0, None, b"v", header_count=10**9), 1),
         kw.ERROR_INVALID_RECORD, kw.ERROR_INVALID_RECORD, record_index=0),
    Case("negative_record_length", lambda c: kw.raw_batch(kw.raw_record(0, None, b"v", length=-5), 1),
         kw.ERROR_INVALID_RECORD, kw.ERROR_INVALID_RECORD, record_index=0),
    # Three records cannot fit in these bytes: refused from the header, before any record is read.
    Case("count_above_records", lambda c: kw.raw_batch(good(0) + good(1), 3),
         kw.ERROR_INVALID_RECORD, kw.ERROR_INVALID_RECORD),
    Case("count_above_records_that_fit", lambda c: kw.raw_batch(good(0) + kw.raw_record(1, None, b"v" * 40), 3),
         kw.ERROR_INVALID_RECORD, kw.ERROR_INVALID_RECORD, record_index=2),
    Case("count_below_records", lambda c: kw.raw_batch(good(0) + good(1) + good(2), 2),
         kw.ERROR_INVALID_RECORD, kw.ERROR_INVALID_RECORD),
    Case("record_past_batch_end", lambda c: kw.raw_batch(kw.raw_record(0, None, b"v", length=200), 1),
         kw.ERROR_INVALID_RECORD, kw.ERROR_INVALID_RECORD, record_index=0),
    Case("record_length_short", lambda c: kw.raw_batch(kw.raw_record(0, None, b"vvvv", length=3), 1),
         kw.ERROR_INVALID_RECORD, kw.ERROR_INVALID_RECORD, record_index=0),
    Case("null_header_key", lambda c: kw.raw_batch(kw.raw_record(0, None, b"v", headers=[(None, b"x")]), 1),
         kw.ERROR_INVALID_RECORD, kw.ERROR_INVALID_RECORD, record_index=0),
    Case("varint_too_long", lambda c: kw.raw_batch(b"\xff" * 6 + good(0)[1:], 1),
         kw.ERROR_INVALID_RECORD, kw.ERROR_UNKNOWN_SERVER_ERROR, record_index=0),
    # Kafka checks offset deltas only in compressed batches; consumers compute offsets from them.
    Case("offset_delta_out_of_order", lambda c: kw.raw_batch(good(0) + good(5), 2),
         kw.ERROR_INVALID_RECORD, kw.ERROR_NONE, record_index=1),
    *[
        Case(f"{name}_garbage", lambda c, codec=codec: kw.raw_batch(bytes(range(256)) * 2, 5, attributes=codec),
             kw.ERROR_CORRUPT_MESSAGE, kw.ERROR_UNKNOWN_SERVER_ERROR)
        for name, codec in [("gzip", GZIP), ("snappy", SNAPPY), ("lz4", LZ4), ("zstd", ZSTD)]
    ],
    *[
        Case(f"{name}_count_above_records", lambda c, codec=codec: c.recounted(codec, 3),
             kw.ERROR_INVALID_RECORD, kw.ERROR_INVALID_RECORD, record_index=2)
        for name, codec in [("gzip", GZIP), ("snappy", SNAPPY), ("lz4", LZ4), ("zstd", ZSTD)]
    ],
    Case("gzip_key_length_int_max",
         lambda c: kw.raw_batch(gzip(kw.raw_record(0, b"k", b"v", key_length=2**31 - 1)), 1, attributes=GZIP),
         kw.ERROR_INVALID_RECORD, kw.ERROR_INVALID_RECORD, record_index=0),
    Case("gzip_bomb", lambda c: kw.raw_batch(gzip_bomb(), 1, attributes=GZIP),
         kw.ERROR_INVALID_RECORD, kw.ERROR_NONE),
    Case("control_batch_from_client", lambda c: kw.raw_batch(good(0), 1, attributes=kw.ATTR_CONTROL),
         kw.ERROR_INVALID_RECORD, kw.ERROR_INVALID_RECORD),
    Case("producer_id_without_sequence",
         lambda c: kw.raw_batch(good(0), 1, producer_id=1000, producer_epoch=0, base_sequence=-1),
         kw.ERROR_INVALID_RECORD, kw.ERROR_INVALID_RECORD),
    # A transactional batch in a request without a transactional id fails the whole request (Kafka's rule).
    Case("transactional_without_transactional_id",
         lambda c: kw.raw_batch(good(0), 1, attributes=kw.ATTR_TRANSACTIONAL),
         kw.ERROR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED, kw.ERROR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED),
    Case("transactional_without_producer_id",
         lambda c: kw.raw_batch(good(0), 1, attributes=kw.ATTR_TRANSACTIONAL),
         kw.ERROR_INVALID_RECORD, kw.ERROR_NONE, transactional_id="hostile-tx"),
]

# Control cases: valid batches the checks must not refuse.
VALID = [
    ("java_xerial_snappy", lambda c: kw.raw_batch(JAVA_XERIAL_SNAPPY, 1, attributes=SNAPPY)),
    *[(f"librdkafka_{name}", lambda c, codec=codec: c.batches[codec])
      for name, codec in [("gzip", GZIP), ("snappy", SNAPPY), ("lz4", LZ4), ("zstd", ZSTD)]],
    ("headers_and_keys", lambda c: kw.raw_batch(
        kw.raw_record(0, b"key", b"value", headers=[(b"h1", b"x"), (b"h2", None)]) + kw.raw_record(1, b"", None), 2)),
]


class Target:
    """The partition the hostile batches go to, with a raw connection to send them on."""

    def __init__(self, bootstrap: str):
        self.bootstrap = bootstrap
        self.topic = f"hostile-{uuid.uuid4().hex[:8]}"
        clients.create_topic(bootstrap, self.topic, 1)
        self.correlation = 0
        self.sock = kw.connect(bootstrap, timeout=ANSWER_TIMEOUT_S)

    def next_correlation(self) -> int:
        self.correlation += 1
        return self.correlation

    def produce(self, batch: bytes, transactional_id: str | None = None) -> kw.ProducePartition:
        correlation = self.next_correlation()
        self.sock.sendall(kw.produce(correlation, self.topic, {0: batch}, version=8, transactional_id=transactional_id))
        got = kw.read_response(self.sock)
        assert got is not None, "the broker closed the connection instead of answering the Produce"
        assert got[0] == correlation
        return kw.parse_produce(got[1], 8)[self.topic][0]

    def fetch(self, offset: int, max_bytes: int = 1 << 20) -> kw.FetchPartition:
        correlation = self.next_correlation()
        self.sock.sendall(kw.fetch_v4(correlation, self.topic, {0: offset}, max_bytes=max_bytes,
                                      partition_max_bytes=max_bytes, max_wait_ms=0))
        got = kw.read_response(self.sock)
        assert got is not None and got[0] == correlation
        part = kw.parse_fetch_v4(got[1])[self.topic][0]
        assert part.error_code == kw.ERROR_NONE, f"fetch error {part.error_code}"
        return part

    def log_end_offset(self) -> int:
        return self.fetch(0, max_bytes=1).high_watermark

    def round_trip(self) -> None:
        """A healthy produce, and a fetch that returns exactly that record."""
        value = b"healthy-%s" % uuid.uuid4().hex.encode()
        r = self.produce(kw.record_batch([value]))
        assert r.error_code == kw.ERROR_NONE, f"healthy produce answered {r.error_code}"
        batches = kw.parse_batches(self.fetch(r.base_offset).records or b"")
        assert batches and batches[0].base_offset == r.base_offset, "the healthy record is not where it was acked"
        assert batches[0].crc_ok and batches[0].values == [value], "the healthy record came back different"


def fetched_batch(bootstrap: str, topic: str) -> bytes:
    with kw.connect(bootstrap, timeout=30) as s:
        s.sendall(kw.fetch_v4(1, topic, {0: 0}, max_wait_ms=0))
        got = kw.read_response(s)
        assert got is not None
        records = kw.parse_fetch_v4(got[1])[topic][0].records or b""
    length = int.from_bytes(records[8:12], "big")
    return records[:12 + length]


@pytest.fixture(scope="module")
def corpus(module_broker) -> Corpus:
    """Two-record batches compressed by librdkafka (snappy, lz4, zstd) or zlib (gzip)."""
    batches = {GZIP: kw.raw_batch(gzip(good(0) + good(1)), 2, attributes=GZIP)}
    for name, codec in [("snappy", SNAPPY), ("lz4", LZ4), ("zstd", ZSTD)]:
        topic = f"corpus-{name}-{uuid.uuid4().hex[:8]}"
        clients.create_topic(module_broker.bootstrap, topic, 1)
        # Both records in one batch even on a loaded machine: the batch closes at its second record, and the
        # first waits up to 5 s for it (100 ms was not always enough under load).
        p = clients.producer(module_broker.bootstrap,
                             **{"compression.type": name, "linger.ms": 5000, "batch.num.messages": 2})
        for i in range(2):
            # Compressible: librdkafka sends a batch uncompressed when compression would not shrink it.
            p.produce(topic, value=b"corpus-%d-" % i + b"abcdefgh" * 64, partition=0)
        assert p.flush(30) == 0, f"{name}: corpus records not delivered"
        batch = fetched_batch(module_broker.bootstrap, topic)
        assert int.from_bytes(batch[21:23], "big") & 0x07 == codec, f"{name}: librdkafka did not compress"
        assert int.from_bytes(batch[57:61], "big") == 2, f"{name}: the two records are not in one batch"
        batches[codec] = batch
    return Corpus(batches)


@pytest.fixture(scope="module")
def target(module_broker) -> Target:
    t = Target(module_broker.bootstrap)
    yield t
    t.sock.close()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_refused_batch_stores_nothing_and_others_go_on(target, corpus, case):
    batch = case.build(corpus)
    before = target.log_end_offset()
    r = target.produce(batch, case.transactional_id)
    expected = case.kafka if conftest.REFERENCE_KAFKA else case.ringbroker
    assert r.error_code == expected, (
        f"{case.name}: answered {r.error_code} ({r.error_message}), expected {expected}")
    if r.error_code != kw.ERROR_NONE:
        assert target.log_end_offset() == before, f"{case.name}: the refused batch moved the log end offset"
        if not conftest.REFERENCE_KAFKA:
            assert r.error_message, f"{case.name}: no error_message in the v8 answer"
            got_index = [index for index, _ in r.record_errors]
            want_index = [] if case.record_index is None else [case.record_index]
            assert got_index == want_index, f"{case.name}: record_errors {r.record_errors}"
    target.round_trip()


@pytest.mark.parametrize("name,build", VALID, ids=[name for name, _ in VALID])
def test_valid_batches_are_accepted(target, corpus, name, build):
    before = target.log_end_offset()
    batch = build(corpus)
    r = target.produce(batch)
    assert r.error_code == kw.ERROR_NONE, f"{name}: refused with {r.error_code} ({r.error_message})"
    count = int.from_bytes(batch[57:61], "big")
    assert r.base_offset == before and target.log_end_offset() == before + count
    stored = target.fetch(r.base_offset).records or b""
    assert stored[12:len(batch)] == batch[12:], f"{name}: the stored bytes differ from the produced ones"
    target.round_trip()


def test_a_produce_answer_names_what_is_wrong(module_broker, target):
    """Produce v7 has no record_errors: the code alone says INVALID_RECORD."""
    if not module_broker.managed or conftest.REFERENCE_KAFKA:
        pytest.skip("reads ringbroker's log line")
    # The broker logs at most `log_warnings_per_second` warnings a second from one place (then one
    # "suppressed N" line): the cases before this one may have used this second's share.
    time.sleep(1.1)
    before = module_broker.log_size()
    correlation = target.next_correlation()
    bad = kw.raw_batch(kw.raw_record(0, None, b"v", header_count=10**9), 1)
    target.sock.sendall(kw.produce(correlation, target.topic, {0: bad}, version=7))
    got = kw.read_response(target.sock)
    assert got is not None and got[0] == correlation
    assert kw.parse_produce(got[1], 7)[target.topic][0].error_code == kw.ERROR_INVALID_RECORD
    deadline = time.monotonic() + 5
    while "header count 1000000000" not in module_broker._log_since(before):
        assert time.monotonic() < deadline, "no log line names the refused record"
        time.sleep(0.1)
    target.round_trip()
