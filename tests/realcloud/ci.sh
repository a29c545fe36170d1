#!/usr/bin/env bash
# CI: bring the full real OpenStack up on this machine, run the cloud tests against it, and take
# it down again whatever the tests did. Two pytest sessions share the one cloud:
#   1. the identity conformance suite with CODESQUARE_TEST_CLOUD=keystone, against the cloud's
#      Keystone (a real one from PyPI; the suite needs nothing else, so no second Keystone is
#      brought up for it);
#   2. every other cloud test with CODESQUARE_TEST_CLOUD=realcloud.
# Extra arguments go to both pytest sessions (e.g. -x, -k). Runs as root on a clean clone.
#
# `ci.sh --prepare` only gets the machine ready (packages, MariaDB, RabbitMQ, the cloud's
# virtualenv) and exits: CI starts it early, in the background, since it mostly waits on the
# network.
set -euo pipefail
prepare_only=0
if [ "${1:-}" = --prepare ]; then
    prepare_only=1
    shift
fi

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck source=../../bin/_lib.sh
source "$ROOT/bin/_lib.sh"

say() { echo "==> $*"; }

apt_ready=0
need_package() {  # need_package COMMAND DEBIAN-PACKAGE
    command -v "$1" >/dev/null 2>&1 && return 0
    if [ "$apt_ready" -eq 0 ]; then
        apt-get update -qq
        apt_ready=1
    fi
    say "installing $2"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
}

wait_for() {  # wait_for SECONDS WHAT COMMAND...
    local seconds=$1 what=$2
    shift 2
    for _ in $(seq "$seconds"); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 1
    done
    echo "error: $what did not come up within ${seconds}s" >&2
    return 1
}

sql_ok() { mariadb -h 127.0.0.1 -u root -e 'SELECT 1'; }

need_package mariadb mariadb-server
need_package rabbitmqctl rabbitmq-server

if ! sql_ok >/dev/null 2>&1; then
    say "starting MariaDB"
    service mariadb start >/dev/null 2>&1 || true
    wait_for 60 MariaDB mariadb -u root -e 'SELECT 1'
    # A fresh Debian MariaDB lets root in over its socket only; the cloud connects over TCP.
    if ! sql_ok >/dev/null 2>&1; then
        mariadb -u root -e "ALTER USER 'root'@'localhost' IDENTIFIED VIA unix_socket OR mysql_native_password USING PASSWORD('')"
    fi
    wait_for 30 "MariaDB on 127.0.0.1" sql_ok
fi
if ! rabbitmqctl -q status >/dev/null 2>&1; then
    say "starting RabbitMQ"
    service rabbitmq-server start >/dev/null 2>&1 || rabbitmq-server -detached
    wait_for 90 RabbitMQ rabbitmqctl -q status
fi

ensure_venv  # the project's .venv, from bin/_lib.sh; the cloud builds its own venv
cd "$ROOT"

CLOUD_DIR="${CODESQUARE_REALCLOUD_DIR:-$ROOT/.realcloud/ci}"
if [ "$prepare_only" -eq 1 ]; then
    say "building the real cloud's virtualenv (if its pins changed)"
    mkdir -p "$CLOUD_DIR/log"
    python -c 'import sys; from pathlib import Path; from tests.realcloud import installer
# The Keystone set first: the suites'"'"' Keystone test needs only that, and can go on meanwhile.
for mode in ("keystone", "full"):
    _, took = installer.ensure_venv(mode, log=Path(sys.argv[1]))
    print(f"==> the real cloud'"'"'s virtualenv has the {mode} set ({took:.0f} s)")' "$CLOUD_DIR/log/pip.log"
    exit 0
fi

teardown() {
    say "taking the real cloud down"
    python -m tests.realcloud down --dir "$CLOUD_DIR" || true
}
trap teardown EXIT

say "bringing the real cloud up in $CLOUD_DIR"
python -m tests.realcloud down --dir "$CLOUD_DIR" >/dev/null  # leftovers of an aborted run
python -m tests.realcloud up --mode full --dir "$CLOUD_DIR" | grep '^#'

export CODESQUARE_REALCLOUD_DIR="$CLOUD_DIR"
session() {  # session TARGET WHAT PYTEST-ARGS...: one pytest session; prints its time and result
    local target=$1 what=$2 begun rc
    shift 2
    begun=$(date +%s)
    say "$what"
    set +e
    CODESQUARE_TEST_CLOUD=$target python -m pytest "$@"
    rc=$?
    set -e
    if [ "$rc" -eq 5 ]; then
        echo "error: no test was collected for: $what; that is a failure." >&2
        rc=1
    fi
    say "took $(($(date +%s) - begun)) s, exit $rc: $what"
    return "$rc"
}

identity=tests/conformance/test_identity_conformance.py
# The cloud's tests spend about a third of their time waiting on it (one session keeps this
# 2-core machine about 60 % busy): the identity session and two sessions of the other cloud tests
# (each a share of them, dealt in turn: CODESQUARE_TEST_SHARD in tests/cloud_targets.py) run side
# by side. Each pytest process has its own test database and VAR_DIR (tests/testenv.py); the
# tests name everything they make uniquely.
logs=$(mktemp -d "${TMPDIR:-/tmp}/codesquare-realcloud.XXXXXX")
declare -A what_of=()
session keystone "identity conformance against the real cloud's Keystone" \
    "$identity" tests/realcloud "$@" >"$logs/identity.log" 2>&1 &
what_of[$!]=identity
for share in 1 2; do
    CODESQUARE_TEST_SHARD=$share/2 session realcloud \
        "cloud tests against the full real cloud, share $share of 2" \
        tests/conformance tests/integration tests/realcloud --ignore="$identity" "$@" \
        >"$logs/share$share.log" 2>&1 &
    what_of[$!]=share$share
done
rc=0
while [ "${#what_of[@]}" -gt 0 ]; do
    set +e
    wait -n -p done_pid "${!what_of[@]}"
    session_rc=$?
    set -e
    cat "$logs/${what_of[$done_pid]}.log"
    unset "what_of[$done_pid]"
    [ "$session_rc" -eq 0 ] || rc=1
done
rm -rf "$logs"
exit "$rc"
