"""Issue 20 (security): SASL re-authentication (KIP-368, `connections.max.reauth.ms`) against real clients.

One broker (2 shards) with a SASL_PLAINTEXT listener whose sessions last SESSION_MS. With raw Kafka requests:
SaslAuthenticate tells the client the session lifetime; a request after the end closes the connection; a
re-authentication on the same connection renews the session; one as another user, or with a wrong password,
fails with SASL_AUTHENTICATION_FAILED and closes the connection. Then librdkafka (confluent-kafka) and the Java
producer produce through several session lifetimes on one connection each without a delivery error, re-authenticating
(the broker's re-authentication counter grows) rather than being cut off.
"""

from __future__ import annotations

import time
import urllib.request

import pytest

import clients
import conftest
import kafka_wire as kw
from test_security import (ADMIN_PASSWORD, ADMIN_USER, ILLEGAL_SASL_STATE, SASL_AUTHENTICATE,
                           SASL_AUTHENTICATION_FAILED, SecureBroker, _start, sasl_handshake)
# The Java client's fixtures and helpers.
from test_java_client import TOPIC_COMMAND, java_classpath, run_ok  # noqa: F401

# The broker's connections.max.reauth.ms: short, so a test sees several sessions end.
SESSION_MS = 3000
OTHER_USER = "other"
OTHER_PASSWORD = "other-secret"
# Kafka starts at most one re-authentication a second on a connection.
MIN_REAUTH_INTERVAL_S = 1.0
# How long the real clients produce: several session lifetimes.
PRODUCE_SECONDS = 10


@pytest.fixture(scope="module")
def reauth(tmp_path_factory):
    metrics_port = conftest.free_port()
    process, certs, ports = _start(
        tmp_path_factory, "reauth-broker",
        ["--sasl-mechanisms", "PLAIN,SCRAM-SHA-512",
         "--add-scram", f"SCRAM-SHA-512=[name={ADMIN_USER},password={ADMIN_PASSWORD}];"
                        f"SCRAM-SHA-512=[name={OTHER_USER},password={OTHER_PASSWORD}]",
         "--connections-max-reauth-ms", str(SESSION_MS)],
        ["SASL_PLAINTEXT"], metrics_port=metrics_port)
    yield SecureBroker(process, certs, ports, metrics_port)
    conftest._shutdown(process)


def counter(broker: SecureBroker, name: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{broker.metrics_port}/metrics", timeout=10).read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(f"ringbroker_{name}_total"))


def authenticate_plain(sock, user: str, password: str, correlation_id: int) -> tuple[int, str | None, int]:
    """SaslAuthenticate v1 with a PLAIN token: (error_code, error_message, session_lifetime_ms)."""
    token = f"\0{user}\0{password}".encode()
    sock.sendall(kw.request(SASL_AUTHENTICATE, 1, correlation_id, kw.bytes_field(token)))
    got = kw.read_response(sock)
    assert got is not None, "the broker closed the connection instead of answering SaslAuthenticate"
    assert got[0] == correlation_id
    reader = got[1]
    error_code, message = reader.i16(), reader.string()
    reader.bytes_field()
    return error_code, message, reader.i64()


def log_in(sock, user: str = ADMIN_USER, password: str = ADMIN_PASSWORD, correlation_id: int = 1):
    assert sasl_handshake(sock, "PLAIN", correlation_id=correlation_id)[0] == 0
    return authenticate_plain(sock, user, password, correlation_id + 1)


def metadata_served(sock, correlation_id: int) -> bool:
    sock.sendall(kw.metadata_v1(correlation_id, []))
    got = kw.read_response(sock)
    return got is not None and got[0] == correlation_id


def test_the_session_lifetime_is_told_and_a_request_after_it_closes_the_connection(reauth):
    closed_before = counter(reauth, "sasl_expired_sessions_closed")
    with kw.connect(reauth.address("SASL_PLAINTEXT")) as sock:
        error_code, _, lifetime_ms = log_in(sock)
        assert (error_code, lifetime_ms) == (0, SESSION_MS)
        assert metadata_served(sock, 3)
        time.sleep(SESSION_MS / 1000 + 0.5)
        sock.sendall(kw.metadata_v1(4, []))
        assert kw.wait_closed(sock) == b"", "a request after the session's end was answered"
    assert counter(reauth, "sasl_expired_sessions_closed") == closed_before + 1


def test_a_reauthentication_renews_the_session_on_the_same_connection(reauth):
    renewed_before = counter(reauth, "sasl_reauthentications")
    with kw.connect(reauth.address("SASL_PLAINTEXT")) as sock:
        assert log_in(sock)[0] == 0
        started = time.monotonic()
        # The first re-authentication may follow at once (as Kafka) ...
        assert log_in(sock, correlation_id=3)[:1] == (0,)
        # ... a second one within a second is served as any request after authentication.
        assert sasl_handshake(sock, "PLAIN", correlation_id=5)[0] == ILLEGAL_SASL_STATE
        assert metadata_served(sock, 6)
        time.sleep(MIN_REAUTH_INTERVAL_S + 0.2)
        error_code, _, lifetime_ms = log_in(sock, correlation_id=7)
        assert (error_code, lifetime_ms) == (0, SESSION_MS)
        # Past the end of the sessions begun at the start, inside the renewed one.
        time.sleep(max(0.0, started + SESSION_MS / 1000 + 0.3 - time.monotonic()))
        assert metadata_served(sock, 9), "the renewed session was cut at the first one's end"
    assert counter(reauth, "sasl_reauthentications") == renewed_before + 2


@pytest.mark.parametrize("user,password,expected", [
    (OTHER_USER, OTHER_PASSWORD, "Cannot change principals"),
    (ADMIN_USER, "wrong-password", "Invalid username or password"),
])
def test_a_reauthentication_as_someone_else_or_with_a_wrong_password_fails_and_closes(reauth, user, password,
                                                                                        expected):
    with kw.connect(reauth.address("SASL_PLAINTEXT")) as sock:
        assert log_in(sock)[0] == 0
        time.sleep(MIN_REAUTH_INTERVAL_S + 0.2)
        error_code, message, _ = log_in(sock, user, password, correlation_id=3)
        assert error_code == SASL_AUTHENTICATION_FAILED
        assert message and expected in message, message
        assert kw.wait_closed(sock) == b""


def test_confluent_kafka_reauthenticates_through_several_sessions(reauth, topic_name):
    renewed_before = counter(reauth, "sasl_reauthentications")
    closed_before = counter(reauth, "sasl_expired_sessions_closed")
    address = reauth.address("SASL_PLAINTEXT")
    config = {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "SCRAM-SHA-512",
              "sasl.username": ADMIN_USER, "sasl.password": ADMIN_PASSWORD}
    producer = clients.producer(address, **config)
    on_delivery = clients.DeliveryTally()

    sent = 0
    deadline = time.monotonic() + PRODUCE_SECONDS
    while time.monotonic() < deadline:
        producer.produce(topic_name, value=f"r{sent}".encode(), on_delivery=on_delivery)
        sent += 1
        producer.poll(0.1)
    assert producer.flush(30) == 0
    assert not on_delivery.errors, on_delivery.errors[:3]
    assert on_delivery.delivered == sent
    # librdkafka re-authenticates its connections before each session ends (KIP-368) instead of letting the
    # broker cut them off.
    assert counter(reauth, "sasl_reauthentications") >= renewed_before + 2
    assert counter(reauth, "sasl_expired_sessions_closed") == closed_before


def test_the_java_producer_reauthenticates_through_several_sessions(reauth, topic_name, java_classpath, tmp_path):
    renewed_before = counter(reauth, "sasl_reauthentications")
    closed_before = counter(reauth, "sasl_expired_sessions_closed")
    properties = tmp_path / "client.properties"
    properties.write_text(
        "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=SCRAM-SHA-512\n"
        "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
        f"username=\"{ADMIN_USER}\" password=\"{ADMIN_PASSWORD}\";\n"
    )
    address = reauth.address("SASL_PLAINTEXT")
    run_ok(java_classpath, TOPIC_COMMAND, "--bootstrap-server", address, "--command-config", str(properties),
           "--create", "--topic", topic_name, "--partitions", "1")
    records = 20 * PRODUCE_SECONDS
    out = run_ok(java_classpath, "org.apache.kafka.tools.ProducerPerformance", "--topic", topic_name,
                 "--num-records", str(records), "--record-size", "100", "--throughput", "20",
                 "--command-config", str(properties), "--command-property", f"bootstrap.servers={address}",
                 "acks=all")
    assert f"{records} records sent" in out, out
    assert counter(reauth, "sasl_reauthentications") >= renewed_before + 2
    assert counter(reauth, "sasl_expired_sessions_closed") == closed_before, \
        "the Java producer's connection was cut off instead of re-authenticated"
