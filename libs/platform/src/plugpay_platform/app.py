"""Building a service's FastAPI app the same way everywhere."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, TypedDict, Unpack

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from plugpay_events.bus.port import EventBus
from plugpay_events.outbox import OutboxTables

from plugpay_platform.admission import AdmissionLimiter, AdmissionMiddleware
from plugpay_platform.database import Database
from plugpay_platform.errors import install_error_handlers
from plugpay_platform.health import router as health_router
from plugpay_platform.http_security import NoSniffMiddleware, install_api_docs
from plugpay_platform.logging import correlation_id, install_denial_filter
from plugpay_platform.observability import install_observability
from plugpay_platform.runtime import ServiceRuntime
from plugpay_platform.security import KeySource
from plugpay_platform.settings import ServiceSettings


def service_database(request: Request) -> Database:
    """The database of the service answering ``request`` (its runtime's)."""
    database: Database = request.app.state.runtime.database
    return database


# An endpoint's unit-of-work factory: ``async with db.write() as session: ...``.
ServiceDatabase = Annotated[Database, Depends(service_database)]


def build_service_app(
    runtime: ServiceRuntime,
    routers: Sequence[APIRouter],
    *,
    title: str,
    prefix: str,
    shed_paths: Sequence[str] = (),
) -> FastAPI:
    """A FastAPI app with the shared error bodies, health checks, correlation ids, metrics
    (``{prefix}/metrics``), request traces, API docs (``{prefix}/docs``) and security headers.

    ``prefix`` is the public path (``/sessions``), so the same routes work behind the gateway,
    in the embedded process and in tests. ``shed_paths`` (shell patterns) are the phone routes
    refused with 503 + Retry-After beyond the process's capacity (``plugpay_platform.admission``).
    """
    app = FastAPI(
        title=title,
        lifespan=runtime.lifespan,
        docs_url=None,  # served by install_api_docs from a pinned package, not a CDN
        openapi_url=f"{prefix}/openapi.json",
        redoc_url=None,
    )
    # Before the start too: tooling reads the consumers a service declares (tests/deploy's ACLs).
    app.state.runtime = runtime
    install_error_handlers(app)
    install_denial_filter()
    install_api_docs(app, prefix=prefix, title=title)
    app.include_router(health_router, prefix=prefix)
    for router in routers:
        app.include_router(router)

    @app.middleware("http")
    async def correlate(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        # One id follows a request into the events it causes and into every log line.
        cid = request.headers.get("x-correlation-id") or str(uuid.uuid4())
        token = correlation_id.set(cid)
        try:
            response = await call_next(request)
        finally:
            correlation_id.reset(token)
        response.headers["x-correlation-id"] = cid
        return response

    if shed_paths:  # inside the security headers and metrics: refusals get both
        limiter = AdmissionLimiter(runtime.settings.platform.admission_policy())
        app.state.admission = limiter
        runtime.on_stop.append(limiter.stop)
        app.add_middleware(AdmissionMiddleware, limiter=limiter, paths=shed_paths)
    app.add_middleware(NoSniffMiddleware)
    # Added last, so it is outermost: its span and timing cover the whole request.
    install_observability(app, runtime.observability, prefix=prefix)
    return app


class Wiring(TypedDict, total=False):
    """What a caller may put in place of a service's own parts (every ``create_app`` takes
    them): the event bus (tests, the embedded process) and the token keys (the embedded
    process verifies with auth-svc's keys in memory)."""

    bus_factory: Callable[[], EventBus] | None
    key_source: KeySource | None


@dataclass(frozen=True)
class ServiceDefinition:
    """A service as its composition root names it: the opening every ``app.py`` shares.

    ``create_app`` builds ``runtime(settings, **wiring)``, registers its consumers and hooks on
    it, then ``app(runtime, routers)``; what differs between services stays in their app.py.
    """

    name: str
    prefix: str
    migrations: Path
    outbox_tables: OutboxTables
    shed_paths: Sequence[str] = ()

    def runtime(self, settings: ServiceSettings, **wiring: Unpack[Wiring]) -> ServiceRuntime:
        """The service's runtime: its database, bus, outbox relay and token verifier."""
        return ServiceRuntime(
            name=self.name,
            settings=settings,
            migrations=self.migrations,
            outbox_tables=self.outbox_tables,
            bus_factory=wiring.get("bus_factory"),
            key_source=wiring.get("key_source"),
        )

    def app(self, runtime: ServiceRuntime, routers: Sequence[APIRouter]) -> FastAPI:
        """The service's FastAPI app (``build_service_app``), its settings on ``app.state``."""
        app = build_service_app(
            runtime,
            routers,
            title=f"Plugpay {self.name}",
            prefix=self.prefix,
            shed_paths=self.shed_paths,
        )
        app.state.settings = runtime.settings
        return app
