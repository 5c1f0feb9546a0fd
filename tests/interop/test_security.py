"""Issue 20 (security): listeners with Kafka's security protocols, TLS and SASL, against real clients.

One broker (2 shards) serves a PLAINTEXT listener (the fixture's bootstrap) and SSL, SASL_SSL and
SASL_PLAINTEXT listeners, with a server certificate made here with the openssl CLI and a SCRAM-SHA-512
credential from `--add-scram`. confluent-kafka (librdkafka) and kcat produce and consume through each secure
listener, and Metadata must advertise the listener the client came in on. The denial cases use raw Kafka
requests, so the exact error codes and the closing of the connection are checked; after each, the broker
must still serve a SASL_SSL client. A second broker requires client certificates (`--ssl-client-ca`).
"""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient

import chaos_helpers as ch
import clients
import conftest
import kafka_wire as kw

ADMIN_USER = "admin"
ADMIN_PASSWORD = "admin-secret"
# Kafka's error codes (org.apache.kafka.common.protocol.Errors).
UNSUPPORTED_SASL_MECHANISM = 33
ILLEGAL_SASL_STATE = 34
SASL_AUTHENTICATION_FAILED = 58
SASL_HANDSHAKE = 17
SASL_AUTHENTICATE = 36
METADATA = 3
# Kafka's sasl.server.max.receive.size default: a bigger request before authentication closes the connection.
MAX_UNAUTHENTICATED_REQUEST_BYTES = 512 * 1024
ENABLED_MECHANISMS = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca(directory: Path, name: str) -> None:
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.pem",
             "-days", "2", "-subj", f"/CN={name}", cwd=directory)


def make_signed(directory: Path, name: str, ca: str, subject: str, san: str | None = None,
                ext: str | None = None) -> None:
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
             "-subj", subject, cwd=directory)
    args = ["x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key", "-CAcreateserial",
            "-out", f"{name}.pem", "-days", "2"]
    extensions = ([f"subjectAltName={san}"] if san else []) + ([ext] if ext else [])
    if extensions:
        (directory / f"{name}.ext").write_text("\n".join(extensions) + "\n")
        args += ["-extfile", f"{name}.ext"]
    _openssl(*args, cwd=directory)


class SecureBroker:
    """The running broker and the addresses of its listeners."""

    def __init__(self, process, certs: Path, ports: dict[str, int], metrics_port: int):
        self.metrics_port = metrics_port
        self.process = process
        self.certs = certs
        self.ports = ports

    def address(self, protocol: str) -> str:
        return f"127.0.0.1:{self.ports[protocol]}"

    def client_config(self, protocol: str, mechanism: str = "SCRAM-SHA-512", password: str = ADMIN_PASSWORD,
                      **extra) -> dict:
        config = {"security.protocol": protocol}
        if "SSL" in protocol:
            config["ssl.ca.location"] = str(self.certs / "ca.pem")
        if protocol.startswith("SASL"):
            config.update({"sasl.mechanism": mechanism, "sasl.username": ADMIN_USER, "sasl.password": password})
        config.update(extra)
        return config


def _start(tmp_path_factory, name: str, extra_flags: list[str], protocols: list[str],
           metrics_port: int | None = None, data_files: dict[str, str] | None = None) -> tuple:
    if conftest.EXTERNAL_BOOTSTRAP or conftest.REFERENCE_KAFKA or not conftest.BROKER_BIN:
        pytest.skip("starts its own broker with secure listeners: needs RINGBROKER_BIN (a ringbroker binary)")
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl CLI to make certificates")
    base = tmp_path_factory.mktemp(name)
    certs = base / "certs"
    certs.mkdir()
    make_ca(certs, "ca")
    make_signed(certs, "server", "ca", "/CN=localhost", san="DNS:localhost,IP:127.0.0.1")
    ports = {protocol: conftest.free_port() for protocol in protocols}
    metrics = f"127.0.0.1:{metrics_port}" if metrics_port else "none"
    flags = ["--metrics-listen", metrics, "--ssl-cert", str(certs / "server.pem"), "--ssl-key",
             str(certs / "server.key")]
    for protocol, port in ports.items():
        flags += ["--listener", f"{protocol}://127.0.0.1:{port}"]
    # Files the data directory holds before the first start (those of an earlier ringbroker).
    for file_name, text in (data_files or {}).items():
        (base / "data").mkdir(exist_ok=True)
        (base / "data" / file_name).write_text(text)
    process = ch.ConfiguredBroker(conftest.BROKER_BIN, base / "data", 2, base, flags + extra_flags)
    conftest._ACTIVE.append(process)
    process.start()
    return process, certs, ports


@pytest.fixture(scope="module")
def secure(tmp_path_factory):
    metrics_port = conftest.free_port()
    process, certs, ports = _start(
        tmp_path_factory, "secure-broker",
        ["--sasl-mechanisms", ",".join(ENABLED_MECHANISMS),
         "--add-scram", f"SCRAM-SHA-512=[name={ADMIN_USER},password={ADMIN_PASSWORD}];"
                        f"SCRAM-SHA-256=[name={ADMIN_USER},password={ADMIN_PASSWORD}]"],
        ["SSL", "SASL_SSL", "SASL_PLAINTEXT"], metrics_port=metrics_port)
    yield SecureBroker(process, certs, ports, metrics_port)
    conftest._shutdown(process)


def round_trip(bootstrap: str, config: dict, topic: str, count: int = 200) -> None:
    """Produces `count` records through `bootstrap` with `config`, reads them back the same way, and checks
    that Metadata gave this listener's address for the broker."""
    admin = AdminClient({"bootstrap.servers": bootstrap, **config})
    brokers = admin.list_topics(timeout=30).brokers
    advertised = {f"{b.host}:{b.port}" for b in brokers.values()}
    assert advertised == {bootstrap}, f"Metadata through {bootstrap} advertised {advertised}"
    producer = clients.producer(bootstrap, **config)
    sent = [(f"k{i}".encode(), f"{topic}-{i}".encode()) for i in range(count)]
    clients.produce_all(producer, topic, sent)
    consumer = clients.consumer(bootstrap, **{**config, "group.id": f"g-{uuid.uuid4().hex[:8]}"})
    try:
        consumer.subscribe([topic])
        assert read_values(consumer, count) == [v for _, v in sent]
    finally:
        consumer.close()


def read_values(consumer, count: int, timeout: float = 60) -> list[bytes]:
    """The values of the first `count` records `consumer` reads (fewer if `timeout` passes first)."""
    got: list[bytes] = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        for msg in consumer.consume(num_messages=10_000, timeout=0.5):
            assert msg.error() is None, msg.error()
            got.append(msg.value())
    return got


def counter(secure: SecureBroker, name: str) -> float:
    """The sum over shards of a counter from the broker's /metrics."""
    import urllib.request
    text = urllib.request.urlopen(f"http://127.0.0.1:{secure.metrics_port}/metrics", timeout=10).read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(f"ringbroker_{name}_total"))


def still_serves(secure: SecureBroker) -> None:
    """A SASL_SSL SCRAM-SHA-512 client still produces and consumes (the broker keeps serving others)."""
    round_trip(secure.address("SASL_SSL"), secure.client_config("SASL_SSL"), f"witness-{uuid.uuid4().hex[:8]}",
               count=5)


@pytest.mark.parametrize("protocol,mechanism", [
    ("SSL", None),
    ("SASL_SSL", "SCRAM-SHA-512"),
    ("SASL_SSL", "SCRAM-SHA-256"),
    ("SASL_SSL", "PLAIN"),
    ("SASL_PLAINTEXT", "SCRAM-SHA-512"),
])
def test_confluent_kafka_produces_and_consumes_on_each_secure_listener(secure, topic_name, protocol, mechanism):
    config = secure.client_config(protocol, mechanism=mechanism or "PLAIN")
    round_trip(secure.address(protocol), config, topic_name)


def test_plaintext_listener_keeps_working_beside_the_secure_ones(secure, topic_name):
    round_trip(secure.process.bootstrap, {}, topic_name)


def test_kcat_sasl_ssl_scram_sha_512(secure, topic_name):
    if shutil.which("kcat") is None:
        pytest.skip("kcat is not installed")
    config = secure.client_config("SASL_SSL")
    flags = [arg for key, value in config.items() for arg in ("-X", f"{key}={value}")]
    address = secure.address("SASL_SSL")
    lines = [f"line-{i}" for i in range(50)]
    subprocess.run(["kcat", "-P", "-b", address, "-t", topic_name, *flags], input="\n".join(lines) + "\n",
                   text=True, check=True, timeout=60, capture_output=True)
    out = subprocess.run(["kcat", "-C", "-b", address, "-t", topic_name, "-o", "beginning", "-e", "-q", *flags],
                         text=True, check=True, timeout=60, capture_output=True)
    assert out.stdout.splitlines() == lines


def sasl_handshake(sock: socket.socket, mechanism: str, correlation_id: int = 1) -> tuple[int, list[str]]:
    sock.sendall(kw.request(SASL_HANDSHAKE, 1, correlation_id, kw.string(mechanism)))
    got = kw.read_response(sock)
    assert got is not None, "the broker closed the connection instead of answering SaslHandshake"
    assert got[0] == correlation_id
    reader = got[1]
    error_code = reader.i16()
    mechanisms = [reader.string() for _ in range(reader.i32())]
    return error_code, mechanisms


def sasl_authenticate(sock: socket.socket, token: bytes, correlation_id: int = 2) -> tuple[int, str | None]:
    """SaslAuthenticate v1: (error_code, error_message)."""
    sock.sendall(kw.request(SASL_AUTHENTICATE, 1, correlation_id, kw.bytes_field(token)))
    got = kw.read_response(sock)
    assert got is not None, "the broker closed the connection instead of answering SaslAuthenticate"
    assert got[0] == correlation_id
    reader = got[1]
    return reader.i16(), reader.string()


def test_plain_with_the_right_password_then_requests_are_served(secure):
    with kw.connect(secure.address("SASL_PLAINTEXT")) as sock:
        assert sasl_handshake(sock, "PLAIN") == (0, ENABLED_MECHANISMS)
        error_code, _ = sasl_authenticate(sock, f"\0{ADMIN_USER}\0{ADMIN_PASSWORD}".encode())
        assert error_code == 0
        sock.sendall(kw.metadata_v1(3, []))
        got = kw.read_response(sock)
        assert got is not None and got[0] == 3


@pytest.mark.parametrize("token", [
    f"\0{ADMIN_USER}\0wrong-password".encode(),
    f"\0nobody\0{ADMIN_PASSWORD}".encode(),
])
def test_wrong_password_or_unknown_user_is_sasl_authentication_failed_and_closed(secure, token):
    failures_before = counter(secure, "sasl_authentication_failures")
    with kw.connect(secure.address("SASL_PLAINTEXT")) as sock:
        assert sasl_handshake(sock, "PLAIN")[0] == 0
        error_code, message = sasl_authenticate(sock, token)
        assert error_code == SASL_AUTHENTICATION_FAILED
        assert message and "Invalid username or password" in message
        kw.wait_closed(sock)
    assert counter(secure, "sasl_authentication_failures") == failures_before + 1
    still_serves(secure)


def test_confluent_kafka_with_a_wrong_scram_password_fails_to_authenticate(secure, topic_name):
    error = first_error(secure.address("SASL_SSL"), secure.client_config("SASL_SSL", password="wrong-password"))
    assert error.code() == KafkaError._AUTHENTICATION, error
    assert "invalid credentials" in error.str(), error.str()
    still_serves(secure)


def test_unknown_mechanism_is_unsupported_sasl_mechanism_with_the_list(secure):
    with kw.connect(secure.address("SASL_PLAINTEXT")) as sock:
        assert sasl_handshake(sock, "GSSAPI") == (UNSUPPORTED_SASL_MECHANISM, ENABLED_MECHANISMS)
        kw.wait_closed(sock)
    still_serves(secure)


def test_a_request_before_authentication_closes_the_connection(secure):
    with kw.connect(secure.address("SASL_PLAINTEXT")) as sock:
        sock.sendall(kw.metadata_v1(1, []))
        assert kw.wait_closed(sock) == b""
    with kw.connect(secure.address("SASL_PLAINTEXT")) as sock:
        # ApiVersions is served before authentication (clients send it first).
        sock.sendall(kw.api_versions_v0(1))
        got = kw.read_response(sock)
        assert got is not None and got[1].i16() == 0
        assert sasl_handshake(sock, "SCRAM-SHA-512", correlation_id=2)[0] == 0
        sock.sendall(kw.metadata_v1(3, []))
        assert kw.wait_closed(sock) == b""
    still_serves(secure)


def test_sasl_authenticate_without_a_handshake_is_illegal_sasl_state(secure):
    with kw.connect(secure.address("SASL_PLAINTEXT")) as sock:
        error_code, _ = sasl_authenticate(sock, b"n,,n=admin,r=abc")
        assert error_code == ILLEGAL_SASL_STATE
        kw.wait_closed(sock)


@pytest.mark.parametrize("token", [b"", b"\xff\xfe garbage", b"n,,n=admin", b"p=tls-unique,,n=admin,r=abc"])
def test_malformed_scram_tokens_fail_cleanly(secure, token):
    with kw.connect(secure.address("SASL_PLAINTEXT")) as sock:
        assert sasl_handshake(sock, "SCRAM-SHA-512")[0] == 0
        error_code, _ = sasl_authenticate(sock, token)
        assert error_code == SASL_AUTHENTICATION_FAILED
        kw.wait_closed(sock)
    still_serves(secure)


def test_an_over_long_sasl_token_closes_the_connection(secure):
    with kw.connect(secure.address("SASL_PLAINTEXT")) as sock:
        assert sasl_handshake(sock, "SCRAM-SHA-512")[0] == 0
        token = b"x" * (MAX_UNAUTHENTICATED_REQUEST_BYTES + 1)
        try:
            sock.sendall(kw.request(SASL_AUTHENTICATE, 1, 2, kw.bytes_field(token)))
        except (BrokenPipeError, ConnectionResetError):
            pass  # closed while we were still sending: what this checks
        assert kw.wait_closed(sock) == b""
    still_serves(secure)


def test_sasl_requests_on_a_plaintext_listener_are_illegal_sasl_state(secure):
    with kw.connect(secure.process.bootstrap) as sock:
        error_code, _ = sasl_handshake(sock, "PLAIN")
        assert error_code == ILLEGAL_SASL_STATE


def test_plaintext_client_on_a_tls_port_is_closed(secure):
    failures_before = counter(secure, "tls_handshake_failures")
    for protocol in ["SSL", "SASL_SSL"]:
        with kw.connect(secure.address(protocol)) as sock:
            sock.sendall(kw.api_versions_v0(1))
            answer = kw.wait_closed(sock)
            # At most a TLS alert record (content type 21), never a Kafka response.
            assert answer == b"" or answer[0] == 21, answer[:16]
    assert counter(secure, "tls_handshake_failures") == failures_before + 2
    still_serves(secure)


def test_tls_client_on_a_plaintext_port_fails_and_the_broker_serves_on(secure):
    context = ssl.create_default_context(cafile=str(secure.certs / "ca.pem"))
    with kw.connect(secure.process.bootstrap) as raw:
        with pytest.raises((ssl.SSLError, ConnectionResetError, OSError)):
            with context.wrap_socket(raw, server_hostname="localhost") as tls:
                tls.sendall(kw.api_versions_v0(1))
                tls.recv(1)
    still_serves(secure)
    round_trip(secure.process.bootstrap, {}, f"plain-{uuid.uuid4().hex[:8]}", count=5)


@pytest.fixture(scope="module")
def mtls_broker(tmp_path_factory):
    if conftest.EXTERNAL_BOOTSTRAP or conftest.REFERENCE_KAFKA or not conftest.BROKER_BIN:
        pytest.skip("starts its own broker: needs RINGBROKER_BIN (a ringbroker binary)")
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl CLI to make certificates")
    base = tmp_path_factory.mktemp("mtls-broker")
    certs = base / "certs"
    certs.mkdir()
    make_ca(certs, "ca")
    make_ca(certs, "clients-ca")
    make_ca(certs, "other-ca")
    make_signed(certs, "server", "ca", "/CN=localhost", san="DNS:localhost,IP:127.0.0.1")
    # X.509 v3 (an extension is given): webpki, like most TLS stacks, refuses v1 certificates.
    make_signed(certs, "client", "clients-ca", "/CN=app1/O=test", ext="extendedKeyUsage=clientAuth")
    make_signed(certs, "stranger", "other-ca", "/CN=stranger", ext="extendedKeyUsage=clientAuth")
    port = conftest.free_port()
    flags = ["--metrics-listen", "none", "--listener", f"SSL://127.0.0.1:{port}",
             "--ssl-cert", str(certs / "server.pem"), "--ssl-key", str(certs / "server.key"),
             "--ssl-client-ca", str(certs / "clients-ca.pem"),
             # The principal of each TLS connection is logged at debug.
             "--log", "info,ringbroker_engine::server::connection=debug"]
    process = ch.ConfiguredBroker(conftest.BROKER_BIN, base / "data", 1, base, flags)
    conftest._ACTIVE.append(process)
    process.start()
    yield process, certs, f"127.0.0.1:{port}"
    conftest._shutdown(process)


def test_client_certificates_are_required_when_a_client_ca_is_given(mtls_broker, topic_name):
    _, certs, address = mtls_broker
    base = {"security.protocol": "SSL", "ssl.ca.location": str(certs / "ca.pem")}
    trusted = {**base, "ssl.certificate.location": str(certs / "client.pem"),
               "ssl.key.location": str(certs / "client.key")}
    round_trip(address, trusted, topic_name, count=20)
    for refused in [base, {**base, "ssl.certificate.location": str(certs / "stranger.pem"),
                           "ssl.key.location": str(certs / "stranger.key")}]:
        admin = AdminClient({"bootstrap.servers": address, **refused})
        with pytest.raises(KafkaException):
            admin.list_topics(timeout=5)
    round_trip(address, trusted, f"{topic_name}-after", count=5)
    # Kafka's principal of a certificate: its subject in RFC 2253 form (last RDN first).
    process = mtls_broker[0]
    assert "principal=User:O=test,CN=app1" in process.log_tail(2000), process.log_tail(50)


# The Java client and Kafka's CLI (jars from bench/reference/kafka.sh fetch), compiled and run as
# test_java_client.py does.
from test_java_client import CONSOLE_CONSUMER, TOPIC_COMMAND, java_classpath, run_ok  # noqa: E402,F401

PRODUCER_PERFORMANCE = "org.apache.kafka.tools.ProducerPerformance"
JAVA_RECORDS = 5000


def test_java_client_and_kafka_cli_over_sasl_ssl_scram_sha_512(secure, topic_name, java_classpath, tmp_path):
    properties = tmp_path / "client.properties"
    properties.write_text(
        "security.protocol=SASL_SSL\n"
        "sasl.mechanism=SCRAM-SHA-512\n"
        "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
        f"username=\"{ADMIN_USER}\" password=\"{ADMIN_PASSWORD}\";\n"
        "ssl.truststore.type=PEM\n"
        f"ssl.truststore.location={secure.certs / 'ca.pem'}\n"
    )
    java_round_trip(java_classpath, properties, secure.address("SASL_SSL"), topic_name)


def java_round_trip(classpath: str, properties: Path, address: str, topic: str) -> None:
    """Kafka's CLI creates `topic` through `address` with the client settings in `properties`, the Java producer
    writes JAVA_RECORDS records and a console consumer in a group reads them all back."""
    run_ok(classpath, TOPIC_COMMAND, "--bootstrap-server", address, "--command-config", str(properties),
           "--create", "--topic", topic, "--partitions", "2")
    out = run_ok(classpath, PRODUCER_PERFORMANCE, "--topic", topic, "--num-records", str(JAVA_RECORDS),
                 "--record-size", "100", "--throughput", "-1", "--command-config", str(properties),
                 "--command-property", f"bootstrap.servers={address}", "acks=all")
    assert f"{JAVA_RECORDS} records sent" in out, out
    # A consumer group: FindCoordinator (v4 from the Java client), JoinGroup, SyncGroup, OffsetCommit.
    out = run_ok(classpath, CONSOLE_CONSUMER, "--bootstrap-server", address, "--command-config", str(properties),
                 "--topic", topic, "--group", f"g-{uuid.uuid4().hex[:8]}", "--from-beginning",
                 "--max-messages", str(JAVA_RECORDS), "--timeout-ms", "60000")
    assert len(out.splitlines()) == JAVA_RECORDS


def admin_properties(secure, tmp_path: Path) -> Path:
    """The Java tools' client settings for the admin user over SASL_SSL with SCRAM-SHA-512."""
    properties = tmp_path / "admin.properties"
    properties.write_text(
        "security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\n"
        "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
        f"username=\"{ADMIN_USER}\" password=\"{ADMIN_PASSWORD}\";\n"
        f"ssl.truststore.type=PEM\nssl.truststore.location={secure.certs / 'ca.pem'}\n"
    )
    return properties


def test_kafka_configs_creates_a_scram_user_that_survives_a_restart(secure, topic_name, java_classpath, tmp_path):
    from confluent_kafka.admin import (ScramCredentialInfo, ScramMechanism, UserScramCredentialDeletion,
                                       UserScramCredentialUpsertion)
    properties = admin_properties(secure, tmp_path)
    user = f"bob-{uuid.uuid4().hex[:6]}"
    out = run_ok(java_classpath, "org.apache.kafka.tools.ConfigCommand", "--bootstrap-server",
                 secure.address("SASL_SSL"), "--command-config", str(properties), "--alter", "--add-config",
                 "SCRAM-SHA-256=[iterations=8192,password=bob-secret],SCRAM-SHA-512=[password=bob-secret]",
                 "--entity-type", "users", "--entity-name", user)
    assert f"Completed updating config for user {user}" in out, out
    bob = {**secure.client_config("SASL_SSL", mechanism="SCRAM-SHA-256"), "sasl.username": user,
           "sasl.password": "bob-secret"}
    round_trip(secure.address("SASL_SSL"), bob, topic_name, count=5)

    admin = AdminClient({"bootstrap.servers": secure.address("SASL_SSL"), **secure.client_config("SASL_SSL")})
    described = admin.describe_user_scram_credentials([user])[user].result()
    assert sorted((i.mechanism, i.iterations) for i in described.scram_credential_infos) == [
        (ScramMechanism.SCRAM_SHA_256, 8192), (ScramMechanism.SCRAM_SHA_512, 4096)]
    # Kafka's checks: too few iterations, an unknown user.
    refused = admin.alter_user_scram_credentials([UserScramCredentialUpsertion(
        f"{user}-weak", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 100), b"pw")])
    with pytest.raises(KafkaException) as raised:
        refused[f"{user}-weak"].result()
    assert raised.value.args[0].code() == KafkaError.UNACCEPTABLE_CREDENTIAL
    with pytest.raises(KafkaException) as raised:
        admin.describe_user_scram_credentials(["nobody"])["nobody"].result()
    assert raised.value.args[0].code() == KafkaError.RESOURCE_NOT_FOUND

    # Kept in the data directory: the user still authenticates after a restart.
    secure.process.restart()
    round_trip(secure.address("SASL_SSL"), bob, f"{topic_name}-after", count=5)
    admin = AdminClient({"bootstrap.servers": secure.address("SASL_SSL"), **secure.client_config("SASL_SSL")})
    admin.alter_user_scram_credentials([UserScramCredentialDeletion(user, ScramMechanism.SCRAM_SHA_256)])[
        user].result()
    with kw.connect(secure.address("SASL_PLAINTEXT")) as sock:
        assert sasl_handshake(sock, "SCRAM-SHA-256")[0] == 0
        error_code, _ = sasl_authenticate(sock, f"n,,n={user},r=abc".encode())
        assert error_code == SASL_AUTHENTICATION_FAILED


def test_kafka_configs_describes_users_and_refuses_quotas(secure, java_classpath, tmp_path):
    """`kafka-configs --describe --entity-type users` asks DescribeClientQuotas (none exist: an empty answer)
    before DescribeUserScramCredentials; quotas cannot be set (AlterClientQuotas: INVALID_REQUEST)."""
    from test_java_client import java
    properties = admin_properties(secure, tmp_path)
    config_command = ("org.apache.kafka.tools.ConfigCommand", "--bootstrap-server", secure.address("SASL_SSL"),
                      "--command-config", str(properties))
    out = run_ok(java_classpath, *config_command, "--alter", "--add-config",
                 "SCRAM-SHA-256=[iterations=8192,password=alice-secret]", "--entity-type", "users",
                 "--entity-name", "alice")
    assert "Completed updating config for user alice" in out, out

    out = run_ok(java_classpath, *config_command, "--describe", "--entity-type", "users")
    admin_line = next(line for line in out.splitlines() if f"user-principal '{ADMIN_USER}' are" in line)
    assert "SCRAM-SHA-512=iterations=4096" in admin_line, out
    assert "SCRAM credential configs for user-principal 'alice' are SCRAM-SHA-256=iterations=8192" in out, out
    assert "Quota configs" not in out, out

    out = run_ok(java_classpath, *config_command, "--describe", "--entity-type", "users", "--entity-name", "alice")
    assert "SCRAM credential configs for user-principal 'alice' are SCRAM-SHA-256=iterations=8192" in out, out
    assert ADMIN_USER not in out, out

    refused = java(java_classpath, *config_command, "--alter", "--add-config", "consumer_byte_rate=1024",
                   "--entity-type", "users", "--entity-name", "alice")
    assert refused.returncode != 0, refused.stdout
    assert "client quotas are not supported by ringbroker yet" in refused.stdout + refused.stderr, refused


def test_an_unsupported_sasl_version_before_authentication_closes_the_connection(secure):
    with kw.connect(secure.address("SASL_PLAINTEXT")) as sock:
        sock.sendall(kw.request(SASL_AUTHENTICATE, 9, 1, kw.bytes_field(b"x")))
        assert kw.wait_closed(sock) == b""
    still_serves(secure)


def test_sighup_reloads_the_certificate_for_new_connections(tmp_path_factory, topic_name):
    import signal
    process, certs, ports = _start(tmp_path_factory, "reload-broker", [], ["SSL"])
    try:
        address = f"127.0.0.1:{ports['SSL']}"
        old = {"security.protocol": "SSL", "ssl.ca.location": str(certs / "ca.pem")}
        round_trip(address, old, topic_name, count=5)
        # Rotate: a certificate from another CA, written over the same files.
        make_ca(certs, "new-ca")
        make_signed(certs, "rotated", "new-ca", "/CN=localhost", san="DNS:localhost,IP:127.0.0.1")
        (certs / "server.pem").write_bytes((certs / "rotated.pem").read_bytes())
        (certs / "server.key").write_bytes((certs / "rotated.key").read_bytes())
        log_start = process.log_size()
        process.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 20
        while "TLS certificate reloaded" not in process._log_since(log_start):
            assert time.monotonic() < deadline, process.log_tail(30)
            time.sleep(0.1)
        new = {"security.protocol": "SSL", "ssl.ca.location": str(certs / "new-ca.pem")}
        round_trip(address, new, f"{topic_name}-new", count=5)
        admin = AdminClient({"bootstrap.servers": address, **old})
        with pytest.raises(KafkaException):
            admin.list_topics(timeout=5)
    finally:
        conftest._shutdown(process)


def scram_sha512_entry(user: str, password: str, iterations: int = 4096) -> dict:
    """A SCRAM-SHA-512 credential as an earlier ringbroker's scram-credentials.json held it (RFC 5802 keys)."""
    import base64
    import hashlib
    import hmac
    salt = uuid.uuid4().bytes
    salted = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", "sha512").digest()
    encode = lambda raw: base64.b64encode(raw).decode()  # noqa: E731
    return {"user": user, "mechanism": "SCRAM-SHA-512", "iterations": iterations, "salt": encode(salt),
            "stored_key": encode(hashlib.sha512(client_key).digest()),
            "server_key": encode(hmac.new(salted, b"Server Key", "sha512").digest())}


def test_an_earlier_per_broker_credentials_file_moves_into_the_metadata_log(tmp_path_factory, topic_name):
    """An earlier ringbroker kept each broker's SCRAM credentials in scram-credentials.json: at start they go into
    the metadata log before the --add-scram ones (a password changed then stays changed), the file is renamed,
    and the users still authenticate after a restart (from the log)."""
    import json
    credentials = {"version": 1, "credentials": [scram_sha512_entry(ADMIN_USER, "changed-secret"),
                                                 scram_sha512_entry("dave", "dave-secret")]}
    process, certs, ports = _start(
        tmp_path_factory, "migrating-broker",
        ["--sasl-mechanisms", "SCRAM-SHA-512",
         "--add-scram", f"SCRAM-SHA-512=[name={ADMIN_USER},password={ADMIN_PASSWORD}]"],
        ["SASL_SSL"], data_files={"scram-credentials.json": json.dumps(credentials)})
    broker = SecureBroker(process, certs, ports, 0)
    try:
        data_dir = Path(process.data_dir)
        assert (data_dir / "scram-credentials.json.migrated").exists()
        assert not (data_dir / "scram-credentials.json").exists()
        for attempt in ("first start", "restart"):
            dave = {**broker.client_config("SASL_SSL"), "sasl.username": "dave", "sasl.password": "dave-secret"}
            round_trip(broker.address("SASL_SSL"), dave, f"{topic_name}-{attempt.replace(' ', '-')}", count=5)
            admin = broker.client_config("SASL_SSL", password="changed-secret")
            assert advertised_through(broker.address("SASL_SSL"), admin) == {broker.address("SASL_SSL")}, attempt
            old = broker.client_config("SASL_SSL", password=ADMIN_PASSWORD)
            assert first_error(broker.address("SASL_SSL"), old).code() == KafkaError._AUTHENTICATION, attempt
            if attempt == "first start":
                process.restart()
    finally:
        conftest._shutdown(process)


def test_a_user_deleted_with_kafka_configs_stays_deleted_across_restarts(tmp_path_factory, topic_name):
    """`--add-scram` is handed to the cluster once per data directory, as Kafka applies `kafka-storage format
    --add-scram` once: a credential deleted afterwards does not come back when the broker restarts with the same
    flag, while the others of the flag keep working."""
    from confluent_kafka.admin import ScramMechanism, UserScramCredentialDeletion
    process, certs, ports = _start(
        tmp_path_factory, "add-scram-once-broker",
        ["--sasl-mechanisms", "SCRAM-SHA-512,SCRAM-SHA-256",
         "--add-scram", f"SCRAM-SHA-512=[name={ADMIN_USER},password={ADMIN_PASSWORD}];"
                        f"SCRAM-SHA-256=[name={ADMIN_USER},password={ADMIN_PASSWORD}]"],
        ["SASL_SSL"])
    broker = SecureBroker(process, certs, ports, 0)
    try:
        sha256 = broker.client_config("SASL_SSL", mechanism="SCRAM-SHA-256")
        assert advertised_through(broker.address("SASL_SSL"), sha256) == {broker.address("SASL_SSL")}
        admin = AdminClient({"bootstrap.servers": broker.address("SASL_SSL"), **broker.client_config("SASL_SSL")})
        admin.alter_user_scram_credentials([UserScramCredentialDeletion(ADMIN_USER, ScramMechanism.SCRAM_SHA_256)])[
            ADMIN_USER].result()
        for attempt in ("deleted", "after a restart", "after a second restart"):
            if attempt != "deleted":
                process.restart()
            assert first_error(broker.address("SASL_SSL"), sha256).code() == KafkaError._AUTHENTICATION, attempt
            sha512 = broker.client_config("SASL_SSL")
            assert advertised_through(broker.address("SASL_SSL"), sha512) == {broker.address("SASL_SSL")}, attempt
    finally:
        conftest._shutdown(process)


def test_tls_fetch_of_many_megabytes_from_segment_files_is_byte_exact(tmp_path_factory, topic_name):
    """Without the tail cache every fetch through TLS reads segment files, in steps whose reads overlap the
    encryption of the step before: a consumer of the SSL listener gets every record, in order, unchanged."""
    from confluent_kafka import OFFSET_BEGINNING, Producer, TopicPartition
    process, certs, ports = _start(
        tmp_path_factory, "tls-fetch-broker", ["--set", "tail_cache_bytes_per_shard=0"], ["SSL"])
    broker = SecureBroker(process, certs, ports, 0)
    try:
        count, size = 6000, 2000
        values = [(f"{i:06d}-".encode() * (size // 7 + 1))[:size] for i in range(count)]
        producer = Producer({"bootstrap.servers": f"127.0.0.1:{process.port}", "linger.ms": 20,
                             "batch.size": 1 << 20})
        clients.produce_all(producer, topic_name, [(None, v) for v in values])
        consumer = clients.consumer(broker.address("SSL"), **broker.client_config("SSL"),
                                    **{"fetch.max.bytes": 50 << 20, "max.partition.fetch.bytes": 16 << 20})
        try:
            consumer.assign([TopicPartition(topic_name, 0, OFFSET_BEGINNING)])
            got = read_values(consumer, count)
            assert len(got) == count
            assert got == values
        finally:
            consumer.close()
    finally:
        conftest._shutdown(process)


def advertised_through(bootstrap: str, config: dict) -> set[str]:
    """The brokers Metadata through `bootstrap` lists, as host:port."""
    brokers = AdminClient({"bootstrap.servers": bootstrap, **config}).list_topics(timeout=30).brokers
    return {f"{b.host}:{b.port}" for b in brokers.values()}


def first_error(bootstrap: str, config: dict):
    """The first error a producer with `config` reports within 20 s (an authentication failure here)."""
    errors = []
    producer = Producer({"bootstrap.servers": bootstrap, **config, "error_cb": lambda err: errors.append(err)})
    deadline = time.monotonic() + 20
    while not errors and time.monotonic() < deadline:
        producer.poll(0.2)
    assert errors, "no error within 20 s"
    return errors[0]
