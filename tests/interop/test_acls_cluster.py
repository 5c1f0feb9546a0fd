"""Issue 20 (ACLs are the cluster's): three nodes with `--authorizer acl`. `kafka-acls` through node 1 grants Write
on a topic whose three partitions are led by nodes 1, 2 and 3; a producer bootstrapped through node 2 alone then
writes to every partition, so each node's authorizer allowed it, which only happens if the grant reached them
through the metadata log. `kafka-acls --remove` through node 3 takes effect on node 1, and the ACLs survive a
restart of the whole cluster.

Clients are User:ANONYMOUS on the PLAINTEXT listener (SASL clients of a cluster are test_security_cluster.py's).
ANONYMOUS gets the cluster resource (inter-broker fetches, running
kafka-acls, creating topics) from node 1's `acls.json`, the file an earlier ringbroker kept per broker: moved into
the metadata log at first start, it holds on every node.
"""
from __future__ import annotations

import json
import time
import uuid

import pytest
from confluent_kafka import KafkaError
from confluent_kafka.admin import AdminClient, NewTopic

import clients
import conftest
from test_java_client import java_classpath, log_flags  # noqa: F401

ACL_COMMAND = "org.apache.kafka.tools.AclCommand"
# How long a change may take to reach a broker (it is answered once the forwarding broker applied it).
PROPAGATION_S = 20


def produce_errors(cluster, bootstrap: str, topic: str) -> dict[int, int | None]:
    """Per partition 0..2, the error code of one record produced through `bootstrap` alone (None: delivered)."""
    with cluster.hosts.in_hub():
        producer = clients.producer(bootstrap, **{"message.timeout.ms": 10000})
        errors: dict[int, int | None] = {}

        def report(err, msg):
            errors[msg.partition()] = None if err is None else err.code()

        for partition in range(3):
            producer.produce(topic, b"v", partition=partition, on_delivery=report)
        producer.flush(30)
    return errors


def eventually(cluster, bootstrap: str, topic: str, wanted: dict[int, int | None]) -> None:
    deadline = time.monotonic() + PROPAGATION_S
    got = produce_errors(cluster, bootstrap, topic)
    while got != wanted and time.monotonic() < deadline:
        time.sleep(0.5)
        got = produce_errors(cluster, bootstrap, topic)
    assert got == wanted, f"producing through {bootstrap}: {got}, wanted {wanted}"


def kafka_acls(cluster, classpath: str, node, *args: str) -> str:
    return cluster.run_in_hub(["java", "-Xmx512m", *log_flags(), "-cp", classpath, ACL_COMMAND,
                               "--bootstrap-server", node.bootstrap, *args], f"kafka-acls {' '.join(args)}")


@pytest.mark.timeout(240)
def test_acls_made_through_one_node_hold_on_every_node_and_survive_a_restart(tmp_path, java_classpath):
    from cluster_helpers import Cluster
    if not conftest.BROKER_BIN or conftest.EXTERNAL_BOOTSTRAP or conftest.REFERENCE_KAFKA:
        pytest.skip("starts its own ringbroker nodes (RINGBROKER_BIN)")
    topic = f"orders-{uuid.uuid4().hex[:8]}"
    cluster_acl = {"resource_type": "CLUSTER", "resource_name": "kafka-cluster", "pattern_type": "LITERAL",
                   "principal": "User:ANONYMOUS", "host": "*", "operation": "ALL", "permission": "ALLOW"}
    (tmp_path / "data-1").mkdir()
    (tmp_path / "data-1" / "acls.json").write_text(json.dumps({"version": 1, "acls": [cluster_acl]}))
    cluster = Cluster(conftest.BROKER_BIN, tmp_path, extra_args=["--authorizer", "acl"])
    one, two, three = cluster.nodes
    everywhere = {0: None, 1: None, 2: None}
    denied = KafkaError.TOPIC_AUTHORIZATION_FAILED
    try:
        cluster.start()
        with cluster.hosts.in_hub():
            admin = AdminClient({"bootstrap.servers": two.bootstrap})
            deadline = time.monotonic() + PROPAGATION_S
            while True:  # until node 1's acls.json is in the metadata log
                try:
                    new = NewTopic(topic, num_partitions=3, replica_assignment=[[1], [2], [3]])
                    admin.create_topics([new])[topic].result(30)
                    break
                except Exception:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.5)
        assert (tmp_path / "data-1" / "acls.json.migrated").exists()
        eventually(cluster, two.bootstrap, topic, {0: denied, 1: denied, 2: denied})
        kafka_acls(cluster, java_classpath, one, "--add", "--allow-principal", "User:ANONYMOUS",
                   "--operation", "Write", "--topic", topic)
        # Answered once node 1 applied it; the others follow the log.
        eventually(cluster, two.bootstrap, topic, everywhere)
        listed = kafka_acls(cluster, java_classpath, three, "--list", "--topic", topic)
        assert "principal=User:ANONYMOUS, host=*, operation=WRITE, permissionType=ALLOW" in listed, listed

        for node in cluster.nodes:
            node.stop()
        cluster.start()
        eventually(cluster, three.bootstrap, topic, everywhere)

        kafka_acls(cluster, java_classpath, three, "--remove", "--force", "--allow-principal", "User:ANONYMOUS",
                   "--operation", "Write", "--topic", topic)
        eventually(cluster, one.bootstrap, topic, {0: denied, 1: denied, 2: denied})
    except Exception:
        print(cluster.logs())
        raise
    finally:
        cluster.close()
