"""A declined top-up speaks about cards (it said "top up your wallet", the very thing that
failed) and charges nothing."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect
from web_support import log_in


def test_a_declined_top_up_advises_another_card(phone: Any, plugpay: Any) -> None:
    token = plugpay.token("driver@example.com")
    card = plugpay.add_card(token, "pm_card_chargeDeclined")
    before = plugpay.request("GET", "/billing/account", token=token)[1]["balance"]
    try:
        log_in(phone, "driver@example.com")
        expect(phone.get_by_role("heading", name="Charge")).to_be_visible()
        phone.get_by_role("link", name="Account").click()
        phone.locator("#topup-method").select_option(card["id"])
        phone.get_by_role("button", name="Top up", exact=True).click()
        alert = phone.get_by_role("alert").filter(has_text="declined")
        expect(alert).to_contain_text("Choose another card")
        expect(alert).not_to_contain_text("top up your wallet")
        after = plugpay.request("GET", "/billing/account", token=token)[1]["balance"]
        assert after == before
    finally:
        plugpay.request("DELETE", f"/billing/payment-methods/{card['id']}", token=token)
