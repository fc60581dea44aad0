"""pricing-svc on a real PostgreSQL (fresh database per test), with its own event log."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from plugpay_events import Envelope, Event
from plugpay_events.serde import decode
from plugpay_platform.settings import PlatformSettings
from plugpay_testing import eventually
from plugpay_testing.tokens import TokenFactory
from pricing_svc.app import create_app
from pricing_svc.settings import Settings


@pytest.fixture
def tokens() -> TokenFactory:
    return TokenFactory()


def build_app(
    database_url: str, topic_prefix: str, tokens: TokenFactory, kafka: str | None = None
) -> FastAPI:
    settings = Settings(
        database_url=database_url,
        platform=PlatformSettings(
            eventlog_database_url=database_url,
            topic_prefix=topic_prefix,
            kafka_bootstrap=kafka,
            # A busy machine's event-loop lag must not answer a quote with 503 busy: these
            # tests are about prices (plugpay_platform's own tests cover admission).
            admission_max_loop_lag_ms=0,
        ),
    )
    return create_app(settings, key_source=tokens)


@pytest.fixture
async def app(database_url: str, topic_prefix: str, tokens: TokenFactory) -> AsyncIterator[FastAPI]:
    app = build_app(database_url, topic_prefix, tokens)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def kafka_app(
    database_url: str, topic_prefix: str, tokens: TokenFactory, kafka: str
) -> AsyncIterator[FastAPI]:
    app = build_app(database_url, topic_prefix, tokens, kafka=kafka)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://pricing.test") as client:
        yield client


def operator(tokens: TokenFactory, organisation_id: uuid.UUID) -> dict[str, str]:
    return tokens.headers(roles=("operator",), organisation_id=organisation_id)


async def publish(app: FastAPI, *events: Event | Envelope) -> list[Envelope]:
    envelopes = [
        e if isinstance(e, Envelope) else Envelope.wrap(e, producer="test") for e in events
    ]
    await app.state.runtime.bus.publish(envelopes)
    return envelopes


async def topic_events(app: FastAPI, topic: str, type_: str, *, at_least: int = 1) -> list[Any]:
    """The events of a type on a topic, once at least ``at_least`` are there (the outbox relay
    publishes after the commit)."""
    bus = app.state.runtime.bus

    async def read() -> list[Any]:
        records = await bus.read_topic(bus.topic_name(topic))
        found = [env.event() for r in records if (env := decode(r.value)).type == type_]
        return found if len(found) >= at_least else []

    return list(await eventually(read)) if at_least else await read()


async def register_station(
    app: FastAPI, client: httpx.AsyncClient, headers: dict[str, str], event: Any
) -> None:
    """Publish auth-svc's StationRegistered and wait until pricing-svc knows the station."""
    await publish(app, event)

    async def known() -> bool:
        response = await client.get(f"/pricing/stations/{event.station_id}", headers=headers)
        return response.status_code == 200

    await eventually(known)
