"""Issue 20 (ACLs): Kafka's ACL authorizer (`--authorizer acl`) managed with Kafka's own `kafka-acls`, against real
clients.

One broker (2 shards) with a PLAINTEXT listener (the fixture's bootstrap, whose clients are User:ANONYMOUS) and a
SASL_SSL one; `admin` is a super user. `kafka-configs` creates the SCRAM user alice, `kafka-acls` grants her Write
and Read on a topic prefix and Read on a group prefix; the Java client (Kafka's ProducerPerformance and console
consumer) and confluent-kafka produce and consume as alice over SASL_SSL + SCRAM-SHA-512. Then the denials, each
with Kafka's error code as the client surfaces it: a topic without ACLs, a DENY beating an ALLOW, a group without
Read, Metadata hiding topics alice may not describe, alice creating ACLs, an anonymous plaintext client; after each
the super user still produces and consumes. `kafka-acls --list` and `--remove` close the loop, and the ACLs survive
a restart. Two more brokers: three replicated nodes with the authorizer on (inter-broker fetches need
ClusterAction), and TLS client certificates whose subjects are the principals.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation, AclPermissionType, AdminClient,
                                   NewTopic, ResourcePatternType, ResourceType)

import clients
import conftest
import kafka_wire as kw
from test_java_client import CONSOLE_CONSUMER, java, java_classpath, run_ok  # noqa: F401
import chaos_helpers as ch
from test_security import (ADMIN_PASSWORD, ADMIN_USER, SecureBroker, _start, counter, make_ca, make_signed,
                           round_trip)

ALICE = "alice"
ALICE_PASSWORD = "alice-secret"
ACL_COMMAND = "org.apache.kafka.tools.AclCommand"
CONFIG_COMMAND = "org.apache.kafka.tools.ConfigCommand"
PRODUCER_PERFORMANCE = "org.apache.kafka.tools.ProducerPerformance"
JAVA_RECORDS = 2000
TOPIC_AUTHORIZATION_FAILED = 29
CLUSTER_AUTHORIZATION_FAILED = 31
FETCH = 1


@pytest.fixture(scope="module")
def acl_broker(tmp_path_factory):
    metrics_port = conftest.free_port()
    process, certs, ports = _start(
        tmp_path_factory, "acl-broker",
        ["--authorizer", "acl", "--super-users", f"User:{ADMIN_USER};User:ops",
         "--sasl-mechanisms", "SCRAM-SHA-512",
         "--add-scram", f"SCRAM-SHA-512=[name={ADMIN_USER},password={ADMIN_PASSWORD}]"],
        ["SASL_SSL"], metrics_port=metrics_port)
    yield SecureBroker(process, certs, ports, metrics_port)
    conftest._shutdown(process)


def user_config(broker: SecureBroker, user: str, password: str) -> dict:
    return {"security.protocol": "SASL_SSL", "ssl.ca.location": str(broker.certs / "ca.pem"),
            "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": user, "sasl.password": password}


def java_properties(broker: SecureBroker, path: Path, user: str, password: str) -> Path:
    path.write_text(
        "security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\n"
        "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
        f"username=\"{user}\" password=\"{password}\";\n"
        f"ssl.truststore.type=PEM\nssl.truststore.location={broker.certs / 'ca.pem'}\n")
    return path


class Names:
    """One test's resources: a topic prefix alice may write and read, a group prefix she may read."""

    def __init__(self):
        tag = uuid.uuid4().hex[:8]
        self.prefix = f"orders-{tag}-"
        self.topic = f"{self.prefix}eu"
        self.secret = f"secret-{tag}"
        self.group_prefix = f"alice-{tag}-"


@pytest.fixture(scope="module")
def granted(acl_broker, java_classpath, tmp_path_factory):
    """alice created with kafka-configs and granted her ACLs with kafka-acls, both run as the super user."""
    names = Names()
    admin_props = java_properties(acl_broker, tmp_path_factory.mktemp("props") / "admin.properties", ADMIN_USER,
                                  ADMIN_PASSWORD)
    address = acl_broker.address("SASL_SSL")
    out = run_ok(java_classpath, CONFIG_COMMAND, "--bootstrap-server", address, "--command-config",
                 str(admin_props), "--alter", "--add-config", f"SCRAM-SHA-512=[password={ALICE_PASSWORD}]",
                 "--entity-type", "users", "--entity-name", ALICE)
    assert f"Completed updating config for user {ALICE}" in out, out
    acls = ["--bootstrap-server", address, "--command-config", str(admin_props)]
    run_ok(java_classpath, ACL_COMMAND, *acls, "--add", "--allow-principal", f"User:{ALICE}", "--operation", "Write",
           "--operation", "Read", "--topic", names.prefix, "--resource-pattern-type", "prefixed")
    run_ok(java_classpath, ACL_COMMAND, *acls, "--add", "--allow-principal", f"User:{ALICE}", "--operation", "Read",
           "--group", names.group_prefix, "--resource-pattern-type", "prefixed")
    admin = AdminClient({"bootstrap.servers": address, **user_config(acl_broker, ADMIN_USER, ADMIN_PASSWORD)})
    for topic in (names.topic, names.secret):
        admin.create_topics([NewTopic(topic, 2, 1)])[topic].result(30)
    return names, acls


def test_kafka_acls_grants_a_prefix_and_the_java_client_and_confluent_kafka_use_it(acl_broker, granted,
                                                                                     java_classpath, tmp_path):
    names, acls = granted
    address = acl_broker.address("SASL_SSL")
    listed = run_ok(java_classpath, ACL_COMMAND, *acls, "--list", "--topic", names.prefix,
                    "--resource-pattern-type", "prefixed")
    assert f"name={names.prefix}, patternType=PREFIXED" in listed, listed
    assert f"principal=User:{ALICE}, host=*, operation=WRITE, permissionType=ALLOW" in listed, listed
    alice_props = java_properties(acl_broker, tmp_path / "alice.properties", ALICE, ALICE_PASSWORD)
    # The Java producer is idempotent by default: InitProducerId is allowed by Write on a topic (KIP-679).
    out = run_ok(java_classpath, PRODUCER_PERFORMANCE, "--topic", names.topic, "--num-records", str(JAVA_RECORDS),
                 "--record-size", "100", "--throughput", "-1", "--command-config", str(alice_props),
                 "--command-property", f"bootstrap.servers={address}", "acks=all")
    assert f"{JAVA_RECORDS} records sent" in out, out
    out = run_ok(java_classpath, CONSOLE_CONSUMER, "--bootstrap-server", address, "--command-config",
                 str(alice_props), "--topic", names.topic, "--group", f"{names.group_prefix}java", "--from-beginning",
                 "--max-messages", str(JAVA_RECORDS), "--timeout-ms", "60000")
    assert len(out.splitlines()) == JAVA_RECORDS
    # confluent-kafka (librdkafka): a consumer group under the granted prefix commits and reads.
    alice = user_config(acl_broker, ALICE, ALICE_PASSWORD)
    producer = clients.producer(address, **alice)
    clients.produce_all(producer, names.topic, [(b"k", b"v%d" % i) for i in range(20)])
    consumer = clients.consumer(address, **{**alice, "group.id": f"{names.group_prefix}confluent"})
    try:
        consumer.subscribe([names.topic])
        got = 0
        deadline = time.monotonic() + 60
        while got < JAVA_RECORDS + 20 and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=1000, timeout=0.5):
                assert msg.error() is None, msg.error()
                got += 1
        assert got == JAVA_RECORDS + 20
        consumer.commit(asynchronous=False)
    finally:
        consumer.close()


def produce_error(address: str, config: dict, topic: str) -> int | None:
    """The error code of one record's delivery (None when delivered)."""
    producer = clients.producer(address, **{**config, "message.timeout.ms": 10000})
    errors: list = []
    producer.produce(topic, b"x", on_delivery=lambda err, _msg: errors.append(err))
    producer.flush(30)
    assert errors, "no delivery report"
    return errors[0].code() if errors[0] is not None else None


def metadata_v1_topics(bootstrap: str, topics: list[str] | None) -> dict[str, int]:
    """A raw Metadata v1 request: {topic: error code} of the answer."""
    with kw.connect(bootstrap) as sock:
        sock.sendall(kw.metadata_v1(7, topics))
        got = kw.read_response(sock)
    assert got is not None and got[0] == 7
    r = got[1]
    for _ in range(r.i32()):  # brokers: node id, host, port, rack
        r.i32(), r.string(), r.i32(), r.string()
    r.i32()  # controller id
    out = {}
    for _ in range(r.i32()):
        error, name, _internal = r.i16(), r.string(), r.i8()
        for _ in range(r.i32()):  # partitions: error, index, leader, replicas, isr
            r.i16(), r.i32(), r.i32()
            for _ in range(2):
                for _ in range(r.i32()):
                    r.i32()
        out[name] = error
    return out


def follower_fetch_error(bootstrap: str, topic: str) -> int:
    """The error code of a raw Fetch v4 from replica 1 (what a follower broker sends) for partition 0."""
    body = (kw.i32(1) + kw.i32(0) + kw.i32(1) + kw.i32(1 << 20) + kw.i8(0) + kw.i32(1) + kw.string(topic)
            + kw.i32(1) + kw.i32(0) + kw.i64(0) + kw.i32(1 << 20))
    with kw.connect(bootstrap) as sock:
        sock.sendall(kw.request(FETCH, 4, 9, body))
        got = kw.read_response(sock)
    assert got is not None and got[0] == 9
    return kw.parse_fetch_v4(got[1])[topic][0].error_code


def test_denials_carry_kafkas_error_codes(acl_broker, granted):
    names, _ = granted
    address = acl_broker.address("SASL_SSL")
    alice = user_config(acl_broker, ALICE, ALICE_PASSWORD)
    denied_before = counter(acl_broker, "authorization_denied")
    # A topic without ACLs for alice.
    assert produce_error(address, alice, names.secret) == KafkaError.TOPIC_AUTHORIZATION_FAILED
    # Metadata of all topics hides what alice may not describe.
    visible = AdminClient({"bootstrap.servers": address, **alice}).list_topics(timeout=30).topics
    assert names.topic in visible and names.secret not in visible, sorted(visible)
    # A DENY beats the prefixed ALLOW.
    admin = AdminClient({"bootstrap.servers": address, **user_config(acl_broker, ADMIN_USER, ADMIN_PASSWORD)})
    denied_topic = f"{names.prefix}denied"
    deny = AclBinding(ResourceType.TOPIC, denied_topic, ResourcePatternType.LITERAL, f"User:{ALICE}", "*",
                      AclOperation.WRITE, AclPermissionType.DENY)
    admin.create_acls([deny])[deny].result(30)
    admin.create_topics([NewTopic(denied_topic, 1, 1)])[denied_topic].result(30)
    assert produce_error(address, alice, denied_topic) == KafkaError.TOPIC_AUTHORIZATION_FAILED
    # A group alice may not read.
    consumer = clients.consumer(address, **{**alice, "group.id": f"other-{uuid.uuid4().hex[:6]}"})
    try:
        consumer.subscribe([names.topic])
        error = None
        deadline = time.monotonic() + 30
        while error is None and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=10, timeout=0.5):
                if msg.error() is not None:
                    error = msg.error()
        assert error is not None and error.code() == KafkaError.GROUP_AUTHORIZATION_FAILED, error
    finally:
        consumer.close()
    # alice may not change ACLs: CLUSTER_AUTHORIZATION_FAILED.
    grab = AclBinding(ResourceType.TOPIC, "*", ResourcePatternType.LITERAL, f"User:{ALICE}", "*", AclOperation.ALL,
                      AclPermissionType.ALLOW)
    alice_admin = AdminClient({"bootstrap.servers": address, **alice})
    with pytest.raises(KafkaException) as raised:
        alice_admin.create_acls([grab])[grab].result(30)
    assert raised.value.args[0].code() == KafkaError.CLUSTER_AUTHORIZATION_FAILED
    # An anonymous PLAINTEXT client sees no topic and may write none.
    assert produce_error(acl_broker.process.bootstrap, {}, names.topic) == KafkaError.TOPIC_AUTHORIZATION_FAILED
    assert metadata_v1_topics(acl_broker.process.bootstrap, None) == {}
    assert metadata_v1_topics(acl_broker.process.bootstrap, [names.topic]) == {
        names.topic: TOPIC_AUTHORIZATION_FAILED}
    # A follower's fetch (replica id set) needs ClusterAction on the cluster.
    assert follower_fetch_error(acl_broker.process.bootstrap, names.topic) == CLUSTER_AUTHORIZATION_FAILED
    assert counter(acl_broker, "authorization_denied") > denied_before
    # The super user does everything, and the broker keeps serving.
    round_trip(address, user_config(acl_broker, ADMIN_USER, ADMIN_PASSWORD), f"admin-{uuid.uuid4().hex[:8]}",
               count=5)


def test_offsets_sent_to_a_transaction_need_read_on_each_topic(acl_broker, granted):
    """TxnOffsetCommit, as Kafka: Write on the transactional id, Read on the group, and Read on each topic
    (TOPIC_AUTHORIZATION_FAILED for a topic alice may not read; a topic she may read is committed)."""
    from confluent_kafka import TopicPartition
    names, _ = granted
    address = acl_broker.address("SASL_SSL")
    alice = user_config(acl_broker, ALICE, ALICE_PASSWORD)
    transactional_id = f"{names.group_prefix}tx"
    admin = AdminClient({"bootstrap.servers": address, **user_config(acl_broker, ADMIN_USER, ADMIN_PASSWORD)})
    grant = AclBinding(ResourceType.TRANSACTIONAL_ID, transactional_id, ResourcePatternType.LITERAL,
                       f"User:{ALICE}", "*", AclOperation.WRITE, AclPermissionType.ALLOW)
    admin.create_acls([grant])[grant].result(30)
    group = f"{names.group_prefix}txn-group"
    consumer = clients.consumer(address, **{**alice, "group.id": group})
    producer = clients.producer(address, **{**alice, "transactional.id": transactional_id})
    try:
        producer.init_transactions(30)
        producer.begin_transaction()
        producer.produce(names.topic, b"x", partition=0)
        with pytest.raises(KafkaException) as raised:
            producer.send_offsets_to_transaction([TopicPartition(names.topic, 0, 1), TopicPartition(names.secret, 0, 1)],
                                                 consumer.consumer_group_metadata(), 30)
        assert raised.value.args[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, raised.value
        producer.abort_transaction(30)
        # Only topics she may read: committed with the transaction.
        producer.begin_transaction()
        producer.produce(names.topic, b"y", partition=0)
        producer.send_offsets_to_transaction([TopicPartition(names.topic, 0, 1)], consumer.consumer_group_metadata(), 30)
        producer.commit_transaction(30)
        committed = consumer.committed([TopicPartition(names.topic, 0)], timeout=30)
        assert committed[0].offset == 1, committed
    finally:
        consumer.close()
        # The module's other tests list alice's ACLs: leave them as they were.
        revoke = AclBindingFilter(ResourceType.TRANSACTIONAL_ID, transactional_id, ResourcePatternType.LITERAL,
                                  f"User:{ALICE}", "*", AclOperation.WRITE, AclPermissionType.ALLOW)
        admin.delete_acls([revoke])[revoke].result(30)


def test_authorized_operations_are_reported_when_asked(acl_broker, granted):
    """Metadata's, DescribeGroups' and DescribeCluster's authorized operations (the AdminClient's
    include_authorized_operations), as Kafka computes them: the operations the principal's ACLs allow, Read and
    Write implying Describe."""
    from confluent_kafka import TopicCollection
    names, _ = granted
    address = acl_broker.address("SASL_SSL")
    alice = AdminClient({"bootstrap.servers": address, **user_config(acl_broker, ALICE, ALICE_PASSWORD)})
    topic = alice.describe_topics(TopicCollection([names.topic]), include_authorized_operations=True)[names.topic]
    assert set(topic.result(30).authorized_operations) == {AclOperation.READ, AclOperation.WRITE,
                                                            AclOperation.DESCRIBE}
    group = f"{names.group_prefix}described"
    consumer = clients.consumer(address, **{**user_config(acl_broker, ALICE, ALICE_PASSWORD), "group.id": group})
    try:
        consumer.subscribe([names.topic])
        consumer.consume(num_messages=1, timeout=5)
        described = alice.describe_consumer_groups([group], include_authorized_operations=True)[group].result(30)
        assert set(described.authorized_operations) == {AclOperation.READ, AclOperation.DESCRIBE}
    finally:
        consumer.close()
    cluster = alice.describe_cluster(include_authorized_operations=True).result(30)
    assert not cluster.authorized_operations, cluster.authorized_operations
    admin = AdminClient({"bootstrap.servers": address, **user_config(acl_broker, ADMIN_USER, ADMIN_PASSWORD)})
    everything = admin.describe_topics(TopicCollection([names.secret]), include_authorized_operations=True)
    assert AclOperation.ALTER_CONFIGS in everything[names.secret].result(30).authorized_operations


def test_kafka_acls_remove_and_the_acls_survive_a_restart(acl_broker, granted, java_classpath):
    names, acls = granted
    address = acl_broker.address("SASL_SSL")
    alice = user_config(acl_broker, ALICE, ALICE_PASSWORD)
    topic = f"{names.prefix}removed"
    admin = AdminClient({"bootstrap.servers": address, **user_config(acl_broker, ADMIN_USER, ADMIN_PASSWORD)})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
    assert produce_error(address, alice, topic) is None
    acl_broker.process.restart()
    assert produce_error(address, alice, topic) is None, "the ACLs did not survive the restart"
    run_ok(java_classpath, ACL_COMMAND, *acls, "--remove", "--force", "--allow-principal", f"User:{ALICE}",
           "--operation", "Write", "--topic", names.prefix, "--resource-pattern-type", "prefixed")
    listed = run_ok(java_classpath, ACL_COMMAND, *acls, "--list", "--principal", f"User:{ALICE}")
    assert "operation=WRITE, permissionType=ALLOW" not in listed and "operation=READ" in listed, listed
    assert produce_error(address, alice, topic) == KafkaError.TOPIC_AUTHORIZATION_FAILED
    # The describe filter's MATCH pattern: what applies to one topic (the prefixed Read).
    matching = admin.describe_acls(AclBindingFilter(ResourceType.TOPIC, topic, ResourcePatternType.MATCH, None, None,
                                                    AclOperation.ANY, AclPermissionType.ANY)).result(30)
    assert [(b.name, b.operation) for b in matching] == [(names.prefix, AclOperation.READ)], matching


@pytest.mark.timeout(300)
def test_replication_keeps_working_with_the_authorizer_on(tmp_path, topic_name):
    """Three nodes with `--authorizer acl`: brokers fetch from each other as User:ANONYMOUS on the PLAINTEXT
    primary listener, which docs/SECURITY.md says to grant ClusterAction. Granted here in each node's acls.json
    before its first start (no super user can reach a plaintext-only cluster to run kafka-acls; each node moves
    its file into the metadata log, where the three merge), with the clients' own ACLs; acks=all with
    min.insync.replicas=2 then needs the followers' fetches to be allowed."""
    from cluster_helpers import Cluster
    from test_cluster import wait_until
    from test_replication import create_replicated, isr_sizes
    if not conftest.BROKER_BIN or conftest.EXTERNAL_BOOTSTRAP or conftest.REFERENCE_KAFKA:
        pytest.skip("starts its own ringbroker nodes (RINGBROKER_BIN)")
    acl = lambda resource_type, name, operation: {  # noqa: E731
        "resource_type": resource_type, "resource_name": name, "pattern_type": "LITERAL",
        "principal": "User:ANONYMOUS", "host": "*", "operation": operation, "permission": "ALLOW"}
    acls = {"version": 1, "acls": [acl("CLUSTER", "kafka-cluster", "CLUSTER_ACTION"), acl("TOPIC", "*", "ALL")]}
    for node_id in (1, 2, 3):
        (tmp_path / f"data-{node_id}").mkdir()
        (tmp_path / f"data-{node_id}" / "acls.json").write_text(json.dumps(acls))
    cluster = Cluster(conftest.BROKER_BIN, tmp_path, extra_args=["--set", "segment_bytes=4MiB", "--authorizer", "acl"])
    try:
        cluster.start()
        create_replicated(cluster, topic_name, partitions=2, min_insync=2)
        wait_until(lambda: isr_sizes(cluster, topic_name) == {0: 3, 1: 3}, 60, "full ISRs")
        with cluster.hosts.in_hub():
            producer = clients.producer(cluster.bootstrap, acks="all")
            delivered = clients.produce_all(producer, topic_name, [(b"k%d" % i, b"v%d" % i) for i in range(200)])
        assert len(delivered) == 200
        wait_until(lambda: isr_sizes(cluster, topic_name) == {0: 3, 1: 3}, 60, "full ISRs after producing")
        for node in cluster.nodes:
            assert "authorization denied" not in node.log_since_start(), node.log_tail()
    except Exception:
        print(cluster.logs())
        raise
    finally:
        cluster.close()


def test_client_certificate_subjects_are_principals(tmp_path):
    """mTLS: the principal of a TLS client is its certificate's subject (RFC 2253). app1's subject is a super
    user and grants app2's subject Write and Read on a topic prefix with the AdminClient; app2 then produces
    there and is refused elsewhere."""
    import shutil
    if not conftest.BROKER_BIN or conftest.EXTERNAL_BOOTSTRAP or conftest.REFERENCE_KAFKA:
        pytest.skip("starts its own broker (RINGBROKER_BIN)")
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl CLI to make certificates")
    certs = tmp_path / "certs"
    certs.mkdir()
    for ca in ("ca", "clients-ca"):
        make_ca(certs, ca)
    make_signed(certs, "server", "ca", "/CN=localhost", san="DNS:localhost,IP:127.0.0.1")
    for app in ("app1", "app2"):
        make_signed(certs, app, "clients-ca", f"/CN={app}/O=test", ext="extendedKeyUsage=clientAuth")
    port = conftest.free_port()
    process = ch.ConfiguredBroker(conftest.BROKER_BIN, tmp_path / "data", 1, tmp_path, [
        "--metrics-listen", "none", "--listener", f"SSL://127.0.0.1:{port}",
        "--ssl-cert", str(certs / "server.pem"), "--ssl-key", str(certs / "server.key"),
        "--ssl-client-ca", str(certs / "clients-ca.pem"),
        "--authorizer", "acl", "--super-users", "User:O=test,CN=app1"])
    conftest._ACTIVE.append(process)
    process.start()
    try:
        address = f"127.0.0.1:{port}"
        config = lambda app: {"security.protocol": "SSL", "ssl.ca.location": str(certs / "ca.pem"),  # noqa: E731
                              "ssl.certificate.location": str(certs / f"{app}.pem"),
                              "ssl.key.location": str(certs / f"{app}.key")}
        app1 = AdminClient({"bootstrap.servers": address, **config("app1")})
        grants = [AclBinding(ResourceType.TOPIC, "mtls-", ResourcePatternType.PREFIXED, "User:O=test,CN=app2", "*",
                             operation, AclPermissionType.ALLOW) for operation in (AclOperation.WRITE,
                                                                                   AclOperation.READ)]
        for grant, future in app1.create_acls(grants).items():
            future.result(30)
        for topic in ("mtls-orders", "other-orders"):
            app1.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
        assert produce_error(address, config("app2"), "mtls-orders") is None
        assert produce_error(address, config("app2"), "other-orders") == KafkaError.TOPIC_AUTHORIZATION_FAILED
        app2 = AdminClient({"bootstrap.servers": address, **config("app2")})
        assert sorted(app2.list_topics(timeout=30).topics) == ["mtls-orders"]
    finally:
        conftest._shutdown(process)
