"""Operators' live view of their stations (GET /stations, /stations/{id}/status), scoped to their
organisation like every operator route; commands share the same scoping."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from ocpp.v16 import call
from sqlalchemy import text

from ..harness_station import (
    ORG,
    boot16,
    iso,
    meter_values16,
    request_code16,
    start_transaction16,
)

pytestmark = pytest.mark.infra


async def start_charging(harness: Any, station: Any) -> tuple[str, int]:
    await boot16(station)
    session_id = (await request_code16(station))["sessionId"]
    await harness.authorize(session_id, station.id)
    starts = await harness.eventually(lambda: station.got("RemoteStartTransaction"), 15)
    # Like many real 1.6 chargers: Preparing once told to start. That is this session, not a
    # new driver plugging in: no second code.
    await station.call(
        call.StatusNotification(connector_id=1, error_code="NoError", status="Preparing")
    )
    codes = [p for p in station.got("DataTransfer") if "DisplaySessionCode" in str(p)]
    async with harness.db.read() as session:
        count = (await session.execute(text("SELECT count(*) FROM sessions"))).scalar_one()
    assert count == 1 and len(codes) <= 1, (count, codes)
    started = await start_transaction16(station, starts[0]["id_tag"], 10_000, datetime.now(UTC))
    await harness.wait_event("ChargingStarted")
    return session_id, started.transaction_id


async def test_operators_see_their_stations_live_and_nothing_else(harness) -> None:  # type: ignore[no-untyped-def]
    gw = await harness.start_gateway()
    await harness.register("OPS-1")
    await harness.register("OPS-2", connectors=1)
    mine = harness.tokens.headers(roles=("operator",), organisation_id=ORG)
    theirs = harness.tokens.headers(roles=("operator",), organisation_id=uuid.uuid4())
    orphan = harness.tokens.headers(roles=("operator",))
    driver = harness.tokens.headers(roles=("driver",), organisation_id=ORG)

    async with httpx.AsyncClient(base_url=gw.http, timeout=10) as client:

        async def live(station_id: str) -> dict:  # type: ignore[type-arg]
            response = await client.get(f"/stations/{station_id}/status", headers=mine)
            assert response.status_code == 200, response.text
            return dict(response.json())

        # Registered, never connected.
        listed = await client.get("/stations", headers=mine)
        assert listed.status_code == 200, listed.text
        assert listed.headers["cache-control"] == "no-store"
        assert [s["station_id"] for s in listed.json()["items"]] == ["OPS-1", "OPS-2"]
        first = listed.json()["items"][0]
        assert (first["online"], first["last_seen_at"], first["name"]) == (
            False,
            None,
            "Station OPS-1",
        )
        assert [(c["connector_id"], c["status"]) for c in first["connectors"]] == [
            (1, "Unknown"),
            (2, "Unknown"),
        ]

        station = await harness.connect("OPS-1")
        session_id, tx = await start_charging(harness, station)
        await station.call(
            call.StatusNotification(connector_id=2, error_code="GroundFailure", status="Faulted")
        )
        await station.call(
            call.StatusNotification(connector_id=1, error_code="NoError", status="Charging")
        )
        await meter_values16(station, tx, datetime.now(UTC), 10_400)

        async def charging() -> dict | None:  # type: ignore[type-arg]
            view = await live("OPS-1")
            one = view["connectors"][0]
            ok = one["session"] and one["session"]["energy_wh"] == 400
            return view if ok else None

        view = await harness.eventually(charging, 10, "the session on connector 1")
        assert view["online"] and view["connected"] and view["ocpp_version"] == "1.6"
        assert view["last_seen_at"] and view["connected_at"]
        assert (view["vendor"], view["model"]) == ("Acme", "M1")
        one, two = view["connectors"]
        assert one["status"] == "Charging" and one["status_since"]
        assert one["session"]["session_id"] == session_id
        assert one["session"]["state"] == "charging" and one["session"]["started_at"]
        assert "code" not in one["session"] and "qr_url" not in one["session"]
        assert (two["status"], two["error_code"], two["session"]) == (
            "Faulted",
            "GroundFailure",
            None,
        )
        listed = (await client.get("/stations", headers=mine)).json()["items"]
        assert [s["online"] for s in listed] == [True, False]

        # Another organisation's operator: an empty list, and the station and its commands
        # answer exactly as a station that does not exist (no ownership oracle).
        assert (await client.get("/stations", headers=theirs)).json()["items"] == []
        for method, path, body in [
            ("GET", "/stations/OPS-1/status", None),
            ("POST", "/stations/OPS-1/commands", {"action": "TriggerMessage", "payload": {}}),
            ("GET", "/stations/OPS-1/commands/1", None),
        ]:
            refused = await client.request(method, path, json=body, headers=theirs)
            missing = await client.request(
                method, path.replace("OPS-1", "OPS-NONE"), json=body, headers=theirs
            )
            assert refused.status_code == 404, (path, refused.text)
            assert refused.json()["reason"] == missing.json()["reason"] == "station_unknown"
        # No organisation, a driver, no token, an unknown station.
        for headers, status, reason in [
            (orphan, 403, "no_organisation"),
            (driver, 403, "forbidden"),
            ({}, 401, "unauthenticated"),
        ]:
            for path in ("/stations", "/stations/OPS-1/status"):
                refused = await client.get(path, headers=headers)
                assert (refused.status_code, refused.json()["reason"]) == (status, reason), path
        unknown = await client.get("/stations/NOPE/status", headers=mine)
        assert (unknown.status_code, unknown.json()["reason"]) == (404, "station_unknown")
        # A session's start command is not an operator's to read.
        async with harness.db.read() as session:
            start_id = (
                await session.execute(text("SELECT id FROM station_commands WHERE kind = 'start'"))
            ).scalar_one()
        hidden = await client.get(f"/stations/OPS-1/commands/{start_id}", headers=mine)
        assert hidden.status_code == 404, hidden.text
        # A command id beyond the bigint column is a 422, not a database error.
        for too_big in (2**63, 13863370321921548288):
            refused = await client.get(f"/stations/OPS-1/commands/{too_big}", headers=mine)
            assert refused.status_code == 422, refused.text

        # The station stops and drops: the session is over, the station offline.
        await station.call(
            call.StopTransaction(
                meter_stop=10_500, timestamp=iso(datetime.now(UTC)), transaction_id=tx
            )
        )
        await harness.wait_event("SessionCompleted")
        await harness.close(station)

        async def gone() -> bool:
            view = await live("OPS-1")
            return not view["online"] and view["connectors"][0]["session"] is None

        await harness.eventually(gone, 10, "OPS-1 offline")


async def test_operators_read_a_sessions_meter_readings_and_nobody_else(harness) -> None:  # type: ignore[no-untyped-def]
    gw = await harness.start_gateway()
    await harness.register("OPS-M")
    mine = harness.tokens.headers(roles=("operator",), organisation_id=ORG)
    theirs = harness.tokens.headers(roles=("operator",), organisation_id=uuid.uuid4())
    driver = harness.tokens.headers(roles=("driver",), organisation_id=ORG)
    station = await harness.connect("OPS-M")
    session_id, tx = await start_charging(harness, station)
    first = datetime.now(UTC)
    for n, wh in enumerate((10_200, 10_450)):
        await meter_values16(station, tx, first.replace(microsecond=0) + timedelta(seconds=n), wh)
    path = f"/stations/OPS-M/sessions/{session_id}/meter"
    async with httpx.AsyncClient(base_url=gw.http, timeout=10) as client:

        async def both() -> dict | None:  # type: ignore[type-arg]
            response = await client.get(path, headers=mine)
            assert response.status_code == 200, response.text
            body = dict(response.json())
            return body if len(body["samples"]) == 2 else None

        body = await harness.eventually(both, 10, "both readings")
        assert [s["energy_wh"] for s in body["samples"]] == [10_200, 10_450]
        assert body["samples"][0]["sampled_at"] < body["samples"][1]["sampled_at"]
        assert (body["station_id"], body["connector_id"], body["truncated"]) == ("OPS-M", 1, False)
        for headers in (theirs, driver):
            refused = await client.get(path, headers=headers)
            assert refused.status_code in (403, 404), refused.text
        elsewhere = await client.get(f"/stations/OPS-M/sessions/{uuid.uuid4()}/meter", headers=mine)
        assert (elsewhere.status_code, elsewhere.json()["reason"]) == (404, "session_unknown")
    await harness.close(station)


async def test_ocpp_docs_lead_to_the_gateways_docs(harness) -> None:  # type: ignore[no-untyped-def]
    gw = await harness.start_gateway()
    async with httpx.AsyncClient(base_url=gw.http, timeout=10) as client:
        moved = await client.get("/ocpp/docs")
        assert (moved.status_code, moved.headers["location"]) == (307, "/stations/docs")
        docs = await client.get("/stations/docs")
        assert docs.status_code == 200 and "swagger" in docs.text.lower()
