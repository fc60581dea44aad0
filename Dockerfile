# One image recipe for every Plugpay service (the uv workspace is the build context):
#
#   docker build --build-arg SERVICE=auth-svc --build-arg HEALTH_PREFIX=/auth -t plugpay/auth-svc:0.1.0 .
#
# `make images` builds them all (names, tags and health prefixes from deploy/gateway/routes.yaml and
# the project's version). PYTHON_IMAGE, UV_IMAGE and DEBIAN_IMAGE (binutils, to strip native code)
# default to the public images; where no registry is reachable, deploy/docker/base-images.sh makes
# equivalents from Debian packages and PyPI.
# The image runs as UID 10001, writes nowhere but /tmp (read-only root filesystem), and holds
# no compilers: the runtime stage receives only the built virtual environment.

ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13.9
ARG DEBIAN_IMAGE=debian:bookworm-slim

FROM ${UV_IMAGE} AS uv

# Only the workspace's pyproject.toml files and the lock: this stage's output changes only when
# they do, so the dependency layers below survive code edits (and need no list of members).
FROM ${PYTHON_IMAGE} AS manifests
WORKDIR /src
COPY . .
RUN find . -type f ! -name pyproject.toml ! -name uv.lock -delete

FROM ${PYTHON_IMAGE} AS dependencies
ARG SERVICE
# PEM certificates of a TLS-intercepting egress proxy, trusted while fetching wheels (never in the
# runtime stage). Empty: the base image's CA bundle alone.
ARG BUILD_CA_CERTS=""
RUN cat /etc/ssl/certs/ca-certificates.crt >/tmp/build-ca.pem \
    && if [ -n "${BUILD_CA_CERTS}" ]; then printf '%s\n' "${BUILD_CA_CERTS}" >>/tmp/build-ca.pem; fi
COPY --from=uv /uv /uvx /bin/
# python3.11 from PATH: /usr/local/bin in the public image, /usr/bin in the Debian one. No
# bytecode from uv: slim_venv.py compiles what the service imports (below).
ENV UV_COMPILE_BYTECODE=0 \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1 \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=python3.11 \
    UV_PROJECT_ENVIRONMENT=/app/.venv \
    SSL_CERT_FILE=/tmp/build-ca.pem
WORKDIR /src
# Third-party dependencies first, exactly as locked (--frozen: never re-resolved).
COPY --from=manifests /src ./
RUN test -n "${SERVICE}" || { echo "--build-arg SERVICE=<service> is required" >&2; exit 1; } \
    && uv sync --frozen --no-dev --package "${SERVICE}" --no-install-workspace

# Wheels ship their native extension modules with debug symbols (uvloop's 13 MB are 1.6 MB
# without): strip them with Debian's binutils, in a stage of its own, so no build tool reaches
# the runtime image. The vendored libraries in *.libs folders are already stripped.
FROM ${DEBIAN_IMAGE} AS strip
# hadolint ignore=DL3008
RUN apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends binutils \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*
COPY --from=dependencies /app/.venv /app/.venv
RUN find /app/.venv -type f -name '*.so' ! -path '*.libs/*' -exec strip --strip-unneeded {} +

# Then the workspace's own packages (libs + this service), installed non-editable; one name
# for the console script, so CMD is the same for every service. slim_venv.py checks that every
# stripped extension still imports, drops files nothing reads and compiles the bytecode of what
# the service imports when it starts.
FROM dependencies AS builder
ARG SERVICE
COPY --from=strip /app/.venv /app/.venv
COPY . .
RUN uv sync --frozen --no-dev --package "${SERVICE}" --no-editable \
    && /app/.venv/bin/python -B deploy/docker/slim_venv.py "${SERVICE}" \
    && ln -s "${SERVICE}" /app/.venv/bin/plugpay-service

FROM ${PYTHON_IMAGE} AS runtime
ARG SERVICE
ARG HEALTH_PREFIX
# A numeric user without useradd (the Debian-built base has no passwd package).
RUN test -n "${HEALTH_PREFIX}" || { echo "--build-arg HEALTH_PREFIX=/<prefix> is required" >&2; exit 1; } \
    && echo "plugpay:x:10001:10001:plugpay:/nonexistent:/usr/sbin/nologin" >>/etc/passwd \
    && echo "plugpay:x:10001:" >>/etc/group
# Owned by root, so the service cannot change its own code.
COPY --from=builder /app/.venv /app/.venv
COPY deploy/docker/service-entrypoint.sh /usr/local/bin/plugpay-entrypoint
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TMPDIR=/tmp \
    HOME=/tmp \
    PLUGPAY_SERVICE=${SERVICE} \
    PLUGPAY_HEALTH_PREFIX=${HEALTH_PREFIX}
LABEL org.opencontainers.image.title="plugpay ${SERVICE}" \
      org.opencontainers.image.source="https://github.com/plugpay/plugpay"
USER 10001:10001
WORKDIR /tmp
EXPOSE 8000
# The port the service listens on is <SERVICE>_PORT (the entrypoint defaults it to 8000).
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; s = os.environ['PLUGPAY_SERVICE'].upper().replace('-', '_'); u.urlopen('http://127.0.0.1:%s%s/healthz' % (os.environ.get(s + '_PORT', '8000'), os.environ['PLUGPAY_HEALTH_PREFIX']), timeout=2)"]
ENTRYPOINT ["plugpay-entrypoint"]
CMD ["plugpay-service"]
