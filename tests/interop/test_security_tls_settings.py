"""Issue 20 (security): Kafka's TLS settings and named listeners, against real TLS stacks and clients.

- `ssl.enabled.protocols=TLSv1.3`: a TLS 1.2-only client (Python's ssl, OpenSSL underneath) is refused at
  the handshake, a TLS 1.3 one and confluent-kafka are served;
- `ssl.cipher.suites`: a client offering only suites outside the list fails the handshake, one offering a
  listed suite gets it; the broker's order picks the suite (Kafka's JDK prefers the server's order);
- `listener.security.protocol.map`: listeners with names of their own (CLIENT:SASL_SSL, REPLICATION:SSL),
  `inter.broker.listener.name` naming one, Metadata advertising the listener a client came in on;
- a name the broker's TLS does not know stops the start with a message naming it.
The brokers, certificates and round trips are those of test_security.py.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess

import pytest

import conftest
import kafka_wire as kw
from test_java_client import java_classpath  # noqa: F401  (a fixture)
from test_security import (ADMIN_PASSWORD, ADMIN_USER, SecureBroker, _start, admin_properties, advertised_through,
                           java_round_trip, round_trip)


def handshake(address: str, certs, minimum=None, maximum=None, ciphers: str | None = None) -> tuple[str, str]:
    """A TLS handshake with the broker at `address` and one ApiVersions round trip over it: the version and
    cipher suite negotiated. Raises ssl.SSLError (or a reset) when the broker refuses the handshake."""
    context = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    if minimum:
        context.minimum_version = minimum
    if maximum:
        context.maximum_version = maximum
    if ciphers:
        context.set_ciphers(ciphers)
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(kw.api_versions_v0(7))
            response = kw.read_response(tls)
            assert response is not None and response[0] == 7, response
            return tls.version(), tls.cipher()[0]


def openssl_tls13(address: str, certs, suites: str) -> subprocess.CompletedProcess:
    """`openssl s_client` offering only the TLS 1.3 `suites` (Python's ssl cannot restrict TLS 1.3 suites)."""
    return subprocess.run(["openssl", "s_client", "-connect", address, "-tls1_3", "-ciphersuites", suites,
                           "-CAfile", str(certs / "ca.pem"), "-servername", "localhost", "-brief"],
                          input="", text=True, capture_output=True, timeout=30)


@pytest.fixture(scope="module")
def tls13_only(tmp_path_factory):
    process, certs, ports = _start(
        tmp_path_factory, "tls13-broker",
        ["--ssl-enabled-protocols", "TLSv1.3",
         "--ssl-cipher-suites", "TLS_AES_128_GCM_SHA256,TLS_CHACHA20_POLY1305_SHA256"],
        ["SSL"])
    yield SecureBroker(process, certs, ports, 0)
    conftest._shutdown(process)


@pytest.fixture(scope="module")
def tls12_one_suite(tmp_path_factory):
    process, certs, ports = _start(
        tmp_path_factory, "tls12-suite-broker", ["--ssl-cipher-suites", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"],
        ["SSL"])
    yield SecureBroker(process, certs, ports, 0)
    conftest._shutdown(process)


def test_tls13_only_refuses_a_tls12_client_and_serves_tls13_ones(tls13_only, topic_name):
    address = tls13_only.address("SSL")
    with pytest.raises((ssl.SSLError, ConnectionResetError)):
        handshake(address, tls13_only.certs, maximum=ssl.TLSVersion.TLSv1_2)
    version, _ = handshake(address, tls13_only.certs, minimum=ssl.TLSVersion.TLSv1_3)
    assert version == "TLSv1.3"
    round_trip(address, tls13_only.client_config("SSL"), topic_name, count=50)


def test_the_brokers_order_of_suites_wins(tls13_only):
    # OpenSSL offers TLS_AES_256_GCM_SHA384 first; the broker lists TLS_AES_128_GCM_SHA256 first.
    _, suite = handshake(tls13_only.address("SSL"), tls13_only.certs)
    assert suite == "TLS_AES_128_GCM_SHA256"


def test_a_tls13_client_without_a_listed_suite_fails_and_one_with_works(tls13_only):
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl CLI")
    address = tls13_only.address("SSL")
    refused = openssl_tls13(address, tls13_only.certs, "TLS_AES_256_GCM_SHA384")
    assert "Ciphersuite: TLS_AES_256_GCM_SHA384" not in refused.stdout + refused.stderr
    assert refused.returncode != 0 or "handshake failure" in refused.stderr, refused.stderr
    served = openssl_tls13(address, tls13_only.certs, "TLS_CHACHA20_POLY1305_SHA256")
    assert served.returncode == 0, served.stderr
    assert "TLS_CHACHA20_POLY1305_SHA256" in served.stdout + served.stderr, served.stdout + served.stderr
    # The broker serves on after the refused handshake.
    assert handshake(address, tls13_only.certs)[0] == "TLSv1.3"


def test_one_tls12_suite_refuses_clients_offering_only_others(tls12_one_suite, topic_name):
    address = tls12_one_suite.address("SSL")
    with pytest.raises((ssl.SSLError, ConnectionResetError)):
        handshake(address, tls12_one_suite.certs, maximum=ssl.TLSVersion.TLSv1_2,
                  ciphers="ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-CHACHA20-POLY1305")
    version, suite = handshake(address, tls12_one_suite.certs, maximum=ssl.TLSVersion.TLSv1_2,
                               ciphers="ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256")
    assert (version, suite) == ("TLSv1.2", "ECDHE-RSA-AES128-GCM-SHA256")
    # No TLS 1.3 suite is listed: a client that can do both gets TLS 1.2 with the listed suite.
    assert handshake(address, tls12_one_suite.certs) == ("TLSv1.2", "ECDHE-RSA-AES128-GCM-SHA256")
    round_trip(address, tls12_one_suite.client_config("SSL"), topic_name, count=50)


@pytest.fixture(scope="module")
def named(tmp_path_factory):
    # The fixture's own --listen (named PLAINTEXT) needs its entry too: a map that is set replaces Kafka's.
    process, certs, ports = _start(
        tmp_path_factory, "named-listeners-broker",
        ["--listener-security-protocol-map", "PLAINTEXT:PLAINTEXT,CLIENT:SASL_SSL,REPLICATION:SSL",
         "--inter-broker-listener-name", "REPLICATION",
         "--sasl-mechanisms", "SCRAM-SHA-512",
         "--add-scram", f"SCRAM-SHA-512=[name={ADMIN_USER},password={ADMIN_PASSWORD}]"],
        ["CLIENT", "REPLICATION"])
    yield SecureBroker(process, certs, ports, 0)
    conftest._shutdown(process)


def test_named_listeners_speak_their_mapped_protocols(named, topic_name):
    client = {"security.protocol": "SASL_SSL", "ssl.ca.location": str(named.certs / "ca.pem"),
              "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": ADMIN_USER, "sasl.password": ADMIN_PASSWORD}
    round_trip(named.address("CLIENT"), client, topic_name, count=100)
    replication = {"security.protocol": "SSL", "ssl.ca.location": str(named.certs / "ca.pem")}
    round_trip(named.address("REPLICATION"), replication, f"{topic_name}-r", count=20)
    # Each listener advertises itself, by name.
    assert advertised_through(named.address("REPLICATION"), replication) == {named.address("REPLICATION")}
    assert advertised_through(named.process.bootstrap, {}) == {named.process.bootstrap}
    log = named.process.log_tail(400)
    assert "CLIENT://127.0.0.1" in log and "(SASL_SSL)" in log, log


def test_named_sasl_ssl_listener_with_the_java_client(named, topic_name, java_classpath, tmp_path):
    """The Java client (JSSE, Kafka's own SASL/SCRAM) through the CLIENT listener: topic, producer, group."""
    java_round_trip(java_classpath, admin_properties(named, tmp_path), named.address("CLIENT"), topic_name)


def start_refused(tmp_path, flags: list[str]) -> str:
    """Runs `serve` with `flags`, which must stop it at start: its output."""
    if not conftest.BROKER_BIN or conftest.EXTERNAL_BOOTSTRAP or conftest.REFERENCE_KAFKA:
        pytest.skip("starts its own broker: needs RINGBROKER_BIN")
    done = subprocess.run([conftest.BROKER_BIN, "serve", "--data-dir", str(tmp_path / "data"),
                           "--metrics-listen", "none", "--listen", f"127.0.0.1:{conftest.free_port()}", *flags],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def test_unknown_names_stop_the_start_naming_them(tmp_path):
    out = start_refused(tmp_path, ["--ssl-cipher-suites", "TLS_AES_128_GCM_SHA256,TLS_RSA_WITH_AES_128_CBC_SHA"])
    # A flag's error names the flag (clap's message), a file's or the environment's the key.
    assert "`TLS_RSA_WITH_AES_128_CBC_SHA`" in out and "--ssl-cipher-suites" in out, out
    out = start_refused(tmp_path, ["--ssl-enabled-protocols", "TLSv1.1,TLSv1.2"])
    assert "TLSv1.1" in out, out
    out = start_refused(tmp_path, ["--listener", f"CLIENT://127.0.0.1:{conftest.free_port()}"])
    assert "listener CLIENT has no security protocol" in out, out
