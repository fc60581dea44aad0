"""Analytics against the truth: a month of activity through the real flow, thousands of
sessions, exported from the event log; the report's totals must equal the live stores' totals,
and an interrupted and resumed export must equal one run.

**The product.** An isolated *distributed* stack (``STACK_NAME=analytics PORT_BASE=8500
scripts/stack.sh up``: every service its own uvicorn process, two gateway processes, nginx on
127.0.0.1:8480, databases ``*_analytics`` and topics ``analytics.*`` on the shared Kafka and
PostgreSQL), wiped at the start (its databases dropped, its topics deleted)
so that the stores hold this run only, and stopped at the end. The services use both cores,
where ``plugpay run`` (one process) had one.

**The month.** Simulated chargers (OCPP 1.6J and 2.0.1 over real WebSockets through nginx,
7.4-50 kW, 2-4 connectors) and drivers' phones (HTTP) run sessions on every public connector at
once for ``PLUGPAY_ANALYTICS_DRIVE_S`` seconds: billed ones of realistic energy (wallet and
card, unplugged or stopped from the app), denials (no money, declined card, a restricted
station), abandoned ones (the charger refuses the start) and expired codes. Each connector has
its own clock (``SimulatedStation(clock=...)``), and the stations report their OCPP timestamps
(status, start, meter values, stop) on it: the run's real progress is mapped onto next calendar
month (in the stations' time zone, Europe/Berlin) through an hour-of-week demand profile
(weekday commute peaks, weekend middays, quieter nights, day-to-day variation), so the report's
days, hour-of-week heat map, durations and utilisation look like a month; while a connector
charges its clock runs ``ENERGY_SPEEDUP`` times real time, the same factor as its energy, so
energy, power and duration agree (a 1.5 s meter tick is a 45-minute meter interval). The month is
next month, not last month, because the gateway measures a session's time limit from the
station's start time to its own receive time: a start weeks in the past would hit the limit at
the first meter value. Codes are issued, scanned, authorised and billed on the back office's
real clock (the station's code request carries no time), so those events are dated today.

**The phones.** A driver waits for the charger to start, charges to a target, unplugs (or
stops from the app, which needs the live store to show the session charging) and walks away:
the receipt is checked afterwards, per session, in the stores (status, energy, denial reason),
so the phones do not keep thousands of live connections open; one session in
``FOLLOW_EVERY`` is also followed to the end over the app's live updates (Server-Sent Events).

**The checks.** ``plugpay-analytics export`` (from Kafka, reading without a consumer group) and
``plugpay-analytics report`` run as the analyst would; the report's totals are compared with
session-svc's session store and billing-svc's receipts and ledger, read-only in their own
databases: sessions and per-status counts, denial reasons, energy in Wh, revenue and cost to the
cent, per station and per day; and every session's outcome with what its driver and charger saw.
Then a Parquet export is interrupted twice (Ctrl-C, then SIGKILL) and resumed, and its files
equal those of one uninterrupted run over the same range.

Knobs (environment): ``PLUGPAY_ANALYTICS_DRIVE_S`` (activity, default 180 s),
``PLUGPAY_ANALYTICS_STATIONS`` (public stations, default 24: 60 connectors),
``PLUGPAY_ANALYTICS_DRIVERS`` (paying drivers, default 80), ``PLUGPAY_ANALYTICS_MIN_SESSIONS`` /
``_MIN_BILLED`` (floors, default 1 and 0.75 per second of activity),
``PLUGPAY_ANALYTICS_STACK`` / ``_PORT_BASE`` (default analytics / 8500),
``PLUGPAY_ANALYTICS_REPORT_DIR`` (keep the report there).

**Volume.** The whole flow costs about 0.4 CPU-seconds per session in the services (the two
gateway processes most, then session-svc, billing-svc, pricing-svc), so the 2-core machine makes
about 3 sessions a second: the default run (about 6 minutes in all, the CI budget) makes some
hundreds. A month of thousands is the same test with a longer activity, e.g.
``PLUGPAY_ANALYTICS_DRIVE_S=780 PLUGPAY_ANALYTICS_STATIONS=28 PLUGPAY_ANALYTICS_DRIVERS=90
PLUGPAY_ANALYTICS_MIN_SESSIONS=2000 PLUGPAY_ANALYTICS_MIN_BILLED=1500`` (about 16 minutes).

Run from the workspace venv under the heavy-run lock: ``flock /tmp/plugpay-heavy.lock python3 -m
uv run --no-sync pytest tests/analytics -p no:cacheprovider -s``. Every wait is on an observable
condition with a bounded deadline; nothing sleeps to settle.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import json
import math
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import pyarrow.parquet as pq
import pytest
import pytest_asyncio
from aiokafka.admin import AIOKafkaAdminClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))

from e2e_support import (
    SETUP_TIMEOUT_S,
    STACK_KAFKA,
    STACK_PG,
    VENV_BIN,
    Deployment,
    Driver,
    World,
    eventually,
    start_distributed,
    stop_distributed,
)
from plugpay_simulator.driver import DriverClient, DriverError
from plugpay_simulator.stations import SimulatedStation, Transaction, simulation_settings

pytestmark = pytest.mark.asyncio(loop_scope="module")

DRIVE_S = float(os.environ.get("PLUGPAY_ANALYTICS_DRIVE_S", "180"))
STATIONS = int(os.environ.get("PLUGPAY_ANALYTICS_STATIONS", "24"))
DRIVERS = int(os.environ.get("PLUGPAY_ANALYTICS_DRIVERS", "80"))
# Floors: about a third of what the loaded 2-core machine did (2.8 sessions/s), per second of
# activity; a month of thousands needs a longer activity (see the module docstring).
MIN_SESSIONS = int(os.environ.get("PLUGPAY_ANALYTICS_MIN_SESSIONS", str(int(DRIVE_S))))
MIN_BILLED = int(os.environ.get("PLUGPAY_ANALYTICS_MIN_BILLED", str(int(0.75 * DRIVE_S))))
STACK = os.environ.get("PLUGPAY_ANALYTICS_STACK", "analytics")
PORT_BASE = int(os.environ.get("PLUGPAY_ANALYTICS_PORT_BASE", "8500"))
SERVICE_DATABASES = ("auth", "station_gateway", "sessions", "pricing", "billing")

# Codes expire this long after they were issued (defaults: 300 s + 30 s), so that the codes
# left unscanned expire within the run.
CODE_TOLERANCE_S, CLOCK_SKEW_S = 45, 5
TIME_ZONE = ZoneInfo("Europe/Berlin")
METER_INTERVAL_S = 1.5  # real seconds between meter values while charging
ENERGY_SPEEDUP = 1800.0  # a charging connector's clock and energy run this much faster
FOLLOW_EVERY = 40  # one session in this many is followed in the app to its end
TERMINAL = ("billed", "denied", "expired", "abandoned", "failed")
COMPLETED = ("completed", "cost_calculated", "billed")
WAIT_S = 120.0
POLL_S = 0.2
# A scan right after the code was made may come before session-svc has it: try again.
RETRYABLE_SCAN = {"code_invalid", "code_not_ready", "station_offline", "store_rebuilding"}
# nginx answers 502 when a service closes a kept-alive connection under a request (uvicorn
# closes idle ones after 5 s, nginx keeps them 60 s): the app tries again, as a phone would.
GATEWAY_ERRORS = {502, 503, 504}


# --- the month's calendar -------------------------------------------------------------------


def next_month(now: datetime) -> tuple[datetime, datetime]:
    """The next calendar month in the stations' time zone, as UTC bounds."""
    local = now.astimezone(TIME_ZONE)
    year, month = (local.year + 1, 1) if local.month == 12 else (local.year, local.month + 1)
    after = (year + 1, 1) if month == 12 else (year, month + 1)
    start = datetime(year, month, 1, tzinfo=TIME_ZONE)
    end = datetime(*after, 1, tzinfo=TIME_ZONE)
    return start.astimezone(UTC), end.astimezone(UTC)


def hourly_demand(local_hour: datetime, day_factor: float) -> float:
    """Relative arrivals in one local hour: weekday commute peaks, weekend middays."""
    h, weekday = local_hour.hour, local_hour.weekday()
    if weekday < 5:
        shape = [0.15] * 6 + [0.6, 1.8, 2.2, 1.6] + [1.0] * 6
        shape += [1.5, 1.9, 1.7, 1.2, 0.8, 0.6, 0.4, 0.25]
    else:
        shape = [0.15] * 8 + [0.5, 0.9, 1.3, 1.5, 1.6, 1.5, 1.4, 1.3, 1.2, 1.0] + [0.7] * 3
        shape += [0.4, 0.25, 0.2]
        if weekday == 6:
            shape = [x * 0.75 for x in shape]
    return shape[h] * day_factor


class Calendar:
    """Maps the run's progress (0..1) onto the month so that arrivals follow the demand."""

    def __init__(self, start: datetime, end: datetime, rng: random.Random) -> None:
        self.start, self.end = start, end
        # the last arrivals leave time to charge before the month ends
        self.last_arrival = end - timedelta(hours=4)
        hours = int((self.last_arrival - start).total_seconds() // 3600)
        factors: dict[int, float] = {}
        self.hours = [start + timedelta(hours=i) for i in range(hours)]
        weights = []
        for hour in self.hours:
            local = hour.astimezone(TIME_ZONE)
            factor = factors.setdefault(local.day, rng.uniform(0.75, 1.25))
            weights.append(hourly_demand(local, factor))
        total = sum(weights)
        self.cumulative = []
        running = 0.0
        for w in weights:
            running += w / total
            self.cumulative.append(running)

    def at(self, progress: float, rng: random.Random) -> datetime:
        p = min(max(progress, 0.0), 0.999_999)
        i = min(bisect.bisect_left(self.cumulative, p), len(self.hours) - 1)
        return self.hours[i] + timedelta(seconds=rng.uniform(0, 3600))


class ConnectorClock:
    """A connector's clock: stands still between sessions and jumps to the next arrival; runs
    ``rate`` times real time from the moment the back office asks the charger to start."""

    def __init__(self, start: datetime, rate: float) -> None:
        self.virtual = start
        self.real: float | None = None
        self.rate = rate

    def now(self) -> datetime:
        if self.real is None:
            return self.virtual
        return self.virtual + timedelta(seconds=(time.monotonic() - self.real) * self.rate)

    def arrive(self, at: datetime) -> datetime:
        """A driver plugs in at ``at`` (never before what the connector already reported)."""
        self.virtual = max(at, self.now() + timedelta(minutes=5))
        self.real = None
        return self.virtual

    def run(self, after_s: float) -> None:
        """The start command came: the clock runs from ``after_s`` virtual seconds later."""
        self.virtual = self.now() + timedelta(seconds=after_s)
        self.real = time.monotonic()


# --- what the drivers and chargers saw --------------------------------------------------------


@dataclass
class Expected:
    outcome: str  # billed | denied | abandoned | expired
    station_id: str
    reason: str | None = None
    energy_wh: int | None = None


@dataclass
class Tally:
    """The test's own account of the month, per session."""

    sessions: dict[uuid.UUID, Expected] = field(default_factory=dict)
    billed_s: list[float] = field(default_factory=list)  # code request to unplugged
    followed: int = 0
    scan_retries: int = 0
    code_retries: int = 0
    typed_refused: int = 0

    def add(self, session_id: uuid.UUID, expected: Expected) -> None:
        assert session_id not in self.sessions, session_id
        self.sessions[session_id] = expected

    def count(self, outcome: str) -> int:
        return sum(1 for e in self.sessions.values() if e.outcome == outcome)

    def denials(self) -> Counter[str]:
        return Counter(e.reason for e in self.sessions.values() if e.outcome == "denied")

    def energy_wh(self) -> int:
        return sum(e.energy_wh or 0 for e in self.sessions.values() if e.outcome == "billed")


# --- the stack --------------------------------------------------------------------------------


async def wipe_stack(name: str) -> None:
    """Our isolated stack's databases and topics from an earlier run, gone
    (the stack is stopped first; Kafka and PostgreSQL themselves are shared and stay up)."""
    conn = await asyncpg.connect(f"{STACK_PG}/postgres")
    try:
        for db in SERVICE_DATABASES:
            await conn.execute(f'DROP DATABASE IF EXISTS "{db}_{name}" WITH (FORCE)')
    finally:
        await conn.close()
    admin = AIOKafkaAdminClient(bootstrap_servers=STACK_KAFKA)
    await admin.start()
    try:
        prefix = f"{name}."
        # (the consumer groups' offsets on them go with the topics)
        topics = [t for t in await admin.list_topics() if t.startswith(prefix)]
        if topics:
            await admin.delete_topics(topics)

        async def gone() -> bool:
            return not any(t.startswith(prefix) for t in await admin.list_topics())

        await eventually(gone, within=60, what=f"Kafka deletes the {prefix}* topics", every=0.5)
    finally:
        await admin.close()


@pytest.fixture(scope="module")
def deployment() -> Iterator[Deployment]:
    """A fresh isolated distributed stack, stopped at the end."""
    began = time.monotonic()
    with contextlib.suppress(RuntimeError):
        stop_distributed(stack_name=STACK, port_base=PORT_BASE)  # a stack of an earlier run
    asyncio.run(wipe_stack(STACK))
    settings = {
        "SESSION_SVC_CODE_TOLERANCE_S": str(CODE_TOLERANCE_S),
        "SESSION_SVC_CLOCK_SKEW_S": str(CLOCK_SKEW_S),
        "PLUGPAY_LOG_LEVEL": "WARNING",
        # The stations meter fast and live in next month: the gateway's plausibility judgement
        # is told, or it would hold their energy and replace their times with ours.
        **simulation_settings(ENERGY_SPEEDUP, own_clocks=True),
    }
    try:
        running = start_distributed(stack_name=STACK, port_base=PORT_BASE, env=settings)
        print(f"[analytics] fresh stack {STACK} in {time.monotonic() - began:.1f}s")
        yield running
    finally:
        stop_distributed(stack_name=STACK, port_base=PORT_BASE)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(deployment: Deployment) -> AsyncIterator[World]:
    world = World(deployment)
    await world.start()
    try:
        yield world
    finally:
        await world.end_test()
        await world.close()


# --- the activity -----------------------------------------------------------------------------


def code_session(code: dict[str, Any]) -> uuid.UUID:
    # the ocpp library snake-cases a 2.0.1 DataTransfer's dict data, not 1.6's JSON string
    return uuid.UUID(code.get("sessionId") or code["session_id"])


async def follow_to_end(phone: DriverClient, session_id: uuid.UUID) -> dict[str, Any]:
    """The app's live updates (Server-Sent Events) until the session is terminal."""
    async with asyncio.timeout(WAIT_S):
        while True:
            try:
                async for view in phone.follow(session_id):
                    if view.get("status") in TERMINAL:
                        return view
            except httpx.TransportError:
                pass
            except DriverError as error:
                # the store may not have the session right after a scan
                if error.status != 404 and error.status not in GATEWAY_ERRORS:
                    raise
            await asyncio.sleep(POLL_S)


# (OCPP version, connectors, power W) of the public stations, repeated
STATION_KINDS = [
    ("1.6", 2, 11_000),
    ("2.0.1", 2, 22_000),
    ("1.6", 4, 22_000),
    ("2.0.1", 2, 7_400),
    ("1.6", 2, 50_000),
    ("2.0.1", 4, 11_000),
    ("1.6", 2, 7_400),
    ("2.0.1", 2, 50_000),
    ("1.6", 2, 22_000),
]


class Month:
    """One worker per public connector, each playing the drivers who come to it."""

    def __init__(self, world: World, rng: random.Random, calendar: Calendar) -> None:
        self.world = world
        self.rng = rng
        self.calendar = calendar
        self.tally = Tally()
        self.stations: list[SimulatedStation] = []
        self.clocks: dict[str, dict[int, ConnectorClock]] = {}
        self.restricted: SimulatedStation | None = None
        self.broke: Driver | None = None
        self.declined: Driver | None = None
        self.logged_in: dict[str, float] = {}  # email -> when its access token was issued
        self.drivers: asyncio.Queue[Driver] = asyncio.Queue()
        self.began = 0.0
        self.drive_s = 0.0
        self.followers: list[asyncio.Task[None]] = []
        self.start_commands: Counter[tuple[str, int]] = Counter()  # per connector
        # One driver at a connector at a time (it shows one live code): the restricted
        # station's connectors are shared by every worker.
        self.at_connector: dict[tuple[str, int], asyncio.Lock] = {}

    def station_clock(self, station_id: str, connectors: int) -> Callable[[int], datetime]:
        start = self.calendar.start
        clocks = {c: ConnectorClock(start, ENERGY_SPEEDUP) for c in range(1, connectors + 1)}
        self.clocks[station_id] = clocks
        return lambda connector: clocks.get(connector, clocks[1]).now()

    async def connect(
        self, version: str, connectors: int, power: int, access: dict[str, Any] | None = None
    ) -> SimulatedStation:
        w = self.world
        station_id = await w.register_station(connectors=connectors, power_w=power, access=access)
        station = await w.connect_station(
            station_id,
            ocpp_version=version,
            connectors=connectors,
            power_w=power,
            energy_speedup=ENERGY_SPEEDUP,
            meter_interval_s=METER_INTERVAL_S,
            clock=self.station_clock(station_id, connectors),
        )
        clocks, rng = self.clocks[station_id], random.Random(self.rng.random())

        def start_command(connector: int, _ref: str) -> None:
            self.start_commands[station_id, connector] += 1
            # plugged in to charging: the driver's phone and the car take a minute or two
            clocks[connector].run(rng.uniform(40, 150))

        station.on_start_request = start_command
        return station

    async def set_up(self) -> None:
        w = self.world
        station_limit, driver_limit = asyncio.Semaphore(4), asyncio.Semaphore(6)

        async def station(i: int) -> SimulatedStation:
            async with station_limit:
                return await self.connect(*STATION_KINDS[i % len(STATION_KINDS)])

        async def driver(i: int) -> Driver:
            async with driver_limit:
                # a third pay from the wallet (500 EUR, its maximum; their card once it runs
                # low), the others by card
                if i % 3 == 0:
                    return await w.driver(wallet_minor=50_000, card="pm_card_visa")
                return await w.driver(card="pm_card_visa")

        stations = asyncio.gather(*(station(i) for i in range(STATIONS)))
        drivers = asyncio.gather(*(driver(i) for i in range(DRIVERS)))
        self.stations = list(await stations)
        for d in await drivers:
            self.drivers.put_nowait(d)
        self.restricted = await self.connect(
            "2.0.1",
            2,
            22_000,
            access={"kind": "restricted", "allowed_organisations": [str(w.organisation_id)]},
        )
        self.broke = await w.driver()  # no money, no card
        self.declined = await w.driver(card="pm_card_chargeDeclined")

    def progress(self) -> float:
        return (time.monotonic() - self.began) / self.drive_s

    async def run(self, drive_s: float) -> None:
        self.began, self.drive_s = time.monotonic(), drive_s
        workers = [
            self.worker(station, connector, random.Random(self.rng.random()))
            for station in self.stations
            for connector in range(1, station.connectors + 1)
        ]
        await asyncio.gather(*workers)

    async def worker(self, station: SimulatedStation, connector: int, rng: random.Random) -> None:
        clock = self.clocks[station.station_id][connector]
        end = self.began + self.drive_s
        # Unscanned codes only while they can still expire within the run.
        expiring_until = end - CODE_TOLERANCE_S - CLOCK_SKEW_S - 10
        # every connector starts at once: spread their first drivers over the month's first day
        spread = rng.uniform(0.0, 0.03)
        while time.monotonic() < end:
            # the next driver arrives when the month's demand says, spread over connectors
            at = abs(self.progress() + spread + rng.uniform(-0.01, 0.01))  # none before day 1
            arrival = self.calendar.at(at, rng)
            spread = 0.0
            if clock.arrive(arrival) > self.calendar.last_arrival:
                break  # this connector's month is over
            r = rng.random()
            if r < 0.025 and time.monotonic() < expiring_until:
                code = await self.new_code(station, connector)  # shown, never scanned
                self.tally.add(code_session(code), Expected("expired", station.station_id))
            elif r < 0.05:
                assert self.broke is not None
                phone = await self.fresh(self.broke)
                await self.denied(station, connector, phone, "insufficient_funds")
            elif r < 0.075:
                assert self.declined is not None
                phone = await self.fresh(self.declined)
                await self.denied(station, connector, phone, "payment_declined")
            elif r < 0.10:
                assert self.restricted is not None
                restricted, at = self.restricted, rng.randint(1, 2)
                lock = self.at_connector.setdefault((restricted.station_id, at), asyncio.Lock())
                async with lock:
                    await self.with_driver(
                        lambda d, restricted=restricted, at=at: self.denied(
                            restricted, at, d.phone, "access_denied"
                        )
                    )
            elif r < 0.125:
                await self.with_driver(lambda d: self.abandoned(station, connector, d.phone))
            else:
                by_app = r > 0.87
                await self.with_driver(
                    lambda d, by_app=by_app: self.billed(
                        station, connector, d.phone, rng, by_app=by_app
                    )
                )

    async def with_driver(self, session: Callable[[Driver], Any]) -> None:
        driver = await self.drivers.get()  # a car is at one charger at a time
        try:
            await self.fresh(driver)
            await session(driver)
        finally:
            self.drivers.put_nowait(driver)

    async def fresh(self, driver: Driver) -> DriverClient:
        """The app logs in again before its access token (15 minutes) runs out."""
        logged_in = self.logged_in.setdefault(driver.email, time.monotonic())
        if time.monotonic() - logged_in > 600:
            self.logged_in[driver.email] = time.monotonic()

            async def login() -> bool | None:
                try:
                    await driver.phone.login(driver.email, driver.password)
                except DriverError as error:
                    if error.status in GATEWAY_ERRORS:
                        return None
                    raise
                return True

            await eventually(login, within=WAIT_S, what=f"log in {driver.email}", every=POLL_S)
        return driver.phone

    async def new_code(self, station: SimulatedStation, connector: int) -> dict[str, Any]:
        """The driver picks "pay with phone"; while the charger still winds down the previous
        session (a refused start is being abandoned), it says busy and the driver tries again."""

        async def ask() -> dict[str, Any] | None:
            try:
                return await station.request_code(connector)
            except RuntimeError as refused:
                if "connector_busy" in str(refused):
                    self.tally.code_retries += 1
                    return None
                raise

        return await eventually(ask, within=WAIT_S, what="a code", every=POLL_S)

    async def scan(
        self, station: SimulatedStation, connector: int, phone: Any, *, typed: bool = False
    ) -> uuid.UUID:
        code = await self.new_code(station, connector)
        presented = code["code"] if typed else code["qr"]
        lost_answer = False

        async def attempt() -> uuid.UUID | None:
            nonlocal presented, lost_answer
            try:
                return await phone.scan(presented)
            except httpx.TransportError:
                lost_answer = True
                return None
            except DriverError as error:
                if error.status in GATEWAY_ERRORS:
                    lost_answer = True
                    return None
                if error.reason == "code_used" and lost_answer:
                    return code_session(code)  # our scan went through; its answer was lost
                if error.reason in RETRYABLE_SCAN:
                    self.tally.scan_retries += 1
                    return None
                # Typed codes are rate-limited per driver and per address (all of ours are
                # 127.0.0.1): as the app suggests, the driver scans the QR code instead.
                if error.reason == "too_many_requests" and presented == code["code"]:
                    self.tally.typed_refused += 1
                    presented = code["qr"]
                    return None
                raise

        session_id = await eventually(attempt, within=WAIT_S, what="scan", every=POLL_S)
        assert session_id == code_session(code)
        return session_id

    def follow(self, phone: DriverClient, session_id: uuid.UUID, outcome: str) -> None:
        """Now and then the driver watches the app until the end (in the background)."""
        if len(self.tally.sessions) % FOLLOW_EVERY:
            return

        async def watch() -> None:
            view = await follow_to_end(phone, session_id)
            assert view["status"] == outcome, view
            expected = self.tally.sessions[session_id]
            if expected.energy_wh is not None:
                assert view["energy_wh"] == expected.energy_wh, (view, expected)
            self.tally.followed += 1

        self.followers.append(asyncio.create_task(watch()))

    async def denied(
        self, station: SimulatedStation, connector: int, phone: Any, reason: str
    ) -> None:
        session_id = await self.scan(station, connector, phone)
        self.tally.add(session_id, Expected("denied", station.station_id, reason=reason))
        self.follow(phone, session_id, "denied")

    async def abandoned(self, station: SimulatedStation, connector: int, phone: Any) -> None:
        """The charger refuses the start (it believes the connector busy): the gateway abandons
        the session and billing releases the hold."""
        blocker = Transaction(connector, "blocked", "blocked", 0, 0)
        station.transactions[connector] = blocker
        key = (station.station_id, connector)
        requests = self.start_commands[key]
        try:
            session_id = await self.scan(station, connector, phone)
            self.tally.add(session_id, Expected("abandoned", station.station_id))
            # the charger has refused once the start command came
            await eventually(
                lambda: self.start_commands[key] > requests,
                within=WAIT_S,
                what=f"the start command of {session_id}",
                every=POLL_S,
            )
            self.follow(phone, session_id, "abandoned")
        finally:
            if station.transactions.get(connector) is blocker:
                del station.transactions[connector]

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
        expected = Expected("billed", station.station_id)
        self.tally.add(session_id, expected)
        # The charger's own view: the back office told it to start (the app learns it later).
        await eventually(
            lambda: (
                (current := station.transactions.get(connector)) is not None
                and current is not previous
                and current.started.is_set()
            ),
            within=WAIT_S,
            what=f"the start of {session_id} on {station.station_id}/{connector}",
            every=POLL_S,
        )
        tx = station.transactions[connector]
        # what drivers take: a top-up of 4-45 kWh, more at fast chargers
        target = int(min(45_000, rng.lognormvariate(math.log(14_000), 0.55)))
        if station.power_w > 22_000:
            target = int(target * 1.5)
        await eventually(
            lambda: tx.meter_wh - tx.meter_start_wh >= target or tx.stopped.is_set(),
            within=WAIT_S,
            what=f"{target} Wh on {station.station_id}/{connector}",
            every=POLL_S,
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
                    if error.status in GATEWAY_ERRORS:
                        return None
                    raise
                return True

            await eventually(stop, within=WAIT_S, what="stop from the app", every=POLL_S)
            await eventually(
                tx.stopped.is_set,
                within=WAIT_S,
                what="the charger stops on the app's request",
                every=POLL_S,
            )
        await station.unplug(connector)
        expected.energy_wh = tx.meter_wh - tx.meter_start_wh
        self.tally.billed_s.append(time.monotonic() - began)
        self.follow(phone, session_id, "billed")


# --- the live stores ----------------------------------------------------------------------------


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
        each = {
            r["session_id"]: r
            for r in await conn.fetch(
                "SELECT session_id, status, station_id, state->>'denial_reason' AS reason,"
                " (state->>'energy_wh')::bigint AS energy_wh,"
                " (state->>'started_at')::timestamptz AS started_at FROM sessions"
            )
        }
    async with (
        billing.acquire() as conn,
        conn.transaction(isolation="repeatable_read", readonly=True),
    ):
        receipts = await conn.fetchrow(
            "SELECT count(*) AS receipts, coalesce(sum(charged), 0) AS charged,"
            " coalesce(sum(total_incl_vat), 0) AS cost, coalesce(sum(energy_wh), 0) AS energy_wh,"
            " coalesce(sum(debt), 0) AS debt, array_agg(DISTINCT currency) AS currencies,"
            # the stations' claimed cost, and what of it was above the driver's authorised
            # maximum (not charged: the operator's)
            " coalesce(sum(coalesce(claimed_total, total_incl_vat)), 0) AS claimed,"
            " coalesce(sum(capped), 0) AS capped"
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
        "each": each,
        "receipts": dict(receipts),
        # what the ledger captured: from the holds, plus any shortfall from the wallet or card
        "ledger_captured": int(ledger.get("session_capture", 0))
        + int(ledger.get("session_shortfall", 0)),
        "ledger_cost": int(ledger.get("operator_revenue", 0)) + int(ledger.get("vat_collected", 0)),
        "ledger_balanced": not unbalanced,
    }


async def store_settled(world: World) -> dict[str, Any] | None:
    """The stores have caught up: every session the gateway issued is in session-svc's store and
    terminal there (the unscanned codes have expired), every billed session has its receipt."""
    gateway = await world.pool("station_gateway")
    issued = await gateway.fetchval("SELECT count(*) FROM sessions")
    totals = await store_totals(world)
    open_ = {s: n for s, n in totals["by_status"].items() if s not in TERMINAL}
    if open_ or totals["issued"] != issued:
        return None
    if totals["receipts"]["receipts"] != totals["by_status"].get("billed", 0):
        return None
    return totals


def cpu_seconds() -> dict[str, float]:
    """CPU seconds used so far by each service process of our stack, and by this test."""
    state = Path(VENV_BIN).parents[1] / ".local" / f"stack-{STACK}"
    used = {"test (chargers, phones)": sum(os.times()[:2])}
    for pidfile in state.glob("*.pid"):
        with contextlib.suppress(OSError, ValueError):
            stat = Path(f"/proc/{int(pidfile.read_text())}/stat").read_text()
            fields = stat.rsplit(")", 1)[1].split()
            used[pidfile.stem] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return used


# --- the analyst's commands ----------------------------------------------------------------------


def plugpay_command(*args: str) -> list[str]:
    return [str(VENV_BIN / "plugpay-analytics"), *args]


def analyst_env(deployment: Deployment) -> dict[str, str]:
    return {
        **os.environ,
        "PLUGPAY_LOG_LEVEL": "WARNING",
        "PLUGPAY_KAFKA_BOOTSTRAP": STACK_KAFKA,
        "PLUGPAY_TOPIC_PREFIX": deployment.topic_prefix,
    }


def plugpay(deployment: Deployment, *args: str, timeout_s: float = 300) -> str:
    done = subprocess.run(
        plugpay_command(*args),
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
        env=analyst_env(deployment),
    )
    assert done.returncode == 0, (
        f"plugpay-analytics {args[0]} -> {done.returncode}:\n{done.stderr[-3000:]}"
    )
    return done.stdout + done.stderr


def interrupted_export(
    deployment: Deployment, args: list[str], out: Path, *, after_files: int, sig: int
) -> int:
    """Start an export, send ``sig`` once it has written ``after_files`` more files; its exit
    code."""
    checkpoints = out / "_checkpoints"

    def files() -> int:
        return sum(1 for p in out.rglob("*.parquet") if checkpoints not in p.parents)

    before = files()
    process = subprocess.Popen(
        plugpay_command(*args),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=analyst_env(deployment),
        # Ctrl-C reaches it as in a terminal, even when this test runs in the background (a
        # non-interactive shell starts background jobs with SIGINT ignored, and Python keeps that)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 120
        while process.poll() is None and time.monotonic() < deadline:
            if files() >= before + after_files:
                process.send_signal(sig)
                break
            time.sleep(0.02)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return process.returncode


def parquet_files(out: Path) -> dict[str, Any]:
    return {
        str(p.relative_to(out)): (pq.read_table(p) if p.suffix == ".parquet" else p.read_text())
        for p in sorted(out.rglob("*"))
        if p.is_file()
    }


# --- the test -----------------------------------------------------------------------------------


async def test_report_totals_equal_the_live_stores(
    world: World, deployment: Deployment, tmp_path: Path
) -> None:
    began = time.monotonic()
    load_before = os.getloadavg()
    rng = random.Random(11)
    calendar = Calendar(*next_month(datetime.now(UTC)), rng)
    month = Month(world, rng, calendar)
    await month.set_up()
    ready = time.monotonic()
    cpu_before = cpu_seconds()
    await month.run(DRIVE_S)
    driven = time.monotonic()
    cpu = {k: v - cpu_before.get(k, 0.0) for k, v in cpu_seconds().items()}
    tally = month.tally
    totals = await eventually(
        lambda: store_settled(world),
        within=CODE_TOLERANCE_S + CLOCK_SKEW_S + SETUP_TIMEOUT_S,
        what="the session store and billing settle (every session terminal, receipts written)",
        every=1.0,
    )
    await asyncio.gather(*month.followers)
    settled = time.monotonic()
    load_activity = os.getloadavg()

    # The analyst's way: export the log (read-only), then the report, both with the CLI.
    out = tmp_path / "month.duckdb"
    exported = plugpay(deployment, "export", "--out", str(out), "--no-progress")
    reported = plugpay(deployment, "report", "--input", str(out), "--out", str(tmp_path / "report"))
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    if keep := os.environ.get("PLUGPAY_ANALYTICS_REPORT_DIR"):  # e.g. for the docs' pictures
        shutil.copytree(tmp_path / "report", keep, dirs_exist_ok=True)
    reported_at = time.monotonic()
    report = summary["totals"]
    revenue = {r["currency"]: r for r in summary["revenue"]}
    cost = {r["currency"]: r["cost_minor"] for r in summary["cost"]}
    outcomes = Counter(e.outcome for e in tally.sessions.values())
    shown = {sid: r for sid, r in totals["each"].items() if sid not in tally.sessions}
    print(
        f"\n[analytics] set-up {ready - began:.1f}s, activity {driven - ready:.1f}s,"
        f" settle {settled - driven:.1f}s, export+report {reported_at - settled:.1f}s;"
        f" load {load_before[0]:.1f} before, {load_activity[0]:.1f} after the activity\n"
        f"[analytics] drivers saw {dict(outcomes)} ({len(tally.sessions)} sessions,"
        f" {tally.followed} followed in the app, {tally.scan_retries} scan retries,"
        f" {tally.code_retries} code requests while the connector was busy,"
        f" {tally.typed_refused} typed codes rate-limited), {len(shown)} codes shown on a"
        f" plug-in and never scanned,"
        f" denials {dict(tally.denials())}; code to unplugged: median"
        f" {statistics.median(tally.billed_s):.1f}s, max {max(tally.billed_s):.1f}s\n"
        f"[analytics] CPU seconds during the activity: "
        + ", ".join(f"{k} {v:.0f}" for k, v in sorted(cpu.items(), key=lambda kv: -kv[1]))
        + f"\n[analytics] stores: {totals['by_status']}, {totals['energy_wh']} Wh,"
        f" receipts {totals['receipts']['charged']} charged / {totals['receipts']['cost']} cost"
        f" ({totals['receipts']['capped']} capped),"
        f" ledger captured {totals['ledger_captured']}\n"
        f"[analytics] {exported.strip().splitlines()[-1]}\n"
        f"[analytics] {reported.splitlines()[0]}; period {summary['period']}"
    )

    assert summary["undecodable"] == 0

    # Every session as its driver and charger saw it = the store. The gateway also shows a code
    # when a charger reports a plug-in (1.6 Preparing, 2.0.1 Occupied) without a session in
    # progress: nobody scans those, they expire (the only sessions the drivers did not make).
    each = totals["each"]
    assert set(tally.sessions) <= set(each), len(set(tally.sessions) - set(each))
    assert all(r["status"] == "expired" for r in shown.values()), [
        dict(r) for r in shown.values() if r["status"] != "expired"
    ][:5]
    wrong = [
        (sid, e, dict(each[sid]))
        for sid, e in tally.sessions.items()
        if each[sid]["status"] != e.outcome
        or each[sid]["station_id"] != e.station_id
        or (e.outcome == "denied" and each[sid]["reason"] != e.reason)
        or (e.outcome == "billed" and each[sid]["energy_wh"] != e.energy_wh)
    ]
    assert not wrong, [
        (str(sid), e.outcome, e.station_id, e.reason, r["status"], r["station_id"], r["reason"])
        for sid, e, r in wrong[:10]
    ]
    # The charging happened in the month, on the stations' clocks.
    starts = [r["started_at"] for r in each.values() if r["status"] == "billed"]
    assert calendar.start <= min(starts) and max(starts) < calendar.end, (min(starts), max(starts))

    # Sessions and per-status counts: the report = session-svc's store = what drivers saw.
    by_status = totals["by_status"]
    assert set(by_status) <= {"billed", "denied", "expired", "abandoned"}, by_status
    assert report["codes_issued"] == totals["issued"] == len(tally.sessions) + len(shown)
    assert report["scanned"] == totals["scanned"] == len(tally.sessions) - outcomes["expired"]
    assert report["sessions"] == totals["completed"] == by_status["billed"]
    assert report["billed"] == by_status["billed"] == outcomes["billed"]
    assert report["denied"] == by_status["denied"] == outcomes["denied"]
    assert report["abandoned"] == by_status["abandoned"] == outcomes["abandoned"]
    assert report["expired"] == by_status["expired"] == outcomes["expired"] + len(shown)
    assert report["stations"] == totals["stations"]
    losses = {r["reason"]: r["sessions"] for r in summary["losses"] if r["outcome"] == "denied"}
    assert losses == totals["denials"] == dict(tally.denials())

    # Energy in Wh: the report = the store = the receipts = what the chargers metered.
    assert report["energy_wh"] == totals["energy_wh"] == totals["receipts"]["energy_wh"]
    assert report["energy_wh"] == tally.energy_wh()

    # Revenue to the cent: the report = the receipts = the ledger's captures = the store.
    assert set(revenue) == set(totals["receipts"]["currencies"]) == {"EUR"}
    assert revenue["EUR"]["revenue_minor"] == totals["receipts"]["charged"]
    assert revenue["EUR"]["revenue_minor"] == totals["ledger_captured"]
    assert revenue["EUR"]["revenue_minor"] == totals["charged_in_store"]
    assert revenue["EUR"]["billed"] == totals["receipts"]["receipts"]
    assert cost["EUR"] == totals["receipts"]["claimed"]
    assert totals["receipts"]["cost"] == totals["ledger_cost"]
    assert totals["receipts"]["debt"] == 0  # so what was captured is the whole billed cost
    assert revenue["EUR"]["revenue_minor"] == totals["receipts"]["cost"]
    # a cost above the authorised maximum is capped: the rest is not charged to anyone
    assert revenue["EUR"]["revenue_minor"] + totals["receipts"]["capped"] == cost["EUR"]
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

    # A month that looks like one: most of its days, busier at 08:00 than at 03:00.
    days = len(summary["per_day"])
    assert days >= 0.8 * (calendar.end - calendar.start).days, days
    heat = Counter()
    for cell in summary["heatmap"]:
        heat[cell["hour"]] += cell["sessions"]
    assert heat[8] > heat[3], heat

    # Sessions of every kind were made, and thousands of them.
    assert all(
        tally.denials()[r] for r in ("insufficient_funds", "payment_declined", "access_denied")
    ), tally.denials()
    assert outcomes["abandoned"] and outcomes["expired"], outcomes
    assert tally.followed == len(month.followers) > 0
    assert len(tally.sessions) >= MIN_SESSIONS, outcomes
    assert outcomes["billed"] >= MIN_BILLED, outcomes

    # An export interrupted (Ctrl-C, then a crash) and resumed = one uninterrupted run.
    bound = datetime.now(UTC).isoformat()
    args = ["export", "--format", "parquet", "--chunk-size", "500", "--no-progress"]
    args += ["--to-time", bound]
    once, resumed = tmp_path / "once", tmp_path / "resumed"
    export_began = time.monotonic()
    one_run = plugpay(deployment, *args, "--out", str(once))
    one_run_s = time.monotonic() - export_began
    resumed_args = [*args, "--out", str(resumed)]
    code = interrupted_export(deployment, resumed_args, resumed, after_files=3, sig=signal.SIGINT)
    assert code != 0, "the export finished before Ctrl-C"
    code = interrupted_export(deployment, resumed_args, resumed, after_files=8, sig=signal.SIGKILL)
    assert code == -signal.SIGKILL, f"the export finished before the crash ({code})"
    last = plugpay(deployment, *resumed_args)
    first_files, resumed_files = parquet_files(once), parquet_files(resumed)
    assert resumed_files.keys() == first_files.keys()
    for name, content in first_files.items():
        same = (
            resumed_files[name] == content
            if isinstance(content, str)
            else resumed_files[name].equals(content)
        )
        assert same, name
    rows = sum(t.num_rows for t in first_files.values() if not isinstance(t, str))
    print(
        f"[analytics] interrupted export: one run {one_run_s:.1f}s"
        f" ({one_run.strip().splitlines()[-1]}); resumed: {last.strip().splitlines()[-1]};"
        f" {rows} rows in {len(first_files)} files equal; total {time.monotonic() - began:.1f}s"
    )
