"""Issue 22: Kafka transactions with librdkafka's transactional API (confluent-kafka): init, begin, produce,
send_offsets_to_transaction, commit and abort; a read_committed consumer sees exactly the committed records (in
order), a read_uncommitted one sees all; zombie fencing; an abandoned transaction is aborted at its timeout; a
kill -9 in the middle of transactions leaves every one committed or aborted."""

from __future__ import annotations

import time
import urllib.request
import uuid

import pytest
from confluent_kafka import OFFSET_BEGINNING, KafkaException, TopicPartition

import clients
import conftest

PARTITIONS = 3
# The coordinator looks for transactions past their timeout every 10 s (Kafka's
# transaction.abort.timed.out.transaction.cleanup.interval.ms); a test waiting for a timeout allows for that.
ABORT_SWEEP_SECONDS = 10


def txn_producer(bootstrap: str, transactional_id: str, **overrides):
    return clients.producer(
        bootstrap,
        **{"transactional.id": transactional_id, "linger.ms": 1, "message.timeout.ms": 30_000, **overrides},
    )


def read_values(bootstrap: str, topic: str, isolation: str, expect: int, idle_seconds: float = 3.0,
                timeout: float = 60.0) -> dict[int, list[bytes]]:
    """Values per partition read from the beginning with `isolation.level`, until `expect` records arrived and
    nothing more came for `idle_seconds` (so extra records would be seen), or the timeout."""
    c = clients.consumer(bootstrap, **{"isolation.level": isolation, "group.id": f"reader-{uuid.uuid4().hex[:8]}"})
    try:
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
        out: dict[int, list[bytes]] = {p: [] for p in range(PARTITIONS)}
        deadline = time.monotonic() + timeout
        last_new = time.monotonic()
        while time.monotonic() < deadline:
            msgs = c.consume(num_messages=1_000, timeout=0.5)
            for msg in msgs:
                if msg.error() is not None:
                    raise KafkaException(msg.error())
                out[msg.partition()].append(msg.value())
            if msgs:
                last_new = time.monotonic()
            got = sum(len(v) for v in out.values())
            if got >= expect and time.monotonic() - last_new >= idle_seconds:
                break
        return out
    finally:
        c.close()


def run_transaction(p, topic: str, values: list[bytes], commit: bool) -> None:
    p.begin_transaction()
    for i, value in enumerate(values):
        p.produce(topic, value=value, partition=i % PARTITIONS)
    p.flush(30)
    if commit:
        p.commit_transaction(30)
    else:
        p.abort_transaction(30)


@pytest.mark.timeout(240)
@pytest.mark.parametrize("broker", [1, 2], indirect=True, ids=["shards1", "shards2"])
def test_committed_records_only_for_read_committed(broker, topic_name):
    clients.create_topic(broker.bootstrap, topic_name, PARTITIONS)
    p = txn_producer(broker.bootstrap, f"txn-{topic_name}")
    p.init_transactions(30)
    committed: dict[int, list[bytes]] = {part: [] for part in range(PARTITIONS)}
    everything = 0
    for t in range(6):
        values = [b"t%d-r%02d" % (t, r) for r in range(9)]
        commit = t % 3 != 2  # abort every third transaction on purpose
        run_transaction(p, topic_name, values, commit)
        everything += len(values)
        if commit:
            for r, value in enumerate(values):
                committed[r % PARTITIONS].append(value)
    expected_committed = sum(len(v) for v in committed.values())

    got = read_values(broker.bootstrap, topic_name, "read_committed", expected_committed)
    assert got == committed, "read_committed must see exactly the committed records, in order"

    all_records = read_values(broker.bootstrap, topic_name, "read_uncommitted", everything)
    assert sum(len(v) for v in all_records.values()) == everything, "read_uncommitted sees aborted records too"


@pytest.mark.timeout(240)
def test_send_offsets_to_transaction_commits_the_group_offsets(broker, topic_name):
    source, sink = f"{topic_name}-in", f"{topic_name}-out"
    clients.create_topic(broker.bootstrap, source, PARTITIONS)
    clients.create_topic(broker.bootstrap, sink, PARTITIONS)
    clients.produce_all(clients.producer(broker.bootstrap), source, [(None, b"in-%03d" % i) for i in range(30)],
                        partition=0)
    group = f"g-{topic_name}"
    consumer = clients.consumer(broker.bootstrap, **{"group.id": group, "isolation.level": "read_committed"})
    consumer.assign([TopicPartition(source, 0, OFFSET_BEGINNING)])
    p = txn_producer(broker.bootstrap, f"rpw-{topic_name}")
    p.init_transactions(30)
    try:
        outputs: list[bytes] = []
        for round_no in range(3):
            batch = []
            deadline = time.monotonic() + 30
            while len(batch) < 10 and time.monotonic() < deadline:
                batch.extend(m for m in consumer.consume(num_messages=10 - len(batch), timeout=1) if m.error() is None)
            assert len(batch) == 10
            p.begin_transaction()
            for m in batch:
                p.produce(sink, value=m.value().upper(), partition=0)
            p.send_offsets_to_transaction(consumer.position(consumer.assignment()),
                                          consumer.consumer_group_metadata(), 30)
            if round_no == 1:
                p.abort_transaction(30)
                # Rewind: the aborted round is processed again in the next one.
                consumer.seek(TopicPartition(source, 0, 10))
            else:
                p.commit_transaction(30)
                outputs.extend(m.value().upper() for m in batch)
        committed = consumer.committed([TopicPartition(source, 0)], timeout=10)
        assert committed[0].offset == 20, "the aborted round's offsets must not be committed"
    finally:
        consumer.close()
    got = read_values(broker.bootstrap, sink, "read_committed", len(outputs))
    assert got[0] == outputs


@pytest.mark.timeout(240)
def test_a_zombie_producer_is_fenced(broker, topic_name):
    clients.create_topic(broker.bootstrap, topic_name, PARTITIONS)
    txn_id = f"zombie-{topic_name}"
    old = txn_producer(broker.bootstrap, txn_id)
    old.init_transactions(30)
    old.begin_transaction()
    for i in range(6):
        old.produce(topic_name, value=b"zombie-%d" % i, partition=i % PARTITIONS)
    old.flush(30)

    new = txn_producer(broker.bootstrap, txn_id)
    new.init_transactions(30)  # fences `old` and aborts its open transaction
    run_transaction(new, topic_name, [b"new-%d" % i for i in range(6)], commit=True)

    with pytest.raises(KafkaException) as raised:
        old.commit_transaction(30)
    error = raised.value.args[0]
    assert error.fatal() or "fenced" in str(error).lower(), f"expected the old producer to be fenced: {error}"

    got = read_values(broker.bootstrap, topic_name, "read_committed", 6)
    values = sorted(v for part in got.values() for v in part)
    assert values == sorted(b"new-%d" % i for i in range(6))


@pytest.mark.timeout(240)
def test_an_abandoned_transaction_is_aborted_at_its_timeout(broker, topic_name):
    clients.create_topic(broker.bootstrap, topic_name, PARTITIONS)
    abandoned = txn_producer(broker.bootstrap, f"abandoned-{topic_name}", **{"transaction.timeout.ms": 2_000, "socket.timeout.ms": 2_000,
                                                                             "message.timeout.ms": 2_000})
    abandoned.init_transactions(30)
    abandoned.begin_transaction()
    for i in range(6):
        abandoned.produce(topic_name, value=b"abandoned-%d" % i, partition=i % PARTITIONS)
    abandoned.flush(30)

    other = txn_producer(broker.bootstrap, f"other-{topic_name}")
    other.init_transactions(30)
    run_transaction(other, topic_name, [b"after-%d" % i for i in range(6)], commit=True)

    # While the abandoned transaction is open the committed records behind it are not stable yet.
    early = read_values(broker.bootstrap, topic_name, "read_committed", 0, idle_seconds=1, timeout=3)
    assert sum(len(v) for v in early.values()) == 0, f"records past an open transaction leaked: {early}"
    # ListOffsets "latest": the last stable offset for read_committed (the open transaction starts at 0),
    # the high watermark (2 abandoned + 2 committed records + 1 marker) for read_uncommitted.
    for isolation, expected in (("read_committed", 0), ("read_uncommitted", 5)):
        c = clients.consumer(broker.bootstrap, **{"isolation.level": isolation})
        try:
            _low, high = c.get_watermark_offsets(TopicPartition(topic_name, 0), timeout=10, cached=False)
        finally:
            c.close()
        assert high == expected, f"{isolation}: latest offset {high}, expected {expected}"

    got = read_values(broker.bootstrap, topic_name, "read_committed", 6, timeout=ABORT_SWEEP_SECONDS * 3)
    values = sorted(v for part in got.values() for v in part)
    assert values == sorted(b"after-%d" % i for i in range(6))


@pytest.mark.timeout(300)
@pytest.mark.parametrize("broker", [1, 2], indirect=True, ids=["shards1", "shards2"])
def test_kill9_in_the_middle_of_transactions(broker, topic_name):
    if not getattr(broker, "managed", True):
        pytest.skip("needs a broker this test can kill")
    clients.create_topic(broker.bootstrap, topic_name, PARTITIONS)
    done = txn_producer(broker.bootstrap, f"done-{topic_name}")
    done.init_transactions(30)
    run_transaction(done, topic_name, [b"committed-%d" % i for i in range(6)], commit=True)
    run_transaction(done, topic_name, [b"aborted-%d" % i for i in range(6)], commit=False)

    open_txn = txn_producer(broker.bootstrap, f"open-{topic_name}", **{"transaction.timeout.ms": 3_000, "socket.timeout.ms": 3_000,
                                                                           "message.timeout.ms": 3_000})
    open_txn.init_transactions(30)
    open_txn.begin_transaction()
    for i in range(6):
        open_txn.produce(topic_name, value=b"open-%d" % i, partition=i % PARTITIONS)
    open_txn.flush(30)

    broker.kill9()
    broker.start()

    got = read_values(broker.bootstrap, topic_name, "read_committed", 6, timeout=ABORT_SWEEP_SECONDS * 4)
    values = sorted(v for part in got.values() for v in part)
    assert values == sorted(b"committed-%d" % i for i in range(6)), (
        "after kill -9 only the committed transaction may be visible")

    # The transactional id keeps working after the restart.
    again = txn_producer(broker.bootstrap, f"done-{topic_name}")
    again.init_transactions(30)
    run_transaction(again, topic_name, [b"later-%d" % i for i in range(6)], commit=True)
    got = read_values(broker.bootstrap, topic_name, "read_committed", 12)
    values = sorted(v for part in got.values() for v in part)
    assert values == sorted([b"committed-%d" % i for i in range(6)] + [b"later-%d" % i for i in range(6)])


def lso_lag(metrics_port: int, topic: str, partition: int) -> int | None:
    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read().decode()
    prefix = "ringbroker_partition_last_stable_offset_lag{"
    for line in text.splitlines():
        if line.startswith(prefix) and f'topic="{topic}"' in line and f'partition="{partition}"' in line:
            return int(float(line.rsplit(" ", 1)[1]))
    return None


def wait_for_lso_lag(metrics_port: int, topic: str, predicate, timeout: float = 15.0) -> int | None:
    """The metric is sampled once a second: poll until `predicate(value)` or the timeout; returns the last value."""
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = lso_lag(metrics_port, topic, 0)
        if value is not None and predicate(value):
            break
        time.sleep(0.3)
    return value


@pytest.mark.timeout(120)
def test_lso_lag_metric_shows_an_open_transaction(tmp_path, topic_name):
    """ringbroker_partition_last_stable_offset_lag: the records an open transaction keeps from read_committed
    consumers, back to 0 once it commits."""
    if conftest.EXTERNAL_BOOTSTRAP or conftest.REFERENCE_KAFKA or not conftest.BROKER_BIN:
        pytest.skip("reads ringbroker's own metrics endpoint")
    metrics_port = conftest.free_port()
    b = conftest.BrokerProcess(conftest.BROKER_BIN, tmp_path / "data", 1, tmp_path,
                               extra_args=["--metrics-listen", f"127.0.0.1:{metrics_port}"])
    conftest._ACTIVE.append(b)
    b.start()
    try:
        clients.create_topic(b.bootstrap, topic_name, 1)
        p = txn_producer(b.bootstrap, f"lag-{topic_name}")
        p.init_transactions(30)
        p.begin_transaction()
        for i in range(7):
            p.produce(topic_name, value=b"open-%d" % i, partition=0)
        p.flush(30)
        assert wait_for_lso_lag(metrics_port, topic_name, lambda v: v == 7) == 7, "7 open records hold the LSO back"
        p.commit_transaction(30)
        assert wait_for_lso_lag(metrics_port, topic_name, lambda v: v == 0) == 0, "nothing open after the commit"
    finally:
        conftest._shutdown(b)


# Compacted topic written in transactions (what Kafka Connect's exactly-once workers do with their offsets topic).
COMPACTED_KEYS = 10
# Plain records after the transactions, so the segment holding them is sealed (the topic has 1 MiB segments).
COMPACTED_FILLER = 12_000
COMPACTED_PADDING = b"p" * 100


@pytest.mark.timeout(240)
def test_compaction_keeps_committed_values_over_later_aborted_ones(broker, topic_name):
    """A key's committed value followed by an aborted one: after compaction read_committed still finds the
    committed value (the cleaner must neither keep the aborted record as the key's latest, which removes the
    committed one, nor leave aborted records behind), and the log has no aborted record left."""
    from test_compaction import COMPACTION_WAIT_S, create_compacted_topic

    create_compacted_topic(broker.bootstrap, topic_name)
    keys = [b"source-%d" % i for i in range(COMPACTED_KEYS)]
    p = txn_producer(broker.bootstrap, f"offsets-{topic_name}")
    p.init_transactions(30)
    for value, commit in ((b"committed", True), (b"aborted", False)):
        p.begin_transaction()
        for key in keys:
            p.produce(topic_name, key=key, value=value, partition=0)
        p.flush(30)
        if commit:
            p.commit_transaction(30)
        else:
            p.abort_transaction(30)
    filler = clients.producer(broker.bootstrap, **{"linger.ms": 5})
    for i in range(COMPACTED_FILLER):
        filler.produce(topic_name, key=b"filler-%d" % (i % 50), value=COMPACTED_PADDING, partition=0)
        if i % 1000 == 0:
            filler.poll(0)
    assert filler.flush(30) == 0

    def latest(isolation: str) -> dict[bytes, list[bytes]]:
        c = clients.consumer(broker.bootstrap, **{"isolation.level": isolation, "group.id": f"c-{uuid.uuid4().hex}"})
        try:
            c.assign([TopicPartition(topic_name, 0, OFFSET_BEGINNING)])
            values: dict[bytes, list[bytes]] = {}
            quiet_since = time.monotonic()
            while time.monotonic() - quiet_since < 2:
                msgs = c.consume(num_messages=5_000, timeout=0.5)
                for msg in msgs:
                    if msg.error() is not None:
                        raise KafkaException(msg.error())
                    if msg.key() in keys:
                        values.setdefault(msg.key(), []).append(msg.value())
                if msgs:
                    quiet_since = time.monotonic()
            return values
        finally:
            c.close()

    deadline = time.monotonic() + COMPACTION_WAIT_S
    while "compacted dir=" not in broker.log_tail(100_000) and time.monotonic() < deadline:
        time.sleep(1)
    assert "compacted dir=" in broker.log_tail(100_000), "no compaction pass in time"
    committed = latest("read_committed")
    assert committed == {key: [b"committed"] for key in keys}, f"read_committed after compaction: {committed}"
    everything = latest("read_uncommitted")
    assert all(b"aborted" not in values for values in everything.values()), f"aborted records left: {everything}"
