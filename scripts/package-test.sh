#!/usr/bin/env bash
# The Debian package as a user meets it: build it (scripts/package.sh, from the release build), install it
# with dpkg, check what it installed, start the service (with systemd where the machine runs systemd, else
# the unit's ExecStart line by hand as the ringbroker user with the unit's limits), produce and consume
# through it with kcat, stop it, and purge it: binaries, config, unit, data, user and group gone.
#
# Needs root, kcat and python3; called by scripts/test.sh. Refuses to run where a ringbroker package is
# already installed (it would replace someone's broker). One run at a time per machine (flock).
#
#   bash scripts/package-test.sh
set -euo pipefail

cd "$(dirname "$0")/.."

LOCK_FILE="/tmp/ringbroker-package-test.lock"
# How long the broker may take to answer after it was started.
START_TIMEOUT_S=60
# How long it may take to stop after SIGTERM (the unit allows 120 s; a test broker has nothing to flush).
STOP_TIMEOUT_S=30
# Records produced and consumed through the installed broker.
RECORDS=1000

fail() {
    echo "==> package test FAILED: $*" >&2
    exit 1
}

[ "$(id -u)" = "0" ] || fail "needs root (dpkg -i, a system user)"
command -v kcat >/dev/null 2>&1 || fail "needs kcat (apt-get install kcat)"
command -v python3 >/dev/null 2>&1 || fail "needs python3"

exec 9>"${LOCK_FILE}"
flock 9

if dpkg-query -W -f='${Status}' ringbroker 2>/dev/null | grep -q "installed"; then
    fail "a ringbroker package is already installed on this machine; this test would replace it"
fi

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
PORT="$(free_port)"
METRICS_PORT="$(free_port)"
BOOTSTRAP="127.0.0.1:${PORT}"
DROP_IN_DIR="/etc/systemd/system/ringbroker.service.d"
DROP_IN="${DROP_IN_DIR}/package-test.conf"
WORK="$(mktemp -d)"
BROKER_PID=""
USE_SYSTEMD=0
# `systemctl is-system-running` prints "offline" (and fails) where systemd is not PID 1, as in containers.
if STATE="$(systemctl is-system-running 2>/dev/null)" || [ "${STATE:-}" = "degraded" ]; then
    USE_SYSTEMD=1
fi
echo "==> systemd: ${STATE:-absent} (service started $([ "${USE_SYSTEMD}" = 1 ] && echo "by systemctl" || echo "by hand from the unit's ExecStart"))"

cleanup() {
    local rc=$?
    if [ -n "${BROKER_PID}" ] && kill -0 "${BROKER_PID}" 2>/dev/null; then
        kill -TERM "${BROKER_PID}" 2>/dev/null || true
        wait "${BROKER_PID}" 2>/dev/null || true
    fi
    if [ "${USE_SYSTEMD}" = 1 ]; then
        systemctl stop ringbroker 2>/dev/null || true
        rm -f "${DROP_IN}"
        rmdir "${DROP_IN_DIR}" 2>/dev/null || true
        systemctl daemon-reload 2>/dev/null || true
    fi
    if [ "${rc}" != 0 ]; then
        echo "==> broker log (tail):" >&2
        tail -n 60 "${WORK}/broker.log" 2>/dev/null >&2 || true
        dpkg --purge ringbroker >/dev/null 2>&1 || true
    fi
    rm -rf "${WORK}"
}
trap cleanup EXIT

echo "==> build the package (scripts/package.sh)"
DEB="$(PACKAGE_FAST=1 bash scripts/package.sh | tail -n 1)"
[ -f "${DEB}" ] || fail "scripts/package.sh made no package (got '${DEB}')"
echo "${DEB}"
dpkg-deb --info "${DEB}" | grep -E "Package|Version|Depends"

# The service listens on free ports, set in the environment: the packaged config file stays as shipped
# (environment variables override it, as for any setting).
if [ "${USE_SYSTEMD}" = 1 ]; then
    mkdir -p "${DROP_IN_DIR}"
    printf '[Service]\nEnvironment=RINGBROKER_LISTENERS=PLAINTEXT://%s\nEnvironment=RINGBROKER_METRICS_LISTEN=127.0.0.1:%s\n' \
        "${BOOTSTRAP}" "${METRICS_PORT}" > "${DROP_IN}"
fi

echo "==> dpkg -i"
dpkg -i "${DEB}"

echo "==> what the package installed"
for path in /usr/bin/ringbroker /usr/bin/ringbroker-bench /etc/ringbroker/ringbroker.toml \
    /usr/lib/systemd/system/ringbroker.service /usr/share/man/man1/ringbroker-serve.1.gz \
    /usr/share/bash-completion/completions/ringbroker /usr/share/zsh/vendor-completions/_ringbroker \
    /usr/share/fish/vendor_completions.d/ringbroker.fish /usr/share/doc/ringbroker/docs/OPERATIONS.md; do
    [ -e "${path}" ] || fail "${path} missing"
done
dpkg-query -W -f='${Conffiles}\n' ringbroker | grep -q /etc/ringbroker/ringbroker.toml \
    || fail "/etc/ringbroker/ringbroker.toml is not a conffile"
id ringbroker >/dev/null || fail "no ringbroker user"
[ -L /etc/systemd/system/multi-user.target.wants/ringbroker.service ] || fail "the service is not enabled"
[ "$(stat -c %U /var/lib/ringbroker)" = "ringbroker" ] || fail "/var/lib/ringbroker is not the ringbroker user's"
ringbroker --version
ringbroker config check /etc/ringbroker/ringbroker.toml | tail -n 1
ringbroker-bench --help >/dev/null

UNIT=/usr/lib/systemd/system/ringbroker.service
for directive in "Restart=on-failure" "LimitMEMLOCK=" "LimitNOFILE=" "CPUAffinity" "User=ringbroker"; do
    grep -q "${directive}" "${UNIT}" || fail "${UNIT} lacks ${directive}"
done

echo "==> start the service"
if [ "${USE_SYSTEMD}" = 1 ]; then
    systemctl daemon-reload
    systemctl restart ringbroker
else
    EXEC_START="$(sed -n 's/^ExecStart=//p' "${UNIT}")"
    WORKING_DIR="$(sed -n 's/^WorkingDirectory=//p' "${UNIT}")"
    MEMLOCK="$(sed -n 's/^LimitMEMLOCK=//p' "${UNIT}")"
    NOFILE="$(sed -n 's/^LimitNOFILE=//p' "${UNIT}")"
    [ -n "${EXEC_START}" ] || fail "no ExecStart in ${UNIT}"
    # The unit's limits, where this machine lets root raise them (a container may not).
    [ "${MEMLOCK}" = "infinity" ] && MEMLOCK=unlimited
    ulimit -l "${MEMLOCK}" 2>/dev/null \
        || echo "note: cannot raise the locked-memory limit to ${MEMLOCK} here (keeps $(ulimit -l) KiB)"
    ulimit -n "${NOFILE}" 2>/dev/null \
        || echo "note: cannot raise the open-file limit to ${NOFILE} here (keeps $(ulimit -n))"
    echo "as ringbroker in ${WORKING_DIR}: ${EXEC_START}"
    # setpriv, not su/runuser: no PAM session, so the limits set above are the ones the broker gets.
    (cd "${WORKING_DIR}" && exec env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
        RINGBROKER_LISTENERS="PLAINTEXT://${BOOTSTRAP}" RINGBROKER_METRICS_LISTEN="127.0.0.1:${METRICS_PORT}" \
        setpriv --reuid=ringbroker --regid=ringbroker --init-groups -- ${EXEC_START}) \
        > "${WORK}/broker.log" 2>&1 &
    BROKER_PID=$!
fi

DEADLINE=$(( $(date +%s) + START_TIMEOUT_S ))
until kcat -L -b "${BOOTSTRAP}" -m 2 >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "${DEADLINE}" ] || fail "the service did not answer on ${BOOTSTRAP} within ${START_TIMEOUT_S} s"
    if [ -n "${BROKER_PID}" ] && ! kill -0 "${BROKER_PID}" 2>/dev/null; then
        fail "the broker exited"
    fi
    sleep 0.5
done
if [ -n "${BROKER_PID}" ]; then
    [ "$(ps -o user= -p "${BROKER_PID}" | tr -d ' ')" = "ringbroker" ] || fail "the broker does not run as ringbroker"
fi
python3 - "${METRICS_PORT}" <<'PY'
import sys, urllib.request
body = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/ready", timeout=5).read()
assert body == b"ready\n", body
PY

echo "==> produce and consume ${RECORDS} records with kcat"
TOPIC="package-test-$$"
seq 1 "${RECORDS}" > "${WORK}/in.txt"
kcat -P -b "${BOOTSTRAP}" -t "${TOPIC}" < "${WORK}/in.txt"
kcat -C -b "${BOOTSTRAP}" -t "${TOPIC}" -o beginning -e -q > "${WORK}/out.txt"
cmp "${WORK}/in.txt" "${WORK}/out.txt" || fail "records read back differ from records written"
[ -d "/var/lib/ringbroker/${TOPIC}-0" ] || fail "the partition is not in /var/lib/ringbroker"
[ "$(stat -c %U "/var/lib/ringbroker/${TOPIC}-0")" = "ringbroker" ] || fail "partition files not owned by ringbroker"

echo "==> stop the service"
if [ "${USE_SYSTEMD}" = 1 ]; then
    systemctl stop ringbroker
    journalctl -u ringbroker --no-pager -n 20 > "${WORK}/broker.log" || true
else
    kill -TERM "${BROKER_PID}"
    rc=0
    timeout "${STOP_TIMEOUT_S}" tail --pid="${BROKER_PID}" -f /dev/null || fail "the broker did not stop"
    wait "${BROKER_PID}" || rc=$?
    BROKER_PID=""
    [ "${rc}" = 0 ] || fail "the broker exited with ${rc} after SIGTERM"
    grep -q "ringbroker stopped cleanly" "${WORK}/broker.log" || fail "no clean stop in the log"
    if grep -q $'\x1b\[' "${WORK}/broker.log"; then
        fail "terminal colour codes in a log that is not a terminal"
    fi
fi

echo "==> dpkg --purge"
dpkg --purge ringbroker
for path in /usr/bin/ringbroker /usr/bin/ringbroker-bench /etc/ringbroker /var/lib/ringbroker \
    /usr/lib/systemd/system/ringbroker.service /etc/systemd/system/multi-user.target.wants/ringbroker.service \
    /usr/share/doc/ringbroker /usr/share/ringbroker /usr/share/man/man1/ringbroker.1.gz; do
    [ ! -e "${path}" ] || fail "${path} is still there after purge"
done
! getent passwd ringbroker >/dev/null || fail "the ringbroker user is still there after purge"
! getent group ringbroker >/dev/null || fail "the ringbroker group is still there after purge"
echo "==> package test passed"
