"""Station sign-ins (OCPP handshake and display page): failed guesses are throttled with
back-off, an unknown id takes as long to refuse as a registered one, and a refusal is
expected traffic, not an ERROR line."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import websockets
from ocpp.v16 import call
from plugpay_testing import eventually
from station_gateway.credentials import StationAuthRefused
from station_gateway.repository import Repository

from ..harness_station import PASSWORD, basic, boot16, request_code16

pytestmark = pytest.mark.infra


class Clock:
    """A clock the test moves (no sleeping through back-off windows)."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


async def handshake(gw, station_id: str, password: str) -> tuple[int, dict]:  # type: ignore[no-untyped-def]
    """The handshake's status, and for a refusal its body and Retry-After."""
    try:
        async with websockets.connect(
            f"{gw.ws}/{station_id}",
            subprotocols=["ocpp1.6"],  # type: ignore[list-item]
            additional_headers={"Authorization": basic(station_id, password)},
        ):
            return 101, {}
    except websockets.InvalidStatus as refused:
        response = refused.response
        body = json.loads(response.body or b"{}")
        return response.status_code, body | {"retry_after": response.headers.get("Retry-After")}


async def test_guesses_at_the_handshake_and_the_display_back_off(harness, caplog) -> None:  # type: ignore[no-untyped-def]
    gw = await harness.start_gateway()
    clock = Clock()
    gw.app.state.gateway.credentials.clock = clock
    await harness.register("TH-1")
    caplog.set_level(logging.INFO)
    for i in range(5):
        status, body = await handshake(gw, "TH-1", f"guess-{i}")
        assert (status, body["reason"]) == (401, "unauthenticated"), body
    # The display page counts against the same (station, address).
    async with httpx.AsyncClient(base_url=gw.http) as http:
        page = await http.get("/stations/TH-1/display", auth=("TH-1", "guess-5"))
        assert (page.status_code, page.json()["reason"]) == (401, "unauthenticated")
        # Now blocked: even the right password waits, with a Retry-After.
        status, body = await handshake(gw, "TH-1", PASSWORD)
        assert (status, body["reason"]) == (429, "too_many_attempts"), body
        assert int(body["retry_after"]) >= 1
        page = await http.get("/stations/TH-1/display", auth=("TH-1", PASSWORD))
        assert (page.status_code, page.json()["reason"]) == (429, "too_many_attempts")
        clock.advance(int(body["retry_after"]))
        status, _ = await handshake(gw, "TH-1", "guess-6")
        assert status == 401
        # Each failure past the free ones doubles the wait.
        status, body = await handshake(gw, "TH-1", PASSWORD)
        assert status == 429 and int(body["retry_after"]) >= 4
        clock.advance(int(body["retry_after"]))
        assert (await handshake(gw, "TH-1", PASSWORD))[0] == 101
        page = await http.get("/stations/TH-1/display", auth=("TH-1", PASSWORD))
        assert page.status_code == 200
    # A refused handshake is expected traffic: nothing at ERROR.
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == []


async def test_guessers_elsewhere_cannot_lock_a_station_out(harness) -> None:  # type: ignore[no-untyped-def]
    gw = await harness.start_gateway()
    verifier = gw.app.state.gateway.credentials
    verifier.clock = Clock()
    await harness.register("TH-2")
    await verifier.authenticate("TH-2", ("TH-2", PASSWORD), "192.0.2.1")  # its known address
    for i in range(21):  # from many addresses, a few guesses each
        with pytest.raises(StationAuthRefused) as refused:
            await verifier.authenticate("TH-2", ("TH-2", f"guess-{i}"), f"198.51.100.{i}")
        assert refused.value.reason == "unauthenticated"
    with pytest.raises(StationAuthRefused) as blocked:
        await verifier.authenticate("TH-2", ("TH-2", PASSWORD), "203.0.113.9")
    assert blocked.value.reason == "too_many_attempts"
    # The station itself, from where it signed in before, is not refused.
    await verifier.authenticate("TH-2", ("TH-2", PASSWORD), "192.0.2.1")


async def test_an_unknown_station_costs_a_full_check_like_a_registered_one(harness) -> None:  # type: ignore[no-untyped-def]
    """Refusing an unknown id runs the same argon2id check, with the parameters real station
    credentials have, as refusing a registered one: nothing to time. (Checked by what was
    computed, not by a stopwatch.)"""
    from argon2 import extract_parameters

    gw = await harness.start_gateway()
    verifier = gw.app.state.gateway.credentials
    await harness.register("TH-3")
    for station_id in ("TH-3", "TH-404"):
        checks = verifier.full_checks
        with pytest.raises(StationAuthRefused):
            await verifier.authenticate(station_id, (station_id, "pw-fresh"), "10.1.0.1")
        assert verifier.full_checks == checks + 1, station_id
    async with harness.db.read() as session:
        real = await Repository(session).any_password_hash()
    assert real is not None and verifier._dummy_hash is not None
    assert extract_parameters(verifier._dummy_hash) == extract_parameters(real)


async def test_a_verified_password_is_remembered_until_the_credential_changes(harness) -> None:  # type: ignore[no-untyped-def]
    """A fleet reconnecting after an outage signs in without an argon2 check each; a new
    password (or a revoked one) applies at once, however long the memory lasts."""
    from argon2 import PasswordHasher
    from plugpay_events.contracts.identity import StationCredentialSet

    gw = await harness.start_gateway()
    verifier = gw.app.state.gateway.credentials
    await harness.register("TH-6")
    await verifier.authenticate("TH-6", ("TH-6", PASSWORD), "10.2.0.1")
    checks = verifier.full_checks
    for _ in range(3):
        await verifier.authenticate("TH-6", ("TH-6", PASSWORD), "10.2.0.1")
    assert verifier.full_checks == checks  # remembered
    # A wrong password is never answered from memory.
    with pytest.raises(StationAuthRefused):
        await verifier.authenticate("TH-6", ("TH-6", PASSWORD + "x"), "10.2.0.1")
    assert verifier.full_checks == checks + 1
    # The operator sets a new password: the old one is refused at the next sign-in.
    new_password = "station-secret-rotated-5678"
    rotated = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash(new_password)
    await harness.publish(
        StationCredentialSet(
            station_id="TH-6",
            password_hash=rotated,
            security_profile=1,
            set_at=datetime.now(UTC),
        )
    )

    async def stored() -> bool:
        async with harness.db.read() as session:
            row = await Repository(session).station("TH-6")
        return bool(row and row["password_hash"] == rotated)

    await eventually(stored, 20, "the new credential stored")
    with pytest.raises(StationAuthRefused) as refused:
        await verifier.authenticate("TH-6", ("TH-6", PASSWORD), "10.2.0.1")
    assert refused.value.reason == "unauthenticated"
    assert (await verifier.authenticate("TH-6", ("TH-6", new_password), "10.2.0.1"))[
        "station_id"
    ] == "TH-6"


async def test_frames_are_logged_one_line_each_and_without_codes(harness, caplog) -> None:  # type: ignore[no-untyped-def]
    from ocpp.v16 import call

    await harness.start_gateway()
    await harness.register("TH-4")
    caplog.set_level(logging.DEBUG, logger="station_gateway.ocpp")
    station = await harness.connect("TH-4", password=PASSWORD)
    await boot16(station)
    forged = "hi\n2026-12-02 10:00:00,000 ERROR auth_svc.app: admin password reset"
    await station.call(call.DataTransfer(vendor_id="com.example", message_id="x", data=forged))
    code = (await request_code16(station))["code"]
    await harness.close(station)
    frames = [r.getMessage() for r in caplog.records if r.name == "station_gateway.ocpp"]
    assert any("\\n2026-12-02 10:00:00,000 ERROR auth_svc.app" in f for f in frames), frames
    assert not any("\n" in f for f in frames)
    assert any('"code\\":\\"***' in f or '"code":"***' in f for f in frames), frames
    assert not any(code in f for f in frames)


async def test_the_display_page_has_a_policy_and_is_never_framed(harness) -> None:  # type: ignore[no-untyped-def]
    import re

    gw = await harness.start_gateway()
    await harness.register("TH-5")
    auth = {"Authorization": basic("TH-5", PASSWORD)}
    async with httpx.AsyncClient(base_url=gw.http) as http:
        page = await http.get("/stations/TH-5/display", headers=auth)
        again = await http.get("/stations/TH-5/display", headers=auth)
        state = await http.get("/stations/TH-5/display/state", headers=auth)
        script = await http.get("/stations/TH-5/display/static/display.js", headers=auth)
    csp = page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "default-src 'self'" in csp
    assert "unsafe-inline" not in csp
    nonce = re.search(r"'nonce-([^']+)'", csp)
    assert nonce and f'<style nonce="{nonce.group(1)}">' in page.text
    assert nonce.group(1) not in again.headers["content-security-policy"]  # fresh each time
    assert "<script>" not in page.text
    for response in (page, state, script):
        assert response.headers["x-content-type-options"] == "nosniff"


async def test_a_reconnect_storm_beyond_the_handshake_limit_is_told_once_to_come_back_later(
    harness,  # type: ignore[no-untyped-def]
) -> None:
    gw = await harness.start_gateway()
    await harness.register("TH-STORM")
    gate = gw.app.state.gateway.handshakes
    # Every handshake slot taken, as when thousands of stations reconnect in the same second;
    # getting in takes long enough here that the gate lets one station through per second.
    gate.in_flight = gate.limit
    gate.mean_hold_s = float(gate.limit)
    gate.clock = lambda: 1_000.0
    retry_afters = []
    for _ in range(8):
        status, body = await handshake(gw, "TH-STORM", PASSWORD)
        assert (status, body["reason"]) == (503, "busy"), body
        retry_afters.append(int(body["retry_after"]))
    # Each told to come back at its own turn, not all at the same second (a second storm).
    first = gate.retry_after_s
    assert retry_afters == list(range(first, first + 8)), retry_afters
    assert gate.turned_away == 8
    gate.in_flight = 0
    status, _ = await handshake(gw, "TH-STORM", PASSWORD)
    assert status == 101
    # The slot is given back once the station has gone (it closed straight after the 101).
    await eventually(lambda: gate.in_flight == 0, what="the handshake slot given back")


async def test_an_admitted_station_holds_its_place_until_its_boot_is_answered(
    harness,  # type: ignore[no-untyped-def]
) -> None:
    gw = await harness.start_gateway()
    await harness.register("TH-ADMIT")
    gate = gw.app.state.gateway.handshakes
    station = await harness.connect("TH-ADMIT")
    # Connected and not yet booted: still being brought in, so a storm cannot flood the
    # process with boots faster than it answers them.
    await eventually(lambda: gw.app.state.gateway.connections.get("TH-ADMIT"), what="attached")
    assert gate.in_flight == 1
    answer = await station.call(
        call.BootNotification(charge_point_vendor="Acme", charge_point_model="One")
    )
    assert answer.status == "Accepted"
    await eventually(lambda: gate.in_flight == 0, what="the place given back after the boot")
    await harness.close(station)
