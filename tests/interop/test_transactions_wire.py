"""Issue 22, bad input to the transaction coordinator over raw Kafka requests: each gets Kafka's error code,
nothing becomes visible, and the broker keeps serving (the same connection answers the next request)."""

from __future__ import annotations

import uuid

import pytest

import clients
import conftest
import kafka_wire as kw
from conftest import BrokerProcess, _shutdown

INIT_PRODUCER_ID = 22
ADD_PARTITIONS_TO_TXN = 24
ADD_OFFSETS_TO_TXN = 25
END_TXN = 26
TXN_OFFSET_COMMIT = 28

INVALID_PRODUCER_EPOCH = 47
INVALID_TXN_STATE = 48
INVALID_PRODUCER_ID_MAPPING = 49
INVALID_TRANSACTION_TIMEOUT = 50
PRODUCER_FENCED = 90


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

    # Offsets go to the group's coordinator, which (as Kafka's without transaction verification) does not ask the
    # transaction coordinator whether the group was added: a stale epoch is refused there once it saw a newer one.
    assert conn.add_partitions(2, txn_id, pid, 1, topic_name) == 0
    assert conn.txn_offset_commit(txn_id, f"g-{txn_id}", pid, 1, topic_name) == 0
    assert conn.txn_offset_commit(txn_id, f"g-{txn_id}", pid, 0, topic_name) == INVALID_PRODUCER_EPOCH

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


def test_transaction_max_timeout_is_a_setting(tmp_path, topic_name):
    """`transaction_max_timeout_ms` (Kafka's transaction.max.timeout.ms) caps what InitProducerId may ask for."""
    if conftest.EXTERNAL_BOOTSTRAP or conftest.REFERENCE_KAFKA or not conftest.BROKER_BIN:
        pytest.skip("starts ringbroker with its own setting")
    b = BrokerProcess(conftest.BROKER_BIN, tmp_path / "data", 1, tmp_path,
                      extra_args=["--set", "transaction_max_timeout_ms=5000"])
    conftest._ACTIVE.append(b)
    b.start()
    try:
        conn = Conn(b.bootstrap)
        txn_id = f"cap-{uuid.uuid4().hex[:8]}"
        error, pid, _epoch = conn.init_producer_id(txn_id, 5_001)
        assert (error, pid) == (INVALID_TRANSACTION_TIMEOUT, -1)
        error, pid, epoch = conn.init_producer_id(txn_id, 5_000)
        assert (error, epoch) == (0, 0) and pid >= 0
    finally:
        _shutdown(b)
