"""Test hosts made of network namespaces, for cluster tests (issue 17).

`TestHosts(n)` creates n host namespaces and a hub namespace: each host gets one veth pair whose other end sits
in a bridge inside the hub, and one address (10.90.0.<i>/24, i = 1..n); the hub has 10.90.0.254. Clients run in
the hub: subprocesses through `hub_cmd()` (`ip netns exec <hub> ...`), in-process clients (confluent-kafka)
inside `with hosts.in_hub():`, which moves the calling thread (and every thread it starts, such as librdkafka's)
into the hub namespace and back. `cut(i)` takes host i's veth down on the hub side (this kernel has no
`tc netem`), `heal(i)` brings it back. Everything is removed by `close()`, also after a failed test.

Where namespaces cannot be made (no root, no `ip`), `TestHosts(n, allow_fallback=True)` gives n "hosts" on
127.0.0.1 with a port offset each instead: the same interface, except that `cut()` is unavailable
(`hosts.can_cut` is False) and tests that need it skip. `hosts.mode` says which one ran ("netns" or "loopback").
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import subprocess
import uuid

# The hosts' subnet inside each hub namespace (private to it: hubs never see each other).
SUBNET = "10.90.0"
HUB_ADDRESS = f"{SUBNET}.254"
# setns(2) flag for a network namespace.
CLONE_NEWNET = 0x40000000


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=30)


def namespaces_available() -> bool:
    """Whether this process can create network namespaces (root and iproute2)."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        return False
    probe = f"rbprobe-{uuid.uuid4().hex[:8]}"
    try:
        _ip("netns", "add", probe)
    except (subprocess.CalledProcessError, OSError):
        return False
    with contextlib.suppress(subprocess.CalledProcessError, OSError):
        _ip("netns", "del", probe)
    return True


class TestHosts:
    """n test hosts (see the module doc)."""

    __test__ = False  # not a pytest test class

    def __init__(self, count: int, allow_fallback: bool = True):
        assert 1 <= count <= 200
        self.count = count
        self.tag = uuid.uuid4().hex[:6]
        self.hub = f"rb{self.tag}-hub"
        self.namespaces: list[str] = []
        self.mode = "netns" if namespaces_available() else "loopback"
        if self.mode == "loopback" and not allow_fallback:
            raise RuntimeError("network namespaces are not available (needs root and iproute2)")
        self._cut: set[int] = set()
        if self.mode == "netns":
            try:
                self._build()
            except Exception:
                self.close()
                raise

    # ------------------------------------------------------------------ set-up and removal
    def _build(self) -> None:
        _ip("netns", "add", self.hub)
        self.namespaces.append(self.hub)
        _ip("-n", self.hub, "link", "set", "lo", "up")
        _ip("-n", self.hub, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.hub, "addr", "add", f"{HUB_ADDRESS}/24", "dev", "br0")
        _ip("-n", self.hub, "link", "set", "br0", "up")
        for i in range(1, self.count + 1):
            ns = self.host_namespace(i)
            _ip("netns", "add", ns)
            self.namespaces.append(ns)
            _ip("-n", ns, "link", "set", "lo", "up")
            # Both ends are created in the host namespace, then the peer moves into the hub.
            _ip("-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", self.hub_veth(i))
            _ip("-n", ns, "link", "set", self.hub_veth(i), "netns", self.hub)
            _ip("-n", ns, "addr", "add", f"{self.address(i)}/24", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")
            _ip("-n", self.hub, "link", "set", self.hub_veth(i), "master", "br0")
            _ip("-n", self.hub, "link", "set", self.hub_veth(i), "up")

    def close(self) -> None:
        """Removes every namespace (their veths and the bridge go with them)."""
        for ns in reversed(self.namespaces):
            with contextlib.suppress(subprocess.CalledProcessError, OSError):
                _ip("netns", "del", ns)
        self.namespaces.clear()

    def __enter__(self) -> "TestHosts":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ names and addresses
    def host_namespace(self, i: int) -> str:
        return f"rb{self.tag}-h{i}"

    def hub_veth(self, i: int) -> str:
        return f"v{self.tag}h{i}"

    def address(self, i: int) -> str:
        """Host i's address (1-based)."""
        assert 1 <= i <= self.count
        return f"{SUBNET}.{i}" if self.mode == "netns" else "127.0.0.1"

    def port(self, i: int, base: int) -> int:
        """The port host i uses for a service whose port is `base` (loopback hosts differ by an offset)."""
        return base if self.mode == "netns" else base + 10 * i

    # ------------------------------------------------------------------ running things
    def host_cmd(self, i: int, cmd: list[str]) -> list[str]:
        """`cmd` run on host i."""
        if self.mode == "loopback":
            return list(cmd)
        return ["ip", "netns", "exec", self.host_namespace(i), *cmd]

    def hub_cmd(self, cmd: list[str]) -> list[str]:
        """`cmd` run where the clients are."""
        if self.mode == "loopback":
            return list(cmd)
        return ["ip", "netns", "exec", self.hub, *cmd]

    @contextlib.contextmanager
    def in_hub(self):
        """Moves the calling thread into the hub namespace for the block (threads started meanwhile stay
        there: create and close in-process clients inside the block)."""
        if self.mode == "loopback":
            yield
            return
        libc = ctypes.CDLL(None, use_errno=True)
        original = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        target = os.open(f"/run/netns/{self.hub}", os.O_RDONLY)
        try:
            if libc.setns(target, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns into the hub namespace failed")
            try:
                yield
            finally:
                if libc.setns(original, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns back to the original namespace failed")
        finally:
            os.close(original)
            os.close(target)

    # ------------------------------------------------------------------ faults
    @property
    def can_cut(self) -> bool:
        return self.mode == "netns"

    def cut(self, i: int) -> None:
        """Cuts host i off the network (its veth down on the hub side)."""
        assert self.can_cut, "loopback hosts cannot be cut off"
        _ip("-n", self.hub, "link", "set", self.hub_veth(i), "down")
        self._cut.add(i)

    def heal(self, i: int) -> None:
        _ip("-n", self.hub, "link", "set", self.hub_veth(i), "up")
        self._cut.discard(i)
