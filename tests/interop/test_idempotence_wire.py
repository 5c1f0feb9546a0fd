"""Issue 11 item 4, on the wire: InitProducerId and Kafka's answers to an idempotent producer's batches.

Raw requests so each case is exact: a retried batch gets its original offset and is not written twice (also
after a broker restart), a sequence gap gets OUT_OF_ORDER_SEQUENCE_NUMBER (45), a stale epoch
INVALID_PRODUCER_EPOCH (47), a new epoch must start at sequence 0, and a producer id the partition has no state
for is accepted at any sequence (Kafka >= 2.5, KIP-360: the broker no longer answers UNKNOWN_PRODUCER_ID (59) to
Produce). Finally the log holds exactly the accepted records."""

from __future__ import annotations

import struct
import time

import pytest

import clients
import kafka_wire as kw

API_INIT_PRODUCER_ID = 22
NONE = 0
OUT_OF_ORDER_SEQUENCE_NUMBER = 45
INVALID_PRODUCER_EPOCH = 47


def idempotent_batch(producer_id: int, epoch: int, base_sequence: int, values: list[bytes]) -> bytes:
    """A v2 batch like kw.record_batch, with the producer id, epoch and base sequence set."""
    ts = int(time.time() * 1000)
    records = b"".join(kw.encode_record(i, None, v) for i, v in enumerate(values))
    after_crc = (
        kw.i16(0)
        + kw.i32(len(values) - 1)
        + kw.i64(ts)
        + kw.i64(ts)
        + kw.i64(producer_id)
        + kw.i16(epoch)
        + kw.i32(base_sequence)
        + kw.i32(len(values))
        + records
    )
    after_length = kw.i32(0) + kw.i8(2) + struct.pack(">I", kw.crc32c(after_crc)) + after_crc
    return kw.i64(0) + kw.i32(len(after_length)) + after_length


def init_producer_id(sock, correlation_id: int, transactional_id: str | None = None) -> tuple[int, int, int]:
    """InitProducerId v0: transactional_id NULLABLE_STRING, transaction_timeout_ms INT32 ->
    throttle_time_ms INT32, error_code INT16, producer_id INT64, producer_epoch INT16."""
    body = kw.string(transactional_id) + kw.i32(60_000)
    sock.sendall(kw.request(API_INIT_PRODUCER_ID, 0, correlation_id, body))
    got = kw.read_response(sock)
    assert got is not None, "connection closed on InitProducerId"
    cid, r = got
    assert cid == correlation_id
    r.i32()
    return r.i16(), r.i64(), r.i16()


class Session:
    def __init__(self, bootstrap: str, topic: str):
        self.bootstrap = bootstrap
        self.topic = topic
        self.correlation = 100
        self.sock = kw.connect(bootstrap)

    def reconnect(self) -> None:
        self.sock.close()
        self.sock = kw.connect(self.bootstrap)

    def produce(self, batch: bytes) -> tuple[int, int]:
        self.correlation += 1
        self.sock.sendall(kw.produce_v7(self.correlation, self.topic, {0: batch}))
        got = kw.read_response(self.sock)
        assert got is not None, "connection closed on Produce"
        cid, r = got
        assert cid == self.correlation
        p = kw.parse_produce_v7(r)[self.topic][0]
        return p.error_code, p.base_offset

    def all_values(self) -> list[bytes]:
        values: list[bytes] = []
        offset = 0
        while True:
            self.correlation += 1
            self.sock.sendall(kw.fetch_v4(self.correlation, self.topic, {0: offset}))
            got = kw.read_response(self.sock)
            assert got is not None
            part = kw.parse_fetch_v4(got[1])[self.topic][0]
            assert part.error_code == NONE
            batches = kw.parse_batches(part.records or b"")
            for b in batches:
                assert b.crc_ok and b.base_offset == offset, (b.base_offset, offset)
                values.extend(b.values)
                offset += b.record_count
            if offset >= part.high_watermark:
                return values


@pytest.mark.parametrize("broker", [1, 2], indirect=True, ids=["shards1", "shards2"])
def test_idempotent_produce_answers(broker, topic_name):
    if not getattr(broker, "managed", True) or not hasattr(broker, "restart"):
        pytest.skip("needs a broker this test can restart")
    clients.create_topic(broker.bootstrap, topic_name, 1)
    s = Session(broker.bootstrap, topic_name)

    err, pid, epoch = init_producer_id(s.sock, 1)
    assert (err, epoch) == (NONE, 0) and pid >= 0
    err2, pid2, _ = init_producer_id(s.sock, 2)
    assert err2 == NONE and pid2 >= 0 and pid2 != pid
    # A transactional id is served by its transaction coordinator (issue 22): its own producer id, epoch 0.
    err3, pid3, epoch3 = init_producer_id(s.sock, 3, "a-transaction")
    assert (err3, epoch3) == (NONE, 0) and pid3 not in (pid, pid2)

    b0 = idempotent_batch(pid, 0, 0, [b"a0", b"a1", b"a2"])
    assert s.produce(b0) == (NONE, 0)
    assert s.produce(b0) == (NONE, 0), "a retried batch gets its original offset"
    b1 = idempotent_batch(pid, 0, 3, [b"a3", b"a4"])
    assert s.produce(b1) == (NONE, 3)
    assert s.produce(idempotent_batch(pid, 0, 9, [b"gap"]))[0] == OUT_OF_ORDER_SEQUENCE_NUMBER
    assert s.produce(idempotent_batch(pid, 0, 4, [b"overlap"]))[0] == OUT_OF_ORDER_SEQUENCE_NUMBER
    assert s.produce(b0) == (NONE, 0), "still remembered (one of the last 5 batches)"

    # Epochs: a bump starts at sequence 0; the old epoch is then fenced.
    assert s.produce(idempotent_batch(pid2, 0, 0, [b"b0"])) == (NONE, 5)
    assert s.produce(idempotent_batch(pid2, 1, 3, [b"bad"]))[0] == OUT_OF_ORDER_SEQUENCE_NUMBER
    assert s.produce(idempotent_batch(pid2, 1, 0, [b"b1"])) == (NONE, 6)
    assert s.produce(idempotent_batch(pid2, 0, 1, [b"stale"]))[0] == INVALID_PRODUCER_EPOCH

    # A producer id this partition has no state for: accepted at any sequence, like Kafka.
    stranger = 987_654_321
    assert s.produce(idempotent_batch(stranger, 4, 17, [b"c17"])) == (NONE, 7)
    assert s.produce(idempotent_batch(stranger, 4, 19, [b"gap"]))[0] == OUT_OF_ORDER_SEQUENCE_NUMBER

    # Restart: the state comes back (snapshot at clean shutdown), then once more after a kill -9 (log scan).
    s.sock.close()
    broker.restart()
    s.reconnect()
    assert s.produce(b1) == (NONE, 3), "deduplicated after a restart"
    assert s.produce(idempotent_batch(pid, 0, 5, [b"a5"])) == (NONE, 8)
    assert s.produce(idempotent_batch(pid2, 0, 2, [b"stale"]))[0] == INVALID_PRODUCER_EPOCH
    s.sock.close()
    broker.kill9()
    broker.start()
    s.reconnect()
    assert s.produce(idempotent_batch(pid, 0, 5, [b"a5"])) == (NONE, 8), "deduplicated after kill -9"
    assert s.produce(idempotent_batch(pid, 0, 7, [b"gap"]))[0] == OUT_OF_ORDER_SEQUENCE_NUMBER
    assert s.produce(idempotent_batch(pid, 0, 6, [b"a6"])) == (NONE, 9)
    err3, pid3, _ = init_producer_id(s.sock, 4)
    assert err3 == NONE and pid3 not in (pid, pid2), "producer ids stay unique across restarts"

    assert s.all_values() == [b"a0", b"a1", b"a2", b"a3", b"a4", b"b0", b"b1", b"c17", b"a5", b"a6"]
    s.sock.close()
