"""Issue 2: with `--shards 2` a topic's partitions are spread over shards but Metadata shows one broker that
leads them all, and a single connection (landing on either shard) produces to and fetches from every
partition; responses come back in request order when a client pipelines."""

from __future__ import annotations

import pytest

import clients
import kafka_wire as kw

PARTITIONS = 8
CONNECTIONS = 6
RECORDS_PER_BATCH = 5


def parse_metadata_v1(reader: kw.Reader):
    """brokers ARRAY(node_id INT32, host STRING, port INT32, rack NULLABLE_STRING), controller_id INT32,
    topics ARRAY(error_code INT16, name STRING, is_internal BOOL,
                 partitions ARRAY(error_code INT16, partition_index INT32, leader_id INT32,
                                  replica_nodes ARRAY(INT32), isr_nodes ARRAY(INT32)))."""
    brokers = []
    for _ in range(reader.i32()):
        brokers.append((reader.i32(), reader.string(), reader.i32(), reader.string()))
    controller_id = reader.i32()
    topics = {}
    for _ in range(reader.i32()):
        error_code, name, _internal = reader.i16(), reader.string(), reader.i8()
        parts = {}
        for _ in range(reader.i32()):
            p_error, index, leader = reader.i16(), reader.i32(), reader.i32()
            replicas = [reader.i32() for _ in range(reader.i32())]
            isr = [reader.i32() for _ in range(reader.i32())]
            parts[index] = (p_error, leader, replicas, isr)
        topics[name] = (error_code, parts)
    return brokers, controller_id, topics


def roundtrip(sock, data: bytes, correlation_id: int) -> kw.Reader:
    sock.sendall(data)
    got = kw.read_response(sock)
    assert got is not None, "broker closed the connection"
    cid, reader = got
    assert cid == correlation_id, f"correlation id {cid}, expected {correlation_id}"
    return reader


@pytest.mark.parametrize("broker", [1, 2], indirect=True, ids=["shards1", "shards2"])
def test_metadata_one_broker_leads_every_partition(broker, topic_name):
    clients.create_topic(broker.bootstrap, topic_name, PARTITIONS)
    host, port = broker.bootstrap.rsplit(":", 1)
    with kw.connect(broker.bootstrap) as sock:
        brokers, controller_id, topics = parse_metadata_v1(roundtrip(sock, kw.metadata_v1(7, [topic_name]), 7))
    assert len(brokers) == 1, brokers
    node_id, b_host, b_port, _ = brokers[0]
    assert (b_host, b_port) == (host, int(port)), brokers
    assert controller_id == node_id, f"controller_id {controller_id} is not the broker's node id {node_id}"
    error_code, parts = topics[topic_name]
    assert error_code == 0
    assert sorted(parts) == list(range(PARTITIONS))
    for index, (p_error, leader, replicas, isr) in parts.items():
        assert p_error == 0 and leader == node_id and replicas == [node_id] and isr == [node_id], (index, parts[index])


@pytest.mark.parametrize("broker", [1, 2], indirect=True, ids=["shards1", "shards2"])
def test_each_connection_produces_and_fetches_every_partition(broker, topic_name):
    """Several connections so that SO_REUSEPORT lands some on each shard; each writes one batch to every
    partition in ONE Produce request and reads them all back in ONE Fetch request."""
    clients.create_topic(broker.bootstrap, topic_name, PARTITIONS)
    for conn in range(CONNECTIONS):
        expected = {
            p: [b"conn%d-part%d-rec%d" % (conn, p, j) for j in range(RECORDS_PER_BATCH)] for p in range(PARTITIONS)
        }
        base = conn * RECORDS_PER_BATCH
        with kw.connect(broker.bootstrap) as sock:
            batches = {p: kw.record_batch(values) for p, values in expected.items()}
            resp = kw.parse_produce_v7(roundtrip(sock, kw.produce_v7(100 + conn, topic_name, batches), 100 + conn))
            parts = resp[topic_name]
            assert sorted(parts) == list(range(PARTITIONS)), resp
            for p, r in parts.items():
                assert r.error_code == 0, f"connection {conn}: produce to partition {p}: error {r.error_code}"
                assert r.base_offset == base, f"connection {conn}: partition {p} base offset {r.base_offset}"

            fetch = kw.fetch_v4(200 + conn, topic_name, {p: base for p in range(PARTITIONS)})
            resp = kw.parse_fetch_v4(roundtrip(sock, fetch, 200 + conn))
            parts = resp[topic_name]
            assert sorted(parts) == list(range(PARTITIONS)), resp
            for p, r in parts.items():
                assert r.error_code == 0, f"connection {conn}: fetch partition {p}: error {r.error_code}"
                assert r.high_watermark == base + RECORDS_PER_BATCH, (conn, p, r.high_watermark)
                assert r.records is not None, f"partition {p}: null records (must be bytes)"
                batches = kw.parse_batches(r.records)
                assert batches, f"connection {conn}: fetch partition {p} returned no batch"
                assert all(b.crc_ok and b.magic == 2 for b in batches)
                assert batches[0].base_offset == base
                values = [v for b in batches for v in b.values]
                assert values == expected[p], f"connection {conn}: partition {p}: {values}"


@pytest.mark.parametrize("broker", [1, 2], indirect=True, ids=["shards1", "shards2"])
def test_pipelined_requests_answered_in_order(broker, topic_name):
    """A client may send many requests before reading: the answers must keep the request order even when the
    partitions involved live on different shards."""
    clients.create_topic(broker.bootstrap, topic_name, PARTITIONS)
    requests = []
    for i in range(32):
        cid = 1000 + i
        p = i % PARTITIONS
        kind = i % 3
        if kind == 0:
            requests.append((cid, "produce", kw.produce_v7(cid, topic_name, {p: kw.record_batch([b"pipe-%d" % i])})))
        elif kind == 1:
            requests.append((cid, "fetch", kw.fetch_v4(cid, topic_name, {p: 0}, max_wait_ms=0)))
        else:
            requests.append((cid, "metadata", kw.metadata_v1(cid, [topic_name])))
    with kw.connect(broker.bootstrap) as sock:
        sock.sendall(b"".join(r for _, _, r in requests))
        for cid, kind, _ in requests:
            got = kw.read_response(sock)
            assert got is not None, f"connection closed before the answer to {kind} {cid}"
            got_cid, reader = got
            assert got_cid == cid, f"answer {got_cid} arrived where {cid} ({kind}) was due"
            if kind == "produce":
                parts = kw.parse_produce_v7(reader)[topic_name]
                assert all(r.error_code == 0 for r in parts.values()), parts
