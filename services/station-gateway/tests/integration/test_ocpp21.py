"""OCPP 2.1 against a real uvicorn server, driven by the ``ocpp`` library's v21 as a station."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import websockets
from ocpp.v21 import call
from plugpay_events.contracts.sessions import (
    SessionCostCalculated,
    SessionLimits,
)
from plugpay_events.topics import METER, STATIONS
from plugpay_events.types import Money
from plugpay_tariffs import SessionUsage, calculate_cost

from ..harness_station import (
    TARIFF,
    basic,
    boot201,
    charging_update201,
    code_on_display201,
    iso,
    meter201,
    request_code201,
    start_transaction201,
    transaction_ended201,
)

pytestmark = pytest.mark.infra


async def test_21_is_offered_beside_16_and_201(harness) -> None:  # type: ignore[no-untyped-def]
    """A station offering 2.1 first gets 2.1; the version is what presence reports."""
    process = await harness.start_gateway()
    await harness.register("EV-21V")
    ws = await websockets.connect(
        f"{process.ws}/EV-21V",
        subprotocols=["ocpp2.1", "ocpp2.0.1"],  # type: ignore[list-item]
        additional_headers={"Authorization": basic("EV-21V")},
    )
    assert ws.subprotocol == "ocpp2.1"
    await ws.close()
    connected = await harness.wait_event("StationConnected", topic=STATIONS)
    assert connected[-1]["ocpp_version"] == "2.1"


async def test_21_code_start_meter_stop(harness) -> None:  # type: ignore[no-untyped-def]
    await harness.start_gateway()
    await harness.register("EV-21")
    station = await harness.connect("EV-21", "2.1")
    booted = await boot201(station, "M21", "Acme")
    assert booted.status == "Accepted"
    session_id = (await code_on_display201(harness, station))["session_id"]

    limits = SessionLimits(
        max_energy_wh=10_000,
        max_duration_s=3_600,
        max_cost=Money(amount_minor=1_500, currency="EUR"),
    )
    await harness.authorize(session_id, "EV-21", limits=limits)
    starts = await harness.eventually(lambda: station.got("RequestStartTransaction"))
    assert starts[0]["evse_id"] == 1

    t0 = datetime.now(UTC) - timedelta(minutes=5)
    started = await start_transaction201(station, starts[0], "tx-21", t0, 50_000)
    assert started.id_token_info["status"] == "Accepted" and started.total_cost is None
    # What billing authorised, for the station to stop at by itself (2.1 E16).
    assert started.transaction_limit == {"max_cost": 15.0, "max_energy": 10_000, "max_time": 3_600}
    [tariff] = await harness.eventually(lambda: station.got("ChangeTransactionTariff"))
    assert tariff == {
        "transaction_id": "tx-21",
        "tariff": {
            "tariff_id": "t-1:1",
            "currency": "EUR",
            "energy": {"prices": [{"price_kwh": 0.4}]},
        },
    }
    charging = await harness.wait_event("ChargingStarted")
    assert charging[0]["transaction_id"] == "tx-21" and charging[0]["meter_start_wh"] == 50_000

    updated = await charging_update201(
        station, "tx-21", 1, meter201(t0 + timedelta(minutes=2), 50_500)
    )
    assert updated.total_cost is None
    assert updated.updated_personal_message["content"] == "Cost so far: 0.20 EUR"
    await harness.wait_event("MeterValuesReported", topic=METER)

    await harness.request_stop(session_id)
    stops = await harness.eventually(lambda: station.got("RequestStopTransaction"))
    assert stops[0]["transaction_id"] == "tx-21"
    ended = await station.call(
        transaction_ended201(
            station,
            "tx-21",
            2,
            meter201(t0 + timedelta(minutes=3), 50_600, "Transaction.End"),
            trigger_reason="RemoteStop",
            stopped_reason="Remote",
            # The station's own calculation is a claim: accepted, never billed or echoed.
            cost_details={
                "total_cost": {
                    "currency": "EUR",
                    "type_of_cost": "NormalCost",
                    "total": {"incl_tax": 99.0},
                },
                "total_usage": {"energy": 600, "charging_time": 180, "idle_time": 0},
            },
        )
    )
    assert ended.total_cost == pytest.approx(0.24)  # 0.6 kWh at 0.40 EUR, at the end only
    completed = await harness.wait_event("SessionCompleted")
    assert completed[0]["energy_wh"] == 600
    assert completed[0]["judgement"]["outcome"] == "accepted"
    assert completed[0]["stop_reason"] == "driver_stopped"
    await harness.close(station)


async def test_21_a_guests_session_starts_as_a_direct_payment_for_that_session_only(  # type: ignore[no-untyped-def]
    harness,
) -> None:
    """A guest's card checkout is started with idToken type DirectPayment (the session's own
    tag) and the limits the card hold bought; the station's DirectPayment token is accepted
    for that session and refused for any other (an account's session, another tag)."""
    await harness.start_gateway()
    await harness.register("EV-21G")
    station = await harness.connect("EV-21G", "2.1")
    await boot201(station)

    async def code(connector_id: int) -> str:
        reply = await request_code201(station, connector_id)
        return str(reply.data["session_id"])

    guest_session, driver_session = await code(1), await code(2)
    limits = SessionLimits(max_energy_wh=8_000, max_cost=Money(amount_minor=5_000, currency="EUR"))
    await harness.authorize(guest_session, "EV-21G", 1, limits=limits, guest=True)
    await harness.authorize(driver_session, "EV-21G", 2, limits=limits)
    starts = await harness.eventually(
        lambda: (
            len(station.got("RequestStartTransaction")) == 2
            and {s["evse_id"]: s for s in station.got("RequestStartTransaction")}
        )
    )
    guest_token, driver_token = starts[1]["id_token"], starts[2]["id_token"]
    assert guest_token["type"] == "DirectPayment" and driver_token["type"] == "Central"
    assert guest_token["id_token"] != driver_token["id_token"]
    t0 = datetime.now(UTC) - timedelta(minutes=5)

    async def started(evse: int, tx: str, id_token: dict) -> Any:  # type: ignore[type-arg]
        return await start_transaction201(
            station, starts[evse], tx, t0, 10_000, evse=evse, id_token=id_token
        )

    # The account's session named by a DirectPayment token (its own tag, or the guest's): no.
    for forged in ({**driver_token, "type": "DirectPayment"}, guest_token):
        refused = await started(2, "tx-21-driver", forged)
        assert refused.id_token_info == {"status": "Invalid"}
        assert refused.transaction_limit is None
    assert (await started(2, "tx-21-driver", driver_token)).id_token_info["status"] == "Accepted"
    # The guest's own token starts the guest's session, with the limits its card hold bought.
    answer = await started(1, "tx-21-guest", guest_token)
    assert answer.id_token_info == {"status": "Accepted"}
    assert answer.transaction_limit == {"max_cost": 50.0, "max_energy": 8_000}
    charging = await harness.wait_event("ChargingStarted", count=2)
    assert {c["transaction_id"]: c["session_id"] for c in charging} == {
        "tx-21-guest": guest_session,
        "tx-21-driver": driver_session,
    }
    # A DirectPayment card at the reader is the guest's session's only.
    assert (await station.call(call.Authorize(id_token=guest_token))).id_token_info[
        "status"
    ] == "Accepted"
    wrong = {**driver_token, "type": "DirectPayment"}
    assert (await station.call(call.Authorize(id_token=wrong))).id_token_info["status"] == "Invalid"
    await harness.close(station)


async def test_21_nothing_but_a_boot_before_the_boot(harness) -> None:  # type: ignore[no-untyped-def]
    """2.1 B02/B03 as 2.0.1: before the boot was accepted every call, a Heartbeat included, is
    answered SecurityError; after it the same Heartbeat is answered."""
    process = await harness.start_gateway()
    await harness.register("EV-21B")
    ws = await websockets.connect(
        f"{process.ws}/EV-21B",
        subprotocols=["ocpp2.1"],  # type: ignore[list-item]
        additional_headers={"Authorization": basic("EV-21B")},
    )

    async def exchange(frame: list) -> list:  # type: ignore[type-arg]
        await ws.send(json.dumps(frame))
        return list(json.loads(await asyncio.wait_for(ws.recv(), 5)))

    assert (await exchange([2, "h1", "Heartbeat", {}]))[:3] == [4, "h1", "SecurityError"]
    status = {
        "timestamp": iso(datetime.now(UTC)),
        "connectorStatus": "Available",
        "evseId": 1,
        "connectorId": 1,
    }
    answer = await exchange([2, "s1", "StatusNotification", status])
    assert answer[:3] == [4, "s1", "SecurityError"]
    boot = {"chargingStation": {"model": "M", "vendorName": "A"}, "reason": "PowerUp"}
    booted = await exchange([2, "b1", "BootNotification", boot])
    assert booted[0] == 3 and booted[2]["status"] == "Accepted"
    await ws.send(json.dumps([2, "h2", "Heartbeat", {}]))
    while True:
        frame = list(json.loads(await asyncio.wait_for(ws.recv(), 5)))
        if frame[0] != 2:
            break
        # Once booted, the back office may call first (it provisions WebPaymentsCtrlr).
        assert frame[2] == "SetVariables", frame
        results = [
            {"attributeStatus": "Accepted", "component": d["component"], "variable": d["variable"]}
            for d in frame[3]["setVariableData"]
        ]
        await ws.send(json.dumps([3, frame[1], {"setVariableResult": results}]))
    assert frame[:2] == [3, "h2"]
    await ws.close()


async def test_21_a_transaction_started_after_the_start_deadline_is_invalid(  # type: ignore[no-untyped-def]
    harness,
) -> None:
    """The gateway's start deadline holds for 2.1 too: a late Started is answered Invalid
    (no limit for a transaction that may not run) and the session given up once."""
    await harness.start_gateway(presence_sweep_s=3600)  # no sweep: the start itself decides
    await harness.register("EV-21L")
    station = await harness.connect("EV-21L", "2.1")
    await boot201(station)
    reply = await request_code201(station)
    session_id = reply.data["session_id"]
    past = datetime.now(UTC) - timedelta(seconds=1)  # passed while the start was on its way
    limits = SessionLimits(max_energy_wh=10_000)
    await harness.authorize(session_id, "EV-21L", limits=limits, start_deadline=past)
    [start] = await harness.eventually(lambda: station.got("RequestStartTransaction"))
    now = datetime.now(UTC)
    late = await start_transaction201(station, start, "tx-21l", now, 50_000)
    assert late.id_token_info["status"] == "Invalid" and late.transaction_limit is None
    [abandoned] = await harness.wait_event("SessionAbandoned")
    assert (abandoned["session_id"], abandoned["reason"]) == (session_id, "start_timeout")
    assert not [e for e in await harness.events() if e.type == "ChargingStarted"]
    assert not station.got("ChangeTransactionTariff")
    await harness.close(station)


async def test_21_final_cost_is_capped_by_the_hold(harness) -> None:  # type: ignore[no-untyped-def]
    """A station metering more than the payer agreed to pay is told the capped cost, in the
    Ended answer and in the CostUpdated after pricing-svc's figure: what billing charges."""
    await harness.start_gateway()
    await harness.register("EV-21C")
    station = await harness.connect("EV-21C", "2.1")
    await boot201(station)
    reply = await request_code201(station)
    session_id = reply.data["session_id"]
    await harness.authorize(session_id, "EV-21C", hold_minor=100)
    [start] = await harness.eventually(lambda: station.got("RequestStartTransaction"))
    t0 = datetime.now(UTC) - timedelta(minutes=40)
    await start_transaction201(station, start, "tx-21c", t0, 10_000)
    ended = transaction_ended201(
        station,
        "tx-21c",
        1,
        meter201(t0 + timedelta(minutes=30), 15_000, "Transaction.End"),
        trigger_reason="EVCommunicationLost",
        stopped_reason="EVDisconnected",
    )
    # 5 kWh at 0.40 EUR is 2.00 EUR; the payer agreed to at most 1.00 EUR.
    assert (await station.call(ended)).total_cost == pytest.approx(1.0)
    completed = await harness.wait_event("SessionCompleted")
    assert completed[0]["energy_wh"] == 5_000
    await harness.publish(
        SessionCostCalculated(
            session_id=uuid.UUID(session_id),
            user_id=uuid.uuid4(),
            station_id="EV-21C",
            total=Money(amount_minor=200, currency="EUR"),
            breakdown=calculate_cost(
                TARIFF,
                SessionUsage.linear(t0, 5_000, t0 + timedelta(minutes=30)),
                "Europe/Berlin",
            ),
            calculated_at=datetime.now(UTC),
        )
    )
    costs = await harness.eventually(lambda: station.got("CostUpdated"))
    assert costs[0] == {"total_cost": 1.0, "transaction_id": "tx-21c"}
    # A repeated Ended after pricing-svc's figure: the same capped cost.
    assert (await station.call(ended)).total_cost == pytest.approx(1.0)
    await harness.close(station)


async def test_21_a_free_session_is_told_it_costs_nothing(harness) -> None:  # type: ignore[no-untyped-def]
    """Free of charge (the station's access policy): 0.00 at the end, as OCPP asks (an absent
    totalCost would not mean free), nothing running, and no tariff sent to the station."""
    await harness.start_gateway()
    await harness.register("EV-21F")
    station = await harness.connect("EV-21F", "2.1")
    await boot201(station)
    reply = await request_code201(station)
    await harness.authorize(reply.data["session_id"], "EV-21F", free_of_charge=True)
    [start] = await harness.eventually(lambda: station.got("RequestStartTransaction"))
    t0 = datetime.now(UTC) - timedelta(minutes=10)

    def event(kind: str, seq: int, minutes: int, wh: int, **info: str) -> call.TransactionEvent:
        return call.TransactionEvent(
            event_type=kind,
            timestamp=iso(t0 + timedelta(minutes=minutes)),
            trigger_reason="RemoteStart" if kind == "Started" else "MeterValuePeriodic",
            seq_no=seq,
            transaction_info={"transaction_id": "tx-21f", **info},
            meter_value=meter201(t0 + timedelta(minutes=minutes), wh),
            **({"id_token": start["id_token"]} if kind == "Started" else {}),
        )

    await station.call(event("Started", 0, 0, 1_000, remote_start_id=start["remote_start_id"]))
    updated = await station.call(event("Updated", 1, 2, 1_500))
    assert updated.updated_personal_message["content"] == "Cost so far: 0.00 EUR"
    ended = await station.call(event("Ended", 2, 4, 2_000, stopped_reason="EVDisconnected"))
    assert ended.total_cost == 0.0
    await harness.wait_event("SessionCompleted")
    assert not station.got("ChangeTransactionTariff")
    await harness.close(station)
