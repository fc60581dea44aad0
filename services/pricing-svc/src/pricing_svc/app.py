"""The composition root of pricing-svc: settings in, a running app out."""

from __future__ import annotations

from pathlib import Path
from typing import Unpack

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from plugpay_events.topics import IDENTITY, SESSIONS, STATIONS
from plugpay_platform.app import ServiceDefinition, Wiring
from plugpay_platform.runtime import ConsumerSpec

from pricing_svc import handlers
from pricing_svc.endpoints import router
from pricing_svc.service import InvalidInput
from pricing_svc.settings import Settings
from pricing_svc.tables import outbox_tables

NAME = "pricing-svc"
# What a phone asks to start a new session: shed beyond capacity (plugpay_platform.admission),
# unlike the paths of sessions already running.
PHONE_ROUTES = ("/pricing/stations/*/quote", "/pricing/stations/public")
PREFIX = "/pricing"
MIGRATIONS = Path(__file__).parent / "migrations"
SERVICE = ServiceDefinition(NAME, PREFIX, MIGRATIONS, outbox_tables, shed_paths=PHONE_ROUTES)


def create_app(settings: Settings | None = None, **wiring: Unpack[Wiring]) -> FastAPI:
    """Build pricing-svc: its routes, consumers and runtime, from settings."""
    runtime = SERVICE.runtime(settings or Settings(), **wiring)
    sessions = runtime.database.sessions
    runtime.consume(
        ConsumerSpec.transactional(
            handlers.IDENTITY_GROUP,
            [IDENTITY],
            sessions,
            outbox_tables,
            handlers.on_identity_event,
            handles=handlers.IDENTITY_EVENTS,
        )
    )
    runtime.consume(
        ConsumerSpec.transactional(
            handlers.SESSIONS_GROUP,
            [SESSIONS],
            sessions,
            outbox_tables,
            handlers.on_session_event,
            handles=handlers.SESSION_EVENTS,
        )
    )
    runtime.consume(
        ConsumerSpec.transactional(
            handlers.DIRECTORY_GROUP,
            [IDENTITY, STATIONS],
            sessions,
            outbox_tables,
            handlers.on_directory_event,
            handles=handlers.DIRECTORY_EVENTS,
        )
    )

    app = SERVICE.app(runtime, [router])

    @app.exception_handler(InvalidInput)
    async def invalid_input(_: Request, exc: InvalidInput) -> JSONResponse:
        return JSONResponse(
            {"reason": exc.reason, "message": str(exc), "errors": exc.problems}, status_code=422
        )

    return app
