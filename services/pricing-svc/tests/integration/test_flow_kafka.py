"""The authorisation step and the final cost through real Kafka and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
from aiokafka.partitioner import DefaultPartitioner
from fastapi import FastAPI
from plugpay_events.topics import SESSIONS
from plugpay_testing import eventually
from plugpay_testing.tokens import TokenFactory

from ..factories import PEAK_TARIFF, completed, scanned, station_registered
from .conftest import operator, publish, register_station, topic_events

ORG = uuid.uuid4()
OTHER = uuid.uuid4()
# 16:30 in Berlin (CET): the 17:00 peak starts half-way through an hour of charging.
BEFORE_PEAK = datetime(2025, 1, 15, 15, 30, tzinfo=UTC)


def same_partition_as(session_id: uuid.UUID) -> uuid.UUID:
    """Another session id Kafka puts on the same partition (so it is handled after)."""
    partitions = list(range(SESSIONS.partitions))

    def partition(key: uuid.UUID) -> int:
        return int(DefaultPartitioner()(str(key).encode(), partitions, partitions))

    while (candidate := uuid.uuid4()) and partition(candidate) != partition(session_id):
        pass
    return candidate


async def session_outputs(app: FastAPI, type_: str, session_id: uuid.UUID) -> list[Any]:
    found = await topic_events(app, SESSIONS.name, type_, at_least=0)
    return [e for e in found if e.session_id == session_id]


async def output(app: FastAPI, type_: str, session_id: uuid.UUID) -> Any:
    async def appeared() -> list[Any]:
        return await session_outputs(app, type_, session_id)

    return (await eventually(appeared, within=30))[0]


async def test_sessions_are_priced_denied_and_costed_once(
    kafka_app: FastAPI, tokens: TokenFactory
) -> None:
    app = kafka_app
    headers = operator(tokens, ORG)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://pricing.test"
    ) as client:
        await register_station(app, client, headers, station_registered("ST-K", ORG))
        await register_station(app, client, headers, station_registered("ST-R", ORG))
        await client.post("/pricing/tariffs", json={"key": "PEAK", **PEAK_TARIFF}, headers=headers)
        for station_id, policy in [
            ("ST-K", {}),
            (
                "ST-R",
                {"kind": "restricted", "allowed_groups": ["staff"], "free_for_groups": ["staff"]},
            ),
        ]:
            response = await client.put(
                f"/pricing/stations/{station_id}",
                json={
                    "time_zone": "Europe/Berlin",
                    "tariff_key": "PEAK",
                    "access_policy": policy,
                    "connectors": [{"connector_id": 2, "max_power_w": 11_000}],
                },
                headers=headers,
            )
            assert response.status_code == 200, response.text

    paying = scanned("ST-K", connector_id=2)
    unknown = scanned("ST-NOPE")
    bad_connector = scanned("ST-K", connector_id=5)
    outsider = scanned("ST-R", organisation_id=OTHER, groups=("staff",))
    staff = scanned("ST-R", organisation_id=ORG, groups=("staff",))
    (first,) = await publish(app, paying)
    # Redelivery of the same event, and the same scan re-emitted under a new event id.
    await publish(app, first, paying, unknown, bad_connector, outsider, staff)

    priced = await output(app, "SessionPriced", paying.session_id)
    assert priced.tariff.id == "PEAK" and priced.tariff.version == 1
    assert (priced.max_power_w, priced.time_zone, priced.free_of_charge) == (
        11_000,
        "Europe/Berlin",
        False,
    )
    assert priced.station_organisation_id == ORG and priced.user_id == paying.user_id
    for event, reason in [
        (unknown, "station_unknown"),
        (bad_connector, "connector_unavailable"),
        (outsider, "access_denied"),
    ]:
        denied = await output(app, "SessionDenied", event.session_id)
        assert (denied.reason, denied.denied_by) == (reason, "pricing-svc")
    assert (await output(app, "SessionPriced", staff.session_id)).free_of_charge

    # The tariff changes after pricing: the session keeps its snapshot.
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://pricing.test"
    ) as client:
        cheaper = {"currency": "EUR", "elements": [{"price_components": [
            {"type": "ENERGY", "price": "0.01", "vat": "19"}
        ]}]}  # fmt: skip
        assert (await client.put("/pricing/tariffs/PEAK", json=cheaper, headers=headers)).is_success

    done = completed(
        paying.session_id, "ST-K", started_at=BEFORE_PEAK, charging_s=3600, energy_wh=10_000
    )
    (done_envelope,) = await publish(app, done)
    free_done = completed(
        staff.session_id, "ST-R", started_at=BEFORE_PEAK, charging_s=600, energy_wh=2_000
    )
    marker = scanned("ST-NOPE", session_id=same_partition_as(paying.session_id))
    await publish(app, done_envelope, done, free_done, marker)

    cost = await output(app, "SessionCostCalculated", paying.session_id)
    # Off-peak 5 kWh at 0.30 (150 + 29 VAT), peak 5 kWh at 0.50 (250 + 48), fee 100 + 19.
    assert cost.total.model_dump() == {"amount_minor": 596, "currency": "EUR"}
    assert cost.breakdown.tariff_version == 1
    assert sorted(
        (line.component_type.value, line.element_index, line.amount_incl_vat)
        for line in cost.breakdown.lines
    ) == [("ENERGY", 0, 298), ("ENERGY", 1, 179), ("FLAT", 1, 119)]
    free = await output(app, "SessionCostCalculated", staff.session_id)
    assert free.free_of_charge and free.total.amount_minor == 0 and free.breakdown.energy_wh == 2000

    # The marker follows every duplicate on their partition: once it is answered, they were seen.
    await output(app, "SessionDenied", marker.session_id)
    assert len(await session_outputs(app, "SessionPriced", paying.session_id)) == 1
    assert len(await session_outputs(app, "SessionCostCalculated", paying.session_id)) == 1
    caused = await topic_events(app, SESSIONS.name, "SessionPriced")
    assert len(caused) == 2  # the paying driver and the staff member, nobody else
