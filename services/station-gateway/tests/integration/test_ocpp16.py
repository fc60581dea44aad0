"""OCPP 1.6J against a real uvicorn server, driven by the ``ocpp`` library as a charge point."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import segno
import websockets
from ocpp.v16 import call
from plugpay_events.contracts.sessions import (
    SessionAbandoned,
    SessionLimits,
)
from plugpay_events.session_code import verification_jwks, verify_session_code
from plugpay_events.topics import METER, STATIONS
from sqlalchemy import text

from ..harness_station import (
    basic,
    boot16,
    iso,
    meter_values16,
    readings16,
    request_code16,
    start_transaction16,
)

pytestmark = pytest.mark.infra


async def boot(station) -> None:  # type: ignore[no-untyped-def]
    result = await boot16(station)
    assert result.status == "Accepted"
    assert result.interval == 60


async def test_boot_code_request_and_qr(harness) -> None:  # type: ignore[no-untyped-def]
    gw = await harness.start_gateway()
    await harness.register("CP-1")
    station = await harness.connect("CP-1")
    await boot(station)
    await harness.wait_event("StationConnected", topic=STATIONS)
    await harness.wait_event("StationBooted", topic=STATIONS)

    code = await request_code16(station)
    assert code["qr"].startswith("https://pay.plugpay.test/s/")
    assert len(code["code"]) == 6
    claims = verify_session_code(
        code["qr"].rsplit("/s/", 1)[1],
        verification_jwks(harness.signing_key),
        station_ids=["CP-1"],
        now=datetime.now(UTC),
    )
    assert (claims.station_id, claims.connector_id) == ("CP-1", 1)
    # Short enough for a small charger screen: at most 80 characters, a version-6 symbol at M.
    assert len(code["qr"]) <= 80
    assert segno.make(code["qr"], error="m", micro=False).version <= 6
    assert str(claims.session_id) == code["sessionId"]
    issued = await harness.wait_event("SessionCodeIssued")
    assert issued[0]["code"] == code["code"] and issued[0]["qr_url"] == code["qr"]
    # ... and the code is pushed to the station's screen.
    shown = await harness.eventually(lambda: station.got("DataTransfer"))
    assert shown[0]["message_id"] == "DisplaySessionCode"
    assert json.loads(shown[0]["data"])["code"] == code["code"]

    token = code["qr"].rsplit("/s/", 1)[1]
    async with httpx.AsyncClient(base_url=gw.http) as client:
        base = f"/stations/CP-1/sessions/{code['sessionId']}"
        svg = await client.get(f"{base}/qr.svg", params={"token": token})
        assert svg.status_code == 200 and svg.text.lstrip().startswith("<?xml")
        png = await client.get(f"{base}/qr.png", headers={"Authorization": basic("CP-1")})
        assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
        assert (await client.get(f"{base}/qr.png")).status_code == 401
        assert (await client.get(f"{base}/qr.svg", params={"token": "forged"})).status_code == 401

    # A connector going to Preparing also gets a code (reusing an open one for it).
    await station.call(
        call.StatusNotification(connector_id=2, error_code="NoError", status="Preparing")
    )
    await harness.wait_event("SessionCodeIssued", count=2)
    await harness.close(station)
    await harness.wait_event("StationDisconnected", topic=STATIONS)


async def test_handshake_refuses_unknown_station_and_wrong_password(harness) -> None:  # type: ignore[no-untyped-def]
    gw = await harness.start_gateway()
    await harness.register("CP-2")
    for station_id, password in (("CP-2", "wrong"), ("CP-404", "station-secret-1234")):
        with pytest.raises(websockets.InvalidStatus) as refused:
            await websockets.connect(
                f"{gw.ws}/{station_id}",
                subprotocols=["ocpp1.6"],  # type: ignore[list-item]
                additional_headers={"Authorization": basic(station_id, password)},
            )
        assert refused.value.response.status_code == 401
    with pytest.raises(websockets.InvalidStatus) as no_auth:
        await websockets.connect(f"{gw.ws}/CP-2", subprotocols=["ocpp1.6"])  # type: ignore[list-item]
    assert no_auth.value.response.status_code == 401
    with pytest.raises(websockets.InvalidStatus) as bad_protocol:
        await websockets.connect(
            f"{gw.ws}/CP-2",
            subprotocols=["ocpp9"],  # type: ignore[list-item]
            additional_headers={"Authorization": basic("CP-2")},
        )
    assert bad_protocol.value.response.status_code == 400
    # The right password still works after the failures.
    station = await harness.connect("CP-2")
    await boot(station)
    await harness.close(station)


async def start_charging(harness, station, limits=None, started_at=None):  # type: ignore[no-untyped-def]
    await boot(station)
    code = await request_code16(station)
    await harness.authorize(code["sessionId"], station.id, limits=limits)
    starts = await harness.eventually(lambda: station.got("RemoteStartTransaction"), 15)
    id_tag = starts[0]["id_tag"]
    assert starts[0]["connector_id"] == 1
    started = await start_transaction16(station, id_tag, 10_000, started_at or datetime.now(UTC))
    assert started.id_tag_info["status"] == "Accepted"
    charging = await harness.wait_event("ChargingStarted")
    assert charging[0]["transaction_id"] == str(started.transaction_id)
    assert charging[0]["meter_start_wh"] == 10_000
    return code["sessionId"], started.transaction_id, id_tag


async def test_authorised_start_meter_values_limit_stop_and_duplicate_stop(harness) -> None:  # type: ignore[no-untyped-def]
    await harness.start_gateway()
    await harness.register("CP-3")
    station = await harness.connect("CP-3")
    # The station's times are in the recent past, at a power a 22 kW connector can deliver.
    now = datetime.now(UTC) - timedelta(minutes=5)
    session_id, tx, _ = await start_charging(
        harness, station, SessionLimits(max_energy_wh=1000), started_at=now - timedelta(minutes=5)
    )
    await meter_values16(station, tx, now, 10_400)
    reported = await harness.wait_event("MeterValuesReported", topic=METER)
    assert reported[0]["samples"][0]["energy_wh"] == 10_400
    assert not station.got("RemoteStopTransaction")
    # 1.2 kWh > the 1 kWh the hold buys: the gateway stops the transaction.
    await meter_values16(station, tx, now + timedelta(minutes=4), 11_200)
    stops = await harness.eventually(lambda: station.got("RemoteStopTransaction"))
    assert stops[0]["transaction_id"] == tx
    await harness.wait_event("SessionStopRequested", where=lambda p: p["requested_by"] == "limit")
    stop = call.StopTransaction(
        meter_stop=11_250,
        timestamp=iso(now + timedelta(minutes=4, seconds=30)),
        transaction_id=tx,
        reason="Remote",
    )
    await station.call(stop)
    await station.call(stop)  # repeated after a (supposed) timeout
    completed = await harness.wait_event("SessionCompleted")
    assert completed[0]["session_id"] == session_id
    assert completed[0]["energy_wh"] == 1250
    assert completed[0]["stop_reason"] == "limit_reached"
    assert completed[0]["meter_start_wh"] == 10_000 and completed[0]["meter_stop_wh"] == 11_250
    # Only one, even after the relay had time to publish the second stop's effects.
    await harness.wait_event("StationConnected", topic=STATIONS)
    assert len([e for e in await harness.events() if e.type == "SessionCompleted"]) == 1
    assert len(station.got("RemoteStopTransaction")) == 1
    await harness.close(station)


async def test_remote_stop_then_reconnect_with_queued_messages(harness) -> None:  # type: ignore[no-untyped-def]
    await harness.start_gateway()
    await harness.register("CP-4")
    station = await harness.connect("CP-4")
    session_id, tx, _ = await start_charging(
        harness, station, started_at=datetime.now(UTC) - timedelta(minutes=10)
    )
    await harness.request_stop(session_id)
    await harness.eventually(lambda: station.got("RemoteStopTransaction"))
    # The station loses its connection, stops offline and replays its queue after reconnecting.
    await harness.close(station)
    past = datetime.now(UTC) - timedelta(minutes=3)
    station = await harness.connect("CP-4")
    await meter_values16(station, tx, past, 10_800)
    stop = call.StopTransaction(
        meter_stop=10_900,
        timestamp=iso(past + timedelta(seconds=30)),
        transaction_id=tx,
        reason="Remote",
        transaction_data=readings16(past, 10_800),
    )
    await station.call(stop)
    await harness.close(station)
    station = await harness.connect("CP-4")
    await station.call(stop)  # and again, after another reconnect
    completed = await harness.wait_event("SessionCompleted")
    assert completed[0]["stop_reason"] == "driver_stopped"
    assert completed[0]["energy_wh"] == 900
    # The station's own (past) times, not the time the queue arrived.
    ended = datetime.fromisoformat(completed[0]["ended_at"])
    assert abs(ended - (past + timedelta(seconds=30))) < timedelta(seconds=1)
    assert completed[0]["samples"][0]["energy_wh"] == 10_800
    assert len([e for e in await harness.events() if e.type == "SessionCompleted"]) == 1
    await harness.close(station)


async def test_station_rejecting_the_start_abandons_the_session(harness) -> None:  # type: ignore[no-untyped-def]
    await harness.start_gateway()
    await harness.register("CP-5")
    station = await harness.connect("CP-5")
    station.remote_start_status = "Rejected"
    await boot(station)
    code = await request_code16(station)
    await harness.authorize(code["sessionId"], "CP-5")
    abandoned = await harness.wait_event("SessionAbandoned")
    assert abandoned[0]["reason"] == "station_rejected"
    await harness.close(station)
    # A station the gateway knows is gone cannot start: abandoned at once. (Until it has
    # recorded the close, a start waits for the station to come back, within the deadline.)
    await harness.wait_event(
        "StationDisconnected", topic=STATIONS, where=lambda p: p["station_id"] == "CP-5"
    )
    await harness.authorize(str(uuid.uuid4()), "CP-5")
    await harness.wait_event("SessionAbandoned", where=lambda p: p["reason"] == "station_offline")


async def test_start_after_abandon_is_stopped(harness) -> None:  # type: ignore[no-untyped-def]
    """session-svc abandoned the session (start timeout) while the station was starting: the
    hold is void, so the transaction that started late is stopped remotely."""
    await harness.start_gateway()
    await harness.register("CP-6")
    station = await harness.connect("CP-6")
    session_id, tx, _ = await start_charging(harness, station)
    assert not station.got("RemoteStopTransaction")
    await harness.publish(
        SessionAbandoned(
            session_id=uuid.UUID(session_id),
            station_id="CP-6",
            connector_id=1,
            reason="start_timeout",
            abandoned_at=datetime.now(UTC),
        )
    )
    stops = await harness.eventually(lambda: station.got("RemoteStopTransaction"))
    assert stops[0]["transaction_id"] == tx
    await harness.close(station)


async def test_a_start_after_the_start_deadline_is_refused_and_the_session_given_up(  # type: ignore[no-untyped-def]
    harness,
) -> None:
    """The gateway owns the start deadline: a StartTransaction that comes after it is answered
    Invalid under the connector lock and the session abandoned (once), so no station charges
    for a session whose hold billing voids."""
    await harness.start_gateway(presence_sweep_s=3600)  # no sweep: the start itself decides
    await harness.register("CP-7")
    station = await harness.connect("CP-7")
    await boot(station)
    code = await request_code16(station)
    past = datetime.now(UTC) - timedelta(seconds=1)  # passed while the start was on its way
    await harness.authorize(code["sessionId"], "CP-7", start_deadline=past)
    starts = await harness.eventually(lambda: station.got("RemoteStartTransaction"), 15)
    late = await start_transaction16(station, starts[0]["id_tag"], 10_000, datetime.now(UTC))
    assert late.id_tag_info["status"] == "Invalid"
    [abandoned] = await harness.wait_event("SessionAbandoned")
    assert (abandoned["session_id"], abandoned["reason"]) == (code["sessionId"], "start_timeout")
    assert not [e for e in await harness.events() if e.type == "ChargingStarted"]
    await harness.close(station)


async def test_the_gateway_gives_up_a_session_not_started_by_its_deadline(  # type: ignore[no-untyped-def]
    harness,
) -> None:
    """A station that accepted the start and never started: the gateway's sweep abandons the
    session at its deadline (session-svc's timer is only a late backstop), and a start after
    that is refused."""
    await harness.start_gateway(start_timeout_s=1)
    await harness.register("CP-8")
    station = await harness.connect("CP-8")
    await boot(station)
    code = await request_code16(station)
    await harness.authorize(code["sessionId"], "CP-8", authorized_at=datetime.now(UTC))
    starts = await harness.eventually(lambda: station.got("RemoteStartTransaction"), 15)
    [abandoned] = await harness.wait_event("SessionAbandoned")
    assert (abandoned["session_id"], abandoned["reason"]) == (code["sessionId"], "start_timeout")
    late = await start_transaction16(station, starts[0]["id_tag"], 10_000, datetime.now(UTC))
    assert late.id_tag_info["status"] == "Invalid"
    given_up = [e for e in await harness.events() if e.type == "SessionAbandoned"]
    assert len(given_up) == 1
    await harness.close(station)


async def status(station, state: str, at: datetime, connector: int = 1) -> None:  # type: ignore[no-untyped-def]
    await station.call(
        call.StatusNotification(
            connector_id=connector, error_code="NoError", status=state, timestamp=iso(at)
        )
    )


async def test_a_lost_transaction_is_completed_from_its_last_reading(harness) -> None:  # type: ignore[no-untyped-def]
    """A charger that reboots without its transaction queue reports the connector Available and
    never stops the transaction: after the grace period the gateway completes it, once, from
    the last reading at that reading's time. A reboot that does re-send its start is left alone."""
    await harness.start_gateway(lost_transaction_grace_s=3.0)
    await harness.register("CP-LOST")
    station = await harness.connect("CP-LOST")
    now = datetime.now(UTC)
    session_id, tx, id_tag = await start_charging(
        harness, station, started_at=now - timedelta(minutes=5)
    )
    await meter_values16(station, tx, now - timedelta(minutes=2), 10_700)
    # Reboot WITH a queue: Available at boot, then the same StartTransaction again (same id),
    # then Charging — nothing is ended, however long we wait past the grace period.
    await status(station, "Available", now - timedelta(seconds=30))
    again = await start_transaction16(station, id_tag, 10_000, now - timedelta(minutes=5))
    assert again.transaction_id == tx and again.id_tag_info["status"] == "Accepted"
    await status(station, "Charging", now - timedelta(seconds=29))
    # Reboot WITHOUT a queue: Available, and never a stop.
    await status(station, "Available", now)
    completed = await harness.wait_event("SessionCompleted", timeout_s=20)
    assert completed[0]["session_id"] == session_id
    assert completed[0]["stop_reason"] == "transaction_lost"
    assert completed[0]["energy_wh"] == 700  # the last reading, nothing guessed
    ended = datetime.fromisoformat(completed[0]["ended_at"])
    assert abs(ended - (now - timedelta(minutes=2))) < timedelta(seconds=1)
    # A late StopTransaction (the station found it after all) changes nothing.
    await station.call(
        call.StopTransaction(meter_stop=10_900, timestamp=iso(now), transaction_id=tx)
    )
    await harness.wait_event("StationConnected", topic=STATIONS)
    assert len([e for e in await harness.events() if e.type == "SessionCompleted"]) == 1
    await harness.close(station)


# -- one live code and one session per connector; every charging session ends by itself ----
# The first test is the sequence the fresh-clone chaos run produced (docs/reliability.md): a
# session was authorised and its remote start was on its way when the station asked for another
# code; that session was authorised too, the charger accepted both starts, and the first
# transaction never ended because the connector kept showing activity.


async def code_request(station, connector: int = 1):  # type: ignore[no-untyped-def]
    return await station.call(
        call.DataTransfer(
            vendor_id="com.plugpay",
            message_id="RequestSessionCode",
            data=json.dumps({"connectorId": connector}),
        )
    )


async def test_no_second_session_while_a_start_is_on_its_way(harness) -> None:  # type: ignore[no-untyped-def]
    await harness.start_gateway()
    await harness.register("CP-ONE")
    station = await harness.connect("CP-ONE")
    await boot(station)
    first = await request_code16(station)
    await harness.authorize(first["sessionId"], "CP-ONE")
    starts = await harness.eventually(lambda: station.got("RemoteStartTransaction"), 15)
    # The charger accepted the start; its StartTransaction has not arrived yet. The driver
    # (or a second one) asks the station for a code again: refused while the session starts.
    again = await code_request(station)
    assert again.status == "Rejected"
    assert json.loads(again.data)["reason"] == "connector_busy"
    # A plug-in status on the same connector gets no code either.
    await station.call(
        call.StatusNotification(connector_id=1, error_code="NoError", status="Preparing")
    )
    # An authorisation for another session on the connector (its scan raced) is abandoned
    # before any start is sent: one remote start per connector.
    stray = str(uuid.uuid4())
    await harness.authorize(stray, "CP-ONE")
    abandoned = await harness.wait_event(
        "SessionAbandoned", where=lambda p: p["session_id"] == stray
    )
    assert abandoned[0]["reason"] == "connector_busy"
    started = await start_transaction16(station, starts[0]["id_tag"], 10_000, datetime.now(UTC))
    assert started.id_tag_info["status"] == "Accepted"
    await harness.wait_event("ChargingStarted")
    assert len(station.got("RemoteStartTransaction")) == 1
    issued = [e for e in await harness.events() if e.type == "SessionCodeIssued"]
    assert len(issued) == 1
    # Charging: still no code for that connector; the other connector is free.
    assert (await code_request(station)).status == "Rejected"
    assert (await code_request(station, connector=2)).status == "Accepted"
    await harness.close(station)


async def test_a_new_code_retires_the_unscanned_one(harness) -> None:  # type: ignore[no-untyped-def]
    await harness.start_gateway()
    await harness.register("CP-TWO")
    station = await harness.connect("CP-TWO")
    await boot(station)
    old = await request_code16(station)
    new = await request_code16(station)
    assert old["sessionId"] != new["sessionId"]
    # The old code's scan had raced the new code (session-svc refuses it once it knows the
    # new one): its authorisation arrives late and is abandoned (the hold is voided), no start
    # is sent for it.
    await harness.authorize(old["sessionId"], "CP-TWO")
    abandoned = await harness.wait_event("SessionAbandoned")
    assert abandoned[0]["session_id"] == old["sessionId"]
    assert abandoned[0]["reason"] == "code_superseded"
    assert not station.got("RemoteStartTransaction")
    # The live code still works.
    await harness.authorize(new["sessionId"], "CP-TWO")
    starts = await harness.eventually(lambda: station.got("RemoteStartTransaction"), 15)
    assert len(starts) == 1
    await harness.close(station)


async def test_a_session_of_an_unreachable_station_is_completed(harness) -> None:  # type: ignore[no-untyped-def]
    """A station that never comes back: the session ends from its last reading after the
    unreachable bound, and a stop sent long after changes nothing."""
    await harness.start_gateway(unreachable_transaction_s=2.0)
    await harness.register("CP-GONE")
    station = await harness.connect("CP-GONE")
    now = datetime.now(UTC)
    session_id, tx, _ = await start_charging(
        harness, station, started_at=now - timedelta(minutes=5)
    )
    await meter_values16(station, tx, now - timedelta(minutes=1), 10_400)
    await harness.close(station)
    completed = await harness.wait_event("SessionCompleted", timeout_s=30)
    assert completed[0]["session_id"] == session_id
    assert completed[0]["stop_reason"] == "station_unreachable"
    assert completed[0]["energy_wh"] == 400
    station = await harness.connect("CP-GONE")
    await boot(station)
    await station.call(
        call.StopTransaction(meter_stop=10_900, timestamp=iso(now), transaction_id=tx)
    )
    await harness.wait_event("StationConnected", topic=STATIONS, count=2)
    assert len([e for e in await harness.events() if e.type == "SessionCompleted"]) == 1
    await harness.close(station)


async def test_a_stop_asked_while_offline_is_not_sent_once_the_station_stopped_itself(  # type: ignore[no-untyped-def]
    harness,
) -> None:
    """The driver presses Stop while the station is away; it comes back and reports that it
    stopped meanwhile. The queued stop is then not sent (a RemoteStop for a finished
    transaction confuses third-party chargers)."""
    await harness.start_gateway(reconnect_settle_s=2.0)
    await harness.register("CP-AWAY")
    station = await harness.connect("CP-AWAY")
    session_id, tx, _ = await start_charging(
        harness, station, started_at=datetime.now(UTC) - timedelta(minutes=10)
    )
    await harness.close(station)
    await harness.wait_event("StationDisconnected", topic=STATIONS)
    await harness.request_stop(session_id)

    async def queued_stop() -> int | None:
        async with harness.db.read() as session:
            found = await session.execute(
                text(
                    "SELECT id FROM station_commands WHERE station_id = 'CP-AWAY'"
                    " AND kind = 'stop' AND done_at IS NULL"
                )
            )
            return found.scalar_one_or_none()

    command = await harness.eventually(queued_stop, what="the stop queued while offline")
    station = await harness.connect("CP-AWAY")
    await station.call(
        call.StopTransaction(
            meter_stop=10_900,
            timestamp=iso(datetime.now(UTC) - timedelta(seconds=5)),
            transaction_id=tx,
            reason="Local",
        )
    )
    await harness.wait_event("SessionCompleted")

    async def result() -> dict | None:
        async with harness.db.read() as session:
            found = await session.execute(
                text("SELECT result FROM station_commands WHERE id = :id"), {"id": command}
            )
            return found.scalar_one_or_none()

    assert await harness.eventually(result, what="the queued stop decided") == {
        "skipped": "completed"
    }
    assert station.got("RemoteStopTransaction") == []
    await harness.close(station)


async def test_a_refused_charging_card_points_to_the_app(harness) -> None:  # type: ignore[no-untyped-def]
    """A plain RFID card is Invalid; the station's own screen and the display page say how to
    pay instead (with the Plugpay app), for a minute."""
    gw = await harness.start_gateway()
    await harness.register("CP-CARD")
    station = await harness.connect("CP-CARD")
    await boot(station)
    refused = await station.call(call.Authorize(id_tag="RFID-0042"))
    assert refused.id_tag_info["status"] == "Invalid"
    hint = await harness.eventually(
        lambda: [
            p for p in station.got("DataTransfer") if p.get("message_id") == "DisplayCardRefused"
        ]
    )
    assert "Plugpay app" in json.loads(hint[0]["data"])["message"]
    async with httpx.AsyncClient(base_url=gw.http) as client:
        state = (
            await client.get(
                "/stations/CP-CARD/display/state", headers={"Authorization": basic("CP-CARD")}
            )
        ).json()
    until = datetime.fromisoformat(state["card_refused_until"])
    assert datetime.now(UTC) < until <= datetime.now(UTC) + timedelta(seconds=61)
    await harness.close(station)
