"""OCPP 2.1 C25, ad hoc payment by a station's dynamic QR code: the back office provisions the
station's WebPaymentsCtrlr at boot, the landing URL's TOTP is checked (valid, stale, forged),
and a valid one holds the connector for the payer and leads to its ordinary session code."""

from __future__ import annotations

import time
from urllib.parse import urlsplit

import httpx
import pytest
from station_gateway.repository import Repository

from ..harness_station import ORG, boot201, request_code201, station_totp

pytestmark = pytest.mark.infra


def fill(template: str, station_id: str, evse: int, totp: str) -> str:
    path = urlsplit(template).path
    return (
        path.replace("{chargingStationId}", station_id)
        .replace("{evse}", str(evse))
        .replace("{totp}", totp)
    )


async def test_dynamic_code_valid_stale_forged(harness) -> None:  # type: ignore[no-untyped-def]
    process = await harness.start_gateway(web_payment_timeout_s=120)
    await harness.register("EV-WP")
    station = await harness.connect("EV-WP", "2.1")
    await boot201(station)
    [provisioned] = await harness.eventually(lambda: station.got("SetVariables"))
    variables = {
        item["variable"]["name"]: item["attribute_value"]
        for item in provisioned["set_variable_data"]
        if item["component"]["name"] == "WebPaymentsCtrlr"
    }
    assert variables["Enabled"] == "true"
    secret, validity, length = (
        variables["SharedSecret"],
        int(variables["ValidityTime"]),
        int(variables["Length"]),
    )
    assert len(secret) >= 32 and validity == 60 and length == 10

    async with httpx.AsyncClient(base_url=process.http) as web:

        async def land(totp: str) -> httpx.Response:
            # The gateway marks the station provisioned after its SetVariables answer.
            return await web.get(fill(variables["URLTemplate"], "EV-WP", 1, totp))

        async def codes_issued() -> int:
            # The gateway's own rows: written in the request's transaction, unlike the bus.
            async with harness.db.read() as session:
                return len(await Repository(session).latest_sessions("EV-WP"))

        now = int(time.time())
        stale = await harness.eventually(
            lambda: _refused(land(station_totp(secret, now - 3 * validity, validity, length)))
        )
        assert stale.json()["reason"] == "code_invalid"
        forged = await land(station_totp("not-the-stations-secret-at-all!!", now, validity, length))
        assert forged.status_code == 404 and forged.json()["reason"] == "code_invalid"
        assert (await land("short")).status_code == 404
        assert await codes_issued() == 0  # nothing issued, held or started for a bad code
        assert not station.got("NotifyWebPaymentStarted")

        # The previous step is still accepted (a scan at the turn of a step).
        valid = await land(station_totp(secret, int(time.time()) - validity, validity, length))
        assert valid.status_code == 303, valid.text
        assert valid.headers["location"].startswith(
            f"{harness.settings().platform.public_base_url.rstrip('/')}/s/"
        )
        [issued] = await harness.wait_event("SessionCodeIssued")
        assert issued["qr_url"] == valid.headers["location"] and issued["connector_id"] == 1
        [lock] = await harness.eventually(lambda: station.got("NotifyWebPaymentStarted"))
        assert lock == {"evse_id": 1, "timeout": 120}

        # The same payer reloading gets the same code; the station gets no other one meanwhile.
        again = await land(station_totp(secret, int(time.time()), validity, length))
        assert again.headers["location"] == valid.headers["location"]
        refused = await request_code201(station)
        assert refused.status == "Rejected"
        assert refused.data["reason"] == "web_payment_in_progress"
        other = await request_code201(station, 2)
        assert other.status == "Accepted"  # the other connector is free

        # Once the payer's session is authorised, the hold is over (the connector is busy anyway).
        await harness.authorize(issued["session_id"], "EV-WP")
        await harness.eventually(lambda: station.got("RequestStartTransaction"))
    await harness.close(station)


async def _refused(response):  # type: ignore[no-untyped-def]
    answer = await response
    return answer if answer.status_code == 404 else None


async def test_wrong_codes_from_one_address_are_throttled(harness) -> None:  # type: ignore[no-untyped-def]
    process = await harness.start_gateway()
    await harness.register("EV-WT")
    station = await harness.connect("EV-WT", "2.1")
    await boot201(station)
    [provisioned] = await harness.eventually(lambda: station.got("SetVariables"))
    variables = {
        i["variable"]["name"]: i["attribute_value"] for i in provisioned["set_variable_data"]
    }
    path = fill(variables["URLTemplate"], "EV-WT", 1, "{totp}")
    async with httpx.AsyncClient(base_url=process.http) as web:
        answers = [
            (await web.get(path.replace("{totp}", f"wrongcode{i}"))).status_code for i in range(12)
        ]
        assert answers == [404] * 11 + [429]  # ten free, the eleventh sets the wait
        right = station_totp(
            variables["SharedSecret"],
            int(time.time()),
            int(variables["ValidityTime"]),
            int(variables["Length"]),
        )
        blocked = await web.get(path.replace("{totp}", right))
        assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) > 0
        assert blocked.json()["reason"] == "too_many_attempts"
    await harness.close(station)


async def test_operators_cannot_read_or_change_the_shared_secret(harness) -> None:  # type: ignore[no-untyped-def]
    process = await harness.start_gateway()
    await harness.register("EV-WS")
    station = await harness.connect("EV-WS", "2.1")
    await boot201(station)
    await harness.eventually(lambda: station.got("SetVariables"))
    operator = harness.tokens.headers(roles=("operator",), organisation_id=ORG)
    secret = {"component": {"name": "WebPaymentsCtrlr"}, "variable": {"name": "SharedSecret"}}
    async with httpx.AsyncClient(base_url=process.http) as client:
        for action, payload in (
            ("GetVariables", {"get_variable_data": [secret]}),
            ("SetVariables", {"set_variable_data": [{**secret, "attribute_value": "mine"}]}),
        ):
            created = await client.post(
                "/stations/EV-WS/commands",
                json={"action": action, "payload": payload},
                headers=operator,
            )
            assert created.status_code == 202, created.text
            command_id = created.json()["command_id"]

            async def answered(command_id: int = command_id):  # type: ignore[no-untyped-def]
                r = await client.get(f"/stations/EV-WS/commands/{command_id}", headers=operator)
                return r.json() if r.json()["done"] else None

            status = await harness.eventually(answered)
            assert "shared secret" in status["result"]["error"]
    assert len(station.got("SetVariables")) == 1  # only the back office's own, at boot
    await harness.close(station)
