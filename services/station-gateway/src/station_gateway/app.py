"""The composition root of station-gateway: settings in, a running app out."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Unpack

from fastapi import FastAPI
from plugpay_events.topics import IDENTITY, PRICING, SESSIONS
from plugpay_platform.app import ServiceDefinition, Wiring
from plugpay_platform.runtime import ConsumerSpec

from station_gateway.endpoints import ocpp_router, router
from station_gateway.gateway import Gateway
from station_gateway.handlers import (
    REGISTRY_EVENTS,
    SESSION_EVENTS,
    apply_registry_event,
    session_event_handler,
)
from station_gateway.settings import Settings
from station_gateway.tables import outbox_tables

NAME = "station-gateway"
PREFIX = "/stations"
MIGRATIONS = Path(__file__).parent / "migrations"
SERVICE = ServiceDefinition(NAME, PREFIX, MIGRATIONS, outbox_tables)


def create_app(settings: Settings | None = None, **wiring: Unpack[Wiring]) -> FastAPI:
    """Build station-gateway: its routes, consumers and runtime, from settings."""
    settings = settings or Settings()
    runtime = SERVICE.runtime(settings, **wiring)
    gateway = Gateway(settings, lambda: runtime.database)
    sessions = runtime.database.sessions
    if settings.consume_events:
        runtime.consume(
            ConsumerSpec.transactional(
                "station-gateway.registry",
                (IDENTITY, PRICING),
                sessions,
                outbox_tables,
                apply_registry_event,
                handles=REGISTRY_EVENTS,
            )
        )
        runtime.consume(
            ConsumerSpec.transactional(
                "station-gateway.sessions",
                (SESSIONS,),
                sessions,
                outbox_tables,
                session_event_handler(
                    settings.platform.instance_id,
                    timedelta(seconds=settings.instance_heartbeat_s * 3),
                ),
                handles=SESSION_EVENTS,
            )
        )
    runtime.on_start.append(gateway.start)
    runtime.on_stop.append(gateway.stop)
    app = SERVICE.app(runtime, [router, ocpp_router])
    app.state.gateway = gateway
    return app
