"""Reconnect storm: every station drops at once and reconnects within a few seconds, some of
them flushing the stop of a session that was charging, on the bench stack.

    python bench/storm.py [--stations 5000] [--charging 1000] [--window 10] [--clients 4]

The stations: the bench fleet (BST-…, registered through the public APIs, several connectors
each, full-cost OCPP passwords) carries the charging sessions; the rest are GW-… stations
written into the gateway's database with a cheap password hash, as in connections.py. They
are spread over the gateway's two processes (alternately, as a load balancer would), each a
SimulatedStation (`ocpp` library, OCPP 1.6) in one of ``--clients`` client processes.

1. Every station connects and boots; ``--charging`` sessions start the way drivers start
   them (the station shows a code, a phone scans it, the back office starts the charger).
2. Every connection drops at once; while offline, each charging session's driver unplugs:
   the station keeps the StopTransaction queued, as a real charger does.
3. Every station reconnects at a random moment of a ``--window``-second window: handshake,
   BootNotification, a StatusNotification per connector, and the queued StopTransaction.

What it reports (bench/results/storm.json, storm.png: answers per second and latency over
time): every message answered or not, p50/p99 per message type and for the handshake, how many
stations were told to retry (a refused handshake or a BootNotification not Accepted) and the
most times one station was, how long until every station was back, CPU seconds per service
and per gateway process, and what the event log says became of each charging session (billed
exactly once, or not).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import random
import sys
import time
from typing import Any

import pyspy
from common import (
    BASE_URL,
    PORT_BASE,
    RESULTS,
    SMOKE,
    StationClients,
    cpu_seconds,
    headline,
    load,
    percentiles,
    pids,
    raise_nofile,
    time_plot,
    write_result,
)
from connections import _provision, station_ids
from lag import wait_drained
from overload import OUTCOMES, SERVICES, session_events
from scan_to_start import fleet

GATEWAY_PORTS = (PORT_BASE + 2, PORT_BASE + 6)
WINDOW_S = 1.0
ATTEMPTS = 3  # a station that was refused tries again, at most this often in all


def _timed(station: Any, record: Any) -> None:
    """Time every call ``station`` makes on its current connection, by message type; a
    BootNotification that is not Accepted counts as the station being told to retry."""
    cp = station._cp  # the `ocpp` ChargePoint of the connection just opened
    original = cp.call

    async def call(payload: Any, *args: Any, **kwargs: Any) -> Any:
        asked = time.time()
        name = type(payload).__name__
        try:
            reply = await original(payload, *args, **kwargs)
        except Exception as error:
            record(name, asked, None, type(error).__name__)
            raise
        # The library answers None for a CallError (suppress=True): not an answer we can use.
        outcome = None if reply is not None else "CallError"
        if name == "BootNotification" and reply is not None and reply.status != "Accepted":
            outcome = f"boot_{reply.status}"
        record(name, asked, (time.time() - asked) * 1000, outcome)
        return reply

    cp.call = call


class _Client:
    """One client process's share of the stations, and what they did."""

    def __init__(self, ids: list[str], password: str) -> None:
        self.ids = ids
        self.password = password
        self.stations: dict[str, Any] = {}
        self.calls: list[tuple[str, float, float | None, str | None]] = []
        self.handshakes: list[tuple[float, float | None, str | None]] = []
        self.charging: list[str] = []
        self.failures: collections.Counter[str] = collections.Counter()

    def record(self, name: str, asked: float, ms: float | None, outcome: str | None) -> None:
        self.calls.append((name, asked, ms, outcome))

    async def bring_up(self, st: Any, measure: bool) -> int:
        """Connect and boot, trying again after a refusal; returns the refusals it got."""
        refused = 0
        for attempt in range(ATTEMPTS):
            asked = time.time()
            try:
                await asyncio.wait_for(st.connect(boot=False), 30)
            except Exception as error:
                if measure:
                    self.handshakes.append((asked, None, _refusal(error)))
                refused += 1
                with contextlib.suppress(Exception):
                    await st.close()
                # A charger told when to come back does; otherwise it backs off a little.
                await asyncio.sleep(_retry_after(error) or 1 + attempt + random.random())
                continue
            if measure:
                self.handshakes.append((asked, (time.time() - asked) * 1000, None))
                _timed(st, self.record)
            before = len(self.calls)
            try:
                await asyncio.wait_for(st.boot(), 60)
            except Exception:
                refused += 1
                with contextlib.suppress(Exception):
                    await st.close()
                await asyncio.sleep(1 + attempt + random.random())
                continue
            if any(o and o.startswith("boot_") for _, _, _, o in self.calls[before:]):
                refused += 1
            return refused
        return refused

    async def open(self, connectors: int, order: dict[str, int]) -> dict[str, Any]:
        from plugpay_simulator.stations import SimulatedStation

        sem = asyncio.Semaphore(8)  # handshakes in flight

        async def one(sid: str) -> None:
            port = GATEWAY_PORTS[order.get(sid, 0) % len(GATEWAY_PORTS)]
            st = SimulatedStation(
                sid,
                f"ws://127.0.0.1:{port}",
                self.password,
                connectors=connectors if sid.startswith("BST-") else 1,
                meter_interval_s=3600,
            )
            async with sem:
                await self.bring_up(st, measure=False)
            self.stations[sid] = st

        t = time.time()
        await asyncio.gather(*(one(sid) for sid in self.ids))
        return {
            "opened": sum(1 for s in self.stations.values() if _open(s)),
            "ramp_s": round(time.time() - t, 1),
        }

    async def charge(self, slots: list[Any], drivers: list[str], password: str) -> dict[str, Any]:
        from plugpay_simulator.driver import DriverClient

        phones = []
        for email in drivers:
            phone = DriverClient(BASE_URL, timeout_s=30)
            await phone.login(email, password)
            phones.append(phone)
        gate = asyncio.Semaphore(6)  # drivers at this client's stations at once

        async def one(sid: str, connector: int, phone: Any) -> None:
            st = self.stations[sid]
            async with gate:
                try:
                    issued = await asyncio.wait_for(st.request_code(connector), 30)
                    session_id = await phone.scan(issued["qr"])
                except Exception as error:
                    self.failures[f"scan:{type(error).__name__}"] += 1
                    return
                for _ in range(600):
                    tx = st.transactions.get(connector)
                    if tx is not None and tx.started.is_set():
                        self.charging.append(str(session_id))
                        return
                    await asyncio.sleep(0.1)
                self.failures["not_started"] += 1

        mine = [(sid, c) for sid, c in slots if sid in self.stations]
        await asyncio.gather(
            *(one(sid, c, phones[i % len(phones)]) for i, (sid, c) in enumerate(mine))
        )
        for phone in phones:
            await phone.http.aclose()
        return {"charging": self.charging, "failures": dict(self.failures)}

    async def drop(self) -> dict[str, Any]:
        await asyncio.gather(*(s.close() for s in self.stations.values()))
        queued = 0
        for st in self.stations.values():
            for connector, tx in list(st.transactions.items()):
                if tx.started.is_set() and not tx.stopped.is_set():
                    # The driver unplugs while the station is offline: the stop is queued.
                    with contextlib.suppress(Exception):
                        await st.unplug(connector)
                    queued += 1
        return {"dropped": len(self.stations), "queued_stops": queued}

    async def settle(self) -> dict[str, Any]:
        """After the measured storm: stations still away come back calmly, so every queued
        stop reaches the back office (no session is left charging by the benchmark)."""
        gate = asyncio.Semaphore(8)

        async def one(st: Any) -> None:
            async with gate:
                for _ in range(5):
                    if _open(st):
                        return
                    await self.bring_up(st, measure=False)

        await asyncio.gather(*(one(s) for s in self.stations.values() if not _open(s)))
        return {
            "back": sum(1 for s in self.stations.values() if _open(s)),
            "unsent_stops": self._unsent_stops(),
        }

    def _unsent_stops(self) -> int:
        return sum(
            1
            for st in self.stations.values()
            for tx in st.transactions.values()
            if tx.stopped.is_set() and not tx.stop_sent
        )

    async def reconnect(self, t0: float, window: float) -> dict[str, Any]:
        self.calls.clear()
        self.handshakes.clear()

        async def back(st: Any) -> tuple[int, float | None]:
            await asyncio.sleep(max(0.0, t0 + random.random() * window - time.time()))
            refused = await self.bring_up(st, measure=True)
            return refused, time.time() if _open(st) else None

        done = await asyncio.gather(*(back(s) for s in self.stations.values()))
        return {
            "calls": self.calls,
            "handshakes": self.handshakes,
            "refused": [r for r, _ in done],
            "back_at": [t for _, t in done],
            "unsent_stops": self._unsent_stops(),
        }


def _refusal(error: Exception) -> str:
    response = getattr(error, "response", None)
    return f"HTTP {response.status_code}" if response is not None else type(error).__name__


def _retry_after(error: Exception) -> float | None:
    response = getattr(error, "response", None)
    value = response.headers.get("Retry-After") if response is not None else None
    return float(value) if value and value.isdigit() else None


def _open(st: Any) -> bool:
    return st._ws is not None and st._ws.state.name == "OPEN"


async def _client_main(ids: list[str], password: str, cmd: Any, out: Any) -> None:
    import logging

    logging.disable(logging.CRITICAL)
    loop = asyncio.get_running_loop()
    client = _Client(ids, password)
    while True:
        msg = await loop.run_in_executor(None, cmd.get)
        if msg[0] == "open":
            out.put(await client.open(msg[1], {sid: i for i, sid in enumerate(msg[2])}))
        elif msg[0] == "charge":
            out.put(await client.charge(msg[1], msg[2], msg[3]))
        elif msg[0] == "drop":
            out.put(await client.drop())
        elif msg[0] == "reconnect":
            out.put(await client.reconnect(msg[1], msg[2]))
        elif msg[0] == "settle":
            out.put(await client.settle())
        elif msg[0] == "stop":
            stations = client.stations.values()
            await asyncio.gather(*(s.close() for s in stations), return_exceptions=True)
            out.put({"closed": len(stations)})
            return


def _gather(outs: list[Any], timeout: float) -> list[dict[str, Any]]:
    return [q.get(timeout=timeout) for q in outs]


def windows(calls: list[tuple[str, float, float | None, str | None]], t0: float) -> list[Any]:
    """Per second after the storm began: messages answered and their latency."""
    per: dict[int, list[float]] = collections.defaultdict(list)
    for _, asked, ms, _ in calls:
        if ms is not None:
            per[int((asked + ms / 1000 - t0) // WINDOW_S)].append(ms)
    return [
        {"from_s": k * WINDOW_S, "answered_per_s": len(v) / WINDOW_S, "latency_ms": percentiles(v)}
        for k, v in sorted(per.items())
    ]


def plot(rows: list[dict[str, Any]], window_s: float, name: str) -> str | None:
    x = [r["from_s"] + WINDOW_S / 2 for r in rows]

    def draw(top: Any, bottom: Any) -> None:
        for key in ("p50", "p99"):
            top.plot(x, [r["latency_ms"][key] for r in rows], marker=".", label=key)
        top.axhline(2000, color="red", linestyle=":", label="2 s")
        top.set_ylabel("answer latency (ms)")
        top.set_yscale("log")
        top.legend()
        bottom.bar(x, [r["answered_per_s"] for r in rows], width=WINDOW_S * 0.8)
        bottom.set_ylabel("messages answered / s")
        bottom.set_xlabel("seconds after the storm began")
        for ax in (top, bottom):
            ax.axvspan(0, window_s, alpha=0.08)

    return time_plot(name, "Reconnect storm: every station back within the shaded window", draw)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--stations", type=int, default=40 if SMOKE else 5000)
    p.add_argument("--charging", type=int, default=6 if SMOKE else 1000)
    p.add_argument("--window", type=float, default=3 if SMOKE else 10)
    p.add_argument("--clients", type=int, default=2 if SMOKE else 4)
    a = p.parse_args()
    raise_nofile(65_536)
    before = load()
    f = fleet()
    password = f["station_password"]
    slots = [(sid, c) for c in range(1, f["connectors"] + 1) for sid in f["stations"]]
    if a.charging > len(slots):
        sys.exit(f"storm: the fleet has {len(slots)} connectors for {a.charging} sessions")
    slots = slots[: a.charging]
    extra = max(0, a.stations - len(f["stations"]))
    asyncio.run(_provision(extra, password))
    ids = list(f["stations"]) + station_ids(extra)
    random.Random(1).shuffle(ids)
    clients = StationClients(_client_main, ids, password, a.clients)
    try:
        for q in clients.cmds:
            q.put(("open", f["connectors"], ids))
        opened = _gather(clients.outs, 1800)
        drivers = f["drivers"]
        for i, q in enumerate(clients.cmds):
            q.put(("charge", slots, drivers[i :: a.clients] or drivers[:1], f["driver_password"]))
        charged = _gather(clients.outs, 3600)
        charging = {sid for r in charged for sid in r["charging"]}
        wait_drained(30 if SMOKE else 300)
        for q in clients.cmds:
            q.put(("drop",))
        dropped = _gather(clients.outs, 600)
        snap = pyspy.cpu_snapshot(SERVICES)
        t0 = time.time() + 2.0
        # Where one gateway process spends the storm (the window and the retries after it).
        recorders = [] if SMOKE else pyspy.start("station-gateway", int(a.window) + 30, "-storm")
        for q in clients.cmds:
            q.put(("reconnect", t0, a.window))
        storm = _gather(clients.outs, 1800)
        pyspy.wait(recorders)
        cpu = {
            svc: round(sum(cpu_seconds(pid) - snap.get(str(pid), 0.0) for pid in pids(svc)), 2)
            for svc in SERVICES
        }
        gateways = {
            str(pid): round(cpu_seconds(pid) - snap.get(str(pid), 0.0), 2)
            for pid in pids("station-gateway")
        }
        for q in clients.cmds:
            q.put(("settle",))
        settled = _gather(clients.outs, 1800)
        drained = wait_drained(60 if SMOKE else 600)
    finally:
        clients.stop()
    calls = [c for r in storm for c in r["calls"]]
    shakes = [h for r in storm for h in r["handshakes"]]
    refused = [n for r in storm for n in r["refused"]]
    back = [t for r in storm for t in r["back_at"]]
    by_type: dict[str, list[float]] = collections.defaultdict(list)
    errors: collections.Counter[str] = collections.Counter()
    for name, _, ms, outcome in calls:
        if ms is not None:
            by_type[name].append(ms)
        if outcome:
            errors[f"{name}:{outcome}"] += 1
    events = session_events(charging)
    outcomes: collections.Counter[str] = collections.Counter()
    for sid in charging:
        have = events.get(sid, collections.Counter())
        outcomes[next((n for t, n in OUTCOMES if have[t]), "nothing on the log")] += 1
    billed = [events.get(sid, collections.Counter())["SessionBilled"] for sid in charging]
    answered = [ms for _, _, ms, _ in calls if ms is not None]
    rows = windows(calls, t0)
    result = {
        "stations": len(ids),
        "fleet_stations": len(f["stations"]),
        "connected_before": sum(r["opened"] for r in opened),
        "ramp_s": max(r["ramp_s"] for r in opened),
        "charging_asked": a.charging,
        "charging": len(charging),
        "charging_failures": dict(
            sum((collections.Counter(r["failures"]) for r in charged), collections.Counter())
        ),
        "queued_stops": sum(r["queued_stops"] for r in dropped),
        "reconnect_window_s": a.window,
        "messages": len(calls),
        "answered": len(answered),
        "unanswered": sum(1 for _, _, ms, _ in calls if ms is None),
        "errors": dict(errors),
        "latency_ms": percentiles(answered),
        "latency_ms_by_type": {k: percentiles(v) for k, v in sorted(by_type.items())},
        "handshake_ms": percentiles([ms for _, ms, _ in shakes if ms is not None]),
        "handshakes_refused": collections.Counter(e for _, ms, e in shakes if ms is None),
        "stations_told_to_retry": sum(1 for n in refused if n),
        "most_retries_one_station": max(refused, default=0),
        "stations_back": sum(1 for t in back if t is not None),
        "all_back_after_s": (
            round(max(back) - t0, 1) if back and all(t is not None for t in back) else None
        ),
        "stops_unsent_after_storm": sum(r["unsent_stops"] for r in storm),
        # Then the stations still away came back calmly (not measured), flushing their stops.
        "stations_back_after_settling": sum(r["back"] for r in settled),
        "stops_never_sent": sum(r["unsent_stops"] for r in settled),
        "sessions_billed_once": sum(1 for n in billed if n == 1),
        "sessions_billed_twice": sum(1 for n in billed if n > 1),
        "session_outcomes": dict(outcomes),
        "cpu_s_per_service": cpu,
        "cpu_s_per_gateway_process": gateways,
        "cpu_ms_per_message": (
            round(sum(gateways.values()) * 1000 / len(answered), 2) if answered else None
        ),
        "backlog_after_drain": sum(drained.values()),
        "profile_station_gateway": None
        if SMOKE
        else {
            "svg": "bench/results/profile-station-gateway-storm.svg",
            "summary": pyspy.summarise(RESULTS / "profile-station-gateway-storm.txt"),
        },
        "windows": rows,
        "plot": plot(rows, a.window, f"storm{'-smoke' if SMOKE else ''}.png"),
    }
    headline(
        result,
        (
            "stations",
            "charging",
            "messages",
            "unanswered",
            "latency_ms",
            "stations_told_to_retry",
            "most_retries_one_station",
            "all_back_after_s",
            "sessions_billed_once",
            "sessions_billed_twice",
        ),
    )
    write_result("storm", result, before)


if __name__ == "__main__":
    main()
