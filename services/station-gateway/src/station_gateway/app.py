"""The composition root of station-gateway: settings in, a running app out."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fastapi import FastAPI
from plugpay_events.bus.port import EventBus
from plugpay_platform.app import build_service_app
from plugpay_platform.runtime import ServiceRuntime
from plugpay_platform.security import KeySource

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
    settings = settings or Settings()  # type: ignore[call-arg]
    runtime = ServiceRuntime(
        name=NAME,
        settings=settings,
        migrations=MIGRATIONS,
        outbox_tables=outbox_tables,
        bus_factory=bus_factory,
        key_source=key_source,
    )
    return build_service_app(runtime, [], title="Plugpay station-gateway", prefix=PREFIX)
