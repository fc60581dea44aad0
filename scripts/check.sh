#!/usr/bin/env bash
# The fast tier a developer runs before pushing: lint, types, and every package's tests that
# need no PostgreSQL, Kafka or browser (plugpay_testing's --no-infra deselects the others).
# `make test` (scripts/test.sh) still runs everything.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
types_log=$(mktemp)
trap 'status=$?; rm -f "$types_log"; echo "make check $([[ $status == 0 ]] && echo passed || echo FAILED) in $(( SECONDS - start ))s"' EXIT
make --no-print-directory lint
# Types and tests side by side on the two cores: mypy without its cache is the slowest step.
make --no-print-directory typecheck >"$types_log" 2>&1 &
types=$!
tests_status=0
# services' integration suites are left out as a whole: they start apps on real servers.
python3 -m uv run --no-sync pytest libs/*/tests services/*/tests/unit apps/*/tests \
  --no-infra -p no:cacheprovider -q "$@" || tests_status=$?
types_status=0
wait "$types" || types_status=$?
cat "$types_log"
(( tests_status == 0 && types_status == 0 ))
