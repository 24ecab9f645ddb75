#!/usr/bin/env bash
# A private Docker engine for mlgate's Docker tests, demo and benchmarks.
#
#   scripts/docker-engine.sh start    reach an engine, starting one if none answers; print the
#                                     environment to use it (eval "$(scripts/docker-engine.sh start)")
#   scripts/docker-engine.sh env      print that environment (engine must be running)
#   scripts/docker-engine.sh stop     stop the engine *this script* started, and nothing else
#   scripts/docker-engine.sh status
#
# Where an engine already answers (Docker Desktop, GitHub Actions, a CI service), `start` uses it
# as it is and `stop` leaves it alone. Otherwise `start` runs dockerd from Debian's docker.io
# (installed with apt-get when missing, with debootstrap and docker-registry, and run as root) on
# its own socket, with no bridge, no iptables and the vfs storage driver, which work inside
# unprivileged sandboxes; containers then use `--network host`. No registry may be reachable, so the base image for builds is made locally
# with debootstrap (Debian bookworm + python3 + python3-venv) and `docker import`, with the host's
# CA bundle copied in so that pip inside a build trusts a TLS-intercepting proxy.
#
# Environment: MLGATE_DOCKER_STATE (default $TMPDIR/mlgate-docker) holds the socket, pid file,
# log and data; MLGATE_BASE_IMAGE names the local base image (default mlgate-base:bookworm).
# Idempotent: run `start` twice and the second run only prints the environment.
set -euo pipefail

STATE="${MLGATE_DOCKER_STATE:-${TMPDIR:-/tmp}/mlgate-docker}"
SOCK="$STATE/docker.sock"
PIDFILE="$STATE/dockerd.pid"
LOG="$STATE/dockerd.log"
BASE_IMAGE="${MLGATE_BASE_IMAGE:-mlgate-base:bookworm}"
SUITE=bookworm

log() { echo "docker-engine: $*" >&2; }
die() { log "error: $*"; exit 1; }

engine_answers() {  # $1: DOCKER_HOST value, or empty for the client's default
    if [ -n "${1:-}" ]; then DOCKER_HOST="$1" docker info >/dev/null 2>&1; else docker info >/dev/null 2>&1; fi
}

ours_running() {
    [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null \
        && grep -q dockerd "/proc/$(cat "$PIDFILE")/cmdline" 2>/dev/null
}

need_root() { [ "$(id -u)" = 0 ] || die "$1 needs root (or start a Docker engine yourself and set DOCKER_HOST)"; }

install_packages() {
    local missing=()
    command -v dockerd >/dev/null || missing+=(docker.io)
    command -v docker >/dev/null || missing+=(docker.io)
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    command -v docker-registry >/dev/null || missing+=(docker-registry)  # the push test's registry
    [ ${#missing[@]} -eq 0 ] && return 0
    need_root "installing ${missing[*]}"
    log "installing ${missing[*]} with apt-get"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
}

start_daemon() {
    need_root "starting dockerd"
    mkdir -p "$STATE"
    log "starting dockerd on unix://$SOCK (log: $LOG)"
    # setsid: the daemon outlives this script and is not killed with the caller's process group.
    setsid dockerd --iptables=false --ip6tables=false --bridge=none --storage-driver=vfs \
        --host "unix://$SOCK" --data-root "$STATE/data" --exec-root "$STATE/exec" \
        --pidfile "$PIDFILE" >"$LOG" 2>&1 </dev/null &
    for _ in $(seq 1 120); do
        engine_answers "unix://$SOCK" && return 0
        sleep 0.5
    done
    tail -20 "$LOG" >&2 || true
    die "dockerd did not answer within 60 s"
}

debian_mirror() {
    # The mirror this machine's apt uses (deb822 sources first, then the one-line format).
    local uri
    uri=$(grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' | grep -v security | head -1 || true)
    [ -n "$uri" ] || uri=$(grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
        | awk '{print $2}' | grep -v security | head -1 || true)
    [ -n "$uri" ] || die "no Debian mirror found in the apt sources"
    echo "$uri"
}

host_ca_bundle() {
    local cert=""
    if command -v pip >/dev/null; then
        cert=$(pip config list 2>/dev/null | sed -n "s/^global\.cert='\(.*\)'$/\1/p" | head -1)
    fi
    [ -n "$cert" ] || cert="${PIP_CERT:-${REQUESTS_CA_BUNDLE:-${SSL_CERT_FILE:-}}}"
    [ -n "$cert" ] || cert=/etc/ssl/certs/ca-certificates.crt
    [ -f "$cert" ] && echo "$cert"
}

make_base_image() {
    DOCKER_HOST="unix://$SOCK" docker image inspect "$BASE_IMAGE" >/dev/null 2>&1 && return 0
    need_root "debootstrap"
    local root="$STATE/rootfs" mirror
    mirror=$(debian_mirror)
    rm -rf "$root"
    log "making $BASE_IMAGE with debootstrap ($SUITE, python3, python3-venv); about a minute"
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
        "$SUITE" "$root" "$mirror" >"$STATE/debootstrap.log" 2>&1 \
        || { tail -20 "$STATE/debootstrap.log" >&2; die "debootstrap failed"; }
    local ca
    if ca=$(host_ca_bundle); then
        # Keep Debian's roots and add the host's (which may hold an intercepting proxy's CA).
        cat "$ca" >>"$root/etc/ssl/certs/ca-certificates.crt"
    fi
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
    tar -C "$root" -c . | DOCKER_HOST="unix://$SOCK" docker import \
        --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
        --change 'ENV LANG=C.UTF-8' \
        --change 'CMD ["/bin/bash"]' - "$BASE_IMAGE" >/dev/null
    rm -rf "$root"
    log "made $BASE_IMAGE"
}

print_env() {
    if [ "${1:-}" = ours ]; then
        echo "export DOCKER_HOST=unix://$SOCK"
        echo "export MLGATE_BASE_IMAGE=$BASE_IMAGE"
        echo "export MLGATE_DOCKER_NETWORK=host"
    fi
    # An engine we did not start: the client's defaults reach it; tests use their default base.
}

cmd_start() {
    if ours_running && engine_answers "unix://$SOCK"; then
        make_base_image
        print_env ours
        return 0
    fi
    if [ -z "${MLGATE_FORCE_PRIVATE_ENGINE:-}" ] && engine_answers "${DOCKER_HOST:-}"; then
        log "a Docker engine already answers; using it as it is"
        print_env theirs
        return 0
    fi
    install_packages
    start_daemon
    make_base_image
    print_env ours
}

cmd_stop() {
    if ! ours_running; then
        log "no engine started by this script is running"
        return 0
    fi
    local pid
    pid=$(cat "$PIDFILE")
    log "stopping dockerd (pid $pid)"
    kill "$pid"
    for _ in $(seq 1 60); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.5
    done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$PIDFILE"
    # dockerd can leave mounts under its state (its netns file, the data-root bind mount); they
    # would make `rm -rf` of the state directory fail with "Device or resource busy".
    local mnt
    for mnt in $(awk -v s="$STATE/" 'index($2, s) == 1 {print $2}' /proc/mounts | sort -r); do
        umount "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || true
    done
}

cmd_env() {
    if ours_running; then print_env ours; else print_env theirs; fi
}

cmd_status() {
    if ours_running; then
        echo "running (started by this script, pid $(cat "$PIDFILE"), unix://$SOCK)"
    elif engine_answers "${DOCKER_HOST:-}"; then
        echo "an engine not started by this script answers"
    else
        echo "no engine"; return 1
    fi
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    env) cmd_env ;;
    status) cmd_status ;;
    *) echo "usage: $0 start|stop|env|status" >&2; exit 2 ;;
esac
