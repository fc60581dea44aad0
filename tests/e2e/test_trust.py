"""A charger that lies about its meter, through the whole product: the gateway holds the
session, the driver pays only the plausible part, the operator's revenue shows it as pending,
the review list shows the evidence, and the operator's decision moves exactly the money it
states (never above what the driver authorised)."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from e2e_support import FLOW_TIMEOUT_S, World, eventually

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.mark.parametrize("ocpp_version", ["1.6", "2.0.1"])
async def test_a_lying_meter_is_held_and_the_operator_decides(
    world: World, ocpp_version: str
) -> None:
    driver = await world.driver(wallet_minor=2_000)
    station = await world.station(ocpp_version=ocpp_version)
    session_id = await world.scan(driver.phone, (await station.request_code(1))["qr"])
    world.scope.lying.add(session_id)
    charging = await world.wait(driver.phone, session_id, {"charging"})
    authorised_max = charging["hold_amount"]["amount_minor"]
    tx = station.transactions[1]
    await eventually(
        lambda: asyncio.sleep(0, tx.meter_wh > tx.meter_start_wh),
        within=FLOW_TIMEOUT_S,
        what="energy flows",
    )
    tx.meter_wh += 10_000_000  # 10 MWh in one meter interval
    station.registers[tx.connector_id] = tx.meter_wh
    await station.send_meter_values(tx)
    await station.unplug(1)
    final = await world.wait(driver.phone, session_id, {"billed"})
    billed = final["cost"]["total"]["amount_minor"]
    assert final["energy_wh"] < 10_000, final["energy_wh"]  # the plausible part only
    assert billed <= authorised_max
    balance = (await driver.phone.account())["balance"]["amount_minor"]
    assert balance == 2_000 - billed

    operator = await world.operator_token()

    async def listed() -> dict[str, object] | None:
        reviews = await world.call("GET", "/billing/operator/reviews", token=operator)
        mine = [r for r in reviews if r["session_id"] == str(session_id)]
        return mine[0] if mine and mine[0]["billed_total"] is not None else None

    review = await eventually(listed, within=FLOW_TIMEOUT_S, what="the session needs review")
    judgement = review["judgement"]
    assert isinstance(judgement, dict)
    assert judgement["outcome"] == "held" and "register_jump" in judgement["reasons"]
    assert judgement["claimed"]["energy_wh"] >= 10_000_000
    assert review["billed_total"] == {"amount_minor": billed, "currency": "EUR"}
    assert review["authorised_max"] == {"amount_minor": authorised_max, "currency": "EUR"}
    revenue = await world.call("GET", "/billing/operator/revenue", token=operator)
    [station_row] = [r for r in revenue["stations"] if r["station_id"] == station.station_id]
    assert station_row["pending_review_sessions"] == 1 and station_row["sessions"] == 0

    path = f"/billing/operator/reviews/{session_id}"
    too_much = {
        "decision": "approve",
        "amount": {"amount_minor": authorised_max + 1, "currency": "EUR"},
    }
    refused = await world.call(
        "POST",
        path,
        token=operator,
        json=too_much,
        headers={"Idempotency-Key": uuid.uuid4().hex},
        expect=(422,),
    )
    assert refused["reason"] == "above_authorised_max"
    approved_total = min(billed + 150, authorised_max)
    decided = await world.call(
        "POST",
        path,
        token=operator,
        json={
            "decision": "approve",
            "amount": {"amount_minor": approved_total, "currency": "EUR"},
            "note": "e2e: the meter was checked",
        },
        headers={"Idempotency-Key": uuid.uuid4().hex},
    )
    assert decided["status"] == "approved"
    assert decided["charged"]["amount_minor"] == approved_total - billed
    after = (await driver.phone.account())["balance"]["amount_minor"]
    assert after == 2_000 - approved_total  # exactly the stated total, from the wallet
    receipt = await world.call("GET", f"/billing/receipts/{session_id}", token=operator)
    assert receipt["total_incl_vat"]["amount_minor"] == approved_total
    assert receipt["review"] == "approved"
    revenue = await world.call("GET", "/billing/operator/revenue", token=operator)
    [station_row] = [r for r in revenue["stations"] if r["station_id"] == station.station_id]
    assert station_row["pending_review_sessions"] == 0 and station_row["sessions"] == 1
    assert station_row["total_incl_vat"]["amount_minor"] == approved_total
