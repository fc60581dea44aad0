#!/bin/bash
# The official image's contract, in short: initialise PGDATA once (superuser POSTGRES_USER with
# POSTGRES_PASSWORD[_FILE], database POSTGRES_DB, then /docker-entrypoint-initdb.d), run postgres.
set -euo pipefail
: "${POSTGRES_USER:=postgres}"
if [[ -n ${POSTGRES_PASSWORD_FILE:-} ]]; then POSTGRES_PASSWORD=$(cat "$POSTGRES_PASSWORD_FILE"); fi
: "${POSTGRES_DB:=$POSTGRES_USER}"

# The port postgres is told (-c port=N / -p N), for the probe and the init scripts' psql.
port=5432
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case ${args[i]} in
    port=*) port=${args[i]#port=} ;;
    -p) port=${args[i + 1]} ;;
  esac
done

if [[ ${1:-} == probe ]]; then
  port=$(sed -n 's/^port *= *//p' "$PGDATA/postmaster.opts.port" 2>/dev/null || echo 5432)
  exec pg_isready -q -h 127.0.0.1 -p "$port" -U "$POSTGRES_USER" -d "$POSTGRES_DB"
fi
[[ ${1:-} == postgres ]] || exec "$@"

if [[ ! -s $PGDATA/PG_VERSION ]]; then
  [[ -n ${POSTGRES_PASSWORD:-} ]] || { echo "POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE is required" >&2; exit 1; }
  pwfile=$(mktemp)
  printf '%s' "$POSTGRES_PASSWORD" >"$pwfile"
  initdb --username="$POSTGRES_USER" --pwfile="$pwfile" --auth-local=trust \
    --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >/dev/null
  rm -f "$pwfile"
  echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
  # Init scripts against a socket-only server, as the official image does.
  pg_ctl -D "$PGDATA" -w -o "-c listen_addresses='' -p $port" start >/dev/null
  if [[ $POSTGRES_DB != postgres ]]; then
    psql -v ON_ERROR_STOP=1 -h /var/run/postgresql -p "$port" -U "$POSTGRES_USER" -d postgres \
      -c "CREATE DATABASE \"$POSTGRES_DB\"" >/dev/null
  fi
  for f in /docker-entrypoint-initdb.d/*; do
    case $f in
      *.sql) psql -v ON_ERROR_STOP=1 -h /var/run/postgresql -p "$port" -U "$POSTGRES_USER" -d "$POSTGRES_DB" -f "$f" ;;
      *.sh) PGPORT=$port PGHOST=/var/run/postgresql bash "$f" ;;
    esac
  done
  pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
fi
echo "port = $port" >"$PGDATA/postmaster.opts.port"
exec postgres -c listen_addresses='*' "${args[@]:1}"
