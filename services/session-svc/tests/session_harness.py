"""Running session-svc in-process for integration tests (module name unique per service)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
from fastapi import FastAPI
from plugpay_events.contracts.stations import StationConnected
from plugpay_events.envelope import Envelope, Event
from plugpay_events.session_code import verification_jwks
from plugpay_platform.settings import PlatformSettings
from plugpay_testing import eventually
from plugpay_testing.tokens import TokenFactory
from session_stories import Story
from session_svc.app import create_app
from session_svc.settings import Settings
from sqlalchemy import text


def make_settings(
    database_url: str,
    topic_prefix: str,
    signing_key: dict[str, Any],
    *,
    kafka: str | None = None,
    **overrides: Any,
) -> Settings:
    values: dict[str, Any] = {
        "clock_skew_s": 0.5,
        "start_timeout_s": 600,
        # These tests exercise session-svc's own abandonment (in production a backstop).
        "start_backstop_s": 0,
        "timer_interval_s": 0.05,
        # No pricing or billing here: scans wait for an authorisation only a test publishes,
        # which admission control would count as a backlog (tests/integration/test_admission).
        "scan_backlog_late": 0,
        **overrides,
    }
    return Settings(
        database_url=database_url,
        code_verification_jwks=verification_jwks(signing_key),
        platform=PlatformSettings(
            eventlog_database_url=database_url if kafka is None else None,
            topic_prefix=topic_prefix,
            kafka_bootstrap=kafka,
            # A busy test machine's event-loop lag must not turn these tests' requests into 503
            # busy (test_admission sets the admission limits it tests).
            admission_max_loop_lag_ms=0,
        ),
        **values,
    )


@contextlib.asynccontextmanager
async def running(settings: Settings, tokens: TokenFactory) -> AsyncIterator[FastAPI]:
    app = create_app(settings, key_source=tokens)
    async with app.router.lifespan_context(app):
        yield app


def client_for(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=("203.0.113.7", 5555)),
        base_url="http://session-svc.test",
    )


async def publish(app: FastAPI, *events: Event) -> list[Envelope]:
    envelopes = [Envelope.wrap(e, producer="test") for e in events]
    await app.state.runtime.bus.publish(envelopes)
    return envelopes


async def station_online(app: FastAPI, station_id: str) -> None:
    await publish(
        app,
        StationConnected(
            station_id=station_id,
            ocpp_version="2.0.1",
            gateway_instance="gw-1",
            connected_at=datetime.now(UTC),
        ),
    )
    await eventually(
        lambda: scalar(app, "SELECT online FROM stations WHERE station_id = :s", s=station_id),
        what=f"{station_id} online",
    )


async def scalar(app: FastAPI, sql: str, **params: Any) -> Any:
    async with app.state.runtime.database.engine.connect() as conn:
        return await conn.scalar(text(sql), params)


async def status_of(app: FastAPI, session_id: uuid.UUID) -> str | None:
    value: str | None = await scalar(
        app, "SELECT status FROM sessions WHERE session_id = :s", s=session_id
    )
    return value


async def wait_status(app: FastAPI, session_id: uuid.UUID, status: str, within: float = 15) -> None:
    async def probe() -> bool:
        return await status_of(app, session_id) == status

    await eventually(probe, within=within, what=f"{session_id} {status}")


async def events_of_type(app: FastAPI, topic: str, event_type: str) -> list[Envelope]:
    bus = app.state.runtime.bus
    records = await bus.read_topic(bus.topic_name(topic))
    envelopes = [Envelope.model_validate_json(r.value) for r in records]
    return [e for e in envelopes if e.type == event_type]


async def issue(app: FastAPI, key: dict[str, Any], **story: Any) -> Story:
    """A station shows a code; session-svc's store learns it."""
    s = Story(**story)
    await publish(app, s.issued(key))
    await eventually(lambda: status_of(app, s.session_id), what="code registered")
    return s
