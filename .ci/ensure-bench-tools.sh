#!/usr/bin/env bash
# Install what the benches compare clnrm with, so `make bench` works on a fresh machine.
#
# - docker-compose (Debian's 1.29): bench/orchestration.py's baseline.
# - Apache Otava's wheels, downloaded once into .clnrm/bench/wheels: bench/regression.py
#   builds Otava's own venv from them with --no-index (Otava pins numpy 2.2, so it cannot
#   share clnrm's venv), so the bench itself never reaches the network.
# Idempotent and quiet when everything is there; a tool that cannot be had is reported
# and left out (the bench that needs it then says "skipped: ..." in its JSON line).
set -uo pipefail
cd "$(dirname "$0")/.."

say() { echo "ensure-bench-tools: $*"; }
PYTHON="${PYTHON:-.venv/bin/python}"
OTAVA_VERSION="${OTAVA_VERSION:-0.8.0}"
WHEELS=".clnrm/bench/wheels"

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo -n "$@"; else return 1; fi
}

if ! command -v docker-compose >/dev/null 2>&1; then
    say "installing docker-compose (Debian package) for bench/orchestration.py"
    if ! { as_root apt-get install -y -q docker-compose >/dev/null 2>&1 \
           || { as_root apt-get update -q >/dev/null 2>&1 \
                && as_root apt-get install -y -q docker-compose >/dev/null 2>&1; }; }; then
        say "could not install docker-compose: bench/orchestration.py will report it as skipped"
    fi
fi

mkdir -p "$WHEELS"
if ! ls "$WHEELS"/apache_otava-"$OTAVA_VERSION"-*.whl >/dev/null 2>&1; then
    say "downloading apache-otava==$OTAVA_VERSION and its wheels into $WHEELS"
    if ! "$PYTHON" -m pip download -q "apache-otava==$OTAVA_VERSION" -d "$WHEELS"; then
        say "could not download Otava: bench/regression.py will report it as skipped"
    fi
fi
exit 0
