#!/usr/bin/env bash
# The test command of the README and CI: infrastructure up, static checks, every package
# alone, then the whole-system tests.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
# Kafka and PostgreSQL from the project's own scripts (idempotent); tests find them by env.
if [[ -n "${PLUGPAY_KAFKA_BOOTSTRAP:-}" && -n "${PLUGPAY_DATABASE_URL:-}" ]]; then
  echo "using the given Kafka ($PLUGPAY_KAFKA_BOOTSTRAP) and PostgreSQL"
else
  env_lines=$(bash deploy/local/infra.sh up)
  eval "$(sed 's/^/export /' <<<"$env_lines")"
fi
echo "infra ready after $(( SECONDS - start ))s"
# The e2e suite leaves the distributed stack up (it is idempotent); stop it however we exit.
trap 'bash scripts/stack.sh down >/dev/null 2>&1 || true' EXIT
make --no-print-directory lint typecheck
bash scripts/test-packages.sh
# Whole-system suites run from the workspace venv (they use every package).
python3 -m uv run --no-sync pytest tests/deploy -p no:cacheprovider -q
if compgen -G "tests/e2e/test_*.py" >/dev/null; then
  python3 -m uv run --no-sync pytest tests/e2e -p no:cacheprovider
fi
# A compressed month through the real flow, exported and reported: the report's totals must
# equal the live stores' (sessions, energy, revenue to the cent).
python3 -m uv run --no-sync pytest tests/analytics -p no:cacheprovider
# The web front-ends in Debian's headless Chromium (tests/web/README.md).
bash scripts/install-chromium.sh
python3 -m uv run --no-sync pytest tests/web -p no:cacheprovider
# Chaos (SIGKILLs, dropped stations; with CI set also a Kafka and a PostgreSQL restart),
# redelivery, fuzzing, security, log scan, pip-audit — short variants, so faults stay covered.
python3 -m uv run --no-sync pytest tests/reliability -p no:cacheprovider
STACK_NAME=chaos PORT_BASE=8400 bash scripts/stack.sh down >/dev/null 2>&1 || true
# Every benchmark for a few seconds, so `make bench` keeps working.
BENCH_SMOKE=1 bash bench/run.sh
echo "all tests passed in $(( SECONDS - start ))s"
