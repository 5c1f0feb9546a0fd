"""Issue 2: after a restart all data is still there and offsets continue; after `kill -9` in the middle of an
acks=all produce run every acknowledged record is readable and the log is valid."""

from __future__ import annotations

import subprocess
import threading
import time

import pytest

import clients
from conftest import free_port

PARTITIONS = 4


def require_managed(broker) -> None:
    if not broker.managed:
        pytest.skip("restarts the broker: needs RINGBROKER_BIN, not RINGBROKER_BOOTSTRAP")


def assert_log_valid(data: dict[int, list], high: dict[int, int]) -> dict[int, dict[int, bytes]]:
    """Each partition holds offsets 0..high-1, each exactly once, in order. Returns {partition: {offset: value}}."""
    by_offset: dict[int, dict[int, bytes]] = {}
    for part, records in data.items():
        offsets = [o for o, _, _ in records]
        assert offsets == list(range(high[part])), (
            f"partition {part}: offsets not contiguous 0..{high[part] - 1}: "
            f"first {offsets[:5]}, last {offsets[-5:]}, count {len(offsets)}"
        )
        by_offset[part] = {o: v for o, _, v in records}
    return by_offset


@pytest.mark.parametrize("broker", [1, 2], indirect=True, ids=["shards1", "shards2"])
def test_restart_keeps_data_and_offsets_continue(broker, topic_name):
    require_managed(broker)
    clients.create_topic(broker.bootstrap, topic_name, PARTITIONS)
    p = clients.producer(broker.bootstrap)
    first = clients.produce_all(p, topic_name, [(b"k%d" % (i % 50), b"first-%d" % i) for i in range(5000)])
    high_before = {part: 0 for part in range(PARTITIONS)}
    for d in first:
        high_before[d.partition] = max(high_before[d.partition], d.offset + 1)
    del p

    broker.restart()

    data, high = clients.consume_all(broker.bootstrap, topic_name, PARTITIONS)
    assert high == high_before, f"high watermarks changed across restart: {high_before} -> {high}"
    by_offset = assert_log_valid(data, high)
    for d in first:
        assert by_offset[d.partition].get(d.offset) == d.value, f"record {d} lost or changed across restart"

    p = clients.producer(broker.bootstrap)
    second = clients.produce_all(p, topic_name, [(b"k%d" % (i % 50), b"second-%d" % i) for i in range(1000)])
    first_new = {}
    for d in second:
        assert d.offset >= high_before[d.partition], f"offset {d.offset} reused on partition {d.partition}"
        first_new[d.partition] = min(first_new.get(d.partition, d.offset), d.offset)
    for part, offset in first_new.items():
        assert offset == high_before[part], f"partition {part}: offsets jump from {high_before[part]} to {offset}"

    data, high = clients.consume_all(broker.bootstrap, topic_name, PARTITIONS)
    assert sum(high.values()) == 6000
    assert_log_valid(data, high)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("broker", [1, 2], indirect=True, ids=["shards1", "shards2"])
def test_kill9_mid_produce_loses_no_acknowledged_record(broker, topic_name):
    require_managed(broker)
    clients.create_topic(broker.bootstrap, topic_name, PARTITIONS)
    acked: list[tuple[int, int, bytes]] = []
    failed = 0
    stop = threading.Event()
    thread_error: list[BaseException] = []

    def on_delivery(err, msg):
        nonlocal failed
        if err is None:
            acked.append((msg.partition(), msg.offset(), msg.value()))
        else:
            failed += 1

    def produce_until_stopped():
        try:
            p = clients.producer(
                broker.bootstrap,
                **{
                    "message.timeout.ms": 20_000,
                    "linger.ms": 2,
                    "reconnect.backoff.max.ms": 500,
                    "queue.buffering.max.messages": 20_000,
                },
            )
            i = 0
            while not stop.is_set():
                try:
                    p.produce(topic_name, key=b"k%d" % (i % 64), value=b"r-%d" % i, on_delivery=on_delivery)
                    i += 1
                except BufferError:
                    p.poll(0.05)
                if i % 500 == 0:
                    p.poll(0.001)  # pace the producer so the backlog stays small
            p.flush(30)
        except BaseException as e:  # reported by the test thread
            thread_error.append(e)

    t = threading.Thread(target=produce_until_stopped, daemon=True)
    t.start()
    deadline = time.monotonic() + 60
    while len(acked) < 20_000:
        assert time.monotonic() < deadline, f"only {len(acked)} records acknowledged before the kill"
        assert not thread_error, thread_error
        time.sleep(0.01)
    broker.kill9()
    acked_at_kill = len(acked)
    time.sleep(1.0)
    broker.start()
    deadline = time.monotonic() + 60
    while len(acked) < acked_at_kill + 5_000:
        assert time.monotonic() < deadline, (
            f"producer made no progress after restart ({len(acked) - acked_at_kill} new acks, {failed} failed)"
        )
        time.sleep(0.05)
    stop.set()
    t.join(90)
    assert not t.is_alive(), "producer thread did not finish"
    assert not thread_error, thread_error

    data, high = clients.consume_all(broker.bootstrap, topic_name, PARTITIONS)
    by_offset = assert_log_valid(data, high)
    missing = [(p, o, v) for p, o, v in acked if by_offset.get(p, {}).get(o) != v]
    assert not missing, (
        f"{len(missing)} of {len(acked)} acknowledged records are not at their acknowledged offset, "
        f"first {missing[:5]}"
    )
    print(f"\nacked {len(acked)} (at kill {acked_at_kill}), failed deliveries {failed}, log {sum(high.values())}")


def test_second_broker_on_the_same_data_dir_is_refused(broker, topic_name):
    """Two brokers appending to the same partition files would corrupt them: the second one must refuse to
    start, name the holder, and leave the first one serving."""
    require_managed(broker)
    if not hasattr(broker, "binary"):
        pytest.skip("checks ringbroker's own data directory lock")
    second = subprocess.run(
        [broker.binary, "serve", "--listen", f"127.0.0.1:{free_port()}", "--data-dir", str(broker.data_dir),
         "--shards", "1", "--metrics-listen", "none"],
        capture_output=True, text=True, timeout=60,
    )
    output = second.stdout + second.stderr
    assert second.returncode != 0, output
    assert "in use by another ringbroker" in output, output
    # The first broker still serves: produce and read back.
    clients.create_topic(broker.bootstrap, topic_name, 1)
    clients.produce_all(clients.producer(broker.bootstrap), topic_name, [(b"k", b"still-here")])
    got, _ = clients.consume_all(broker.bootstrap, topic_name, 1)
    assert [v for _, _, v in got[0]] == [b"still-here"]


def test_stopped_broker_releases_its_port_at_once(broker):
    """Once the broker has exited its port must refuse connections and bind again: a listener left behind
    (glommio's pending io_uring accept kept it alive past the exit) queued clients that nobody served and
    could make an immediate restart fail. Connections that were open at the stop are closed by the broker."""
    require_managed(broker)
    import socket

    import kafka_wire as kw

    sockets = []
    for correlation_id in range(1, 9):
        sock = kw.connect(broker.bootstrap)
        sock.sendall(kw.api_versions_v0(correlation_id))
        assert kw.read_response(sock) is not None
        sockets.append(sock)
    broker.stop_clean()
    # Right after the exit (the old listener lingered for some milliseconds, so do not wait).
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", broker.port), timeout=2).close()
    for sock in sockets:
        sock.close()
    broker.start()
    with kw.connect(broker.bootstrap) as sock:
        sock.sendall(kw.api_versions_v0(99))
        assert kw.read_response(sock) is not None
