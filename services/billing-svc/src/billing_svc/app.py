"""The composition root of billing-svc: settings in, a running app out."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fastapi import FastAPI
from plugpay_events.bus.port import EventBus
from plugpay_platform.app import build_service_app
from plugpay_platform.runtime import ServiceRuntime
from plugpay_platform.security import KeySource

from billing_svc.settings import Settings
from billing_svc.tables import outbox_tables

NAME = "billing-svc"
PREFIX = "/billing"
MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(
    settings: Settings | None = None,
    *,
    bus_factory: Callable[[], EventBus] | None = None,
    key_source: KeySource | None = None,
) -> FastAPI:
    """Build billing-svc: its routes, consumers and runtime, from settings."""
    settings = settings or Settings()  # type: ignore[call-arg]
    runtime = ServiceRuntime(
        name=NAME,
        settings=settings,
        migrations=MIGRATIONS,
        outbox_tables=outbox_tables,
        bus_factory=bus_factory,
        key_source=key_source,
    )
    return build_service_app(runtime, [], title="Plugpay billing-svc", prefix=PREFIX)
