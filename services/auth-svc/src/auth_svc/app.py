"""The composition root of auth-svc: settings in, a running app out."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fastapi import FastAPI
from plugpay_events.bus.port import EventBus
from plugpay_platform.app import build_service_app
from plugpay_platform.runtime import ServiceRuntime
from plugpay_platform.security import KeySource

from auth_svc.settings import Settings
from auth_svc.tables import outbox_tables

NAME = "auth-svc"
PREFIX = "/auth"
MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(
    settings: Settings | None = None,
    *,
    bus_factory: Callable[[], EventBus] | None = None,
    key_source: KeySource | None = None,
) -> FastAPI:
    """Build auth-svc: its routes, consumers and runtime, from settings."""
    settings = settings or Settings()  # type: ignore[call-arg]
    runtime = ServiceRuntime(
        name=NAME,
        settings=settings,
        migrations=MIGRATIONS,
        outbox_tables=outbox_tables,
        bus_factory=bus_factory,
        key_source=key_source,
    )
    return build_service_app(runtime, [], title="Plugpay auth-svc", prefix=PREFIX)
