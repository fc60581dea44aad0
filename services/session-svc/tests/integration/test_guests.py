"""Guests (no account, EU ad hoc charging): a token bound to one code scans that code only,
sees its own session only, and guest scans are counted per station and per address."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi import FastAPI
from plugpay_events.session_code import code_binding
from plugpay_testing.tokens import TokenFactory
from session_harness import (
    client_for,
    events_of_type,
    issue,
    make_settings,
    running,
    station_online,
    wait_status,
)

pytestmark = pytest.mark.infra


@pytest.fixture
async def app(
    database_url: str, topic_prefix: str, signing_key: dict[str, Any], tokens: TokenFactory
) -> AsyncIterator[FastAPI]:
    settings = make_settings(
        database_url, topic_prefix, signing_key, guest_scans_per_station=2, guest_scans_per_ip=3
    )
    async with running(settings, tokens) as app:
        yield app


def guest(tokens: TokenFactory, code: str, user_id: uuid.UUID | None = None) -> dict[str, str]:
    """A token as auth-svc's POST /auth/guest issues it."""
    return tokens.headers(
        user_id=user_id,
        roles=("guest",),
        email_verified=False,
        guest_code=code_binding(code),
        lifetime_s=3600,
    )


async def test_a_guest_scans_its_own_code_and_follows_only_that_session(
    app: FastAPI, tokens: TokenFactory, signing_key: dict[str, Any]
) -> None:
    await station_online(app, "ST-1")
    mine = await issue(app, signing_key)
    other = await issue(app, signing_key, connector_id=2)
    url = f"https://pay.example/s/{mine.token}"
    headers = guest(tokens, url)
    async with client_for(app) as client:
        # the bound code, as a URL or as the bare token inside it, and its typed twin is not
        preview = await client.post(
            "/sessions/codes/lookup", json={"code": mine.token}, headers=headers
        )
        assert preview.status_code == 200, preview.text
        assert preview.json()["station_id"] == "ST-1"
        for code in (other.token, other.code, mine.code):
            refused = await client.post("/sessions/scan", json={"code": code}, headers=headers)
            assert (refused.status_code, refused.json()["reason"]) == (403, "code_not_guests")
        scanned = await client.post("/sessions/scan", json={"code": url}, headers=headers)
        assert scanned.status_code == 202, scanned.text
        await wait_status(app, mine.session_id, "scanned")
        [envelope] = await events_of_type(app, "plugpay.sessions", "SessionCodeScanned")
        assert envelope.payload["user_groups"] == [] and envelope.payload["organisation_id"] is None
        assert envelope.payload["guest"] is True  # the gateway starts it as a DirectPayment
        guest_id = uuid.UUID(envelope.payload["user_id"])
        view = await client.get(f"/sessions/{mine.session_id}", headers=headers)
        assert view.status_code == 200 and view.json()["status"] == "scanned"
        assert [
            s["session_id"]
            for s in (await client.get("/sessions", headers=headers)).json()["items"]
        ] == [str(mine.session_id)]
        # another driver's session (scanned by a driver) is missing for the guest
        driver_id = uuid.uuid4()
        driver = tokens.headers(user_id=driver_id)
        assert (
            await client.post("/sessions/scan", json={"code": other.token}, headers=driver)
        ).status_code == 202
        await wait_status(app, other.session_id, "scanned")
        scans = await events_of_type(app, "plugpay.sessions", "SessionCodeScanned")
        assert {e.payload["user_id"]: e.payload["guest"] for e in scans}[str(driver_id)] is False
        for method, path in [
            ("GET", f"/sessions/{other.session_id}"),
            ("GET", f"/sessions/{other.session_id}/events"),
            ("POST", f"/sessions/{other.session_id}/stop"),
        ]:
            response = await client.request(method, path, headers=headers)
            assert response.status_code == 404, path
        # a token with the guest role but no bound code is no token at all
        unbound = tokens.headers(user_id=guest_id, roles=("guest",), email_verified=False)
        assert (
            await client.get(f"/sessions/{mine.session_id}", headers=unbound)
        ).status_code == 401


async def test_guest_scans_are_rate_limited_per_station_and_per_address(
    app: FastAPI, tokens: TokenFactory, signing_key: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # One instant for every scan: the limits' fixed window must not roll over between them.
    instant = datetime.now(UTC)
    monkeypatch.setattr(app.state, "sessions", replace(app.state.sessions, clock=lambda: instant))
    await station_online(app, "ST-1")
    await station_online(app, "ST-2")
    async with client_for(app) as client:
        statuses = []
        for connector in (1, 2, 3):
            story = await issue(app, signing_key, connector_id=connector)
            answer = await client.post(
                "/sessions/scan", json={"code": story.token}, headers=guest(tokens, story.token)
            )
            statuses.append((answer.status_code, answer.headers.get("Retry-After") is not None))
        assert statuses == [(202, False), (202, False), (429, True)]  # two per station
        # the refused scan claimed nothing: a driver may still use that code
        assert (
            await client.post(
                "/sessions/scan", json={"code": story.token}, headers=tokens.headers()
            )
        ).status_code == 202
        # another station still takes guests, until this address has had its three
        elsewhere = await issue(app, signing_key, station_id="ST-2")
        ok = await client.post(
            "/sessions/scan", json={"code": elsewhere.token}, headers=guest(tokens, elsewhere.token)
        )
        assert ok.status_code == 202, ok.text
        again = await issue(app, signing_key, station_id="ST-2", connector_id=2)
        refused = await client.post(
            "/sessions/scan", json={"code": again.token}, headers=guest(tokens, again.token)
        )
        assert (refused.status_code, refused.json()["reason"]) == (429, "too_many_requests")
    # drivers are not counted against guests' limits
    async with client_for(app) as client:
        assert (
            await client.post(
                "/sessions/scan", json={"code": again.token}, headers=tokens.headers()
            )
        ).status_code == 202
