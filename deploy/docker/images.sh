#!/usr/bin/env bash
# `make images`: every Plugpay image, tagged with the project's version, checked for secrets,
# then a table of their sizes.
#
#   deploy/docker/images.sh [build]   build (Docker's layer cache makes a second run fast)
#   deploy/docker/images.sh list      print the image names, one a line (services first)
#
# Services come from the catalogue, deploy/gateway/routes.yaml (name + health prefix), and are
# built from the one Dockerfile at the root (ARG SERVICE). Infrastructure for Compose and for
# the tests' testcontainers path: Kafka (the jars of deploy/local/kafka.sh), PostgreSQL and nginx
# (Debian packages). PLUGPAY_IMAGE_BASES=local (default: no registry needed) builds on the
# Debian-made bases of base-images.sh; =public uses the Dockerfiles' defaults (Docker Hub, ghcr.io).
# A service image bigger than PLUGPAY_SERVICE_IMAGE_BUDGET_MB (default 250) fails the build.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
PY=("$ROOT/.venv/bin/python")
VERSION=$("${PY[@]}" -c 'import tomllib,sys;print(tomllib.load(open(sys.argv[1],"rb"))["project"]["version"])' "$ROOT/pyproject.toml")
KAFKA_VERSION=$(sed -nE 's#.*<kafka.version>([^<]+)</kafka.version>.*#\1#p' "$ROOT/deploy/local/kafka/pom.xml")
KAFKA_IMAGE=plugpay/kafka:$KAFKA_VERSION
POSTGRES_IMAGE=plugpay/postgres:15
NGINX_IMAGE=plugpay/nginx:$VERSION
BASES=${PLUGPAY_IMAGE_BASES:-local}
SERVICE_BUDGET_MB=${PLUGPAY_SERVICE_IMAGE_BUDGET_MB:-250}
export DOCKER_BUILDKIT=0 # the classic builder: no buildx plugin or frontend image to fetch

say() { echo "images: $*" >&2; }

# "name health_prefix" per service, from the catalogue of services.
services() { "${PY[@]}" -m plugpay_platform.catalogue images; }

cmd_list() {
  local name prefix
  while read -r name prefix; do echo "plugpay/$name:$VERSION"; done < <(services)
  echo "$KAFKA_IMAGE"; echo "$POSTGRES_IMAGE"; echo "$NGINX_IMAGE"
}

build() { # tag context dockerfile [args...]
  local tag=$1 context=$2 file=$3; shift 3
  local began=$SECONDS
  if ! docker build --network host --quiet -f "$file" -t "$tag" "$@" "$context" >"$LOG" 2>&1; then
    tail -n 40 "$LOG" >&2
    say "FAILED: $tag (full output: $LOG)"
    exit 1
  fi
  say "built $tag in $((SECONDS - began))s"
}

cmd_build() {
  local start=$SECONDS base_args=() name prefix
  bash "$HERE/engine.sh" up
  mkdir -p "$ROOT/.cache/images"
  LOG="$ROOT/.cache/images/build.log"
  if [[ $BASES == local ]]; then
    bash "$HERE/base-images.sh" build
    read -ra base_args <<<"$(bash "$HERE/base-images.sh" args)"
  fi
  # A TLS-intercepting egress proxy's CA (as on these machines), trusted while fetching wheels.
  local ca=()
  if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    ca=(--build-arg "BUILD_CA_CERTS=$(cat /usr/local/share/ca-certificates/*.crt)")
  fi
  while read -r name prefix; do
    build "plugpay/$name:$VERSION" "$ROOT" "$ROOT/Dockerfile" "${base_args[@]}" "${ca[@]}" \
      --build-arg "SERVICE=$name" --build-arg "HEALTH_PREFIX=$prefix"
  done < <(services)
  # Kafka: the same jars as deploy/local (fetched once), plus the compiled readiness probe.
  bash "$ROOT/deploy/local/kafka.sh" fetch
  local ctx="$ROOT/.cache/images/kafka-context"
  rm -rf "$ctx" && mkdir -p "$ctx/libs" "$ctx/probe"
  cp -l "$ROOT"/.cache/kafka/libs/*.jar "$ctx/libs/" 2>/dev/null || cp "$ROOT"/.cache/kafka/libs/*.jar "$ctx/libs/"
  cp "$ROOT"/.cache/kafka/classes/*.class "$ctx/probe/"
  cp "$HERE"/kafka/{Dockerfile,entrypoint.sh,server.properties} "$ctx/"
  cp "$ROOT/deploy/local/kafka/log4j2.properties" "$ctx/"
  build "$KAFKA_IMAGE" "$ctx" "$ctx/Dockerfile" "${base_args[@]}"
  build "$POSTGRES_IMAGE" "$HERE/postgres" "$HERE/postgres/Dockerfile" "${base_args[@]}"
  build "$NGINX_IMAGE" "$HERE/nginx" "$HERE/nginx/Dockerfile" "${base_args[@]}"
  # shellcheck disable=SC2046
  "${PY[@]}" "$HERE/check_secrets.py" $(cmd_list)
  say "all images in $((SECONDS - start))s:"
  cmd_list | while read -r image; do
    docker image inspect --format '{{.Size}}' "$image" |
      awk -v i="$image" '{printf "  %-36s %6.1f MB\n", i, $1 / 1e6}'
  done
  check_service_sizes
}

# A service image over the budget fails the build (docs/deploy.md: every one ≤ 250 MB).
check_service_sizes() {
  local name prefix bytes over=()
  while read -r name prefix; do
    bytes=$(docker image inspect --format '{{.Size}}' "plugpay/$name:$VERSION")
    (( bytes <= SERVICE_BUDGET_MB * 1000000 )) || over+=("$name $((bytes / 1000000)) MB")
  done < <(services)
  if (( ${#over[@]} )); then
    say "FAILED: service images over ${SERVICE_BUDGET_MB} MB: ${over[*]}"
    exit 1
  fi
}

case "${1:-build}" in
  build) cmd_build ;;
  list) cmd_list ;;
  *) echo "usage: $0 [build|list]" >&2; exit 2 ;;
esac
