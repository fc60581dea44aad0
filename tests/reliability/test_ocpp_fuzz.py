"""OCPP fuzzer: thousands of malformed, random and out-of-order frames from many authenticated
connections to one gateway process, while well-behaved stations on the same process charge and
get billed. The process must stay up (same pid), answer every call it can parse, and the good
stations must be unaffected."""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import random
import time
import uuid
from typing import Any

import httpx
import pytest
import support
import websockets
from plugpay_simulator.stations import SimulatedStation
from plugpay_testing import eventually

pytestmark = pytest.mark.infra
ACTIONS16 = [
    "BootNotification",
    "Heartbeat",
    "StatusNotification",
    "StartTransaction",
    "StopTransaction",
    "MeterValues",
    "DataTransfer",
    "Authorize",
    "NoSuchAction",
    "DiagnosticsStatusNotification",
    "FirmwareStatusNotification",
]


def _garbage(rng: random.Random) -> str | bytes:
    kind = rng.randrange(14)
    uid = str(rng.randrange(10**6))
    action = rng.choice(ACTIONS16)
    junk: Any = rng.choice(
        [
            None,
            1,
            -1,
            2**64,
            1.5e308,
            "x" * rng.randrange(50),
            [],
            {},
            {"connectorId": "one"},
            {"idTag": None},
            [1, [2, [3]]],
            True,
        ]
    )
    if kind == 0:
        return "".join(chr(rng.randrange(32, 0x2FFF)) for _ in range(rng.randrange(1, 80)))
    if kind == 1:
        return '[2, "' + uid + '", "Heartbeat", {'  # truncated JSON
    if kind == 2:
        return json.dumps([2, uid, action, junk])
    if kind == 3:
        return json.dumps([3, uid, junk])  # a result for a call never made (out of order)
    if kind == 4:
        return json.dumps([4, uid, "GenericError", "boom", junk])
    if kind == 5:
        return json.dumps([rng.randrange(-5, 10), junk, junk, junk])
    if kind == 6:
        return json.dumps(junk)
    if kind == 7:
        return json.dumps(
            [
                2,
                uid,
                "StopTransaction",
                {
                    "meterStop": rng.randrange(-10, 10**9),
                    "timestamp": "yesterday",
                    "transactionId": rng.randrange(-5, 10**12),
                },
            ]
        )
    if kind == 8:
        return json.dumps(
            [
                2,
                uid,
                "StartTransaction",
                {
                    "connectorId": rng.randrange(-3, 40),
                    "idTag": "PP" + uid,
                    "meterStart": rng.randrange(-10, 10**9),
                    "timestamp": "2026-13-45T99:99:99Z",
                },
            ]
        )
    if kind == 9:
        return json.dumps(
            [
                2,
                uid,
                "DataTransfer",
                {
                    "vendorId": "com.plugpay",
                    "messageId": "RequestSessionCode",
                    "data": rng.choice(
                        [
                            "{",
                            "[]",
                            '{"connectorId": 99}',
                            "null",
                            json.dumps({"connectorId": "🔌"}),
                        ]
                    ),
                },
            ]
        )
    if kind == 10:
        return json.dumps(
            [
                2,
                uid,
                "MeterValues",
                {
                    "connectorId": 1,
                    "transactionId": 7,
                    "meterValue": [{"timestamp": "x", "sampledValue": [{"value": "NaN"}]}],
                },
            ]
        )
    if kind == 11:
        return json.dumps([2, "x" * rng.randrange(1, 200), "Heartbeat", {}])
    if kind == 12:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))  # binary: close 1003
    return "[" * rng.randrange(1, 2000) + "]" * rng.randrange(0, 2000)  # deep nesting


async def _fuzz_connection(
    station_id: str, port: int, frames: int, seed: int, stats: dict[str, int]
) -> None:
    rng = random.Random(seed)
    token = base64.b64encode(f"{station_id}:{support.STATION_PASSWORD}".encode()).decode()
    url = f"ws://127.0.0.1:{port}/ocpp/{station_id}"
    sent = 0
    while sent < frames:
        try:
            async with websockets.connect(
                url,
                subprotocols=[rng.choice(["ocpp1.6", "ocpp2.0.1"])],  # type: ignore[list-item]
                additional_headers={"Authorization": f"Basic {token}"},
                open_timeout=10,
                max_size=None,
            ) as ws:
                stats["connections"] += 1
                while sent < frames:
                    frame = _garbage(rng)
                    if rng.random() < 0.003:
                        frame = '[2, "big", "Heartbeat", {"p": "' + "x" * 70_000 + '"}]'
                    await ws.send(frame)
                    sent += 1
                    stats["frames"] += 1
                    if rng.random() < 0.5:
                        try:
                            await asyncio.wait_for(ws.recv(), 0.2)
                            stats["answers"] += 1
                        except TimeoutError:
                            pass
        except (websockets.exceptions.ConnectionClosed, OSError, TimeoutError):
            stats["closed_by_gateway"] += 1
            await asyncio.sleep(0.05)


TERMINAL = ("billed", "denied", "abandoned", "failed")


async def _scan_accepted(http: httpx.AsyncClient, code: str, token: str) -> bool:
    r = await http.post("/sessions/scan", json={"code": code}, headers=support.bearer(token))
    assert r.status_code == 202, r.text
    return True


def _charging(sim: SimulatedStation) -> bool:
    tx = sim.transactions.get(1)
    return (
        tx is not None and bool(tx.session_ref) and tx.started.is_set() and not tx.stopped.is_set()
    )


def _energy_flows(sim: SimulatedStation) -> bool:
    tx = sim.transactions.get(1)
    return tx is not None and tx.meter_wh > tx.meter_start_wh


async def _terminal_status(http: httpx.AsyncClient, session_id: str, token: str) -> str:
    r = await http.get(f"/sessions/{session_id}", headers=support.bearer(token))
    assert r.status_code == 200, r.text
    status = str(r.json()["status"])
    assert status in TERMINAL, status
    return status


async def _good_station(
    station_id: str, driver: support.Driver, sessions: int, results: list[str]
) -> None:
    port = support.GATEWAY_PORTS[0]
    sim = SimulatedStation(
        station_id,
        f"ws://127.0.0.1:{port}",
        support.STATION_PASSWORD,
        meter_interval_s=0.5,
        energy_speedup=support.METER_SPEEDUP,
    )
    await sim.connect()
    # Retried checks raise AssertionError until they hold; the last one is in the failure.
    retried = (AssertionError, httpx.TransportError)
    try:
        async with httpx.AsyncClient(base_url=support.BASE_URL, timeout=15) as http:
            for _ in range(sessions):
                await sim.heartbeat()
                reply = await sim.request_code(1)
                # session-svc learns the code from the event log: until then the scan is refused.
                await eventually(
                    functools.partial(_scan_accepted, http, reply["qr"], driver.token),
                    within=20,
                    what=f"{station_id}: scan accepted",
                    every=0.25,
                    tolerate=retried,
                )
                await eventually(
                    functools.partial(_charging, sim), within=30, what=f"{station_id} charging"
                )
                await eventually(
                    functools.partial(_energy_flows, sim), within=30, what=f"{station_id} energy"
                )
                await sim.unplug(1)
                status = await eventually(
                    functools.partial(_terminal_status, http, reply["sessionId"], driver.token),
                    within=30,
                    what=f"session {reply['sessionId']} ends",
                    every=0.2,
                    tolerate=retried,
                )
                results.append(status)
    finally:
        await sim.close()


async def _credentials_known(gateway: httpx.AsyncClient, station_id: str) -> bool:
    basic = base64.b64encode(f"{station_id}:{support.STATION_PASSWORD}".encode()).decode()
    r = await gateway.get(
        f"/stations/{station_id}/display/state", headers={"Authorization": f"Basic {basic}"}
    )
    assert r.status_code == 200, r.text
    return True


async def test_ocpp_fuzzing_leaves_good_stations_unaffected(
    world: support.World, long_run: bool
) -> None:
    connections, per_connection = (40, 1500) if long_run else (16, 250)
    port = support.GATEWAY_PORTS[0]
    tag = uuid.uuid4().hex[:6]
    fuzz_ids = [f"FUZZ-{tag}-{i:02d}" for i in range(connections)]
    async with httpx.AsyncClient(base_url=support.BASE_URL, timeout=30) as http:
        await asyncio.gather(
            *(support.register_station(http, world.org_a, s, tariff_key=None) for s in fuzz_ids)
        )
    # The gateway learns the credentials from auth-svc's events: wait until it accepts each.
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as gateway:
        for station_id in fuzz_ids:
            await eventually(
                functools.partial(_credentials_known, gateway, station_id),
                within=60,
                what=f"the gateway knows {station_id}'s password",
                every=0.2,
                tolerate=(AssertionError, httpx.TransportError),
            )
    pid_file = support.STATE / f"station-gateway-{port}.pid"
    pid_before = pid_file.read_text().strip()
    stats = {"frames": 0, "answers": 0, "connections": 0, "closed_by_gateway": 0}
    results: list[str] = []
    t0 = time.monotonic()
    await asyncio.gather(
        *(_fuzz_connection(s, port, per_connection, i, stats) for i, s in enumerate(fuzz_ids)),
        _good_station(world.stations[0], world.drivers[0], 3, results),
        _good_station(world.stations[1], world.drivers[1], 3, results),
    )
    elapsed = time.monotonic() - t0
    print(f"ocpp fuzz: {stats} in {elapsed:.0f}s; good stations: {results}")
    (support.ROOT / ".local" / "reliability").mkdir(parents=True, exist_ok=True)
    (support.ROOT / ".local" / "reliability" / "ocpp-fuzz.json").write_text(
        json.dumps({**stats, "seconds": round(elapsed), "good_sessions": results})
    )
    assert stats["frames"] >= connections * per_connection
    assert results == ["billed"] * 6, results
    assert pid_file.read_text().strip() == pid_before, "the gateway process restarted"
    async with httpx.AsyncClient(timeout=10) as http:
        assert (await http.get(f"http://127.0.0.1:{port}/stations/readyz")).status_code == 200
