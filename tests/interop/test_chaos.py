"""Issue 8: chaos against the real broker binary.

- crash loop: an acks=all producer runs while the broker is `kill -9`ed CHAOS_KILLS times (default 5; the full
  run is CHAOS_KILLS=100) at random moments and restarted on the same port and data dir; every acknowledged
  record must be at its acknowledged offset, acknowledged records of a partition in send order, and a full
  CRC-checked consume must succeed.
- thousands of connections at once, the `max_connections` limit (connection 51 of 50 is closed), its default
  from the file descriptor limit, and `max_connections_per_ip` with its overrides.
- compressed batches that do not decompress, and a gzip bomb: refused (nothing stored), and the broker's memory
  stays bounded.
- disk full on a small loop-mounted ext4: appends fail with an error code (not a crash, not a false ack),
  nothing acknowledged is lost, and the same broker process (no restart) accepts appends again, at the
  acknowledged end, once space is freed.
"""

from __future__ import annotations

import gzip
import os
import random
import resource
import shutil
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import TopicPartition

import chaos_helpers as ch
import clients
import conftest
import kafka_wire as kw

PARTITIONS = 4
# kill -9s of the crash loop (CI default; the full run is CHAOS_KILLS=100 by hand).
CHAOS_KILLS = int(os.environ.get("CHAOS_KILLS", "5"))
# Seed of the random kill moments (printed, so a failing run can be replayed).
CHAOS_SEED = int(os.environ.get("CHAOS_SEED", str(random.randrange(1 << 30))))
# Acknowledgements the producer must make after each restart before the next kill (proves it resumed).
ACKS_BETWEEN_KILLS = 500
# Random wait after that progress before the kill, in seconds.
KILL_DELAY_RANGE_S = (0.05, 1.0)
# Connections opened at once in the mass-connection test.
MASS_CONNECTIONS = 2000
# Of those, how many send ApiVersions and must get an answer.
MASS_SAMPLE = 200
# max_connections given to the broker in the limit test.
LIMIT_CONNECTIONS = 50
# Allowed growth of the broker's resident memory while it handles compression bombs.
RSS_GROWTH_LIMIT_BYTES = 200 << 20
# Uncompressed size of the gzip bomb's single record value.
BOMB_BYTES = 100 << 20


def require_binary() -> str:
    if conftest.EXTERNAL_BOOTSTRAP or conftest.REFERENCE_KAFKA or not conftest.BROKER_BIN:
        pytest.skip("kills and reconfigures the broker: needs RINGBROKER_BIN (a ringbroker binary)")
    return conftest.BROKER_BIN


def start_configured(tmp_path: Path, shards: int, extra: list[str], data_dir: Path | None = None):
    b = ch.ConfiguredBroker(require_binary(), data_dir or tmp_path / "data", shards, tmp_path, extra)
    conftest._ACTIVE.append(b)
    b.start()
    return b


def stop_configured(b) -> None:
    try:
        if b.running():
            b.stop_clean()
    finally:
        if b in conftest._ACTIVE:
            conftest._ACTIVE.remove(b)


# ------------------------------------------------------------------------------------------ 1. crash loop
@pytest.mark.timeout(3600)
def test_crash_loop_loses_no_acknowledged_record(tmp_path, topic_name):
    rng = random.Random(CHAOS_SEED)
    b = start_configured(tmp_path, 2, [])
    try:
        clients.create_topic(b.bootstrap, topic_name, PARTITIONS)
        acked: list[tuple[int, int, int]] = []  # (partition, offset, sequence number)
        failed: list[str] = []
        stop = threading.Event()
        thread_error: list[BaseException] = []

        def on_delivery(err, msg):
            if err is None:
                acked.append((msg.partition(), msg.offset(), int(msg.value().split(b"-")[1])))
            else:
                failed.append(str(err))

        def produce_until_stopped():
            try:
                p = clients.producer(
                    b.bootstrap,
                    **{
                        "enable.idempotence": False,
                        # one request in flight per connection: retries cannot reorder a partition
                        "max.in.flight.requests.per.connection": 1,
                        "message.timeout.ms": 30_000,
                        "linger.ms": 2,
                        "reconnect.backoff.ms": 50,
                        "reconnect.backoff.max.ms": 300,
                        "queue.buffering.max.messages": 20_000,
                    },
                )
                i = 0
                while not stop.is_set():
                    try:
                        p.produce(topic_name, value=b"seq-%d" % i, partition=i % PARTITIONS, on_delivery=on_delivery)
                        i += 1
                    except BufferError:
                        p.poll(0.05)
                    if i % 200 == 0:
                        p.poll(0.002)  # pace: keep the unacknowledged backlog small
                p.flush(60)
            except BaseException as e:  # reported by the test thread
                thread_error.append(e)

        t = threading.Thread(target=produce_until_stopped, daemon=True)
        t.start()
        started = time.monotonic()
        for kill in range(CHAOS_KILLS):
            target = len(acked) + ACKS_BETWEEN_KILLS
            deadline = time.monotonic() + 60
            while len(acked) < target:
                assert not thread_error, thread_error
                assert time.monotonic() < deadline, (
                    f"kill {kill}: producer made no progress ({len(acked)} acked, {len(failed)} failed, "
                    f"last errors {failed[-3:]})"
                )
                time.sleep(0.01)
            time.sleep(rng.uniform(*KILL_DELAY_RANGE_S))
            b.kill9()
            b.start()
        target = len(acked) + ACKS_BETWEEN_KILLS
        deadline = time.monotonic() + 60
        while len(acked) < target:
            assert time.monotonic() < deadline, "producer made no progress after the last restart"
            time.sleep(0.01)
        stop.set()
        t.join(120)
        assert not t.is_alive(), "producer thread did not finish"
        assert not thread_error, thread_error
        produce_s = time.monotonic() - started

        data, high = ch.consume_checked(b.bootstrap, topic_name, PARTITIONS)
        log: dict[int, dict[int, int]] = {}
        for part, records in data.items():
            offsets = [o for o, _ in records]
            assert offsets == list(range(high[part])), (
                f"partition {part}: offsets not 0..{high[part] - 1} each once: first {offsets[:5]}, "
                f"last {offsets[-5:]}, count {len(offsets)}"
            )
            log[part] = {o: int(v.split(b"-")[1]) for o, v in records}
            assert all(s % PARTITIONS == part for s in log[part].values()), f"partition {part}: foreign record"

        missing = [(p, o, s) for p, o, s in acked if log[p].get(o) != s]
        assert not missing, (
            f"{len(missing)} of {len(acked)} acknowledged records are not at their acknowledged offset "
            f"(seed {CHAOS_SEED}), first {missing[:5]}: found {[log[p].get(o) for p, o, _ in missing[:5]]}"
        )
        assert len({(p, o) for p, o, _ in acked}) == len(acked), "two acknowledgements for one offset"
        assert len({s for _, _, s in acked}) == len(acked), "one record acknowledged twice"
        for part in range(PARTITIONS):
            seqs = [s for p, o, s in sorted(acked) if p == part]
            assert seqs == sorted(seqs), f"partition {part}: acknowledged records out of send order"
        # An acknowledged record may have an earlier unacknowledged copy (a retry of a write whose answer the
        # kill lost: allowed with enable.idempotence=false) but never a copy after its acknowledged offset.
        last_ack = {}
        for p, o, s in acked:
            last_ack[(p, s)] = o
        later_copies = [
            (p, o, s) for p in log for o, s in log[p].items() if (p, s) in last_ack and o > last_ack[(p, s)]
        ]
        assert not later_copies, f"copies of acknowledged records after their acknowledged offset: {later_copies[:5]}"
        duplicates = sum(high.values()) - len({(p, s) for p in log for s in log[p].values()})
        print(
            f"\ncrash loop (seed {CHAOS_SEED}, 2 shards): kills survived {CHAOS_KILLS}, records acknowledged "
            f"{len(acked)}, acknowledged records found at their offsets {len(acked) - len(missing)}, log records "
            f"{sum(high.values())} (unacknowledged retry duplicates {duplicates}), failed deliveries {len(failed)}, "
            f"produce phase {produce_s:.1f} s"
        )
    finally:
        stop_configured(b)


# ------------------------------------------------------------------------------- 2. thousands of connections
def raise_nofile(wanted: int) -> tuple[int, int]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        if hard != resource.RLIM_INFINITY and hard < wanted:
            pytest.skip(f"RLIMIT_NOFILE hard limit {hard} < {wanted}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return soft, hard


def witness_round(bootstrap: str, producer, consumer, topic: str, n: int) -> None:
    """Produce one record and read it back with long-lived confluent-kafka clients."""
    value = b"witness-%d-%s" % (n, uuid.uuid4().hex.encode())
    d = clients.produce_all(producer, topic, [(None, value)], partition=0)[0]
    consumer.assign([TopicPartition(topic, 0, d.offset)])
    deadline = time.monotonic() + 20
    while True:
        assert time.monotonic() < deadline, "witness consumer did not get its record back within 20 s"
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        assert msg.error() is None, f"witness consumer error: {msg.error()}"
        if msg.offset() == d.offset:
            assert msg.value() == value
            return


@pytest.mark.timeout(180)
def test_thousands_of_connections_at_once(tmp_path, topic_name):
    old = raise_nofile(MASS_CONNECTIONS * 2 + 512)
    socks: list[socket.socket] = []
    b = start_configured(tmp_path, 2, [])  # started after the rlimit change: inherits it
    try:
        clients.create_topic(b.bootstrap, topic_name, 1)
        producer = clients.producer(b.bootstrap, **{"message.timeout.ms": 20_000})
        consumer = clients.consumer(b.bootstrap, **{"group.id": "chaos-witness"})
        witness_round(b.bootstrap, producer, consumer, topic_name, 0)
        host, port = b.bootstrap.rsplit(":", 1)
        started = time.monotonic()
        for _ in range(MASS_CONNECTIONS):
            s = socket.create_connection((host, int(port)), timeout=10)
            socks.append(s)
        opened_s = time.monotonic() - started
        witness_round(b.bootstrap, producer, consumer, topic_name, 1)
        sample = socks[:: MASS_CONNECTIONS // MASS_SAMPLE]
        for i, s in enumerate(sample):
            s.sendall(kw.api_versions_v0(i))
        for i, s in enumerate(sample):
            got = kw.read_response(s)
            assert got is not None, f"connection {i} of the sample was closed instead of answered"
            assert got[0] == i and got[1].i16() == 0
        witness_round(b.bootstrap, producer, consumer, topic_name, 2)
        for s in socks:
            s.close()
        socks.clear()
        time.sleep(0.5)
        assert b.running(), "broker exited"
        assert conftest.api_versions_answer(b.bootstrap), "broker stopped answering after the connections closed"
        witness_round(b.bootstrap, producer, consumer, topic_name, 3)
        producer.flush(10)
        consumer.close()
        print(f"\n{MASS_CONNECTIONS} connections opened in {opened_s:.2f} s, {len(sample)} answered ApiVersions")
    finally:
        for s in socks:
            s.close()
        stop_configured(b)
        resource.setrlimit(resource.RLIMIT_NOFILE, old)


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    "shards",
    [1, 2],
    ids=["shards1", "shards2"],
)
def test_max_connections_limit(tmp_path, shards):
    b = start_configured(tmp_path, shards, ["--set", f"max_connections={LIMIT_CONNECTIONS}"])
    held: list[socket.socket] = []
    try:
        # The start-up probe's connection may still be counted for a moment after it closed.
        time.sleep(0.5)
        for i in range(LIMIT_CONNECTIONS):
            s = kw.connect(b.bootstrap)
            s.sendall(kw.api_versions_v0(i))
            got = kw.read_response(s)
            assert got is not None, f"connection {i + 1} of {LIMIT_CONNECTIONS} was closed"
            assert got[0] == i
            held.append(s)
        for extra in range(3):
            s = kw.connect(b.bootstrap)
            try:
                try:
                    s.sendall(kw.api_versions_v0(100 + extra))
                except (BrokenPipeError, ConnectionResetError):
                    pass
                got = kw.wait_closed(s, 10)
                assert got == b"", f"connection {LIMIT_CONNECTIONS + 1 + extra} got an answer before the close"
            finally:
                s.close()
        for i, s in enumerate(held):  # the first 50 still work
            s.sendall(kw.api_versions_v0(1000 + i))
            got = kw.read_response(s)
            assert got is not None and got[0] == 1000 + i, f"held connection {i + 1} stopped working"
        held.pop().close()
        deadline = time.monotonic() + 10
        while not conftest.api_versions_answer(b.bootstrap):  # a slot is free again
            assert time.monotonic() < deadline, "closing a connection did not free a slot under max_connections"
            time.sleep(0.2)
        assert b.running()
    finally:
        for s in held:
            s.close()
        stop_configured(b)


# Per-address limits of the per-IP test: the default, and the override of the second loopback address.
PER_IP_LIMIT = 3
PER_IP_OVERRIDE = 5


def connect_from(source_ip: str, bootstrap: str) -> socket.socket:
    """A connection to the broker whose peer address (as the broker sees it) is `source_ip`: every 127.x
    address is local, so binding one as the source gives the broker another client address."""
    host, port = bootstrap.rsplit(":", 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((source_ip, 0))
    s.settimeout(10)
    s.connect((host, int(port)))
    return s


def answers(s: socket.socket, correlation_id: int) -> bool:
    """Whether ApiVersions is answered on `s` (False if the broker closed it)."""
    try:
        s.sendall(kw.api_versions_v0(correlation_id))
    except (BrokenPipeError, ConnectionResetError):
        return False
    try:
        got = kw.read_response(s)
    except (ConnectionResetError, TimeoutError):
        return False
    return got is not None and got[0] == correlation_id


@pytest.mark.timeout(120)
def test_max_connections_per_ip_and_overrides(tmp_path):
    b = start_configured(tmp_path, 2, [
        "--set", f"max_connections_per_ip={PER_IP_LIMIT}",
        "--set", f"max_connections_per_ip_overrides=127.0.0.2:{PER_IP_OVERRIDE}",
    ])
    held: dict[str, list[socket.socket]] = {"127.0.0.1": [], "127.0.0.2": []}
    try:
        time.sleep(0.5)  # the start-up probe's connection may still be counted for a moment
        log_start = b.log_size()
        for ip, limit in [("127.0.0.1", PER_IP_LIMIT), ("127.0.0.2", PER_IP_OVERRIDE)]:
            for i in range(limit):
                s = connect_from(ip, b.bootstrap)
                assert answers(s, i), f"connection {i + 1} of {limit} from {ip} was refused"
                held[ip].append(s)
            extra = connect_from(ip, b.bootstrap)
            try:
                assert not answers(extra, 99), f"connection {limit + 1} from {ip} was answered"
            finally:
                extra.close()
        # A third address is limited on its own; the others' connections are unharmed.
        other = connect_from("127.0.0.3", b.bootstrap)
        assert answers(other, 7), "a connection from another address was refused"
        other.close()
        for ip, socks in held.items():
            for i, s in enumerate(socks):
                assert answers(s, 1000 + i), f"held connection {i + 1} from {ip} stopped working"
        refusals = b._log_since(log_start).count("max_connections_per_ip")
        assert refusals >= 2, f"{refusals} log lines for the 2 refused connections"
        # Closing one frees its address's slot.
        held["127.0.0.1"].pop().close()
        deadline = time.monotonic() + 10
        while True:
            s = connect_from("127.0.0.1", b.bootstrap)
            if answers(s, 2000):
                held["127.0.0.1"].append(s)
                break
            s.close()
            assert time.monotonic() < deadline, "closing a connection did not free its address's slot"
            time.sleep(0.2)
        assert b.running()
    finally:
        for socks in held.values():
            for s in socks:
                s.close()
        stop_configured(b)


def test_max_connections_auto_follows_the_fd_limit(tmp_path):
    """The default max_connections is derived from the hard RLIMIT_NOFILE (less a quarter, at least 1024, at
    most half, for files), and the broker raises its soft limit to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    b = start_configured(tmp_path, 1, [])
    try:
        if hard == resource.RLIM_INFINITY:
            expected = 1_000_000
        else:
            expected = min(hard - min(max(hard // 4, 1024), hard // 2), 1_000_000)
        log = b.log_tail(400)
        # Printed under its config-file key, Kafka's name.
        assert f"max.connections = {expected} (default; auto: RLIMIT_NOFILE" in log, log
        limits = Path(f"/proc/{b.proc.pid}/limits").read_text()
        line = next(l for l in limits.splitlines() if l.startswith("Max open files"))
        broker_soft, broker_hard = line.split()[3:5]
        assert broker_soft == broker_hard, f"soft limit not raised (ours: {soft}/{hard}): {line}"
    finally:
        stop_configured(b)


# ------------------------------------------------------------------------ 3. compression that does not work
def gzip_bomb() -> tuple[bytes, int]:
    """A gzip-compressed `records` section holding one record whose value is BOMB_BYTES zeros."""
    record = kw.encode_record(0, None, bytes(BOMB_BYTES))
    return gzip.compress(record, compresslevel=9), len(record)


@pytest.mark.timeout(240)
def test_undecompressable_batches_and_gzip_bomb(tmp_path):
    b = start_configured(tmp_path, 1, [])
    try:
        garbage = os.urandom(4096)
        bomb, bomb_plain = gzip_bomb()
        cases = {
            "gzip_garbage": ch.raw_batch(garbage, 10, ch.CODEC_GZIP),
            "snappy_garbage": ch.raw_batch(garbage, 10, ch.CODEC_SNAPPY),
            "lz4_garbage": ch.raw_batch(garbage, 10, ch.CODEC_LZ4),
            "zstd_garbage": ch.raw_batch(garbage, 10, ch.CODEC_ZSTD),
            "codec_7": ch.raw_batch(garbage, 10, 7),
            "gzip_bomb": ch.raw_batch(bomb, 1, ch.CODEC_GZIP),
        }
        witness_topic = "witness-" + uuid.uuid4().hex[:8]
        clients.create_topic(b.bootstrap, witness_topic, 1)
        for name in cases:
            clients.create_topic(b.bootstrap, name, 1)
        producer = clients.producer(b.bootstrap, **{"message.timeout.ms": 20_000})
        consumer = clients.consumer(b.bootstrap, **{"group.id": "chaos-bomb-witness"})
        witness_round(b.bootstrap, producer, consumer, witness_topic, 0)
        rss_before = ch.vm_rss_bytes(b.proc.pid)
        answers = {}
        with kw.connect(b.bootstrap, timeout=30) as s:
            for n, (name, batch) in enumerate(cases.items()):
                # The bomb 10 times: a broker that inflates it would grow by GiBs.
                for k in range(10 if name == "gzip_bomb" else 1):
                    r = ch.produce_raw(s, 100 * n + k, name, batch)
                    answers.setdefault(name, []).append((r.error_code, r.base_offset))
        rss_after = ch.vm_rss_bytes(b.proc.pid)
        assert b.running(), f"broker exited: {b.log_tail(40)}"
        # Issue 23: none of these is records; each is refused and nothing of it stored.
        for name, codes in answers.items():
            refused = {code for code, _ in codes}
            assert refused <= {kw.ERROR_CORRUPT_MESSAGE, kw.ERROR_INVALID_RECORD}, f"{name}: answered {refused}"
        assert rss_after - rss_before < RSS_GROWTH_LIMIT_BYTES, (
            f"broker RSS grew {(rss_after - rss_before) >> 20} MiB handling the batches"
        )
        witness_round(b.bootstrap, producer, consumer, witness_topic, 1)

        # Whatever was stored is served back byte for byte (raw fetch), and a real consumer gets the record
        # or an error, never a hang or a broker crash.
        consumer_outcome = {}
        with kw.connect(b.bootstrap, timeout=30) as s:
            for n, (name, batch) in enumerate(cases.items()):
                stored = [base for code, base in answers[name] if code == kw.ERROR_NONE]
                f = ch.fetch_raw(s, 5000 + n, name, 0, 0)
                assert f.error_code == kw.ERROR_NONE, f"{name}: fetch error {f.error_code}"
                assert f.high_watermark == sum(1 if name == "gzip_bomb" else 10 for _ in stored), (
                    f"{name}: high watermark {f.high_watermark} after {len(stored)} accepted batches"
                )
                if stored:
                    got = kw.parse_batches(f.records or b"")
                    assert got and got[0].crc_ok, f"{name}: stored batch served back with a bad CRC"
                    assert (f.records or b"")[12:len(batch)] == batch[12:], f"{name}: bytes changed"
        for name in cases:
            if not any(code == kw.ERROR_NONE for code, _ in answers[name]):
                consumer_outcome[name] = "not read (nothing stored)"
                continue
            c = clients.consumer(b.bootstrap, **{"group.id": f"chaos-{name}", "fetch.message.max.bytes": 1 << 20})
            try:
                c.assign([TopicPartition(name, 0, 0)])
                outcome = "no record and no error within 10 s"
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline:
                    msg = c.poll(0.5)
                    if msg is None:
                        continue
                    outcome = f"error {msg.error()}" if msg.error() else f"record of {len(msg.value() or b'')} bytes"
                    break
                consumer_outcome[name] = outcome
            finally:
                c.close()
            assert b.running(), f"broker exited after a consumer read {name}"
        witness_round(b.bootstrap, producer, consumer, witness_topic, 2)
        producer.flush(10)
        consumer.close()
        print(
            f"\nbomb: {len(bomb)} bytes of gzip -> {bomb_plain} bytes; broker RSS {rss_before >> 20} -> "
            f"{rss_after >> 20} MiB"
        )
        for name in cases:
            codes = sorted({c for c, _ in answers[name]})
            print(f"  {name}: produce answers {codes}, consumer: {consumer_outcome[name]}")
    finally:
        stop_configured(b)


# ----------------------------------------------------------------------------------------------- 4. disk full
FS_SIZE = "300M"
FILLER_BYTES = 100 << 20
# One produce request: 16 records of 60 KiB (about 1 MiB).
DISK_BATCH_RECORDS = 16
DISK_RECORD_BYTES = 60 << 10
# Appends must be accepted again this soon after space returns (the log retries every 500 ms).
DISK_RECOVERY_DEADLINE_S = 10.0


def disk_value(n: int) -> bytes:
    head = b"rec-%08d-" % n
    return head + bytes([n % 251]) * (DISK_RECORD_BYTES - len(head))


def mount_small_fs(image: Path, mount: Path) -> None:
    """A FS_SIZE ext4 filesystem from a loop-mounted image file, or a skip saying why it cannot be made."""
    if os.geteuid() != 0:
        pytest.skip("disk-full test needs root (mount -o loop)")
    mount.mkdir(exist_ok=True)
    subprocess.run(["truncate", "-s", FS_SIZE, str(image)], check=True)
    r = subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], capture_output=True, text=True)
    if r.returncode != 0:
        image.unlink(missing_ok=True)
        pytest.skip(f"mkfs.ext4 failed: {r.stderr.strip()}")
    r = subprocess.run(["mount", "-o", "loop", str(image), str(mount)], capture_output=True, text=True)
    if r.returncode != 0:
        image.unlink(missing_ok=True)
        pytest.skip(f"mount -o loop not permitted here: {r.stderr.strip()}")


def unmount_small_fs(image: Path, mount: Path) -> None:
    r = subprocess.run(["umount", str(mount)], capture_output=True, text=True)
    assert r.returncode == 0, f"umount {mount} failed: {r.stderr.strip()}"
    image.unlink(missing_ok=True)


def write_filler(mount: Path) -> Path:
    """FILLER_BYTES of zeros on the small filesystem, deleted later to give space back."""
    filler = mount / "filler"
    with open(filler, "wb") as f:
        f.write(bytes(FILLER_BYTES))
        os.fsync(f.fileno())
    return filler


def fill_disk(b, topic: str) -> tuple[dict[int, bytes], list[int]]:
    """Raw ~1 MiB produces to partition 0 until three are refused. Asserts the broker stayed up and the first
    refusal is KAFKA_STORAGE_ERROR. Returns ({offset: value} of the acknowledged records, the error codes)."""
    acked: dict[int, bytes] = {}
    errors_seen: list[int] = []
    n = 0
    with kw.connect(b.bootstrap, timeout=30) as s:
        for corr in range(1000):  # ~1 GiB of attempts: far more than the filesystem holds
            values = [disk_value(n + i) for i in range(DISK_BATCH_RECORDS)]
            r = ch.produce_raw(s, corr, topic, ch.plain_batch(values))
            if r.error_code == kw.ERROR_NONE:
                for i, v in enumerate(values):
                    acked[r.base_offset + i] = v
                n += DISK_BATCH_RECORDS
                continue
            errors_seen.append(r.error_code)
            if len(errors_seen) >= 3:
                break
    assert b.running(), f"broker exited when the disk filled:\n{b.log_tail(40)}"
    assert errors_seen, "the disk never filled"
    assert errors_seen[0] == ch.ERROR_KAFKA_STORAGE_ERROR, f"disk full answered {errors_seen[0]}, expected 56"
    return acked, errors_seen


@pytest.mark.timeout(240)
def test_disk_full_fails_appends_and_recovers(tmp_path):
    image, mount = tmp_path / "small-fs.img", tmp_path / "small-fs"
    mount_small_fs(image, mount)
    b = None
    try:
        filler = write_filler(mount)
        b = start_configured(tmp_path, 1, ["--metrics-listen", "none"], data_dir=mount / "data")
        topic = "diskfull"
        clients.create_topic(b.bootstrap, topic, 1)
        acked, errors_seen = fill_disk(b, topic)
        full_df = shutil.disk_usage(mount)

        # Still full: the log is suspended (rolled back to its last acknowledged offset), appends are
        # answered 56 and reads keep working.
        with kw.connect(b.bootstrap, timeout=30) as s:
            r = ch.produce_raw(s, 4000, topic, ch.plain_batch([disk_value(10**6)]))
            assert r.error_code == ch.ERROR_KAFKA_STORAGE_ERROR, f"append on a full disk answered {r.error_code}"
        data, high_full = ch.consume_checked(b.bootstrap, topic, 1)
        assert [o for o, _ in data[0]] == list(range(high_full[0])), "offsets have a gap while the disk is full"

        filler.unlink()
        os.sync()
        freed_at = time.monotonic()
        attempts, recovered_after = 0, None
        # The same broker process (no restart): appends resume once a retry finds space (the log
        # tries again at most every 500 ms; producers retry every ~100 ms).
        with kw.connect(b.bootstrap, timeout=30) as s:
            while time.monotonic() - freed_at < DISK_RECOVERY_DEADLINE_S:
                attempts += 1
                value = disk_value(10**6 + attempts)
                r = ch.produce_raw(s, 5000 + attempts, topic, ch.plain_batch([value]))
                if r.error_code == kw.ERROR_NONE:
                    assert r.base_offset == high_full[0], (
                        f"first append after space returned got offset {r.base_offset}, "
                        f"expected the acknowledged end {high_full[0]}")
                    acked[r.base_offset] = value
                    recovered_after = time.monotonic() - freed_at
                    break
                assert r.error_code == ch.ERROR_KAFKA_STORAGE_ERROR, f"append answered {r.error_code}"
                time.sleep(0.1)
            assert recovered_after is not None, (
                f"appends still refused {DISK_RECOVERY_DEADLINE_S} s after space returned:\n{b.log_tail(20)}")
            for corr in range(20):  # several more MiB: the log keeps going
                values = [disk_value(3 * 10**6 + corr * DISK_BATCH_RECORDS + i) for i in range(DISK_BATCH_RECORDS)]
                r = ch.produce_raw(s, 7000 + corr, topic, ch.plain_batch(values))
                assert r.error_code == kw.ERROR_NONE, f"append {corr} after recovery answered {r.error_code}"
                for i, v in enumerate(values):
                    acked[r.base_offset + i] = v
        assert b.running(), "broker exited"
        data, high = ch.consume_checked(b.bootstrap, topic, 1)
        offsets = [o for o, _ in data[0]]
        assert offsets == list(range(high[0])), "offsets are not contiguous after the recovery"
        log = dict(data[0])
        missing = [o for o, v in acked.items() if log.get(o) != v]
        assert not missing, f"{len(missing)} of {len(acked)} acknowledged records lost, first offsets {missing[:5]}"
        assert high[0] == max(acked) + 1, f"unacknowledged records in the log: high {high[0]}, last ack {max(acked)}"
        print(
            f"\ndisk full: {len(acked)} records acked ({len(acked) * DISK_RECORD_BYTES >> 20} MiB), then error codes "
            f"{errors_seen} with {full_df.free >> 20} MiB free; appends accepted again {recovered_after:.2f} s after "
            f"the filler was deleted ({attempts} tries, no restart); all acknowledged records read back in order"
        )
    finally:
        try:
            if b is not None:
                if b.running():
                    b.stop()  # exit status checked by nothing here: the point is the disk's state above
                if b in conftest._ACTIVE:
                    conftest._ACTIVE.remove(b)
        finally:
            unmount_small_fs(image, mount)


@pytest.mark.timeout(240)
def test_restart_while_disk_full_still_serves_reads(tmp_path):
    image, mount = tmp_path / "small-fs.img", tmp_path / "small-fs"
    mount_small_fs(image, mount)
    b = None
    try:
        write_filler(mount)
        b = start_configured(tmp_path, 1, ["--metrics-listen", "none"], data_dir=mount / "data")
        clients.create_topic(b.bootstrap, "diskfull", 1)
        acked, _ = fill_disk(b, "diskfull")
        b.restart()  # clean stop (must exit 0), then start with the disk still full
        with kw.connect(b.bootstrap, timeout=30) as s:
            r = ch.produce_raw(s, 1, "diskfull", ch.plain_batch([b"while-full"]))
            assert r.error_code in (kw.ERROR_NONE, ch.ERROR_KAFKA_STORAGE_ERROR), f"append answered {r.error_code}"
        data, high = ch.consume_checked(b.bootstrap, "diskfull", 1)
        log = dict(data[0])
        missing = [o for o, v in acked.items() if log.get(o) != v]
        assert not missing, f"{len(missing)} of {len(acked)} acknowledged records lost, first offsets {missing[:5]}"
    finally:
        try:
            if b is not None:
                if b.running():
                    b.stop()
                if b in conftest._ACTIVE:
                    conftest._ACTIVE.remove(b)
        finally:
            unmount_small_fs(image, mount)
