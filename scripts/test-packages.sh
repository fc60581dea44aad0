#!/usr/bin/env bash
# Sync each workspace package ALONE into its own venv and run its tests there, so an import
# a package does not declare fails here instead of in production.
set -euo pipefail
cd "$(dirname "$0")/.."
UV=(python3 -m uv)
status=0
for dir in libs/* services/* apps/*; do
  [[ -f "$dir/pyproject.toml" && -d "$dir/tests" ]] || continue
  name=$(python3 -c "import tomllib,sys;print(tomllib.load(open(sys.argv[1],'rb'))['project']['name'])" "$dir/pyproject.toml")
  echo "=== $name (alone)"
  export UV_PROJECT_ENVIRONMENT=".cache/venvs/$name"
  "${UV[@]}" sync --quiet --package "$name" --frozen
  "${UV[@]}" run --no-sync --package "$name" pytest "$dir/tests" -p no:cacheprovider "$@" || status=$?
done
exit $status
