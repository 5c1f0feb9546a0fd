#!/usr/bin/env bash
# Runs every ringbroker test from a clean clone on a fresh Debian machine (as root, or with sudo-less apt when
# everything is already installed). Installs what it needs (kcat from apt, a Python venv in .venv with pinned
# confluent-kafka/pytest, cargo-deb from crates.io), then: release build, rustfmt check, clippy, `cargo test`,
# the interop tests in tests/interop against the release binary, and the Debian package test
# (scripts/package-test.sh: build, dpkg -i, run the service, kcat through it, dpkg --purge; needs root).
#
#   bash scripts/test.sh            # everything
#   SKIP_INTEROP=1 bash scripts/test.sh   # Rust steps (and the package test) only
#   SKIP_RUST=1 RINGBROKER_BIN=path bash scripts/test.sh   # interop tests only, against an existing binary
#   SKIP_PACKAGE=1 bash scripts/test.sh   # without the package test
#   PYTEST_ARGS="-k kcat" bash scripts/test.sh   # pass extra arguments to pytest
#   FUZZ_SECONDS=60 bash scripts/test.sh   # run every fuzz target (fuzz/) for 60 s each instead of the default:
#                                          # the SASL and TLS entry points' targets for SECURITY_FUZZ_SECONDS
#                                          # (20) each; FUZZ_SECONDS=0 skips fuzzing (installs cargo-afl from
#                                          # crates.io if missing; scripts/fuzz.sh)
#
# Every step prints a banner; the first failing step stops the run with a message naming it.
set -euo pipefail

cd "$(dirname "$0")/.."
REPO_ROOT="$(pwd)"

# Pinned Python test dependencies (versions checked to exist on PyPI).
CONFLUENT_KAFKA_VERSION="2.16.1"
PYTEST_VERSION="9.2.0"
PYTEST_TIMEOUT_VERSION="2.4.0"
# Upper bound for the whole interop run, so a hung broker cannot eat CI's 90 minutes.
INTEROP_TIMEOUT_SECONDS=1800

SCRIPT_START=$(date +%s)
CURRENT_STEP="setup"

on_error() {
    local rc=$?
    trap - ERR
    echo "" >&2
    echo "==> FAILED at step: ${CURRENT_STEP} (exit code ${rc}) after $(( $(date +%s) - SCRIPT_START )) s" >&2
    exit "${rc}"
}
trap on_error ERR

step() {
    CURRENT_STEP="$1"
    echo ""
    echo "==> [$(date -u +%H:%M:%S) +$(( $(date +%s) - SCRIPT_START ))s] ${CURRENT_STEP}"
}

fail() {
    echo "==> FAILED at step: ${CURRENT_STEP}: $*" >&2
    exit 1
}

as_root() {
    if [ "$(id -u)" = "0" ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -n "$@"
    else
        fail "need root to run: $*"
    fi
}

APT_UPDATED=0
apt_install() {
    export DEBIAN_FRONTEND=noninteractive
    if [ "${APT_UPDATED}" = "0" ]; then
        as_root apt-get update -qq
        APT_UPDATED=1
    fi
    as_root apt-get install -y -qq --no-install-recommends "$@"
}

# ---------------------------------------------------------------------------------------------------------------
step "check toolchain (cargo, rustfmt, clippy)"
command -v cargo >/dev/null 2>&1 || fail "cargo not found: install Rust (rustup, toolchain >= 1.85) first"
cargo --version
cargo fmt --version >/dev/null 2>&1 || fail "rustfmt missing: rustup component add rustfmt"
cargo clippy --version >/dev/null 2>&1 || fail "clippy missing: rustup component add clippy"

# ---------------------------------------------------------------------------------------------------------------
if [ "${SKIP_INTEROP:-0}" != "1" ]; then
    step "install system packages (kcat, python3 venv) if missing"
    if ! command -v kcat >/dev/null 2>&1; then
        apt_install kcat
    fi
    kcat -V 2>&1 | head -n 1
    if ! command -v python3 >/dev/null 2>&1; then
        apt_install python3 python3-venv python3-pip
    fi
    # Debian's python3 lacks ensurepip unless python3-venv is installed.
    if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
        apt_install python3-venv
    fi
    python3 --version
    # Java 17 + Maven: the Java-client and Kafka-CLI interop tests (issue 11) run Apache Kafka 4.4's jars.
    if ! command -v javac >/dev/null 2>&1; then
        apt_install openjdk-17-jdk-headless || apt_install default-jdk-headless
    fi
    if ! command -v mvn >/dev/null 2>&1; then
        apt_install maven
    fi
    java -version 2>&1 | head -n 1

    step "fetch Apache Kafka 4.4 jars (bench/reference/pom.xml, Maven Central)"
    bash bench/reference/kafka.sh fetch
    ls bench/reference/target/lib | grep -E '^kafka(_2.13|-clients|-tools)-[0-9]' || fail "Kafka jars missing"

    step "fetch Apache Kafka Connect 4.4 jars (tests/interop/connect/fetch.sh, Maven Central)"
    bash tests/interop/connect/fetch.sh || fail "Kafka Connect jars could not be fetched"

    step "fetch Apache Kafka Streams 4.4 jars (tests/java/streams/pom.xml, Maven Central)"
    if ! compgen -G "tests/java/streams/target/lib/kafka-streams-*.jar" >/dev/null; then
        mvn -q -f tests/java/streams/pom.xml dependency:copy-dependencies || fail "Kafka Streams jars could not be fetched"
    fi

    step "python venv in .venv (confluent-kafka ${CONFLUENT_KAFKA_VERSION}, pytest ${PYTEST_VERSION})"
    if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import sys' >/dev/null 2>&1; then
        rm -rf .venv
        python3 -m venv .venv
    fi
    .venv/bin/python -m pip install --quiet --disable-pip-version-check \
        "confluent-kafka==${CONFLUENT_KAFKA_VERSION}" \
        "pytest==${PYTEST_VERSION}" \
        "pytest-timeout==${PYTEST_TIMEOUT_VERSION}"
    .venv/bin/python -c 'import confluent_kafka, pytest; print("confluent-kafka", confluent_kafka.version(), "librdkafka", confluent_kafka.libversion()[0], "pytest", pytest.__version__)'
fi

# ---------------------------------------------------------------------------------------------------------------
if [ "${SKIP_RUST:-0}" != "1" ]; then
    step "cargo build --release --workspace"
    cargo build --release --workspace

    step "cargo fmt --all -- --check"
    cargo fmt --all -- --check || fail "code is not rustfmt-clean: run 'cargo fmt --all' and commit"

    step "cargo clippy --workspace --all-targets -- -D warnings"
    cargo clippy --workspace --all-targets -- -D warnings

    step "cargo test --workspace"
    cargo test --workspace
fi

# ---------------------------------------------------------------------------------------------------------------
# The targets that see an unauthenticated client's bytes (SASL frames and tokens, the TLS handshake, a client
# certificate's subject) run in every full run for a bounded time; FUZZ_SECONDS runs all targets instead.
SECURITY_FUZZ_TARGETS=(sasl_session sasl_tokens tls_accept cert_subject)
SECURITY_FUZZ_SECONDS="${SECURITY_FUZZ_SECONDS:-20}"
if [ "${SKIP_RUST:-0}" != "1" ]; then
    if [ -z "${FUZZ_SECONDS:-}" ]; then
        step "fuzz: the SASL and TLS targets for ${SECURITY_FUZZ_SECONDS} s each (scripts/fuzz.sh)"
        FUZZ_SECONDS="${SECURITY_FUZZ_SECONDS}" bash scripts/fuzz.sh "${SECURITY_FUZZ_TARGETS[@]}"
    elif [ "${FUZZ_SECONDS}" != "0" ]; then
        step "fuzz: every target in fuzz/ for ${FUZZ_SECONDS} s (scripts/fuzz.sh)"
        FUZZ_SECONDS="${FUZZ_SECONDS}" bash scripts/fuzz.sh
    fi
fi

# ---------------------------------------------------------------------------------------------------------------
if [ "${SKIP_INTEROP:-0}" != "1" ]; then
    step "interop tests: pytest tests/interop (real clients against the release binary)"
    TARGET_DIR="$(cargo metadata --format-version 1 --no-deps \
        | .venv/bin/python -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
    export RINGBROKER_BIN="${RINGBROKER_BIN:-${TARGET_DIR}/release/ringbroker}"
    [ -x "${RINGBROKER_BIN}" ] || fail "broker binary not found at ${RINGBROKER_BIN}"
    echo "RINGBROKER_BIN=${RINGBROKER_BIN}"
    # pytest's exit code is examined below (5 = no tests ran must fail too), so neither `set -e` nor the ERR
    # trap may act on it.
    trap - ERR
    set +e
    # shellcheck disable=SC2086  # PYTEST_ARGS is deliberately word-split
    timeout --signal=TERM --kill-after=30 "${INTEROP_TIMEOUT_SECONDS}" \
        .venv/bin/python -m pytest tests/interop -ra --durations=15 ${PYTEST_ARGS:-}
    rc=$?
    set -e
    trap on_error ERR
    case "${rc}" in
        0) ;;
        5) fail "pytest collected no tests (exit code 5): the interop suite must not be empty" ;;
        124) fail "pytest did not finish within ${INTEROP_TIMEOUT_SECONDS} s" ;;
        *) fail "pytest failed (exit code ${rc})" ;;
    esac
fi

# ---------------------------------------------------------------------------------------------------------------
if [ "${SKIP_PACKAGE:-0}" != "1" ]; then
    step "Debian package: build, install, run as a service, kcat through it, purge (scripts/package-test.sh)"
    [ "$(id -u)" = "0" ] || fail "the package test installs a package and a system user: run as root, or SKIP_PACKAGE=1"
    if ! command -v kcat >/dev/null 2>&1; then
        apt_install kcat
    fi
    bash scripts/package-test.sh
fi

CURRENT_STEP="done"
echo ""
echo "==> all steps passed in $(( $(date +%s) - SCRIPT_START )) s"
