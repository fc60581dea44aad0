"""The composition root of station-gateway: settings in, a running app out."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from fastapi import FastAPI
from plugpay_events.bus.port import EventBus
from plugpay_events.topics import IDENTITY, PRICING, SESSIONS
from plugpay_platform.app import build_service_app
from plugpay_platform.runtime import ConsumerSpec, ServiceRuntime
from plugpay_platform.security import KeySource

from station_gateway.endpoints import ocpp_router, router
from station_gateway.gateway import Gateway
from station_gateway.handlers import apply_registry_event, session_event_handler
from station_gateway.settings import Settings
from station_gateway.tables import outbox_tables

NAME = "station-gateway"
PREFIX = "/stations"
MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(
    settings: Settings | None = None,
    *,
    bus_factory: Callable[[], EventBus] | None = None,
    key_source: KeySource | None = None,
) -> FastAPI:
    """Build station-gateway: its routes, consumers and runtime, from settings."""
    settings = settings or Settings()
    runtime = ServiceRuntime(
        name=NAME,
        settings=settings,
        migrations=MIGRATIONS,
        outbox_tables=outbox_tables,
        bus_factory=bus_factory,
        key_source=key_source,
    )
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
            )
        )
    runtime.on_start.append(gateway.start)
    runtime.on_stop.append(gateway.stop)
    app = build_service_app(
        runtime, [router, ocpp_router], title="Plugpay station-gateway", prefix=PREFIX
    )
    app.state.gateway = gateway
    return app
