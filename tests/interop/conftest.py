"""Fixtures that run the real `ringbroker` binary for the interop tests.

Modes:
- default: `$RINGBROKER_BIN serve --listen 127.0.0.1:<free port> --data-dir <tmp> --shards N` per test (or per
  module for the malformed-input suite). The fixture waits until the port answers ApiVersions and the "ready"
  log line appears, and on teardown sends SIGTERM and checks the broker exits with status 0. The broker's
  stdout+stderr go to a file whose tail is attached to every failing test's report.
- `INTEROP_BROKER=kafka`: the same, but with Apache Kafka 4.4 from bench/reference/kafka.sh (restartable, so
  every test runs; shard-count parameters other than 1 are skipped as duplicates).
- `RINGBROKER_BOOTSTRAP=host:port`: use an already running broker (e.g. the Apache Kafka reference from
  bench/reference/kafka.sh) to check that the tests themselves are right. Tests that restart or kill the broker
  skip, and shard-count parameters other than 1 are skipped as duplicates.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import time
import uuid
from pathlib import Path

import pytest

import kafka_wire as kw

EXTERNAL_BOOTSTRAP = os.environ.get("RINGBROKER_BOOTSTRAP")
BROKER_BIN = os.environ.get("RINGBROKER_BIN")
# INTEROP_BROKER=kafka: start Apache Kafka 4.4 (bench/reference/kafka.sh) per test instead of ringbroker, to
# check the tests themselves, including the restart and kill -9 ones.
REFERENCE_KAFKA = os.environ.get("INTEROP_BROKER") == "kafka"
# INTEROP_KEEP_DATA=1: keep the brokers' data dirs after each test (deleted by default: they can be GiBs).
KEEP_DATA = os.environ.get("INTEROP_KEEP_DATA") == "1"

# How long a broker may take from exec to answering ApiVersions and logging "ready".
START_TIMEOUT_S = 60.0
# How long a broker may take to exit after SIGTERM.
STOP_TIMEOUT_S = 30.0
# Lines of the broker log attached to a failing test's report.
LOG_TAIL_LINES = 200
READY_LINE = re.compile(r"\bready\b", re.IGNORECASE)

# Brokers started by the test that is running now (their logs go into its report on failure).
_ACTIVE: list["BrokerProcess"] = []


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def api_versions_answer(bootstrap: str, timeout: float = 2.0) -> bool:
    """True if an ApiVersions v0 request gets a well-formed answer with error_code 0."""
    try:
        with kw.connect(bootstrap, timeout=timeout) as sock:
            sock.sendall(kw.api_versions_v0(1))
            got = kw.read_response(sock)
            if got is None:
                return False
            correlation_id, reader = got
            return correlation_id == 1 and reader.i16() == 0
    except (OSError, AssertionError, struct.error):
        return False


class BrokerProcess:
    """One `ringbroker serve` process with a fixed port and data dir, restartable."""

    def __init__(
        self,
        binary: str,
        data_dir: Path,
        shards: int,
        log_dir: Path,
        port: int | None = None,
        extra_args: list[str] | None = None,
    ):
        self.binary = binary
        self.data_dir = data_dir
        self.shards = shards
        # Extra `serve` flags, e.g. ["--set", "max_connections=50"].
        self.extra_args = list(extra_args or [])
        self.port = port or free_port()
        self.log_path = log_dir / f"broker-{self.port}.log"
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self._log_file = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def partition_data_dir(self) -> Path:
        return self.data_dir

    managed = True

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None, "broker already running"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._log_file = open(self.log_path, "ab")
        self.starts += 1
        self._log_file.write(
            f"\n===== start #{self.starts} (shards={self.shards}) {self.extra_args} =====\n".encode()
        )
        self._log_file.flush()
        log_start = self.log_path.stat().st_size
        cmd = [
            self.binary,
            "serve",
            "--listen",
            self.bootstrap,
            "--data-dir",
            str(self.data_dir),
            "--shards",
            str(self.shards),
            *self.extra_args,
        ]
        self.proc = subprocess.Popen(cmd, stdout=self._log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT_S
        answered = False
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"broker exited with {self.proc.returncode} during start-up:\n{self.log_tail()}"
                )
            if not answered:
                answered = api_versions_answer(self.bootstrap)
            if answered and READY_LINE.search(self._log_since(log_start)):
                return
            time.sleep(0.05)
        raise AssertionError(
            f"broker did not {'log a ready line' if answered else 'answer ApiVersions'} within "
            f"{START_TIMEOUT_S} s:\n{self.log_tail()}"
        )

    def stop(self) -> int:
        """SIGTERM and wait; returns the exit status (the caller decides whether it must be 0)."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"broker did not exit within {STOP_TIMEOUT_S} s of SIGTERM")
        self._close_log()
        return self.proc.returncode

    def stop_clean(self) -> None:
        rc = self.stop()
        assert rc == 0, f"broker exited with status {rc} after SIGTERM (expected a clean 0):\n{self.log_tail()}"

    def kill9(self) -> None:
        assert self.proc is not None and self.proc.poll() is None, "broker not running"
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self._close_log()

    def restart(self) -> None:
        """Clean stop (must exit 0) and start again on the same port and data dir."""
        self.stop_clean()
        self.start()

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def _log_since(self, offset: int) -> str:
        with open(self.log_path, "rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")

    def log_size(self) -> int:
        return self.log_path.stat().st_size

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        try:
            text = self.log_path.read_bytes().decode(errors="replace")
        except OSError:
            return "(no broker log)"
        return "\n".join(text.splitlines()[-lines:])


class KafkaReferenceProcess:
    """Apache Kafka 4.4 driven through bench/reference/kafka.sh, with BrokerProcess's interface, so the
    restart and kill -9 tests can be checked against the real thing (INTEROP_BROKER=kafka)."""

    managed = True
    SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "reference" / "kafka.sh"

    def __init__(self, data_dir: Path, shards: int):
        self.data_dir = data_dir
        self.shards = shards
        self.port = free_port()
        self.controller_port = free_port()
        self._running = False

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def partition_data_dir(self) -> Path:
        return self.data_dir / "logs"

    def _script(self, *args: str) -> None:
        proc = subprocess.run(
            ["bash", str(self.SCRIPT), *args, "--data-dir", str(self.data_dir)],
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert proc.returncode == 0, f"kafka.sh {args[0]} failed: {proc.stdout}{proc.stderr}"

    def start(self) -> None:
        self._script("start", "--port", str(self.port), "--controller-port", str(self.controller_port))
        self._running = True

    def stop(self) -> int:
        self._script("stop")
        self._running = False
        return 0

    def stop_clean(self) -> None:
        self.stop()

    def kill9(self) -> None:
        pid = int((self.data_dir / "kafka.pid").read_text())
        os.kill(pid, signal.SIGKILL)
        while True:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        (self.data_dir / "kafka.pid").unlink()
        self._running = False

    def restart(self) -> None:
        self.stop()
        self.start()

    def running(self) -> bool:
        return self._running

    def log_size(self) -> int:
        try:
            return (self.data_dir / "server.log").stat().st_size
        except OSError:
            return 0

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        try:
            text = (self.data_dir / "server.log").read_text(errors="replace")
        except OSError:
            return "(no kafka log)"
        return "\n".join(text.splitlines()[-lines:])


class ExternalBroker:
    """A broker someone else runs (RINGBROKER_BOOTSTRAP): nothing to start, stop or kill."""

    managed = False
    shards = 1

    def __init__(self, bootstrap: str):
        self.bootstrap = bootstrap

    def restart(self) -> None:
        pytest.skip("needs a broker this test can restart (unset RINGBROKER_BOOTSTRAP)")

    kill9 = start = stop = stop_clean = restart

    def running(self) -> bool:
        return True

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        return "(external broker: no log)"

    def log_size(self) -> int:
        return 0


def _launch(base_dir: Path, shards: int, shard_variant: bool = True):
    """shard_variant: the test is one of several shard-count variants (only the 1-shard one runs against an
    external broker)."""
    if EXTERNAL_BOOTSTRAP:
        if shard_variant and shards != 1:
            pytest.skip("shard count does not apply to an external broker (covered by the shards=1 case)")
        assert api_versions_answer(EXTERNAL_BOOTSTRAP, timeout=5), f"no broker answers at {EXTERNAL_BOOTSTRAP}"
        return ExternalBroker(EXTERNAL_BOOTSTRAP)
    if REFERENCE_KAFKA:
        if shard_variant and shards != 1:
            pytest.skip("shard count does not apply to Apache Kafka (covered by the shards=1 case)")
        kafka = KafkaReferenceProcess(base_dir / "kafka", shards)
        _ACTIVE.append(kafka)
        kafka.start()
        return kafka
    if not BROKER_BIN:
        pytest.fail("set RINGBROKER_BIN to the ringbroker binary (or RINGBROKER_BOOTSTRAP to a running broker)")
    assert os.access(BROKER_BIN, os.X_OK), f"RINGBROKER_BIN={BROKER_BIN} is not executable"
    broker = BrokerProcess(BROKER_BIN, base_dir / "data", shards, base_dir)
    _ACTIVE.append(broker)
    broker.start()
    return broker


def _shutdown(broker) -> None:
    if not broker.managed:
        return
    try:
        if broker.running():
            broker.stop_clean()
    finally:
        if broker in _ACTIVE:
            _ACTIVE.remove(broker)
        # Partition data can be large (ringbroker preallocates whole segments): free it now rather than when
        # pytest prunes old temp dirs. The broker log stays beside it for a failed test's report.
        if not KEEP_DATA:
            shutil.rmtree(broker.partition_data_dir, ignore_errors=True)


@pytest.fixture
def broker(request, tmp_path):
    """A fresh broker for one test. Parametrize with `@pytest.mark.parametrize("broker", [1, 2], indirect=True)`
    to choose the shard count (default 1)."""
    shards = getattr(request, "param", 1)
    b = _launch(tmp_path, shards)
    yield b
    _shutdown(b)


@pytest.fixture(scope="module")
def module_broker(tmp_path_factory):
    """One broker shared by a module's tests (the malformed-input suite), with 2 shards so that a bad request
    on one shard is seen not to disturb clients served by either."""
    b = _launch(tmp_path_factory.mktemp("module-broker"), 2, shard_variant=False)
    yield b
    _shutdown(b)


@pytest.fixture
def topic_name(request) -> str:
    """A topic name unique to this test run (the external broker keeps topics between runs)."""
    base = re.sub(r"[^A-Za-z0-9._-]", "-", request.node.name)[:60]
    return f"{base}-{uuid.uuid4().hex[:8]}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for b in list(_ACTIVE):
            report.sections.append((f"broker log {b.bootstrap} (tail)", b.log_tail()))
