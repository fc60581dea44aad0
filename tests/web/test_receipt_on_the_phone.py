"""The receipt on the phone is the invoice: its number, the seller, the charger by name, the
times in the station's time zone and each price line with its unit price and VAT rate."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect
from web_support import charge_once, log_in


def test_the_receipt_page_shows_the_invoice(phone: Any, plugpay: Any, stations: Any) -> None:
    session_id = charge_once(plugpay, stations, "ST-0001", 1)
    driver = plugpay.token("driver@example.com")
    doc = plugpay.request("GET", f"/billing/receipts/{session_id}", token=driver)[1]
    log_in(phone, "driver@example.com")
    expect(phone.get_by_role("heading", name="Charge")).to_be_visible()
    phone.goto(f"/app/#/receipt/{session_id}")
    number = phone.locator("#invoice-number")
    expect(number).to_contain_text(re.compile(r"Invoice [A-Z0-9]+-\d{4}-\d{6}"))
    expect(number).to_contain_text(doc["invoice_number"])
    expect(phone.locator("#seller")).to_contain_text(doc["seller"]["legal_name"])
    # ST-0001 is in Europe/Berlin: its local time, the zone named.
    expect(phone.locator("#receipt-times")).to_contain_text(re.compile(r"CES?T"))
    expect(phone.locator("#receipt-times")).to_contain_text("charging ")
    expect(phone.get_by_role("cell", name=re.compile(r"excl\. VAT")).first).to_be_visible()
    expect(phone.get_by_role("cell", name="19 %").first).to_be_visible()


def test_a_card_payment_says_so_on_the_final_screen(
    phone: Any, plugpay: Any, stations: Any
) -> None:
    driver = plugpay.token("driver@example.com")
    status, _ = plugpay.request(
        "PUT", "/billing/funding-preference", token=driver, json_body={"prefers_card": True}
    )
    assert status == 204
    try:
        session_id = charge_once(plugpay, stations, "ST-0001", 1)
    finally:
        plugpay.request(
            "PUT", "/billing/funding-preference", token=driver, json_body={"prefers_card": False}
        )
    doc = plugpay.request("GET", f"/billing/receipts/{session_id}", token=driver)[1]
    assert doc["funding_split"]["card"]["amount_minor"] == doc["charged"]["amount_minor"] > 0
    log_in(phone, "driver@example.com")
    expect(phone.get_by_role("heading", name="Charge")).to_be_visible()
    phone.goto(f"/app/#/session/{session_id}")
    final = phone.locator("#final")
    expect(final.locator("#paid-card")).to_contain_text("charged to your visa •••• 4242")
    expect(final).not_to_contain_text("Wallet balance now")
    expect(final.locator("#paid-wallet")).to_have_count(0)
