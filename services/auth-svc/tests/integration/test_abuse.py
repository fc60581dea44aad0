"""Abuse of sign-in and registration: lock-out as a weapon, registration floods, tokens in logs."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import uvicorn
from auth_svc.settings import Settings
from plugpay_platform.settings import PlatformSettings
from pydantic import SecretStr
from sqlalchemy import text

from .support import Clock, from_address

pytestmark = pytest.mark.infra

PASSWORD = "granite-otter-lantern-7"
OWNER = "olga@example.com"


async def _token(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    return await client.post("/auth/token", data={"username": email, "password": password})


@pytest.fixture
async def strict(auth_with: Any) -> AsyncIterator[tuple[Any, Clock]]:
    """auth-svc with small limits (the rules are the production ones, only the counts differ)."""
    async with auth_with(
        login_free_failures_per_account=3,
        login_free_failures_per_address=4,
        registrations_free_per_address=3,
    ) as auth:
        clock = Clock()
        auth.app.state.auth.clock = clock
        yield auth, clock


async def _driver(auth: Any, email: str) -> None:
    created = await auth.client.post(
        "/auth/users",
        headers=await auth.admin(),
        json={"email": email, "password": PASSWORD, "role": "driver"},
    )
    assert created.status_code == 201, created.text


async def test_failures_from_other_addresses_do_not_lock_the_owner_out(strict) -> None:
    auth, _ = strict
    await _driver(auth, OWNER)
    async with from_address(auth, "198.51.100.20") as phone:
        device = (await _token(phone, OWNER, PASSWORD)).json()

    # A guesser rotating addresses: each new address gets its guess checked (401)...
    attackers = [f"203.0.113.{i}" for i in range(10, 18)]
    for address in attackers:
        async with from_address(auth, address) as attacker:
            assert (await _token(attacker, OWNER, f"guess-{address}")).status_code == 401
    # ...and is then held back by the per-account window, even with the right password.
    for address in attackers[:3]:
        async with from_address(auth, address) as attacker:
            again = await _token(attacker, OWNER, PASSWORD)
            assert again.status_code == 429, again.text
            assert again.json()["reason"] == "too_many_attempts"
            assert 1 <= int(again.headers["Retry-After"]) <= 60

    # The owner at home (no failures from there) gets in with the right password...
    async with from_address(auth, "198.51.100.77") as home:
        wrong_free = await _token(home, OWNER, PASSWORD)
    assert wrong_free.status_code == 200, wrong_free.text
    # ...and their known device keeps refreshing.
    async with from_address(auth, "198.51.100.20") as phone:
        refreshed = await phone.post(
            "/auth/refresh", json={"refresh_token": device["refresh_token"]}
        )
    assert refreshed.status_code == 200, refreshed.text


async def test_one_address_is_throttled_over_all_accounts(strict) -> None:
    auth, clock = strict
    await _driver(auth, OWNER)
    async with from_address(auth, "203.0.113.50") as stuffer:
        statuses = [
            (await _token(stuffer, f"victim{i}@example.com", "Stuffed-pw-2024")).status_code
            for i in range(6)
        ]
        assert statuses == [401] * 5 + [429]
        # Even a valid pair waits from there, while the owner elsewhere is unaffected.
        assert (await _token(stuffer, OWNER, PASSWORD)).status_code == 429
    async with from_address(auth, "198.51.100.5") as owner:
        assert (await _token(owner, OWNER, PASSWORD)).status_code == 200
    clock.advance(60)
    async with from_address(auth, "203.0.113.50") as stuffer:
        assert (await _token(stuffer, OWNER, PASSWORD)).status_code == 200


async def _register(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> Any:
    return await client.post("/auth/register", json={"email": email, "password": password})


async def test_registration_is_rate_limited_per_address(strict) -> None:
    auth, clock = strict
    async with from_address(auth, "203.0.113.90") as bot:
        # A refused weak password costs nothing; the limit counts mails we would send.
        assert (await _register(bot, "weak@example.com", "aaaaaaaa")).status_code == 422
        statuses = [(await _register(bot, f"bot{i}@example.com")).status_code for i in range(4)]
        assert statuses == [202] * 4  # three free, the fourth opens a window
        refused = await _register(bot, "bot4@example.com")
        assert refused.status_code == 429, refused.text
        assert refused.json()["reason"] == "too_many_registrations"
        assert int(refused.headers["Retry-After"]) == 60
        # Resending links counts the same way (each sends a mail).
        resend = await bot.post("/auth/verify/resend", json={"email": "bot0@example.com"})
        assert resend.status_code == 429
    async with from_address(auth, "198.51.100.91") as neighbour:
        assert (await _register(neighbour, "neighbour@example.com")).status_code == 202
    clock.advance(60)
    async with from_address(auth, "203.0.113.90") as bot:
        assert (await _register(bot, "bot5@example.com")).status_code == 202
        assert (await _register(bot, "bot6@example.com")).status_code == 429
    created = {m.email for m in await auth.mailer.sent()}
    assert created == {f"bot{i}@example.com" for i in (0, 1, 2, 3, 5)} | {"neighbour@example.com"}


async def test_no_token_reaches_the_log_at_any_level(auth, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    assert (await _register(auth.client, "tess@example.com")).status_code == 202
    resent = await auth.client.post("/auth/verify/resend", json={"email": "tess@example.com"})
    assert resent.status_code == 202
    codes = [m.code for m in await auth.mailer.sent()]
    assert len(codes) == 2
    assert (await auth.client.post("/auth/verify", json={"token": codes[0]})).status_code == 200
    tokens = (await _token(auth.client, "tess@example.com", PASSWORD)).json()
    refreshed = await auth.client.post(
        "/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert refreshed.status_code == 200
    await _token(auth.client, "root@plugpay.test", "not-the-admin-password")
    secrets = [*codes, tokens["access_token"], tokens["refresh_token"], PASSWORD]
    secrets += [refreshed.json()["access_token"], refreshed.json()["refresh_token"]]
    assert caplog.records, "the scenario logs something (the check is not vacuous)"
    for record in caplog.records:
        line = record.getMessage() + repr(record.args)
        assert not [s for s in secrets if s in line], line


async def _throttled_addresses(auth: Any) -> set[str]:
    async with auth.app.state.runtime.database.read() as session:
        keys = await session.scalars(text("SELECT key FROM login_throttle WHERE key LIKE 'ip:%'"))
        return {k.removeprefix("ip:") for k in keys}


@asynccontextmanager
async def behind_uvicorn(auth: Any, peer: str, **platform: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The app as uvicorn serves it with these platform settings, reached from ``peer``."""
    config = uvicorn.Config(auth.app, **PlatformSettings(**platform).server_proxy_options())
    config.load()
    transport = httpx.ASGITransport(app=config.loaded_app, client=(peer, 41000))
    async with httpx.AsyncClient(transport=transport, base_url="http://auth.test") as client:
        yield client


async def test_a_forwarded_address_counts_only_from_the_configured_front_door(auth) -> None:
    forged = {"X-Forwarded-For": "192.0.2.66"}
    async with behind_uvicorn(auth, "127.0.0.1") as local:
        response = await local.post(
            "/auth/token", data={"username": OWNER, "password": "guess-1"}, headers=forged
        )
    assert response.status_code == 401
    # By default nobody is trusted, not even loopback: the peer is the client.
    assert await _throttled_addresses(auth) == {"127.0.0.1"}

    async with behind_uvicorn(auth, "10.1.2.3", forwarded_allow_ips="10.0.0.0/8") as ingress:
        await ingress.post(
            "/auth/token",
            data={"username": OWNER, "password": "guess-2"},
            # A client's own X-Forwarded-For, then the address the front door saw.
            headers={"X-Forwarded-For": "192.0.2.66, 198.51.100.40"},
        )
    assert await _throttled_addresses(auth) == {"127.0.0.1", "198.51.100.40"}


def test_production_needs_a_mail_link_key() -> None:
    with pytest.raises(ValueError, match="PLUGPAY_MAIL_LINK_KEY"):
        Settings(
            database_url=SecretStr("postgresql+asyncpg://x@/y"),
            platform=PlatformSettings(environment="production", kafka_bootstrap="k:9092"),
        )
