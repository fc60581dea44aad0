"""Bad input, presence, two gateway processes, the display page, and real Kafka."""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx
import pytest
import websockets
from ocpp.v16 import call
from plugpay_events import topics
from sqlalchemy import text

from ..harness_station import basic, boot16, request_code16

pytestmark = pytest.mark.infra


def auth(station_id: str) -> dict[str, str]:
    return {"Authorization": basic(station_id)}


async def raw_connect(gw, station_id: str, version: str = "1.6"):  # type: ignore[no-untyped-def]
    return await websockets.connect(
        f"{gw.ws}/{station_id}",
        subprotocols=[f"ocpp{version}"],  # type: ignore[list-item]
        additional_headers=auth(station_id),
    )


async def exchange(ws, frame: str) -> list:  # type: ignore[no-untyped-def]
    await ws.send(frame)
    return list(json.loads(await asyncio.wait_for(ws.recv(), 5)))


async def test_bad_frames_get_call_errors_and_hurt_no_one(harness) -> None:  # type: ignore[no-untyped-def]
    gw = await harness.start_gateway()
    await harness.register("BAD-1")
    await harness.register("GOOD-1")
    good = await harness.connect("GOOD-1")
    await boot16(good)
    ws = await raw_connect(gw, "BAD-1")
    # Out of order: a transaction before the station ever booted.
    start = [
        2,
        "o1",
        "StartTransaction",
        {"connectorId": 1, "idTag": "X", "meterStart": 0, "timestamp": "2025-01-01T00:00:00Z"},
    ]
    assert (await exchange(ws, json.dumps(start)))[:3] == [4, "o1", "SecurityError"]
    # A Heartbeat is no exception: nothing but BootNotification before boot.
    beat0 = [2, "o2", "Heartbeat", {}]
    assert (await exchange(ws, json.dumps(beat0)))[:3] == [4, "o2", "SecurityError"]
    boot = [2, "b1", "BootNotification", {"chargePointVendor": "v", "chargePointModel": "m"}]
    assert (await exchange(ws, json.dumps(boot)))[0] == 3
    cases = {
        "this is not json": [4, "-1", "FormationViolation"],
        json.dumps({"not": "a list"}): [4, "-1", "FormationViolation"],
        json.dumps([2, "m1", "Heartbeat"]): [4, "m1", "ProtocolError"],
        json.dumps([2, "m2", "FlyToTheMoon", {}]): [4, "m2", "NotImplemented"],
        json.dumps(
            [
                2,
                "m3",
                "StatusNotification",
                {"connectorId": "one", "errorCode": "NoError", "status": "Available"},
            ]
        ): [4, "m3", "TypeConstraintViolation"],
        json.dumps(
            [
                2,
                "m4",
                "BootNotification",
                {"chargePointVendor": "v", "chargePointModel": "m", "x": 1},
            ]
        ): [4, "m4", "FormationViolation"],
        json.dumps([2, "m5", "StatusNotification", {"connectorId": 1, "errorCode": "NoError"}]): [
            4,
            "m5",
            "ProtocolError",
        ],
        json.dumps([2, "m6", "Heartbeat", "payload"]): [4, "m6", "TypeConstraintViolation"],
        json.dumps([2, "m7", ["Heartbeat"], {}]): [4, "m7", "FormationViolation"],
        json.dumps([7, "m8", "Heartbeat", {}]): [4, "m8", "NotSupported"],
        # Integers no OCPP field holds (32-bit) are refused before any column sees them.
        json.dumps(
            [
                2,
                "m9",
                "StatusNotification",
                {"connectorId": 2**40, "errorCode": "NoError", "status": "Available"},
            ]
        ): [4, "m9", "PropertyConstraintViolation"],
        json.dumps(
            [
                2,
                "m10",
                "MeterValues",
                {"connectorId": 1, "transactionId": -(2**63), "meterValue": []},
            ]
        ): [4, "m10", "PropertyConstraintViolation"],
    }
    for frame, expected in cases.items():
        answer = await exchange(ws, frame)
        assert answer[:3] == expected, (frame, answer)
        assert isinstance(answer[3], str) and isinstance(answer[4], dict)
    # A response to nothing is ignored; the connection still works.
    await ws.send(json.dumps([3, "never-asked", {}]))
    assert (await exchange(ws, json.dumps([2, "h1", "Heartbeat", {}])))[:2] == [3, "h1"]
    # An oversized frame closes that connection (1009) ...
    await ws.send(json.dumps([2, "big", "DataTransfer", {"vendorId": "x", "data": "y" * 20_000}]))
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await asyncio.wait_for(ws.recv(), 5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    # ... and no other station noticed.
    beat = await good.call(call.Heartbeat())
    assert beat.current_time
    again = await raw_connect(gw, "BAD-1")
    assert (await exchange(again, json.dumps([2, "h2", "Heartbeat", {}])))[:2] == [3, "h2"]
    await again.close()
    await harness.close(good)


async def test_201_unparseable_frame_is_rpc_framework_error(harness) -> None:  # type: ignore[no-untyped-def]
    gw = await harness.start_gateway()
    await harness.register("BAD-2")
    ws = await raw_connect(gw, "BAD-2", "2.0.1")
    assert (await exchange(ws, "{{{"))[:3] == [4, "-1", "RpcFrameworkError"]
    answer = await exchange(
        ws,
        json.dumps(
            [
                2,
                "x1",
                "BootNotification",
                {
                    "chargingStation": {"model": "m", "vendorName": "v"},
                    "reason": "PowerUp",
                    "extra": 1,
                },
            ]
        ),
    )
    assert answer[:3] == [4, "x1", "FormatViolation"]
    beat = await exchange(ws, json.dumps([2, "x2", "Heartbeat", {}]))
    assert beat[:3] == [4, "x2", "SecurityError"]  # not booted yet: nothing but a boot
    await ws.close()


async def test_silent_station_goes_offline_and_gets_no_codes(harness) -> None:  # type: ignore[no-untyped-def]
    gw = await harness.start_gateway(heartbeat_interval_s=1, missed_heartbeats=1.5)
    await harness.register("QUIET-1")
    station = await harness.connect("QUIET-1")
    result = await boot16(station)
    assert result.interval == 1
    offline = await harness.wait_event("StationWentOffline", topic=topics.STATIONS)
    assert offline[0]["station_id"] == "QUIET-1"
    async with httpx.AsyncClient(base_url=gw.http) as client:
        refused = await client.post(
            "/stations/QUIET-1/display/sessions", json={"connector_id": 1}, headers=auth("QUIET-1")
        )
    assert refused.status_code == 409 and refused.json()["reason"] == "station_offline"
    await harness.close(station)


async def test_authorisation_reaches_the_process_holding_the_socket(harness) -> None:  # type: ignore[no-untyped-def]
    a = await harness.start_gateway(instance_id="gw-a")
    b = await harness.start_gateway(instance_id="gw-b", consume_events=False)
    await harness.register("TWO-1")
    station = await harness.connect("TWO-1", process=b)
    await boot16(station)
    session_id = (await request_code16(station))["sessionId"]
    await harness.authorize(session_id, "TWO-1")
    starts = await harness.eventually(lambda: station.got("RemoteStartTransaction"), 15)
    assert starts[0]["connector_id"] == 1
    async with a.app.state.runtime.database.read() as session:
        row = (
            await session.execute(
                text("SELECT created_by, executed_by FROM station_commands WHERE kind = 'start'")
            )
        ).one()
    assert (row.created_by, row.executed_by) == ("gw-a", "gw-b")
    # Operators' OCPP calls take the same road.
    operator = harness.tokens.headers(
        roles=("operator",), organisation_id=uuid.UUID("00000000-0000-0000-0000-0000000000aa")
    )
    async with httpx.AsyncClient(base_url=a.http) as client:
        created = await client.post(
            "/stations/TWO-1/commands",
            json={"action": "GetConfiguration", "payload": {"key": ["HeartbeatInterval"]}},
            headers=operator,
        )
        assert created.status_code == 202, created.text
        command_id = created.json()["command_id"]

        async def answered():  # type: ignore[no-untyped-def]
            r = await client.get(f"/stations/TWO-1/commands/{command_id}", headers=operator)
            return r.json() if r.json()["done"] else None

        status = await harness.eventually(answered)
    assert status["executed_by"] == "gw-b"
    assert status["result"]["answer"]["configuration_key"][0]["value"] == "60"
    await harness.close(station)


async def test_display_page_and_live_updates(harness) -> None:  # type: ignore[no-untyped-def]
    gw = await harness.start_gateway()
    await harness.register("DISP-1")
    station = await harness.connect("DISP-1")
    await boot16(station)
    async with httpx.AsyncClient(base_url=gw.http, timeout=10) as client:
        assert (await client.get("/stations/DISP-1/display")).status_code == 401
        page = await client.get("/stations/DISP-1/display", headers=auth("DISP-1"))
        assert page.status_code == 200 and "display.js" in page.text
        script = await client.get(
            "/stations/DISP-1/display/static/display.js", headers=auth("DISP-1")
        )
        assert "EventSource" in script.text
        async with client.stream(
            "GET", "/stations/DISP-1/display/events", headers=auth("DISP-1")
        ) as events:
            lines = events.aiter_lines()

            async def next_state() -> dict:
                async for line in lines:
                    if line.startswith("data: "):
                        return dict(json.loads(line[6:]))
                raise AssertionError("stream ended")

            first = await asyncio.wait_for(next_state(), 5)
            assert first["online"] is True
            assert first["connectors"][0]["price"] == "0.40 EUR/kWh, no VAT"
            issued = await client.post(
                "/stations/DISP-1/display/sessions",
                json={"connector_id": 1},
                headers=auth("DISP-1"),
            )
            assert issued.status_code == 201, issued.text
            while True:
                state = await asyncio.wait_for(next_state(), 5)
                session = state["connectors"][0]["session"]
                if session and session["state"] == "code_issued":
                    break
            assert session["code"] == issued.json()["code"]
            assert session["qr_url"] == issued.json()["qr"]
            assert session["price"]
    await harness.eventually(lambda: station.got("DataTransfer"))
    await harness.close(station)


@pytest.mark.kafka
async def test_code_and_start_over_real_kafka(kafka_harness) -> None:  # type: ignore[no-untyped-def]
    harness = kafka_harness
    await harness.start_gateway()
    await harness.register("KAFKA-1")
    station = await harness.connect("KAFKA-1")
    await boot16(station)
    session_id = (await request_code16(station))["sessionId"]
    await harness.wait_event("SessionCodeIssued", timeout_s=30)
    await harness.authorize(session_id, "KAFKA-1")
    await harness.eventually(lambda: station.got("RemoteStartTransaction"), 30)
    await harness.close(station)
    assert uuid.UUID(session_id)


async def test_a_talking_station_stays_online_while_a_silent_one_goes_offline(harness) -> None:  # type: ignore[no-untyped-def]
    """Signs of life are written in batches (at the gateway's beat), not per message: a station
    that keeps heart-beating stays online, while one that booted after it and then fell silent
    goes offline. Were signs of life lost, the talking one (booted first) would go first."""
    await harness.start_gateway(heartbeat_interval_s=1, missed_heartbeats=3)
    await harness.register("TALK-1")
    await harness.register("QUIET-2")
    talking = await harness.connect("TALK-1")
    quiet = await harness.connect("QUIET-2")
    boot = call.BootNotification(charge_point_model="m", charge_point_vendor="v")
    await talking.call(boot)
    await quiet.call(boot)
    silent_one_offline = asyncio.Event()

    async def keep_talking() -> None:
        while not silent_one_offline.is_set():
            await talking.call(call.Heartbeat())
            await asyncio.sleep(0.3)  # the station's heartbeat cadence

    talker = asyncio.create_task(keep_talking())
    try:
        offline = await harness.wait_event(
            "StationWentOffline",
            topic=topics.STATIONS,
            where=lambda p: p["station_id"] == "QUIET-2",
            timeout_s=30,
        )
    finally:
        silent_one_offline.set()
        await talker
    assert offline[0]["station_id"] == "QUIET-2"
    gone = [
        e.payload["station_id"]
        for e in await harness.events(topics.STATIONS)
        if e.type == "StationWentOffline"
    ]
    assert gone == ["QUIET-2"]
    await harness.close(talking)
    await harness.close(quiet)


async def test_while_the_database_is_away_stations_get_answers_they_retry(harness) -> None:  # type: ignore[no-untyped-def]
    """No store, no acknowledgement: a boot is answered Pending (the station boots again after
    the interval) and a code request Rejected with a reason, never an InternalError."""
    import asyncpg
    from sqlalchemy.engine import make_url

    gw = await harness.start_gateway()
    await harness.register("CP-NODB")
    url = make_url(harness.database_url)
    name = url.database
    admin = await asyncpg.connect(
        host=url.host, port=url.port, user=url.username, password=url.password, database="postgres"
    )
    station = await raw_connect(gw, "CP-NODB")
    boot = [2, "b1", "BootNotification", {"chargePointVendor": "v", "chargePointModel": "m"}]
    code = [
        2,
        "c1",
        "DataTransfer",
        {
            "vendorId": "com.plugpay",
            "messageId": "RequestSessionCode",
            "data": '{"connectorId": 1}',
        },
    ]
    accepted = await exchange(station, json.dumps(boot))
    assert accepted[2]["status"] == "Accepted", accepted
    try:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
        )
        refused = await exchange(station, json.dumps(code))
        assert refused[:2] == [3, "c1"] and refused[2]["status"] == "Rejected", refused
        assert json.loads(refused[2]["data"])["reason"] == "temporarily_unavailable"
        pending = await exchange(station, json.dumps(boot))
        assert pending[0] == 3 and pending[2]["status"] == "Pending", pending
        assert pending[2]["interval"] == 10
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await admin.close()

    async def booted() -> list | None:  # type: ignore[type-arg]
        answer = await exchange(station, json.dumps(boot))
        return answer if answer[2].get("status") == "Accepted" else None

    from plugpay_testing import eventually

    await eventually(booted, 30, "an accepted boot once the database is back")
    await station.close()
