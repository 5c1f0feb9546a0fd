"""Issue 20 (SASL/TLS in a cluster): three nodes, each with a PLAINTEXT listener (the primary one, which the brokers
use among themselves) and a SASL_SSL listener (SCRAM-SHA-512, with a certificate made here for the three hosts'
addresses), every node started with the same `--add-scram` admin.

Each broker registers both listeners, so Metadata through a SASL_SSL port must list every broker at its SASL_SSL
port (and through a PLAINTEXT port at its PLAINTEXT port): confluent-kafka bootstrapped from one broker over SASL_SSL
then produces to and consumes from a topic whose three partitions are led by the three brokers. SCRAM credentials
live in the cluster metadata log: a user made with Kafka's `kafka-configs` through node 1 authenticates on every
node (its producer, bootstrapped from node 3 alone, writes to partitions led by all three), a wrong password fails
on every node, and the user still authenticates after the whole cluster restarted.

Inter-broker security (`inter.broker.listener.name`): a cluster whose nodes have only a SASL_SSL listener (and the
controller listener), with the ACL authorizer on. The brokers fetch from each other over TLS (checking each other's
certificate against `inter.broker.ssl.ca.file`) with SCRAM-SHA-512 as User:broker, which holds only ClusterAction on
the cluster. An RF 3 topic takes acks=all records from confluent-kafka over SASL_SSL with every replica in the ISR;
after the leader is killed, a new leader serves every acknowledged record. A node given the wrong inter-broker
password cannot fetch: it leaves the ISR, logs the authentication failure and keeps running.
"""
from __future__ import annotations

import contextlib
import shutil
import time
import uuid

import pytest
from confluent_kafka import OFFSET_BEGINNING, KafkaError, TopicPartition
from confluent_kafka.admin import (AclBinding, AclOperation, AclPermissionType, AdminClient, NewTopic,
                                   ResourcePatternType, ResourceType)

import clients
import conftest
from test_java_client import java_classpath, log_flags  # noqa: F401
from test_security import advertised_through as advertised
from test_security import first_error, make_ca, make_signed
from cluster_helpers import reporting

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


def cluster_with_certificates(tmp_path):
    """A (not yet started) three-node cluster, and a CA with a server certificate for the three hosts' addresses."""
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
    return Cluster(conftest.BROKER_BIN, tmp_path), certs


@pytest.mark.timeout(420)
def test_sasl_ssl_clients_of_a_cluster_and_scram_users_in_the_metadata_log(tmp_path, java_classpath):
    cluster, certs = cluster_with_certificates(tmp_path)
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


# ------------------------------------------------------------------------------------- inter-broker security

BROKER_USER = "broker"
BROKER_PASSWORD = "broker-secret"
# Short, so that a follower that cannot fetch leaves the ISR within seconds (default 30 s).
REPLICA_LAG_TIME_MAX_MS = 3000
INTER_BROKER_RECORDS = 2000


def sasl_ssl_only_cluster(tmp_path, broker_passwords: dict[int, str]):
    """Three nodes with one client listener each, SASL_SSL, which is also the inter-broker listener; the ACL
    authorizer with User:admin as the only super user. `broker_passwords` gives a node another inter-broker
    password than User:broker's."""
    cluster, certs = cluster_with_certificates(tmp_path)
    users = f"SCRAM-SHA-512=[name={ADMIN_USER},password={ADMIN_PASSWORD}];" \
            f"SCRAM-SHA-512=[name={BROKER_USER},password={BROKER_PASSWORD}]"
    for node in cluster.nodes:
        node.listen_args = ["--listener", f"SASL_SSL://{sasl_ssl_address(node)}"]
        node.extra_args = [
            "--ssl-cert", str(certs / "server.pem"), "--ssl-key", str(certs / "server.key"),
            "--sasl-mechanisms", "SCRAM-SHA-512", "--add-scram", users,
            "--authorizer", "acl", "--super-users", f"User:{ADMIN_USER}",
            "--inter-broker-listener-name", "SASL_SSL",
            "--inter-broker-ssl-ca-file", str(certs / "ca.pem"),
            "--sasl-mechanism-inter-broker-protocol", "SCRAM-SHA-512",
            "--inter-broker-sasl-username", BROKER_USER,
            "--inter-broker-sasl-password", broker_passwords.get(node.node_id, BROKER_PASSWORD),
            "--replica-lag-time-max-ms", str(REPLICA_LAG_TIME_MAX_MS),
        ]
    return cluster, certs



@contextlib.contextmanager
def started(cluster):
    """The cluster, started; its logs printed if the body fails; closed in any case."""
    with reporting(cluster):
        cluster.start()
        yield cluster


def grant_cluster_action_to_brokers(admin: AdminClient, principal: str = f"User:{BROKER_USER}") -> None:
    """The brokers' principal may do what brokers do to each other (replica fetches, transaction markers), nothing
    else."""
    binding = AclBinding(ResourceType.BROKER, "kafka-cluster", ResourcePatternType.LITERAL, principal,
                         "*", AclOperation.CLUSTER_ACTION, AclPermissionType.ALLOW)
    for future in admin.create_acls([binding]).values():
        future.result(30)


def partition_state(admin: AdminClient, topic: str) -> tuple[int, list[int]]:
    partition = admin.list_topics(topic, timeout=30).topics[topic].partitions[0]
    return partition.leader, sorted(partition.isrs)


def wait_for_state(admin: AdminClient, topic: str, wanted, what: str, timeout_s: float = 30) -> tuple[int, list[int]]:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            state = partition_state(admin, topic)
        except Exception as e:  # noqa: BLE001 - a broker just killed; ask again
            state = (None, repr(e))
        if wanted(state):
            return state
        assert time.monotonic() < deadline, f"{what}: {topic} is {state}"
        time.sleep(0.3)


def read_partition(bootstrap: str, config: dict, topic: str, count: int) -> list[bytes]:
    """`count` records of partition 0 from its start (assigned, no group)."""
    consumer = clients.consumer(bootstrap, **{**config, "group.id": f"r-{uuid.uuid4().hex[:8]}"})
    got: list[bytes] = []
    try:
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        deadline = time.monotonic() + 60
        while len(got) < count and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=1000, timeout=0.5):
                if msg.error() is None:
                    got.append(msg.value())
    finally:
        consumer.close()
    return got


@pytest.mark.timeout(300)
def test_a_sasl_ssl_only_cluster_replicates_over_tls_with_scram(tmp_path):
    cluster, certs = sasl_ssl_only_cluster(tmp_path, {})
    one, two, three = cluster.nodes
    config = client_config(certs)
    topic = f"ib-{uuid.uuid4().hex[:8]}"
    with started(cluster):
        with cluster.hosts.in_hub():
            # Only the SASL_SSL listener is registered and advertised.
            assert advertised(sasl_ssl_address(one), config) == {sasl_ssl_address(n) for n in cluster.nodes}
            admin = AdminClient({"bootstrap.servers": sasl_ssl_address(one), **config})
            grant_cluster_action_to_brokers(admin)
            admin.create_topics([NewTopic(topic, num_partitions=1, replica_assignment=[[1, 2, 3]],
                                          config={"min.insync.replicas": "3"})])[topic].result(30)
            wait_for_state(admin, topic, lambda s: s == (1, [1, 2, 3]), "node 1 leads, every replica in sync")
            # min.insync.replicas=3: each acknowledgement needs both followers to have fetched the record.
            producer = clients.producer(sasl_ssl_address(two), **config)
            sent = [(f"k{i}".encode(), f"v{i}".encode()) for i in range(INTER_BROKER_RECORDS)]
            delivered = clients.produce_all(producer, topic, sent, partition=0)
            assert len(delivered) == INTER_BROKER_RECORDS
            # The followers stay in sync well past replica.lag.time.max.ms.
            time.sleep(2 * REPLICA_LAG_TIME_MAX_MS / 1000)
            assert partition_state(admin, topic) == (1, [1, 2, 3])

        one.kill9()
        with cluster.hosts.in_hub():
            admin = AdminClient({"bootstrap.servers": sasl_ssl_address(two), **config})
            leader, _ = wait_for_state(admin, topic, lambda s: s[0] in (2, 3), "a new leader after the kill")
            got = read_partition(sasl_ssl_address(cluster.node(leader)), config, topic, INTER_BROKER_RECORDS)
            assert got == [v for _, v in sent], f"{len(got)} of {len(sent)} records from the new leader {leader}"
        for node in (two, three):
            log = node.log_since_start()
            assert "SASL authentication to" not in log and "TLS handshake with" not in log, node.log_tail()


@pytest.mark.timeout(300)
def test_a_wrong_inter_broker_password_keeps_the_follower_out_of_the_isr(tmp_path):
    cluster, certs = sasl_ssl_only_cluster(tmp_path, {3: "not-the-password"})
    three = cluster.node(3)
    config = client_config(certs)
    topic = f"ib-{uuid.uuid4().hex[:8]}"
    with started(cluster):
        with cluster.hosts.in_hub():
            admin = AdminClient({"bootstrap.servers": sasl_ssl_address(cluster.node(1)), **config})
            grant_cluster_action_to_brokers(admin)
            admin.create_topics([NewTopic(topic, num_partitions=1, replica_assignment=[[1, 2, 3]],
                                          config={"min.insync.replicas": "2"})])[topic].result(30)
            # Node 3 cannot fetch: it leaves the ISR after replica.lag.time.max.ms and acks=all goes on without it.
            wait_for_state(admin, topic, lambda s: s == (1, [1, 2]), "node 3 out of the ISR")
            producer = clients.producer(sasl_ssl_address(cluster.node(2)), **config)
            sent = [(f"k{i}".encode(), f"v{i}".encode()) for i in range(200)]
            assert len(clients.produce_all(producer, topic, sent, partition=0)) == len(sent)
            time.sleep(2 * REPLICA_LAG_TIME_MAX_MS / 1000)
            assert partition_state(admin, topic) == (1, [1, 2])
        assert three.running(), three.log_tail()
        log = three.log_since_start()
        assert "SASL authentication to" in log and "invalid credentials" in log, three.log_tail()
        # The leader refused it as any client with a wrong password.
        assert "SASL authentication failed" in cluster.node(1).log_since_start(), cluster.node(1).log_tail()


@pytest.mark.timeout(300)
def test_an_ssl_cluster_with_client_certificates_replicates_as_the_brokers_certificate(tmp_path):
    """mTLS between brokers: the only listener is SSL with `--ssl-client-ca`, so each broker presents its own
    certificate (ssl.cert) to the others, and its principal is that certificate's subject, User:CN=ringbroker,
    which holds only ClusterAction."""
    cluster, certs = cluster_with_certificates(tmp_path)
    make_signed(certs, "admin", "ca", "/CN=admin", ext="extendedKeyUsage=clientAuth")
    for node in cluster.nodes:
        node.listen_args = ["--listener", f"SSL://{sasl_ssl_address(node)}"]
        node.extra_args = [
            "--ssl-cert", str(certs / "server.pem"), "--ssl-key", str(certs / "server.key"),
            "--ssl-client-ca", str(certs / "ca.pem"),
            "--authorizer", "acl", "--super-users", "User:CN=admin",
            "--inter-broker-listener-name", "SSL", "--inter-broker-ssl-ca-file", str(certs / "ca.pem"),
            "--replica-lag-time-max-ms", str(REPLICA_LAG_TIME_MAX_MS),
        ]
    config = {"security.protocol": "SSL", "ssl.ca.location": str(certs / "ca.pem"),
              "ssl.certificate.location": str(certs / "admin.pem"), "ssl.key.location": str(certs / "admin.key")}
    topic = f"ib-{uuid.uuid4().hex[:8]}"
    with started(cluster):
        with cluster.hosts.in_hub():
            admin = AdminClient({"bootstrap.servers": sasl_ssl_address(cluster.node(1)), **config})
            grant_cluster_action_to_brokers(admin, "User:CN=ringbroker")
            admin.create_topics([NewTopic(topic, num_partitions=1, replica_assignment=[[1, 2, 3]],
                                          config={"min.insync.replicas": "3"})])[topic].result(30)
            wait_for_state(admin, topic, lambda s: s == (1, [1, 2, 3]), "node 1 leads, every replica in sync")
            producer = clients.producer(sasl_ssl_address(cluster.node(3)), **config)
            sent = [(f"k{i}".encode(), f"v{i}".encode()) for i in range(500)]
            assert len(clients.produce_all(producer, topic, sent, partition=0)) == len(sent)
            time.sleep(2 * REPLICA_LAG_TIME_MAX_MS / 1000)
            assert partition_state(admin, topic) == (1, [1, 2, 3])


@pytest.mark.timeout(300)
def test_brokers_without_cluster_action_are_refused_until_granted(tmp_path):
    """With the authorizer on and no ACL for User:broker, the leader refuses the followers' requests: they leave the
    ISR and say why; once ClusterAction is granted they catch up and rejoin."""
    cluster, certs = sasl_ssl_only_cluster(tmp_path, {})
    config = client_config(certs)
    topic = f"ib-{uuid.uuid4().hex[:8]}"
    with started(cluster):
        with cluster.hosts.in_hub():
            admin = AdminClient({"bootstrap.servers": sasl_ssl_address(cluster.node(1)), **config})
            admin.create_topics([NewTopic(topic, num_partitions=1, replica_assignment=[[1, 2, 3]])])[topic].result(30)
            wait_for_state(admin, topic, lambda s: s == (1, [1]), "the followers out of the ISR")
            producer = clients.producer(sasl_ssl_address(cluster.node(1)), **config)
            sent = [(f"k{i}".encode(), f"v{i}".encode()) for i in range(100)]
            assert len(clients.produce_all(producer, topic, sent, partition=0)) == len(sent)
        for node in (cluster.node(2), cluster.node(3)):
            assert "CLUSTER_AUTHORIZATION_FAILED" in node.log_since_start(), node.log_tail()
        with cluster.hosts.in_hub():
            grant_cluster_action_to_brokers(admin)
            wait_for_state(admin, topic, lambda s: s == (1, [1, 2, 3]), "the followers back in the ISR")


REPLICATION_PORT = 9095


def replication_address(node) -> str:
    return f"{node.address}:{node.hosts.port(node.host, REPLICATION_PORT)}"


@pytest.mark.timeout(300)
def test_named_listeners_a_sasl_ssl_client_one_and_an_ssl_replication_one(tmp_path):
    """Kafka's named listeners: CLIENT (SASL_SSL) for clients and REPLICATION (SSL) between the brokers
    (`listener.security.protocol.map=CLIENT:SASL_SSL,REPLICATION:SSL`, `inter.broker.listener.name=REPLICATION`),
    with `ssl.cipher.suites` limited to one TLS 1.3 suite on both sides of the brokers' TLS. Clients of CLIENT
    are sent to CLIENT ports; the followers fetch over REPLICATION and stay in sync (min.insync.replicas=3)."""
    cluster, certs = cluster_with_certificates(tmp_path)
    users = f"SCRAM-SHA-512=[name={ADMIN_USER},password={ADMIN_PASSWORD}]"
    for node in cluster.nodes:
        node.listen_args = ["--listener", f"CLIENT://{sasl_ssl_address(node)}",
                            "--listener", f"REPLICATION://{replication_address(node)}"]
        node.extra_args = [
            "--listener-security-protocol-map", "CLIENT:SASL_SSL,REPLICATION:SSL",
            "--inter-broker-listener-name", "REPLICATION",
            "--inter-broker-ssl-ca-file", str(certs / "ca.pem"),
            "--ssl-cipher-suites", "TLS_AES_128_GCM_SHA256",
            "--ssl-cert", str(certs / "server.pem"), "--ssl-key", str(certs / "server.key"),
            "--sasl-mechanisms", "SCRAM-SHA-512", "--add-scram", users,
            "--replica-lag-time-max-ms", str(REPLICA_LAG_TIME_MAX_MS),
        ]
    config = client_config(certs)
    topic = f"named-{uuid.uuid4().hex[:8]}"
    with started(cluster):
        with cluster.hosts.in_hub():
            one, two, three = cluster.nodes
            assert advertised(sasl_ssl_address(one), config) == {sasl_ssl_address(n) for n in cluster.nodes}
            replication = {"security.protocol": "SSL", "ssl.ca.location": str(certs / "ca.pem")}
            assert advertised(replication_address(two), replication) == \
                {replication_address(n) for n in cluster.nodes}
            admin = AdminClient({"bootstrap.servers": sasl_ssl_address(one), **config})
            admin.create_topics([NewTopic(topic, num_partitions=1, replica_assignment=[[1, 2, 3]],
                                          config={"min.insync.replicas": "3"})])[topic].result(30)
            wait_for_state(admin, topic, lambda s: s == (1, [1, 2, 3]), "node 1 leads, every replica in sync")
            producer = clients.producer(sasl_ssl_address(three), **config)
            sent = [(f"k{i}".encode(), f"v{i}".encode()) for i in range(500)]
            assert len(clients.produce_all(producer, topic, sent, partition=0)) == len(sent)
            time.sleep(2 * REPLICA_LAG_TIME_MAX_MS / 1000)
            assert partition_state(admin, topic) == (1, [1, 2, 3])
            assert read_partition(sasl_ssl_address(two), config, topic, len(sent)) == [v for _, v in sent]
        for node in cluster.nodes:
            log = node.log_since_start()
            assert "TLS handshake with" not in log and "has no REPLICATION listener" not in log, node.log_tail()
