"""Helpers of the reliability suite: the isolated stack, API-based setup, database snapshots.

Everything runs against an isolated instance of the distributed stack (``scripts/stack.sh`` with
STACK_NAME/PORT_BASE, default ``chaos``/8400): its own databases ``<db>_chaos``, topics prefixed
``chaos.``, services on 8401..8406, nginx on 8380. Nothing here touches the main stack.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from plugpay_platform import catalogue
from plugpay_simulator.stations import simulation_settings
from plugpay_testing import eventually

ROOT = Path(__file__).resolve().parents[2]
STACK_NAME = os.environ.get("PLUGPAY_RELIABILITY_STACK", "chaos")
PORT_BASE = int(os.environ.get("PLUGPAY_RELIABILITY_PORT_BASE", "8400"))
BASE_URL = f"http://127.0.0.1:{PORT_BASE - 20}"
STATE = ROOT / ".local" / f"stack-{STACK_NAME}"
PG_ROOT = "postgresql://plugpay:plugpay@127.0.0.1:5433"
KAFKA = "127.0.0.1:9092"
TOPIC_PREFIX = f"{STACK_NAME}."
DEMO_PASSWORD = "demo-password-1"
TEST_PASSWORD = "reliability-Pw-7c1d!"  # every account this suite creates
STATION_PASSWORD = "reliability-station-Pw-93"

# service -> (port of its first process, database, url prefix), from the catalogue
SERVICES = {
    s.name: (PORT_BASE + s.port_offsets[0], f"{s.database}_{STACK_NAME}", s.health_prefix)
    for s in catalogue.SERVICES
}
GATEWAY_PORTS = tuple(PORT_BASE + o for o in catalogue.BY_NAME["station-gateway"].port_offsets)


# The system's own timeouts, shortened on the isolated stack so a bounded run can wait for them
# (production defaults: codes live 300 s; an authorised session not started is abandoned by
# billing's start deadline).
TIMEOUTS = {
    "STATION_GATEWAY_CODE_LIFETIME_S": "40",
    "SESSION_SVC_CODE_TOLERANCE_S": "40",
    "SESSION_SVC_CLOCK_SKEW_S": "5",
    # The gateway owns the start deadline; session-svc's timer is a backstop after it.
    "STATION_GATEWAY_START_TIMEOUT_S": "40",
    "SESSION_SVC_START_TIMEOUT_S": "40",
    "SESSION_SVC_START_BACKSTOP_S": "20",
    # A connector reported Available while its session still charges (the station lost the
    # transaction) is completed after this long (production: 600 s).
    "STATION_GATEWAY_LOST_TRANSACTION_GRACE_S": "20",
    # A station not seen for this long has its charging session completed (production: 24 h).
    "STATION_GATEWAY_UNREACHABLE_TRANSACTION_S": "60",
    # Every run registers from 127.0.0.1 (the world's unverified driver, schemathesis's
    # examples): auth-svc's per-address registration limit (production: 10 an hour, then
    # waits) would refuse the next run's set-up.
    "AUTH_SVC_REGISTRATIONS_FREE_PER_ADDRESS": "1000000",
}


# The chaos and fuzz stations meter 20 times faster than real time: the gateway is told, or its
# plausibility judgement would hold their sessions as it would a real station's.
METER_SPEEDUP = 20.0
SETTINGS = {**TIMEOUTS, **simulation_settings(METER_SPEEDUP)}


def stack_env() -> dict[str, str]:
    return {**os.environ, **SETTINGS, "STACK_NAME": STACK_NAME, "PORT_BASE": str(PORT_BASE)}


def _running_with_timeouts() -> bool:
    """Is every running service process of the instance started with ``SETTINGS``?"""
    wanted = {f"{k}={v}" for k, v in SETTINGS.items()}
    for path in STATE.glob("*.pid"):
        if path.stem.startswith("nginx"):
            continue
        try:
            environ = Path(f"/proc/{int(path.read_text())}/environ").read_bytes().decode()
        except (OSError, ValueError):
            continue
        if not wanted <= set(environ.split("\0")):
            return False
    return True


def stack_up(timeout_s: float = 240) -> None:
    """`scripts/stack.sh up` for the isolated instance (restarts only dead processes)."""
    if not _running_with_timeouts():
        stack_down()
    subprocess.run(
        ["bash", str(ROOT / "scripts" / "stack.sh"), "up"],
        env=stack_env(),
        check=True,
        timeout=timeout_s,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def stack_down() -> None:
    subprocess.run(
        ["bash", str(ROOT / "scripts" / "stack.sh"), "down"],
        env=stack_env(),
        check=False,
        timeout=120,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def pid_files() -> dict[str, Path]:
    """Process name (``billing-svc-8405``) -> its pid file."""
    return {p.stem: p for p in sorted(STATE.glob("*.pid"))}


def admin_password() -> str:
    return (STATE / "secrets" / "admin-password").read_text().strip()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def retry(fn: Any, *, timeout_s: float = 30.0, interval_s: float = 0.3) -> Any:
    """Call ``fn`` until it returns something truthy (eventual consistency between services);
    an HTTP error or a failed check inside ``fn`` is "not yet"."""
    return await eventually(
        fn,
        within=timeout_s,
        what=getattr(fn, "__qualname__", repr(fn)),
        every=interval_s,
        tolerate=(httpx.HTTPError, AssertionError),
    )


async def login(http: httpx.AsyncClient, email: str, password: str) -> dict[str, Any]:
    async def attempt() -> dict[str, Any] | None:
        r = await http.post("/auth/token", data={"username": email, "password": password})
        return r.json() if r.status_code == 200 else None

    result: dict[str, Any] = await retry(attempt, timeout_s=60)
    return result


@dataclass
class Driver:
    email: str
    user_id: uuid.UUID
    token: str
    refresh_token: str | None = None


@dataclass
class Operator:
    email: str
    user_id: uuid.UUID
    organisation_id: uuid.UUID
    token: str


@dataclass
class World:
    """What one test run set up through the public API."""

    tag: str
    admin_token: str
    org_a: Operator
    org_b: Operator
    stations: list[str] = field(default_factory=list)  # of org A, priced with DEMO-AC
    station_b: str = ""
    drivers: list[Driver] = field(default_factory=list)
    unverified: Driver | None = None
    analyst_token: str = ""


async def create_user(
    http: httpx.AsyncClient, admin: str, email: str, role: str, org: uuid.UUID | None = None
) -> uuid.UUID:
    body: dict[str, Any] = {"email": email, "password": TEST_PASSWORD, "role": role}
    if org:
        body["organisation_id"] = str(org)
    r = await http.post("/auth/users", json=body, headers=bearer(admin))
    assert r.status_code == 201, r.text
    return uuid.UUID(r.json()["user_id"])


async def register_station(
    http: httpx.AsyncClient,
    operator: Operator,
    station_id: str,
    *,
    connectors: int = 1,
    tariff_key: str | None = "DEMO-AC",
) -> None:
    r = await http.post(
        "/auth/stations",
        json={
            "id": station_id,
            "name": f"Reliability {station_id}",
            "connectors": [
                {"connector_id": i, "max_power_w": 22_000} for i in range(1, connectors + 1)
            ],
        },
        headers=bearer(operator.token),
    )
    assert r.status_code in (201, 409), r.text
    r = await http.put(
        f"/auth/stations/{station_id}/credentials",
        json={"password": STATION_PASSWORD},
        headers=bearer(operator.token),
    )
    assert r.status_code == 204, r.text
    if tariff_key is None:
        return

    async def priced() -> bool:
        r = await http.put(
            f"/pricing/stations/{station_id}",
            json={"time_zone": "Europe/Berlin", "tariff_key": tariff_key},
            headers=bearer(operator.token),
        )
        return r.status_code < 300

    await retry(priced, timeout_s=60)


async def fund_driver(http: httpx.AsyncClient, driver: Driver, amount_minor: int) -> None:
    async def card() -> bool:
        r = await http.post(
            "/billing/payment-methods",
            json={"token": "pm_card_visa"},
            headers={**bearer(driver.token), "Idempotency-Key": f"card-{driver.user_id}"},
        )
        return r.status_code in (200, 201)

    await retry(card, timeout_s=60)

    async def topup() -> bool:
        r = await http.post(
            "/billing/topups",
            json={"amount": {"amount_minor": amount_minor, "currency": "EUR"}},
            headers={**bearer(driver.token), "Idempotency-Key": f"topup-{driver.user_id}"},
        )
        return r.status_code == 201

    await retry(topup, timeout_s=60)


async def new_driver(
    http: httpx.AsyncClient, admin: str, tag: str, i: int, *, fund_minor: int = 0
) -> Driver:
    email = f"rel-{tag}-driver{i}@example.com"
    user_id = await create_user(http, admin, email, "driver")
    tokens = await login(http, email, TEST_PASSWORD)
    driver = Driver(email, user_id, tokens["access_token"], tokens.get("refresh_token"))
    if fund_minor:
        await fund_driver(http, driver, fund_minor)
    return driver


async def build_world(
    *, stations: int = 2, drivers: int = 2, fund_minor: int = 50_000, connectors: int = 1
) -> World:
    """Two organisations with an operator each, stations of org A, funded drivers, an analyst
    and an unverified driver — all through the public API of the isolated stack."""
    tag = uuid.uuid4().hex[:8]
    async with httpx.AsyncClient(base_url=BASE_URL, timeout=30) as http:
        admin = (await login(http, "admin@example.com", admin_password()))["access_token"]
        # org A is the demo organisation (its DEMO-AC tariff exists); org B is new.
        demo_op = await login(http, "operator@example.com", DEMO_PASSWORD)
        me = (await http.get("/auth/me", headers=bearer(demo_op["access_token"]))).json()
        org_a = Operator(
            "operator@example.com",
            uuid.UUID(me["user_id"]),
            uuid.UUID(me["organisation_id"]),
            demo_op["access_token"],
        )
        r = await http.post(
            "/auth/organisations", json={"name": f"Org B {tag}"}, headers=bearer(admin)
        )
        assert r.status_code == 201, r.text
        org_b_id = uuid.UUID(r.json()["id"])
        b_email = f"rel-{tag}-opb@example.com"
        b_id = await create_user(http, admin, b_email, "operator", org_b_id)
        org_b = Operator(
            b_email, b_id, org_b_id, (await login(http, b_email, TEST_PASSWORD))["access_token"]
        )
        world = World(tag=tag, admin_token=admin, org_a=org_a, org_b=org_b)
        a_email = f"rel-{tag}-analyst@example.com"
        await create_user(http, admin, a_email, "analyst")
        world.analyst_token = (await login(http, a_email, TEST_PASSWORD))["access_token"]
        world.stations = [f"REL-{tag}-{i:03d}" for i in range(stations)]
        await asyncio.gather(
            *(register_station(http, org_a, s, connectors=connectors) for s in world.stations)
        )
        world.station_b = f"RELB-{tag}"
        await register_station(http, org_b, world.station_b, tariff_key=None)
        sem = asyncio.Semaphore(8)

        async def one(i: int) -> Driver:
            async with sem:
                return await new_driver(http, admin, tag, i, fund_minor=fund_minor)

        world.drivers = list(await asyncio.gather(*(one(i) for i in range(drivers))))
        u_email = f"rel-{tag}-unverified@example.com"
        r = await http.post("/auth/register", json={"email": u_email, "password": TEST_PASSWORD})
        assert r.status_code == 202, r.text
        tokens = await login(http, u_email, TEST_PASSWORD)
        me = (await http.get("/auth/me", headers=bearer(tokens["access_token"]))).json()
        world.unverified = Driver(
            u_email, uuid.UUID(me["user_id"]), tokens["access_token"], tokens.get("refresh_token")
        )
    return world


# --- databases -------------------------------------------------------------------------------

# Bookkeeping that legitimately changes on a redelivery or over time (not business state).
VOLATILE_TABLES = {
    "inbox",
    "processed_events",
    "alembic_version",
    "gateway_instances",
    "rate_limit_hits",
    "login_throttle",
    "outbox",
}


async def snapshot(database: str, *, skip: set[str] | None = None) -> dict[str, list[str]]:
    """Every row of every table of ``database`` (public schema), as sorted text."""
    import asyncpg

    skip = VOLATILE_TABLES | (skip or set())
    conn = await asyncpg.connect(f"{PG_ROOT}/{database}")
    try:
        tables = [
            r["table_name"]
            for r in await conn.fetch(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
            )
        ]
        result: dict[str, list[str]] = {}
        for table in sorted(tables):
            if table in skip:
                continue
            rows = await conn.fetch(f'SELECT t::text AS row FROM "{table}" t')
            result[table] = sorted(r["row"] for r in rows)
        return result
    finally:
        await conn.close()


async def query(database: str, sql: str, *args: Any) -> list[dict[str, Any]]:
    import asyncpg

    conn = await asyncpg.connect(f"{PG_ROOT}/{database}")
    try:
        return [dict(r) for r in await conn.fetch(sql, *args)]
    finally:
        await conn.close()
