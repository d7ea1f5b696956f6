#!/usr/bin/env bash
# Make sure a Docker engine answers, installing and starting one when needed.
#
# Idempotent: when `docker info` (or the socket's /_ping) already answers it exits 0 at
# once. Otherwise, as root (or with password-less sudo), it apt-installs docker.io when
# dockerd is missing (plus busybox-static and debootstrap, which clnrm's image builds
# need), starts dockerd in the background and waits up to 60 s for it.
# Used by the Makefile and .ci/run; CI starts on a bare Debian machine.
set -euo pipefail

# DOCKER_HOST=unix:///path, CLNRM_DOCKERD_PIDFILE and CLNRM_DOCKERD_ARGS point it at
# another socket, pid file and dockerd flags. Careful beside a running engine: a second
# dockerd given `--bridge none` deletes the host's docker0 at start-up, cutting the
# first engine's containers off the default bridge (recreate it with `ip link add`).
SOCKET="/var/run/docker.sock"
case "${DOCKER_HOST:-}" in unix://*) SOCKET="${DOCKER_HOST#unix://}" ;; esac
PIDFILE="${CLNRM_DOCKERD_PIDFILE:-/var/run/docker.pid}"
WAIT_SECONDS="${CLNRM_DOCKER_WAIT:-60}"
read -r -a EXTRA_ARGS <<<"${CLNRM_DOCKERD_ARGS:-}"

say() { echo "ensure-docker: $*"; }

engine_answers() {
    if command -v docker >/dev/null 2>&1; then
        docker info >/dev/null 2>&1
    elif command -v curl >/dev/null 2>&1; then
        curl -fsS --max-time 5 --unix-socket "$SOCKET" http://localhost/_ping >/dev/null 2>&1
    else
        return 1
    fi
}

server_version() {
    if command -v docker >/dev/null 2>&1; then
        docker version --format '{{.Server.Version}}' 2>/dev/null || echo "?"
    else
        curl -fsS --max-time 5 --unix-socket "$SOCKET" http://localhost/version 2>/dev/null \
            | sed -n 's/.*"Version":"\([^"]*\)".*/\1/p' | head -n 1
    fi
}

if engine_answers; then
    say "Docker engine is up (server $(server_version))"
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    AS_ROOT=()
    LOG=/var/log/clnrm-dockerd.log
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    AS_ROOT=(sudo -n)
    LOG="${TMPDIR:-/tmp}/clnrm-dockerd.log"
else
    say "no Docker engine answers on $SOCKET, and starting one needs root (no root, no password-less sudo)"
    say "start it yourself (e.g. 'sudo systemctl start docker' or 'sudo dockerd &'), then retry"
    exit 1
fi

packages=()
command -v dockerd >/dev/null 2>&1 || [ -x /usr/sbin/dockerd ] || packages+=(docker.io)
# docker.io ships the CLI too; only ask for it when no docker command exists at all.
if ! command -v docker >/dev/null 2>&1 && [[ " ${packages[*]-} " != *" docker.io "* ]]; then
    packages+=(docker.io)
fi
command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] || packages+=(debootstrap)
dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q "install ok installed" \
    || packages+=(busybox-static)
if ! command -v docker >/dev/null 2>&1 && ! command -v curl >/dev/null 2>&1; then
    packages+=(curl)
fi

if [ "${#packages[@]}" -gt 0 ]; then
    if ! command -v apt-get >/dev/null 2>&1; then
        say "missing ${packages[*]} and apt-get is not available; install them yourself"
        exit 1
    fi
    say "installing ${packages[*]} with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    "${AS_ROOT[@]}" apt-get update -qq
    "${AS_ROOT[@]}" apt-get install -y -qq "${packages[@]}" >/dev/null
fi

DOCKERD="$(command -v dockerd || echo /usr/sbin/dockerd)"
running_pid="$(cat "$PIDFILE" 2>/dev/null || true)"
if [ -n "$running_pid" ] && kill -0 "$running_pid" 2>/dev/null; then
    say "dockerd (pid $running_pid) is running but not answering yet; waiting for it"
else
    # A dockerd killed without cleanup leaves its pid file, and a new one refuses to start.
    [ -z "$running_pid" ] || "${AS_ROOT[@]}" rm -f "$PIDFILE"
    : >"$LOG" 2>/dev/null || LOG="${TMPDIR:-/tmp}/clnrm-dockerd.log"
    args=(--host "unix://$SOCKET" --pidfile "$PIDFILE" "${EXTRA_ARGS[@]}")
    say "starting $DOCKERD ${args[*]} (log: $LOG)"
    # setsid: the engine gets its own session and process group.  Started in the
    # caller's group, it died with it: Ctrl-C in `make test` (SIGINT to the terminal's
    # foreground group) or a CI step killing its job's group took the engine along.
    if [ "${#AS_ROOT[@]}" -eq 0 ]; then
        setsid nohup "$DOCKERD" "${args[@]}" >"$LOG" 2>&1 </dev/null &
        started_pid=$!
    else
        "${AS_ROOT[@]}" sh -c 'log="$1"; shift; setsid nohup "$@" >"$log" 2>&1 </dev/null &' \
            sh "$LOG" "$DOCKERD" "${args[@]}"
    fi
fi

for _ in $(seq 1 "$WAIT_SECONDS"); do
    if engine_answers; then
        say "Docker engine is up (server $(server_version), dockerd log $LOG)"
        exit 0
    fi
    if [ -n "${started_pid:-}" ] && ! kill -0 "$started_pid" 2>/dev/null; then
        say "dockerd exited right after starting"
        break
    fi
    sleep 1
done

say "no Docker engine answers on $SOCKET (waited up to ${WAIT_SECONDS} s); last lines of $LOG:"
tail -n 30 "$LOG" 2>/dev/null || say "(no log at $LOG)"
exit 1
