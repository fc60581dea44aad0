"""Find a charger: GET /pricing/stations/public and the consumer that keeps it live."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from plugpay_events.contracts.identity import ConnectorSpec, StationRegistered
from plugpay_events.contracts.stations import (
    ConnectorStatusChanged,
    StationConnected,
    StationDisconnected,
    StationWentOffline,
)
from plugpay_events.types import utc_now
from plugpay_testing import eventually
from plugpay_testing.tokens import TokenFactory
from pricing_svc.handlers import DIRECTORY_GROUP
from pricing_svc.tables import outbox_tables
from sqlalchemy import func, select

from ..factories import FLAT_TARIFF, PEAK_TARIFF
from .conftest import operator, publish

ORG = uuid.uuid4()
OTHER = uuid.uuid4()
# Berlin Alexanderplatz, Potsdam (~27 km), Hamburg (~255 km).
BERLIN = (52.5219, 13.4132)
POTSDAM = (52.3906, 13.0645)
HAMBURG = (53.5511, 9.9937)


def registered(
    station_id: str,
    where: tuple[float, float] | None,
    *,
    organisation_id: uuid.UUID = ORG,
    connectors: tuple[ConnectorSpec, ...] | None = None,
) -> StationRegistered:
    return StationRegistered(
        station_id=station_id,
        organisation_id=organisation_id,
        name=f"Station {station_id}",
        connectors=connectors
        or (
            ConnectorSpec(connector_id=1, max_power_w=22_000),
            ConnectorSpec(connector_id=2, max_power_w=22_000),
        ),
        latitude=where[0] if where else None,
        longitude=where[1] if where else None,
        address=f"{station_id} street 1" if where else None,
        registered_at=utc_now(),
    )


def status(station_id: str, connector_id: int, value: str, **kw: Any) -> ConnectorStatusChanged:
    return ConnectorStatusChanged(
        station_id=station_id,
        connector_id=connector_id,
        status=value,  # type: ignore[arg-type]
        changed_at=kw.pop("at", utc_now()),
        **kw,
    )


def connected(station_id: str, **kw: Any) -> StationConnected:
    return StationConnected(
        station_id=station_id,
        ocpp_version="1.6",
        gateway_instance="gw-1",
        connected_at=kw.pop("at", utc_now()),
    )


async def setup_stations(
    app: FastAPI, client: httpx.AsyncClient, tokens: TokenFactory, specs: list[Any]
) -> None:
    """Register stations (auth-svc's event), publish tariffs and set commercials; returns
    once the directory (its own consumer group) has located every station too."""
    headers = operator(tokens, ORG)
    other = operator(tokens, OTHER)
    registrations = await publish(app, *(s[0] for s in specs))
    inbox = outbox_tables.inbox
    ids = [e.event_id for e in registrations]

    async def located() -> bool:
        async with app.state.runtime.database.read() as db:
            claimed = await db.scalar(
                select(func.count())
                .select_from(inbox)
                .where(inbox.c.consumer == DIRECTORY_GROUP, inbox.c.event_id.in_(ids))
            )
        return claimed == len(ids)

    await eventually(located)
    for event, _ in specs:
        org_headers = headers if event.organisation_id == ORG else other

        async def known(station_id: str = event.station_id, h: Any = org_headers) -> bool:
            return (await client.get(f"/pricing/stations/{station_id}", headers=h)).is_success

        await eventually(known)
    await client.put("/pricing/tariffs/FLAT", json=FLAT_TARIFF, headers=headers)
    await client.put("/pricing/tariffs/FLAT-O", json=FLAT_TARIFF, headers=other)
    await client.put("/pricing/tariffs/PEAK", json=PEAK_TARIFF, headers=headers)
    for event, commercials in specs:
        if commercials is None:
            continue
        ours = event.organisation_id == ORG
        response = await client.put(
            f"/pricing/stations/{event.station_id}",
            json={
                "time_zone": "Europe/Berlin",
                "tariff_key": "FLAT" if ours else "FLAT-O",
                **commercials,
            },
            headers=headers if ours else other,
        )
        assert response.status_code == 200, response.text


async def listing(client: httpx.AsyncClient, query: str = "", **kw: Any) -> dict[str, Any]:
    response = await client.get("/pricing/stations/public" + query, **kw)
    assert response.status_code == 200, response.text
    return dict(response.json())


def by_id(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["station_id"]: s for s in body["items"]}


async def test_directory_lists_stations_in_service_with_price_location_and_access(
    app: FastAPI, client: httpx.AsyncClient, tokens: TokenFactory
) -> None:
    await setup_stations(
        app,
        client,
        tokens,
        [
            (
                registered("D-BER", BERLIN),
                {"connectors": [{"connector_id": 2, "tariff_key": "PEAK"}]},
            ),
            (registered("D-POT", POTSDAM), {}),
            (registered("D-HAM", HAMBURG), {}),
            (registered("D-NOWHERE", None), {}),
            (registered("D-OFF", BERLIN), {"status": "inactive"}),
            (registered("D-NOPRICE", BERLIN), None),
            (
                registered("D-STAFF", BERLIN),
                {"access_policy": {"kind": "restricted", "allowed_groups": ["staff"]}},
            ),
            (
                registered("D-OTHER", POTSDAM, organisation_id=OTHER),
                {"access_policy": {"kind": "restricted", "allowed_organisations": [str(ORG)]}},
            ),
        ],
    )
    # Anonymous: public stations in service only, by id, located first; no presence known yet
    # = Offline.
    response = await client.get("/pricing/stations/public")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "public, max-age=10"
    assert "Authorization" in response.headers["vary"]
    body = response.json()
    assert [s["station_id"] for s in body["items"]] == ["D-BER", "D-HAM", "D-POT", "D-NOWHERE"]
    ber = by_id(body)["D-BER"]
    assert (ber["name"], ber["address"]) == ("Station D-BER", "D-BER street 1")
    assert (ber["latitude"], ber["longitude"], ber["distance_km"]) == (*BERLIN, None)
    assert ber["access"] == "public" and ber["online"] is False
    assert ber["available_connectors"] == 0 and ber["price_text"] is None  # two tariffs
    one, two = ber["connectors"]
    assert (one["connector_id"], one["power_type"], one["max_power_w"]) == (1, "AC_3_PHASE", 22_000)
    assert one["status"] == "Offline" and one["ocpp_status"] is None
    quote = (await client.get("/pricing/stations/D-BER/quote?connector=1")).json()
    assert one["price"]["tariff_key"] == "FLAT" and one["price"]["tariff_version"] == 1
    assert (one["price"]["per_kwh"], one["price"]["text"]) == (quote["per_kwh"], quote["text"])
    assert one["price"]["text"].startswith("0.476 EUR/kWh")
    assert two["price"]["tariff_key"] == "PEAK" and two["price"]["currency"] == "EUR"
    assert by_id(body)["D-POT"]["price_text"] == one["price"]["text"]

    # Revalidation: same answer → 304.
    again = await client.get(
        "/pricing/stations/public", headers={"If-None-Match": response.headers["etag"]}
    )
    assert again.status_code == 304 and again.headers["etag"] == response.headers["etag"]

    # Nearest first from Berlin; within 50 km only located stations near enough.
    near = await listing(client, f"?lat={BERLIN[0]}&lon={BERLIN[1]}")
    assert [s["station_id"] for s in near["items"]] == ["D-BER", "D-POT", "D-HAM", "D-NOWHERE"]
    assert near["items"][0]["distance_km"] == 0
    assert 25 < near["items"][1]["distance_km"] < 30
    assert 250 < near["items"][2]["distance_km"] < 260
    assert near["items"][3]["distance_km"] is None
    within = await listing(client, f"?lat={BERLIN[0]}&lon={BERLIN[1]}&radius_km=50")
    assert [s["station_id"] for s in within["items"]] == ["D-BER", "D-POT"]
    assert within["near"] == {"latitude": BERLIN[0], "longitude": BERLIN[1], "radius_km": 50.0}
    assert [s["station_id"] for s in (await listing(client, "?limit=1"))["items"]] == ["D-BER"]

    # A driver of ORG in its staff group also finds the restricted stations admitting them;
    # a staff member of another organisation does not (groups are the owner's).
    member = tokens.headers(roles=("driver",), organisation_id=ORG, groups=("staff",))
    response = await client.get("/pricing/stations/public", headers=member)
    assert response.headers["cache-control"] == "private, max-age=10"
    mine = [s["station_id"] for s in response.json()["items"]]
    assert mine == ["D-BER", "D-HAM", "D-OTHER", "D-POT", "D-STAFF", "D-NOWHERE"]
    assert by_id(response.json())["D-STAFF"]["access"] == "restricted"
    outsider = tokens.headers(roles=("driver",), organisation_id=OTHER, groups=("staff",))
    theirs = [s["station_id"] for s in (await listing(client, headers=outsider))["items"]]
    assert theirs == ["D-BER", "D-HAM", "D-POT", "D-NOWHERE"]
    # A restricted station's quote is hidden exactly as the directory hides it (its owner's
    # operators see it): an outsider gets the answer of a station that does not exist.
    path = "/pricing/stations/D-STAFF/quote?connector=1"
    for headers in ({}, outsider):
        hidden = await client.get(path, headers=headers)
        assert (hidden.status_code, hidden.json()["reason"]) == (404, "station_unknown")
    missing = await client.get("/pricing/stations/D-MISSING/quote?connector=1")
    assert (missing.status_code, missing.json()["reason"]) == (404, "station_unknown")
    owner = tokens.headers(roles=("operator",), organisation_id=ORG)
    for headers in (member, owner):
        shown = await client.get(path, headers=headers)
        assert shown.status_code == 200, shown.text
        assert shown.headers["cache-control"].startswith("private")

    # Without a position, a station a driver can charge at now comes first.
    await publish(app, connected("D-POT"))

    async def pot_first() -> list[str] | None:
        order = [s["station_id"] for s in (await listing(client))["items"]]
        return order if order[0] == "D-POT" else None

    assert await eventually(pot_first) == ["D-POT", "D-BER", "D-HAM", "D-NOWHERE"]


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("?lat=52.5", "location_incomplete"),
        ("?lon=13.4", "location_incomplete"),
        ("?radius_km=5", "location_missing"),
        ("?lat=91&lon=0", None),
        ("?lat=0&lon=181", None),
        ("?lat=0&lon=0&radius_km=0", None),
        ("?lat=0&lon=0&radius_km=5000", None),
        ("?lat=north&lon=0", None),
        ("?limit=0", None),
    ],
)
async def test_directory_refuses_bad_queries(
    client: httpx.AsyncClient, query: str, reason: str | None
) -> None:
    response = await client.get("/pricing/stations/public" + query)
    assert response.status_code == 422, response.text
    if reason:
        assert response.json()["reason"] == reason


async def test_directory_refuses_a_bad_token(client: httpx.AsyncClient) -> None:
    for header in ("Bearer not-a-token", "Basic dXNlcjpwYXNz", "Bearer "):
        response = await client.get("/pricing/stations/public", headers={"Authorization": header})
        assert response.status_code == 401, (header, response.text)


async def _availability(client: httpx.AsyncClient, station_id: str) -> tuple[bool, list[str]]:
    station = by_id(await listing(client))[station_id]
    return station["online"], [c["status"] for c in station["connectors"]]


async def wait_for(
    client: httpx.AsyncClient, station_id: str, online: bool, statuses: list[str]
) -> None:
    async def reached() -> bool:
        return await _availability(client, station_id) == (online, statuses)

    try:
        await eventually(reached)
    except AssertionError:
        raise AssertionError(
            f"{station_id}: {await _availability(client, station_id)} != {(online, statuses)}"
        ) from None


async def live_availability_follows_station_events(
    app: FastAPI, client: httpx.AsyncClient, tokens: TokenFactory
) -> None:
    """Publish station-gateway's events on the bus; the public list follows."""
    await setup_stations(app, client, tokens, [(registered("LIVE-1", BERLIN), {})])
    await wait_for(client, "LIVE-1", False, ["Offline", "Offline"])
    t0 = utc_now()
    await publish(
        app,
        connected("LIVE-1", at=t0),
        status("LIVE-1", 1, "Available", at=t0),
        status("LIVE-1", 2, "Available", at=t0),
    )
    await wait_for(client, "LIVE-1", True, ["Available", "Available"])
    assert by_id(await listing(client))["LIVE-1"]["available_connectors"] == 2
    (first,) = await publish(app, status("LIVE-1", 1, "Preparing"))
    await wait_for(client, "LIVE-1", True, ["Occupied", "Available"])
    await publish(app, status("LIVE-1", 1, "Charging"), status("LIVE-1", 2, "Faulted"))
    await wait_for(client, "LIVE-1", True, ["Charging", "Faulted"])
    one = by_id(await listing(client))["LIVE-1"]["connectors"][0]
    assert (one["ocpp_status"], one["price"]["tariff_key"]) == ("Charging", "FLAT")
    # A redelivered event changes nothing (the inbox).
    await publish(app, first)
    await publish(app, status("LIVE-1", 2, "Available"))
    await wait_for(client, "LIVE-1", True, ["Charging", "Available"])
    # The whole station (connector 0) unavailable: every connector is.
    await publish(app, status("LIVE-1", 0, "Unavailable"))
    await wait_for(client, "LIVE-1", True, ["Unavailable", "Unavailable"])
    await publish(app, status("LIVE-1", 0, "Available"))
    await wait_for(client, "LIVE-1", True, ["Charging", "Available"])
    # The socket drops: Offline; back: the last statuses again.
    t1 = utc_now()
    await publish(
        app,
        StationDisconnected(station_id="LIVE-1", gateway_instance="gw-1", disconnected_at=t1),
    )
    await wait_for(client, "LIVE-1", False, ["Offline", "Offline"])
    t2 = utc_now()
    await publish(app, connected("LIVE-1", at=t2))
    await wait_for(client, "LIVE-1", True, ["Charging", "Available"])
    # A StationWentOffline about the earlier connection arrives late: ignored.
    await publish(
        app, StationWentOffline(station_id="LIVE-1", last_seen_at=t2 - timedelta(seconds=1))
    )
    await publish(app, status("LIVE-1", 1, "Finishing"))
    await wait_for(client, "LIVE-1", True, ["Occupied", "Available"])
    # Silence: offline.
    await publish(app, StationWentOffline(station_id="LIVE-1", last_seen_at=utc_now()))
    await wait_for(client, "LIVE-1", False, ["Offline", "Offline"])
    # A re-registration moves the station.
    await publish(app, registered("LIVE-1", HAMBURG))

    async def moved() -> bool:
        return by_id(await listing(client))["LIVE-1"]["latitude"] == HAMBURG[0]

    await eventually(moved)


async def test_live_availability_follows_station_events(
    app: FastAPI, client: httpx.AsyncClient, tokens: TokenFactory
) -> None:
    await live_availability_follows_station_events(app, client, tokens)


@pytest.mark.kafka
async def test_live_availability_over_real_kafka(kafka_app: FastAPI, tokens: TokenFactory) -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=kafka_app), base_url="http://pricing.test"
    ) as client:
        await live_availability_follows_station_events(kafka_app, client, tokens)
