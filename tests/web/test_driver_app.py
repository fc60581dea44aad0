"""The driver's phone app in a real browser: optical loop, typed code, live session, receipt."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from playwright.sync_api import expect
from web_support import (
    PHONE,
    charge_once,
    expect_energy_to_change,
    launch_with_camera,
    log_in,
    shot,
    show_code,
    station_screen,
    y4m_from_screenshot,
)


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

    camera_browser = launch_with_camera(playwright_instance, feed)
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
        expect(phone.get_by_role("heading", name="Confirm and charge")).to_be_visible(
            timeout=30_000
        )
        expect(phone.locator("#price")).to_contain_text("EUR/kWh")
        expect(phone.locator("#station-name")).to_have_text("Demo Market Square")
        shot(phone, "app-confirm-price")
        phone.get_by_role("button", name="Start charging").click()

        # Live: authorised → charging, updates arrive over the stream without a reload.
        expect(phone.locator("#status")).to_have_attribute(
            "data-status", "charging", timeout=30_000
        )
        assert station.start_requests == starts_before + 1
        expect_energy_to_change(phone)
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


def test_typed_code_path_live_updates_and_unplug(phone: Any, plugpay: Any, stations: Any) -> None:
    station = stations.connected["ST-0001"]
    issued = stations.run(station.request_code(2))
    log_in(phone, "driver@example.com")
    phone.get_by_label(re.compile("type the code", re.I)).fill(issued["code"].lower())
    phone.get_by_role("button", name="Continue").click()
    expect(phone.get_by_role("heading", name="Confirm and charge")).to_be_visible()
    # The typed code is looked up (nothing claimed): charger and price before confirming.
    expect(phone.locator("#station-name")).to_have_text("Demo Market Square")
    expect(phone.locator("#price")).to_contain_text("EUR/kWh")
    phone.get_by_role("button", name="Start charging").click()
    expect(phone.locator("#status")).to_have_attribute("data-status", "charging", timeout=30_000)
    # Meter values arrive over the stream: the energy changes without any reload.
    phone.evaluate("window.__same_page = true")
    expect_energy_to_change(phone)
    assert phone.evaluate("window.__same_page") is True
    # The driver unplugs at the station: the app follows to the final cost.
    stations.run(station.unplug(2))
    expect(phone.locator("#status")).to_have_attribute("data-status", "billed", timeout=40_000)
    expect(phone.locator("#final")).to_contain_text("Charged")
    assert phone.evaluate("window.__same_page") is True


def test_qr_link_from_any_camera_lands_in_app_then_login_then_price(
    phone: Any, plugpay: Any, stations: Any
) -> None:
    station = stations.connected["ST-0002"]
    issued = stations.run(station.request_code(1))
    path = "/s/" + issued["qr"].split("/s/", 1)[1]
    phone.goto(path)
    expect(phone.get_by_role("heading", name="Log in")).to_be_visible()
    expect(phone.get_by_text("Code received.")).to_be_visible()
    phone.get_by_label("E-mail").fill("driver@example.com")
    phone.get_by_label("Password").fill("demo-password-1")
    phone.get_by_role("button", name="Log in").click()
    expect(phone.get_by_role("heading", name="Confirm and charge")).to_be_visible()
    expect(phone.locator("#station-name")).to_have_text("Demo Motorway Fast Charger")
    expect(phone.locator("#price")).to_contain_text("EUR/kWh")
    phone.get_by_role("button", name="Cancel").click()
    expect(phone.get_by_role("heading", name="Charge")).to_be_visible()


def test_login_wrong_password_then_login_and_logout(phone: Any) -> None:
    log_in(phone, "driver@example.com", "not-the-password")
    expect(phone.get_by_role("alert")).to_contain_text("E-mail or password is wrong")
    phone.get_by_label("Password").fill("demo-password-1")
    phone.get_by_role("button", name="Log in").click()
    expect(phone.get_by_role("heading", name="Charge")).to_be_visible()
    expect(phone.locator("#who")).to_have_text("driver@example.com")
    phone.get_by_role("link", name="Account").click()
    phone.get_by_role("button", name="Log out").click()
    expect(phone.get_by_role("heading", name="Log in")).to_be_visible()
    phone.goto("/app/#/account")
    expect(phone.get_by_role("heading", name="Log in")).to_be_visible()
    assert phone.evaluate("localStorage.getItem('plugpay.auth')") is None


def test_top_up_and_auto_top_up(phone: Any, plugpay: Any) -> None:
    token = plugpay.token("driver@example.com")
    before = plugpay.request("GET", "/billing/account", token=token)[1]["balance"]["amount_minor"]
    log_in(phone, "driver@example.com")
    expect(phone.get_by_role("heading", name="Charge")).to_be_visible()
    phone.get_by_role("link", name="Account").click()
    expect(phone.locator("#balance")).to_be_visible()
    phone.get_by_label("Amount").select_option(str(5000))
    phone.get_by_role("button", name="Top up", exact=True).click()
    expect(phone.get_by_role("status").filter(has_text="New balance")).to_be_visible()
    # The balance card changed with the message, not after a reload of the page.
    assert f"{(before + 5000) / 100:.2f}" in phone.locator("#balance").inner_text()
    after = plugpay.request("GET", "/billing/account", token=token)[1]
    assert after["balance"]["amount_minor"] == before + 5000
    shot(phone, "app-account")

    phone.get_by_label("Top up automatically").check()
    phone.get_by_label(re.compile("When below")).fill("7.50")
    phone.get_by_label(re.compile("^Add \\(")).fill("25")
    phone.get_by_role("button", name="Save auto top-up").click()
    expect(phone.get_by_role("status").filter(has_text="we add")).to_be_visible()
    auto = plugpay.request("GET", "/billing/account", token=token)[1]["auto_topup"]
    assert auto["enabled"] is True
    assert auto["threshold"]["amount_minor"] == 750
    assert auto["amount"]["amount_minor"] == 2500
    phone.reload()
    expect(phone.get_by_label("Top up automatically")).to_be_checked()


def test_denial_reason_in_plain_language(phone: Any, plugpay: Any, stations: Any) -> None:
    # A code that does not exist: refused at once, with what to do next.
    log_in(phone, "broke@example.com")
    phone.get_by_label(re.compile("type the code", re.I)).fill("ACDEFG")
    phone.get_by_role("button", name="Continue").click()
    expect(phone.locator("#code-error")).to_contain_text("We don't know this code")
    # A real code, but an empty wallet and no card: denied by billing, explained in the app.
    station = stations.connected["ST-0002"]
    issued = stations.run(station.request_code(1))
    phone.goto("/s/" + issued["qr"].split("/s/", 1)[1])
    expect(phone.get_by_role("heading", name="Confirm and charge")).to_be_visible()
    phone.get_by_role("button", name="Start charging").click()
    denial = phone.locator("#denial")
    expect(denial).to_be_visible(timeout=30_000)
    reason = denial.get_attribute("data-reason")
    assert reason in {"insufficient_funds", "no_payment_method", "payment_declined"}
    expect(denial).to_contain_text(re.compile("balance is too low|no way to pay|declined"))
    expect(phone.get_by_role("link", name="Top up or add a card")).to_be_visible()
    shot(phone, "app-denied")


def test_history_and_receipts_open_offline(phone: Any, plugpay: Any, stations: Any) -> None:
    session_id = charge_once(plugpay, stations, "ST-0002", 1)
    log_in(phone, "driver@example.com")
    expect(phone.get_by_role("heading", name="Charge")).to_be_visible()
    phone.get_by_role("link", name="History").click()
    row = phone.locator(f'#history a[href="#/receipt/{session_id}"]')
    expect(row).to_be_visible()
    shot(phone, "app-history")
    row.click()
    expect(phone.locator("#receipt-total")).to_contain_text("EUR")
    # The service worker has cached the app shell; from now on it controls the page.
    assert phone.evaluate("navigator.serviceWorker.ready.then(() => true)") is True
    phone.reload()
    expect(phone.locator("#receipt-total")).to_contain_text("EUR")
    # No connection: the phone's own database still has the history and the receipt.
    phone.context.set_offline(True)
    try:
        phone.goto("/app/#/history")
        expect(
            phone.get_by_text("Offline: showing the sessions saved on your phone.")
        ).to_be_visible()
        phone.locator(f'#history a[href="#/receipt/{session_id}"]').click()
        expect(phone.get_by_text("Offline: this is the copy saved on your phone.")).to_be_visible()
        expect(phone.locator("#receipt-total")).to_contain_text("EUR")
    finally:
        phone.context.set_offline(False)
