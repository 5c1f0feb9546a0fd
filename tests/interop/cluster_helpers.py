"""A cluster of `ringbroker serve` processes on test hosts (netns.py): combined broker + controller nodes with
one shard each, started together, restartable, killable, and their logs for failure reports; and reading the
replicas' segment files, to compare them."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

from netns import TestHosts

# Base ports on every host (loopback hosts add an offset each).
KAFKA_PORT = 9092
CONTROLLER_PORT = 9093
# A node must log its ready line within this long of starting (with the whole quorum starting at once).
NODE_START_TIMEOUT_S = 60
# SIGTERM to exit: a controlled shutdown waits for the controller up to 10 s, then the logs close.
NODE_STOP_TIMEOUT_S = 40
READY_LINE = re.compile(r"ringbroker ready")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


class ClusterNode:
    """One node of the cluster (broker and controller)."""

    def __init__(self, cluster: "Cluster", node_id: int, host: int, data_dir: Path, extra_args: list[str]):
        self.cluster = cluster
        self.node_id = node_id
        self.host = host
        self.data_dir = data_dir
        self.extra_args = list(extra_args)
        # The client listener flags; a test may replace them (`--listener SASL_SSL://...` alone).
        self.listen_args: list[str] | None = None
        self.log_path = cluster.log_dir / f"node-{node_id}.log"
        self.proc: subprocess.Popen | None = None
        self._log = None
        self._log_start = 0

    @property
    def hosts(self) -> TestHosts:
        return self.cluster.hosts

    @property
    def address(self) -> str:
        return self.hosts.address(self.host)

    @property
    def kafka_port(self) -> int:
        return self.hosts.port(self.host, KAFKA_PORT)

    @property
    def controller_port(self) -> int:
        return self.hosts.port(self.host, CONTROLLER_PORT)

    @property
    def bootstrap(self) -> str:
        return f"{self.address}:{self.kafka_port}"

    def command(self) -> list[str]:
        return self.hosts.host_cmd(self.host, [
            self.cluster.binary, "serve",
            "--node-id", str(self.node_id),
            "--process-roles", "broker,controller",
            "--controller-quorum-voters", self.cluster.voters,
            "--controller-listen", f"{self.address}:{self.controller_port}",
            *(self.listen_args if self.listen_args is not None else ["--listen", self.bootstrap]),
            "--data-dir", str(self.data_dir),
            "--shards", "1",
            "--metrics-listen", "none",
            *self.extra_args,
        ])

    def launch(self) -> None:
        assert not self.running(), f"node {self.node_id} is already running"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")
        self._log.write(f"\n===== start {' '.join(self.command())} =====\n".encode())
        self._log.flush()
        self._log_start = self.log_path.stat().st_size
        self.proc = subprocess.Popen(self.command(), stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)

    def wait_ready(self, timeout: float = NODE_START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"node {self.node_id} exited with {self.proc.returncode}:\n{self.log_tail()}")
            if READY_LINE.search(self.log_since_start()):
                return
            time.sleep(0.05)
        raise AssertionError(f"node {self.node_id} not ready within {timeout} s:\n{self.log_tail()}")

    def start(self) -> None:
        self.launch()
        self.wait_ready()

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=NODE_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"node {self.node_id} did not stop within {NODE_STOP_TIMEOUT_S} s")
        self._close()
        return self.proc.returncode

    def kill9(self) -> None:
        assert self.running(), f"node {self.node_id} is not running"
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self._close()

    def pause(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _close(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_since_start(self) -> str:
        with open(self.log_path, "rb") as f:
            f.seek(self._log_start)
            return ANSI.sub("", f.read().decode(errors="replace"))

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = ANSI.sub("", self.log_path.read_bytes().decode(errors="replace"))
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


class Cluster:
    """`size` combined nodes (ids 1..size) on their own test hosts."""

    def __init__(self, binary: str, tmp_path: Path, size: int = 3, extra_args: list[str] | None = None,
                 spare_hosts: int = 0):
        self.binary = binary
        self.log_dir = tmp_path / "logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        # Spare hosts are for nodes a test starts itself (a duplicate id, a broker of another cluster).
        self.hosts = TestHosts(size + spare_hosts)
        self.nodes = [
            ClusterNode(self, node_id=i, host=i, data_dir=tmp_path / f"data-{i}", extra_args=extra_args or [])
            for i in range(1, size + 1)
        ]
        self.voters = ",".join(
            f"{n.node_id}@{n.address}:{n.controller_port}" for n in self.nodes
        )

    @property
    def bootstrap(self) -> str:
        return ",".join(n.bootstrap for n in self.nodes)

    def node(self, node_id: int) -> ClusterNode:
        return next(n for n in self.nodes if n.node_id == node_id)

    def start(self) -> None:
        # Together: each node waits for a quorum of the others before it is ready.
        for node in self.nodes:
            node.launch()
        for node in self.nodes:
            node.wait_ready()

    def active_controller(self, timeout: float = 30.0) -> ClusterNode:
        """The node that logged taking over most recently among the running ones."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            latest = None
            for node in self.nodes:
                if not node.running():
                    continue
                for line in node.log_since_start().splitlines():
                    if "this node is the active controller" in line:
                        stamp = line.split(" ", 1)[0]
                        if latest is None or stamp > latest[0]:
                            latest = (stamp, node)
            if latest is not None:
                return latest[1]
            time.sleep(0.1)
        raise AssertionError("no node logged that it is the active controller")

    def run_in_hub(self, cmd: list[str], what: str, timeout: float = 120) -> str:
        """`cmd` run where the clients are (a Kafka CLI tool); its stdout, or a failed test with its output."""
        done = subprocess.run(self.hosts.hub_cmd(cmd), capture_output=True, text=True, timeout=timeout)
        assert done.returncode == 0, f"{what} exited {done.returncode}\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def close(self) -> None:
        for node in self.nodes:
            if node.running():
                node.kill9()
        self.hosts.close()

    def logs(self) -> str:
        return "\n".join(f"----- node {n.node_id} -----\n{n.log_tail()}" for n in self.nodes)


@contextmanager
def reporting(cluster: Cluster):
    """Kills the cluster's nodes when the block ends, after printing their log tails if it failed."""
    try:
        yield cluster
    except Exception:
        print(cluster.logs())
        raise
    finally:
        cluster.close()


def segment_batches(data_dir: Path, topic: str, partition: int) -> list[tuple[int, bytes]]:
    """(base offset, bytes) of every record batch of the partition's segment files, in offset order (each batch
    taken by its own length, so the zero-filled preallocated tail is left out and replicas that rolled their
    segments at different offsets compare equal)."""
    part = data_dir / f"{topic}-{partition}"
    out = []
    for segment in sorted(part.glob("*.log")):
        data = segment.read_bytes()
        at = 0
        while at + 12 <= len(data):
            length = int.from_bytes(data[at + 8:at + 12], "big", signed=True)
            if length <= 0 or at + 12 + length > len(data):
                break
            out.append((int.from_bytes(data[at:at + 8], "big", signed=True), data[at:at + 12 + length]))
            at += 12 + length
    return out


def segment_bytes(data_dir: Path, topic: str, partition: int) -> bytes:
    """The partition's records as stored: its record batches (`segment_batches`) back to back."""
    return b"".join(raw for _, raw in segment_batches(data_dir, topic, partition))


def first_difference(copies: list[bytes]) -> str:
    """Where the replicas' bytes first differ, and what each holds there."""
    at = next((i for i in range(min(len(x) for x in copies)) if len({x[i] for x in copies}) > 1), None)
    if at is None:
        return "one is a prefix of the others"
    return f"first at byte {at}: " + ", ".join(x[max(0, at - 8):at + 24].hex() for x in copies)
