"""Issue 17: three ringbroker nodes (broker + controller each, one shard) behind one Raft metadata quorum, on test
hosts made of network namespaces (netns.py; loopback ports where namespaces cannot be made, which the output says).

- kcat, librdkafka (confluent-kafka) and the Java AdminClient see three brokers; a 12-partition RF 1 topic puts
  4 leaders on each; records produced through all three land where murmur2 says and read back exactly;
- kill -9 of the active controller: another is elected and CreateTopics through any broker works again (the
  time is printed); the killed node restarts and rejoins;
- a broker cut off the network for 15 s is fenced (its partitions leaderless) and unfenced after the heal, while
  the others keep serving;
- bad input: a replication factor above what the cluster can give (INVALID_REPLICATION_FACTOR), a second process
  with a node id already live, a data directory of another cluster, a voter set that disagrees with the data
  directory, a controller quorum that does not answer.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

import clients
from cluster_helpers import Cluster, ClusterNode
from murmur2 import partition_for_key
from test_java_client import java_classpath, log_flags  # noqa: F401 (a fixture, and a helper)

BINARY = os.environ.get("RINGBROKER_BIN", "")
# The broker session timeout (Kafka's default, ours too): a silent broker is fenced after it.
SESSION_TIMEOUT_S = 9.0

pytestmark = pytest.mark.skipif(
    not BINARY or os.environ.get("INTEROP_BROKER") == "kafka" or os.environ.get("RINGBROKER_BOOTSTRAP"),
    reason="cluster tests start their own ringbroker nodes (RINGBROKER_BIN)",
)


@pytest.fixture
def cluster(tmp_path):
    c = Cluster(BINARY, tmp_path)
    print(f"test hosts: {c.hosts.mode}")
    try:
        c.start()
        yield c
    except Exception:
        print(c.logs())
        raise
    finally:
        c.close()


def admin(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap, **clients.COMMON})


def metadata(c: Cluster, via: ClusterNode | None = None, topic: str | None = None):
    """The Metadata a client of `via` (default: the first running node) sees."""
    node = via or next(n for n in c.nodes if n.running())
    with c.hosts.in_hub():
        return admin(node.bootstrap).list_topics(topic, timeout=10)


def leaders_by_broker(md, topic: str) -> dict[int, int]:
    counts: dict[int, int] = {}
    for p in md.topics[topic].partitions.values():
        counts[p.leader] = counts.get(p.leader, 0) + 1
    return counts


def wait_until(condition, timeout: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"{what} within {timeout} s (last: {last!r})")


def create(c: Cluster, via: ClusterNode, name: str, partitions: int, replication_factor: int = 1,
           timeout: float = 30.0) -> None:
    with c.hosts.in_hub():
        client = admin(via.bootstrap)  # kept alive until the answer came
        futures = client.create_topics(
            [NewTopic(name, num_partitions=partitions, replication_factor=replication_factor)]
        )
        futures[name].result(timeout=timeout)


# ----------------------------------------------------------------------------------------- formation and clients
@pytest.mark.timeout(300)
def test_three_brokers_serve_one_cluster_with_real_clients(cluster, topic_name):
    # kcat -L through each broker lists all three.
    for node in cluster.nodes:
        out = subprocess.run(cluster.hosts.hub_cmd(["kcat", "-L", "-b", node.bootstrap]),
                             capture_output=True, text=True, timeout=30, check=True).stdout
        assert " 3 brokers:" in out, out
        for other in cluster.nodes:
            assert f"broker {other.node_id} at {other.bootstrap}" in out, out

    # A 12-partition topic with RF 1, created through broker 2: four leaders on each broker.
    create(cluster, cluster.node(2), topic_name, 12)
    md = metadata(cluster, topic=topic_name)
    assert sorted(md.brokers) == [1, 2, 3]
    assert leaders_by_broker(md, topic_name) == {1: 4, 2: 4, 3: 4}
    for p in md.topics[topic_name].partitions.values():
        assert p.replicas == [p.leader] and p.isrs == [p.leader]

    # confluent-kafka with the murmur2 partitioner (the Java default): every key lands where murmur2 says.
    records = [(f"key-{i}".encode(), f"value-{i}".encode()) for i in range(3000)]
    with cluster.hosts.in_hub():
        p = clients.producer(cluster.bootstrap, partitioner="murmur2_random")
        delivered = clients.produce_all(p, topic_name, records)
        assert len(delivered) == len(records)
        for d in delivered:
            assert d.partition == partition_for_key(d.key, 12), d
        consumed, high = clients.consume_all(cluster.bootstrap, topic_name, 12)
    got = sorted((k, v) for part in consumed.values() for _, k, v in part)
    assert got == sorted(records)
    assert sum(high.values()) == len(records)

    # kcat produces and consumes through the cluster too (keyed: the same murmur2 placement).
    lines = "".join(f"kcat-{i}:line-{i}\n" for i in range(200))
    subprocess.run(cluster.hosts.hub_cmd(["kcat", "-P", "-b", cluster.bootstrap, "-t", topic_name, "-K:",
                                          "-X", "partitioner=murmur2_random"]),
                   input=lines, text=True, timeout=60, check=True)
    out = subprocess.run(cluster.hosts.hub_cmd(["kcat", "-C", "-b", cluster.bootstrap, "-t", topic_name, "-e",
                                                "-o", "beginning", "-f", "%k:%s\\n"]),
                         capture_output=True, text=True, timeout=60, check=True).stdout
    assert sum(1 for line in out.splitlines() if line.startswith("kcat-")) == 200
    assert len(out.splitlines()) == len(records) + 200


@pytest.mark.timeout(300)
def test_java_admin_client_and_kafka_cli_see_the_cluster(cluster, topic_name, java_classpath):
    bootstrap = cluster.node(3).bootstrap
    create(cluster, cluster.node(1), topic_name, 6)
    describe = subprocess.run(
        cluster.hosts.hub_cmd(["java", "-Xmx256m", *log_flags(), "-cp", java_classpath,
                               "org.apache.kafka.tools.TopicCommand", "--bootstrap-server", bootstrap,
                               "--describe", "--topic", topic_name]),
        capture_output=True, text=True, timeout=120)
    assert describe.returncode == 0, describe.stderr
    rows = [line for line in describe.stdout.splitlines() if "Partition:" in line]
    assert len(rows) == 6, describe.stdout
    leaders = {line.split("Leader:")[1].split()[0] for line in rows}
    assert leaders == {"1", "2", "3"}, describe.stdout
    assert all("Replicas:" in line and "Isr:" in line for line in rows)
    versions = subprocess.run(
        cluster.hosts.hub_cmd(["java", "-Xmx256m", *log_flags(), "-cp", java_classpath,
                               "org.apache.kafka.tools.BrokerApiVersionsCommand", "--bootstrap-server", bootstrap]),
        capture_output=True, text=True, timeout=120)
    assert versions.returncode == 0, versions.stderr
    for node in cluster.nodes:
        assert f"{node.bootstrap} (id: {node.node_id} rack: null" in versions.stdout, versions.stdout


# ----------------------------------------------------------------------------------------- controller failover
def takeover_time(node: ClusterNode, after: float) -> float:
    """When `node` logged taking over as the active controller, the first time after `after` (epoch s)."""
    from datetime import datetime

    for line in node.log_since_start().splitlines():
        if "this node is the active controller" in line:
            stamp = datetime.fromisoformat(line.split(" ", 1)[0].replace("Z", "+00:00")).timestamp()
            if stamp >= after:
                return stamp
    raise AssertionError(f"node {node.node_id} did not log taking over:\n{node.log_tail()}")


@pytest.mark.timeout(300)
def test_killing_the_active_controller_elects_another(cluster, topic_name):
    old = cluster.active_controller()
    survivors = [n for n in cluster.nodes if n is not old]
    old.kill9()
    killed_at = time.monotonic()
    killed_wall = time.time()

    def created() -> bool:
        try:
            create(cluster, survivors[0], f"{topic_name}-after", 2, timeout=5)
            return True
        except KafkaException as e:
            code = e.args[0].code()
            if code == KafkaError.TOPIC_ALREADY_EXISTS:
                return True
            return False

    wait_until(created, 30, "CreateTopics through a surviving broker succeeds")
    elapsed = time.monotonic() - killed_at
    new = cluster.active_controller()
    assert new is not old and new.running()
    took_over = takeover_time(new, after=killed_wall)
    print(f"controller failover: node {old.node_id} killed, node {new.node_id} took over after "
          f"{took_over - killed_wall:.2f} s; CreateTopics worked again after {elapsed:.2f} s")

    # The old controller restarts and rejoins: listed again, and a topic created through it works.
    old.start()
    wait_until(lambda: sorted(metadata(cluster, via=old).brokers) == [1, 2, 3], 30,
               "the restarted node is listed again")
    create(cluster, old, f"{topic_name}-via-old", 3)
    md = metadata(cluster, via=survivors[0], topic=f"{topic_name}-via-old")
    assert len(md.topics[f"{topic_name}-via-old"].partitions) == 3


# ----------------------------------------------------------------------------------------- network cut
@pytest.mark.timeout(300)
def test_a_broker_cut_off_is_fenced_then_unfenced(cluster, topic_name):
    if not cluster.hosts.can_cut:
        pytest.skip("loopback hosts cannot be cut off the network")
    create(cluster, cluster.node(1), topic_name, 6)
    victim = cluster.node(3)
    cluster.hosts.cut(victim.host)
    cut_at = time.monotonic()
    try:
        def fenced():
            md = metadata(cluster, via=cluster.node(1), topic=topic_name)
            leaders = {p.leader for p in md.topics[topic_name].partitions.values()}
            return 3 not in md.brokers and 3 not in leaders
        wait_until(fenced, SESSION_TIMEOUT_S + 10, "the cut-off broker is fenced")
        print(f"fenced {time.monotonic() - cut_at:.1f} s after the cut")
        md = metadata(cluster, via=cluster.node(2), topic=topic_name)
        offline = [p for p in md.topics[topic_name].partitions.values() if p.leader == -1]
        assert len(offline) == 2, "the victim's two partitions have no leader (RF 1: nowhere else to go)"
        # The others keep serving their partitions.
        live_partitions = [p.id for p in md.topics[topic_name].partitions.values() if p.leader in (1, 2)]
        with cluster.hosts.in_hub():
            p = clients.producer(cluster.node(1).bootstrap)
            for part in live_partitions:
                p.produce(topic_name, value=b"during the cut", partition=part)
            assert p.flush(30) == 0
        remaining = 15 - (time.monotonic() - cut_at)
        if remaining > 0:
            time.sleep(remaining)
    finally:
        cluster.hosts.heal(victim.host)
    healed_at = time.monotonic()

    def unfenced():
        md = metadata(cluster, via=cluster.node(1), topic=topic_name)
        return 3 in md.brokers and all(p.leader != -1 for p in md.topics[topic_name].partitions.values())
    wait_until(unfenced, 30, "the healed broker is unfenced and leads again")
    print(f"unfenced {time.monotonic() - healed_at:.1f} s after the heal")
    assert leaders_by_broker(metadata(cluster, topic=topic_name), topic_name) == {1: 2, 2: 2, 3: 2}


# ----------------------------------------------------------------------------------------- bad input
@pytest.mark.timeout(300)
def test_replication_factor_beyond_the_cluster_is_refused(cluster, topic_name):
    with pytest.raises(KafkaException) as refused:
        create(cluster, cluster.node(1), topic_name, 3, replication_factor=4)
    assert refused.value.args[0].code() == KafkaError.INVALID_REPLICATION_FACTOR
    md = metadata(cluster)
    assert topic_name not in md.topics


def run_to_exit(cmd: list[str], timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def broker_only(c: Cluster, host: int, node_id: int, data_dir: Path, *extra: str) -> list[str]:
    """The command of a broker-only node (no controller role) on spare host `host`."""
    address = c.hosts.address(host)
    port = c.hosts.port(host, 9092)
    return c.hosts.host_cmd(host, [
        BINARY, "serve", "--node-id", str(node_id), "--process-roles", "broker",
        "--controller-quorum-voters", c.voters, "--listen", f"{address}:{port}",
        "--data-dir", str(data_dir), "--shards", "1", "--metrics-listen", "none", *extra])


@pytest.mark.timeout(300)
def test_a_broker_only_node_joins_and_bad_starts_are_refused(tmp_path, topic_name):
    c = Cluster(BINARY, tmp_path, spare_hosts=2)
    print(f"test hosts: {c.hosts.mode}")
    extra = None
    try:
        c.start()
        # A broker-only node (not a voter: it follows the metadata log from the active controller).
        log = open(tmp_path / "node-4.log", "wb")
        extra = subprocess.Popen(broker_only(c, 4, 4, tmp_path / "data-4"), stdout=log, stderr=subprocess.STDOUT)
        wait_until(lambda: 4 in metadata(c).brokers, 30, "the broker-only node is listed")
        create(c, c.node(1), topic_name, 8)
        md = metadata(c, topic=topic_name)
        assert leaders_by_broker(md, topic_name) == {1: 2, 2: 2, 3: 2, 4: 2}

        # CreateTopics answers once the broker it was sent to has the topic; the broker-only node follows the
        # metadata log from the controller and may be a moment behind (a loaded machine showed it).
        def node_4_has_it() -> bool:
            with c.hosts.in_hub():
                md4 = admin(f"{c.hosts.address(4)}:{c.hosts.port(4, 9092)}").list_topics(topic_name, timeout=10)
            topic = md4.topics.get(topic_name)
            return topic is not None and topic.error is None and len(topic.partitions) == 8

        wait_until(node_4_has_it, 30, "the broker-only node has the new topic")
        with c.hosts.in_hub():
            p = clients.producer(c.bootstrap)
            clients.produce_all(p, topic_name, [(None, f"v{i}".encode()) for i in range(400)])
            consumed, _ = clients.consume_all(c.bootstrap, topic_name, 8)
        assert sum(len(v) for v in consumed.values()) == 400

        # A second process claiming node id 4 while the first one heartbeats.
        duplicate = run_to_exit(broker_only(c, 5, 4, tmp_path / "duplicate"), 120)
        assert duplicate.returncode != 0
        assert "node id 4 is registered by another live broker" in duplicate.stderr + duplicate.stdout

        # A voter started without the controller role.
        no_role = run_to_exit(broker_only(c, 5, 2, tmp_path / "no-role"), 30)
        assert no_role.returncode != 0 and "is a voter but has no controller role" in no_role.stderr

        # A data directory that belongs to another cluster.
        foreign = tmp_path / "foreign"
        foreign.mkdir()
        (foreign / "meta.properties").write_text("version=1\ncluster.id=another-cluster\nnode.id=7\n")
        other = run_to_exit(broker_only(c, 5, 7, foreign), 120)
        assert other.returncode != 0
        assert "another-cluster" in other.stderr + other.stdout

        # A voter set that disagrees with the one the data directory's quorum log holds.
        node = c.node(1)
        node.stop()
        changed = node.command()
        voters_at = changed.index("--controller-quorum-voters") + 1
        changed[voters_at] = ",".join(c.voters.split(",")[:2])
        disagree = run_to_exit(changed, 60)
        assert disagree.returncode != 0
        assert "voter" in (disagree.stderr + disagree.stdout).lower()
        node.start()

        # A broker whose controllers do not answer: start-up gives up and names the voters it tried.
        address = c.hosts.address(5)
        nowhere = f"1@{address}:1,2@{address}:2,3@{address}:3"
        lonely_cmd = broker_only(c, 5, 9, tmp_path / "lonely", "--initial-broker-registration-timeout-ms", "3000")
        lonely_cmd[lonely_cmd.index("--controller-quorum-voters") + 1] = nowhere
        lonely = run_to_exit(lonely_cmd, 60)
        assert lonely.returncode != 0
        text = lonely.stderr + lonely.stdout
        assert "could not reach the controller quorum" in text and f"1@{address}:1" in text, text
    except Exception:
        print(c.logs())
        raise
    finally:
        if extra is not None:
            extra.kill()
            extra.wait()
        c.close()
