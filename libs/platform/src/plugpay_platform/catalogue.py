"""The one catalogue of Plugpay's services, as data.

Read by the embedded mode (apps/plugpay), ``scripts/stack.sh`` (``python -m
plugpay_platform.catalogue stack``), the deployment renderer (``scripts/render_k8s.py``: nginx,
Kubernetes, Compose), ``deploy/docker/images.sh``, the reliability suite and the tests. What a
service *consumes* is not typed here: the renderer reads it from the consumers its
``create_app`` declares, so a new consumer cannot be forgotten in the Kafka ACLs.

    python -m plugpay_platform.catalogue stack   # "name port-offset database env-prefix" lines
    python -m plugpay_platform.catalogue images  # "name health-prefix" lines
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from plugpay_events import topics as T


@dataclass(frozen=True)
class Resources:
    """What one replica asks for and how the deployment scales and drains it."""

    cpu: str = "100m"
    memory: str = "256Mi"
    memory_limit: str = "512Mi"
    cpu_limit: str = "1"
    min_replicas: int = 2
    max_replicas: int = 6
    termination_grace_s: int = 30
    pre_stop_sleep_s: int = 5


@dataclass(frozen=True)
class ServiceEntry:
    """One service: where it lives, what it serves and produces, what it may call."""

    name: str
    database: str
    paths: tuple[str, ...]  # the public prefixes its routers serve
    health_prefix: str  # its own prefix: {health_prefix}/healthz, /readyz, /metrics
    # Local processes (scripts/stack.sh, Compose): one per offset, at a stack's PORT_BASE + offset.
    port_offsets: tuple[int, ...]
    produces: tuple[T.Topic, ...]  # docs/flow.md; every service may also dead-letter
    calls: tuple[str, ...] = ()  # HTTP calls to other services (JWKS from auth-svc)
    egress_https: bool = False  # calls out of the cluster (the payment processor)
    egress_smtp: bool = False  # mail submission (465 TLS, 587 STARTTLS)
    resources: Resources = field(default_factory=Resources)

    @property
    def package(self) -> str:
        return self.name.replace("-", "_")

    @property
    def env_prefix(self) -> str:
        return self.name.upper().replace("-", "_") + "_"

    @property
    def docs_path(self) -> str:
        """Its API docs, under its own prefix (station-gateway's /ocpp is WebSockets)."""
        return f"{self.health_prefix}/docs"

    @property
    def app(self) -> str:
        """The composition root, as uvicorn names it."""
        return f"{self.package}.app:create_app"


SERVICES: tuple[ServiceEntry, ...] = (
    ServiceEntry(
        "auth-svc",
        database="auth",
        paths=("/auth",),
        health_prefix="/auth",
        port_offsets=(1,),
        produces=(T.IDENTITY,),
    ),
    ServiceEntry(
        "station-gateway",
        database="station_gateway",
        paths=("/ocpp", "/stations"),
        health_prefix="/stations",
        # Two processes, so stations really spread over two gateways' sockets.
        port_offsets=(2, 6),
        produces=(T.STATIONS, T.SESSIONS, T.METER),
        calls=("auth-svc",),
        # Stations hold long-lived sockets: drain slowly (docs/deploy.md).
        resources=Resources(
            cpu="200m",
            memory="384Mi",
            memory_limit="768Mi",
            min_replicas=3,
            max_replicas=12,
            termination_grace_s=180,
            pre_stop_sleep_s=15,
        ),
    ),
    ServiceEntry(
        "session-svc",
        database="sessions",
        paths=("/sessions",),
        health_prefix="/sessions",
        port_offsets=(3,),
        produces=(T.SESSIONS,),
        calls=("auth-svc",),
        # SSE streams to the app close on shutdown.
        resources=Resources(
            cpu="200m", memory="384Mi", memory_limit="768Mi", termination_grace_s=60
        ),
    ),
    ServiceEntry(
        "pricing-svc",
        database="pricing",
        paths=("/pricing",),
        health_prefix="/pricing",
        port_offsets=(4,),
        produces=(T.PRICING, T.SESSIONS),
        calls=("auth-svc",),
    ),
    ServiceEntry(
        "billing-svc",
        database="billing",
        paths=("/billing",),
        health_prefix="/billing",
        port_offsets=(5,),
        produces=(T.SESSIONS, T.BILLING),
        calls=("auth-svc",),
        egress_https=True,
    ),
    ServiceEntry(
        "notification-svc",
        database="notifications",
        paths=("/notifications",),
        health_prefix="/notifications",
        port_offsets=(7,),
        produces=(),
        calls=("auth-svc",),
        egress_smtp=True,
    ),
)
BY_NAME = {s.name: s for s in SERVICES}


def main(argv: list[str]) -> int:
    """Print the catalogue for shell scripts, one service (process) per line."""
    if argv == ["stack"]:
        for s in SERVICES:
            for offset in s.port_offsets:
                print(s.name, offset, s.database, s.env_prefix)
        return 0
    if argv == ["images"]:
        for s in SERVICES:
            print(s.name, s.health_prefix)
        return 0
    print("usage: python -m plugpay_platform.catalogue stack|images", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
