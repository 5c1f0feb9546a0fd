"""Issue 9: topic configs (CreateTopics validation, DescribeConfigs, AlterConfigs, IncrementalAlterConfigs)
with confluent-kafka's AdminClient."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewTopic,
)

import clients

TIMEOUT = 20


def admin_for(broker) -> AdminClient:
    return AdminClient({"bootstrap.servers": broker.bootstrap})


def describe_topic(admin: AdminClient, topic: str) -> dict:
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    return admin.describe_configs([resource])[resource].result(timeout=TIMEOUT)


def create(admin: AdminClient, broker, topic: str, config: dict) -> None:
    admin.create_topics([NewTopic(topic, 1, 1, config=config)])[topic].result(timeout=TIMEOUT)
    clients.wait_for_topic(broker.bootstrap, admin, topic, 1)


@pytest.mark.parametrize("broker", [1, 2], indirect=True, ids=["shards1", "shards2"])
def test_describe_reports_created_configs_and_defaults(broker, topic_name):
    admin = admin_for(broker)
    create(
        admin,
        broker,
        topic_name,
        {"cleanup.policy": "compact", "retention.ms": "3000", "min.insync.replicas": "1"},
    )
    configs = describe_topic(admin, topic_name)
    # Accepted but not enforced (single broker): still listed as set, as Kafka lists it.
    assert configs["min.insync.replicas"].value == "1"
    assert configs["min.insync.replicas"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert configs["cleanup.policy"].value == "compact"
    assert configs["cleanup.policy"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert configs["retention.ms"].value == "3000"
    assert configs["retention.bytes"].value == "-1"
    assert configs["retention.bytes"].is_default
    assert configs["message.timestamp.type"].value == "CreateTime"
    assert configs["max.message.bytes"].value == "1048588"


def test_unknown_or_invalid_config_is_refused_at_create(broker, topic_name):
    admin = admin_for(broker)
    for bad in ({"retention.hours": "1"}, {"cleanup.policy": "forever"}, {"segment.bytes": "100"}):
        with pytest.raises(KafkaException) as err:
            admin.create_topics([NewTopic(topic_name, 1, 1, config=bad)])[topic_name].result(timeout=TIMEOUT)
        assert err.value.args[0].code() == 40, bad  # INVALID_CONFIG


def test_describe_broker_configs(broker):
    admin = admin_for(broker)
    resource = ConfigResource(ConfigResource.Type.BROKER, "0")
    configs = admin.describe_configs([resource])[resource].result(timeout=TIMEOUT)
    assert configs["log.retention.ms"].value == "604800000"
    assert configs["log.cleanup.policy"].value == "delete"


@pytest.mark.parametrize("broker", [1, 2], indirect=True, ids=["shards1", "shards2"])
def test_alter_and_incremental_alter_round_trip(broker, topic_name):
    admin = admin_for(broker)
    create(admin, broker, topic_name, {"retention.ms": "3000"})
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic_name, set_config={"retention.bytes": "10485760"})
    admin.alter_configs([resource])[resource].result(timeout=TIMEOUT)
    configs = describe_topic(admin, topic_name)
    assert configs["retention.bytes"].value == "10485760"
    # AlterConfigs replaces the whole set: retention.ms is back to its default.
    assert configs["retention.ms"].value == "604800000"
    assert configs["retention.ms"].is_default

    resource = ConfigResource(
        ConfigResource.Type.TOPIC,
        topic_name,
        incremental_configs=[
            ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.APPEND),
            ConfigEntry("message.timestamp.type", "LogAppendTime", incremental_operation=AlterConfigOpType.SET),
            ConfigEntry("retention.bytes", None, incremental_operation=AlterConfigOpType.DELETE),
        ],
    )
    admin.incremental_alter_configs([resource])[resource].result(timeout=TIMEOUT)
    configs = describe_topic(admin, topic_name)
    assert configs["cleanup.policy"].value == "delete,compact"
    assert configs["message.timestamp.type"].value == "LogAppendTime"
    assert configs["retention.bytes"].value == "-1"

    bad = ConfigResource(ConfigResource.Type.TOPIC, topic_name, set_config={"retention.ms": "-7"})
    with pytest.raises(KafkaException) as err:
        admin.alter_configs([bad])[bad].result(timeout=TIMEOUT)
    assert err.value.args[0].code() == 40  # INVALID_CONFIG

    # Configs survive a restart (they live in the topic table).
    broker.restart()
    configs = describe_topic(admin_for(broker), topic_name)
    assert configs["cleanup.policy"].value == "delete,compact"


@pytest.mark.parametrize("broker", [1, 2], indirect=True, ids=["shards1", "shards2"])
def test_log_append_time_topic_stamps_broker_time(broker, topic_name):
    import time

    from confluent_kafka import TIMESTAMP_LOG_APPEND_TIME, Consumer, Producer, TopicPartition

    admin = admin_for(broker)
    create(admin, broker, topic_name, {"message.timestamp.type": "LogAppendTime"})
    before_ms = int(time.time() * 1000)
    delivered = []
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(10):
        producer.produce(
            topic_name, value=b"v%d" % i, timestamp=1000, on_delivery=lambda err, msg: delivered.append((err, msg))
        )
    assert producer.flush(TIMEOUT) == 0
    assert all(err is None for err, _ in delivered)
    # The Produce response carries log_append_time_ms: the delivery reports show the broker's time.
    assert all(msg.timestamp()[0] == TIMESTAMP_LOG_APPEND_TIME for _, msg in delivered)
    assert all(msg.timestamp()[1] >= before_ms for _, msg in delivered)

    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "lat", "enable.auto.commit": False})
    try:
        consumer.assign([TopicPartition(topic_name, 0, 0)])
        seen = []
        deadline = time.monotonic() + TIMEOUT
        while len(seen) < 10 and time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is not None and message.error() is None:
                seen.append(message.timestamp())
        assert len(seen) == 10
        assert all(kind == TIMESTAMP_LOG_APPEND_TIME and ts >= before_ms for kind, ts in seen), seen
    finally:
        consumer.close()


def test_topic_max_message_bytes_limits_batches(broker, topic_name):
    from confluent_kafka import Producer

    admin = admin_for(broker)
    create(admin, broker, topic_name, {"max.message.bytes": "2000"})
    errors = []
    producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0})
    producer.produce(topic_name, value=b"s" * 100, on_delivery=lambda err, msg: errors.append(err))
    producer.flush(TIMEOUT)  # separate batches: the limit applies per batch
    producer.produce(topic_name, value=b"b" * 5000, on_delivery=lambda err, msg: errors.append(err))
    producer.flush(TIMEOUT)
    assert errors[0] is None
    assert errors[1] is not None and errors[1].code() == 10  # MSG_SIZE_TOO_LARGE


@pytest.mark.parametrize("broker", [2], indirect=True, ids=["shards2"])
def test_concurrent_creates_then_describe(broker, topic_name):
    """Two clients create the same compacted topic at once (Kafka Connect workers starting together do): the
    one told TOPIC_ALREADY_EXISTS describes the topic right away, and that must find it with its config."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from confluent_kafka import KafkaError

    admins = [admin_for(broker), admin_for(broker)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        for round_ in range(10):
            name = f"{topic_name}-{round_}"
            start = threading.Barrier(2)

            def create_and_describe(admin: AdminClient) -> str:
                start.wait()
                future = admin.create_topics([NewTopic(name, 3, 1, config={"cleanup.policy": "compact"})])[name]
                try:
                    future.result(timeout=TIMEOUT)
                    outcome = "created"
                except KafkaException as e:
                    assert e.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS, e
                    outcome = "exists"
                configs = describe_topic(admin, name)
                assert configs["cleanup.policy"].value == "compact", (outcome, configs["cleanup.policy"])
                return outcome

            outcomes = sorted(f.result(timeout=60) for f in [pool.submit(create_and_describe, a) for a in admins])
            assert outcomes == ["created", "exists"], (round_, outcomes)
