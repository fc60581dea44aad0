"""session-svc's API against real PostgreSQL (embedded event log): scan, read, stop, live
updates, timers, and every kind of bad input."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from plugpay_events.contracts.identity import ConnectorSpec, StationRegistered
from plugpay_events.contracts.stations import StationWentOffline
from plugpay_events.session_code import generate_signing_key, sign_session_code
from plugpay_testing import eventually
from plugpay_testing.tokens import TokenFactory
from plugpay_testing.verifier_contract import VerifierContract
from session_harness import (
    client_for,
    events_of_type,
    issue,
    make_settings,
    publish,
    running,
    scalar,
    station_online,
    status_of,
    wait_status,
)
from session_stories import Story
from session_svc.endpoints import session_events

pytestmark = pytest.mark.infra


@pytest.fixture
async def app(
    database_url: str, topic_prefix: str, signing_key: dict[str, Any], tokens: TokenFactory
) -> AsyncIterator[FastAPI]:
    # Unknown typed codes are refused after the wait for the store: short here.
    settings = make_settings(
        database_url, topic_prefix, signing_key, typed_lookups_per_user=5, typed_code_wait_s=0.3
    )
    async with running(settings, tokens) as app:
        yield app


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(app) as client:
        yield client


async def scanned_ids(app: FastAPI) -> list[uuid.UUID]:
    return [
        uuid.UUID(e.aggregate_id)
        for e in await events_of_type(app, "plugpay.sessions", "SessionCodeScanned")
    ]


# --- scan ----------------------------------------------------------------------------------


async def test_scan_qr_emits_code_scanned_with_the_drivers_identity(
    app: FastAPI, client: httpx.AsyncClient, tokens: TokenFactory, signing_key: dict[str, Any]
) -> None:
    await station_online(app, "ST-1")
    story = await issue(app, signing_key)
    org = uuid.uuid4()
    headers = tokens.headers(user_id=story.user_id, organisation_id=org, groups=["fleet", "staff"])
    correlation = uuid.uuid4()
    response = await client.post(
        "/sessions/scan",
        json={"code": f"https://pay.example/s/{story.token}"},
        headers={**headers, "X-Correlation-ID": str(correlation)},
    )
    assert response.status_code == 202, response.text
    assert response.json() == {"session_id": str(story.session_id)}
    await wait_status(app, story.session_id, "scanned")
    [envelope] = await events_of_type(app, "plugpay.sessions", "SessionCodeScanned")
    payload = envelope.payload
    assert envelope.version == 3 and envelope.producer == "session-svc"
    # The scan's trace goes on into what pricing and billing do with it.
    assert envelope.correlation_id == correlation
    assert payload["station_id"] == "ST-1" and payload["connector_id"] == 1
    assert payload["user_id"] == str(story.user_id) and payload["organisation_id"] == str(org)
    assert payload["user_groups"] == ["fleet", "staff"] and payload["code_kind"] == "qr"
    assert payload["guest"] is False  # a driver with an account
    assert datetime.fromisoformat(payload["session_started_at"]) == story.started
    view = (await client.get(f"/sessions/{story.session_id}", headers=headers)).json()
    assert view["status"] == "scanned" and view["code_kind"] == "qr"


async def test_scan_typed_code_and_bare_token(
    app: FastAPI, client: httpx.AsyncClient, tokens: TokenFactory, signing_key: dict[str, Any]
) -> None:
    await station_online(app, "ST-1")
    typed = await issue(app, signing_key)
    bare = await issue(app, signing_key, connector_id=2)  # one live code per connector
    code = typed.code.lower()
    spaced = f"{code[:3]}-{code[3:]}"
    first = await client.post("/sessions/scan", json={"code": spaced}, headers=tokens.headers())
    assert first.status_code == 202, first.text
    assert first.json()["session_id"] == str(typed.session_id)
    second = await client.post(
        "/sessions/scan", json={"code": bare.token}, headers=tokens.headers()
    )
    assert second.status_code == 202, second.text
    kinds = {
        e.aggregate_id: e.payload["code_kind"]
        for e in await eventually(lambda: _scans(app, 2), what="two scans in the log")
    }
    assert kinds == {str(typed.session_id): "typed", str(bare.session_id): "qr"}


async def _scans(app: FastAPI, n: int) -> list[Any]:
    found = await events_of_type(app, "plugpay.sessions", "SessionCodeScanned")
    return found if len(found) >= n else []


def _tamper(token: str) -> str:
    """The same code for connector 2 (byte 15), MAC unchanged."""
    raw = bytearray(base64.urlsafe_b64decode(token))
    raw[15] = 2
    return base64.urlsafe_b64encode(bytes(raw)).decode()


async def test_bad_codes_get_distinct_reasons_and_no_event(
    app: FastAPI, client: httpx.AsyncClient, tokens: TokenFactory, signing_key: dict[str, Any]
) -> None:
    await station_online(app, "ST-1")
    driver = tokens.headers()
    story = await issue(app, signing_key)
    old = await issue(app, signing_key, started=datetime.now(UTC) - timedelta(minutes=10))
    forged_token, _ = sign_session_code(
        generate_signing_key(kid=signing_key["kid"]),
        station_id="ST-1",
        connector_id=1,
        session_started_at=story.started,
    )
    wrong_station, _ = sign_session_code(
        signing_key,
        station_id="ST-2",
        connector_id=1,
        session_started_at=story.started,
    )
    cases = {
        "forged": (forged_token, 400, "code_invalid"),
        "tampered": (_tamper(story.token), 400, "code_invalid"),
        "wrong station": (wrong_station, 400, "code_invalid"),
        "expired": (old.token, 410, "code_expired"),
        "garbage token": ("https://pay.example/s/not.a.jws", 400, "code_malformed"),
        "garbage typed": ("hello world!", 400, "code_malformed"),
        "typed unknown": ("777777", 400, "code_invalid"),
        "empty-ish": ("---", 400, "code_malformed"),
    }
    for name, (code, status, reason) in cases.items():
        response = await client.post("/sessions/scan", json={"code": code}, headers=driver)
        assert (response.status_code, response.json()["reason"]) == (status, reason), name
        assert response.json()["message"], name
    ok = await client.post("/sessions/scan", json={"code": story.token}, headers=driver)
    assert ok.status_code == 202
    again = await client.post(
        "/sessions/scan", json={"code": story.token}, headers=tokens.headers()
    )
    assert (again.status_code, again.json()["reason"]) == (409, "code_used")
    await wait_status(app, story.session_id, "scanned")
    again = await client.post("/sessions/scan", json={"code": story.code}, headers=tokens.headers())
    assert (again.status_code, again.json()["reason"]) == (409, "code_used")
    assert await scanned_ids(app) == [story.session_id]


async def test_unverified_driver_and_offline_station_are_refused(
    app: FastAPI, client: httpx.AsyncClient, tokens: TokenFactory, signing_key: dict[str, Any]
) -> None:
    await station_online(app, "ST-1")
    story = await issue(app, signing_key)
    unverified = await client.post(
        "/sessions/scan", json={"code": story.token}, headers=tokens.headers(email_verified=False)
    )
    assert (unverified.status_code, unverified.json()["reason"]) == (403, "account_unverified")
    operator = await client.post(
        "/sessions/scan", json={"code": story.token}, headers=tokens.headers(roles=["operator"])
    )
    assert operator.status_code == 403
    await publish(app, StationWentOffline(station_id="ST-1", last_seen_at=datetime.now(UTC)))
    await eventually(lambda: _is_offline(app, "ST-1"), what="station offline")
    offline = await client.post(
        "/sessions/scan", json={"code": story.token}, headers=tokens.headers()
    )
    assert (offline.status_code, offline.json()["reason"]) == (409, "station_offline")
    assert await scanned_ids(app) == []


async def test_a_retired_code_is_refused_before_any_hold(
    app: FastAPI, client: httpx.AsyncClient, tokens: TokenFactory, signing_key: dict[str, Any]
) -> None:
    """The gateway keeps one live code per connector and none while a session holds it: a code
    older than the connector's newest is retired, whether or not its expiry has reached us."""
    await station_online(app, "ST-1")
    older = await issue(app, signing_key, started=datetime.now(UTC) - timedelta(seconds=30))
    newer = await issue(app, signing_key)
    await publish(app, newer.scanned(), newer.priced(), newer.authorised())
    await wait_status(app, newer.session_id, "authorised")
    for code in (older.token, older.code):
        refused = await client.post("/sessions/scan", json={"code": code}, headers=tokens.headers())
        assert (refused.status_code, refused.json()["reason"]) == (409, "code_superseded")
    assert await scanned_ids(app) == [newer.session_id]
    # Another connector of the station is free.
    free = await issue(app, signing_key, connector_id=2)
    ok = await client.post("/sessions/scan", json={"code": free.token}, headers=tokens.headers())
    assert ok.status_code == 202, ok.text


async def _is_offline(app: FastAPI, station: str) -> bool:
    return await scalar(app, "SELECT NOT online FROM stations WHERE station_id = :s", s=station)


async def test_two_drivers_scanning_one_code_exactly_one_wins(
    app: FastAPI, client: httpx.AsyncClient, tokens: TokenFactory, signing_key: dict[str, Any]
) -> None:
    await station_online(app, "ST-1")
    for _ in range(3):
        story = await issue(app, signing_key)
        responses = await asyncio.gather(
            *[
                client.post("/sessions/scan", json={"code": c}, headers=tokens.headers())
                for c in (story.token, story.code, story.token, story.code)
            ]
        )
        codes = sorted(r.status_code for r in responses)
        assert codes == [202, 409, 409, 409], [r.text for r in responses]
    scans = await eventually(lambda: _scans(app, 3), what="three scans")
    assert len(scans) == 3


async def test_typed_lookups_are_rate_limited(
    app: FastAPI, client: httpx.AsyncClient, tokens: TokenFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One instant for every lookup: a fixed window must not roll over between them.
    instant = datetime.now(UTC)
    monkeypatch.setattr(app.state, "sessions", replace(app.state.sessions, clock=lambda: instant))
    user = uuid.uuid4()
    answers = [
        await client.post(
            "/sessions/scan", json={"code": "777777"}, headers=tokens.headers(user_id=user)
        )
        for _ in range(6)
    ]
    assert [a.json()["reason"] for a in answers] == ["code_invalid"] * 5 + ["too_many_requests"]
    assert answers[-1].status_code == 429 and int(answers[-1].headers["Retry-After"]) >= 1
    # Another user from the same address still has room, until the address runs out too.
    other = await client.post("/sessions/scan", json={"code": "777777"}, headers=tokens.headers())
    assert other.status_code == 400


async def test_a_code_not_in_the_store_yet_is_accepted_at_once_and_only_once(
    app: FastAPI, client: httpx.AsyncClient, tokens: TokenFactory, signing_key: dict[str, Any]
) -> None:
    """The code proves its issue: a scan never waits for SessionCodeIssued, and the store folds
    the scan and the late Issued into one scanned session."""
    await station_online(app, "ST-1")
    story = Story()
    issued = story.issued(signing_key)  # shown on the station, not yet in session-svc's store
    headers = tokens.headers(user_id=story.user_id)
    early = await client.post("/sessions/scan", json={"code": story.token}, headers=headers)
    assert early.status_code == 202, early.text
    assert early.json()["session_id"] == str(story.session_id)
    view = (await client.get(f"/sessions/{story.session_id}", headers=headers)).json()
    assert (view["status"], view["station_id"], view["connector_id"]) == ("scanned", "ST-1", 1)
    again = await client.post(
        "/sessions/scan", json={"code": story.token}, headers=tokens.headers()
    )
    assert (again.status_code, again.json()["reason"]) == (409, "code_used")
    await wait_status(app, story.session_id, "scanned")  # the scan, before any Issued
    await publish(app, issued)
    await eventually(
        lambda: scalar(
            app, "SELECT code IS NOT NULL FROM sessions WHERE session_id = :s", s=story.session_id
        ),
        what="the late Issued filled in the typed code",
    )
    assert await status_of(app, story.session_id) == "scanned"
    typed = await client.post("/sessions/scan", json={"code": story.code}, headers=tokens.headers())
    assert (typed.status_code, typed.json()["reason"]) == (409, "code_used")
    assert await scanned_ids(app) == [story.session_id]


async def test_a_typed_code_sent_as_it_is_issued_starts_at_once_counted_once(
    database_url: str,
    topic_prefix: str,
    signing_key: dict[str, Any],
    tokens: TokenFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A typed code is only in the store once SessionCodeIssued is consumed: the scan waits
    for that (no client retry), and the wait is one typed lookup, not one per look."""
    settings = make_settings(database_url, topic_prefix, signing_key, typed_lookups_per_user=1)
    async with running(settings, tokens) as app, client_for(app) as client:
        await station_online(app, "ST-1")
        story = Story()
        # One instant for both lookups: the limit's fixed window must not roll over between.
        instant = datetime.now(UTC)
        monkeypatch.setattr(
            app.state, "sessions", replace(app.state.sessions, clock=lambda: instant)
        )
        user = uuid.uuid4()
        await publish(app, story.issued(signing_key))  # on its way to the store, not there yet
        scan = await client.post(
            "/sessions/scan", json={"code": story.code}, headers=tokens.headers(user_id=user)
        )
        assert scan.status_code == 202, scan.text
        assert scan.json() == {"session_id": str(story.session_id)}
        await wait_status(app, story.session_id, "scanned")
        # The user's one lookup of the window was that scan.
        more = await client.post(
            "/sessions/scan", json={"code": story.code}, headers=tokens.headers(user_id=user)
        )
        assert (more.status_code, more.json()["reason"]) == (429, "too_many_requests")


async def test_an_unknown_typed_code_is_refused_after_a_bounded_wait(
    database_url: str, topic_prefix: str, signing_key: dict[str, Any], tokens: TokenFactory
) -> None:
    settings = make_settings(database_url, topic_prefix, signing_key, typed_code_wait_s=0.5)
    async with running(settings, tokens) as app, client_for(app) as client:
        loop = asyncio.get_running_loop()
        started = loop.time()
        refused = await client.post(
            "/sessions/scan", json={"code": "777777"}, headers=tokens.headers()
        )
        took = loop.time() - started
    assert (refused.status_code, refused.json()["reason"]) == (400, "code_invalid")
    assert 0.5 <= took < 5, took


async def test_a_reconnected_station_is_not_offline_for_its_new_code(
    app: FastAPI, client: httpx.AsyncClient, tokens: TokenFactory, signing_key: dict[str, Any]
) -> None:
    """The store still has the station offline (its reconnection on the way); a code made
    after that offline proves the station is back."""
    await publish(
        app,
        StationWentOffline(
            station_id="ST-1", last_seen_at=datetime.now(UTC) - timedelta(seconds=5)
        ),
    )
    await eventually(lambda: _is_offline(app, "ST-1"), what="station offline")
    story = Story()
    story.issued(signing_key)
    ok = await client.post("/sessions/scan", json={"code": story.token}, headers=tokens.headers())
    assert ok.status_code == 202, ok.text


async def _stop_projection(app: FastAPI) -> None:
    """The store stops following the log (a consumer far behind)."""
    for consumer in app.state.runtime._running:
        await consumer.stop()


async def test_the_winner_reads_the_session_right_after_the_scan(
    app: FastAPI, client: httpx.AsyncClient, tokens: TokenFactory, signing_key: dict[str, Any]
) -> None:
    await station_online(app, "ST-1")
    story = await issue(app, signing_key)
    await _stop_projection(app)
    headers = tokens.headers(user_id=story.user_id)
    scan = await client.post("/sessions/scan", json={"code": story.token}, headers=headers)
    assert scan.status_code == 202, scan.text
    # The store has not seen SessionCodeScanned, yet the winner reads the scanned session.
    assert await status_of(app, story.session_id) == "code_issued"
    view = (await client.get(f"/sessions/{story.session_id}", headers=headers)).json()
    assert view["status"] == "scanned" and view["user_id"] == str(story.user_id)
    assert view["station_id"] == "ST-1" and view["connector_id"] == 1
    assert view["code_kind"] == "qr" and view["scanned_at"] is not None
    assert datetime.fromisoformat(view["session_started_at"]) == story.started
    # Nobody else does, and the stream starts at once with the scanned session.
    other = await client.get(f"/sessions/{story.session_id}", headers=tokens.headers())
    assert other.status_code == 404
    # (httpx's ASGI transport buffers whole responses: read the endpoint's stream directly.)
    principal = await app.state.token_verifier.verify(headers["Authorization"].split()[1])
    response = await session_events(
        story.session_id,
        principal,
        app.state.sessions,
        app.state.runtime.database,
        SimpleNamespace(app=app),  # type: ignore[arg-type]
    )
    body = response.body_iterator
    try:
        chunk = await asyncio.wait_for(anext(body), 5)  # type: ignore[call-overload]
    finally:
        await body.aclose()  # type: ignore[attr-defined]
    text = chunk if isinstance(chunk, str) else bytes(chunk).decode()
    assert text.startswith("event: session\n")
    data = json.loads(text.split("data: ", 1)[1])
    assert data["status"] == "scanned" and data["station_id"] == "ST-1"


async def lookup(client: httpx.AsyncClient, code: str, headers: dict[str, str]) -> httpx.Response:
    return await client.post("/sessions/codes/lookup", json={"code": code}, headers=headers)


async def test_typed_code_lookup_shows_the_station_without_claiming(
    app: FastAPI,
    client: httpx.AsyncClient,
    tokens: TokenFactory,
    signing_key: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await station_online(app, "ST-1")
    await publish(
        app,
        StationRegistered(
            station_id="ST-1",
            organisation_id=uuid.uuid4(),
            name="Quay 1",
            connectors=(ConnectorSpec(connector_id=1, max_power_w=22_000),),
            registered_at=datetime.now(UTC),
        ),
    )
    await eventually(
        lambda: scalar(app, "SELECT name FROM stations WHERE station_id = 'ST-1'"),
        what="station name",
    )
    story = await issue(app, signing_key)
    # One instant for every lookup and scan: the limit's fixed window must not roll over
    # between the five counted here and the sixth that is refused.
    instant = datetime.now(UTC)
    monkeypatch.setattr(app.state, "sessions", replace(app.state.sessions, clock=lambda: instant))
    user = uuid.uuid4()
    driver = tokens.headers(user_id=user)
    code = story.code.lower()
    found = await lookup(client, f"{code[:3]}-{code[3:]}", driver)
    assert found.status_code == 200, found.text
    body = found.json()
    assert body["station_id"] == "ST-1" and body["station_name"] == "Quay 1"
    assert body["connector_id"] == 1 and body["code"] == story.code
    expires = datetime.fromisoformat(body["expires_at"])
    assert story.started < expires <= story.started + timedelta(minutes=5)
    assert "session_id" not in body
    # Nothing was claimed: the same driver (or anyone) can still scan it.
    assert await scanned_ids(app) == []
    scan = await client.post("/sessions/scan", json={"code": story.code}, headers=driver)
    assert scan.status_code == 202, scan.text
    used = await lookup(client, story.code, driver)
    assert (used.status_code, used.json()["reason"]) == (409, "code_used")
    unknown = await lookup(client, "777777", driver)
    assert (unknown.status_code, unknown.json()["reason"]) == (400, "code_invalid")
    # Lookups and typed scans share one limit (5 a minute here): the 6th of either is refused.
    limited = await client.post("/sessions/scan", json={"code": "777777"}, headers=driver)
    assert limited.status_code == 400
    refused = await lookup(client, "777777", driver)
    assert (refused.status_code, refused.json()["reason"]) == (429, "too_many_requests")
    assert int(refused.headers["Retry-After"]) >= 1
    malformed = await lookup(client, "hello!", tokens.headers())
    assert (malformed.status_code, malformed.json()["reason"]) == (400, "code_malformed")
    unverified = await lookup(client, story.code, tokens.headers(email_verified=False))
    assert (unverified.status_code, unverified.json()["reason"]) == (403, "account_unverified")
    assert (await lookup(client, story.code, {})).status_code == 401
    # A typed code is a live credential: it travels in a body, never in a path that access
    # logs (uvicorn's, nginx's) would write down.
    paths = app.openapi()["paths"]
    assert "/sessions/codes/lookup" in paths
    assert not [p for p in paths if "{code}" in p]
    assert (await client.get(f"/sessions/codes/{story.code}", headers=driver)).status_code in (
        404,
        405,
    )


# --- reading and control -------------------------------------------------------------------


async def test_a_whole_session_read_stopped_and_streamed(
    app: FastAPI, client: httpx.AsyncClient, tokens: TokenFactory, signing_key: dict[str, Any]
) -> None:
    await station_online(app, "ST-1")
    story = await issue(app, signing_key)
    driver = tokens.headers(user_id=story.user_id)
    assert (
        await client.post("/sessions/scan", json={"code": story.token}, headers=driver)
    ).status_code == 202
    await wait_status(app, story.session_id, "scanned")
    stream = asyncio.create_task(client.get(f"/sessions/{story.session_id}/events", headers=driver))

    await publish(app, story.priced(), story.authorised())
    await wait_status(app, story.session_id, "authorised")
    view = (await client.get(f"/sessions/{story.session_id}", headers=driver)).json()
    assert view["limits"]["max_energy_wh"] == 50_000 and view["hold_amount"]["amount_minor"] == 2000
    assert view["cost"] is None

    await publish(app, story.started_charging(), story.meter(600, 2_000))

    async def charging_with_energy() -> dict[str, Any] | None:
        v = (await client.get(f"/sessions/{story.session_id}", headers=driver)).json()
        return v if v["status"] == "charging" and v["energy_wh"] == 2_000 else None

    view = await eventually(charging_with_energy, what="energy so far")
    # 2 kWh at 0.30 + 0.50 flat, 19 % VAT: (60 + 50) * 1.19 = 130.9 -> 71 + 60 (per line)
    assert view["cost"]["final"] is False and view["cost"]["total"]["currency"] == "EUR"
    assert view["cost"]["total"]["amount_minor"] == 131
    assert view["power_w"] == 11_000 and view["soc_percent"] == 50

    stop = await client.post(f"/sessions/{story.session_id}/stop", headers=driver)
    assert stop.status_code == 202, stop.text
    [requested] = await eventually(
        lambda: events_of_type(app, "plugpay.sessions", "SessionStopRequested"), what="stop"
    )
    assert requested.payload["requested_by"] == "driver"
    await wait_status(app, story.session_id, "stopping")
    again = await client.post(f"/sessions/{story.session_id}/stop", headers=driver)
    assert again.status_code == 202

    await publish(app, story.completed(reason="remote"), story.cost_calculated(), story.billed())
    response = await asyncio.wait_for(stream, 15)
    assert response.headers["content-type"].startswith("text/event-stream")
    blocks = [b for b in response.text.split("\n\n") if b.strip()]
    kinds = [b.split("\n")[0] for b in blocks if not b.startswith(":")]
    sessions = [
        json.loads(b.split("data: ", 1)[1]) for b in blocks if b.startswith("event: session")
    ]
    assert kinds[-2:] == ["event: receipt", "event: end"]
    assert sessions[0]["status"] == "scanned" and sessions[-1]["status"] == "billed"
    assert "authorised" in [s["status"] for s in sessions]
    receipt = json.loads(blocks[-2].split("data: ", 1)[1])
    final = (await client.get(f"/sessions/{story.session_id}", headers=driver)).json()
    assert receipt == final["receipt"]
    assert final["cost"]["final"] is True and final["cost"]["breakdown"]["lines"]
    assert final["energy_wh"] == 5000 and final["outcome"] == "stopped_by_driver"
    assert final["ended_at"] is not None and final["station_id"] == "ST-1"
    steps = (await client.get(f"/sessions/{story.session_id}/timeline", headers=driver)).json()
    kinds = [s["kind"] for s in steps["steps"]]
    assert kinds[0] == "code_issued" and kinds[-1] == "billed" and "stop_requested" in kinds
    stranger = await client.get(f"/sessions/{story.session_id}/timeline", headers=tokens.headers())
    assert stranger.status_code == 404


async def test_another_drivers_session_is_not_found(
    app: FastAPI, client: httpx.AsyncClient, tokens: TokenFactory, signing_key: dict[str, Any]
) -> None:
    await station_online(app, "ST-1")
    story = await issue(app, signing_key)
    owner = tokens.headers(user_id=story.user_id)
    await client.post("/sessions/scan", json={"code": story.token}, headers=owner)
    await wait_status(app, story.session_id, "scanned")
    stranger = tokens.headers()
    for method, path in [
        ("GET", f"/sessions/{story.session_id}"),
        ("POST", f"/sessions/{story.session_id}/stop"),
        ("GET", f"/sessions/{story.session_id}/events"),
        ("GET", f"/sessions/{uuid.uuid4()}"),
    ]:
        response = await client.request(method, path, headers=stranger)
        assert (response.status_code, response.json()["reason"]) == (404, "not_found"), path
    assert (await client.get("/sessions", headers=stranger)).json()["items"] == []
    not_charging = await client.post(f"/sessions/{story.session_id}/stop", headers=owner)
    assert (not_charging.status_code, not_charging.json()["reason"]) == (409, "not_charging")


async def test_listing_pages_filters_and_operators_see_their_organisation(
    app: FastAPI, client: httpx.AsyncClient, tokens: TokenFactory, signing_key: dict[str, Any]
) -> None:
    user = uuid.uuid4()
    org = uuid.uuid4()
    now = datetime.now(UTC)
    stories = []
    for i in range(5):
        s = Story(user_id=user, organisation_id=org, started=now - timedelta(minutes=i))
        events = s.denied_path() if i == 0 else [s.issued(), s.scanned(), s.priced()]
        stories.append(s)
        await publish(app, *events)
    other = Story(organisation_id=uuid.uuid4())
    await publish(app, *other.denied_path())
    for s in [*stories, other]:
        await eventually(lambda s=s: _priced_or_denied(app, s.session_id), what="projected")
    driver = tokens.headers(user_id=user)
    first = (await client.get("/sessions?limit=2", headers=driver)).json()
    assert [i["session_id"] for i in first["items"]] == [str(s.session_id) for s in stories[:2]]
    second = (
        await client.get(f"/sessions?limit=2&cursor={first['next_cursor']}", headers=driver)
    ).json()
    assert [i["session_id"] for i in second["items"]] == [str(s.session_id) for s in stories[2:4]]
    denied = (await client.get("/sessions?status=denied", headers=driver)).json()["items"]
    assert [d["denial"]["reason"] for d in denied] == ["insufficient_funds"]
    since = (now - timedelta(seconds=90)).isoformat().replace("+00:00", "Z")
    recent = (await client.get("/sessions", params={"started_from": since}, headers=driver)).json()
    assert len(recent["items"]) == 2
    operator = tokens.headers(roles=["operator"], organisation_id=org)
    theirs = (await client.get("/sessions?limit=100", headers=operator)).json()["items"]
    assert {i["session_id"] for i in theirs} == {str(s.session_id) for s in stories}
    one = await client.get(f"/sessions/{stories[1].session_id}", headers=operator)
    assert one.status_code == 200
    assert (await client.get(f"/sessions/{other.session_id}", headers=operator)).status_code == 404
    bad = await client.get("/sessions?cursor=%%%", headers=driver)
    assert bad.status_code == 400 and bad.json()["reason"] == "invalid_cursor"
    forbidden = await client.get("/sessions?scope=organisation", headers=driver)
    assert forbidden.status_code == 403


async def _priced_or_denied(app: FastAPI, session_id: uuid.UUID) -> bool:
    return await status_of(app, session_id) in ("priced", "denied")


# --- timers --------------------------------------------------------------------------------


async def test_unscanned_codes_expire_and_unstarted_sessions_are_abandoned(
    database_url: str, topic_prefix: str, signing_key: dict[str, Any], tokens: TokenFactory
) -> None:
    settings = make_settings(database_url, topic_prefix, signing_key, start_timeout_s=0.3)
    async with running(settings, tokens) as app:
        stale = Story(started=datetime.now(UTC) - timedelta(seconds=293))  # due in ~7.5 s
        await publish(app, stale.issued(signing_key))
        await eventually(
            lambda: scalar(
                app, "SELECT count(*) FROM timers WHERE session_id = :s", s=stale.session_id
            ),
            what="expiry timer stored",
        )
        authorised = Story(started=datetime.now(UTC) - timedelta(seconds=60))
        await publish(
            app,
            authorised.issued(),
            authorised.scanned(),
            authorised.priced(),
            authorised.authorised(),
        )
        await wait_status(app, authorised.session_id, "abandoned")
        [abandoned] = await events_of_type(app, "plugpay.sessions", "SessionAbandoned")
        assert abandoned.payload["reason"] == "start_timeout"
        assert abandoned.aggregate_id == str(authorised.session_id)
        # The station's start, held up past the backstop (a broker outage), overrules it.
        await publish(app, authorised.started_charging())
        await wait_status(app, authorised.session_id, "charging")
        assert await status_of(app, stale.session_id) == "code_issued"
    # A restart in between: the timer is a row, so the next process fires it.
    async with running(settings, tokens) as app:
        await wait_status(app, stale.session_id, "expired")
        [expired] = await events_of_type(app, "plugpay.sessions", "SessionCodeExpired")
        assert expired.aggregate_id == str(stale.session_id)
        assert await scalar(app, "SELECT count(*) FROM timers") == 0
        async with client_for(app) as client:
            late = await client.post(
                "/sessions/scan", json={"code": stale.code}, headers=tokens.headers()
            )
            assert late.json()["reason"] == "code_expired"


# --- token verification --------------------------------------------------------------------


class TestSessionSvcVerifiesTokens(VerifierContract):
    @pytest.fixture
    def protected(self) -> tuple[str, str]:
        return ("GET", "/sessions")

    @pytest.fixture
    def valid_token(self, tokens: TokenFactory) -> str:
        return tokens.token()


async def test_a_scanned_qr_code_is_previewed_at_once_and_not_rate_counted(
    app: FastAPI, client: httpx.AsyncClient, tokens: TokenFactory, signing_key: dict[str, Any]
) -> None:
    """The short QR code does not carry the station id: the app asks what it names (verified,
    before its Issued reached the store), as often as it likes."""
    await station_online(app, "ST-1")
    story = Story()
    story.issued(signing_key)  # not published: the store has not heard of it
    driver = tokens.headers()
    for _ in range(8):  # more than the typed-code limit (5 a minute here)
        found = await lookup(client, f"https://pay.example/s/{story.token}", driver)
        assert found.status_code == 200, found.text
    body = found.json()
    assert (body["station_id"], body["connector_id"], body["code"]) == ("ST-1", 1, None)
    assert datetime.fromisoformat(body["expires_at"]) == story.started + timedelta(minutes=5)
    assert await scanned_ids(app) == []
    forged, _ = sign_session_code(
        generate_signing_key(), station_id="ST-1", connector_id=1, session_started_at=story.started
    )
    refused = await lookup(client, forged, driver)
    assert (refused.status_code, refused.json()["reason"]) == (400, "code_invalid")


async def test_a_driver_who_cancels_releases_the_code_at_once(
    app: FastAPI, client: httpx.AsyncClient, tokens: TokenFactory, signing_key: dict[str, Any]
) -> None:
    """Cancel in the app before starting: SessionCodeExpired (the gateway frees the screen and
    the connector on it), and the code can no longer be scanned, by anyone."""
    await station_online(app, "ST-1")
    story = await issue(app, signing_key)
    driver = tokens.headers()
    released = await client.post(
        "/sessions/codes/release", json={"code": story.token}, headers=driver
    )
    assert released.status_code == 204, released.text
    [expired] = await eventually(
        lambda: events_of_type(app, "plugpay.sessions", "SessionCodeExpired"),
        what="SessionCodeExpired in the log",
    )
    assert expired.aggregate_id == str(story.session_id)
    assert expired.payload["station_id"] == "ST-1" and expired.payload["connector_id"] == 1
    late = await client.post("/sessions/scan", json={"code": story.token}, headers=driver)
    assert late.status_code in (409, 410) and late.json()["reason"] in ("code_used", "code_expired")
    await wait_status(app, story.session_id, "expired")
    again = await client.post(
        "/sessions/codes/release", json={"code": story.code}, headers=tokens.headers()
    )
    assert again.status_code in (409, 410), again.text
    assert await scanned_ids(app) == []
