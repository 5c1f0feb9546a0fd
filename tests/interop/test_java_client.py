"""Issue 11 items 4-5 with the Java client and Kafka's own tools (Apache Kafka 4.4 jars from bench/reference):

- kafka-clients 4.4 with DEFAULT producer settings (acks=all, enable.idempotence=true) produces 1,000,000 records
  while the broker restarts once; a consumer group then reads every record exactly once
  (tests/java/.../DefaultProducerRoundTrip.java);
- the AdminClient creates, lists, describes and deletes a topic and lists offsets (AdminRoundTrip.java);
- Kafka's command-line tools (TopicCommand, ConsoleProducer, ConsoleConsumer, ConsumerGroupCommand,
  GetOffsetShell) run unchanged against the broker, with their output checked.

The Java sources are compiled once per session with javac against bench/reference/target/lib (fetched with
`mvn -q -f bench/reference/pom.xml dependency:copy-dependencies` when missing). Skipped, saying why, when
java/javac (or the jars and mvn) are absent."""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from java_build import compile_against

REPO = Path(__file__).resolve().parents[2]
LIB_DIR = REPO / "bench" / "reference" / "target" / "lib"
JAVA_SRC = REPO / "tests" / "java" / "src" / "main" / "java"
RECORDS = int(os.environ.get("INTEROP_JAVA_RECORDS", "1000000"))
# Kafka's tools log through log4j2; keep their output to what they print themselves.
LOG4J = REPO / "bench" / "reference" / "log4j2.xml"
# Where the Java programs' log4j2 file output goes (WARN and above).
JAVA_LOG_DIR = Path(os.environ.get("TMPDIR", "/tmp")) / "ringbroker-java-interop-logs"
# Limit for one CLI tool invocation (a JVM start is ~1 s; a hung tool must fail the test).
TOOL_TIMEOUT_S = 90


@pytest.fixture(scope="session")
def java_classpath(tmp_path_factory) -> str:
    return compile_against(REPO / "bench" / "reference" / "pom.xml", LIB_DIR, "kafka-clients-*.jar", JAVA_SRC,
                           tmp_path_factory.mktemp("java-classes"))


def log_flags() -> list[str]:
    """The reference log4j2 config writes WARN+ to ${kafka.logs.dir}/server.log: point it at a temp dir (unset, the
    tools would create a directory literally named `${sys:kafka.logs.dir}` in the working directory)."""
    return [f"-Dlog4j2.configurationFile={LOG4J}", f"-Dkafka.logs.dir={JAVA_LOG_DIR}"]


def java(classpath: str, main: str, *args: str, **kwargs) -> subprocess.CompletedProcess:
    cmd = ["java", "-Xmx512m", *log_flags(), "-cp", classpath, main, *args]
    kwargs.setdefault("timeout", TOOL_TIMEOUT_S)
    return subprocess.run(cmd, capture_output=True, text=True, **kwargs)


def run_ok(classpath: str, main: str, *args: str, **kwargs) -> str:
    done = java(classpath, main, *args, **kwargs)
    assert done.returncode == 0, f"{main} {' '.join(args)} exited {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.mark.timeout(900)
@pytest.mark.parametrize("broker", [2], indirect=True, ids=["shards2"])
def test_default_java_producer_across_restart(broker, topic_name, java_classpath):
    if not getattr(broker, "managed", True):
        pytest.skip("needs a broker this test can restart")
    cmd = [
        "java", "-Xmx1g", *log_flags(), "-cp", java_classpath,
        "ringbroker.interop.DefaultProducerRoundTrip", broker.bootstrap, topic_name, "4", str(RECORDS),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    restarted = False
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip())
            m = re.match(r"PROGRESS (\d+)", line)
            if m and not restarted and int(m.group(1)) >= RECORDS // 2:
                broker.restart()
                restarted = True
        rc = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = "\n".join(lines)
    print(output)
    assert restarted, f"the producer never reached half way:\n{output[-3000:]}"
    result = [line for line in lines if line.startswith("RESULT ")]
    assert result, f"no RESULT line (exit {rc}):\n{output[-3000:]}"
    assert rc == 0, f"records lost or duplicated: {result[0]}\n{output[-3000:]}"
    fields = dict(kv.split("=", 1) for kv in result[0].split()[1:])
    assert int(fields["missing"]) == 0 and int(fields["duplicates"]) == 0
    assert int(fields["consumed"]) == RECORDS


def test_java_admin_client(broker, topic_name, java_classpath):
    out = run_ok(java_classpath, "ringbroker.interop.AdminRoundTrip", broker.bootstrap, topic_name)
    for step in ("OK describeCluster nodes=1", "OK create", "OK list", "OK describe", "OK listOffsets EarliestSpec 0", "OK listOffsets LatestSpec 5",
                 "OK delete"):
        assert step in out, out


# ------------------------------------------------------------------------------------ Kafka's CLI tools
TOPIC_COMMAND = "org.apache.kafka.tools.TopicCommand"
CONSOLE_PRODUCER = "org.apache.kafka.tools.ConsoleProducer"
CONSOLE_CONSUMER = "org.apache.kafka.tools.consumer.ConsoleConsumer"
GROUP_COMMAND = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand"
GET_OFFSET_SHELL = "org.apache.kafka.tools.GetOffsetShell"
API_CREATE_PARTITIONS = 37
API_DESCRIBE_CONFIGS = 32


def advertised_apis(bootstrap: str) -> dict[int, tuple[int, int]]:
    import kafka_wire as kw

    with kw.connect(bootstrap) as sock:
        sock.sendall(kw.api_versions_v0(1))
        got = kw.read_response(sock)
        assert got is not None
        return kw.parse_api_versions(got[1], 0).ranges


def test_kafka_cli_tools(broker, topic_name, java_classpath):
    """The quickstart commands: kafka-topics --create/--list/--delete, kafka-console-producer with keys,
    kafka-console-consumer --from-beginning --group, kafka-consumer-groups --list/--describe/--reset-offsets,
    kafka-get-offsets (GetOffsetShell)."""
    b = ["--bootstrap-server", broker.bootstrap]
    out = run_ok(java_classpath, TOPIC_COMMAND, *b, "--create", "--topic", topic_name, "--partitions", "3")
    assert f"Created topic {topic_name}." in out
    assert topic_name in run_ok(java_classpath, TOPIC_COMMAND, *b, "--list").split()

    lines = [f"key{i}:value{i}" for i in range(30)]
    run_ok(java_classpath, CONSOLE_PRODUCER, *b, "--topic", topic_name, "--property", "parse.key=true",
           "--property", "key.separator=:", input="\n".join(lines) + "\n")

    group = f"cli-{topic_name}"
    consume = [*b, "--topic", topic_name, "--from-beginning", "--max-messages", "30", "--property", "print.key=true",
               "--property", "key.separator=:", "--group", group]
    out = run_ok(java_classpath, CONSOLE_CONSUMER, *consume)
    got = [line for line in out.splitlines() if line.startswith("key")]
    assert sorted(got) == sorted(lines), out
    # Same key, same partition: per key the order is kept (one record per key here, so check the partitioner
    # through GetOffsetShell's totals instead).
    offsets = run_ok(java_classpath, GET_OFFSET_SHELL, *b, "--topic", topic_name)
    ends = {int(p): int(o) for _t, p, o in (line.rsplit(":", 2) for line in offsets.split())}
    assert sorted(ends) == [0, 1, 2] and sum(ends.values()) == 30, offsets
    starts = run_ok(java_classpath, GET_OFFSET_SHELL, *b, "--topic", topic_name, "--time", "-2")
    assert {line.rsplit(":", 1)[1] for line in starts.split()} == {"0"}, starts

    assert group in run_ok(java_classpath, GROUP_COMMAND, *b, "--list").split()
    described = run_ok(java_classpath, GROUP_COMMAND, *b, "--describe", "--group", group)
    rows = [line.split() for line in described.splitlines() if line.startswith(group)]
    assert len(rows) == 3 and all(int(r[3]) == int(r[4]) and r[5] == "0" for r in rows), described
    reset = run_ok(java_classpath, GROUP_COMMAND, *b, "--reset-offsets", "--to-earliest", "--execute",
                   "--group", group, "--topic", topic_name)
    rows = [line.split() for line in reset.splitlines() if line.startswith(group)]
    assert len(rows) == 3 and all(r[3] == "0" for r in rows), reset
    described = run_ok(java_classpath, GROUP_COMMAND, *b, "--describe", "--group", group)
    rows = [line.split() for line in described.splitlines() if line.startswith(group)]
    assert all(r[3] == "0" and int(r[5]) == int(r[4]) for r in rows), described
    # The group reads everything again after the reset.
    out = run_ok(java_classpath, CONSOLE_CONSUMER, *consume)
    assert len([line for line in out.splitlines() if line.startswith("key")]) == 30, out

    run_ok(java_classpath, TOPIC_COMMAND, *b, "--delete", "--topic", topic_name)
    deadline = time.monotonic() + 30
    while topic_name in run_ok(java_classpath, TOPIC_COMMAND, *b, "--list").split():
        assert time.monotonic() < deadline, "topic still listed after --delete"
        time.sleep(0.5)


def test_kafka_topics_describe(broker, topic_name, java_classpath):
    """kafka-topics --describe needs DescribeConfigs (32): xfail naming it while the broker does not advertise it."""
    b = ["--bootstrap-server", broker.bootstrap]
    run_ok(java_classpath, TOPIC_COMMAND, *b, "--create", "--topic", topic_name, "--partitions", "2")
    done = java(java_classpath, TOPIC_COMMAND, *b, "--describe", "--topic", topic_name)
    if API_DESCRIBE_CONFIGS not in advertised_apis(broker.bootstrap):
        pytest.xfail(f"the broker does not serve DescribeConfigs (32): {done.stdout.strip()}")
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert f"Topic: {topic_name}" in out and "PartitionCount: 2" in out and "ReplicationFactor: 1" in out, out
    rows = [line for line in out.splitlines() if line.strip().startswith(f"Topic: {topic_name}\tPartition:")]
    assert len(rows) == 2 and all("Leader: " in r and "Isr: " in r for r in rows), out


def test_kafka_topics_alter_partitions(broker, topic_name, java_classpath):
    """kafka-topics --alter --partitions needs CreatePartitions (37): xfail naming it while it is not advertised."""
    b = ["--bootstrap-server", broker.bootstrap]
    run_ok(java_classpath, TOPIC_COMMAND, *b, "--create", "--topic", topic_name, "--partitions", "2")
    done = java(java_classpath, TOPIC_COMMAND, *b, "--alter", "--topic", topic_name, "--partitions", "3")
    if API_CREATE_PARTITIONS not in advertised_apis(broker.bootstrap):
        pytest.xfail(f"the broker does not serve CreatePartitions (37): {done.stdout.strip()}")
    assert done.returncode == 0, done.stdout + done.stderr
    offsets = run_ok(java_classpath, GET_OFFSET_SHELL, *b, "--topic", topic_name)
    assert len(offsets.split()) == 3, offsets


# ------------------------------------------------------------------------------------ latency at a fixed rate
# Issue 19: Kafka's own ProducerPerformance with the Java client's defaults (acks=all, idempotent, 16 KiB batches,
# linger.ms=5, 5 requests in flight) at a fixed rate. A request waiting ~300 ms anywhere between the client and
# the log (a frame left unread, a response left unsent, an append stuck behind a round) shows as a steady-state
# p99 of hundreds of ms; a healthy broker answers in a few ms. The bound is a correctness bound far above the
# healthy figure and far below the stall, not a benchmark (BENCHMARKS.md has the figures).
PERF_RATE_PER_S = 20_000
PERF_WARMUP_RECORDS = 60_000  # the first 3 s: the client's JIT and connection set-up, not the broker
PERF_STEADY_RECORDS = 240_000  # 12 s at the rate
PERF_P99_BOUND_MS = 100


# A run whose p99 exceeds the bound is taken again once: on a machine shared with other work (builds running
# beside the suite: load average 6-8 measured) a single run has reached 500-1000 ms without the broker at fault,
# while the stall this test exists for shows in every run. Both runs are printed.
PERF_ATTEMPTS = 2


def _steady_p99(java_classpath: str, bootstrap: str, topic: str) -> tuple[int, str]:
    os.sync()
    done = java(
        java_classpath, "org.apache.kafka.tools.ProducerPerformance",
        "--topic", topic, "--record-size", "1024",
        "--num-records", str(PERF_WARMUP_RECORDS + PERF_STEADY_RECORDS),
        "--warmup-records", str(PERF_WARMUP_RECORDS),
        "--throughput", str(PERF_RATE_PER_S),
        "--command-property", f"bootstrap.servers={bootstrap}",
        timeout=180,
    )
    assert done.returncode == 0, f"ProducerPerformance exited {done.returncode}\n{done.stdout}\n{done.stderr}"
    steady = [line for line in done.stdout.splitlines() if "steady state records sent" in line]
    assert steady, f"no steady-state summary:\n{done.stdout}"
    print(steady[0])
    fields = re.search(r"^(\d+) steady state records sent.* (\d+) ms 99th", steady[0])
    assert fields, steady[0]
    sent, p99_ms = int(fields.group(1)), int(fields.group(2))
    assert sent == PERF_STEADY_RECORDS, steady[0]
    return p99_ms, steady[0]


@pytest.mark.timeout(420)
@pytest.mark.parametrize("broker", [2], indirect=True, ids=["shards2"])
def test_java_producer_latency_at_a_fixed_rate(broker, topic_name, java_classpath):
    import clients

    clients.create_topic(broker.bootstrap, topic_name, 1)
    # Another process's dirty page cache being written back makes the device slow for everyone, and an
    # acknowledgement here waits for the device (see BENCHMARKS.md, "The ~300 ms stall"): start from a
    # clean page cache (os.sync in each attempt) so the bound measures the broker, not the build before it.
    runs = []
    for attempt in range(PERF_ATTEMPTS):
        p99_ms, summary = _steady_p99(java_classpath, broker.bootstrap, topic_name)
        runs.append(summary)
        if p99_ms <= PERF_P99_BOUND_MS:
            return
        print(f"attempt {attempt + 1}: steady-state p99 {p99_ms} ms above {PERF_P99_BOUND_MS} ms "
              f"(load average {os.getloadavg()[0]:.1f})")
    raise AssertionError(f"steady-state p99 above {PERF_P99_BOUND_MS} ms at {PERF_RATE_PER_S} records/s in "
                         f"every attempt: {runs}")


# ------------------------------------------------------------------------------------ transactions (issue 22)
TRANSACTIONS_COMMAND = "org.apache.kafka.tools.TransactionsCommand"


@pytest.mark.timeout(300)
@pytest.mark.parametrize("broker", [2], indirect=True, ids=["shards2"])
def test_java_transactional_read_process_write(broker, topic_name, java_classpath):
    import clients

    source, sink = f"{topic_name}-in", f"{topic_name}-out"
    clients.create_topic(broker.bootstrap, source, 1)
    clients.create_topic(broker.bootstrap, sink, 1)
    values = [b"record-%04d" % i for i in range(200)]
    clients.produce_all(clients.producer(broker.bootstrap), source, [(None, v) for v in values], partition=0)
    out = run_ok(java_classpath, "ringbroker.interop.TransactionalCopy", broker.bootstrap, source, sink,
                 f"g-{topic_name}", f"copy-{topic_name}", str(len(values)), timeout=240)
    m = re.search(r"COMMITTED (\d+) ABORTED (\d+)", out)
    assert m and int(m.group(1)) == len(values) and int(m.group(2)) > 0, out

    from confluent_kafka import OFFSET_BEGINNING, TopicPartition

    def read_sink(isolation: str, expect: int) -> list[bytes]:
        c = clients.consumer(broker.bootstrap, **{"isolation.level": isolation, "group.id": f"r-{isolation}"})
        got: list[bytes] = []
        try:
            c.assign([TopicPartition(sink, 0, OFFSET_BEGINNING)])
            deadline = time.monotonic() + 60
            idle_since = time.monotonic()
            while time.monotonic() < deadline and (len(got) < expect or time.monotonic() - idle_since < 3):
                msgs = [m for m in c.consume(num_messages=1000, timeout=0.5) if m.error() is None]
                got.extend(m.value() for m in msgs)
                if msgs:
                    idle_since = time.monotonic()
        finally:
            c.close()
        return got

    assert read_sink("read_committed", len(values)) == [v.upper() for v in values], (
        "read_committed must see every committed record once, in order, and no aborted one")
    # abortTransaction drops batches not sent yet, so only some aborted records reach the log.
    everything = read_sink("read_uncommitted", len(values))
    assert len(everything) >= len(values) and set(everything) >= {v.upper() for v in values}


def test_kafka_transactions_cli(broker, topic_name, java_classpath):
    import clients

    clients.create_topic(broker.bootstrap, topic_name, 2)
    txn_id = f"cli-{topic_name}"
    p = clients.producer(broker.bootstrap, **{"transactional.id": txn_id})
    p.init_transactions(30)
    p.begin_transaction()
    p.produce(topic_name, value=b"open", partition=1)
    p.flush(30)
    b = ["--bootstrap-server", broker.bootstrap]
    listed = run_ok(java_classpath, TRANSACTIONS_COMMAND, *b, "list")
    assert re.search(rf"{re.escape(txn_id)}\s+\d+\s+\d+\s+Ongoing", listed), listed
    described = run_ok(java_classpath, TRANSACTIONS_COMMAND, *b, "describe", "--transactional-id", txn_id)
    assert "Ongoing" in described and f"{topic_name}-1" in described, described
    p.commit_transaction(30)
    listed = run_ok(java_classpath, TRANSACTIONS_COMMAND, *b, "list")
    assert re.search(rf"{re.escape(txn_id)}\s+\d+\s+\d+\s+CompleteCommit", listed), listed
