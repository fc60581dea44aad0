"""OCPP 2.0.1 against a real uvicorn server, driven by the ``ocpp`` library as a station."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from plugpay_events.contracts.sessions import (
    SessionCostCalculated,
    SessionDenied,
)
from plugpay_events.topics import METER
from plugpay_events.types import Money
from plugpay_tariffs import SessionUsage, calculate_cost

from ..harness_station import (
    TARIFF,
    boot201,
    charging_update201,
    code_on_display201,
    meter201,
    request_code201,
    start_transaction201,
    transaction_ended201,
)

pytestmark = pytest.mark.infra


async def test_201_code_start_meter_stop_cost(harness) -> None:  # type: ignore[no-untyped-def]
    await harness.start_gateway()
    await harness.register("EV-1")
    station = await harness.connect("EV-1", "2.0.1")
    booted = await boot201(station, "M2", "Acme")
    assert booted.status == "Accepted"
    session_id = (await code_on_display201(harness, station))["session_id"]

    await harness.authorize(session_id, "EV-1")
    starts = await harness.eventually(lambda: station.got("RequestStartTransaction"))
    assert starts[0]["evse_id"] == 1 and starts[0]["id_token"]["type"] == "Central"

    t0 = datetime.now(UTC) - timedelta(minutes=5)
    started = await start_transaction201(station, starts[0], "tx-201", t0, 50_000)
    assert started.id_token_info["status"] == "Accepted" and started.total_cost is None
    charging = await harness.wait_event("ChargingStarted")
    assert charging[0]["transaction_id"] == "tx-201" and charging[0]["meter_start_wh"] == 50_000

    updated = await charging_update201(
        station, "tx-201", 1, meter201(t0 + timedelta(minutes=2), 50_500)
    )
    # totalCost is the final cost (only in the Ended answer); the running cost from the tariff
    # snapshot (0.5 kWh at 0.40 EUR) is the driver's personal message.
    assert updated.total_cost is None
    assert updated.updated_personal_message == {
        "format": "ASCII",
        "content": "Cost so far: 0.20 EUR",
    }
    await harness.wait_event("MeterValuesReported", topic=METER)

    await harness.request_stop(session_id)
    stops = await harness.eventually(lambda: station.got("RequestStopTransaction"))
    assert stops[0]["transaction_id"] == "tx-201"
    ended = transaction_ended201(
        station,
        "tx-201",
        2,
        meter201(t0 + timedelta(minutes=3), 50_600, "Transaction.End"),
        trigger_reason="RemoteStop",
        stopped_reason="Remote",
    )
    answers = [await station.call(ended), await station.call(ended)]
    # The final cost from the same snapshot and judged meter values as pricing-svc's, also
    # when the station repeats its Ended.
    assert [a.total_cost for a in answers] == [pytest.approx(0.24), pytest.approx(0.24)]
    completed = await harness.wait_event("SessionCompleted")
    assert completed[0]["energy_wh"] == 600
    assert completed[0]["judgement"]["outcome"] == "accepted"
    assert completed[0]["stop_reason"] == "driver_stopped"
    assert len([e for e in await harness.events() if e.type == "SessionCompleted"]) == 1

    # pricing-svc's final cost reaches the station as CostUpdated.
    usage = SessionUsage.linear(t0, 600, t0 + timedelta(minutes=3))
    breakdown = calculate_cost(TARIFF, usage, "Europe/Berlin")
    await harness.publish(
        SessionCostCalculated(
            session_id=uuid.UUID(session_id),
            user_id=uuid.uuid4(),
            station_id="EV-1",
            total=Money(amount_minor=breakdown.total_incl_vat, currency="EUR"),
            breakdown=breakdown,
            calculated_at=datetime.now(UTC),
        )
    )
    costs = await harness.eventually(lambda: station.got("CostUpdated"))
    assert costs[0] == {"total_cost": 0.24, "transaction_id": "tx-201"}
    await harness.close(station)


async def test_201_a_transaction_started_after_the_start_deadline_is_invalid(  # type: ignore[no-untyped-def]
    harness,
) -> None:
    await harness.start_gateway(presence_sweep_s=3600)  # no sweep: the start itself decides
    await harness.register("EV-9")
    station = await harness.connect("EV-9", "2.0.1")
    await boot201(station, "M2", "Acme")
    reply = await request_code201(station)
    session_id = reply.data["session_id"]
    past = datetime.now(UTC) - timedelta(seconds=1)  # passed while the start was on its way
    await harness.authorize(session_id, "EV-9", start_deadline=past)
    starts = await harness.eventually(lambda: station.got("RequestStartTransaction"))
    now = datetime.now(UTC)
    late = await start_transaction201(station, starts[0], "tx-late", now, 50_000)
    assert late.id_token_info["status"] == "Invalid"
    [abandoned] = await harness.wait_event("SessionAbandoned")
    assert (abandoned["session_id"], abandoned["reason"]) == (session_id, "start_timeout")
    assert not [e for e in await harness.events() if e.type == "ChargingStarted"]
    await harness.close(station)


async def test_a_message_the_station_never_answers_holds_up_no_start(  # type: ignore[no-untyped-def]
    harness, caplog
) -> None:
    """A third-party 2.0.1 station that never answers a display message: the next driver's
    start goes out after the short informational wait, not the 30 s call timeout, and the
    dropped message is logged quietly (no ERROR, no traceback)."""
    await harness.start_gateway(ocpp_response_timeout_s=30.0, informational_timeout_s=1.0)
    await harness.register("EV-9", connectors=2)
    station = await harness.connect("EV-9", "2.0.1")

    class SilentOnDenials(type(station)):  # type: ignore[misc]
        async def route_message(self, raw_msg: str) -> None:
            if "Not authorised" in raw_msg:
                self.inbox.append(("Unanswered", {"raw": raw_msg}))
                return  # never answered
            await super().route_message(raw_msg)

    station.__class__ = SilentOnDenials
    await boot201(station, "M2", "Acme")

    async def code(connector: int) -> str:
        reply = await request_code201(station, connector)
        return str(reply.data["session_id"])

    refused = await code(1)
    await harness.publish(
        SessionDenied(
            session_id=uuid.UUID(refused),
            station_id="EV-9",
            connector_id=1,
            reason="insufficient_funds",
            message="your balance is too low",
            denied_by="billing",
            denied_at=datetime.now(UTC),
        )
    )
    [unanswered] = await harness.eventually(lambda: station.got("Unanswered"))
    # The charger's screen is shared: the denial shows neutrally, never the driver's balance.
    assert "balance" not in unanswered["raw"] and "phone" in unanswered["raw"]
    caplog.clear()
    next_driver = await code(2)
    await harness.authorize(next_driver, "EV-9", connector_id=2)
    loop = asyncio.get_running_loop()
    asked = loop.time()
    await harness.eventually(lambda: station.got("RequestStartTransaction"), within=10)
    assert loop.time() - asked < 10  # the 30 s response timeout did not apply
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR and r.exc_info]
    await harness.close(station)


async def test_a_station_refusing_the_qr_format_still_shows_the_typed_code(  # type: ignore[no-untyped-def]
    harness,
) -> None:
    await harness.start_gateway()
    await harness.register("EV-TXT")
    station = await harness.connect("EV-TXT", "2.0.1")

    class TextOnly(type(station)):  # type: ignore[misc]
        async def route_message(self, raw_msg: str) -> None:
            frame = json.loads(raw_msg)
            qr = (
                frame[0] == 2
                and frame[2] == "SetDisplayMessage"
                and frame[3]["message"]["message"]["format"] == "URI"
            )
            if qr:
                self.inbox.append(("RefusedURI", {}))
                await self._send(json.dumps([3, frame[1], {"status": "NotSupportedMessageFormat"}]))
                return
            await super().route_message(raw_msg)

    station.__class__ = TextOnly
    await boot201(station, "M2", "Acme")
    reply = await request_code201(station)
    shown = await harness.eventually(lambda: station.got("SetDisplayMessage"))
    assert station.got("RefusedURI")
    text = shown[0]["message"]
    assert text["format"] == "ASCII" and reply.data["code"] in text["content"]
    assert "Plugpay app" in text["content"]
    await harness.close(station)
