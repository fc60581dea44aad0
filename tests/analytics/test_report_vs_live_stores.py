"""Issue 11's "done means": a compressed month of activity through the real flow, exported from
the event log, and the report's totals equal to the live stores' totals.

``plugpay run --stations 0`` (every service in one process, embedded PostgreSQL, embedded event
log) runs as a subprocess on a free port with a temporary data folder. Simulated chargers (OCPP
1.6J and 2.0.1, over real WebSockets) and drivers' phones (HTTP) make as many sessions as two
minutes allow (16 connectors at once; on the loaded 2-core development machine a session takes
20-70 s from code to receipt, so 24-45 billed plus the others; the floor is
``PLUGPAY_ANALYTICS_MIN_BILLED``, default 15): billed ones of varying energy (wallet and card,
unplugged or stopped from the app), denials (no money, declined card, a restricted station),
abandoned ones (the charger refuses the start) and expired codes. Then ``plugpay export`` (as
an analyst role that may only SELECT the log) and ``plugpay report`` run as the analyst would,
and the report's totals are compared with session-svc's session store and billing-svc's receipts
and ledger, read-only in their own databases: sessions and per-status counts, denial reasons,
energy in Wh, revenue and cost to the cent, per station and per day.

Run from the workspace venv (it needs every package): ``python3 -m uv run --no-sync pytest
tests/analytics``. ``PLUGPAY_ANALYTICS_DRIVE_S`` sets how long the activity runs (default 120).
Every wait is on an observable condition with a bounded deadline; nothing sleeps to settle.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))

from e2e_support import (
    SETUP_TIMEOUT_S,
    VENV_BIN,
    Deployment,
    World,
    eventually,
    start_embedded,
    stop_embedded_process,
)
from plugpay_app.driver import DriverClient, DriverError
from plugpay_app.simulator import SimulatedStation, Transaction

pytestmark = pytest.mark.asyncio(loop_scope="module")

DRIVE_S = float(os.environ.get("PLUGPAY_ANALYTICS_DRIVE_S", "120"))
# Codes expire this long after they were issued (defaults: 300 s + 30 s), so that the expired
# codes of the first part of the run expire within it.
CODE_TOLERANCE_S, CLOCK_SKEW_S = 60, 5
EXPIRED_CODES_UNTIL_S = 20.0  # expired codes are issued only in the first seconds
TERMINAL = ("billed", "denied", "expired", "abandoned", "failed")
COMPLETED = ("completed", "cost_calculated", "billed")
WAIT_S = 90.0
POLL_S = 0.25
MIN_BILLED = int(os.environ.get("PLUGPAY_ANALYTICS_MIN_BILLED", "15"))
CONNECTORS = 2  # per public station: one worker (a queue of drivers) per connector
# A scan right after the code was made may come before session-svc has it: try again.
RETRYABLE_SCAN = {"code_invalid", "code_not_ready", "station_offline", "store_rebuilding"}


@dataclass
class Tally:
    """What the drivers and chargers saw: the test's own account of the month."""

    outcomes: Counter[str] = field(default_factory=Counter)
    denials: Counter[str] = field(default_factory=Counter)
    energy_wh: int = 0  # meter stop - meter start of every transaction the chargers ran
    sessions: set[uuid.UUID] = field(default_factory=set)
    expired_codes: set[uuid.UUID] = field(default_factory=set)
    billed_s: list[float] = field(default_factory=list)  # code request to billed


@pytest.fixture(scope="module")
def deployment() -> Iterator[Deployment]:
    """``plugpay run --stations 0`` with its own data folder, stopped with Ctrl-C at the end."""
    overrides = {
        "SESSION_SVC_CODE_TOLERANCE_S": str(CODE_TOLERANCE_S),
        "SESSION_SVC_CLOCK_SKEW_S": str(CLOCK_SKEW_S),
    }
    with tempfile.TemporaryDirectory(prefix="plugpay-analytics-") as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        with pytest.MonkeyPatch.context() as env:
            for key, value in overrides.items():
                env.setenv(key, value)
            running = start_embedded(data)  # the subprocess gets the environment now
        assert running.process is not None and running.log_path is not None
        try:
            yield running
        finally:
            code = stop_embedded_process(running.process)
            log = running.log_path.read_text(errors="replace")
            assert code == 0, f"plugpay run exited with {code} on Ctrl-C:\n{log[-3000:]}"
            assert "Plugpay stopped" in log, log[-3000:]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(deployment: Deployment) -> AsyncIterator[World]:
    world = World(deployment)
    await world.start()
    try:
        yield world
    finally:
        await world.end_test()
        await world.close()


async def wait_status(
    phone: DriverClient, session_id: uuid.UUID, states: set[str], timeout_s: float = WAIT_S
) -> dict[str, Any]:
    """Follow the session's live updates (Server-Sent Events: pushed, no polling load on a busy
    server) until it is in one of ``states`` or terminal; returns the view."""
    async with asyncio.timeout(timeout_s):
        while True:
            try:
                async for view in phone.follow(session_id):
                    if view.get("status") in states or view.get("status") in TERMINAL:
                        return view
            except DriverError as error:
                if error.status != 404:  # the store may not have the session right after a scan
                    raise
            await asyncio.sleep(POLL_S)


def code_session(code: dict[str, Any]) -> uuid.UUID:
    # the ocpp library snake-cases a 2.0.1 DataTransfer's dict data, not 1.6's JSON string
    return uuid.UUID(code.get("sessionId") or code["session_id"])


async def until(condition: Any, timeout_s: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not condition():
        if loop.time() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(POLL_S)


class Month:
    """The activity: one worker per public connector, each playing the drivers who come to it."""

    def __init__(self, world: World, rng: random.Random) -> None:
        self.world = world
        self.rng = rng
        self.tally = Tally()
        self.stations: list[SimulatedStation] = []
        self.restricted: SimulatedStation | None = None
        self.broke: DriverClient | None = None
        self.declined: DriverClient | None = None
        self.restricted_lock = asyncio.Lock()

    async def set_up(self) -> None:
        w = self.world
        specs = [  # (OCPP version, power W, energy speed-up): 5-11 kWh per 2 s meter tick
            ("1.6", 11_000, 900.0),
            ("2.0.1", 22_000, 600.0),
            ("1.6", 22_000, 450.0),
            ("2.0.1", 11_000, 1_200.0),
            ("1.6", 7_400, 1_800.0),
            ("2.0.1", 22_000, 900.0),
            ("1.6", 22_000, 600.0),
            ("2.0.1", 7_400, 1_200.0),
        ]
        limit = asyncio.Semaphore(3)

        async def station(version: str, power: int, speedup: float) -> SimulatedStation:
            async with limit:
                station_id = await w.register_station(connectors=CONNECTORS, power_w=power)
                return await w.connect_station(
                    station_id,
                    ocpp_version=version,
                    connectors=CONNECTORS,
                    power_w=power,
                    energy_speedup=speedup,
                    meter_interval_s=2.0,  # fewer meter events: the server is the bottleneck
                )

        async def restricted() -> SimulatedStation:
            station_id = await w.register_station(
                access={"kind": "restricted", "allowed_organisations": [str(w.organisation_id)]}
            )
            return await w.connect_station(station_id, ocpp_version="2.0.1")

        self.stations = list(await asyncio.gather(*(station(*s) for s in specs)))
        self.restricted = await restricted()
        broke = await w.driver()  # no money, no card
        declined = await w.driver(card="pm_card_chargeDeclined")
        self.broke, self.declined = broke.phone, declined.phone

    async def run(self, drive_s: float) -> None:
        loop = asyncio.get_running_loop()
        began = loop.time()
        for station in self.stations[:4]:  # codes shown on a screen that nobody scans
            code = await station.request_code(CONNECTORS)
            self.tally.expired_codes.add(code_session(code))
        workers = []
        n = 0
        for station in self.stations:
            for connector in range(1, CONNECTORS + 1):
                n += 1
                # half pay from the wallet, half by card
                kwargs = {"wallet_minor": 60_000} if n % 2 else {"card": "pm_card_visa"}
                driver = await self.world.driver(**kwargs)
                workers.append(
                    self.worker(station, connector, driver.phone, began + drive_s, began)
                )
        await asyncio.gather(*workers)

    async def worker(
        self,
        station: SimulatedStation,
        connector: int,
        phone: DriverClient,
        end: float,
        began: float,
    ) -> None:
        loop = asyncio.get_running_loop()
        rng = random.Random(self.rng.random())
        while loop.time() < end:
            r = rng.random()
            if r < 0.04 and loop.time() - began < EXPIRED_CODES_UNTIL_S:
                code = await station.request_code(connector)  # nobody scans it
                self.tally.expired_codes.add(code_session(code))
            elif r < 0.09:
                await self.denied(station, connector, self.broke, "insufficient_funds")
            elif r < 0.13:
                await self.denied(station, connector, self.declined, "payment_declined")
            elif r < 0.17:
                assert self.restricted is not None
                await self.denied(self.restricted, 1, phone, "access_denied")
            elif r < 0.21:
                await self.abandoned(station, connector, phone)
            else:
                await self.billed(station, connector, phone, rng, by_app=r < 0.33)

    async def scan(
        self, station: SimulatedStation, connector: int, phone: Any, *, typed: bool = False
    ) -> uuid.UUID:
        code = await station.request_code(connector)
        # Typed codes are rate-limited per driver and per address (all of ours are 127.0.0.1).
        presented = code["code"] if typed else code["qr"]

        async def attempt() -> uuid.UUID | None:
            try:
                return await phone.scan(presented)
            except DriverError as error:
                if error.reason in RETRYABLE_SCAN:
                    return None
                raise

        session_id = await eventually(attempt, within=SETUP_TIMEOUT_S, what="scan", every=POLL_S)
        self.tally.sessions.add(session_id)
        return session_id

    async def denied(
        self, station: SimulatedStation, connector: int, phone: Any, reason: str
    ) -> None:
        session_id = await self.scan(station, connector, phone)
        view = await wait_status(phone, session_id, {"denied"})
        assert view["status"] == "denied", view
        assert view["denial"]["reason"] == reason, view
        self.tally.outcomes["denied"] += 1
        self.tally.denials[reason] += 1

    async def abandoned(self, station: SimulatedStation, connector: int, phone: Any) -> None:
        """The charger refuses the start (it believes the connector busy): the gateway abandons
        the session and billing releases the hold."""
        blocker = Transaction(connector, "blocked", "blocked", 0, 0)
        station.transactions[connector] = blocker
        try:
            session_id = await self.scan(station, connector, phone)
            view = await wait_status(phone, session_id, {"abandoned"})
            assert view["status"] == "abandoned", view
        finally:
            if station.transactions.get(connector) is blocker:
                del station.transactions[connector]
        self.tally.outcomes["abandoned"] += 1

    async def billed(
        self,
        station: SimulatedStation,
        connector: int,
        phone: Any,
        rng: random.Random,
        *,
        by_app: bool,
    ) -> None:
        began = time.monotonic()
        previous = station.transactions.get(connector)
        session_id = await self.scan(station, connector, phone, typed=rng.random() < 0.02)
        # The charger's own view: the back office told it to start (the app learns it later).
        await until(
            lambda: (
                (current := station.transactions.get(connector)) is not None
                and current is not previous
                and current.started.is_set()
            ),
            WAIT_S,
            f"the start of {session_id} on {station.station_id}/{connector}",
        )
        tx = station.transactions[connector]
        target = rng.choice((1, 2, 3, 5, 8, 12, 18, 25)) * 1000  # Wh, a few meter ticks
        await until(
            lambda: tx.meter_wh - tx.meter_start_wh >= target or tx.stopped.is_set(),
            60.0,
            f"{target} Wh on {station.station_id}/{connector}",
        )
        if by_app:

            async def stop() -> bool | None:
                if tx.stopped.is_set():  # the back office stopped it at the hold's limit
                    return True
                try:
                    await phone.stop(session_id)
                except DriverError as error:
                    if error.reason == "not_charging":  # the store has not seen the start yet
                        return None
                    raise
                return True

            await eventually(stop, within=WAIT_S, what="stop from the app", every=POLL_S)
            await until(tx.stopped.is_set, WAIT_S, "the charger stops on the app's request")
        await station.unplug(connector)
        view = await wait_status(phone, session_id, {"billed"})
        assert view["status"] == "billed", view
        assert view["energy_wh"] == tx.meter_wh - tx.meter_start_wh, (view, tx)
        self.tally.energy_wh += tx.meter_wh - tx.meter_start_wh
        self.tally.outcomes["billed"] += 1
        self.tally.billed_s.append(time.monotonic() - began)


async def store_totals(world: World) -> dict[str, Any]:
    """The live stores' totals, read-only in the services' own databases, in one snapshot each."""
    sessions = await world.pool("sessions")
    billing = await world.pool("billing")
    async with (
        sessions.acquire() as conn,
        conn.transaction(isolation="repeatable_read", readonly=True),
    ):
        by_status = dict(await conn.fetch("SELECT status, count(*) FROM sessions GROUP BY status"))
        denials = dict(
            await conn.fetch(
                "SELECT state->>'denial_reason', count(*) FROM sessions"
                " WHERE status = 'denied' GROUP BY 1"
            )
        )
        completed = await conn.fetchrow(
            "SELECT count(*) AS sessions,"
            " coalesce(sum((state->>'energy_wh')::bigint), 0) AS energy_wh,"
            " count(DISTINCT station_id) AS stations"
            " FROM sessions WHERE status = ANY($1::text[])",
            list(COMPLETED),
        )
        per_station = {
            r["station_id"]: (r["sessions"], r["energy_wh"])
            for r in await conn.fetch(
                "SELECT station_id, count(*) AS sessions,"
                " sum((state->>'energy_wh')::bigint) AS energy_wh"
                " FROM sessions WHERE status = ANY($1::text[]) GROUP BY station_id",
                list(COMPLETED),
            )
        }
        per_day = {
            r["day"].isoformat(): (r["sessions"], r["energy_wh"])
            for r in await conn.fetch(
                "SELECT ((state->>'started_at')::timestamptz AT TIME ZONE"
                " (state->>'time_zone'))::date AS day, count(*) AS sessions,"
                " sum((state->>'energy_wh')::bigint) AS energy_wh"
                " FROM sessions WHERE status = ANY($1::text[]) GROUP BY 1",
                list(COMPLETED),
            )
        }
        scanned = await conn.fetchval(
            "SELECT count(*) FROM sessions WHERE state->>'scanned_at' IS NOT NULL"
        )
        charged_in_store = await conn.fetchval(
            "SELECT coalesce(sum((state->'charged'->>'amount_minor')::bigint), 0)"
            " FROM sessions WHERE status = 'billed'"
        )
    async with (
        billing.acquire() as conn,
        conn.transaction(isolation="repeatable_read", readonly=True),
    ):
        receipts = await conn.fetchrow(
            "SELECT count(*) AS receipts, coalesce(sum(charged), 0) AS charged,"
            " coalesce(sum(total_incl_vat), 0) AS cost, coalesce(sum(energy_wh), 0) AS energy_wh,"
            " coalesce(sum(debt), 0) AS debt, array_agg(DISTINCT currency) AS currencies"
            " FROM receipts"
        )
        ledger = dict(
            await conn.fetch(
                "SELECT code, sum(amount) FROM transfers WHERE code = ANY($1::text[])"
                " GROUP BY code",
                ["session_capture", "session_shortfall", "operator_revenue", "vat_collected"],
            )
        )
        unbalanced = await conn.fetch(
            "SELECT currency FROM accounts GROUP BY currency"
            " HAVING sum(debits_posted) <> sum(credits_posted)"
            " OR sum(debits_pending) <> sum(credits_pending)"
        )
    return {
        "by_status": by_status,
        "issued": sum(by_status.values()),
        "scanned": scanned,
        "denials": denials,
        "completed": completed["sessions"],
        "energy_wh": completed["energy_wh"],
        "stations": completed["stations"],
        "per_station": per_station,
        "per_day": per_day,
        "charged_in_store": charged_in_store,
        "receipts": dict(receipts),
        # what the ledger captured: from the holds, plus any shortfall from the wallet or card
        "ledger_captured": int(ledger.get("session_capture", 0))
        + int(ledger.get("session_shortfall", 0)),
        "ledger_cost": int(ledger.get("operator_revenue", 0)) + int(ledger.get("vat_collected", 0)),
        "ledger_balanced": not unbalanced,
    }


async def store_settled(world: World, tally: Tally) -> dict[str, Any] | None:
    """The stores have caught up: every session the gateway issued is in session-svc's store and
    terminal there, our expired codes have expired, every billed session has its receipt."""
    gateway = await world.pool("station_gateway")
    issued = await gateway.fetchval("SELECT count(*) FROM sessions")
    totals = await store_totals(world)
    open_ = {s: n for s, n in totals["by_status"].items() if s not in TERMINAL}
    if open_ or totals["issued"] != issued:
        return None
    if totals["receipts"]["receipts"] != totals["by_status"].get("billed", 0):
        return None
    return totals


def plugpay(*args: str, timeout_s: float = 300) -> str:
    done = subprocess.run(
        [str(VENV_BIN / "plugpay"), *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
        env={**os.environ, "PLUGPAY_LOG_LEVEL": "WARNING"},
    )
    assert done.returncode == 0, f"plugpay {args[0]} -> {done.returncode}:\n{done.stderr[-3000:]}"
    return done.stdout


async def analyst_url(deployment: Deployment) -> str:
    """A role that may only read the event log, as docs/analytics.md grants it."""
    owner_url = deployment.database_urls["eventlog"]
    role = f"analyst_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(owner_url)
    try:
        await conn.execute(f"CREATE ROLE {role} LOGIN")
        await conn.execute(f"GRANT USAGE ON SCHEMA eventlog TO {role}")
        await conn.execute(f"GRANT SELECT ON eventlog.records, eventlog.partition_heads TO {role}")
        owner = await conn.fetchval("SELECT current_user")
    finally:
        await conn.close()
    scheme, rest = owner_url.split("://", 1)
    credentials, _, location = rest.partition("@")
    user = credentials.split(":", 1)[0]
    assert user == owner, (user, owner)
    return f"{scheme}://{role}@{location}"


async def test_report_totals_equal_the_live_stores(
    world: World, deployment: Deployment, tmp_path: Path
) -> None:
    began = time.monotonic()
    month = Month(world, random.Random(11))
    await month.set_up()
    ready = time.monotonic()
    await month.run(DRIVE_S)
    driven = time.monotonic()
    tally = month.tally
    totals = await eventually(
        lambda: store_settled(world, tally),
        within=CODE_TOLERANCE_S + CLOCK_SKEW_S + SETUP_TIMEOUT_S,
        what="the session store and billing settle (every session terminal, receipts written)",
        every=0.5,
    )
    settled = time.monotonic()

    # The analyst's way: export the log read-only, then the report, both with the CLI.
    out = tmp_path / "month.duckdb"
    exported = plugpay(
        "export",
        "--source",
        "embedded",
        "--eventlog-url",
        await analyst_url(deployment),
        "--out",
        str(out),
        "--no-progress",
    )
    reported = plugpay("report", "--input", str(out), "--out", str(tmp_path / "report"))
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    done = time.monotonic()
    report = summary["totals"]
    revenue = {r["currency"]: r for r in summary["revenue"]}
    cost = {r["currency"]: r["cost_minor"] for r in summary["cost"]}
    print(
        f"\n[analytics] set-up {ready - began:.1f}s, activity {driven - ready:.1f}s,"
        f" settle {settled - driven:.1f}s, export+report {done - settled:.1f}s\n"
        f"[analytics] drivers saw {dict(tally.outcomes)} ({len(tally.expired_codes)} codes left"
        f" to expire), denials {dict(tally.denials)}; code to billed: median"
        f" {statistics.median(tally.billed_s):.1f}s, max {max(tally.billed_s):.1f}s\n"
        f"[analytics] stores: {totals['by_status']}, {totals['energy_wh']} Wh,"
        f" receipts {totals['receipts']['charged']} charged / {totals['receipts']['cost']} cost,"
        f" ledger captured {totals['ledger_captured']}\n"
        f"[analytics] {exported.strip()}\n[analytics] {reported.splitlines()[0]}"
    )

    assert summary["undecodable"] == 0

    # Sessions and per-status counts: the report = session-svc's store (= what drivers saw).
    by_status = totals["by_status"]
    assert set(by_status) <= {"billed", "denied", "expired", "abandoned"}, by_status
    assert report["codes_issued"] == totals["issued"]
    assert report["scanned"] == totals["scanned"] == len(tally.sessions)
    assert report["sessions"] == totals["completed"] == by_status["billed"]
    assert report["billed"] == by_status["billed"] == tally.outcomes["billed"]
    assert report["denied"] == by_status["denied"] == tally.outcomes["denied"]
    assert report["abandoned"] == by_status["abandoned"] == tally.outcomes["abandoned"]
    assert report["expired"] == by_status["expired"] >= len(tally.expired_codes)
    assert report["stations"] == totals["stations"]
    losses = {r["reason"]: r["sessions"] for r in summary["losses"] if r["outcome"] == "denied"}
    assert losses == totals["denials"] == dict(tally.denials)

    # Energy in Wh: the report = the store = the receipts = what the chargers metered.
    assert report["energy_wh"] == totals["energy_wh"] == totals["receipts"]["energy_wh"]
    assert report["energy_wh"] == tally.energy_wh

    # Revenue to the cent: the report = the receipts = the ledger's captures = the store.
    assert set(revenue) == set(totals["receipts"]["currencies"]) == {"EUR"}
    assert revenue["EUR"]["revenue_minor"] == totals["receipts"]["charged"]
    assert revenue["EUR"]["revenue_minor"] == totals["ledger_captured"]
    assert revenue["EUR"]["revenue_minor"] == totals["charged_in_store"]
    assert revenue["EUR"]["billed"] == totals["receipts"]["receipts"]
    assert cost["EUR"] == totals["receipts"]["cost"] == totals["ledger_cost"]
    assert totals["receipts"]["debt"] == 0  # so what was captured is the whole cost
    assert revenue["EUR"]["revenue_minor"] == cost["EUR"]
    assert totals["ledger_balanced"]

    # Per station and per day (the stations' time zone), sessions and energy.
    assert {
        r["station_id"]: (r["sessions"], r["energy_wh"]) for r in summary["per_station"]
    } == totals["per_station"]
    assert {r["day"]: (r["sessions"], r["energy_wh"]) for r in summary["per_day"]} == totals[
        "per_day"
    ]
    assert sum(r["revenue_minor"] for r in summary["per_day"]) == totals["receipts"]["charged"]
    assert (tmp_path / "report" / "index.html").read_text().count("<img") == 7

    # Sessions of every kind were made, and enough of them.
    assert all(
        tally.denials[r] for r in ("insufficient_funds", "payment_declined", "access_denied")
    ), tally.denials
    assert tally.outcomes["abandoned"] and tally.expired_codes, tally
    assert tally.outcomes["billed"] >= MIN_BILLED, tally.outcomes
