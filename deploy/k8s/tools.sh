#!/usr/bin/env bash
# Print the path of a kustomize binary, installing a pinned one under .cache/bin if needed.
# Idempotent and offline once cached. Order: .cache/bin/kustomize, `go install` of the pinned
# version (Go module proxy), else kubectl's built-in kustomize (printed as "kubectl kustomize").
#   deploy/k8s/tools.sh kustomize     -> e.g. /repo/.cache/bin/kustomize
set -euo pipefail
KUSTOMIZE_VERSION=v5.5.0
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
bin="$root/.cache/bin"

case "${1:-kustomize}" in
  kustomize)
    if [[ -x "$bin/kustomize" ]] && "$bin/kustomize" version 2>/dev/null | grep -q "$KUSTOMIZE_VERSION"; then
      echo "$bin/kustomize"; exit 0
    fi
    if command -v go >/dev/null 2>&1; then
      mkdir -p "$bin"
      if GOBIN="$bin" GOFLAGS=-mod=mod go install "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION" >&2; then
        echo "$bin/kustomize"; exit 0
      fi
    fi
    if command -v kubectl >/dev/null 2>&1; then
      echo "kubectl kustomize"; exit 0
    fi
    echo "no kustomize: install Go or kubectl" >&2; exit 1
    ;;
  *) echo "usage: $0 kustomize" >&2; exit 2 ;;
esac
