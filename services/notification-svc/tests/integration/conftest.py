"""notification-svc on a real PostgreSQL (fresh database per test) and a real SMTP server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from notification_svc.app import create_app
from notification_svc.settings import Settings
from plugpay_events import Envelope, Event
from plugpay_platform.settings import PlatformSettings
from plugpay_testing.tokens import TokenFactory
from pydantic import SecretStr

from ..smtp_server import SmtpServer


@pytest.fixture
def tokens() -> TokenFactory:
    return TokenFactory()


@pytest.fixture
async def smtp() -> AsyncIterator[SmtpServer]:
    async with SmtpServer() as server:
        yield server


def build_app(
    database_url: str,
    topic_prefix: str,
    tokens: TokenFactory,
    smtp_url: str,
    kafka: str | None = None,
    **overrides: Any,
) -> FastAPI:
    settings = Settings(
        database_url=SecretStr(database_url),
        smtp_url=SecretStr(smtp_url),
        mail_from="Plugpay <no-reply@plugpay.test>",
        poll_interval_s=0.05,
        platform=PlatformSettings(
            eventlog_database_url=database_url,
            topic_prefix=topic_prefix,
            kafka_bootstrap=kafka,
            public_base_url="https://plugpay.test",
            environment="test",
        ),
        **overrides,
    )
    return create_app(settings, key_source=tokens)


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[FastAPI]:
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def app(
    database_url: str, topic_prefix: str, tokens: TokenFactory, smtp: SmtpServer
) -> AsyncIterator[FastAPI]:
    async with running(build_app(database_url, topic_prefix, tokens, smtp.url)) as app:
        yield app


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://notify.test") as client:
        yield client


async def publish(app: FastAPI, *events: Event | Envelope) -> list[Envelope]:
    envelopes = [
        e if isinstance(e, Envelope) else Envelope.wrap(e, producer="test") for e in events
    ]
    await app.state.runtime.bus.publish(envelopes)
    return envelopes
