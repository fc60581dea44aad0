"""ServiceDefinition: the opening every service's create_app shares."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from fastapi import APIRouter
from plugpay_events.bus.embedded import EmbeddedEventBus
from plugpay_events.outbox import define_outbox_tables
from plugpay_platform.app import ServiceDefinition
from plugpay_platform.security import StaticJwks
from plugpay_platform.settings import ServiceSettings
from pydantic import SecretStr
from sqlalchemy import MetaData

UNUSED_URL = "postgresql+asyncpg://nobody@127.0.0.1:9/none"  # no lifespan: never connected
SETTINGS = ServiceSettings(database_url=SecretStr(UNUSED_URL))
TABLES = define_outbox_tables(MetaData())


async def no_keys() -> dict[str, Any]:
    return {"keys": []}


def test_the_runtime_carries_the_definition_and_the_wiring() -> None:
    bus = EmbeddedEventBus(UNUSED_URL)
    keys = StaticJwks(no_keys)
    demo = ServiceDefinition("demo-svc", "/demo", Path("/nowhere/migrations"), TABLES)

    runtime = demo.runtime(SETTINGS, bus_factory=lambda: bus, key_source=keys)

    assert runtime.name == "demo-svc"
    assert runtime.settings is SETTINGS
    assert runtime.migrations == Path("/nowhere/migrations")
    assert runtime.outbox_tables is TABLES
    assert runtime.bus is bus
    assert runtime.token_verifier.keys is keys


def test_without_wiring_the_runtime_builds_its_own_bus_and_fetches_keys_over_http() -> None:
    demo = ServiceDefinition("demo-svc", "/demo", Path("."), TABLES)

    runtime = demo.runtime(SETTINGS)

    assert runtime.bus_factory is None and runtime.key_source is None
    assert not isinstance(runtime.token_verifier.keys, StaticJwks)


async def test_the_app_is_titled_and_served_under_the_prefix_with_its_settings() -> None:
    router = APIRouter()

    @router.get("/demo/ping")
    async def ping() -> dict[str, bool]:
        return {"pong": True}

    demo = ServiceDefinition("demo-svc", "/demo", Path("."), TABLES, shed_paths=("/demo/ping",))
    runtime = demo.runtime(SETTINGS, bus_factory=lambda: EmbeddedEventBus(UNUSED_URL))

    app = demo.app(runtime, [router])

    assert app.state.settings is SETTINGS
    assert app.state.runtime is runtime
    assert app.state.admission is not None  # shed_paths given: the phone routes are guarded
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        openapi = (await http.get("/demo/openapi.json")).json()
        assert openapi["info"]["title"] == "Plugpay demo-svc"
        assert "/demo/ping" in openapi["paths"]
        assert (await http.get("/demo/ping")).json() == {"pong": True}


def test_without_shed_paths_no_admission_limiter_is_installed() -> None:
    demo = ServiceDefinition("demo-svc", "/demo", Path("."), TABLES)
    runtime = demo.runtime(SETTINGS, bus_factory=lambda: EmbeddedEventBus(UNUSED_URL))

    app = demo.app(runtime, [])

    assert not hasattr(app.state, "admission")
