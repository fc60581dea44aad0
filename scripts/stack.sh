#!/usr/bin/env bash
# The distributed stack on this machine: every service its own uvicorn process, Apache Kafka and
# PostgreSQL from deploy/local, and nginx as the API gateway on 127.0.0.1:8080 (same routes as the
# Kubernetes ingress). Idempotent: `up` on a running stack only re-checks it.
#
#   scripts/stack.sh up|down|status
#
# STACK_NAME=chaos PORT_BASE=8200 scripts/stack.sh up   runs a second, isolated stack (its own
# databases <db>_chaos, topics prefixed "chaos.", services on 8201.., gateway on 8180) on the same
# Kafka and PostgreSQL, for tests that kill processes without disturbing the main stack.
#
# Settings in the caller's environment reach every service it starts: the test suites pass their
# own (shorter timeouts; STATION_GATEWAY_SIMULATED_METER_SPEEDUP / _SIMULATED_STATION_CLOCKS for
# simulated stations that meter faster than real time, see docs/station-gateway.md). Started by
# hand, the gateway judges stations as real ones.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
STACK_NAME=${STACK_NAME:-main}
PORT_BASE=${PORT_BASE:-8100}
VENV="$ROOT/.venv/bin"
GATEWAY_PORT=$((PORT_BASE - 20))
if [[ $STACK_NAME == main ]]; then
  STATE="$ROOT/.local/stack"; DB_SUFFIX=""; TOPIC_PREFIX=""
else
  STATE="$ROOT/.local/stack-$STACK_NAME"; DB_SUFFIX="_$STACK_NAME"; TOPIC_PREFIX="$STACK_NAME."
fi
# "service port database env-prefix", one line per process: the catalogue of services
# (libs/platform/src/plugpay_platform/catalogue.py; station-gateway runs two processes).
SERVICES=()
if [[ -x "$VENV/python" ]]; then
  while read -r name offset db prefix; do
    SERVICES+=("$name $((PORT_BASE + offset)) $db$DB_SUFFIX $prefix")
  done < <("$VENV/python" -m plugpay_platform.catalogue stack)
fi
PG="postgresql+asyncpg://plugpay:plugpay@127.0.0.1:5433"

say() { echo "stack: $*" >&2; }

secrets() {
  mkdir -p "$STATE/secrets"; chmod 700 "$STATE/secrets"
  # An older Ed25519 key (long JWT codes) is replaced by a MAC key (short codes).
  if [[ ! -s "$STATE/secrets/code-signing-key.json" ]] || ! grep -q '"kty": "oct"' "$STATE/secrets/code-signing-key.json"; then
    "$VENV/python" -c 'import json;from plugpay_events.session_code import generate_signing_key as g;print(json.dumps(g()))' \
      >"$STATE/secrets/code-signing-key.json"
    chmod 600 "$STATE/secrets/code-signing-key.json"
  fi
  if [[ ! -s "$STATE/secrets/mail-link-key" ]]; then
    "$VENV/python" -c 'import base64,os;print(base64.urlsafe_b64encode(os.urandom(32)).decode())' \
      >"$STATE/secrets/mail-link-key"
    chmod 600 "$STATE/secrets/mail-link-key"
  fi
  if [[ ! -s "$STATE/secrets/admin-password" ]]; then
    "$VENV/python" -c 'import secrets;print(secrets.token_urlsafe(18))' >"$STATE/secrets/admin-password"
    chmod 600 "$STATE/secrets/admin-password"
  fi
}

service_env() { # name port db prefix
  local name=$1 port=$2 db=$3 prefix=$4 key
  key=$(cat "$STATE/secrets/code-signing-key.json")
  cat <<ENV
PLUGPAY_ENVIRONMENT=development
PLUGPAY_KAFKA_BOOTSTRAP=127.0.0.1:9092
PLUGPAY_PUBLIC_BASE_URL=http://127.0.0.1:$GATEWAY_PORT
PLUGPAY_JWKS_URL=http://127.0.0.1:$((PORT_BASE + 1))/auth/.well-known/jwks.json
PLUGPAY_TOPIC_PREFIX=$TOPIC_PREFIX
PLUGPAY_INSTANCE_ID=$name-$port
PLUGPAY_FORWARDED_ALLOW_IPS=127.0.0.1
${prefix}DATABASE_URL=$PG/$db
${prefix}HOST=127.0.0.1
${prefix}PORT=$port
STATION_GATEWAY_CODE_SIGNING_KEY=$key
SESSION_SVC_CODE_VERIFICATION_JWKS=$("$VENV/python" -c 'import json,sys;from plugpay_events.session_code import verification_jwks;print(json.dumps(verification_jwks(json.load(sys.stdin))))' <"$STATE/secrets/code-signing-key.json")
AUTH_SVC_SEED_DEMO=true
PLUGPAY_MAIL_LINK_KEY=$(cat "$STATE/secrets/mail-link-key")
PLUGPAY_SMTP_URL=${PLUGPAY_SMTP_URL:-}
PLUGPAY_MAIL_FROM=${PLUGPAY_MAIL_FROM:-Plugpay <no-reply@plugpay.invalid>}
AUTH_SVC_BOOTSTRAP_ADMIN_EMAIL=admin@example.com
AUTH_SVC_BOOTSTRAP_ADMIN_PASSWORD=$(cat "$STATE/secrets/admin-password")
ENV
}

running() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

wait_ready() { # url seconds
  local url=$1 deadline=$((SECONDS + $2))
  until curl -sf -o /dev/null "$url"; do
    (( SECONDS < deadline )) || return 1
    sleep 0.2
  done
}

ensure_nginx() {
  command -v nginx >/dev/null 2>&1 && return
  say "installing nginx (Debian package)"
  if ! (apt-get install -y -qq nginx-light >/dev/null 2>&1 || apt-get install -y -qq nginx >/dev/null 2>&1); then
    apt-get update -qq >/dev/null
    apt-get install -y -qq nginx-light >/dev/null 2>&1 || apt-get install -y -qq nginx >/dev/null
  fi
}

create_databases() {
  local entry name port db prefix
  for entry in "${SERVICES[@]}"; do
    read -r name port db prefix <<<"$entry"
    "$VENV/python" - "$db" <<'PY'
import asyncio, sys
import asyncpg
async def main(name: str) -> None:
    conn = await asyncpg.connect("postgresql://plugpay:plugpay@127.0.0.1:5433/postgres")
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
asyncio.run(main(sys.argv[1]))
PY
  done
}

cmd_up() {
  [[ ${#SERVICES[@]} -gt 0 ]] || { say "no services: is $VENV set up (make sync)?"; exit 1; }
  local start=$SECONDS
  mkdir -p "$STATE"
  # PLUGPAY_INFRA=external: Kafka and PostgreSQL on their usual ports are someone else's (another
  # checkout's, CI services): used as they are, neither started nor checked by deploy/local.
  if [[ ${PLUGPAY_INFRA:-} != external ]]; then
    bash "$ROOT/deploy/local/infra.sh" up >/dev/null
  fi
  create_databases
  secrets
  local entry name port db prefix pidfile
  for entry in "${SERVICES[@]}"; do
    read -r name port db prefix <<<"$entry"
    pidfile="$STATE/$name-$port.pid"
    if running "$pidfile"; then continue; fi
    say "starting $name on 127.0.0.1:$port"
    (
      set -a; eval "$(service_env "$name" "$port" "$db" "$prefix" | sed "s/'/'\\\\''/g; s/=\(.*\)/='\1'/")"; set +a
      exec setsid "$VENV/$name" >>"$STATE/$name-$port.log" 2>&1 </dev/null
    ) &
    echo $! >"$pidfile"
  done
  for entry in "${SERVICES[@]}"; do
    read -r name port db prefix <<<"$entry"
    local path
    case $name in
      auth-svc) path=/auth;; station-gateway) path=/stations;; session-svc) path=/sessions;;
      pricing-svc) path=/pricing;; billing-svc) path=/billing;;
      notification-svc) path=/notifications;;
    esac
    wait_ready "http://127.0.0.1:$port$path/readyz" 90 || {
      say "$name on $port not ready; last log lines:"; tail -30 "$STATE/$name-$port.log" >&2; exit 1; }
  done
  ensure_nginx
  mkdir -p "$STATE/nginx/logs" "$STATE/nginx/tmp"
  # The generated config names the main stack's ports; shift them for another instance.
  sed -E "s#__WEB_ROOT__#$ROOT/web#g; s#__STATE__#$STATE/nginx#g;
    s#127\.0\.0\.1:81(0[1-7])#127.0.0.1:PORT\1#g" "$ROOT/deploy/gateway/nginx.conf" |
    "$VENV/python" -c "import re,sys;b=$PORT_BASE;s=sys.stdin.read();s=re.sub(r'PORT0([1-7])',lambda m:str(b+int(m.group(1))),s);print(s.replace('127.0.0.1:8080','127.0.0.1:$GATEWAY_PORT'),end='')" \
    >"$STATE/nginx/nginx.conf"
  if running "$STATE/nginx/nginx.pid"; then
    nginx -p "$STATE/nginx" -c "$STATE/nginx/nginx.conf" -s reload
  else
    # Detached from our stdout: a caller reading it (CI, $(...)) must not wait on nginx.
    nginx -p "$STATE/nginx" -c "$STATE/nginx/nginx.conf" </dev/null >>"$STATE/nginx/nginx.out" 2>&1
  fi
  wait_ready "http://127.0.0.1:$GATEWAY_PORT/auth/healthz" 30
  # Demo data (README): auth-svc seeded its part; the rest through the public API (idempotent).
  "$VENV/plugpay" seed --base-url "http://127.0.0.1:$GATEWAY_PORT" >&2
  say "up in $((SECONDS - start))s: http://127.0.0.1:$GATEWAY_PORT"
  echo "PLUGPAY_BASE_URL=http://127.0.0.1:$GATEWAY_PORT"
}

cmd_down() {
  local pidfile
  if running "$STATE/nginx/nginx.pid"; then nginx -p "$STATE/nginx" -c "$STATE/nginx/nginx.conf" -s quit || true; fi
  for pidfile in "$STATE"/*.pid; do
    [[ -f $pidfile ]] || continue
    if running "$pidfile"; then kill -TERM "$(cat "$pidfile")" 2>/dev/null || true; fi
  done
  for pidfile in "$STATE"/*.pid; do
    [[ -f $pidfile ]] || continue
    for _ in $(seq 1 50); do running "$pidfile" || break; sleep 0.2; done
    running "$pidfile" && kill -KILL "$(cat "$pidfile")" 2>/dev/null || true
    rm -f "$pidfile"
  done
  say "down (Kafka and PostgreSQL keep running: make infra-down)"
}

cmd_status() {
  local entry name port db prefix ok=0
  for entry in "${SERVICES[@]}"; do
    read -r name port db prefix <<<"$entry"
    if running "$STATE/$name-$port.pid"; then echo "$name:$port running"; else echo "$name:$port stopped"; ok=1; fi
  done
  running "$STATE/nginx/nginx.pid" && echo "nginx:$GATEWAY_PORT running" || { echo "nginx stopped"; ok=1; }
  return $ok
}

case "${1:-}" in
  up) cmd_up ;; down) cmd_down ;; status) cmd_status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
