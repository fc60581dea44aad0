"""The driver's phone app in a real browser: the optical loop, typed codes, live session, receipt."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect
from web_support import PHONE, STATION_PASSWORD, launch, log_in, shot, y4m_from_screenshot

STATION_SCREEN = {"viewport": {"width": 800, "height": 1000}, "device_scale_factor": 2}


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


def wait_until(predicate: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.2)


def test_optical_loop_camera_scan_authorises_and_charges(
    playwright_instance: Any, browser: Any, plugpay: Any, stations: Any, tmp_path: Path
) -> None:
    """Patent FIG. 3 end to end through light: station screen → screenshot → phone camera."""
    station = stations.connected["ST-0001"]
    starts_before = station.start_requests
    screen = station_screen(browser, plugpay, "ST-0001")
    card = show_code(screen)
    shot(screen, "station-qr")
    # What the phone's camera sees: the QR on the station's screen.
    png = tmp_path / "station-qr.png"
    card.locator(".qr").screenshot(path=str(png))
    feed = y4m_from_screenshot(png, tmp_path / "camera.y4m")

    camera_browser = launch(
        playwright_instance,
        [
            "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-video-capture={feed}",
        ],
    )
    try:
        context = camera_browser.new_context(base_url=plugpay.base_url, **PHONE)
        context.grant_permissions(["camera"])
        context.set_default_timeout(20_000)
        phone = context.new_page()
        log_in(phone, "driver@example.com")
        expect(phone.get_by_role("heading", name="Charge")).to_be_visible()
        shot(phone, "app-home")
        phone.get_by_role("link", name="Scan the QR code").click()
        # jsQR decodes the camera's frames; the app moves on to the price by itself.
        expect(phone.get_by_role("heading", name="Confirm and charge")).to_be_visible(timeout=30_000)
        expect(phone.locator("#price")).to_contain_text("EUR/kWh")
        expect(phone.locator("#station-name")).to_have_text("Demo Market Square")
        shot(phone, "app-confirm-price")
        phone.get_by_role("button", name="Start charging").click()

        # Live: authorised → charging, updates arrive over the stream without a reload.
        expect(phone.locator("#status")).to_have_attribute("data-status", "charging", timeout=30_000)
        assert station.start_requests == starts_before + 1
        first = phone.locator("#energy").inner_text()
        expect(phone.locator("#energy")).not_to_have_text(first, timeout=15_000)
        expect(phone.locator("#cost")).to_contain_text("€")
        expect(phone.locator("#power")).to_contain_text("kW")
        shot(phone, "app-charging")
        screen_status = screen.locator('[data-connector="1"]')
        expect(screen_status).to_contain_text("Charging", timeout=15_000)
        shot(screen, "station-charging")

        phone.get_by_role("button", name="Stop charging").click()
        expect(phone.locator("#status")).to_have_attribute("data-status", "billed", timeout=40_000)
        expect(phone.locator("#final")).to_contain_text("Charged")
        shot(phone, "app-finished")

        phone.get_by_role("link", name="View receipt").click()
        expect(phone.locator("#receipt-total")).to_contain_text("EUR")
        shot(phone, "app-receipt")
        with phone.expect_download() as download:
            phone.get_by_role("button", name="Download PDF").click()
        pdf = tmp_path / "receipt.pdf"
        download.value.save_as(pdf)
        assert pdf.read_bytes().startswith(b"%PDF")
        context.close()
    finally:
        camera_browser.close()
        screen.context.close()
