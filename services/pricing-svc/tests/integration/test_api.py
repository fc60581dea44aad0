"""The operator API and the public quote on a real PostgreSQL."""

from __future__ import annotations

import copy
import uuid
from typing import Any

import httpx
from fastapi import FastAPI
from plugpay_events.topics import PRICING
from plugpay_testing.tokens import TokenFactory

from ..factories import FLAT_TARIFF, PEAK_TARIFF, station_registered
from .conftest import operator, register_station, topic_events

ORG = uuid.UUID("00000000-0000-4000-8000-00000000000a")
OTHER = uuid.UUID("00000000-0000-4000-8000-00000000000b")


def with_change(path: list[Any], value: Any, base: dict[str, Any] = FLAT_TARIFF) -> dict[str, Any]:
    body = copy.deepcopy(base)
    target = body
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return body


ENERGY = {"type": "ENERGY", "price": "0.30", "vat": "19"}
INVALID_TARIFFS = {
    "negative price": (
        with_change(["elements", 0, "price_components", 0, "price"], "-0.10"),
        "elements[0].price_components[0].price",
        "negative_price",
    ),
    "unknown currency": (with_change(["currency"], "EUX"), "currency", "unknown_currency"),
    "overlapping restrictions": (
        {
            "currency": "EUR",
            "elements": [
                {"price_components": [ENERGY], "restrictions": {"day_of_week": ["MONDAY"]}},
                {"price_components": [ENERGY], "restrictions": {"day_of_week": ["MONDAY"]}},
                {"price_components": [ENERGY]},
            ],
        },
        "elements[1].restrictions",
        "overlapping_restrictions",
    ),
    "contradictory energy bounds": (
        with_change(
            ["elements", 0, "restrictions"], {"min_energy_wh": 5000, "max_energy_wh": 1000}
        ),
        "elements[0].restrictions.min_energy_wh",
        "contradictory_restrictions",
    ),
    "empty time window": (
        with_change(["elements", 0, "restrictions"], {"start_time": "08:00", "end_time": "08:00"}),
        "elements[0].restrictions.start_time",
        "contradictory_restrictions",
    ),
    "shadowed element": (
        {
            "currency": "EUR",
            "elements": [
                {"price_components": [ENERGY]},
                {"price_components": [ENERGY], "restrictions": {"start_time": "17:00"}},
            ],
        },
        "elements[1].price_components[0]",
        "shadowed_element",
    ),
    "VAT above 100": (
        with_change(["elements", 0, "price_components", 0, "vat"], "120"),
        "elements[0].price_components[0].vat",
        "invalid_vat",
    ),
    "too many decimals": (
        with_change(["elements", 0, "price_components", 0, "price"], "0.1234567"),
        "elements[0].price_components[0].price",
        "too_many_decimals",
    ),
    "no elements": (with_change(["elements"], []), "elements", "no_elements"),
    "min above max": (
        {**FLAT_TARIFF, "min_price": 500, "max_price": 100},
        "min_price",
        "min_price_above_max_price",
    ),
    "malformed time": (
        with_change(["elements", 0, "restrictions"], {"start_time": "25:00"}),
        "elements[0].restrictions.start_time",
        "string_pattern_mismatch",
    ),
    "version set by the caller": ({**FLAT_TARIFF, "version": 7}, "version", "server_assigned"),
    "unknown field": ({**FLAT_TARIFF, "discount": "10%"}, "discount", "extra_forbidden"),
}


async def test_invalid_tariffs_are_refused_with_field_and_reason(
    client: httpx.AsyncClient, tokens: TokenFactory
) -> None:
    headers = operator(tokens, ORG)
    for name, (body, field, reason) in INVALID_TARIFFS.items():
        response = await client.post(
            "/pricing/tariffs", json={"key": "T-BAD", **body}, headers=headers
        )
        assert response.status_code == 422, (name, response.text)
        answer = response.json()
        assert answer["reason"] == "tariff_invalid", name
        assert {"field": field, "reason": reason} in [
            {"field": e["field"], "reason": e["reason"]} for e in answer["errors"]
        ], (name, answer)
    bad_key = await client.post(
        "/pricing/tariffs", json={"key": "no spaces!", **FLAT_TARIFF}, headers=headers
    )
    assert bad_key.status_code == 422 and bad_key.json()["errors"][0]["reason"] == "invalid_key"
    listed = await client.get("/pricing/tariffs", headers=headers)
    assert listed.json()["items"] == []  # nothing invalid was stored


async def test_tariffs_are_versioned(
    app: FastAPI, client: httpx.AsyncClient, tokens: TokenFactory
) -> None:
    headers = operator(tokens, ORG)
    created = await client.post(
        "/pricing/tariffs", json={"key": "AC", **FLAT_TARIFF}, headers=headers
    )
    assert created.status_code == 201 and created.json()["version"] == 1
    again = await client.post(
        "/pricing/tariffs", json={"key": "AC", **FLAT_TARIFF}, headers=headers
    )
    assert again.status_code == 409 and again.json()["reason"] == "tariff_exists"
    updated = await client.put("/pricing/tariffs/AC", json=PEAK_TARIFF, headers=headers)
    assert updated.status_code == 200 and updated.json()["version"] == 2
    new_key = await client.put("/pricing/tariffs/DC", json=FLAT_TARIFF, headers=headers)
    assert new_key.status_code == 201 and new_key.json()["version"] == 1

    latest = (await client.get("/pricing/tariffs/AC", headers=headers)).json()
    assert latest["version"] == 2 and latest["tariff"]["elements"][0]["restrictions"]
    history = (await client.get("/pricing/tariffs/AC/versions", headers=headers)).json()
    assert [v["version"] for v in history["items"]] == [1, 2]
    first = (await client.get("/pricing/tariffs/AC/versions/1", headers=headers)).json()
    assert first["tariff"]["elements"] == created.json()["tariff"]["elements"]
    # What drivers read, as a quote says it: exact to a tenth of a cent, incl. VAT.
    assert first["summary"] == created.json()["summary"] == "0.476 EUR/kWh, incl. 19% VAT"
    listed = (await client.get("/pricing/tariffs", headers=headers)).json()
    assert [(t["key"], t["version"]) for t in listed["items"]] == [("AC", 2), ("DC", 1)]
    missing = await client.get("/pricing/tariffs/AC/versions/9", headers=headers)
    assert missing.status_code == 404

    published = await topic_events(app, PRICING.name, "TariffPublished", at_least=3)
    assert [(e.tariff_key, e.tariff.version) for e in published] == [
        ("AC", 1),
        ("AC", 2),
        ("DC", 1),
    ]


async def test_operators_only_manage_their_own_organisation(
    app: FastAPI, client: httpx.AsyncClient, tokens: TokenFactory
) -> None:
    mine, theirs = operator(tokens, ORG), operator(tokens, OTHER)
    await client.post("/pricing/tariffs", json={"key": "AC", **FLAT_TARIFF}, headers=mine)
    await client.post("/pricing/tariffs", json={"key": "OTHER", **FLAT_TARIFF}, headers=theirs)
    await register_station(app, client, mine, station_registered("ST-A", ORG))
    commercials = {"time_zone": "Europe/Berlin", "tariff_key": "OTHER"}

    # Another organisation's objects answer as missing ones do (no ownership oracle); a taken
    # tariff key is refused without saying whose it is.
    for method, path, body, status, reason in [
        ("PUT", "/pricing/tariffs/AC", FLAT_TARIFF, 409, "tariff_key_unavailable"),
        ("GET", "/pricing/tariffs/AC", None, 404, "tariff_unknown"),
        ("GET", "/pricing/tariffs/AC/versions", None, 404, "tariff_unknown"),
        ("GET", "/pricing/stations/ST-A", None, 404, "station_unknown"),
        ("PUT", "/pricing/stations/ST-A", commercials, 404, "station_unknown"),
    ]:
        response = await client.request(method, path, json=body, headers=theirs)
        assert response.status_code == status, (method, path, response.text)
        assert response.json()["reason"] == reason
        if "ST-A" in path:
            missing = await client.request(
                method, path.replace("ST-A", "ST-NONE"), json=body, headers=theirs
            )
            assert (missing.status_code, missing.json()["reason"]) == (status, reason)
    # Nor may a station of ours use another organisation's tariff.
    borrowed = await client.put("/pricing/stations/ST-A", json=commercials, headers=mine)
    assert borrowed.status_code == 422
    assert borrowed.json()["errors"][0] == {
        "field": "tariff_key",
        "reason": "tariff_unknown",
        "message": "your organisation has no tariff 'OTHER'",
    }
    assert (await client.get("/pricing/stations", headers=theirs)).json()["items"] == []
    driver = tokens.headers(roles=("driver",), organisation_id=ORG)
    assert (await client.get("/pricing/tariffs", headers=driver)).status_code == 403
    no_org = tokens.headers(roles=("operator",))
    refused = await client.get("/pricing/tariffs", headers=no_org)
    assert refused.status_code == 403 and refused.json()["reason"] == "no_organisation"


async def test_commercials_and_the_public_quote(
    app: FastAPI, client: httpx.AsyncClient, tokens: TokenFactory
) -> None:
    headers = operator(tokens, ORG)
    body = {
        "currency": "EUR",
        "min_price": 50,
        "elements": [
            {
                "price_components": [
                    {"type": "ENERGY", "price": "0.327731", "vat": "19"},
                    {"type": "FLAT", "price": "0.840336", "vat": "19"},
                    {"type": "PARKING_TIME", "price": "6.00", "vat": "19", "step_size": 60},
                ]
            }
        ],
    }
    await client.post("/pricing/tariffs", json={"key": "AC", **body}, headers=headers)
    await client.post("/pricing/tariffs", json={"key": "SLOW", **FLAT_TARIFF}, headers=headers)
    await register_station(app, client, headers, station_registered("ST-Q", ORG))
    before = (await client.get("/pricing/stations/ST-Q", headers=headers)).json()
    assert before["commercials"] is None and len(before["connectors"]) == 2
    unpriced = await client.get("/pricing/stations/ST-Q/quote?connector=1")
    assert unpriced.status_code == 404 and unpriced.json()["reason"] == "station_unknown"

    invalid = await client.put(
        "/pricing/stations/ST-Q",
        json={
            "time_zone": "Berlin",
            "tariff_key": "AC",
            "access_policy": {"kind": "restricted"},
            "connectors": [{"connector_id": 2, "max_power_w": 99_000}],
        },
        headers=headers,
    )
    assert invalid.status_code == 422
    assert {(e["field"], e["reason"]) for e in invalid.json()["errors"]} == {
        ("time_zone", "unknown_time_zone"),
        ("access_policy.kind", "restricted_without_audience"),
        ("connectors[2].max_power_w", "power_above_rating"),
    }
    # Integers are strict and bounded by their columns: 422, never a 500 or a coerced value.
    for connector in (
        {"connector_id": 2, "max_power_w": 2**62},
        {"connector_id": 2**40},
        {"connector_id": "2"},
        {"connector_id": True},
        {"connector_id": 2, "max_power_w": "11000"},
    ):
        bad = await client.put(
            "/pricing/stations/ST-Q",
            json={"time_zone": "Europe/Berlin", "tariff_key": "AC", "connectors": [connector]},
            headers=headers,
        )
        assert bad.status_code == 422, (connector, bad.text)
    response = await client.put(
        "/pricing/stations/ST-Q",
        json={
            "time_zone": "Europe/Berlin",
            "tariff_key": "AC",
            "connectors": [{"connector_id": 2, "tariff_key": "SLOW", "max_power_w": 11_000}],
        },
        headers=headers,
    )
    assert response.status_code == 200, response.text
    station = response.json()
    assert station["commercials"]["time_zone"] == "Europe/Berlin"
    assert [(c["tariff_key"], c["max_power_w"]) for c in station["connectors"]] == [
        ("AC", 22_000),
        ("SLOW", 11_000),
    ]
    (event,) = await topic_events(app, PRICING.name, "StationCommercialsSet")
    assert event.connector_tariffs == {2: "SLOW"} and event.organisation_id == ORG

    quote = await client.get("/pricing/stations/ST-Q/quote?connector=1")  # no token: public
    assert quote.status_code == 200, quote.text
    assert quote.headers["cache-control"] == "public, max-age=60"
    q = quote.json()
    assert (q["per_kwh"], q["per_session"], q["idle_per_minute"], q["vat_percent"]) == (
        "0.39",
        "1.00",
        "0.119",
        "19",
    )
    assert q["text"] == "0.39 EUR/kWh + 1.00 EUR per session + 0.119 EUR/min idle, incl. 19% VAT"
    assert q["min_price_excl_vat"] == {"amount_minor": 50, "currency": "EUR"}
    assert (q["tariff_key"], q["tariff_version"], q["max_power_w"]) == ("AC", 1, 22_000)
    # 20 kWh: 655 + 124 VAT, plus the session fee 84 + 16.
    assert q["example"]["total"] == {"amount_minor": 879, "currency": "EUR"}
    cached = await client.get(
        "/pricing/stations/ST-Q/quote?connector=1",
        headers={"If-None-Match": quote.headers["etag"]},
    )
    assert cached.status_code == 304
    slow = (await client.get("/pricing/stations/ST-Q/quote?connector=2")).json()
    assert (slow["tariff_key"], slow["per_kwh"], slow["max_power_w"]) == ("SLOW", "0.476", 11_000)
    budget = (await client.get("/pricing/stations/ST-Q/quote?connector=1&budget_minor=2000")).json()
    # 20.00 EUR minus the 1.00 fee buys at most 48.717 kWh at 0.39; the limit stays below.
    assert budget["limits"]["affordable"] and 45_000 < budget["limits"]["max_energy_wh"] <= 48_717
    unknown = await client.get("/pricing/stations/ST-Q/quote?connector=7")
    assert unknown.status_code == 404 and unknown.json()["reason"] == "connector_unknown"
