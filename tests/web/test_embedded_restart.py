"""`plugpay run` restarted in the middle of a session: its own simulated charger (the demo
fleet, ``--stations 1``) keeps the open transaction, as a real charger would, and after the
restart meters it on and stops it when the driver asks; the session is billed, not lost."""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from plugpay_testing import eventually
from web_support import DEMO_PASSWORD, STATION_PASSWORD, free_port, start_plugpay, stop_plugpay

STATION = "ST-0001"


class Run:
    """`plugpay run --stations 1` on one data folder and port, started and stopped at will."""

    def __init__(self, data_dir: Path, port: int) -> None:
        self.data_dir, self.port = data_dir, port
        self.base_url = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.runs = 0

    def start(self) -> None:
        self.runs += 1
        log = (self.data_dir / f"plugpay-{self.runs}.log").open("w")
        self.process = start_plugpay(self.data_dir, self.port, stations=1, log=log)

    def log(self) -> str:
        return (self.data_dir / f"plugpay-{self.runs}.log").read_text()[-4000:]

    def stop(self) -> None:
        if self.process is None:
            return
        stop_plugpay(self.process, grace_s=60)
        self.process = None

    async def station_online(self, http: httpx.AsyncClient) -> None:
        """Until the gateway has the demo station connected (after start-up and seeding)."""
        basic = base64.b64encode(f"{STATION}:{STATION_PASSWORD}".encode()).decode()

        async def online() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError("plugpay run exited:\n" + self.log())
            r = await http.get(
                f"/stations/{STATION}/display/state",
                headers={"Authorization": f"Basic {basic}"},
            )
            return r.status_code == 200 and bool(r.json().get("online"))

        await eventually(
            online,
            within=240,
            what=f"{STATION} online",
            every=0.5,
            tolerate=(httpx.TransportError,),
        )


@pytest.fixture
def run() -> Iterator[Run]:
    data_dir = Path(tempfile.mkdtemp(prefix="plugpay-restart-"))
    rig = Run(data_dir, free_port())
    try:
        yield rig
    finally:
        rig.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


async def _energy_after(phone: Any, session_id: Any, above: int, within: float) -> int:
    """Wait until the session's energy so far is above ``above`` Wh (the charger meters on)."""

    async def metered_on() -> int | None:
        view = await phone.session(session_id)
        assert view["status"] == "charging", view
        energy = int(view.get("energy_wh") or 0)
        return energy if energy > above else None

    return await eventually(metered_on, within=within, what=f"energy above {above} Wh", every=0.5)


def test_a_restarted_plugpay_run_resumes_its_chargers_open_transaction(run: Run) -> None:
    from plugpay_simulator.driver import DriverClient

    async def scenario() -> None:
        run.start()
        async with httpx.AsyncClient(base_url=run.base_url, timeout=15) as http:
            await run.station_online(http)
            basic = base64.b64encode(f"{STATION}:{STATION_PASSWORD}".encode()).decode()
            issued = await http.post(  # the station screen's "Pay with phone"
                f"/stations/{STATION}/display/sessions",
                json={"connector_id": 1},
                headers={"Authorization": f"Basic {basic}"},
            )
            assert issued.status_code == 201, issued.text
            async with DriverClient(run.base_url) as phone:
                await phone.login("driver@example.com", DEMO_PASSWORD)
                session_id = await phone.scan(issued.json()["qr"])
                await phone.wait_for_state(session_id, {"charging"}, timeout_s=60)
                before = await _energy_after(phone, session_id, 0, within=60)

            run.stop()  # the whole product, its charger simulation included
            run.start()
            await run.station_online(http)
            async with DriverClient(run.base_url) as phone:
                await phone.login("driver@example.com", DEMO_PASSWORD)
                # The same session, metered on by the charger after the restart.
                await _energy_after(phone, session_id, before, within=60)
                await phone.stop(session_id)
                billed = await phone.wait_for_state(session_id, {"billed"}, timeout_s=60)
        assert billed["energy_wh"] > before, billed

    # In a thread of its own: the browser tests' sync Playwright keeps an event loop running
    # in this one.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, scenario()).result()
