"""Money needs a confirmed address: a new driver who adds a card before confirming is told so,
and the refusal itself offers a new link, which arrives in the mailbox."""

from __future__ import annotations

import uuid
from typing import Any

from playwright.sync_api import expect
from plugpay_testing import eventually_blocking
from web_support import log_in, type_card

PASSWORD = "unconfirmed-long-password-44"


def test_adding_a_card_unconfirmed_offers_a_new_link(phone: Any, plugpay: Any) -> None:
    email = f"unconfirmed-{uuid.uuid4().hex[:8]}@example.com"
    code, body = plugpay.request(
        "POST", "/auth/register", json_body={"email": email, "password": PASSWORD}
    )
    assert code in (201, 202), body
    log_in(phone, email, PASSWORD)
    expect(phone.get_by_role("heading", name="Charge")).to_be_visible()
    phone.get_by_role("link", name="Account").click()
    type_card(phone, "4242 4242 4242 4242")
    phone.get_by_role("button", name="Add card").click()
    refusal = phone.locator('[data-reason="account_unverified"]')
    expect(refusal).to_contain_text("confirm your e-mail address")
    refusal.get_by_role("button", name="Send the link again").click()
    expect(refusal).to_contain_text(f"A new link is on its way to {email}")

    def two_links() -> bool:
        phone.goto("/dev/mailbox")
        mails = phone.locator("article.mail", has_text=email).filter(
            has_text="Confirm your e-mail address for Plugpay"
        )
        return mails.count() >= 2  # the one at registration and the one asked for

    eventually_blocking(two_links, within=30, what="a second confirmation mail")
