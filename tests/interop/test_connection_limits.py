"""Issue 8 (resource limits): idle connections, slow-loris clients and per-connection in-flight bytes.

One broker (2 shards) runs with short limits set through `--set`:
- `connections_max_idle_ms` (Kafka's connections.max.idle.ms): an idle connection is closed;
- `request_read_timeout_ms`: a frame sent one byte per second is cut off, while other clients keep working;
- `max_in_flight_bytes_per_connection`: a client that pipelines large produce requests without reading
  the answers is muted (the broker stops reading its socket) and the broker's RSS stays bounded.
After each case the witness (a confluent-kafka producer and consumer plus a raw connection, from
test_malformed.py) must still produce and read back a record."""

from __future__ import annotations

import socket
import threading
import time
import uuid

import pytest

import chaos_helpers as ch
import clients
import conftest
import kafka_wire as kw
from test_malformed import Witness

IDLE_MS = 2_000
READ_TIMEOUT_MS = 3_000
IN_FLIGHT_BYTES = 4 << 20
# Slack for the broker to act on a timeout (timer granularity, a loaded 2-core CI machine).
CLOSE_SLACK_S = 5.0
# One pipelined produce request: 15 records of 64 KiB (just under message.max.bytes).
PIPELINE_RECORDS = 15
PIPELINE_RECORD_BYTES = 64 << 10
PIPELINE_REQUESTS = 200
# How long the pipelining client gets to push bytes while the broker holds its answers back.
MUTED_WINDOW_S = 5.0
# The answers are held back by a long-polling Fetch at the head of the pipeline for this long.
HOLD_FETCH_WAIT_MS = 12_000


@pytest.fixture(scope="module")
def limited_broker(tmp_path_factory):
    if conftest.EXTERNAL_BOOTSTRAP or conftest.REFERENCE_KAFKA or not conftest.BROKER_BIN:
        pytest.skip("starts its own broker with short limits: needs RINGBROKER_BIN (a ringbroker binary)")
    base = tmp_path_factory.mktemp("limits-broker")
    extra = [
        "--metrics-listen", "none",
        "--set", f"connections_max_idle_ms={IDLE_MS}",
        "--set", f"request_read_timeout_ms={READ_TIMEOUT_MS}",
        "--set", f"max_in_flight_bytes_per_connection={IN_FLIGHT_BYTES}",
    ]
    b = ch.ConfiguredBroker(conftest.BROKER_BIN, base / "data", 2, base, extra)
    conftest._ACTIVE.append(b)
    b.start()
    yield b
    conftest._shutdown(b)


class IdleAwareWitness(Witness):
    """The witness of test_malformed.py; its raw connection sits idle between uses, which this broker's
    short connections_max_idle_ms rightly closes, so a connection older than half that limit is replaced
    before use (librdkafka reconnects by itself, as it does against Kafka)."""

    @property
    def raw(self) -> socket.socket:
        if time.monotonic() - self._raw_opened > IDLE_MS / 1000 / 2:
            self._raw.close()
            self.raw = kw.connect(self.bootstrap)
        return self._raw

    @raw.setter
    def raw(self, value: socket.socket) -> None:
        self._raw = value
        self._raw_opened = time.monotonic()


@pytest.fixture(scope="module")
def witness(limited_broker):
    w = IdleAwareWitness(limited_broker.bootstrap)
    w.check()
    yield w
    w.close()


def wait_closed(s: socket.socket, limit_s: float) -> float:
    """Seconds until the broker closes `s` (reads EOF or a reset); fails after `limit_s`."""
    start = time.monotonic()
    s.settimeout(limit_s)
    try:
        data = s.recv(1)
        assert data == b"", f"broker sent {data!r} instead of closing"
    except ConnectionResetError:
        pass
    except socket.timeout:
        pytest.fail(f"connection still open after {limit_s:.1f} s")
    return time.monotonic() - start


def test_idle_connection_is_closed(limited_broker, witness):
    idle = kw.connect(limited_broker.bootstrap)
    busy = kw.connect(limited_broker.bootstrap)
    busy_answers: list[bool] = []

    def keep_busy() -> None:
        # A request every 0.5 s for twice the idle limit: this connection must stay open.
        for corr in range(int(2 * IDLE_MS / 500)):
            busy.sendall(kw.api_versions_v0(corr))
            got = kw.read_response(busy)
            busy_answers.append(got is not None and got[0] == corr)
            time.sleep(0.5)

    t = threading.Thread(target=keep_busy, daemon=True)
    t.start()
    waited = wait_closed(idle, IDLE_MS / 1000 + CLOSE_SLACK_S)
    t.join(2 * IDLE_MS / 1000 + CLOSE_SLACK_S)
    assert waited >= IDLE_MS / 1000 * 0.9, f"idle connection closed after {waited:.2f} s, before the limit"
    assert busy_answers and all(busy_answers), f"an active connection was closed: {busy_answers}"
    idle.close()
    busy.close()
    witness.check()
    print(f"\nidle connection closed after {waited:.2f} s (connections_max_idle_ms={IDLE_MS})")


def slow_sender(s: socket.socket, payload: bytes, sent: list[int], stop: threading.Event) -> None:
    for byte in payload:
        if stop.is_set():
            return
        try:
            s.sendall(bytes([byte]))
        except OSError:
            return
        sent[0] += 1
        time.sleep(1.0)


@pytest.mark.parametrize("where", ["prefix", "body"])
def test_slow_loris_is_cut_off_and_others_unaffected(limited_broker, witness, where):
    request = kw.api_versions_v0(7)
    s = kw.connect(limited_broker.bootstrap)
    if where == "body":
        s.sendall(request[:4])  # the size prefix at once, then the body one byte per second
        payload = request[4:]
    else:
        payload = request
    sent, stop = [0], threading.Event()
    started = time.monotonic()
    t = threading.Thread(target=slow_sender, args=(s, payload, sent, stop), daemon=True)
    t.start()
    checks = 0
    try:
        # Other clients keep working while the slow client dribbles.
        while time.monotonic() - started < READ_TIMEOUT_MS / 1000:
            check_started = time.monotonic()
            witness.check()
            checks += 1
            assert time.monotonic() - check_started < 5.0, "a witness round took over 5 s beside a slow-loris"
        closed_after = time.monotonic() - started + wait_closed(s, READ_TIMEOUT_MS / 1000 + CLOSE_SLACK_S)
        # One deadline per frame, from its first byte (the prefix's time counts against the body's).
        assert closed_after < READ_TIMEOUT_MS / 1000 + 2.0, f"cut off only after {closed_after:.2f} s"
    finally:
        stop.set()
        t.join(5)
        s.close()
    assert sent[0] < len(payload), "the slow frame was completed instead of cut off"
    witness.check()
    print(f"\nslow-loris ({where}, 1 byte/s): cut off after {closed_after:.2f} s and {sent[0]} bytes "
          f"(request_read_timeout_ms={READ_TIMEOUT_MS}); {checks} witness rounds meanwhile")


def pipeline_sender(s: socket.socket, frames: list[bytes], sent: list[int], stop: threading.Event) -> None:
    for data in frames:
        view = memoryview(data)
        while view and not stop.is_set():
            try:
                n = s.send(view)
            except socket.timeout:
                continue
            except OSError:
                return
            sent[0] += n
            view = view[n:]
        if stop.is_set():
            return


def test_pipelined_produce_without_reading_is_muted_and_bounded(limited_broker, witness):
    b = limited_broker
    topic, hold_topic = f"pipeline-{uuid.uuid4().hex[:8]}", f"hold-{uuid.uuid4().hex[:8]}"
    clients.create_topic(b.bootstrap, topic, 1)
    clients.create_topic(b.bootstrap, hold_topic, 1)
    rss_before = ch.vm_rss_bytes(b.proc.pid)
    values = [bytes([i]) * PIPELINE_RECORD_BYTES for i in range(PIPELINE_RECORDS)]
    produce = [kw.produce_v7(1000 + i, topic, {0: ch.plain_batch(values)}) for i in range(PIPELINE_REQUESTS)]
    # A long poll on an empty partition heads the pipeline: answers go out in request order, so every
    # produce answer waits behind it and the produce requests stay in flight.
    hold = kw.fetch_v4(999, hold_topic, {0: 0}, max_wait_ms=HOLD_FETCH_WAIT_MS)
    s = socket.create_connection(("127.0.0.1", b.port), timeout=0.2)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 256 << 10)
    sent, stop = [0], threading.Event()
    t = threading.Thread(target=pipeline_sender, args=(s, [hold] + produce, sent, stop), daemon=True)
    started = time.monotonic()
    t.start()
    rss_max = rss_before
    try:
        while time.monotonic() - started < MUTED_WINDOW_S:
            rss_max = max(rss_max, ch.vm_rss_bytes(b.proc.pid))
            time.sleep(0.1)
        muted_bytes = sent[0]
        witness.check()  # other clients are served while this one is muted
        total = sum(len(f) for f in produce) + len(hold)
        assert muted_bytes < 32 << 20, (
            f"the broker read {muted_bytes >> 20} MiB of {total >> 20} MiB while holding the answers back: "
            "not muted by max_in_flight_bytes_per_connection")
        # Now read: the fetch answers after its wait, then every produce, and the client may send the rest.
        s.settimeout(60)
        got = kw.read_response(s)
        assert got is not None and got[0] == 999, "the holding fetch was not answered first"
        for i in range(PIPELINE_REQUESTS):
            got = kw.read_response(s)  # the sender thread only writes to the socket
            assert got is not None, f"connection closed after {i} produce answers"
            assert got[0] == 1000 + i, f"answer {got[0]} out of order, expected {1000 + i}"
            r = kw.parse_produce_v7(got[1])[topic][0]
            assert r.error_code == kw.ERROR_NONE, f"produce {i} answered {r.error_code}"
            rss_max = max(rss_max, ch.vm_rss_bytes(b.proc.pid))
    finally:
        stop.set()
        t.join(10)
        s.close()
    rss_growth = rss_max - rss_before
    assert rss_growth < 96 << 20, f"broker RSS grew by {rss_growth >> 20} MiB"
    witness.check()
    print(f"\npipelining {PIPELINE_REQUESTS} x {len(produce[0]) >> 10} KiB produce requests without reading: "
          f"broker read {muted_bytes >> 20} MiB in {MUTED_WINDOW_S:.0f} s while answers were held back "
          f"(max_in_flight_bytes_per_connection = {IN_FLIGHT_BYTES >> 20} MiB); RSS {rss_before >> 20} -> "
          f"max {rss_max >> 20} MiB (+{rss_growth >> 20} MiB); all {PIPELINE_REQUESTS} answered in order")
