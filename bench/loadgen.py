"""Open-loop load of real clients: OCPP charge points (SimulatedStation, the `ocpp` library) and
phones (DriverClient, httpx), in worker processes separate from the services and each other.

Each worker owns some stations (every connector is a "slot") and some drivers. Scans are
scheduled at fixed planned times (worker w of W takes planned times t0 + (i*W + w)/rate) and
every latency is measured from the PLANNED time, so a slow system cannot slow the load down
(no coordinated omission). Before its planned time a scan takes a free slot and the station
asks for a session code (the driver picking "pay with phone"); at the planned time the phone
posts the code; the latency ends when the station receives RemoteStartTransaction (1.6) /
RequestStartTransaction (2.0.1) — the simulator's ``on_start_request`` hook.

lifecycle "start": after the start the driver unplugs (the session then completes and bills in
the background); lifecycle "full": one meter value, unplug, and the phone polls its session
until it is billed (scan-to-billed is measured too).

All clocks are time.time() on one machine (the workers and the stations share it).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import multiprocessing as mp
import os
import random
import time
from dataclasses import dataclass
from typing import Any

CODE_LEAD_S = 1.5  # the code is requested this long before the planned scan
COOLDOWN_S = 2.0  # a connector rests this long after the driver unplugged
# A phone whose code the store has not read yet asks again after this long (the API's
# Retry-After is 1 s; the app retries sooner while the driver looks at the price screen).


@dataclass
class StepSpec:
    rate: float
    duration_s: float
    lifecycle: str  # "start" | "full"
    workers: int
    base_url: str
    stations: list[str]
    connectors: int
    station_password: str
    drivers: list[str]
    driver_password: str
    ocpp_version: str = "1.6"
    timeout_s: float = 20.0
    # (rate, seconds) one after the other instead of ``rate`` for ``duration_s`` (overload.py).
    phases: list[tuple[float, float]] | None = None

    def offsets(self) -> list[float]:
        """Every scan's planned time, in seconds after the start."""
        phases = self.phases or [(self.rate, self.duration_s)]
        out: list[float] = []
        start = 0.0
        for rate, seconds in phases:
            out += [start + k / rate for k in range(int(rate * seconds))]
            start += seconds
        return out


async def _worker(
    spec: StepSpec, index: int, ready: Any, go: Any, done: Any, release: Any
) -> dict[str, Any]:
    from plugpay_simulator.driver import DriverClient, DriverError
    from plugpay_simulator.stations import SimulatedStation

    logging.basicConfig(level=logging.WARNING)
    my_stations = spec.stations[index :: spec.workers]
    my_drivers = spec.drivers[index :: spec.workers] or spec.drivers[:1]
    stations: list[SimulatedStation] = []
    waiters: dict[tuple[str, int], asyncio.Future[float]] = {}

    def hook_for(st: SimulatedStation) -> Any:
        def hook(connector: int, _ref: str) -> None:
            fut = waiters.get((st.station_id, connector))
            if fut is not None and not fut.done():
                fut.set_result(time.time())

        return hook

    sem = asyncio.Semaphore(20)

    async def connect(sid: str) -> None:
        st = SimulatedStation(
            sid,
            spec.base_url.replace("http", "ws", 1),
            spec.station_password,
            ocpp_version=spec.ocpp_version,
            connectors=spec.connectors,
            meter_interval_s=3600,
        )
        st.on_start_request = hook_for(st)
        async with sem:
            await st.connect()
        stations.append(st)

    await asyncio.gather(*(connect(s) for s in my_stations))
    phones = []
    for email in my_drivers:
        phone = DriverClient(spec.base_url, timeout_s=spec.timeout_s)
        await phone.login(email, spec.driver_password)
        phones.append(phone)
    slots = [(st, c) for c in range(1, spec.connectors + 1) for st in stations]
    random.Random(index).shuffle(slots)
    free: asyncio.Queue[tuple[Any, int]] = asyncio.Queue()
    for slot in slots:
        free.put_nowait(slot)
    phone_cycle = itertools.cycle(phones)

    # Let the back office absorb the burst of boots and connector statuses first.
    await asyncio.sleep(1.0 if os.environ.get("BENCH_SMOKE") == "1" else max(5.0, len(slots) / 100))
    ready.put(index)
    # `go` is a multiprocessing.Value the parent sets; no asyncio.Event crosses processes.
    while go.value == 0.0:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    t0 = go.value
    offsets = spec.offsets()
    mine = [i for i in range(len(offsets)) if i % spec.workers == index]
    out: dict[str, Any] = {
        "latency_ms": [],
        "billed_ms": [],
        "failures": {},
        "slot_late": 0,
        "scans": len(mine),
        "worker": index,
        "pid": os.getpid(),
        # Admission control: 503 busy answers (each retried after its Retry-After) and how long
        # each took to arrive; (planned offset s, scan-to-start ms) of every started scan.
        "busy": 0,
        "busy_ms": [],
        "timeline": [],
        "session_ids": [],
    }

    def fail(reason: str) -> None:
        out["failures"][reason] = out["failures"].get(reason, 0) + 1

    async def one(i: int) -> None:
        planned = t0 + offsets[i]
        await asyncio.sleep(max(0.0, planned - CODE_LEAD_S - time.time()))
        st, connector = await free.get()
        if time.time() > planned - 0.2:
            out["slot_late"] += 1
        phone = next(phone_cycle)
        key = (st.station_id, connector)
        fut: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        waiters[key] = fut
        try:
            try:
                issued = await asyncio.wait_for(st.request_code(connector), spec.timeout_s)
            except Exception as error:
                fail(f"code:{type(error).__name__}:{str(error)[:60]}")
                return
            await asyncio.sleep(max(0.0, planned - time.time()))
            session_id = None
            refused = 0
            while session_id is None:
                asked = time.time()
                try:  # a code just shown is accepted at once: only "busy" is asked again
                    session_id = await phone.scan(issued["qr"], busy_retries=0)
                except DriverError as error:
                    if error.reason == "busy" and time.time() < planned + spec.timeout_s:
                        # Beyond capacity: refused before anything was done; the app waits
                        # the Retry-After (1 s) and asks again.
                        out["busy"] += 1
                        refused += 1
                        out["busy_ms"].append(
                            (round(asked - t0, 3), round((time.time() - asked) * 1000, 1))
                        )
                        await asyncio.sleep(1.0)
                        continue
                    fail(f"scan:{error.reason}")
                    return
                except Exception as error:
                    fail(f"scan:{type(error).__name__}")
                    return
            out["session_ids"].append(str(session_id))  # accepted: must end billed, once
            try:
                started = await asyncio.wait_for(fut, planned + spec.timeout_s - time.time())
            except TimeoutError:
                try:  # where the session got stuck, as the phone sees it
                    seen = (await phone.session(session_id)).get("status")
                except Exception as error:
                    seen = type(error).__name__
                fail(f"no_start_in_time:{seen}")
                # A start that still arrives is unplugged (the driver gave up and leaves), so
                # the connector is free for the next scan and the session ends billed.
                for _ in range(int(spec.timeout_s / 0.5)):
                    tx = st.transactions.get(connector)
                    if tx is not None and tx.started.is_set():
                        with contextlib.suppress(Exception):
                            await st.unplug(connector)
                        break
                    await asyncio.sleep(0.5)
                return
            out["latency_ms"].append((started - planned) * 1000)
            out["timeline"].append(
                (round(offsets[i], 3), round((started - planned) * 1000, 1), refused)
            )
            tx = None
            for _ in range(200):
                tx = st.transactions.get(connector)
                if tx is not None and tx.started.is_set():
                    break
                await asyncio.sleep(0.05)
            if tx is None or not tx.started.is_set():
                fail("station_not_started")
                return
            if spec.lifecycle == "full":
                tx.meter_wh += 2_000
                await st.send_meter_values(tx)
                await asyncio.sleep(0.5)
            await st.unplug(connector)
            if spec.lifecycle == "full":
                deadline = time.time() + spec.timeout_s
                while True:
                    await asyncio.sleep(0.5)
                    try:
                        state = (await phone.session(session_id)).get("status")
                    except Exception:
                        state = None
                    if state == "billed":
                        out["billed_ms"].append((time.time() - planned) * 1000)
                        break
                    if state in {"denied", "abandoned", "failed"}:
                        fail(f"ended:{state}")
                        break
                    if time.time() > deadline:
                        fail("not_billed_in_time")
                        break
        finally:
            waiters.pop(key, None)
            await asyncio.sleep(COOLDOWN_S)
            free.put_nowait((st, connector))

    await asyncio.gather(*(one(i) for i in mine))
    # The fleet stays connected until the parent has measured the step (``on_done``): closing
    # 200 stations is fleet churn, not the sessions' work.
    with done.get_lock():
        done.value += 1
    while release.value == 0:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    for st in stations:
        with contextlib.suppress(Exception):
            await st.close()
    for phone in phones:
        await phone.http.aclose()
    return out


def _entry(
    spec: StepSpec, index: int, ready: Any, go: Any, done: Any, release: Any, results: Any
) -> None:
    try:
        results.put(asyncio.run(_worker(spec, index, ready, go, done, release)))
    except Exception as error:  # reported, not swallowed
        results.put({"worker": index, "error": repr(error)})


def run_step(spec: StepSpec, on_start: Any = None, on_done: Any = None) -> dict[str, Any]:
    """Run one fixed-rate step in ``spec.workers`` processes; returns the merged raw results.

    ``on_start(t0)`` is called in the parent once the stations are connected, the drivers
    logged in and the load scheduled (e.g. to start a profiler or a CPU count); ``on_done()``
    once every worker has finished its scans, before any station disconnects."""
    ctx = mp.get_context("spawn")
    ready, results = ctx.Queue(), ctx.Queue()
    go = ctx.Value("d", 0.0)
    done, release = ctx.Value("i", 0), ctx.Value("i", 0)
    procs = [
        ctx.Process(target=_entry, args=(spec, i, ready, go, done, release, results), daemon=True)
        for i in range(spec.workers)
    ]
    for p in procs:
        p.start()
    got = 0
    deadline = time.time() + 120
    while got < spec.workers and time.time() < deadline:
        try:
            ready.get(timeout=1)
            got += 1
        except Exception:
            if not all(p.is_alive() for p in procs):
                break
    go.value = time.time() + CODE_LEAD_S + 0.5
    if on_start is not None:
        on_start(go.value)
    deadline = time.time() + CODE_LEAD_S + spec.duration_s + spec.timeout_s + 150
    while done.value < len(procs) and time.time() < deadline:
        if not all(p.is_alive() for p in procs):
            break
        time.sleep(0.05)
    try:
        if on_done is not None:
            on_done()
    finally:
        release.value = 1
    merged: dict[str, Any] = {
        "latency_ms": [],
        "billed_ms": [],
        "failures": {},
        "slot_late": 0,
        "scans": 0,
        "errors": [],
        "busy": 0,
        "busy_ms": [],
        "timeline": [],
        "session_ids": [],
    }
    for _ in range(spec.workers):
        try:
            r = results.get(timeout=spec.duration_s + spec.timeout_s + 150)
        except Exception:
            merged["errors"].append("worker timed out")
            continue
        if "error" in r:
            merged["errors"].append(r["error"])
            continue
        merged["latency_ms"] += r["latency_ms"]
        merged["billed_ms"] += r["billed_ms"]
        merged["slot_late"] += r["slot_late"]
        merged["scans"] += r["scans"]
        merged["busy"] += r["busy"]
        merged["busy_ms"] += r["busy_ms"]
        merged["timeline"] += r["timeline"]
        merged["session_ids"] += r["session_ids"]
        for k, v in r["failures"].items():
            merged["failures"][k] = merged["failures"].get(k, 0) + v
    for p in procs:
        p.join(timeout=10)
        if p.is_alive():
            p.kill()
    merged["t0"] = go.value
    return merged
