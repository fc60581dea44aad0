#!/usr/bin/env bash
# The fast tier a developer runs before pushing: lint, types, and every package's tests that
# need no PostgreSQL, Kafka or browser (plugpay_testing's --no-infra deselects the others).
# `make test` (scripts/test.sh) still runs everything.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
trap 'status=$?; echo "make check $([[ $status == 0 ]] && echo passed || echo FAILED) in $(( SECONDS - start ))s"' EXIT
make --no-print-directory lint typecheck
echo "lint and types in $(( SECONDS - start ))s"
# services' integration suites are left out as a whole: they start apps on real servers.
python3 -m uv run --no-sync pytest libs/*/tests services/*/tests/unit apps/*/tests \
  --no-infra -p no:cacheprovider -q "$@"
