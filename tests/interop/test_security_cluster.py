"""Issue 20 (SASL/TLS in a cluster): three nodes, each with a PLAINTEXT listener (the primary one, which the brokers
use among themselves) and a SASL_SSL listener (SCRAM-SHA-512, with a certificate made here for the three hosts'
addresses), every node started with the same `--add-scram` admin.

Each broker registers both listeners, so Metadata through a SASL_SSL port must list every broker at its SASL_SSL
port (and through a PLAINTEXT port at its PLAINTEXT port): confluent-kafka bootstrapped from one broker over SASL_SSL
then produces to and consumes from a topic whose three partitions are led by the three brokers. SCRAM credentials
live in the cluster metadata log: a user made with Kafka's `kafka-configs` through node 1 authenticates on every
node (its producer, bootstrapped from node 3 alone, writes to partitions led by all three), a wrong password fails
on every node, and the user still authenticates after the whole cluster restarted.
"""
from __future__ import annotations

import shutil
import time
import uuid

import pytest
from confluent_kafka import KafkaError
from confluent_kafka.admin import AdminClient, NewTopic

import clients
import conftest
from test_java_client import java_classpath, log_flags  # noqa: F401
from test_security import advertised_through as advertised
from test_security import first_error, make_ca, make_signed

# The SASL_SSL listener's base port on every host (netns.py adds an offset per host in loopback mode).
SASL_SSL_PORT = 9094
ADMIN_USER = "admin"
ADMIN_PASSWORD = "admin-secret"
CONFIG_COMMAND = "org.apache.kafka.tools.ConfigCommand"
RECORDS_PER_PARTITION = 100
# How long a new topic may take to have its three leaders.
LEADERS_WAIT_S = 30


def sasl_ssl_address(node) -> str:
    return f"{node.address}:{node.hosts.port(node.host, SASL_SSL_PORT)}"


def client_config(certs, user: str = ADMIN_USER, password: str = ADMIN_PASSWORD) -> dict:
    return {"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": user,
            "sasl.password": password, "ssl.ca.location": str(certs / "ca.pem")}


def wait_for_leaders(admin: AdminClient, topic: str, wanted: dict[int, int]) -> None:
    deadline = time.monotonic() + LEADERS_WAIT_S
    while True:
        partitions = admin.list_topics(topic, timeout=30).topics[topic].partitions
        leaders = {p: m.leader for p, m in partitions.items()}
        if leaders == wanted or time.monotonic() > deadline:
            assert leaders == wanted, f"leaders of {topic}: {leaders}"
            return
        time.sleep(0.5)


def produce_to_each_partition(bootstrap: str, config: dict, topic: str, tag: str) -> list[bytes]:
    """RECORDS_PER_PARTITION records to each of partitions 0..2 through `bootstrap`; fails on any delivery error."""
    producer = clients.producer(bootstrap, **config)
    values = []
    for partition in range(3):
        sent = [(f"k{i}".encode(), f"{tag}-{partition}-{i}".encode()) for i in range(RECORDS_PER_PARTITION)]
        clients.produce_all(producer, topic, sent, partition=partition)
        values += [v for _, v in sent]
    return values


def consume(bootstrap: str, config: dict, topic: str, count: int) -> list[bytes]:
    """`count` records of `topic` read through a new consumer group (FindCoordinator, JoinGroup... over SASL_SSL)."""
    consumer = clients.consumer(bootstrap, **{**config, "group.id": f"g-{uuid.uuid4().hex[:8]}"})
    got: list[bytes] = []
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + 60
        while len(got) < count and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=1000, timeout=0.5):
                assert msg.error() is None, msg.error()
                got.append(msg.value())
    finally:
        consumer.close()
    return got


def kafka_configs(cluster, classpath: str, bootstrap: str, properties, *args: str) -> str:
    return cluster.run_in_hub(["java", "-Xmx512m", *log_flags(), "-cp", classpath, CONFIG_COMMAND,
                               "--bootstrap-server", bootstrap, "--command-config", str(properties), *args],
                              f"kafka-configs {' '.join(args)}")


@pytest.mark.timeout(420)
def test_sasl_ssl_clients_of_a_cluster_and_scram_users_in_the_metadata_log(tmp_path, java_classpath):
    from cluster_helpers import Cluster
    if not conftest.BROKER_BIN or conftest.EXTERNAL_BOOTSTRAP or conftest.REFERENCE_KAFKA:
        pytest.skip("starts its own ringbroker nodes (RINGBROKER_BIN)")
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl CLI to make certificates")
    certs = tmp_path / "certs"
    certs.mkdir()
    make_ca(certs, "ca")
    make_signed(certs, "server", "ca", "/CN=ringbroker",
                san="IP:10.90.0.1,IP:10.90.0.2,IP:10.90.0.3,IP:127.0.0.1,DNS:localhost")
    cluster = Cluster(conftest.BROKER_BIN, tmp_path)
    for node in cluster.nodes:
        node.extra_args = [
            "--listener", f"SASL_SSL://{sasl_ssl_address(node)}",
            "--ssl-cert", str(certs / "server.pem"), "--ssl-key", str(certs / "server.key"),
            "--sasl-mechanisms", "SCRAM-SHA-512",
            "--add-scram", f"SCRAM-SHA-512=[name={ADMIN_USER},password={ADMIN_PASSWORD}]",
        ]
    one, two, three = cluster.nodes
    admin_config = client_config(certs)
    topic = f"secure-{uuid.uuid4().hex[:8]}"
    user, password = f"carol-{uuid.uuid4().hex[:6]}", "carol-secret"
    carol = client_config(certs, user, password)
    properties = tmp_path / "admin.properties"
    properties.write_text(
        "security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\n"
        "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
        f"username=\"{ADMIN_USER}\" password=\"{ADMIN_PASSWORD}\";\n"
        f"ssl.truststore.type=PEM\nssl.truststore.location={certs / 'ca.pem'}\n"
    )
    try:
        cluster.start()
        with cluster.hosts.in_hub():
            # Each client is given every broker at the listener it came in on.
            assert advertised(sasl_ssl_address(one), admin_config) == {sasl_ssl_address(n) for n in cluster.nodes}
            assert advertised(two.bootstrap, {}) == {n.bootstrap for n in cluster.nodes}

            admin = AdminClient({"bootstrap.servers": sasl_ssl_address(one), **admin_config})
            new = NewTopic(topic, num_partitions=3, replica_assignment=[[1, 2, 3], [2, 3, 1], [3, 1, 2]])
            admin.create_topics([new])[topic].result(30)
            wait_for_leaders(admin, topic, {0: 1, 1: 2, 2: 3})
            sent = produce_to_each_partition(sasl_ssl_address(one), admin_config, topic, "admin")
            assert sorted(consume(sasl_ssl_address(one), admin_config, topic, len(sent))) == sorted(sent)

        # A user made through node 1 is in the metadata log: it authenticates on all three.
        out = kafka_configs(cluster, java_classpath, sasl_ssl_address(one), properties, "--alter", "--add-config",
                            f"SCRAM-SHA-512=[password={password}]", "--entity-type", "users", "--entity-name", user)
        assert f"Completed updating config for user {user}" in out, out
        with cluster.hosts.in_hub():
            produce_to_each_partition(sasl_ssl_address(three), carol, topic, "carol")
            for node in cluster.nodes:
                assert advertised(sasl_ssl_address(node), carol), f"{user} on node {node.node_id}"
                wrong = first_error(sasl_ssl_address(node), client_config(certs, user, "wrong-password"))
                assert wrong.code() == KafkaError._AUTHENTICATION, (node.node_id, wrong)
        described = kafka_configs(cluster, java_classpath, sasl_ssl_address(two), properties, "--describe",
                                  "--entity-type", "users", "--entity-name", user)
        assert f"SCRAM credential configs for user-principal '{user}' are SCRAM-SHA-512=iterations=4096" in described

        for node in cluster.nodes:
            node.stop()
        cluster.start()
        with cluster.hosts.in_hub():
            total = 3 * RECORDS_PER_PARTITION
            got = consume(sasl_ssl_address(two), carol, topic, 2 * total)
            assert len(got) == 2 * total, f"{len(got)} records after the restart"
            wrong = first_error(sasl_ssl_address(three), client_config(certs, user, "wrong-password"))
            assert wrong.code() == KafkaError._AUTHENTICATION, wrong
        for node in cluster.nodes:
            assert not (node.data_dir / "scram-credentials.json").exists()
    except Exception:
        print(cluster.logs())
        raise
    finally:
        cluster.close()
