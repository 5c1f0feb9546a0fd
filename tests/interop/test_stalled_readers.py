"""Issue 23, part 2: no client can stall another's reads. Eight clients each fetch 16 MiB of old data (no longer
in the tail cache, so it comes from segment files) and then stop reading their sockets. A ninth client's fetch of
old data and of new data must each be answered within a second, and the eight stuck connections must be closed
once `connections_max_write_stall_ms` has passed without them reading.

Before the fix, old data went out by blocking sendfile calls on the executor's small blocking thread pool, each
allowed a 30 s send timeout, so the stuck clients held the pool and every other client's old-data read waited.

The broker runs with 2 shards (the stuck clients land on both), the smallest tail cache, and a 3 s write stall
limit. Prints the ninth client's latencies (BENCHMARKS.md, "Stalled readers"). To measure a broker that predates
the stall setting, STALLED_READERS_LEGACY=1 leaves `--set connections_max_write_stall_ms` off (the test then fails
where that broker does)."""

from __future__ import annotations

import os
import socket
import time

import pytest

import chaos_helpers as ch
import conftest
import kafka_wire as kw

STALL_MS = 3_000
STUCK_CLIENTS = 8
# Old data: 26 batches of ~1 MiB (960 records of 1 KiB), far past the 1 MiB tail cache of a partition.
OLD_BATCHES = 26
RECORDS_PER_BATCH = 960
RECORD_BYTES = 1024
# Each stuck client asks for this much: more than its socket buffers and the broker's can hold.
STUCK_FETCH_BYTES = 16 << 20
# The bound the issue sets for the ninth client's answers.
ANSWER_WITHIN_S = 1.0
# Slack for the broker to act on the stall limit (timer granularity, a loaded 2-core machine).
CLOSE_SLACK_S = 5.0


def value(batch: int, record: int) -> bytes:
    head = b"old-%04d-%06d-" % (batch, record)
    return head + bytes([(batch * 31 + record) % 251]) * (RECORD_BYTES - len(head))


@pytest.fixture(scope="module")
def stall_broker(tmp_path_factory):
    if conftest.EXTERNAL_BOOTSTRAP or conftest.REFERENCE_KAFKA or not conftest.BROKER_BIN:
        pytest.skip("starts its own broker with a short write stall limit: needs RINGBROKER_BIN")
    base = tmp_path_factory.mktemp("stall-broker")
    extra = ["--metrics-listen", "none", "--set", "tail_cache_bytes_per_shard=0"]
    if os.environ.get("STALLED_READERS_LEGACY") != "1":
        extra += ["--set", f"connections_max_write_stall_ms={STALL_MS}"]
    b = ch.ConfiguredBroker(conftest.BROKER_BIN, base / "data", 2, base, extra)
    conftest._ACTIVE.append(b)
    b.start()
    yield b
    conftest._shutdown(b)


def stuck_client(bootstrap: str, topic: str, correlation_id: int) -> socket.socket:
    """Asks for STUCK_FETCH_BYTES of old data and never reads: a socket that is not read keeps its
    initial receive buffer (128 KiB by default), and the broker's send buffer grows to 4 MiB at most, so
    most of the answer stays behind. (A tiny SO_RCVBUF would make the later drain crawl: a window below the
    loopback MSS is only reopened by the sender's persist probes.)"""
    s = kw.connect(bootstrap, timeout=30)
    s.sendall(kw.fetch_v4(correlation_id, topic, {0: 0}, max_bytes=STUCK_FETCH_BYTES,
                          partition_max_bytes=STUCK_FETCH_BYTES))
    return s


def timed_fetch(s: socket.socket, correlation_id: int, topic: str, offset: int, max_bytes: int):
    started = time.monotonic()
    s.sendall(kw.fetch_v4(correlation_id, topic, {0: offset}, max_bytes=max_bytes, partition_max_bytes=max_bytes,
                          max_wait_ms=0))
    got = kw.read_response(s)
    took = time.monotonic() - started
    assert got is not None and got[0] == correlation_id, "the ninth client's fetch was not answered"
    part = kw.parse_fetch_v4(got[1])[topic][0]
    assert part.error_code == kw.ERROR_NONE, f"fetch error {part.error_code}"
    return took, kw.parse_batches(part.records or b"")


def wait_for_stall_closes(b, log_start: int, count: int, limit_s: float) -> float:
    """Waits until the broker logged closing `count` connections for not reading; returns when (monotonic)."""
    deadline = time.monotonic() + limit_s
    while True:
        closes = b._log_since(log_start).count("the client stopped reading")
        if closes >= count:
            return time.monotonic()
        assert time.monotonic() < deadline, f"{closes} of {count} stuck connections closed after {limit_s:.0f} s"
        time.sleep(0.1)


def drained_to_close(s: socket.socket, limit_s: float) -> tuple[bool, int]:
    """Reads whatever the broker had sent until it closes the connection: (closed, bytes read)."""
    s.settimeout(0.5)
    got = 0
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        try:
            chunk = s.recv(1 << 20)
        except ConnectionResetError:
            return True, got
        except socket.timeout:
            continue
        if not chunk:
            return True, got
        got += len(chunk)
    return False, got


@pytest.mark.timeout(240)
def test_stuck_readers_hold_only_their_own_connections(stall_broker):
    b = stall_broker
    topic = "old-data"
    with kw.connect(b.bootstrap, timeout=30) as s:
        s.sendall(kw.metadata_v1(1, [topic]))  # auto-creates the topic (1 partition)
        assert kw.read_response(s) is not None
        deadline = time.monotonic() + 30
        while True:
            r = ch.produce_raw(s, 2, topic, ch.plain_batch([value(0, 0)]))
            if r.error_code == kw.ERROR_NONE:
                break
            assert time.monotonic() < deadline, f"produce to the new topic answered {r.error_code}"
            time.sleep(0.2)
        for batch in range(OLD_BATCHES):
            values = [value(batch, i) for i in range(RECORDS_PER_BATCH)]
            r = ch.produce_raw(s, 10 + batch, topic, ch.plain_batch(values))
            assert r.error_code == kw.ERROR_NONE, f"old batch {batch}: {r.error_code}"

    log_start = b.log_size()
    fetched_at = time.monotonic()
    stuck = [stuck_client(b.bootstrap, topic, 100 + i) for i in range(STUCK_CLIENTS)]
    try:
        time.sleep(1.0)  # every stuck response has filled its socket by now
        # A long socket timeout, so a broker that stalls the ninth client is measured, not cut short.
        with kw.connect(b.bootstrap, timeout=150) as ninth:
            # Old data: offset 1 is the first record of the first old batch, on disk, not in the tail cache.
            old_s, batches = timed_fetch(ninth, 200, topic, 1, 1 << 20)
            assert batches and batches[0].base_offset == 1, "the old fetch returned no batch at offset 1"
            assert batches[0].values[:3] == [value(0, i) for i in range(3)], "old data read back wrong"
            # New data: a fresh record, fetched right after it was produced.
            fresh = b"fresh-%d" % time.time_ns()
            r = ch.produce_raw(ninth, 201, topic, ch.plain_batch([fresh]))
            assert r.error_code == kw.ERROR_NONE
            new_s, batches = timed_fetch(ninth, 202, topic, r.base_offset, 1 << 20)
            assert batches and batches[0].values == [fresh], "the new record read back wrong"
        print(f"\nwith {STUCK_CLIENTS} clients stuck on 16 MiB fetches: ninth client's old-data fetch answered in "
              f"{old_s * 1000:.1f} ms, new-data fetch in {new_s * 1000:.1f} ms")
        assert old_s < ANSWER_WITHIN_S, f"old-data fetch took {old_s:.2f} s beside {STUCK_CLIENTS} stuck readers"
        assert new_s < ANSWER_WITHIN_S, f"new-data fetch took {new_s:.2f} s beside {STUCK_CLIENTS} stuck readers"

        # The stuck connections are closed once the stall limit passes without progress. A socket nobody reads
        # still takes a little more for a second or two (the kernel compacts its receive queue), so the limit
        # runs from then: wait for the broker's log line per connection, then read what the broker had sent,
        # which must end in the end of the stream, well short of the 16 MiB answers. (Reading earlier would be
        # progress, and rightly keep the connection open.)
        closed_after = wait_for_stall_closes(b, log_start, STUCK_CLIENTS, STALL_MS / 1000 + CLOSE_SLACK_S) - fetched_at
        assert closed_after >= STALL_MS / 1000 * 0.9, f"closed {closed_after:.1f} s after the fetches, before the limit"
        for i, s in enumerate(stuck):
            closed, got = drained_to_close(s, CLOSE_SLACK_S)
            assert closed, f"stuck client {i} was not closed"
            assert got < STUCK_FETCH_BYTES, f"stuck client {i} got its whole answer ({got} bytes)"
        print(f"all {STUCK_CLIENTS} stuck connections closed {closed_after:.1f} s after their fetches "
              f"(connections_max_write_stall_ms={STALL_MS})")
    finally:
        for s in stuck:
            s.close()
    assert b.running()
    assert conftest.api_versions_answer(b.bootstrap), "the broker stopped answering"
