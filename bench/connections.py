"""Concurrent OCPP connections ONE gateway process holds, with heartbeats.

    python bench/connections.py [--steps 250,1000,2500,5000,10000] [--clients 4]

Stations GW-00001.. (one connector) are written directly into the bench stack's gateway
database with the bench OCPP password hashed by a deliberately cheap argon2id (registering
10,000 stations through auth-svc's API, and hashing 10,000 full-cost argon2 passwords at the
handshake, would each take most of an hour on 2 cores; the gateway still verifies every
station's password at the handshake). Client processes (``--clients``) open WebSockets
straight to the first gateway process (127.0.0.1:PORT_BASE+2, not through nginx), 8 handshakes
in flight each, a station retrying a failed handshake up to 3 times; each a SimulatedStation
(`ocpp` library) that boots and reports its connector. At each step every connection sends
one Heartbeat at a random moment of a ``--window`` seconds window (the 60 s interval the
gateway assigns, i.e. connections/60 per second, is the real rate; the window makes it
connections/window, busier) and the round trip is timed. Memory per connection = (gateway RSS
at the step - RSS before any) / connections. Stepping stops when fewer than 90 % connected
within ``--ramp-budget`` seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import sys
import time
from typing import Any

from common import (
    PG,
    PORT_BASE,
    SMOKE,
    STACK_NAME,
    StationClients,
    load,
    percentiles,
    raise_nofile,
    rss_kb,
    write_result,
)

GATEWAY_PORT = PORT_BASE + 2


def station_ids(n: int) -> list[str]:
    return [f"GW-{i:05d}" for i in range(1, n + 1)]


async def _provision(n: int, password: str) -> None:
    import asyncpg
    from argon2 import PasswordHasher

    # The gateway verifies with the parameters stored in the hash: a deliberately cheap argon2id
    # hash keeps 10,000 handshakes from costing an hour of hashing on 2 cores. What is measured
    # is holding connections; a handshake's real cost is in the scan benchmarks' station setup.
    cheap = PasswordHasher(time_cost=1, memory_cost=64, parallelism=1).hash(password)
    conn = await asyncpg.connect(f"{PG}/station_gateway_{STACK_NAME}")
    try:
        await conn.execute(
            """INSERT INTO stations (station_id, organisation_id, name, connectors, password_hash,
                                      security_profile)
               SELECT g.id, s.organisation_id, 'Bench ' || g.id, '[{"connector_id": 1,
                      "max_power_w": 22000}]'::jsonb, $2, s.security_profile
               FROM stations s, unnest($1::text[]) AS g(id)
               WHERE s.station_id = 'BST-0006'
               ON CONFLICT (station_id) DO UPDATE SET password_hash = EXCLUDED.password_hash""",
            station_ids(n),
            cheap,
        )
    finally:
        await conn.close()


async def _client_main(ids: list[str], password: str, cmd: Any, out: Any) -> None:
    import logging

    from plugpay_simulator.stations import SimulatedStation

    logging.disable(logging.CRITICAL)
    url = f"ws://127.0.0.1:{GATEWAY_PORT}"
    stations: list[SimulatedStation] = []
    failures: dict[str, int] = {}
    sem = asyncio.Semaphore(8)  # handshakes in flight per client process
    loop = asyncio.get_running_loop()

    async def open_one(sid: str) -> None:
        # A station whose handshake fails tries again, as a real one does (3 attempts).
        for _attempt in range(3):
            st = SimulatedStation(sid, url, password, meter_interval_s=3600)
            async with sem:
                try:
                    # A real station boots before it talks (nothing else is answered before).
                    await asyncio.wait_for(st.connect(), 60)
                    stations.append(st)
                    return
                except Exception as error:
                    key = type(error).__name__
                    failures[key] = failures.get(key, 0) + 1
                    with contextlib.suppress(Exception):
                        await st.close()

    opened = 0
    while True:
        msg = await loop.run_in_executor(None, cmd.get)
        if msg[0] == "open":
            target, budget = msg[1], msg[2]
            t = time.time()
            todo = ids[opened:target]
            opened = target
            try:
                await asyncio.wait_for(asyncio.gather(*(open_one(s) for s in todo)), budget)
            except TimeoutError:
                failures["ramp_budget_exceeded"] = failures.get("ramp_budget_exceeded", 0) + 1
            alive = sum(1 for s in stations if s._ws is not None and s._ws.state.name == "OPEN")
            out.put({"alive": alive, "failures": dict(failures), "ramp_s": time.time() - t})
        elif msg[0] == "heartbeat":
            window = msg[1]
            rtts: list[float] = []
            errors = 0

            async def beat(st: SimulatedStation, window: float, rtts: list[float]) -> None:
                nonlocal errors
                await asyncio.sleep(random.random() * window)
                t = time.perf_counter()
                try:
                    await asyncio.wait_for(st.heartbeat(), 30)
                    rtts.append((time.perf_counter() - t) * 1000)
                except Exception:
                    errors += 1

            await asyncio.gather(*(beat(s, window, rtts) for s in list(stations)))
            out.put({"rtts": rtts, "errors": errors})
        elif msg[0] == "stop":
            await asyncio.gather(*(s.close() for s in stations), return_exceptions=True)
            out.put({"closed": len(stations)})
            return


def main() -> None:
    import json

    p = argparse.ArgumentParser()
    p.add_argument("--steps", default="50" if SMOKE else "250,1000,2500,5000,10000")
    # failures count attempts; a station that connected on its 2nd or 3rd attempt is connected
    p.add_argument("--clients", type=int, default=1 if SMOKE else 4)
    p.add_argument("--window", type=float, default=10 if SMOKE else 20)
    p.add_argument("--ramp-budget", type=float, default=60 if SMOKE else 200)
    a = p.parse_args()
    steps = [int(s) for s in a.steps.split(",")]
    raise_nofile(65_536)
    from common import STATE

    password = json.loads((STATE / "bench-fleet.json").read_text())["station_password"]
    asyncio.run(_provision(max(steps), password))
    gw_pidfile = STATE / f"station-gateway-{GATEWAY_PORT}.pid"
    gw_pid = int(gw_pidfile.read_text())
    before_load = load()
    rss0 = rss_kb(gw_pid)
    ids = station_ids(max(steps))
    clients = StationClients(_client_main, ids, password, a.clients)
    cmds, outs = clients.cmds, clients.outs
    results = []
    try:
        for target in steps:
            per = [
                len(ids[i :: a.clients][: (target + a.clients - 1 - i) // a.clients])
                for i in range(a.clients)
            ]
            for i in range(a.clients):
                cmds[i].put(("open", per[i], a.ramp_budget))
            replies = [outs[i].get(timeout=a.ramp_budget + 120) for i in range(a.clients)]
            alive = sum(r["alive"] for r in replies)
            failures: dict[str, int] = {}
            for r in replies:
                for k, v in r["failures"].items():
                    failures[k] = failures.get(k, 0) + v
            time.sleep(5)
            rss = rss_kb(gw_pid)
            step_load = load()
            for i in range(a.clients):
                cmds[i].put(("heartbeat", a.window))
            beats = [outs[i].get(timeout=a.window + 120) for i in range(a.clients)]
            rtts = [x for b in beats for x in b["rtts"]]
            step = {
                "target": target,
                "connected": alive,
                "failures": failures,
                "ramp_s": round(max(r["ramp_s"] for r in replies), 1),
                "gateway_rss_mb": round(rss / 1024, 1),
                "kb_per_connection": round((rss - rss0) / alive, 1) if alive else None,
                "heartbeats_per_s": round(len(rtts) / a.window, 1),
                "heartbeat_rtt_ms": percentiles(rtts),
                "heartbeat_errors": sum(b["errors"] for b in beats),
                "load": step_load,
            }
            results.append(step)
            print(json.dumps(step), file=sys.stderr)
            if alive < 0.9 * target:
                print("connections: stopped stepping (fewer than 90% connected)", file=sys.stderr)
                break
    finally:
        clients.stop()
    write_result(
        "connections",
        {
            "gateway_pid_rss_before_mb": round(rss0 / 1024, 1),
            "heartbeat_window_s": a.window,
            "clients": a.clients,
            "steps": results,
        },
        before_load,
    )


if __name__ == "__main__":
    main()
