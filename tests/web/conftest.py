"""Browser tests of the web front-ends against a real `plugpay run` (tests/web/README.md).

One all-in-one Plugpay per test session, on a free port with a temporary data folder and its demo
data; simulated stations connected over real OCPP WebSockets from a background event loop; Debian's
Chromium driven by Playwright at a phone's viewport.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import json
import shutil
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
from plugpay_simulator.stations import simulation_settings
from plugpay_testing import eventually_blocking

sys.path.insert(0, str(Path(__file__).parent))

from web_support import (
    CHROMIUM,
    DEMO_PASSWORD,
    PHONE,
    STATION_PASSWORD,
    free_port,
    launch,
    start_plugpay,
    stop_plugpay,
)

# How much faster than real time the stations of these tests meter (30 s of charging a
# second); `plugpay run` is told, or its plausibility judgement would hold their sessions.
METER_SPEEDUP = 30.0


class Plugpay:
    """The running product and plain-HTTP helpers for arranging a test (never for asserting UI)."""

    def __init__(self, base_url: str, data_dir: Path) -> None:
        self.base_url = base_url
        self.data_dir = data_dir

    def request(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        json_body: Any = None,
        form: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        data = None
        h = dict(headers or {})
        if json_body is not None:
            data = json.dumps(json_body).encode()
            h["Content-Type"] = "application/json"
        if form is not None:
            data = urllib.parse.urlencode(form).encode()
        if token:
            h["Authorization"] = f"Bearer {token}"
        req = urllib.request.Request(self.base_url + path, data=data, method=method, headers=h)
        try:
            with urllib.request.urlopen(req, timeout=15) as res:
                body = res.read()
                status = res.status
        except urllib.error.HTTPError as error:
            body, status = error.read(), error.code
        try:
            return status, json.loads(body) if body else None
        except ValueError:
            return status, body.decode(errors="replace")

    def token(self, email: str, password: str = DEMO_PASSWORD) -> str:
        status, body = self.request(
            "POST", "/auth/token", form={"username": email, "password": password}
        )
        assert status == 200, body
        return str(body["access_token"])

    def admin_token(self) -> str:
        password = (self.data_dir / "secrets" / "bootstrap-admin-password").read_text().strip()
        return self.token("admin@example.com", password)

    def add_card(self, token: str, processor_token: str) -> dict[str, Any]:
        """A card saved for the token's user from the processor's test token (pm_card_...)."""
        code, card = self.request(
            "POST",
            "/billing/payment-methods",
            token=token,
            json_body={"token": processor_token},
            headers={"Idempotency-Key": str(uuid.uuid4())},
        )
        assert code == 201, card
        return dict(card)

    def other_operator(self, organisation: str, email: str, password: str) -> None:
        """An operator of another organisation than the demo's (both kept if a test ran before)."""
        admin = self.admin_token()
        code, org = self.request(
            "POST", "/auth/organisations", token=admin, json_body={"name": organisation}
        )
        assert code in (201, 409), org
        if code == 409:
            org = next(
                o
                for o in self.request("GET", "/auth/organisations", token=admin)[1]
                if o["name"] == organisation
            )
        code, body = self.request(
            "POST",
            "/auth/users",
            token=admin,
            json_body={
                "email": email,
                "password": password,
                "role": "operator",
                "organisation_id": org["id"],
            },
        )
        assert code in (201, 409), body


@pytest.fixture(scope="session")
def plugpay() -> Iterator[Plugpay]:
    """`plugpay run` as a subprocess: its own port, data folder and demo data; stations are ours."""
    port = free_port()
    data_dir = Path(tempfile.mkdtemp(prefix="plugpay-web-"))
    log_path = data_dir / "plugpay.log"
    log = log_path.open("w")
    process = start_plugpay(
        data_dir, port, stations=0, log=log, env=simulation_settings(METER_SPEEDUP)
    )
    server = Plugpay(f"http://127.0.0.1:{port}", data_dir)
    deadline = time.monotonic() + 180
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError("plugpay run exited:\n" + log_path.read_text()[-4000:])
            try:
                status, _ = server.request(
                    "POST",
                    "/auth/token",
                    form={"username": "driver@example.com", "password": DEMO_PASSWORD},
                )
                quote, _ = server.request("GET", "/pricing/stations/ST-0001/quote?connector=1")
                account_ready = False
                if status == 200:
                    code, account = server.request(
                        "GET", "/billing/account", token=server.token("driver@example.com")
                    )
                    account_ready = code == 200 and account["balance"]["amount_minor"] > 0
                if status == 200 and quote == 200 and account_ready:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    "plugpay run not ready with its demo data:\n" + log_path.read_text()[-4000:]
                )
            time.sleep(0.5)
        yield server
    finally:
        stop_plugpay(process, grace_s=30)
        log.close()
        shutil.rmtree(data_dir, ignore_errors=True)


class Stations:
    """Simulated stations (plugpay_simulator.stations) on a background event loop."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.replace("http", "ws", 1)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.connected: dict[str, Any] = {}

    def run(self, coro: Any, timeout: float = 30) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout)

    def connect(self, station_id: str, *, connectors: int = 1, **options: Any) -> Any:
        from plugpay_simulator.stations import SimulatedStation

        station = SimulatedStation(
            station_id,
            self.base_url,
            STATION_PASSWORD,
            connectors=connectors,
            meter_interval_s=1.0,
            energy_speedup=options.pop("energy_speedup", METER_SPEEDUP),
            **options,
        )
        # The gateway learns the station's password from auth-svc's events: right after start-up
        # it may not know it yet (HTTP 401 at the handshake), so retry for a while.
        deadline = time.monotonic() + 60
        while True:
            try:
                self.run(station.connect())
                break
            except Exception as error:
                if "401" not in str(error) or time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        self.connected[station_id] = station
        return station

    def close(self) -> None:
        for station in self.connected.values():
            with contextlib.suppress(Exception):
                self.run(station.close(), timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def _gateway_online(plugpay: Plugpay, station_id: str) -> bool:
    basic = base64.b64encode(f"{station_id}:{STATION_PASSWORD}".encode()).decode()
    code, state = plugpay.request(
        "GET",
        f"/stations/{station_id}/display/state",
        headers={"Authorization": f"Basic {basic}"},
    )
    assert code == 200 and state.get("online"), (code, state)
    return True


def _listed_available(plugpay: Plugpay, station_ids: set[str]) -> bool:
    code, body = plugpay.request("GET", "/pricing/stations/public")
    assert code == 200, body
    ready = {
        s["station_id"]
        for s in body["items"]
        if s["online"] and all(c["status"] == "Available" for c in s["connectors"])
    }
    assert station_ids <= ready, body["items"]
    return True


@pytest.fixture(scope="session")
def stations(plugpay: Plugpay) -> Iterator[Stations]:
    rig = Stations(plugpay.base_url)
    rig.connect("ST-0001", connectors=2)
    rig.connect("ST-0002")
    # The gateway records both stations online, and the services that learn it from the event
    # log (pricing's public list; session-svc, which checks it at a scan) have caught up.
    for station_id in ("ST-0001", "ST-0002"):
        eventually_blocking(
            functools.partial(_gateway_online, plugpay, station_id),
            within=20,
            what=f"the gateway has {station_id} online",
            every=0.3,
            tolerate=(AssertionError,),
        )
    eventually_blocking(
        functools.partial(_listed_available, plugpay, {"ST-0001", "ST-0002"}),
        within=20,
        what="pricing lists ST-0001 and ST-0002 online with every connector Available",
        every=0.3,
        tolerate=(AssertionError,),
    )
    yield rig
    rig.close()


@pytest.fixture(scope="session")
def playwright_instance() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/install-chromium.sh")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def browser(playwright_instance: Any) -> Iterator[Any]:
    b = launch(playwright_instance)
    yield b
    b.close()


@pytest.fixture
def phone(browser: Any, plugpay: Plugpay) -> Iterator[Any]:
    """A fresh phone: its own storage, the driver app's origin."""
    context = browser.new_context(base_url=plugpay.base_url, **PHONE)
    context.set_default_timeout(15_000)
    page = context.new_page()
    yield page
    context.close()
