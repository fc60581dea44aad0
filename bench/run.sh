#!/usr/bin/env bash
# The benchmark suite: `make bench` (full, ~30-40 min on 2 cores) and `make bench-smoke`
# (BENCH_SMOKE=1: every benchmark a few seconds long, results in bench/results/*-smoke.json, so CI
# keeps them working). Runs against its own isolated stack (STACK_NAME=bench, PORT_BASE=8300:
# services on 8301-8306, nginx on 8280, databases *_bench, topics "bench.") on the shared Kafka and
# PostgreSQL, and stops it at the end unless BENCH_KEEP_STACK=1.
#
#   bash bench/run.sh [benchmark ...]     # default: all of them, then docs/performance.md
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
# BENCH_STACK_NAME / BENCH_PORT_BASE run it on another isolated stack (e.g. beside a colleague's).
export BENCH_STACK_NAME=${BENCH_STACK_NAME:-bench} BENCH_PORT_BASE=${BENCH_PORT_BASE:-8300}
export STACK_NAME=$BENCH_STACK_NAME PORT_BASE=$BENCH_PORT_BASE BENCH_SMOKE=${BENCH_SMOKE:-0}
PY="$ROOT/.venv/bin/python"
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
cd "$ROOT/bench"
say() { echo "bench: $*" >&2; }

ALL=(ledger replay embedded scan_to_start sessions overload storm connections messages)
WANT=("$@"); [[ ${#WANT[@]} -gt 0 ]] || WANT=("${ALL[@]}")
needs_stack() { [[ $1 == scan_to_start || $1 == sessions || $1 == overload || $1 == storm || $1 == connections || $1 == messages ]]; }

stack_pid=""
for b in "${WANT[@]}"; do
  if needs_stack "$b"; then
    # Start it in the background while the stack-free benchmarks run.
    bash "$ROOT/scripts/stack.sh" up >"$ROOT/.local/bench-stack-up.log" 2>&1 &
    stack_pid=$!
    break
  fi
done

failed=()
pids=()
if [[ $BENCH_SMOKE == 1 ]]; then
  # Smoke: the benchmarks that need no stack run alongside the others (CI time, not accuracy).
  rest=()
  for b in "${WANT[@]}"; do
    if needs_stack "$b"; then rest+=("$b"); else "$PY" "$b.py" >"$ROOT/.local/bench-$b.log" 2>&1 & pids+=("$!:$b"); fi
  done
  WANT=("${rest[@]}")
fi
run() {
  local b=$1 start=$SECONDS
  say "$b ..."
  if "$PY" "$b.py"; then say "$b done in $((SECONDS - start))s"; else say "$b FAILED"; failed+=("$b"); fi
}
fleet_ready=0
for b in "${WANT[@]}"; do
  if needs_stack "$b" && [[ $fleet_ready == 0 ]]; then
    if ! wait "$stack_pid"; then say "stack did not come up:"; tail -20 "$ROOT/.local/bench-stack-up.log" >&2; exit 1; fi
    if [[ $BENCH_SMOKE == 1 ]]; then
      "$PY" fleet.py --stations 10 --connectors 10 --drivers 10 || exit 1
    else
      "$PY" fleet.py --stations 200 --connectors 10 --drivers 100 || exit 1
    fi
    fleet_ready=1
  fi
  run "$b"
done
for entry in "${pids[@]}"; do
  if wait "${entry%%:*}"; then say "${entry#*:} done"; else say "${entry#*:} FAILED:"; tail -15 "$ROOT/.local/bench-${entry#*:}.log" >&2; failed+=("${entry#*:}"); fi
done
"$PY" report.py
if [[ -n $stack_pid && ${BENCH_KEEP_STACK:-0} != 1 ]]; then bash "$ROOT/scripts/stack.sh" down; fi
if [[ ${#failed[@]} -gt 0 ]]; then say "failed: ${failed[*]}"; exit 1; fi
