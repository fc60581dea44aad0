"""Several gateway processes and many sessions at once."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from e2e_support import FLOW_TIMEOUT_S, World, eventually

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.mark.multi_process
async def test_two_gateway_processes(world: World) -> None:
    """Station A holds its socket on one gateway process, station B on the other. Both
    processes consume session events (one consumer group): whichever consumes a session's
    authorisation, the process holding the station's socket starts it. We go on until each
    station has had a session whose start command was made by the *other* process."""
    direct_a, direct_b = world.d.gateway_ws_urls
    a_id = await world.register_station(connectors=2)
    b_id = await world.register_station(connectors=2)
    station_a = await world.connect_station(a_id, ocpp_version="1.6", connectors=2, ws_url=direct_a)
    station_b = await world.connect_station(
        b_id, ocpp_version="2.0.1", connectors=2, ws_url=direct_b
    )
    holder = dict(zip((a_id, b_id), world.d.gateway_instance_ids, strict=True))
    gateway = await world.pool("station_gateway")
    crossed: set[str] = set()
    rounds = 0
    while crossed != {a_id, b_id}:
        rounds += 1
        assert rounds <= 6, f"no cross-process start seen after {rounds - 1} rounds: {crossed}"
        drivers = await world.drivers(4, wallet_minor=1_000)
        plan = [(station_a, 1), (station_a, 2), (station_b, 1), (station_b, 2)]
        codes = [await st.request_code(c) for st, c in plan]
        ids = await asyncio.gather(
            *(world.scan(d.phone, code["qr"]) for d, code in zip(drivers, codes, strict=True))
        )
        await asyncio.gather(
            *(world.wait(d.phone, s, {"charging"}) for d, s in zip(drivers, ids, strict=True))
        )
        for st, connector in plan:
            await st.unplug(connector)
        finals = await asyncio.gather(
            *(world.wait(d.phone, s, {"billed"}) for d, s in zip(drivers, ids, strict=True))
        )
        assert all(f["cost"]["final"] for f in finals)
        rows = await gateway.fetch(
            "SELECT station_id, session_id, kind, created_by, executed_by FROM station_commands"
            " WHERE session_id = ANY($1::uuid[]) AND kind = 'start'",
            list(ids),
        )
        assert len(rows) == 4, [dict(r) for r in rows]
        for row in rows:
            assert row["executed_by"] == holder[row["station_id"]], dict(row)
            if row["created_by"] != row["executed_by"]:
                crossed.add(row["station_id"])
    assert station_a.start_requests >= 2 and station_b.start_requests >= 2


@pytest.mark.multi_process
async def test_a_station_reconnects_to_the_gateway_process_that_knows_it(world: World) -> None:
    """Through the front door a station's socket is placed by its path: it reconnects to the
    process that holds its remembered credential, and a fleet still spreads over both."""
    gateway = await world.pool("station_gateway")
    ids = [await world.register_station() for _ in range(16)]

    async def holder(station_id: str, before: object) -> str | None:
        row = await gateway.fetchrow(
            "SELECT instance_id, connection_id FROM station_presence"
            " WHERE station_id = $1 AND connected",
            station_id,
        )
        if row is None or str(row["connection_id"]) == before:
            return None
        return f"{row['instance_id']}/{row['connection_id']}"

    placed: dict[str, set[str]] = {}
    for station_id in ids:
        station = await world.connect_station(station_id)
        connection = None
        for attempt in range(3):
            if attempt:
                await station.close()
                await station.connect()
            found = await eventually(
                lambda s=station_id, c=connection: holder(s, c),
                within=20,
                what=f"{station_id}'s new connection recorded",
            )
            instance, connection = found.rsplit("/", 1)
            placed.setdefault(station_id, set()).add(instance)
    assert all(len(instances) == 1 for instances in placed.values()), placed
    assert {i for instances in placed.values() for i in instances} == set(
        world.d.gateway_instance_ids
    ), placed


async def test_fifty_concurrent_sessions(world: World) -> None:
    """50 drivers on 25 stations x 2 connectors (1.6 and 2.0.1 alternating), half paying from
    the wallet, half by card, all at once: every session is billed."""
    began = time.monotonic()
    stations_n, drivers_n = 25, 50
    limit = asyncio.Semaphore(5)

    async def one_station(index: int):
        async with limit:
            return await world.station(
                ocpp_version="1.6" if index % 2 else "2.0.1",
                connectors=2,
                meter_interval_s=10.0,
                energy_speedup=20.0,  # few meter events: 50 at once
            )

    stations, wallet_drivers, card_drivers = await asyncio.gather(
        asyncio.gather(*(one_station(i) for i in range(stations_n))),
        world.drivers(drivers_n // 2, wallet_minor=3_000),
        world.drivers(drivers_n // 2, card="pm_card_visa"),
    )
    drivers = [d for pair in zip(wallet_drivers, card_drivers, strict=True) for d in pair]
    ready = time.monotonic()
    print(f"\n[e2e] 50: stations and drivers ready after {ready - began:.1f}s", flush=True)
    plan = [(st, c) for st in stations for c in (1, 2)]
    codes = await asyncio.gather(*(st.request_code(c) for st, c in plan))
    ids = await asyncio.gather(
        *(world.scan(d.phone, code["qr"]) for d, code in zip(drivers, codes, strict=True))
    )
    assert len(set(ids)) == drivers_n
    print(f"[e2e] 50: scanned after {time.monotonic() - began:.1f}s", flush=True)
    await asyncio.gather(
        *(
            world.wait(d.phone, s, {"charging"}, timeout_s=4 * FLOW_TIMEOUT_S)
            for d, s in zip(drivers, ids, strict=True)
        )
    )
    print(f"[e2e] 50: charging after {time.monotonic() - began:.1f}s", flush=True)
    await asyncio.gather(*(st.unplug(c) for st, c in plan))
    finals = await asyncio.gather(
        *(
            world.wait(d.phone, s, {"billed"}, timeout_s=4 * FLOW_TIMEOUT_S)
            for d, s in zip(drivers, ids, strict=True)
        )
    )
    fundings = [f["funding"] for f in finals]
    assert fundings.count("wallet") == fundings.count("card") == drivers_n // 2
    for driver, final in zip(wallet_drivers, finals[::2], strict=True):
        account = await driver.phone.account()
        assert account["balance"]["amount_minor"] == 3_000 - final["cost"]["total"]["amount_minor"]
    print(
        f"\n[e2e] {drivers_n} sessions: set-up {ready - began:.1f}s,"
        f" scan to billed {time.monotonic() - ready:.1f}s"
    )
    assert isinstance(ids[0], uuid.UUID)
