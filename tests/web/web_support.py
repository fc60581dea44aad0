"""Helpers of the browser tests: Chromium, screenshots, axe-core, the fake camera, logging in."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from PIL import Image
from playwright.sync_api import expect

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "docs" / "screenshots"
CHROMIUM = os.environ.get("PLUGPAY_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PHONE = {
    "viewport": {"width": 360, "height": 780},
    "device_scale_factor": 2,
    "is_mobile": True,
    "has_touch": True,
}
DESKTOP = {"viewport": {"width": 1200, "height": 860}}
STATION_SCREEN = {"viewport": {"width": 800, "height": 1000}, "device_scale_factor": 2}
DEMO_PASSWORD = "demo-password-1"
# A card valid for a few more years, whatever the day the tests run.
CARD_EXPIRY = f"08/{(datetime.now(UTC).year + 3) % 100:02d}"
STATION_PASSWORD = "demo-station-secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_plugpay(
    data_dir: Path, port: int, *, stations: int, log: IO[str], env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """`plugpay run` on ``data_dir`` and ``port`` in a process group of its own (``stop_plugpay``
    ends it), logging to ``log``; no mail server named, so mail goes to the in-process one, shown
    at /dev/mailbox."""
    command = shutil.which("plugpay", path=str(Path(sys.executable).parent)) or "plugpay"
    return subprocess.Popen(
        [command, "run", "--data", str(data_dir), "--port", str(port), "--stations", str(stations)],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
        start_new_session=True,
        env={
            **{k: v for k, v in os.environ.items() if k != "PLUGPAY_SMTP_URL"},
            **(env or {}),
            "PLUGPAY_LOG_LEVEL": "WARNING",
        },
    )


def stop_plugpay(process: subprocess.Popen[bytes], *, grace_s: float) -> None:
    """Ctrl-C to the whole `plugpay run` group; killed if it has not stopped within ``grace_s``."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGINT)
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def launch(playwright_instance: Any, extra_args: list[str] | None = None) -> Any:
    return playwright_instance.chromium.launch(
        executable_path=CHROMIUM, args=CHROMIUM_ARGS + (extra_args or []), headless=True
    )


def shot(page: Any, name: str) -> None:
    """Save a screenshot of a main screen for docs/screenshots (and the README)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=False, animations="disabled")


def axe(page: Any) -> list[dict[str, Any]]:
    """axe-core (from web/node_modules) on the current page: violations of impact serious+."""
    source = ROOT / "web" / "node_modules" / "axe-core" / "axe.min.js"
    page.add_script_tag(content=source.read_text())
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [
        {
            "id": v["id"],
            "impact": v["impact"],
            "help": v["help"],
            "nodes": [n["target"] for n in v["nodes"]][:5],
        }
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def log_in(page: Any, email: str, password: str = DEMO_PASSWORD) -> None:
    page.goto("/app/#/login")
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()


def type_card(phone: Any, number: str, expiry: str = CARD_EXPIRY, cvc: str = "123") -> None:
    """Type a card as a person does, into the processor's fields (never a token)."""
    phone.get_by_label("Card number").fill(number)
    phone.get_by_label("Expiry date (MM/YY)").fill(expiry)
    phone.get_by_label("Security code (CVC)").fill(cvc)


def expect_energy_to_change(phone: Any) -> None:
    """The energy shown moves on by itself: meter values arrive over the session's stream."""
    first = phone.locator("#energy").inner_text()
    expect(phone.locator("#energy")).not_to_have_text(first, timeout=15_000)


# --- the station's screen and the phone camera: a screenshot as the fake capture device ------


def station_screen(browser: Any, plugpay: Any, station_id: str) -> Any:
    """The station's own screen (its browser signs in with the station's OCPP credentials)."""
    context = browser.new_context(
        base_url=plugpay.base_url,
        http_credentials={"username": station_id, "password": STATION_PASSWORD},
        **STATION_SCREEN,
    )
    page = context.new_page()
    page.goto(f"/stations/{station_id}/display")
    return page


def show_code(screen: Any, connector: int = 1) -> Any:
    """The driver picks "Pay with phone" on the screen; returns the connector's card."""
    card = screen.locator(f'[data-connector="{connector}"]')
    card.get_by_role("button", name=re.compile("pay with phone", re.I)).click()
    image = card.locator(".qr img")
    expect(image).to_be_visible(timeout=15_000)
    screen.wait_for_function(
        "(img) => img.complete && img.naturalWidth > 0", arg=image.element_handle(), timeout=10_000
    )
    return card


def launch_with_camera(playwright_instance: Any, feed: Path) -> Any:
    """A Chromium whose camera plays ``feed`` (from y4m_from_screenshot), allowed without asking."""
    return launch(
        playwright_instance,
        [
            "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-video-capture={feed}",
        ],
    )


WIDTH, HEIGHT = 640, 480


def y4m_from_screenshot(png: Path, out: Path, *, frames: int = 15, fill: float = 0.8) -> Path:
    shot = Image.open(png).convert("RGB")
    scale = min(WIDTH * fill / shot.width, HEIGHT * fill / shot.height)
    picture = shot.resize(
        (max(2, int(shot.width * scale)), max(2, int(shot.height * scale))), Image.LANCZOS
    )
    frame = Image.new("RGB", (WIDTH, HEIGHT), (40, 44, 52))
    frame.paste(picture, ((WIDTH - picture.width) // 2 + 12, (HEIGHT - picture.height) // 2 - 8))
    y, cb, cr = frame.convert("YCbCr").split()
    half = (WIDTH // 2, HEIGHT // 2)
    planes = (
        y.tobytes()
        + cb.resize(half, Image.BILINEAR).tobytes()
        + cr.resize(half, Image.BILINEAR).tobytes()
    )
    with out.open("wb") as f:
        f.write(f"YUV4MPEG2 W{WIDTH} H{HEIGHT} F10:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            f.write(b"FRAME\n")
            f.write(planes)
    return out


async def start_charging(base_url: str, station: Any, connector: int) -> uuid.UUID:
    """The demo driver scans a code of ``station``'s ``connector`` over the APIs (the driver
    client, as `plugpay drive` does); returns once the session charges and energy flows."""
    from plugpay_simulator.driver import DriverClient
    from plugpay_testing import eventually

    issued = await station.request_code(connector)
    async with DriverClient(base_url) as driver:
        await driver.login("driver@example.com", DEMO_PASSWORD)
        session_id = await driver.scan(issued["qr"])
        await driver.wait_for_state(session_id, {"charging"}, timeout_s=30)
    tx = station.transactions[connector]
    await eventually(lambda: tx.meter_wh > tx.meter_start_wh, within=30, what="energy flows")
    return session_id


async def stop_and_unplug(
    base_url: str,
    station: Any,
    connector: int,
    session_id: uuid.UUID,
    *,
    may_be_stopped: bool = False,
) -> None:
    """The demo driver stops the session over the APIs; once it is billed, the car is unplugged.
    ``may_be_stopped``: the gateway may have stopped it at its limit first (a charger's reading
    ran past it), so the driver's stop may be answered ``not_charging``; it is billed all the
    same."""
    from plugpay_simulator.driver import DriverClient, DriverError

    async with DriverClient(base_url) as driver:
        await driver.login("driver@example.com", DEMO_PASSWORD)
        try:
            await driver.stop(session_id)
        except DriverError as refused:
            if not may_be_stopped or (refused.status, refused.reason) != (409, "not_charging"):
                raise
        await driver.wait_for_state(session_id, {"billed"}, timeout_s=40)
    await station.unplug(connector)


def charge_once(
    plugpay: Any, stations: Any, station_id: str, connector: int, *, lie_wh: int = 0
) -> str:
    """A paid session arranged over the APIs; ``lie_wh``: the charger then reports that much
    more in one meter value before it stops."""
    station = stations.connected[station_id]

    async def run() -> str:
        session_id = await start_charging(plugpay.base_url, station, connector)
        if lie_wh:
            tx = station.transactions[connector]
            tx.meter_wh += lie_wh
            station.registers[tx.connector_id] = tx.meter_wh
            await station.send_meter_values(tx)
        await stop_and_unplug(
            plugpay.base_url, station, connector, session_id, may_be_stopped=bool(lie_wh)
        )
        return str(session_id)

    return str(stations.run(run(), timeout=90))
