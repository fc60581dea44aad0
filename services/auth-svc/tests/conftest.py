"""Fixtures of auth-svc's tests: the app on a fresh database, and helpers to log in."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from auth_svc.app import create_app
from auth_svc.settings import Settings
from fastapi import FastAPI
from plugpay_events import serde
from plugpay_events.envelope import Envelope
from plugpay_events.sealed import DEVELOPMENT_KEY, open_sealed
from plugpay_events.topics import IDENTITY
from plugpay_platform.settings import PlatformSettings
from pydantic import SecretStr

ADMIN_EMAIL = "root@plugpay.test"
ADMIN_PASSWORD = "a-long-bootstrap-secret-42"
CLIENT_ADDRESS = "203.0.113.7"


@dataclass
class AuthService:
    """The running app and a client on it."""

    app: FastAPI
    client: httpx.AsyncClient
    mailer: MailRequests

    async def login(self, email: str, password: str, **kwargs: Any) -> dict[str, Any]:
        response = await self.client.post(
            "/auth/token", data={"username": email, "password": password}, **kwargs
        )
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def bearer(self, email: str, password: str) -> dict[str, str]:
        tokens = await self.login(email, password)
        return {"Authorization": f"Bearer {tokens['access_token']}"}

    async def admin(self) -> dict[str, str]:
        return await self.bearer(ADMIN_EMAIL, ADMIN_PASSWORD)

    async def events(
        self, until: str, *, count: int = 1, timeout_s: float = 10.0
    ) -> list[Envelope]:
        """The identity topic's events, once ``count`` of type ``until`` have been published."""
        bus = self.app.state.runtime.bus
        deadline = time.monotonic() + timeout_s
        while True:
            records = await bus.read_topic(bus.topic_name(IDENTITY))
            envelopes = [serde.decode(r.value) for r in records]
            if sum(e.type == until for e in envelopes) >= count or time.monotonic() > deadline:
                return envelopes
            await asyncio.sleep(0.05)


@dataclass(frozen=True)
class MailRequest:
    """A mail auth-svc asked notification-svc to send, with its code unsealed."""

    type: str
    email: str
    code: str
    group: str | None = None


class MailRequests:
    """The mail requests auth-svc committed to its outbox, read as notification-svc would
    (sealed codes opened with the development key the tests run with)."""

    TYPES = ("EmailVerificationRequested", "PasswordResetRequested", "GroupInvitationRequested")

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    async def of_type(self, event_type: str) -> list[MailRequest]:
        tables = self.app.state.runtime.outbox_tables
        async with self.app.state.runtime.database.read() as session:
            rows = (
                await session.execute(tables.outbox.select().order_by(tables.outbox.c.id))
            ).all()
        found = []
        for row in rows:
            envelope = Envelope.model_validate(row.envelope)
            if envelope.type != event_type:
                continue
            payload = envelope.payload
            context = f"{envelope.type}:{payload['user_id']}"
            found.append(
                MailRequest(
                    envelope.type,
                    payload["email"],
                    open_sealed(DEVELOPMENT_KEY, payload["sealed_code"], context),
                    payload.get("group"),
                )
            )
        return found

    async def sent(self) -> list[MailRequest]:
        return await self.of_type("EmailVerificationRequested")

    async def invitations(self) -> list[MailRequest]:
        return await self.of_type("GroupInvitationRequested")

    async def resets(self) -> list[MailRequest]:
        return await self.of_type("PasswordResetRequested")


@asynccontextmanager
async def running_auth(
    database_url: str, topic_prefix: str, **overrides: Any
) -> AsyncIterator[AuthService]:
    """auth-svc on ``database_url`` with settings ``overrides``, and a client on it."""
    settings = Settings(
        database_url=SecretStr(database_url),
        bootstrap_admin_email=ADMIN_EMAIL,
        bootstrap_admin_password=SecretStr(ADMIN_PASSWORD),
        platform=PlatformSettings(
            eventlog_database_url=database_url,
            topic_prefix=topic_prefix,
            kafka_bootstrap=None,
            environment="test",
        ),
        **overrides,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=(CLIENT_ADDRESS, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://auth.test") as client:
            yield AuthService(app, client, MailRequests(app))


@pytest.fixture
async def auth(database_url: str, topic_prefix: str) -> AsyncIterator[AuthService]:
    async with running_auth(database_url, topic_prefix) as service:
        yield service


@pytest.fixture
def auth_with(database_url: str, topic_prefix: str) -> Callable[..., Any]:
    """``async with auth_with(**settings) as auth``: auth-svc with other settings."""

    def start(**overrides: Any) -> Any:
        return running_auth(database_url, topic_prefix, **overrides)

    return start


@pytest.fixture
def last_verification_code(auth: AuthService) -> Callable[[], Awaitable[str]]:
    """Reads the code of the last verification mail auth-svc asked for."""

    async def read() -> str:
        sent = await auth.mailer.sent()
        assert sent, "no verification mail was requested"
        return sent[-1].code

    return read


@pytest.fixture
def verified_driver(
    auth: AuthService, last_verification_code: Callable[[], Awaitable[str]]
) -> Callable[[str, str], Awaitable[None]]:
    """Registers a driver and follows the logged verification link."""

    async def register(email: str, password: str) -> None:
        response = await auth.client.post(
            "/auth/register", json={"email": email, "password": password}
        )
        assert response.status_code == 202, response.text
        response = await auth.client.post(
            "/auth/verify", json={"token": await last_verification_code()}
        )
        assert response.status_code == 200, response.text

    return register
