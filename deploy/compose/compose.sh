#!/usr/bin/env bash
# Plugpay on one machine with Docker Compose (docs/deploy.md), every address on 127.0.0.1.
#
#   deploy/compose/compose.sh up                 secrets (once), start everything, wait until healthy
#   deploy/compose/compose.sh down [--volumes]   stop and remove the containers (--volumes: the data too)
#   deploy/compose/compose.sh ps|logs [...]|env  status, logs (Compose's arguments), the tests' settings
#   deploy/compose/compose.sh compose ARGS...    any Compose command on this deployment
#
# Images: `make images` (plugpay/<service>:<version>, plugpay/kafka, plugpay/postgres, plugpay/nginx).
# Secrets are files in $PLUGPAY_COMPOSE_SECRETS (default .local/compose/secrets, mode 0700 directory),
# made once: PostgreSQL's password, each service's database URL, the bootstrap admin's password,
# the session-code signing key and its public JWKS, the mail-link key; smtp-url starts empty
# (write smtp[s]://user:password@host:port into it to send mail). COMPOSE_PROJECT_NAME (default plugpay) names
# the containers and volumes.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
FILE="$HERE/compose.yaml"
export COMPOSE_PROJECT_NAME=${COMPOSE_PROJECT_NAME:-plugpay}
export PLUGPAY_COMPOSE_SECRETS=${PLUGPAY_COMPOSE_SECRETS:-$ROOT/.local/compose/secrets}
SECRETS=$PLUGPAY_COMPOSE_SECRETS
PY="$ROOT/.venv/bin/python"
READY_TIMEOUT=${PLUGPAY_COMPOSE_READY_TIMEOUT:-300}

say() { echo "compose: $*" >&2; }

compose() {
  local cmd
  read -ra cmd <<<"$(bash "$ROOT/deploy/docker/engine.sh" compose)"
  "${cmd[@]}" -f "$FILE" "$@"
}

# What compose.yaml's x-plugpay says (ports, addresses), as KEY=VALUE lines.
settings() {
  "$PY" - "$FILE" <<'PY'
import sys, yaml
x = yaml.safe_load(open(sys.argv[1]))["x-plugpay"]
print(f"PLUGPAY_BASE_URL={x['base_url']}")
print(f"PLUGPAY_KAFKA_BOOTSTRAP={x['kafka_bootstrap']}")
print(f"PLUGPAY_COMPOSE_POSTGRES={x['postgres']}")
PY
}

secret() { # name command...: write the file once, readable by the containers' users only via the 0700 dir
  local file="$SECRETS/$1"; shift
  [[ -s $file ]] && return 0
  "$@" >"$file.tmp" && mv "$file.tmp" "$file"
  chmod 0644 "$file" # the directory (0700) keeps other host users out; containers run as other UIDs
}

make_secrets() {
  mkdir -p "$SECRETS" && chmod 0700 "$SECRETS"
  secret postgres-password "$PY" -c 'import secrets; print(secrets.token_hex(24))'
  secret admin-password "$PY" -c 'import secrets; print(secrets.token_urlsafe(18))'
  secret mail-link-key "$PY" -c 'import base64, os; print(base64.urlsafe_b64encode(os.urandom(32)).decode())'
  # The operator's SMTP URL (smtp[s]://user:password@host:port); empty: mail stays queued.
  [[ -e $SECRETS/smtp-url ]] || { : >"$SECRETS/smtp-url" && chmod 0644 "$SECRETS/smtp-url"; }
  # An older Ed25519 key (long JWT codes) is replaced by a MAC key (short codes).
  grep -qs '"kty": "oct"' "$SECRETS/code-signing-key.json" ||
    rm -f "$SECRETS/code-signing-key.json" "$SECRETS/code-verification-jwks.json"
  secret code-signing-key.json "$PY" -c \
    'import json; from plugpay_events.session_code import generate_signing_key as g; print(json.dumps(g()))'
  secret code-verification-jwks.json "$PY" -c \
    'import json,sys; from plugpay_events.session_code import verification_jwks; print(json.dumps(verification_jwks(json.load(open(sys.argv[1])))))' \
    "$SECRETS/code-signing-key.json"
  local pg password name db
  pg=$(settings | sed -n 's/^PLUGPAY_COMPOSE_POSTGRES=postgresql:\/\///p')
  password=$(cat "$SECRETS/postgres-password")
  while read -r name db; do
    secret "$name-database-url" echo "postgresql+asyncpg://${pg%@*}:$password@${pg#*@}/$db"
  done < <("$PY" -c 'import sys, yaml
for name, db in yaml.safe_load(open(sys.argv[1]))["x-plugpay"]["databases"].items(): print(name, db)' "$FILE")
}

# Compose checks every secret file even for commands that start nothing: where the secrets were
# never made (a machine that only stops a deployment) or are gone, `down`, `ps` and `logs` run
# with empty stand-ins, which no container ever receives.
with_stand_in_secrets() {
  local name names missing=() dir rc=0
  names=$("$PY" -c 'import sys, yaml
print(*yaml.safe_load(open(sys.argv[1]))["secrets"])' "$FILE")
  for name in $names; do [[ -e $SECRETS/$name ]] || missing+=("$name"); done
  if (( ${#missing[@]} == 0 )); then compose "$@"; return; fi
  dir=$(mktemp -d)
  for name in $names; do : >"$dir/$name"; done
  PLUGPAY_COMPOSE_SECRETS=$dir compose "$@" || rc=$?
  rm -rf "$dir"
  return "$rc"
}

# Every container of the project healthy (or the time-out: the unhealthy ones' logs, exit 1).
wait_healthy() {
  local deadline=$((SECONDS + READY_TIMEOUT)) ids states bad
  while true; do
    ids=$(compose ps -q)
    # shellcheck disable=SC2086 # one id a word
    states=$(docker inspect --format '{{.Name}} {{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}} {{.RestartCount}}' $ids)
    bad=$(grep -v ' healthy [0-9]*$' <<<"$states" || true)
    [[ -z $bad ]] && return 0
    # A container that keeps crashing will not get better by waiting.
    if (( SECONDS >= deadline )) || awk '$3 >= 3 { found = 1 } END { exit !found }' <<<"$bad"; then
      say "not healthy after $((SECONDS - deadline + READY_TIMEOUT))s (name, state, restarts):"; echo "$bad" >&2
      while read -r name _; do docker logs --tail 30 "${name#/}" >&2 || true; done <<<"$bad"
      return 1
    fi
    sleep 1
  done
}

cmd_up() {
  local start=$SECONDS image missing=()
  bash "$ROOT/deploy/docker/engine.sh" up
  for image in $(bash "$ROOT/deploy/docker/images.sh" list); do
    docker image inspect "$image" >/dev/null 2>&1 || missing+=("$image")
  done
  (( ${#missing[@]} == 0 )) || { say "missing images (run make images): ${missing[*]}"; exit 1; }
  make_secrets
  compose up -d --remove-orphans >&2
  wait_healthy
  say "up in $((SECONDS - start))s: $(settings | sed -n 's/^PLUGPAY_BASE_URL=//p')"
  settings
}

case "${1:-}" in
  up) cmd_up ;;
  down) shift; with_stand_in_secrets down --remove-orphans "$@" ;;
  ps) with_stand_in_secrets ps ;;
  logs) shift; with_stand_in_secrets logs "$@" ;;
  env) settings ;;
  compose) shift; compose "$@" ;;
  *) echo "usage: $0 up|down [--volumes]|ps|logs|env|compose ARGS" >&2; exit 2 ;;
esac
