"""Issue 11 item 4: librdkafka's idempotent producer (enable.idempotence=true, 5 requests in flight) produces
100,000 records while the broker is restarted in the middle; every record lands exactly once and in order per
partition (retries of batches the broker had already written are answered with their original offsets)."""

from __future__ import annotations

import os

import pytest

import clients

RECORDS = int(os.environ.get("INTEROP_IDEMPOTENT_RECORDS", "100000"))
PARTITIONS = 4


@pytest.mark.timeout(600)
@pytest.mark.parametrize("broker", [1, 2], indirect=True, ids=["shards1", "shards2"])
def test_idempotent_producer_across_restart(broker, topic_name):
    if not getattr(broker, "managed", True):
        pytest.skip("needs a broker this test can restart")
    clients.create_topic(broker.bootstrap, topic_name, PARTITIONS)
    p = clients.producer(
        broker.bootstrap,
        **{
            "enable.idempotence": True,
            "max.in.flight.requests.per.connection": 5,
            "linger.ms": 2,
            "batch.num.messages": 1_000,
            "message.timeout.ms": 120_000,
        },
    )
    on_delivery = clients.DeliveryTally()

    restarted = False
    for i in range(RECORDS):
        if i == RECORDS // 2:
            # Let some requests be in flight, then restart under them.
            p.poll(0)
            broker.restart()
            restarted = True
        while True:
            try:
                p.produce(topic_name, value=b"%09d" % i, partition=i % PARTITIONS, on_delivery=on_delivery)
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
    assert restarted
    assert p.flush(120) == 0, "records still undelivered"
    assert not on_delivery.errors, f"{len(on_delivery.errors)} delivery errors, first: {on_delivery.errors[:3]}"
    assert on_delivery.delivered == RECORDS

    got, _high = clients.consume_all(broker.bootstrap, topic_name, PARTITIONS, timeout=120)
    for part in range(PARTITIONS):
        seqs = [int(value) for _offset, _key, value in got[part]]
        expected = list(range(part, RECORDS, PARTITIONS))
        if seqs != expected:
            dups = len(seqs) - len(set(seqs))
            missing = len(set(expected) - set(seqs))
            pytest.fail(f"partition {part}: {len(seqs)} records, {dups} duplicates, {missing} missing, "
                        f"order ok={seqs == sorted(seqs)}")
