#!/usr/bin/env python3
"""Replicated produce, side by side (issue 18, "Performance"): a 3-broker ringbroker cluster and a 3-broker
Apache Kafka 4.4 KRaft cluster, RF 3, acks=all, min.insync.replicas=2, 1 KiB records on one partition; and
ringbroker alone (one broker, RF 1, acks=all) for the "replicated at least 70% of single-broker" ratio.

    python3 bench/scripts/replicated.py   # as root [--out DIR] [--runs 2] [--duration-s 20] [--rate R] ...

Every system runs on its own network-namespace test hosts (tests/interop/netns.py: one veth per broker into a
bridge in a hub namespace), one system at a time; all brokers of a system are pinned to --broker-core with
`taskset`, the load tools run in the hub namespace pinned to --tool-core. Each system is started fresh for
each phase of each round and removed afterwards (processes, namespaces, data directories).

Phases (--phases):
  max   per system: a ProducerPerformance probe of --probe-records (sizes the next run, warms Kafka's JIT),
        ProducerPerformance unthrottled with records for about --duration-s, then `ringbroker-bench produce`
        for --duration-s after --warmup-s (acks all).
  rate  the two clusters only: the same probe (un-recorded warm-up), ProducerPerformance at --rate records/s (default: half the slower cluster's
        median max of the max phase) for about --duration-s after a --rate-warmup-s warm-up (steady-state
        p50/p99), then `ringbroker-bench produce --rate` at the same rate.
Rounds alternate the order of the systems. Every measurement uses a new topic (1 partition; RF 3 and
min.insync.replicas=2 on the clusters, RF 1 alone; retention.bytes and segment.bytes keep the disk in check),
deleted afterwards; `sync` runs before each measurement (Kafka's dirty page cache must not be written back
during the next system's run). The machine's load is sampled before every measurement.

Output in --out: results.json (every run, parsed, with the exact commands and the load), summary.md (the
tables and ratios), tool outputs under runs/, broker logs under logs/. Needs root (namespaces), java 17,
the jars of `bash bench/reference/kafka.sh fetch`, and the release binaries (cargo build --release -p
ringbroker-tools -p ringbroker-bench).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "interop"))

from cluster_helpers import Cluster  # noqa: E402
from netns import TestHosts  # noqa: E402

KAFKA_LIB = REPO / "bench" / "reference" / "target" / "lib"
KAFKA_LOG4J = REPO / "bench" / "reference" / "log4j2.xml"
# Ports on every test host (each host has its own address, so both systems use the same ones).
KAFKA_PORT = 9092
CONTROLLER_PORT = 9093
# Size of one record value, the workload.
RECORD_BYTES = 1024
# Per-partition topic configs on both systems: the runs write several GB per replica, the disk has ~20 GB
# and is shared, so old segments are deleted while producing (ringbroker checks retention every 2 s; Kafka
# is given the same interval below).
TOPIC_RETENTION_BYTES = 1 << 30
TOPIC_SEGMENT_BYTES = 64 << 20
# Kafka broker settings beyond kafka.sh's single-node ones: retention checked as often as ringbroker's
# (RETENTION_CHECK_INTERVAL, 2 s) and deleted segments removed after 1 s instead of 60 s, for the disk only.
KAFKA_RETENTION_CHECK_MS = 2000
KAFKA_SEGMENT_DELETE_DELAY_MS = 1000
# The JVM flags of kafka.sh (Kafka's own start scripts, heap fixed).
KAFKA_HEAP = "1g"
KAFKA_JVM_FLAGS = ["-server", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-XX:InitiatingHeapOccupancyPercent=35",
                   "-XX:+ExplicitGCInvokesConcurrent", "-Djava.awt.headless=true"]
# Heap of the ProducerPerformance JVM (as suite.sh).
TOOL_HEAP = "512M"
# How long a Kafka node may take to answer ApiVersions after launch (three JVMs on one loaded core).
KAFKA_START_TIMEOUT_S = 180
# How long a new topic may take until its leader is known and all replicas are in the ISR.
TOPIC_READY_TIMEOUT_S = 60
# Longest one tool run may take before it is killed (a stuck broker must not hang the script).
RUN_TIMEOUT_S = 240
# Largest ProducerPerformance run of the max phase, whatever the probe says (disk and time).
MAX_PERF_RECORDS = 6_000_000

PERF_LINE = re.compile(
    r"(?P<records>\d+)(?P<steady> steady state)? records sent, (?P<rps>[\d.]+) records/sec \((?P<mbps>[\d.]+) MB/sec\), "
    r"(?P<avg>[\d.]+) ms avg latency, (?P<max>[\d.]+) ms max latency, (?P<p50>\d+) ms 50th, "
    r"(?P<p95>\d+) ms 95th, (?P<p99>\d+) ms 99th, (?P<p999>\d+) ms 99.9th")


def log(msg: str) -> None:
    print(f"==> {time.strftime('%H:%M:%S', time.gmtime())} {msg}", flush=True)


def machine_load() -> dict:
    """The machine's load right now: load average, CPU pressure, and the busiest other processes."""
    load = Path("/proc/loadavg").read_text().split()[:3]
    try:
        pressure = Path("/proc/pressure/cpu").read_text().splitlines()[0]
    except OSError:
        pressure = "n/a"
    top = subprocess.run(["ps", "-eo", "pcpu,comm", "--sort=-pcpu", "--no-headers"], capture_output=True,
                         text=True).stdout.splitlines()[:5]
    return {"utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "loadavg": " ".join(load),
            "cpu_pressure": pressure, "top": [" ".join(t.split()) for t in top]}


def process_cpu_s(pids: list[int]) -> float:
    """User + system CPU seconds the processes have used so far (all their threads)."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / os.sysconf("SC_CLK_TCK")


def disk_written_bytes() -> dict[str, int]:
    """Bytes written so far per whole disk (not partitions), from /proc/diskstats (512-byte sectors)."""
    out = {}
    for line in Path("/proc/diskstats").read_text().splitlines():
        f = line.split()
        name = f[2]
        if Path(f"/sys/block/{name}").exists() and not name.startswith(("loop", "ram")):
            out[name] = int(f[9]) * 512
    return out


def core_times() -> dict[str, tuple[int, int]]:
    """Per core: (busy, total) jiffies so far, from /proc/stat."""
    out = {}
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("cpu") and line[3:4].isdigit():
            name, *values = line.split()
            v = [int(x) for x in values]
            idle = v[3] + v[4]  # idle + iowait
            out[name] = (sum(v[:8]) - idle, sum(v[:8]))
    return out


def core_busy(before: dict, after: dict) -> dict[str, float]:
    """Fraction of each core that was busy between two core_times() samples (any process)."""
    return {c: round((after[c][0] - before[c][0]) / max(1, after[c][1] - before[c][1]), 3)
            for c in after if c in before}


def api_versions_ok(address: str, port: int) -> bool:
    """ApiVersions v0 answered with error 0 (as kafka.sh checks), from the calling thread's namespace."""
    try:
        with socket.create_connection((address, port), timeout=2) as s:
            client_id = b"replicated.py"
            body = struct.pack(">hhih", 18, 0, 1, len(client_id)) + client_id
            s.sendall(struct.pack(">i", len(body)) + body)
            buf = b""
            while len(buf) < 10:
                chunk = s.recv(4096)
                if not chunk:
                    return False
                buf += chunk
            correlation_id, error_code = struct.unpack(">ih", buf[4:10])
            return correlation_id == 1 and error_code == 0
    except OSError:
        return False


# ---------------------------------------------------------------------------------------------- systems
class RingbrokerSystem:
    """`size` ringbroker nodes (combined broker + controller, one shard each) on test hosts, pinned."""

    def __init__(self, name: str, size: int, args, work: Path):
        self.name = name
        self.size = size
        self.replication_factor = size
        self.min_insync = 2 if size >= 3 else 1
        self.work = work
        # cluster_helpers launches `<binary> serve ...` on each host; a wrapper pins the process (and every
        # thread it starts: the shard's executor takes its core from this affinity) to the broker core.
        self.wrapper = work / "ringbroker-pinned.sh"
        self.wrapper.write_text(f"#!/bin/sh\nexec taskset -c {args.broker_core} {args.ringbroker} \"$@\"\n")
        self.wrapper.chmod(0o755)
        self.cluster = Cluster(str(self.wrapper), work, size=size,
                               extra_args=["--set", f"segment_bytes={args.segment_bytes}", *args.rb_args.split()])
        self.hosts = self.cluster.hosts

    @property
    def bootstrap(self) -> str:
        return self.cluster.bootstrap

    def start(self) -> None:
        self.cluster.start()

    def pids(self) -> list[int]:
        return [n.proc.pid for n in self.cluster.nodes if n.proc is not None]

    def close(self) -> None:
        self.cluster.close()

    def logs(self) -> dict[str, Path]:
        return {f"node-{n.node_id}.log": n.log_path for n in self.cluster.nodes}


class KafkaSystem:
    """A 3-node Apache Kafka KRaft cluster (combined broker + controller each) on test hosts, pinned."""

    def __init__(self, name: str, args, work: Path, size: int = 3):
        self.name = name
        self.size = size
        self.replication_factor = size
        self.min_insync = 2
        self.args = args
        self.work = work
        self.hosts = TestHosts(size, allow_fallback=False)
        self.procs: list[subprocess.Popen] = []
        self.voters = ",".join(f"{i}@{self.hosts.address(i)}:{CONTROLLER_PORT}" for i in range(1, size + 1))
        # Kafka's Uuid text form: 16 random bytes, URL-safe base64 without padding.
        self.cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")

    @property
    def bootstrap(self) -> str:
        return ",".join(f"{self.hosts.address(i)}:{KAFKA_PORT}" for i in range(1, self.size + 1))

    def node_dir(self, i: int) -> Path:
        return self.work / f"kafka-{i}"

    def properties(self, i: int) -> Path:
        d = self.node_dir(i)
        address = self.hosts.address(i)
        text = f"""# Written by bench/scripts/replicated.py: node {i} of a 3-node KRaft cluster, combined broker + controller.
process.roles=broker,controller
node.id={i}
controller.quorum.voters={self.voters}
listeners=PLAINTEXT://{address}:{KAFKA_PORT},CONTROLLER://{address}:{CONTROLLER_PORT}
advertised.listeners=PLAINTEXT://{address}:{KAFKA_PORT}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs={d}/logs
metadata.log.dir={d}/metadata
num.partitions=1
auto.create.topics.enable=true
group.initial.rebalance.delay.ms=0
socket.request.max.bytes=104857600
log.retention.check.interval.ms={KAFKA_RETENTION_CHECK_MS}
log.segment.delete.delay.ms={KAFKA_SEGMENT_DELETE_DELAY_MS}
"""
        path = d / "server.properties"
        path.write_text(text)
        return path

    def start(self) -> None:
        cp = f"{KAFKA_LIB}/*"
        for i in range(1, self.size + 1):
            d = self.node_dir(i)
            d.mkdir(parents=True, exist_ok=True)
            props = self.properties(i)
            fmt = subprocess.run(
                ["java", f"-Dlog4j2.configurationFile={KAFKA_LOG4J}", f"-Dkafka.logs.dir={d}", "-cp", cp,
                 "kafka.tools.StorageTool", "format", "-t", self.cluster_id, "-c", str(props)],
                capture_output=True, text=True, timeout=120)
            if fmt.returncode != 0:
                raise RuntimeError(f"kafka-storage format of node {i} failed:\n{fmt.stdout}\n{fmt.stderr}")
        for i in range(1, self.size + 1):
            d = self.node_dir(i)
            cmd = self.hosts.host_cmd(i, [
                "taskset", "-c", str(self.args.broker_core), "java", f"-Xms{KAFKA_HEAP}", f"-Xmx{KAFKA_HEAP}",
                *KAFKA_JVM_FLAGS, f"-Dlog4j2.configurationFile={KAFKA_LOG4J}", f"-Dkafka.logs.dir={d}",
                "-cp", cp, "kafka.Kafka", str(d / "server.properties")])
            out = open(d / "kafka.out", "ab")
            self.procs.append(subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL))
        deadline = time.monotonic() + KAFKA_START_TIMEOUT_S
        with self.hosts.in_hub():
            for i in range(1, self.size + 1):
                while not api_versions_ok(self.hosts.address(i), KAFKA_PORT):
                    for p in self.procs:
                        if p.poll() is not None:
                            raise RuntimeError(f"a Kafka node exited during start-up; see {self.work}/kafka-*/")
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"Kafka node {i} not answering within {KAFKA_START_TIMEOUT_S} s")
                    time.sleep(0.5)

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def close(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
                p.wait()
        self.procs.clear()
        self.hosts.close()

    def logs(self) -> dict[str, Path]:
        out = {}
        for i in range(1, self.size + 1):
            for f in ("server.log", "kafka.out"):
                out[f"kafka-{i}-{f}"] = self.node_dir(i) / f
        return out


# ---------------------------------------------------------------------------------------------- the runs
class Runner:
    def __init__(self, args):
        self.args = args
        self.out = Path(args.out).resolve()
        (self.out / "runs").mkdir(parents=True, exist_ok=True)
        (self.out / "logs").mkdir(parents=True, exist_ok=True)
        self.results: list[dict] = []
        self.results_path = self.out / "results.json"
        if self.results_path.exists() and args.keep_results:
            self.results = json.loads(self.results_path.read_text())["runs"]

    def save(self) -> None:
        doc = {"machine": machine_info(self.args), "runs": self.results}
        self.results_path.write_text(json.dumps(doc, indent=1))

    def tool(self, system, cmd: list[str]) -> list[str]:
        return system.hosts.hub_cmd(["taskset", "-c", str(self.args.tool_core), *cmd])

    def rb_cli(self, system, *cli: str, check: bool = True) -> subprocess.CompletedProcess:
        cmd = system.hosts.hub_cmd([self.args.ringbroker, "topics", *cli, "--bootstrap-server", system.bootstrap])
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if check and p.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{p.stdout}\n{p.stderr}")
        return p

    def create_topic(self, system, topic: str) -> None:
        configs = [f"min.insync.replicas={system.min_insync}", f"retention.bytes={TOPIC_RETENTION_BYTES}",
                   f"segment.bytes={TOPIC_SEGMENT_BYTES}"]
        deadline = time.monotonic() + TOPIC_READY_TIMEOUT_S
        while True:
            cli = ["create", "--topic", topic, "--partitions", "1",
                   "--replication-factor", str(system.replication_factor), "--if-not-exists"]
            for c in configs:
                cli += ["--config", c]
            p = self.rb_cli(system, *cli, check=False)
            if p.returncode == 0:
                break
            # Kafka refuses RF 3 until all three brokers have registered.
            if time.monotonic() > deadline:
                raise RuntimeError(f"creating {topic} on {system.name} failed:\n{p.stdout}\n{p.stderr}")
            time.sleep(1)
        while True:
            p = self.rb_cli(system, "describe", "--topic", topic, "--output", "json", check=False)
            if p.returncode == 0 and topic_ready(p.stdout, system.replication_factor):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{topic} on {system.name} has no full ISR:\n{p.stdout}\n{p.stderr}")
            time.sleep(0.5)

    def delete_topic(self, system, topic: str) -> None:
        self.rb_cli(system, "delete", "--topic", topic, check=False)

    def record(self, entry: dict) -> dict:
        self.results.append(entry)
        self.save()
        return entry

    def perf(self, system, round_no: int, phase: str, topic: str, records: int, throughput: float,
             warmup_records: int = 0) -> dict:
        label = f"r{round_no}-{system.name}-{phase}-perf"
        cmd = ["java", f"-Xmx{TOOL_HEAP}", f"-Dlog4j2.configurationFile={KAFKA_LOG4J}",
               f"-Dkafka.logs.dir={self.out / 'runs'}", "-cp", f"{KAFKA_LIB}/*",
               "org.apache.kafka.tools.ProducerPerformance", "--topic", topic, "--num-records", str(records),
               "--record-size", str(RECORD_BYTES), "--throughput", str(int(throughput)),
               "--producer-props", f"bootstrap.servers={system.bootstrap}"]
        if warmup_records:
            cmd += ["--warmup-records", str(warmup_records)]
        return self.run_tool(system, label, cmd, parse_perf, round_no, phase, "ProducerPerformance", topic)

    def bench(self, system, round_no: int, phase: str, topic: str, rate: float | None) -> dict:
        label = f"r{round_no}-{system.name}-{phase}-bench"
        json_path = self.out / "runs" / f"{label}.json"
        # ringbroker-bench takes one bootstrap address (it finds the leader from Metadata).
        cmd = [self.args.bench, "produce", "--bootstrap-server", system.bootstrap.split(",")[0], "--topic", topic,
               "--record-size", str(RECORD_BYTES), "--acks", "all", "--duration", f"{self.args.duration_s}s",
               "--warmup", f"{self.args.warmup_s}s", "--cores", str(self.args.tool_core), "--json", str(json_path),
               "--label", label]
        if rate:
            cmd += ["--rate", str(int(rate))]
        cmd += self.args.bench_args.split()
        return self.run_tool(system, label, cmd, lambda text: parse_bench(json_path), round_no, phase,
                             "ringbroker-bench", topic)

    def run_tool(self, system, label, cmd, parse, round_no, phase, tool, topic) -> dict:
        os.sync()
        load_before = machine_load()
        full = self.tool(system, cmd)
        log(f"{label}: {' '.join(cmd)}")
        started = time.time()
        cpu_before, cores_before = process_cpu_s(system.pids()), core_times()
        disk_before = disk_written_bytes()
        out_path = self.out / "runs" / f"{label}.txt"
        try:
            p = subprocess.run(full, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
            text = p.stdout + p.stderr
            rc = p.returncode
        except subprocess.TimeoutExpired as e:
            text = f"{e.stdout or ''}{e.stderr or ''}\nTIMED OUT after {RUN_TIMEOUT_S} s"
            rc = -1
        elapsed = time.time() - started
        brokers_cpu_s = process_cpu_s(system.pids()) - cpu_before
        cores = core_busy(cores_before, core_times())
        disk_after = disk_written_bytes()
        # Device writes of the whole machine (every replica shares this disk, and so do other writers).
        disk_mb_s = {d: round((disk_after[d] - disk_before[d]) / elapsed / 1e6, 1) for d in disk_after if d in disk_before}
        out_path.write_text(text if isinstance(text, str) else text.decode(errors="replace"))
        entry = {"label": label, "system": system.name, "round": round_no, "phase": phase, "tool": tool,
                 "command": " ".join(cmd), "rc": rc, "started_utc": time.strftime(
                     "%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)), "seconds": round(time.time() - started, 1),
                 "load_before": load_before, "load_after": machine_load(),
                 # The brokers' CPU over the whole tool run (JVM start included), and how busy each core
                 # was (by anything): is the broker core saturated?
                 "brokers_cpu_s": round(brokers_cpu_s, 2), "brokers_cpu_share": round(brokers_cpu_s / elapsed, 3),
                 "core_busy": cores, "disk_write_mb_per_s": disk_mb_s}
        try:
            entry["result"] = parse(text) if rc == 0 else None
        except (ValueError, OSError, KeyError) as e:
            entry["result"] = None
            entry["parse_error"] = str(e)
        # The partition right after the run: a follower that fell out of the ISR would make acks=all cheaper.
        p = self.rb_cli(system, "describe", "--topic", topic, "--output", "json", check=False)
        with contextlib.suppress(ValueError):
            entry["partition_after"] = json.loads(p.stdout)
        r = entry["result"]
        log(f"{label}: rc {rc}, {summary_line(r)}, ISR after: {isr_of(entry.get('partition_after'))}, "
            f"brokers' CPU {entry['brokers_cpu_share']:.2f} of a core, cores busy {cores}, disk writes MB/s {disk_mb_s}")
        return self.record(entry)

    # ------------------------------------------------------------------------------------------ phases
    def with_system(self, kind: str, round_no: int, phase: str, body) -> None:
        work = Path(self.args.data_root) / f"{kind}-r{round_no}-{phase}"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        system = None
        try:
            if kind == "rb3":
                system = RingbrokerSystem("rb3", 3, self.args, work)
            elif kind == "rb1":
                system = RingbrokerSystem("rb1", 1, self.args, work)
            else:
                system = KafkaSystem("kafka3", self.args, work)
            log(f"round {round_no} {phase}: starting {kind} ({system.hosts.mode} hosts)")
            system.start()
            log(f"{kind} up: {system.bootstrap} (pids {system.pids()})")
            body(system)
        except Exception as e:  # noqa: BLE001 - one failed system must not stop the others; it is recorded
            log(f"round {round_no} {phase} {kind} FAILED: {e}")
            self.record({"label": f"r{round_no}-{kind}-{phase}-failure", "system": kind, "round": round_no,
                         "phase": phase, "error": str(e)})
        finally:
            if system is not None:
                dest = self.out / "logs" / f"{kind}-r{round_no}-{phase}"
                dest.mkdir(parents=True, exist_ok=True)
                for name, path in system.logs().items():
                    with contextlib.suppress(OSError):
                        shutil.copy(path, dest / name)
                system.close()
            shutil.rmtree(work, ignore_errors=True)

    def max_phase(self, kind: str, round_no: int) -> None:
        def body(system):
            topic = f"probe-r{round_no}"
            self.create_topic(system, topic)
            probe = self.perf(system, round_no, "probe", topic, self.args.probe_records, -1)
            self.delete_topic(system, topic)
            rps = (probe.get("result") or {}).get("records_per_s") or 50_000
            records = min(MAX_PERF_RECORDS, int(rps * self.args.duration_s))
            topic = f"max-perf-r{round_no}"
            self.create_topic(system, topic)
            self.perf(system, round_no, "max", topic, records, -1)
            self.delete_topic(system, topic)
            topic = f"max-bench-r{round_no}"
            self.create_topic(system, topic)
            self.bench(system, round_no, "max", topic, None)
            self.delete_topic(system, topic)
        self.with_system(kind, round_no, "max", body)

    def rate_phase(self, kind: str, round_no: int, rate: float) -> None:
        def body(system):
            # Each phase starts fresh brokers: the same un-recorded probe as the max phase JIT-compiles
            # Kafka's hot path before the latency runs (ringbroker gets it too, alike).
            topic = f"probe-r{round_no}"
            self.create_topic(system, topic)
            self.perf(system, round_no, "probe", topic, self.args.probe_records, -1)
            self.delete_topic(system, topic)
            topic = f"rate-perf-r{round_no}"
            self.create_topic(system, topic)
            warmup = int(rate * self.args.rate_warmup_s)
            self.perf(system, round_no, "rate", topic, warmup + int(rate * self.args.duration_s), rate, warmup)
            self.delete_topic(system, topic)
            topic = f"rate-bench-r{round_no}"
            self.create_topic(system, topic)
            self.bench(system, round_no, "rate", topic, rate)
            self.delete_topic(system, topic)
        self.with_system(kind, round_no, "rate", body)

    def fixed_rate(self) -> float:
        if self.args.rate:
            return self.args.rate
        medians = []
        for system in ("rb3", "kafka3"):
            values = [r["result"]["records_per_s"] for r in self.results
                      if r.get("system") == system and r.get("phase") == "max" and r.get("tool") ==
                      "ProducerPerformance" and r.get("result")]
            if not values:
                raise RuntimeError(f"no max ProducerPerformance result for {system}: give --rate")
            medians.append(statistics.median(values))
        return min(medians) / 2

    def run(self) -> None:
        systems = self.args.systems.split(",")
        phases = self.args.phases.split(",")
        if "max" in phases:
            for round_no in range(1, self.args.runs + 1):
                order = systems if round_no % 2 == 1 else list(reversed(systems))
                for kind in order:
                    self.max_phase(kind, round_no)
        if "rate" in phases:
            rate = self.fixed_rate()
            log(f"fixed rate: {rate:.0f} records/s")
            for round_no in range(1, self.args.runs + 1):
                order = [s for s in systems if s != "rb1"]
                if round_no % 2 == 0:
                    order.reverse()
                for kind in order:
                    self.rate_phase(kind, round_no, rate)
        self.save()
        summary = summarize(self.results)
        (self.out / "summary.md").write_text(summary)
        print(summary)


def topic_ready(describe_json: str, replication_factor: int) -> bool:
    """Whether the describe output shows every partition with a leader and a full ISR."""
    try:
        doc = json.loads(describe_json)
    except ValueError:
        return False
    topics = doc if isinstance(doc, list) else doc.get("topics", [doc])
    partitions = [p for t in topics for p in t.get("partitions", [])]
    if not partitions:
        return False
    return all(p.get("leader", -1) >= 0 and len(p.get("isr", [])) >= replication_factor for p in partitions)


def isr_of(describe: dict | list | None) -> list:
    if not describe:
        return []
    topics = describe if isinstance(describe, list) else describe.get("topics", [describe])
    return [p.get("isr") for t in topics for p in t.get("partitions", [])]


def parse_perf(text: str) -> dict:
    """ProducerPerformance's summary lines: the whole run, and the steady state after --warmup-records."""
    lines = [ln for ln in text.splitlines() if PERF_LINE.search(ln)]
    if not lines:
        raise ValueError("no ProducerPerformance summary line")

    def one(line: str) -> dict:
        m = PERF_LINE.search(line)
        return {"records": int(m["records"]), "records_per_s": float(m["rps"]), "mb_per_s": float(m["mbps"]),
                "avg_ms": float(m["avg"]), "max_ms": float(m["max"]), "p50_ms": float(m["p50"]),
                "p95_ms": float(m["p95"]), "p99_ms": float(m["p99"]), "p999_ms": float(m["p999"])}
    whole = [ln for ln in lines if not PERF_LINE.search(ln)["steady"]]
    steady = [ln for ln in lines if PERF_LINE.search(ln)["steady"]]
    result = one(whole[-1] if whole else lines[-1])
    if steady:
        result["steady"] = one(steady[-1])
    return result


def parse_bench(json_path: Path) -> dict:
    doc = json.loads(json_path.read_text())
    res = doc["results"]
    produce = res["produce"]
    lat = res["produce_latency"]
    return {"records": produce["records"], "records_per_s": produce["records_per_s"],
            "mb_per_s": produce["mb_per_s"], "payload_mb_per_s": produce.get("payload_mb_per_s"),
            "errors": res["errors"], "p50_ms": lat["p50_us"] / 1000, "p99_ms": lat["p99_us"] / 1000,
            "p999_ms": lat["p999_us"] / 1000, "max_ms": lat["max_us"] / 1000}


def summary_line(r: dict | None) -> str:
    if not r:
        return "no result"
    s = r.get("steady", r)
    return (f"{r['records_per_s']:.0f} rec/s, {r['mb_per_s']:.1f} MB/s, p50 {s['p50_ms']:.1f} ms, "
            f"p99 {s['p99_ms']:.1f} ms" + (" (steady state)" if "steady" in r else ""))


def summarize(results: list[dict]) -> str:
    """Tables of the runs and the issue's ratios (medians of the rounds; the spread is min-max)."""
    ok = [r for r in results if r.get("result")]
    out = ["| phase | tool | system | runs (records/s, MB/s, p50 / p99 ms) | median records/s | median p99 ms |",
           "|---|---|---|---|---|---|"]
    med: dict[tuple, tuple] = {}
    for phase in ("max", "rate"):
        for tool in ("ProducerPerformance", "ringbroker-bench"):
            for system in ("rb3", "kafka3", "rb1"):
                rows = sorted((r for r in ok if r["phase"] == phase and r["tool"] == tool and r["system"] == system),
                              key=lambda r: r["round"])
                if not rows:
                    continue
                cells = []
                for r in rows:
                    res = r["result"]
                    s = res.get("steady", res)
                    cells.append(f"r{r['round']}: {res['records_per_s']:,.0f}, {res['mb_per_s']:.1f}, "
                                 f"{s['p50_ms']:.1f} / {s['p99_ms']:.1f}")
                rps = statistics.median(r["result"]["records_per_s"] for r in rows)
                p99 = statistics.median(r["result"].get("steady", r["result"])["p99_ms"] for r in rows)
                med[(phase, tool, system)] = (rps, p99)
                out.append(f"| {phase} | {tool} | {system} | {'; '.join(cells)} | {rps:,.0f} | {p99:.1f} |")
    out.append("")
    for tool in ("ProducerPerformance", "ringbroker-bench"):
        a, b = med.get(("max", tool, "rb3")), med.get(("max", tool, "kafka3"))
        if a and b:
            out.append(f"- {tool}, max throughput ringbroker/Kafka: {a[0] / b[0]:.2f} (target >= 2)")
        a, b = med.get(("rate", tool, "rb3")), med.get(("rate", tool, "kafka3"))
        if a and b and b[1] > 0:
            out.append(f"- {tool}, p99 at the same rate ringbroker/Kafka: {a[1] / b[1]:.2f} (target <= 0.2)")
        a, b = med.get(("max", tool, "rb3")), med.get(("max", tool, "rb1"))
        if a and b:
            out.append(f"- {tool}, replicated/single-broker throughput: {a[0] / b[0]:.2f} (target >= 0.7)")
    failures = [r for r in results if "error" in r or (r.get("rc") not in (None, 0))]
    for f in failures:
        out.append(f"- FAILED {f['label']}: {f.get('error') or 'rc ' + str(f.get('rc'))}")
    return "\n".join(out) + "\n"


def machine_info(args) -> dict:
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), "?")
    return {"nproc": os.cpu_count(), "cpu_model": cpu, "kernel": os.uname().release,
            "memory_gib": round(int(Path("/proc/meminfo").read_text().split()[1]) / 1048576, 1),
            "ringbroker": subprocess.run([args.ringbroker, "--version"], capture_output=True, text=True).stdout.strip(),
            "git_commit": subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                                         capture_output=True, text=True).stdout.strip(),
            "java": subprocess.run(["java", "-version"], capture_output=True, text=True).stderr.splitlines()[0],
            "broker_core": args.broker_core, "tool_core": args.tool_core, "duration_s": args.duration_s}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="/tmp/replbench-out")
    ap.add_argument("--data-root", default="/tmp/replbench-data", help="data directories (removed afterwards)")
    ap.add_argument("--runs", type=int, default=2, help="alternating rounds")
    ap.add_argument("--duration-s", type=int, default=20)
    ap.add_argument("--warmup-s", type=int, default=2, help="ringbroker-bench --warmup")
    ap.add_argument("--rate-warmup-s", type=int, default=3,
                    help="ProducerPerformance --warmup-records at the fixed rate, in seconds of records")
    ap.add_argument("--probe-records", type=int, default=200_000)
    ap.add_argument("--rate", type=float, help="records/s of the rate phase (default: half the slower max)")
    ap.add_argument("--systems", default="rb3,kafka3,rb1")
    ap.add_argument("--phases", default="max,rate")
    ap.add_argument("--broker-core", type=int, default=0)
    ap.add_argument("--tool-core", type=int, default=1)
    ap.add_argument("--segment-bytes", default="64MiB", help="ringbroker --set segment_bytes (preallocation)")
    ap.add_argument("--ringbroker", default=str(REPO / "target" / "release" / "ringbroker"))
    ap.add_argument("--bench", default=str(REPO / "target" / "release" / "ringbroker-bench"))
    ap.add_argument("--bench-args", default="", help="extra ringbroker-bench options, e.g. '--max-in-flight 32'")
    ap.add_argument("--rb-args", default="", help="extra `ringbroker serve` options for every node")
    ap.add_argument("--keep-results", action="store_true", help="append to an existing results.json")
    args = ap.parse_args()
    args.ringbroker = str(Path(args.ringbroker).resolve())
    args.bench = str(Path(args.bench).resolve())
    for path in (args.ringbroker, args.bench):
        if not os.access(path, os.X_OK):
            print(f"replicated.py: {path} is missing (cargo build --release -p ringbroker-tools -p ringbroker-bench)",
                  file=sys.stderr)
            return 2
    if not (KAFKA_LIB / "kafka_2.13-4.4.0.jar").exists():
        subprocess.run(["bash", str(REPO / "bench" / "reference" / "kafka.sh"), "fetch"], check=True)
    Runner(args).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
