"""Issue 22, bad input to the transaction coordinator over raw Kafka requests: each gets Kafka's error code,
nothing becomes visible, and the broker keeps serving (the same connection answers the next request). With
transaction verification (KIP-890, `transaction.partition.verification.enable`, on by default as in Kafka 3.6+)
offsets for a group the transaction did not add, and transactional records for a partition it did not add, are
refused with INVALID_TXN_STATE."""

from __future__ import annotations

import contextlib
import uuid

import pytest

import clients
import conftest
import kafka_wire as kw
from conftest import BrokerProcess, _shutdown

PRODUCE = 0
INIT_PRODUCER_ID = 22
ADD_PARTITIONS_TO_TXN = 24
ADD_OFFSETS_TO_TXN = 25
END_TXN = 26
TXN_OFFSET_COMMIT = 28

NOT_ENOUGH_REPLICAS = 19
INVALID_PRODUCER_EPOCH = 47
INVALID_TXN_STATE = 48
INVALID_PRODUCER_ID_MAPPING = 49
INVALID_TRANSACTION_TIMEOUT = 50
PRODUCER_FENCED = 90

# Record batch attributes: the transactional bit.
TRANSACTIONAL = 0x10


class Conn:
    def __init__(self, bootstrap: str):
        self.sock = kw.connect(bootstrap)
        self.correlation = 0

    def call(self, api_key: int, version: int, body: bytes) -> kw.Reader:
        self.correlation += 1
        self.sock.sendall(kw.request(api_key, version, self.correlation, body))
        answer = kw.read_response(self.sock)
        assert answer is not None, f"the broker closed the connection on api {api_key} v{version}"
        correlation, reader = answer
        assert correlation == self.correlation
        return reader

    def init_producer_id(self, txn_id: str, timeout_ms: int) -> tuple[int, int, int]:
        r = self.call(INIT_PRODUCER_ID, 1, kw.string(txn_id) + kw.i32(timeout_ms))
        r.i32()  # throttle
        return r.i16(), r.i64(), r.i16()

    def add_partitions(self, version: int, txn_id: str, pid: int, epoch: int, topic: str) -> int:
        body = kw.string(txn_id) + kw.i64(pid) + kw.i16(epoch) + kw.i32(1) + kw.string(topic) + kw.i32(1) + kw.i32(0)
        r = self.call(ADD_PARTITIONS_TO_TXN, version, body)
        r.i32()
        assert r.i32() == 1 and r.string() == topic and r.i32() == 1 and r.i32() == 0
        return r.i16()

    def add_offsets(self, txn_id: str, pid: int, epoch: int, group: str) -> int:
        r = self.call(ADD_OFFSETS_TO_TXN, 1, kw.string(txn_id) + kw.i64(pid) + kw.i16(epoch) + kw.string(group))
        r.i32()
        return r.i16()

    def verify(self, txn_id: str, pid: int, epoch: int, topic: str, partitions: list[int]) -> tuple[int, dict[int, int]]:
        """AddPartitionsToTxn v4 (flexible), one transaction with verify_only: the brokers' KIP-890 question.
        Returns the top-level error and each partition's."""
        body = (kw.uvarint(2) + kw.compact_string(txn_id) + kw.i64(pid) + kw.i16(epoch) + kw.i8(1)
                + kw.uvarint(2) + kw.compact_string(topic) + kw.uvarint(len(partitions) + 1)
                + b"".join(kw.i32(p) for p in partitions) + kw.uvarint(0) + kw.uvarint(0) + kw.uvarint(0))
        self.correlation += 1
        self.sock.sendall(kw.request(ADD_PARTITIONS_TO_TXN, 4, self.correlation, body, flexible=True))
        answer = kw.read_response(self.sock)
        assert answer is not None
        correlation, r = answer
        assert correlation == self.correlation
        r.skip_tags()
        r.i32()  # throttle
        error = r.i16()
        codes: dict[int, int] = {}
        for _ in range(r.uvarint() - 1):  # transactions
            r.take(r.uvarint() - 1)  # transactional id
            for _ in range(r.uvarint() - 1):  # topics
                assert r.take(r.uvarint() - 1).decode() == topic
                for _ in range(r.uvarint() - 1):  # partitions
                    index = r.i32()
                    codes[index] = r.i16()
                    r.skip_tags()
                r.skip_tags()
            r.skip_tags()
        return error, codes

    def produce_transactional(self, txn_id: str, pid: int, epoch: int, topic: str, sequence: int) -> int:
        """One transactional batch of one record to partition 0 (Produce v7, acks=all): its error code."""
        batch = kw.raw_batch(kw.encode_record(0, None, b"txn"), 1, attributes=TRANSACTIONAL, producer_id=pid,
                             producer_epoch=epoch, base_sequence=sequence)
        self.correlation += 1
        self.sock.sendall(kw.produce(self.correlation, topic, {0: batch}, transactional_id=txn_id))
        answer = kw.read_response(self.sock)
        assert answer is not None
        correlation, r = answer
        assert correlation == self.correlation
        assert r.i32() == 1 and r.string() == topic and r.i32() == 1 and r.i32() == 0
        return r.i16()

    def end_txn(self, txn_id: str, pid: int, epoch: int, commit: bool) -> int:
        r = self.call(END_TXN, 1, kw.string(txn_id) + kw.i64(pid) + kw.i16(epoch) + kw.i8(1 if commit else 0))
        r.i32()
        return r.i16()

    def txn_offset_commit(self, txn_id: str, group: str, pid: int, epoch: int, topic: str) -> int:
        body = (kw.string(txn_id) + kw.string(group) + kw.i64(pid) + kw.i16(epoch)
                + kw.i32(1) + kw.string(topic) + kw.i32(1) + kw.i32(0) + kw.i64(5) + kw.string(None))
        r = self.call(TXN_OFFSET_COMMIT, 1, body)
        r.i32()
        assert r.i32() == 1 and r.string() == topic and r.i32() == 1 and r.i32() == 0
        return r.i16()


def test_bad_transaction_requests_get_kafkas_errors(broker, topic_name):
    clients.create_topic(broker.bootstrap, topic_name, 1)
    conn = Conn(broker.bootstrap)
    txn_id = f"wire-{uuid.uuid4().hex[:8]}"

    # transaction.timeout.ms above transaction.max.timeout.ms (15 minutes).
    error, pid, _epoch = conn.init_producer_id(txn_id, 900_001)
    assert (error, pid) == (INVALID_TRANSACTION_TIMEOUT, -1)

    # EndTxn for a transactional id the coordinator never saw.
    assert conn.end_txn(f"unknown-{txn_id}", 1234, 0, True) == INVALID_PRODUCER_ID_MAPPING

    error, pid, epoch = conn.init_producer_id(txn_id, 60_000)
    assert (error, epoch) == (0, 0) and pid >= 0
    error, pid2, epoch2 = conn.init_producer_id(txn_id, 60_000)  # a second producer: epoch bump
    assert (error, pid2, epoch2) == (0, pid, 1)

    # The first producer's stale epoch: INVALID_PRODUCER_EPOCH before v2, PRODUCER_FENCED from v2.
    assert conn.add_partitions(1, txn_id, pid, 0, topic_name) == INVALID_PRODUCER_EPOCH
    assert conn.add_partitions(2, txn_id, pid, 0, topic_name) == PRODUCER_FENCED
    # A producer id that is not the transactional id's.
    assert conn.add_partitions(2, txn_id, pid + 1, 1, topic_name) == INVALID_PRODUCER_ID_MAPPING

    # Offsets for a group the transaction did not add (no AddOffsetsToTxn): the group coordinator asks the
    # transaction coordinator (KIP-890) and refuses them. Once added they are taken; a stale epoch is refused.
    assert conn.add_partitions(2, txn_id, pid, 1, topic_name) == 0
    group = f"g-{txn_id}"
    assert conn.txn_offset_commit(txn_id, group, pid, 1, topic_name) == INVALID_TXN_STATE
    assert conn.add_offsets(txn_id, pid, 1, group) == 0
    assert conn.txn_offset_commit(txn_id, group, pid, 1, topic_name) == 0
    assert conn.txn_offset_commit(txn_id, group, pid, 0, topic_name) == INVALID_PRODUCER_EPOCH

    # Ending with a stale epoch fails; the current producer aborts fine, and a retried abort succeeds.
    assert conn.end_txn(txn_id, pid, 0, False) == INVALID_PRODUCER_EPOCH
    assert conn.end_txn(txn_id, pid, 1, False) == 0
    assert conn.end_txn(txn_id, pid, 1, False) == 0
    # Committing what was aborted is refused.
    assert conn.end_txn(txn_id, pid, 1, True) == INVALID_TXN_STATE

    # The broker still serves this connection and others.
    error, _pid, epoch = conn.init_producer_id(txn_id, 60_000)
    assert (error, epoch) == (0, 2)
    other = Conn(broker.bootstrap)
    error, _pid, _epoch = other.init_producer_id(f"other-{txn_id}", 60_000)
    assert error == 0


@contextlib.contextmanager
def broker_with(tmp_path, extra_args: list[str]):
    """A ringbroker of its own started with `extra_args` (skips against an external or reference broker)."""
    if conftest.EXTERNAL_BOOTSTRAP or conftest.REFERENCE_KAFKA or not conftest.BROKER_BIN:
        pytest.skip("starts ringbroker with its own setting")
    b = BrokerProcess(conftest.BROKER_BIN, tmp_path / "data", 1, tmp_path, extra_args=extra_args)
    conftest._ACTIVE.append(b)
    b.start()
    try:
        yield b
    finally:
        _shutdown(b)


def end_offsets(bootstrap: str, topic: str) -> dict[str, int]:
    """Partition 0's end as read_uncommitted (high watermark) and read_committed (last stable offset) see it."""
    ends = {}
    for isolation in ("read_uncommitted", "read_committed"):
        c = clients.consumer(bootstrap, **{"isolation.level": isolation, "group.id": f"e-{uuid.uuid4().hex[:8]}"})
        try:
            ends[isolation] = clients.watermarks(c, topic, 1)[0][1]
        finally:
            c.close()
    return ends


def test_a_transactional_produce_to_a_partition_never_added_is_refused(broker, topic_name):
    """KIP-890 part 1: the partition leader asks the transaction coordinator before a transaction's first batch
    there; one the producer never added gets INVALID_TXN_STATE and nothing reaches the log, so no transaction is
    left open on the partition (which would stop read_committed readers for good)."""
    clients.create_topic(broker.bootstrap, topic_name, 1)
    conn = Conn(broker.bootstrap)
    txn_id = f"hang-{uuid.uuid4().hex[:8]}"
    error, pid, epoch = conn.init_producer_id(txn_id, 60_000)
    assert error == 0

    assert conn.produce_transactional(txn_id, pid, epoch, topic_name, 0) == INVALID_TXN_STATE
    assert end_offsets(broker.bootstrap, topic_name) == {"read_uncommitted": 0, "read_committed": 0}
    # The brokers' own question (AddPartitionsToTxn v4, verify_only) gets the same answer, and adds nothing.
    assert conn.verify(txn_id, pid, epoch, topic_name, [0]) == (0, {0: INVALID_TXN_STATE})
    assert conn.verify(txn_id, pid, epoch + 1, topic_name, [0]) == (0, {0: PRODUCER_FENCED})

    # Added, the same batch is taken; the transaction's abort leaves nothing readable committed.
    assert conn.add_partitions(2, txn_id, pid, epoch, topic_name) == 0
    assert conn.verify(txn_id, pid, epoch, topic_name, [0]) == (0, {0: 0})
    assert conn.produce_transactional(txn_id, pid, epoch, topic_name, 0) == 0
    assert conn.produce_transactional(txn_id, pid, epoch, topic_name, 1) == 0
    assert conn.end_txn(txn_id, pid, epoch, False) == 0
    # After the marker the partition is out of the transaction again: a late batch is refused.
    assert conn.produce_transactional(txn_id, pid, epoch, topic_name, 2) == INVALID_TXN_STATE
    ends = end_offsets(broker.bootstrap, topic_name)
    assert ends["read_committed"] == ends["read_uncommitted"] == 3, ends  # two records and the abort marker


def test_verification_can_be_turned_off(tmp_path, topic_name):
    """`transaction.partition.verification.enable=false`: the leader appends without asking, as Kafka before
    3.6 (the record is left in an open transaction: the read_committed end stays behind it)."""
    with broker_with(tmp_path, ["--transaction-partition-verification", "false"]) as b:
        clients.create_topic(b.bootstrap, topic_name, 1)
        conn = Conn(b.bootstrap)
        txn_id = f"off-{uuid.uuid4().hex[:8]}"
        error, pid, epoch = conn.init_producer_id(txn_id, 60_000)
        assert error == 0
        assert conn.produce_transactional(txn_id, pid, epoch, topic_name, 0) == 0
        assert end_offsets(b.bootstrap, topic_name) == {"read_uncommitted": 1, "read_committed": 0}
        assert conn.txn_offset_commit(txn_id, f"g-{txn_id}", pid, epoch, topic_name) == 0


def test_transaction_max_timeout_is_a_setting(tmp_path, topic_name):
    """`transaction_max_timeout_ms` (Kafka's transaction.max.timeout.ms) caps what InitProducerId may ask for."""
    with broker_with(tmp_path, ["--set", "transaction_max_timeout_ms=5000"]) as b:
        conn = Conn(b.bootstrap)
        txn_id = f"cap-{uuid.uuid4().hex[:8]}"
        error, pid, _epoch = conn.init_producer_id(txn_id, 5_001)
        assert (error, pid) == (INVALID_TRANSACTION_TIMEOUT, -1)
        error, pid, epoch = conn.init_producer_id(txn_id, 5_000)
        assert (error, epoch) == (0, 0) and pid >= 0
