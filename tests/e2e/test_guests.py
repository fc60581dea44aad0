"""A guest (EU ad hoc charging, no account) pays by card and charges on 1.6, 2.0.1 and 2.1
stations, through the same services as a driver: guest token for the code, one card, the scan,
the card pre-authorisation, the remote start, (2.x) TransactionEvent Started/Updated/Ended,
exactly the cost captured and the rest released. On 2.1 also from the station's dynamic C25
code: the landing page checks the TOTP (computed here from the spec, independently of the
gateway's code)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
import uuid
from typing import Any

import httpx
import pytest
from e2e_support import FLOW_TIMEOUT_S, SETUP_TIMEOUT_S, World, eventually
from plugpay_simulator.driver import DriverClient
from plugpay_simulator.stations import SimulatedStation

pytestmark = pytest.mark.asyncio(loop_scope="session")

BASE62 = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def totp_v1(secret: str, unix_seconds: int, validity_s: int, length: int) -> str:
    """OCPP 2.1's TOTP v1 (C25, not RFC 6238): HMAC-SHA256 keyed with the shared secret over
    the 8-byte big-endian time step, ``length`` bytes read from the offset (wrapping), each
    mapped to base62."""
    step = (unix_seconds // validity_s).to_bytes(8, "big")
    digest = hmac.new(secret.encode(), step, hashlib.sha256).digest()
    offset = digest[-1] & 0x0F
    return "".join(BASE62[digest[(offset + i) % len(digest)] % 62] for i in range(length))


async def charge_as_guest(
    world: World, station: SimulatedStation, qr: str
) -> tuple[uuid.UUID, DriverClient, dict[str, Any]]:
    """Guest token for ``qr``, one card, the scan, charging with energy flowing, the unplug;
    returns the billed session as the guest's phone reads it."""
    phone = await world.guest(qr)
    starts_before = station.start_requests
    session_id = await world.scan(phone, qr)
    await world.wait(phone, session_id, {"charging"})
    assert station.start_requests == starts_before + 1
    tx = station.transactions[1]
    await eventually(
        lambda: asyncio.sleep(
            0,
            tx.meter_wh > tx.meter_start_wh
            and (
                station.ocpp_version == "1.6"
                or any(kind == "Updated" for kind, _ in station.transaction_answers)
            ),
        ),
        within=FLOW_TIMEOUT_S,
        what="energy reported (2.x: a TransactionEvent Updated)",
    )
    await station.unplug(1)
    return session_id, phone, await world.wait(phone, session_id, {"billed"})


async def assert_exactly_the_cost_captured(
    world: World, station: SimulatedStation, session_id: uuid.UUID, phone: DriverClient
) -> dict[str, Any]:
    """The receipt charges the card the session's cost; billing captured exactly that at the
    processor (once, no cancel), the ledger hold was posted for that and released the rest; the
    2.x station heard the same final cost in its Ended answer. Returns the Started answer."""
    receipt = await phone.receipt(session_id)
    charged = receipt["charged"]["amount_minor"]
    assert charged == receipt["total_incl_vat"]["amount_minor"] > 0, receipt
    assert receipt["funding_split"]["card"] == receipt["charged"], receipt
    billing = await world.pool("billing")
    async with billing.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT funding, hold_amount, max_cost FROM billing_sessions WHERE session_id = $1",
            session_id,
        )
        operations = await conn.fetch(
            "SELECT kind, status, params, outcome FROM processor_operations WHERE reference = $1",
            str(session_id),
        )
        hold = await conn.fetchval(
            "SELECT amount FROM transfers WHERE kind = 'pending' AND reference = $1",
            str(session_id),
        )
        posted = await conn.fetchval(
            "SELECT t.amount FROM transfers t JOIN transfers p ON t.pending_id = p.id"
            " WHERE p.reference = $1 AND t.kind = 'post_pending'",
            str(session_id),
        )
    assert row["funding"] == "card" and row["hold_amount"] > charged, dict(row)
    assert hold == row["hold_amount"]
    [capture] = operations
    params, outcome = json.loads(capture["params"]), json.loads(capture["outcome"])
    assert (capture["kind"], capture["status"]) == ("capture", "succeeded")
    assert params["amount"] == outcome["amount"] == charged
    assert posted == charged  # the partial post releases the rest of the hold
    if station.ocpp_version == "1.6":
        return {"hold_minor": row["hold_amount"]}
    answers = dict(station.transaction_answers)
    ended = answers["Ended"]
    assert round(ended.total_cost * 100) == charged, ended
    started = answers["Started"]
    assert started.id_token_info == {"status": "Accepted"}
    return {"started": started, "hold_minor": row["hold_amount"]}


@pytest.mark.parametrize("ocpp_version", ["1.6", "2.0.1", "2.1"])
async def test_a_guest_pays_by_card_and_charges(world: World, ocpp_version: str) -> None:
    station = await world.station(ocpp_version=ocpp_version)
    code = await station.request_code(1)
    session_id, phone, final = await charge_as_guest(world, station, code["qr"])
    assert final["status"] == "billed"
    seen = await assert_exactly_the_cost_captured(world, station, session_id, phone)
    if ocpp_version == "1.6":
        return  # 1.6 has no idToken types, limits or cost in its answers
    started = seen["started"]
    # a guest's card checkout is a DirectPayment on 2.1 (the session's own tag, echoed by the
    # station in its Started event and accepted); 2.0.1 has no such type: Central
    token = station.start_id_tokens[1]
    assert token["type"] == ("DirectPayment" if ocpp_version == "2.1" else "Central")
    assert token["id_token"].startswith("PP")
    if ocpp_version == "2.1":
        # the limits the hold buys go with the start; the most it may cost is the hold
        limit = started.transaction_limit
        assert round(limit["max_cost"] * 100) == seen["hold_minor"], limit
        assert limit["max_energy"] > 0 and limit["max_time"] > 0, limit
    else:
        assert getattr(started, "transaction_limit", None) is None
    # the running cost is never a totalCost before the end
    assert all(
        getattr(answer, "total_cost", None) is None
        for kind, answer in station.transaction_answers
        if kind != "Ended"
    )


async def test_a_guest_pays_from_a_2_1_stations_dynamic_code(world: World) -> None:
    station = await world.station(ocpp_version="2.1")
    await eventually(
        lambda: asyncio.sleep(0, "WebPaymentsCtrlr.SharedSecret" in station.variables or None),
        within=SETUP_TIMEOUT_S,
        what="the station's WebPaymentsCtrlr provisioned",
    )
    settings = {k.split(".", 1)[1]: v for k, v in station.variables.items() if "WebPayments" in k}
    assert settings["Enabled"] == "true"
    secret, validity, length = (
        settings["SharedSecret"],
        int(settings["ValidityTime"]),
        int(settings["Length"]),
    )

    def landing(totp: str) -> str:
        return (
            settings["URLTemplate"]
            .replace("{chargingStationId}", station.station_id)
            .replace("{evse}", "1")
            .replace("{totp}", totp)
        )

    async with httpx.AsyncClient(timeout=30.0) as web:
        # A code from two steps ago and one made with another secret start nothing.
        now = int(time.time())
        for wrong in (
            totp_v1(secret, now - 3 * validity, validity, length),
            totp_v1("another-secret-another-secret-32", now, validity, length),
        ):
            refused = await web.get(landing(wrong), follow_redirects=False)
            assert (refused.status_code, refused.json()["reason"]) == (404, "code_invalid")
        assert station.web_payments == []
        # The station's code of the previous step is still good (±1 step).
        landed = await web.get(
            landing(totp_v1(secret, int(time.time()) - validity, validity, length)),
            follow_redirects=False,
        )
    assert landed.status_code == 303, landed.text
    qr = str(landed.url.join(landed.headers["location"]))
    assert "/s/" in qr
    # The station locks the EVSE while the guest pays.
    await eventually(
        lambda: asyncio.sleep(0, station.web_payments or None),
        within=SETUP_TIMEOUT_S,
        what="NotifyWebPaymentStarted",
    )
    assert station.web_payments[0]["evse_id"] == 1
    # The station claims its own cost (2.1 CostDetails, above the hold): accepted, never billed.
    station.claimed_cost_details = {
        "total_cost": {
            "currency": "EUR",
            "type_of_cost": "NormalCost",
            "total": {"incl_tax": 999.0},
        },
        "total_usage": {"energy": 1, "charging_time": 1, "idle_time": 0},
    }
    session_id, phone, final = await charge_as_guest(world, station, qr)
    assert final["status"] == "billed"
    assert station.start_id_tokens[1]["type"] == "DirectPayment"
    await assert_exactly_the_cost_captured(world, station, session_id, phone)
    # what was captured is the tariff over the metered energy (0.30 EUR/kWh + 0.50 EUR)
    tx = station.transactions[1]
    expected = 50 + (tx.meter_wh - tx.meter_start_wh) * 0.30 / 10
    charged = (await phone.receipt(session_id))["charged"]["amount_minor"]
    assert abs(charged - expected) <= 1, (charged, expected)
