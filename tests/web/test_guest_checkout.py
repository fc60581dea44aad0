"""Paying without an account (EU AFIR ad hoc charging) on a phone: the charger's QR link, "Pay
by card" beside "Log in", every price component before paying, a card pre-authorisation, the
live session, exactly the cost charged to the card, the receipt; the station's own screen never
shows the card; a card that insists on 3-D Secure goes through its bank's page before the charger
starts, and a failed check is refused in plain words. The card is typed into the payment
processor's form (the simulated processor's, as Stripe Elements), which hands the page a token: a
mistyped number is explained beside the field and nothing is saved. The same checkout reached
through the app's own scanner, its camera fed the station screen's QR."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from playwright.sync_api import expect
from plugpay_testing import eventually_blocking
from web_support import (
    PHONE,
    STATION_PASSWORD,
    expect_energy_to_change,
    launch_with_camera,
    shot,
    show_code,
    station_screen,
    type_card,
    y4m_from_screenshot,
)


def open_link_as_guest(phone: Any, issued: dict[str, Any]) -> None:
    phone.goto("/s/" + issued["qr"].split("/s/", 1)[1])
    expect(phone.get_by_role("heading", name="Log in")).to_be_visible()
    phone.get_by_role("link", name="Pay by card").click()
    expect(phone.get_by_role("heading", name="Pay by card")).to_be_visible()


def pay_by_a_3d_secure_card(phone: Any, stations: Any) -> tuple[Any, int]:
    """A guest's card that insists on 3-D Secure, paid with as far as the bank's page (the
    simulated processor's, like Stripe's test page); the station, and its starts before."""
    station = stations.connected["ST-0001"]
    starts_before = station.start_requests
    issued = stations.run(station.request_code(2))
    open_link_as_guest(phone, issued)
    type_card(phone, "4000 0027 6000 3184")
    phone.get_by_role("button", name="Pay by card and start").click()
    expect(phone.get_by_role("heading", name="Confirm your payment")).to_be_visible()
    return station, starts_before


def test_a_guest_pays_by_card_charges_and_gets_the_receipt(
    phone: Any, browser: Any, plugpay: Any, stations: Any
) -> None:
    station = stations.connected["ST-0002"]
    starts_before = station.start_requests
    issued = stations.run(station.request_code(1))
    open_link_as_guest(phone, issued)
    # The charger, the connector and every price component before any card is asked for.
    expect(phone.locator("#station-name")).to_have_text("Demo Motorway Fast Charger")
    expect(phone.locator("#connector")).to_contain_text("Connector 1")
    expect(phone.locator("#price-per-kwh")).to_contain_text("per kWh")
    for label in ("Energy", "Time", "Session fee", "Idle fee", "VAT"):
        expect(phone.locator("#price-components")).to_contain_text(label)
    expect(phone.locator("#price-vat")).to_contain_text(re.compile(r"\d+ % included"))
    expect(phone.locator("#preauth-note")).to_contain_text("pre-authorisation")
    shot(phone, "guest-price")
    # nothing was claimed by looking: the guest has no account and no session yet
    assert phone.evaluate("localStorage.getItem('plugpay.auth')") is None

    # A typing mistake is explained beside the number; nothing is saved, nothing starts.
    saved: list[str] = []
    phone.on(
        "request",
        lambda r: (
            saved.append(r.post_data or "") if r.url.endswith("/billing/payment-methods") else None
        ),
    )
    type_card(phone, "4242 4242 4242 4241")
    phone.get_by_role("button", name="Pay by card and start").click()
    expect(phone.locator("#guest-card-error")).to_contain_text("not valid")
    expect(phone.locator("#guest-card-error")).to_contain_text("typing mistake")
    expect(phone.get_by_label("Card number")).to_have_attribute("aria-invalid", "true")
    type_card(phone, "4242 4242 4242 4242", expiry="01/20")
    phone.get_by_role("button", name="Pay by card and start").click()
    expect(phone.locator("#guest-card-error")).to_contain_text("expired")
    expect(phone.get_by_label("Expiry date (MM/YY)")).to_have_attribute("aria-invalid", "true")
    shot(phone, "guest-card-entry")
    assert saved == [] and station.start_requests == starts_before

    type_card(phone, "4242 4242 4242 4242")
    phone.get_by_role("button", name="Pay by card and start").click()
    expect(phone.locator("#status")).to_have_attribute("data-status", "charging", timeout=30_000)
    assert station.start_requests == starts_before + 1
    # Billing got the processor's token, never the number.
    [body] = [json.loads(b) for b in saved]
    assert list(body) == ["token"] and body["token"].startswith("pm_")
    assert "4242424242424242" not in body["token"]
    expect(phone.locator("#limit")).to_contain_text("pre-authorisation")
    expect_energy_to_change(phone)
    shot(phone, "guest-charging")

    # The station's public screen shows the session, never the card.
    screen = browser.new_context(
        base_url=plugpay.base_url,
        http_credentials={"username": "ST-0002", "password": STATION_PASSWORD},
    ).new_page()
    screen.goto("/stations/ST-0002/display")
    expect(screen.locator('[data-connector="1"]')).to_contain_text("Charging", timeout=15_000)
    text = screen.locator("body").inner_text()
    assert "4242" not in text and "visa" not in text.lower()
    screen.context.close()

    phone.get_by_role("button", name="Stop charging").click()
    expect(phone.locator("#status")).to_have_attribute("data-status", "billed", timeout=40_000)
    expect(phone.locator("#final")).to_contain_text("Charged")
    expect(phone.locator("#paid-card")).to_contain_text("4242")
    session_id = phone.url.rsplit("/", 1)[1]
    phone.get_by_role("link", name="View receipt").click()
    expect(phone.locator("#receipt-total")).to_contain_text("EUR")
    shot(phone, "guest-receipt")
    # The invoice to an address the guest types, as a business invoice with a VAT id.
    phone.get_by_label("E-mail address").fill("fleet@business.example")
    phone.get_by_label(re.compile("VAT ID")).fill("DE 123 456 789")
    phone.get_by_role("button", name="Send invoice").click()
    expect(phone.locator("#invoice-sent")).to_contain_text("fleet@business.example")
    mailbox = phone.context.new_page()

    def mailed() -> list[Any]:
        mails = mailbox.request.get(plugpay.base_url + "/dev/mailbox.json").json()
        return [m for m in mails if "fleet@business.example" in m["to"]]

    [mail] = eventually_blocking(mailed, within=30, what="the invoice in the mailbox")
    assert [a["content_type"] for a in mail["attachments"]] == ["application/pdf"]
    mailbox.close()

    # Exactly the cost went to the card; the guest's token reads this session and nothing else.
    token = phone.evaluate("JSON.parse(sessionStorage.getItem('plugpay.guest')).access")
    status, receipt = plugpay.request("GET", f"/billing/receipts/{session_id}", token=token)
    assert status == 200
    assert receipt["funding_split"]["card"] == receipt["charged"]
    assert receipt["charged"]["amount_minor"] == receipt["total_incl_vat"]["amount_minor"] > 0
    assert receipt["buyer"] == {"email": "fleet@business.example", "vat_id": "DE123456789"}
    assert plugpay.request("GET", "/billing/account", token=token)[0] == 403
    listed = plugpay.request("GET", "/sessions", token=token)[1]["items"]
    assert [s["session_id"] for s in listed] == [session_id]
    stations.run(station.unplug(1))


def test_a_card_that_insists_on_3d_secure_goes_through_the_bank_and_charges(
    phone: Any, stations: Any
) -> None:
    station, starts_before = pay_by_a_3d_secure_card(phone, stations)
    assert "/billing/processor/3ds/" in phone.url
    expect(phone.locator("body")).to_contain_text("3184")
    assert station.start_requests == starts_before
    shot(phone, "guest-3ds-challenge")
    phone.get_by_role("button", name="Complete authentication").click()
    # Back on the guest page: billing asks the processor, then the charger starts.
    expect(phone.locator("#status")).to_have_attribute("data-status", "charging", timeout=30_000)
    assert station.start_requests == starts_before + 1
    expect(phone.locator("#limit")).to_contain_text("pre-authorisation")
    phone.get_by_role("button", name="Stop charging").click()
    expect(phone.locator("#status")).to_have_attribute("data-status", "billed", timeout=40_000)
    expect(phone.locator("#paid-card")).to_contain_text("3184")
    stations.run(station.unplug(2))


def test_a_failed_3d_secure_check_is_refused_in_plain_words(phone: Any, stations: Any) -> None:
    station, starts_before = pay_by_a_3d_secure_card(phone, stations)
    phone.get_by_role("button", name="Fail authentication").click()
    refused = phone.locator("#checkout-refused")
    expect(refused).to_be_visible(timeout=30_000)
    assert refused.get_attribute("data-reason") == "authentication_failed"
    expect(phone.locator("#checkout-detail")).to_contain_text("3-D Secure failed")
    expect(phone.locator("#checkout-detail")).to_contain_text("nothing was reserved")
    expect(phone.locator("#guest-next")).to_contain_text("new code")
    expect(phone.locator("#guest-card-saved")).to_contain_text("3184")
    expect(phone.get_by_role("button", name="Pay by card and start")).to_be_disabled()
    assert station.start_requests == starts_before
    shot(phone, "guest-3ds-refused")
    # Cancelling gives the connector back for the next driver.
    phone.get_by_role("button", name="Cancel").click()
    expect(phone.get_by_role("heading", name="Pay by card")).not_to_be_visible()


def test_a_guest_scans_the_station_screen_with_the_app_and_pays_by_card(
    playwright_instance: Any, browser: Any, plugpay: Any, stations: Any, tmp_path: Path
) -> None:
    """No account, no link: the app's scanner reads the QR on the station's screen through a
    phone camera (Chromium's fake camera plays a screenshot of that screen) and leads to the
    same "Pay by card" checkout as the link."""
    station = stations.connected["ST-0002"]
    starts_before = station.start_requests
    screen = station_screen(browser, plugpay, "ST-0002")
    qr = show_code(screen).locator(".qr")
    png = tmp_path / "station-qr.png"
    qr.screenshot(path=str(png))
    feed = y4m_from_screenshot(png, tmp_path / "camera.y4m")

    camera_browser = launch_with_camera(playwright_instance, feed)
    try:
        context = camera_browser.new_context(base_url=plugpay.base_url, **PHONE)
        context.grant_permissions(["camera"])
        context.set_default_timeout(20_000)
        phone = context.new_page()
        phone.goto("/app/")
        expect(phone.get_by_role("heading", name="Log in")).to_be_visible()
        phone.get_by_role("link", name="Scan the charger's code").click()
        expect(phone.get_by_role("heading", name="Scan the QR code")).to_be_visible()
        # jsQR decodes the camera's frames; with no account the code leads to both ways to pay.
        expect(phone.get_by_text("Code received.")).to_be_visible(timeout=30_000)
        expect(phone.get_by_role("heading", name="Log in")).to_be_visible()
        phone.get_by_role("link", name="Pay by card").click()
        expect(phone.get_by_role("heading", name="Pay by card")).to_be_visible()

        # The charger on whose screen the code was: name, connector, every price component.
        expect(phone.locator("#station-name")).to_have_text("Demo Motorway Fast Charger")
        expect(phone.locator("#connector")).to_contain_text("Connector 1")
        for label in ("Energy", "Time", "Session fee", "Idle fee", "VAT"):
            expect(phone.locator("#price-components")).to_contain_text(label)
        expect(phone.locator("#price-per-kwh")).to_contain_text("per kWh")
        expect(phone.locator("#price-idle")).to_contain_text("per minute after charging")
        assert phone.evaluate("localStorage.getItem('plugpay.auth')") is None

        type_card(phone, "4242424242424242")
        phone.get_by_role("button", name="Pay by card and start").click()
        expect(phone.locator("#status")).to_have_attribute(
            "data-status", "charging", timeout=30_000
        )
        assert station.start_requests == starts_before + 1
        expect_energy_to_change(phone)
        expect(screen.locator('[data-connector="1"]')).to_contain_text("Charging", timeout=15_000)
        # The session the guest follows is the one started at the screen's connector.
        session_id = phone.url.rsplit("/", 1)[1]
        token = phone.evaluate("JSON.parse(sessionStorage.getItem('plugpay.guest')).access")
        status, session = plugpay.request("GET", f"/sessions/{session_id}", token=token)
        assert status == 200, session
        assert (session["station_id"], session["connector_id"]) == ("ST-0002", 1)
        assert session["code_kind"] == "qr"

        # The driver unplugs: the guest's page follows to the final cost.
        stations.run(station.unplug(1))
        expect(phone.locator("#status")).to_have_attribute("data-status", "billed", timeout=40_000)
        expect(phone.locator("#paid-card")).to_contain_text("4242")
        context.close()
    finally:
        camera_browser.close()
        screen.context.close()
