"""The price page says who pays: a driver whose wallet buys no charging there but who has a
card is told the card pays (it does), not warned that the balance may not be enough."""

from __future__ import annotations

import re
import uuid
from typing import Any

from playwright.sync_api import expect
from web_support import log_in, stop_and_unplug


def test_with_an_empty_wallet_and_a_card_the_card_pays(
    phone: Any, plugpay: Any, stations: Any
) -> None:
    token = plugpay.token("broke@example.com")
    card = plugpay.add_card(token, "pm_card_mastercard")
    try:
        log_in(phone, "broke@example.com")
        issued = stations.run(stations.connected["ST-0001"].request_code(2))
        phone.get_by_label(re.compile("type the code", re.I)).fill(issued["code"])
        phone.get_by_role("button", name="Continue").click()
        expect(phone.get_by_role("heading", name="Confirm and charge")).to_be_visible()
        note = phone.locator("#budget-note")
        expect(note).to_contain_text(f"Your card •••• {card['last4']} pays for this session.")
        expect(phone.get_by_text("not enough to charge here")).to_have_count(0)
        expect(phone.get_by_text("Idle fees")).to_have_count(0)  # DEMO-AC has no idle fee
        phone.get_by_role("button", name="Cancel").click()
        expect(phone.get_by_role("heading", name="Charge")).to_be_visible()
    finally:
        plugpay.request("DELETE", f"/billing/payment-methods/{card['id']}", token=token)


def test_a_wallet_with_a_card_on_file_says_the_card_pays_beyond_the_wallet(
    phone: Any, plugpay: Any, stations: Any
) -> None:
    """The demo driver has wallet money and a visa: the wallet pays first and the card the rest,
    so the automatic stop is not what the wallet alone holds; both pages say so."""
    station = stations.connected["ST-0001"]
    log_in(phone, "driver@example.com")
    issued = stations.run(station.request_code(2))
    phone.get_by_label(re.compile("type the code", re.I)).fill(issued["code"])
    phone.get_by_role("button", name="Continue").click()
    expect(phone.get_by_role("heading", name="Confirm and charge")).to_be_visible()
    expect(phone.locator("#who-pays")).to_contain_text("your card •••• 4242 pays the rest")
    phone.get_by_role("button", name="Start charging").click()
    expect(phone.locator("#status")).to_have_attribute("data-status", "charging", timeout=30_000)
    session_id = phone.url.rsplit("/", 1)[-1]
    try:
        expect(phone.locator("#limit")).to_contain_text(
            "your wallet pays first, your card the rest"
        )
    finally:
        stop = stop_and_unplug(plugpay.base_url, station, 2, uuid.UUID(session_id))
        stations.run(stop, timeout=60)
