#!/usr/bin/env bash
# Local base images made from what is reachable here (Debian's mirror, PyPI), for when Docker Hub
# and ghcr.io are not: a Debian root filesystem by mmdebstrap, `docker import`ed.
#
#   deploy/docker/base-images.sh build    build the missing ones (idempotent; --rebuild: all)
#   deploy/docker/base-images.sh args     print the `docker build --build-arg`s that select them
#
# Images (tags say what is inside; none is pushed anywhere):
#   plugpay-local/debian:bookworm         minbase Debian 12 (apt works): kafka, postgres, nginx
#   plugpay-local/python:3.11-bookworm    Debian 12 + python3 (3.11), libstdc++ (greenlet), CA certificates, no apt
#   plugpay-local/uv:<version>            /uv and /uvx from uv's PyPI wheel (same layout as
#                                         ghcr.io/astral-sh/uv), version = the Dockerfile's default
# Documentation, man pages and locales are left out of the root filesystems (as the -slim images).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
WORK="$ROOT/.cache/images"
SUITE=bookworm
MIRROR=${PLUGPAY_DEBIAN_MIRROR:-http://deb.debian.org/debian}
DEBIAN_IMAGE=plugpay-local/debian:$SUITE
PYTHON_IMAGE=plugpay-local/python:3.11-$SUITE
UV_VERSION=$(sed -nE 's/^ARG UV_IMAGE=ghcr\.io\/astral-sh\/uv:([0-9.]+)$/\1/p' "$ROOT/Dockerfile")
[[ -n $UV_VERSION ]] || { echo "base-images: no 'ARG UV_IMAGE=ghcr.io/astral-sh/uv:X' in Dockerfile" >&2; exit 1; }
UV_IMAGE=plugpay-local/uv:$UV_VERSION

say() { echo "base-images: $*" >&2; }
have() { docker image inspect "$1" >/dev/null 2>&1; }

SLIM_OPTS=(
  # /usr merged by mmdebstrap's hook, not by the usrmerge package (which drags in 48 MB of Perl).
  --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr
  --dpkgopt='path-exclude=/usr/share/doc/*'
  --dpkgopt='path-include=/usr/share/doc/*/copyright'
  --dpkgopt='path-exclude=/usr/share/man/*'
  --dpkgopt='path-exclude=/usr/share/info/*'
  --dpkgopt='path-exclude=/usr/share/locale/*'
  --dpkgopt='path-exclude=/usr/share/lintian/*'
  --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/* "$1"/var/log/*'
)

# The Python base leaves out glibc's iconv modules (8 MB): Python has its own codecs, and UTF-8,
# ASCII and Latin-1 are built into glibc.
PYTHON_OPTS=(--dpkgopt='path-exclude=/usr/lib/x86_64-linux-gnu/gconv/*')
EXTRA_OPTS=()

# rootfs tarball from mmdebstrap, imported with the environment a base image is expected to set.
import_rootfs() { # image variant packages... (EXTRA_OPTS: more mmdebstrap options)
  local image=$1 variant=$2; shift 2
  local include tar="$WORK/${image//[\/:]/_}.tar"
  include=$(IFS=,; echo "$*")
  mkdir -p "$WORK"
  say "mmdebstrap $SUITE ($variant${include:+ + $include}) -> $image"
  mmdebstrap --quiet --variant="$variant" ${include:+--include="$include"} "${SLIM_OPTS[@]}" \
    "${EXTRA_OPTS[@]}" \
    "$SUITE" "$tar" "$MIRROR" >&2
  docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["bash"]' \
    "$tar" "$image" >/dev/null
  rm -f "$tar"
}

build_uv() {
  local dir="$WORK/uv-$UV_VERSION"
  rm -rf "$dir" && mkdir -p "$dir/wheel" "$dir/root"
  say "uv $UV_VERSION from PyPI -> $UV_IMAGE"
  python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    --platform manylinux_2_17_x86_64 --python-version 3.11 --dest "$dir/wheel" "uv==$UV_VERSION" >&2
  python3 - "$dir" <<'PY'
import sys, zipfile, pathlib
d = pathlib.Path(sys.argv[1])
wheel = next((d / "wheel").glob("uv-*.whl"))
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if "/scripts/" in name and name.rsplit("/", 1)[1] in ("uv", "uvx"):
            target = d / "root" / name.rsplit("/", 1)[1]
            target.write_bytes(z.read(name))
            target.chmod(0o755)
PY
  tar -C "$dir/root" -cf "$dir/uv.tar" uv uvx
  docker import --change 'ENTRYPOINT ["/uv"]' "$dir/uv.tar" "$UV_IMAGE" >/dev/null
  rm -rf "$dir"
}

cmd_build() {
  local rebuild=${1:-}
  command -v mmdebstrap >/dev/null || { say "mmdebstrap missing: deploy/docker/engine.sh install"; exit 1; }
  if [[ $rebuild == --rebuild ]] || ! have "$DEBIAN_IMAGE"; then
    import_rootfs "$DEBIAN_IMAGE" minbase ca-certificates
  fi
  if [[ $rebuild == --rebuild ]] || ! have "$PYTHON_IMAGE"; then
    EXTRA_OPTS=("${PYTHON_OPTS[@]}")
    import_rootfs "$PYTHON_IMAGE" essential python3 libstdc++6 ca-certificates tzdata
    EXTRA_OPTS=()
  fi
  if [[ $rebuild == --rebuild ]] || ! have "$UV_IMAGE"; then build_uv; fi
}

cmd_args() {
  echo "--build-arg PYTHON_IMAGE=$PYTHON_IMAGE --build-arg UV_IMAGE=$UV_IMAGE --build-arg DEBIAN_IMAGE=$DEBIAN_IMAGE"
}

case "${1:-}" in
  build) shift; cmd_build "$@" ;;
  args) cmd_args ;;
  *) echo "usage: $0 build [--rebuild] | args" >&2; exit 2 ;;
esac
