"""At the charger: the station screen's QR is small (an independent decoder reads it), a code
is accepted the moment it is shown, and a typed code's problems are told next to its field."""

from __future__ import annotations

import asyncio
import base64
import io
import re
from typing import Any

import zxingcpp
from PIL import Image
from playwright.sync_api import expect
from web_support import DEMO_PASSWORD, PHONE, STATION_PASSWORD, log_in, shot

STATION_SCREEN = {"viewport": {"width": 800, "height": 1000}, "device_scale_factor": 2}
# A phone with a tall browser bar: 390x844 CSS pixels.
SMALL_PHONE = {**PHONE, "viewport": {"width": 390, "height": 844}}


def _scan_and_finish(plugpay: Any, stations: Any, station_id: str, connector: int) -> None:
    """A code issued, scanned 50 ms later (no retry), charging, stopped, billed, unplugged."""
    from plugpay_simulator.driver import DriverClient

    station = stations.connected[station_id]

    async def run() -> None:
        async with DriverClient(plugpay.base_url) as phone:
            await phone.login("driver@example.com", DEMO_PASSWORD)
            issued = await station.request_code(connector)
            await asyncio.sleep(0.05)  # the scenario itself: the driver is that quick
            session_id = await phone.scan(issued["qr"])
            await phone.wait_for_state(session_id, {"charging"}, timeout_s=30)
            await phone.stop(session_id)
            await phone.wait_for_state(session_id, {"billed"}, timeout_s=40)
        await station.unplug(connector)

    stations.run(run(), timeout=90)


def test_a_scan_50_ms_after_the_code_is_issued_starts_the_session(
    plugpay: Any, stations: Any
) -> None:
    """No waiting for the event log: session-svc verifies the code itself, before its
    SessionCodeIssued has reached the store."""
    for _ in range(3):  # more than once: no lucky timing
        _scan_and_finish(plugpay, stations, "ST-0002", 1)


def test_the_station_screens_qr_is_short_and_small(browser: Any, plugpay: Any) -> None:
    context = browser.new_context(
        base_url=plugpay.base_url,
        http_credentials={"username": "ST-0001", "password": STATION_PASSWORD},
        **STATION_SCREEN,
    )
    try:
        screen = context.new_page()
        screen.goto("/stations/ST-0001/display")
        card = screen.locator('[data-connector="1"]')
        card.get_by_role("button", name=re.compile("pay with phone", re.I)).click()
        image = card.locator(".qr img")
        expect(image).to_be_visible(timeout=15_000)
        screen.wait_for_function(
            "(img) => img.complete && img.naturalWidth > 0",
            arg=image.element_handle(),
            timeout=10_000,
        )
        shot(screen, "station-qr-short")
        png = Image.open(io.BytesIO(card.locator(".qr").screenshot()))
        [found] = zxingcpp.read_barcodes(png)
        assert found.text.startswith(f"{plugpay.base_url}/s/"), found.text
        assert len(found.text) <= 80, found.text
        assert int(found.extra["Version"]) <= 6, found.extra
        assert found.ec_level == "M"
        # Cancel on the screen: the connector is free for the next test's driver at once.
        card.get_by_role("button", name="Cancel").click()
        expect(card.get_by_role("button", name=re.compile("pay with phone", re.I))).to_be_enabled()
    finally:
        context.close()


def test_a_typed_codes_problems_are_told_next_to_the_field(
    browser: Any, plugpay: Any, stations: Any
) -> None:
    from plugpay_simulator.driver import DriverClient

    context = browser.new_context(base_url=plugpay.base_url, **SMALL_PHONE)
    context.set_default_timeout(20_000)
    try:
        phone = context.new_page()
        log_in(phone, "driver@example.com")
        field = phone.get_by_label(re.compile("type the code", re.I))
        error = phone.locator("#code-error")
        # Not six characters of the code's alphabet: told what to type, nothing asked.
        field.fill("ZZZZZZ")
        phone.get_by_role("button", name="Continue").click()
        expect(error).to_contain_text("six characters")
        expect(field).to_have_attribute("aria-invalid", "true")
        # Unknown: the reason next to the field, no price page and no Start button.
        field.fill("ACDEFG")
        phone.get_by_role("button", name="Continue").click()
        expect(error).to_contain_text("We don't know this code")
        expect(phone.get_by_role("heading", name="Charge")).to_be_visible()
        expect(phone.get_by_role("button", name="Start charging")).to_have_count(0)
        shot(phone, "app-typed-code-unknown")
        # Used: another driver scanned it first.
        station = stations.connected["ST-0002"]

        async def someone_else_scans() -> tuple[dict[str, Any], Any]:
            issued = await station.request_code(1)
            other = DriverClient(plugpay.base_url)
            await other.__aenter__()
            await other.login("driver@example.com", DEMO_PASSWORD)
            return issued, (other, await other.scan(issued["qr"]))

        issued, (other, session_id) = stations.run(someone_else_scans())
        try:
            field.fill(issued["code"])
            phone.get_by_role("button", name="Continue").click()
            expect(error).to_contain_text(re.compile("already used", re.I))
            expect(phone.get_by_role("button", name="Start charging")).to_have_count(0)
        finally:

            async def finish() -> None:
                await other.wait_for_state(session_id, {"charging"}, timeout_s=30)
                await other.stop(session_id)
                await other.wait_for_state(session_id, {"billed"}, timeout_s=40)
                await other.__aexit__(None, None, None)
                await station.unplug(1)

            stations.run(finish(), timeout=90)
    finally:
        context.close()


def test_start_charging_is_always_in_sight_on_a_small_phone(
    browser: Any, plugpay: Any, stations: Any
) -> None:
    """390x844 with a balance warning on the price page: the main action sits above the tab
    bar, not below the fold behind it."""
    context = browser.new_context(base_url=plugpay.base_url, **SMALL_PHONE)
    context.set_default_timeout(20_000)
    try:
        phone = context.new_page()
        log_in(phone, "broke@example.com")
        issued = stations.run(stations.connected["ST-0001"].request_code(2))
        phone.get_by_label(re.compile("type the code", re.I)).fill(issued["code"])
        phone.get_by_role("button", name="Continue").click()
        expect(phone.get_by_role("heading", name="Confirm and charge")).to_be_visible()
        expect(phone.locator("#price")).to_contain_text("EUR/kWh")
        expect(phone.get_by_text("Your balance is not enough to charge here.")).to_be_visible()
        start = phone.get_by_role("button", name="Start charging")
        expect(start).to_be_enabled()
        box = start.bounding_box()
        tabs = phone.locator("nav.tabs").bounding_box()
        assert box is not None and tabs is not None
        assert box["y"] >= 0 and box["y"] + box["height"] <= tabs["y"], (box, tabs)
        # Nothing covers it: the button itself is what a tap at its centre reaches.
        hit = phone.evaluate(
            "([x, y]) => document.elementFromPoint(x, y)?.closest('#start') !== null",
            [box["x"] + box["width"] / 2, box["y"] + box["height"] / 2],
        )
        assert hit is True
        shot(phone, "app-confirm-small-phone")
        phone.get_by_role("button", name="Cancel").click()
        expect(phone.get_by_role("heading", name="Charge")).to_be_visible()
        # Cancel released the code: the charger's connector is free again, not for 5 minutes.
        for _ in range(40):
            if _shown_session(plugpay, "ST-0001", 2) != "code_issued":
                break
            phone.wait_for_timeout(250)
        assert _shown_session(plugpay, "ST-0001", 2) == "expired"
    finally:
        context.close()


def _screen(browser: Any, plugpay: Any, station_id: str) -> Any:
    context = browser.new_context(
        base_url=plugpay.base_url,
        http_credentials={"username": station_id, "password": STATION_PASSWORD},
        **STATION_SCREEN,
    )
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(f"/stations/{station_id}/display")
    return page, dialogs


def _basic(station_id: str) -> str:
    return base64.b64encode(f"{station_id}:{STATION_PASSWORD}".encode()).decode()


def _shown_session(plugpay: Any, station_id: str, connector: int) -> str | None:
    """The state of the session the station's screen shows on a connector."""
    _, state = plugpay.request(
        "GET",
        f"/stations/{station_id}/display/state",
        headers={"Authorization": "Basic " + _basic(station_id)},
    )
    [shown] = [c["session"] for c in state["connectors"] if c["connector_id"] == connector]
    return shown["state"] if shown else None


HUMAN = re.compile(
    "^(Available|Plugged in|In use|Unplug the cable to finish|Reserved|Not available|"
    "Out of order|Ready|Offline|Waiting for the phone|Starting|Charging|Finished|Not started)$"
)


def test_the_station_screen_speaks_plainly_and_keeps_money_private(
    browser: Any, plugpay: Any, stations: Any
) -> None:
    from plugpay_simulator.driver import DriverClient

    # Offline (ST-0003 has no charger connected): said once, and nothing offered to press.
    offline, _ = _screen(browser, plugpay, "ST-0003")
    try:
        expect(offline.locator("#offline")).to_be_visible()
        card = offline.locator("[data-connector]").first
        expect(card.locator(".status[data-status]")).to_have_text("Offline")
        expect(card.get_by_role("button", name="Pay with phone")).to_be_disabled()
        expect(card.get_by_role("button", name="Charging card")).to_be_disabled()
        shot(offline, "station-offline")
    finally:
        offline.context.close()

    screen, dialogs = _screen(browser, plugpay, "ST-0002")
    try:
        card = screen.locator('[data-connector="1"]')
        expect(card.get_by_role("button", name="Pay with phone")).to_be_enabled()
        for status in screen.locator(".connector .status[data-status]").all_inner_texts():
            assert HUMAN.match(status), status  # one human status, never a raw OCPP one
        # A charging card: a message on the screen (no pop-up) pointing to the app.
        card.get_by_role("button", name="Charging card").click()
        expect(card.get_by_role("status")).to_contain_text("Plugpay app")
        # A refused driver: the shared screen stays neutral, the phone has the details.
        card.get_by_role("button", name=re.compile("pay with phone", re.I)).click()
        code = card.locator(".code")
        expect(code).to_have_text(re.compile("^[A-Z0-9]{6}$"), timeout=15_000)
        expect(card.locator(".status[data-status]")).to_have_text("Waiting for the phone")
        typed = code.inner_text()

        async def broke_scans() -> str:
            async with DriverClient(plugpay.base_url) as phone:
                await phone.login("broke@example.com", DEMO_PASSWORD)
                # Typed the moment it shows: accepted at once, no retry.
                session_id = await phone.scan(typed)
                state = await phone.wait_for_state(session_id, {"denied"}, timeout_s=30)
                return str(state["denial"]["reason"])

        reason = stations.run(broke_scans(), timeout=60)
        assert reason in {"insufficient_funds", "no_payment_method", "payment_declined"}
        expect(card).to_contain_text("Payment could not be arranged", timeout=15_000)
        text = card.inner_text().lower()
        assert "balance" not in text and "insufficient" not in text and "card" not in text, text
        shot(screen, "station-refused-neutral")
        card.get_by_role("button", name="Try again").click()
        expect(card.get_by_role("button", name="Pay with phone")).to_be_enabled()
        # Cancel on the screen: the code is retired at once and the connector free again.
        card.get_by_role("button", name=re.compile("pay with phone", re.I)).click()
        expect(code).to_have_text(re.compile("^[A-Z0-9]{6}$"), timeout=15_000)
        state = plugpay.request(
            "GET",
            "/stations/ST-0002/display/state",
            headers={"Authorization": "Basic " + _basic("ST-0002")},
        )[1]
        [shown] = [c["session"] for c in state["connectors"] if c["connector_id"] == 1]
        qr = shown["qr_url"]
        card.get_by_role("button", name="Cancel").click()
        expect(card.get_by_role("button", name="Pay with phone")).to_be_enabled()
        expect(card.locator(".code")).to_have_count(0)
        # session-svc learns of the cancel from the log (the preview claims nothing and a QR
        # preview is not rate-limited); from then on the code is refused.
        token = plugpay.token("driver@example.com")

        def previewed() -> str:
            status, body = plugpay.request(
                "POST", "/sessions/codes/lookup", token=token, json_body={"code": qr}
            )
            return "ok" if status == 200 else str(body["reason"])

        for _ in range(40):
            if previewed() == "code_expired":
                break
            screen.wait_for_timeout(250)
        status, body = plugpay.request(
            "POST", "/sessions/scan", token=token, json_body={"code": qr}
        )
        assert (status, body["reason"]) == (410, "code_expired"), body
        # A plain charging card at the reader: refused, and the screen says how to pay instead.
        assert stations.run(stations.connected["ST-0002"].present_card("RFID-0042")) == "Invalid"
        expect(card.locator("[data-card-refused]")).to_contain_text("Plugpay app")
        shot(screen, "station-card-refused")
        assert dialogs == []
    finally:
        screen.context.close()
