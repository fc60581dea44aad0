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
# The e2e suite leaves the distributed stack up (it is idempotent); stop it, the reliability
# suite's (left up when pytest itself aborts) and the Compose deployment (with its volumes)
# however we exit.
trap 'bash scripts/stack.sh down >/dev/null 2>&1 || true
  STACK_NAME=chaos PORT_BASE=8400 bash scripts/stack.sh down >/dev/null 2>&1 || true
  bash deploy/compose/compose.sh down --volumes >/dev/null 2>&1 || true' EXIT
make --no-print-directory lint typecheck
bash scripts/test-packages.sh
# Whole-system suites run from the workspace venv (they use every package).
python3 -m uv run --no-sync pytest tests/deploy -p no:cacheprovider -q
if compgen -G "tests/e2e/test_*.py" >/dev/null; then
  python3 -m uv run --no-sync pytest tests/e2e -p no:cacheprovider
fi
# The images, run for real on a Docker engine (docs/deploy.md): dockerd from Debian's packages,
# every image built (make images: local bases, the layer cache makes a rebuild quick, sizes and a
# secret check), the e2e suite against the Compose deployment — the patent flow on OCPP 1.6 and
# 2.0.1, every denial, two gateway replicas, one of them crashing mid-session — then torn down.
images_start=$SECONDS
make --no-print-directory images
echo "images built in $(( SECONDS - images_start ))s"
bash deploy/compose/compose.sh down --volumes >/dev/null 2>&1 || true # a fresh deployment
PLUGPAY_E2E_MODES=compose python3 -m uv run --no-sync pytest tests/e2e/test_charging.py \
  tests/e2e/test_scale.py tests/e2e/test_compose.py -k "not fifty" -p no:cacheprovider
bash deploy/compose/compose.sh down --volumes
# The fixtures' testcontainers path (libs/testing) on the locally built Kafka and PostgreSQL
# images: the bus contract suites and pricing-svc's integration tests, servers in containers.
kafka_image=$(bash deploy/docker/images.sh list | grep '^plugpay/kafka:')
postgres_image=$(bash deploy/docker/images.sh list | grep '^plugpay/postgres:')
env -u PLUGPAY_DATABASE_URL -u PLUGPAY_KAFKA_BOOTSTRAP CI="${CI:-1}" PLUGPAY_TESTCONTAINERS=1 \
  PLUGPAY_TEST_KAFKA_IMAGE="$kafka_image" PLUGPAY_TEST_POSTGRES_IMAGE="$postgres_image" \
  python3 -m uv run --no-sync pytest libs/events/tests/contract services/pricing-svc/tests/integration \
  -p no:cacheprovider -q
# A compressed month through the real flow, exported and reported: the report's totals must
# equal the live stores' (sessions, energy, revenue to the cent).
python3 -m uv run --no-sync pytest tests/analytics -p no:cacheprovider
# The web front-ends in Debian's headless Chromium (tests/web/README.md).
bash scripts/install-chromium.sh
python3 -m uv run --no-sync pytest tests/web -p no:cacheprovider
# Chaos (SIGKILLs, dropped stations; with CI set also a Kafka and a PostgreSQL restart),
# redelivery, fuzzing, security, log scan, pip-audit — short variants, so faults stay covered.
# Native tracebacks: CPython 3.11.7 can raise SystemError while pytest re-parses the source
# of a deep failure, which aborts the run and hides the failure itself.
python3 -m uv run --no-sync pytest tests/reliability -p no:cacheprovider --tb=native
STACK_NAME=chaos PORT_BASE=8400 bash scripts/stack.sh down >/dev/null 2>&1 || true
# Every benchmark for a few seconds, so `make bench` keeps working.
BENCH_SMOKE=1 bash bench/run.sh
echo "all tests passed in $(( SECONDS - start ))s"
