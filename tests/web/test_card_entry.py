"""A driver adds a card by typing it into the payment processor's form (the simulated
processor's fields, as Stripe Elements): mistakes are explained in words beside the field, and
billing receives only the processor's token. With Stripe configured the same form mounts Stripe's
Card Element from Stripe.js with the publishable key and sends the PaymentMethod it creates.

Stripe.js cannot be loaded offline: the Stripe test stands in a fake ``Stripe()`` at
https://js.stripe.com/v3 and fakes ``GET /billing/processor``'s answer, so it proves the page's
branch (which script, which key, which token goes to billing), not Stripe itself."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from playwright.sync_api import expect
from web_support import PHONE, axe, log_in, type_card

DRIVER = "driver@example.com"
YEAR = datetime.now(UTC).year + 2
FAKE_STRIPE_JS = """
window.stripeCalls = [];
window.Stripe = (key) => {
  window.stripeCalls.push(["Stripe", key]);
  const card = {
    mount(node) {
      const input = document.createElement("input");
      input.id = "fake-stripe-card";
      input.setAttribute("aria-label", "Card (Stripe)");
      node.append(input);
      window.stripeCalls.push(["mount", node.id]);
    },
    on() {},
  };
  return {
    elements: () => ({
      create: (type) => { window.stripeCalls.push(["create", type]); return card; },
    }),
    createPaymentMethod: async (params) => {
      window.stripeCalls.push(["createPaymentMethod", params.type, params.card === card]);
      const made = { brand: "mastercard", last4: "4444" };
      return { paymentMethod: { id: "pm_card_mastercard", card: made } };
    },
  };
};
"""


def cards(plugpay: Any, token: str) -> dict[str, Any]:
    return {m["id"]: m for m in plugpay.request("GET", "/billing/payment-methods", token=token)[1]}


def remove_new_cards(plugpay: Any, token: str, before: dict[str, Any]) -> None:
    for method_id in set(cards(plugpay, token)) - set(before):
        plugpay.request("DELETE", f"/billing/payment-methods/{method_id}", token=token)


@pytest.fixture
def phone(browser: Any, plugpay: Any) -> Iterator[Any]:
    """A phone whose pages take injected scripts (axe-core; the stand-in Stripe.js)."""
    context = browser.new_context(base_url=plugpay.base_url, bypass_csp=True, **PHONE)
    context.set_default_timeout(15_000)
    yield context.new_page()
    context.close()


def test_a_driver_types_a_card_into_the_processors_form(phone: Any, plugpay: Any) -> None:
    token = plugpay.token(DRIVER)
    before = cards(plugpay, token)
    sent: list[tuple[str, str]] = []
    phone.on(
        "request",
        lambda r: sent.append((r.url, r.post_data or "")) if r.method == "POST" else None,
    )
    try:
        log_in(phone, DRIVER)
        expect(phone.get_by_role("heading", name="Charge")).to_be_visible()
        phone.get_by_role("link", name="Account").click()
        expect(phone.get_by_label("Card number")).to_be_visible()
        assert axe(phone) == []
        type_card(phone, "5555 5555 5555 4445", f"11/{YEAR % 100:02d}", "737")
        phone.get_by_role("button", name="Add card").click()
        error = phone.locator("#card-error")
        expect(error).to_contain_text("typing mistake")
        expect(phone.get_by_label("Card number")).to_have_attribute("aria-invalid", "true")
        phone.get_by_label("Card number").fill("5555 5555 5555 4444")
        phone.get_by_label("Security code (CVC)").fill("73")
        phone.get_by_role("button", name="Add card").click()
        expect(error).to_contain_text("3 digits")
        expect(phone.get_by_label("Security code (CVC)")).to_have_attribute("aria-invalid", "true")
        assert axe(phone) == []  # the error, too, is announced and labelled
        assert not [u for u, _ in sent if u.endswith("/billing/payment-methods")]

        phone.get_by_label("Security code (CVC)").fill("737")
        phone.get_by_role("button", name="Add card").click()
        expect(phone.locator("#methods")).to_contain_text("MASTERCARD •••• 4444")
        expect(phone.locator("#methods")).to_contain_text(f"expires 11/{YEAR}")
        # the number went to the processor's form only; billing got the token
        [saved] = [json.loads(b) for u, b in sent if u.endswith("/billing/payment-methods")]
        assert list(saved) == ["token"] and saved["token"].startswith("pm_")
        assert all("5555" not in b for u, b in sent if "/billing/processor/" not in u)
        [added] = [m for i, m in cards(plugpay, token).items() if i not in before]
        assert (added["brand"], added["last4"], added["exp_year"]) == ("mastercard", "4444", YEAR)
    finally:
        remove_new_cards(plugpay, token, before)


def test_with_stripe_the_form_is_stripes_card_element(phone: Any, plugpay: Any) -> None:
    token = plugpay.token(DRIVER)
    before = cards(plugpay, token)
    loaded: list[str] = []
    sent: list[str] = []

    def stripe_js(route: Any) -> None:
        loaded.append(route.request.url)
        route.fulfill(status=200, content_type="text/javascript", body=FAKE_STRIPE_JS)

    phone.route("https://js.stripe.com/v3", stripe_js)
    phone.route(
        lambda url: url.endswith("/billing/processor"),
        lambda route: route.fulfill(
            status=200,
            content_type="application/json",
            body=json.dumps({"kind": "stripe", "publishable_key": "pk_test_fake123"}),
        ),
    )
    phone.on("request", lambda r: sent.append(r.url) if r.method == "POST" else None)
    try:
        log_in(phone, DRIVER)
        expect(phone.get_by_role("heading", name="Charge")).to_be_visible()
        phone.get_by_role("link", name="Account").click()
        expect(phone.locator("#card-entry")).to_have_attribute("data-processor", "stripe")
        expect(phone.locator("#card-element #fake-stripe-card")).to_be_visible()
        expect(phone.get_by_label("Card number")).to_have_count(0)
        phone.get_by_role("button", name="Add card").click()
        expect(phone.locator("#methods")).to_contain_text("MASTERCARD •••• 4444")
        expect(phone.locator("#card-element #fake-stripe-card")).to_be_visible()
        calls = phone.evaluate("window.stripeCalls")
        assert loaded == ["https://js.stripe.com/v3"]
        assert calls[:4] == [
            ["Stripe", "pk_test_fake123"],
            ["create", "card"],
            ["mount", "card-element"],
            ["createPaymentMethod", "card", True],
        ]
        # the account page drawn again with the new card mounts a new element, same Stripe
        assert calls[4:] == [["create", "card"], ["mount", "card-element"]]
        assert not [u for u in sent if "/billing/processor/cards" in u]
        assert [u for u in sent if u.endswith("/billing/payment-methods")]
    finally:
        remove_new_cards(plugpay, token, before)
