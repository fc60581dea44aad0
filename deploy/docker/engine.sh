#!/usr/bin/env bash
# A Docker engine on this machine, from Debian's packages (no registry needed).
#
#   deploy/docker/engine.sh install   docker.io (dockerd, containerd, runc) + Compose, if missing
#   deploy/docker/engine.sh up        install, then start dockerd if it does not answer (idempotent)
#   deploy/docker/engine.sh status    exit 0 when an engine answers
#   deploy/docker/engine.sh compose   print the Compose command line that works here
#
# dockerd runs as root with the overlay2 driver; it is started detached (setsid) with its log in
# /var/log/plugpay-dockerd.log, and stays up for the next run (it is machine-wide, like apt).
# Compose: the v2 plugin when `docker compose` works, else Debian's `docker-compose` (v1.29).
set -euo pipefail

LOG=/var/log/plugpay-dockerd.log
READY_TIMEOUT=${PLUGPAY_DOCKERD_READY_TIMEOUT:-60}

say() { echo "engine: $*" >&2; }
die() { echo "engine: ERROR: $*" >&2; exit 1; }

as_root() { if (( EUID == 0 )); then "$@"; else sudo "$@"; fi; }

apt_install() {
  # The package lists may be missing or stale on a fresh machine: update once and retry.
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null 2>&1 || {
    as_root apt-get update -qq >/dev/null
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  }
}

answers() { timeout 10 docker info --format '{{.ServerVersion}}' >/dev/null 2>&1; }

compose_cmd() {
  if docker compose version >/dev/null 2>&1; then echo "docker compose"
  elif command -v docker-compose >/dev/null 2>&1; then echo "docker-compose"
  else return 1; fi
}

cmd_install() {
  local want=()
  command -v dockerd >/dev/null 2>&1 || want+=(docker.io)
  command -v docker >/dev/null 2>&1 || want+=(docker.io)
  compose_cmd >/dev/null 2>&1 || want+=(docker-compose)
  command -v mmdebstrap >/dev/null 2>&1 || want+=(mmdebstrap)
  if (( ${#want[@]} )); then
    say "installing ${want[*]} (Debian packages)"
    apt_install "${want[@]}"
  fi
}

cmd_up() {
  cmd_install
  if answers; then return 0; fi
  if pgrep -x dockerd >/dev/null 2>&1; then
    say "a dockerd process exists but does not answer yet; waiting for it"
  else
    say "starting dockerd (log $LOG)"
    # containerd is started by dockerd itself when no system containerd runs.
    as_root bash -c "setsid dockerd --storage-driver=overlay2 </dev/null >>'$LOG' 2>&1 &"
  fi
  local deadline=$((SECONDS + READY_TIMEOUT))
  until answers; do
    if (( SECONDS >= deadline )); then
      tail -n 30 "$LOG" >&2 || true
      die "dockerd did not answer within ${READY_TIMEOUT}s"
    fi
    sleep 0.5
  done
  say "dockerd $(docker info --format '{{.ServerVersion}}') answers ($(docker info --format '{{.Driver}}'))"
}

case "${1:-}" in
  install) cmd_install ;;
  up) cmd_up ;;
  status) answers ;;
  compose) compose_cmd || die "no Compose found (run: $0 install)" ;;
  *) echo "usage: $0 install|up|status|compose" >&2; exit 2 ;;
esac
