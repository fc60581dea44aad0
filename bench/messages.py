"""OCPP message throughput of ONE gateway process, per message type: rate asked, rate achieved,
round-trip p50/p99 and the gateway's CPU-ms per message.

    python bench/messages.py [--stations 500] [--rates 100,250,500,1000] [--duration 10]

Stations GW-00001.. (as bench/connections.py provisions them) connect straight to the first
gateway process, boot and report their connector; client processes then send open loop: every
message has a planned time (rate x duration, evenly spaced, spread over the stations round
robin) and its latency runs from that planned time to the answer, so a saturated gateway shows
as latency (OCPP-J allows one call in flight per connection: a station whose previous call is
unanswered queues the next one, as a real one does).

- StatusNotification: each station alternates its connector between Available and Unavailable,
  so every message is a change (stored, an outboxed ConnectorStatusChanged, a display update);
  the run ends on Available.
- MeterValues: outside a transaction (periodic clock-aligned values), what the gateway answers
  without storing; values of a transaction are measured by the whole-session runs.

CPU-ms per message = the gateway process's CPU seconds over the step (from /proc) ÷ messages
answered — the figure to trust on a shared machine; latency is noisy there.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from typing import Any

from common import (
    SMOKE,
    STATE,
    StationClients,
    cpu_seconds,
    load,
    percentiles,
    raise_nofile,
    write_result,
)
from connections import GATEWAY_PORT, _provision, station_ids

TYPES = ("StatusNotification", "MeterValues")


async def _client_main(ids: list[str], password: str, cmd: Any, out: Any) -> None:
    import logging

    from ocpp.v16 import call as call16
    from plugpay_simulator.stations import SimulatedStation

    logging.disable(logging.CRITICAL)
    url = f"ws://127.0.0.1:{GATEWAY_PORT}"
    stations: list[SimulatedStation] = []
    sem = asyncio.Semaphore(8)

    async def open_one(sid: str) -> None:
        st = SimulatedStation(sid, url, password, meter_interval_s=3600)
        async with sem:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(st.connect(), 60)
                stations.append(st)

    await asyncio.gather(*(open_one(s) for s in ids))
    out.put({"connected": len(stations)})
    loop = asyncio.get_running_loop()
    flips: dict[str, int] = {}

    def payload(kind: str, st: SimulatedStation) -> Any:
        if kind == "StatusNotification":
            n = flips.get(st.station_id, 0)
            flips[st.station_id] = n + 1
            return call16.StatusNotification(
                connector_id=1,
                error_code="NoError",
                status="Unavailable" if n % 2 == 0 else "Available",
                timestamp=st.timestamp(1),
            )
        return call16.MeterValues(
            connector_id=1,
            meter_value=[
                {
                    "timestamp": st.timestamp(1),
                    "sampled_value": [
                        {
                            "measurand": "Energy.Active.Import.Register",
                            "unit": "Wh",
                            "value": "1000",
                        }
                    ],
                }
            ],
        )

    while True:
        msg = await loop.run_in_executor(None, cmd.get)
        if msg[0] == "stop":
            for st in stations:  # end on Available, as the fleet found them
                if flips.get(st.station_id, 0) % 2 == 1:
                    with contextlib.suppress(Exception):
                        await st.set_status(1, "Available")
            await asyncio.gather(*(s.close() for s in stations), return_exceptions=True)
            out.put({"closed": len(stations)})
            return
        _, kind, rate, duration, t0, index, workers = msg
        latencies: list[float] = []
        last: list[float] = [0.0]
        errors: dict[str, int] = {}
        n = int(rate * duration)
        mine = [i for i in range(n) if i % workers == index]

        async def one(
            k: int,
            i: int,
            kind: str = kind,
            t0: float = t0,
            rate: float = rate,
            latencies: list[float] = latencies,
            last: list[float] = last,
            errors: dict[str, int] = errors,
        ) -> None:
            planned = t0 + i / rate
            await asyncio.sleep(max(0.0, planned - time.time()))
            st = stations[k % len(stations)]
            try:
                await asyncio.wait_for(st._cp.call(payload(kind, st)), 30)
                done = time.time()
                latencies.append((done - planned) * 1000)
                last[0] = max(last[0], done)
            except Exception as error:
                key = type(error).__name__
                errors[key] = errors.get(key, 0) + 1

        await asyncio.gather(*(one(k, i) for k, i in enumerate(mine)))
        out.put({"latencies": latencies, "errors": errors, "last": last[0]})


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--stations", type=int, default=20 if SMOKE else 500)
    p.add_argument("--rates", default="50" if SMOKE else "100,250,500,1000")
    p.add_argument("--duration", type=float, default=3 if SMOKE else 10)
    p.add_argument("--clients", type=int, default=2)
    a = p.parse_args()
    raise_nofile(65_536)
    password = json.loads((STATE / "bench-fleet.json").read_text())["station_password"]
    ids = station_ids(a.stations)
    asyncio.run(_provision(a.stations, password))
    gw_pid = int((STATE / f"station-gateway-{GATEWAY_PORT}.pid").read_text())
    before = load()
    clients = StationClients(_client_main, ids, password, a.clients)
    cmds, outs = clients.cmds, clients.outs
    steps: list[dict[str, Any]] = []
    try:
        connected = sum(outs[i].get(timeout=300)["connected"] for i in range(a.clients))
        time.sleep(2)  # the boots' status events are written and relayed before measuring
        for kind in TYPES:
            for rate in [float(r) for r in a.rates.split(",")]:
                step_load = load()
                cpu0 = cpu_seconds(gw_pid)
                t0 = time.time() + 1.0
                for i in range(a.clients):
                    cmds[i].put(("run", kind, rate, a.duration, t0, i, a.clients))
                replies = [outs[i].get(timeout=a.duration + 120) for i in range(a.clients)]
                cpu = cpu_seconds(gw_pid) - cpu0
                lat = [x for r in replies for x in r["latencies"]]
                errors: dict[str, int] = {}
                for r in replies:
                    for k, v in r["errors"].items():
                        errors[k] = errors.get(k, 0) + v
                span = max([a.duration] + [r["last"] - t0 for r in replies if r["last"]])
                step = {
                    "message": kind,
                    "rate_asked_per_s": rate,
                    "duration_s": a.duration,
                    "sent": int(rate * a.duration),
                    "answered": len(lat),
                    "rate_achieved_per_s": round(len(lat) / span, 1),
                    "errors": errors,
                    "latency_ms": percentiles(lat),
                    "gateway_cpu_s": round(cpu, 2),
                    "cpu_ms_per_message": round(cpu * 1000 / len(lat), 3) if lat else None,
                    "load": step_load,
                }
                steps.append(step)
                print(json.dumps(step), file=sys.stderr)
                time.sleep(2)
    finally:
        clients.stop()
    write_result(
        "messages",
        {
            "stations": a.stations,
            "connected": connected,
            "clients": a.clients,
            "gateway_port": GATEWAY_PORT,
            "steps": steps,
            "method": "open loop from planned send time to answer; one gateway process; "
            "CPU-ms per message = gateway process CPU over the step / messages answered",
        },
        before,
    )


if __name__ == "__main__":
    main()
