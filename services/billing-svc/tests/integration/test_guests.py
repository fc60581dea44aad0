"""A guest (no account, EU ad hoc charging) is a payer like any other: one card saved for one
checkout, a card pre-authorisation with manual capture, exactly the cost captured and the rest
released; a declined card and a card that insists on 3-D Secure are refused in plain words. The
guest page's hold placed on-session before the scan: 3-D Secure completed, failed or skipped."""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from billing_kit import ORG, Harness, cost_for, priced, running
from billing_svc.usecases.checkout import CHECKOUT_TTL
from plugpay_events.contracts.sessions import SessionPriced
from plugpay_testing import eventually

pytestmark = pytest.mark.infra


@pytest.fixture
async def h(database_url: str, topic_prefix: str) -> AsyncIterator[Harness]:
    async with running(database_url, topic_prefix) as harness:
        yield harness


def guest(h: Harness, user_id: uuid.UUID, key: str | None = None) -> dict[str, str]:
    """A token as auth-svc's POST /auth/guest issues it (no e-mail, bound to one code)."""
    return h.headers(user_id, key, roles=("guest",), email_verified=False, guest_code="c0de" * 16)


async def scan_denied(
    h: Harness, payer: uuid.UUID, reason: str = "payment_declined"
) -> tuple[SessionPriced, dict[str, Any]]:
    """A scan by ``payer``, which billing denies for ``reason``: the event and the denial."""
    event = priced(payer)
    await h.publish(event)
    denied = await h.wait_for("SessionDenied", event.session_id)
    assert denied["reason"] == reason
    return event, denied


async def add_card(h: Harness, user_id: uuid.UUID, token: str) -> Any:
    return await h.client.post(
        "/billing/payment-methods",
        json={"token": token},
        headers=guest(h, user_id, uuid.uuid4().hex),
    )


async def authorised_on_card(h: Harness, payer: uuid.UUID) -> tuple[SessionPriced, dict[str, Any]]:
    """A scan by a guest who saved a visa card: the event and its SessionAuthorized."""
    assert (await add_card(h, payer, "pm_card_visa")).status_code == 201
    event = priced(payer)
    await h.publish(event)
    return event, await h.wait_for("SessionAuthorized", event.session_id)


async def test_a_guest_card_is_held_then_exactly_the_cost_captured(h: Harness) -> None:
    payer = uuid.uuid4()
    saved = await add_card(h, payer, "pm_card_visa")
    assert saved.status_code == 201, saved.text
    assert (saved.json()["brand"], saved.json()["last4"]) == ("visa", "4242")
    # one checkout, one card; and a guest sees none of a driver's wallet pages
    second = await add_card(h, payer, "pm_card_mastercard")
    assert (second.status_code, second.json()["reason"]) == (409, "guest_card_exists")
    for path in ("/billing/payment-methods", "/billing/account", "/billing/ledger"):
        assert (await h.client.get(path, headers=guest(h, payer))).status_code == 403, path

    event = priced(payer)
    await h.publish(event)
    authorized = await h.wait_for("SessionAuthorized", event.session_id)
    assert authorized["funding"] == "card" and authorized["user_id"] == str(payer)
    held = authorized["hold_amount"]["amount_minor"]
    assert held == 5000  # the 11 kW class's pre-authorisation
    assert authorized["limits"]["max_cost"]["amount_minor"] == held
    assert authorized["limits"]["max_energy_wh"] > 0
    [intent] = h.processor.intents.values()
    assert (intent.status, intent.amount, intent.capture_manual) == ("requires_capture", held, True)

    cost = cost_for(event, 7_000)  # 7 kWh at 0.40 + 19 % VAT
    assert cost.total.amount_minor == 333
    await h.publish(cost)
    billed = await h.wait_for("SessionBilled", event.session_id)
    assert billed["funding"] == "card" and billed["charged"]["amount_minor"] == 333
    assert billed["outstanding_debt"] is None
    # exactly the cost captured; the processor releases the rest of the hold with the capture
    captured = await eventually(
        lambda: asyncio.sleep(0, intent if intent.status == "succeeded" else None),
        what="the capture at the processor",
    )
    assert (captured.amount_received, captured.amount) == (333, held)
    assert [op for op, _ in h.processor.calls].count("capture") == 1
    books = await h.balances()
    assert books[f"revenue:EUR:{ORG}"][3] == 280 and books[f"vat_payable:EUR:{ORG}"][3] == 53
    settlement = books[f"session_settlement:EUR:{event.session_id}"]
    assert settlement[0] == settlement[2] == 0 and settlement[1] == settlement[3]
    assert await h.wallet(payer) == (0, 0)  # a guest has no wallet money
    # the receipt is the guest's, and nobody else's
    receipt = await h.client.get(f"/billing/receipts/{event.session_id}", headers=guest(h, payer))
    assert receipt.status_code == 200, receipt.text
    document = receipt.json()
    assert document["charged"]["amount_minor"] == 333
    assert document["funding_split"]["card"]["amount_minor"] == 333
    assert document["funding_split"]["wallet"]["amount_minor"] == 0
    other = await h.client.get(
        f"/billing/receipts/{event.session_id}", headers=guest(h, uuid.uuid4())
    )
    assert other.status_code == 404


@pytest.mark.parametrize(
    ("card", "words"),
    [
        ("pm_card_chargeDeclined", "declined (card_declined)"),
        ("pm_card_chargeDeclinedInsufficientFunds", "not enough funds"),
        ("pm_card_authenticationRequired", "3-D Secure"),
    ],
)
async def test_a_refused_guest_card_denies_the_session_in_plain_words(
    h: Harness, card: str, words: str
) -> None:
    payer = uuid.uuid4()
    assert (await add_card(h, payer, card)).status_code == 201
    event, denied = await scan_denied(h, payer)
    assert denied["denied_by"] == "billing-svc"
    assert words in denied["message"]
    assert not h.processor.intents  # no hold anywhere
    assert all(sums == (0, 0, 0, 0) for sums in (await h.balances()).values())  # nothing moved
    assert not await h.emitted("SessionAuthorized", event.session_id)


async def test_a_guest_without_a_card_is_denied_before_any_processor_call(h: Harness) -> None:
    # billing cannot tell a guest from a driver with an empty wallet: the same denial
    await scan_denied(h, uuid.uuid4(), "insufficient_funds")
    assert not h.processor.intents


async def test_a_guest_mails_its_invoice_to_an_address_it_types_with_its_vat_id(
    h: Harness,
) -> None:
    payer = uuid.uuid4()
    event, _ = await authorised_on_card(h, payer)
    await h.publish(cost_for(event, 7_000))
    await h.wait_for("SessionBilled", event.session_id)
    path = f"/billing/receipts/{event.session_id}"
    assert (await h.client.get(path, headers=guest(h, payer))).json()["buyer"]["email"] is None

    mail = f"{path}/mail"
    for body, reason in (
        ({"email": "not-an-address"}, "invalid_email"),
        ({"email": "a@b.example", "vat_id": "12"}, "invalid_vat_id"),
    ):
        refused = await h.client.post(mail, json=body, headers=guest(h, payer))
        assert (refused.status_code, refused.json()["reason"]) == (422, reason)
    # nobody else's invoice: another guest, a driver, the station's operator
    for stranger in (guest(h, uuid.uuid4()), h.headers(uuid.uuid4())):
        other = await h.client.post(mail, json={"email": "x@y.example"}, headers=stranger)
        assert other.status_code == 404
    sent = await h.client.post(
        mail,
        json={"email": " Fleet@Business.example ", "vat_id": "de 123.456.789"},
        headers=guest(h, payer),
    )
    assert sent.status_code == 202, sent.text
    [asked] = await h.emitted("InvoiceMailRequested", payer)
    assert asked["email"] == "fleet@business.example"
    assert asked["session_id"] == str(event.session_id)
    assert asked["card_charged"]["amount_minor"] == 333
    pdf = base64.b64decode(asked["document_pdf"])
    assert pdf.startswith(b"%PDF")
    # the invoice now names its buyer, and the VAT id stays as first named
    document = (await h.client.get(path, headers=guest(h, payer))).json()
    assert document["buyer"] == {"email": "fleet@business.example", "vat_id": "DE123456789"}
    changed = await h.client.post(
        mail, json={"email": "b@c.example", "vat_id": "FR12345678901"}, headers=guest(h, payer)
    )
    assert (changed.status_code, changed.json()["reason"]) == (409, "buyer_vat_id_set")
    again = [
        (await h.client.post(mail, json={"email": "b@c.example"}, headers=guest(h, payer)))
        for _ in range(3)
    ]
    assert [r.status_code for r in again] == [202, 202, 429]  # three mails per session
    assert again[-1].json()["reason"] == "too_many_invoice_mails"
    assert len(await h.emitted("InvoiceMailRequested", payer)) == 3
    # the first buyer stays the invoice's buyer; later mails only go to the other address
    document = (await h.client.get(path, headers=guest(h, payer))).json()
    assert document["buyer"]["email"] == "fleet@business.example"


async def test_a_station_that_overbills_a_guest_is_capped_at_the_pre_authorisation(
    h: Harness,
) -> None:
    payer = uuid.uuid4()
    event, authorized = await authorised_on_card(h, payer)
    held = authorized["hold_amount"]["amount_minor"]
    claimed = cost_for(event, 120_000)  # 120 kWh at 0.476: 57.12 EUR > the 50.00 held
    assert claimed.total.amount_minor == 5712 > held
    await h.publish(claimed)
    billed = await h.wait_for("SessionBilled", event.session_id)
    assert billed["charged"]["amount_minor"] == held and billed["outstanding_debt"] is None
    assert billed["card_charged"]["amount_minor"] == held
    assert billed["capped"]["amount_minor"] == 5712 - held
    [intent] = h.processor.intents.values()
    captured = await eventually(
        lambda: asyncio.sleep(0, intent if intent.status == "succeeded" else None),
        what="the capture at the processor",
    )
    assert captured.amount_received == held  # never more than the guest agreed to
    assert [i for i in h.processor.intents.values() if not i.capture_manual] == []
    books = await h.balances()
    assert books[f"revenue:EUR:{ORG}"][3] + books[f"vat_payable:EUR:{ORG}"][3] == held


# --- the hold placed on-session, before the scan (3-D Secure in the guest's browser) ---------


async def check_out(h: Harness, payer: uuid.UUID, card: str) -> Any:
    """The guest page's "Pay by card and start": save the card, place the hold."""
    assert (await add_card(h, payer, card)).status_code == 201
    return await h.client.post(
        "/billing/checkout",
        json={"max_power_w": 11_000, "currency": "EUR"},
        headers=guest(h, payer),
    )


async def confirm(h: Harness, payer: uuid.UUID) -> Any:
    return await h.client.post("/billing/checkout/confirm", headers=guest(h, payer))


async def test_3d_secure_completed_the_session_uses_that_hold_and_captures_the_cost(
    h: Harness,
) -> None:
    payer = uuid.uuid4()
    started = await check_out(h, payer, "pm_card_authenticationRequired")
    assert started.status_code == 200, started.text
    body = started.json()
    assert body["status"] == "requires_action"
    assert body["amount"] == {"amount_minor": 5000, "currency": "EUR"}  # the 11 kW class
    url = body["next_action"]["url"]
    assert body["next_action"]["type"] == "redirect_to_url"
    [intent] = h.processor.intents.values()
    assert (intent.status, intent.capture_manual) == ("requires_action", True)

    # the simulated bank's page, as the guest's browser gets it
    page = await h.client.get(url)
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "Complete authentication" in page.text and "Fail authentication" in page.text
    assert "3184" in page.text and "50.00" in page.text
    done = await h.client.post(f"{url}/complete")
    assert done.status_code == 303 and done.headers["location"].endswith("/app/#/guest")
    confirmed = await confirm(h, payer)
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["status"] == "held" and confirmed.json()["next_action"] is None
    assert (await confirm(h, payer)).json()["status"] == "held"  # asked again: the same

    event = priced(payer)
    await h.publish(event)
    authorized = await h.wait_for("SessionAuthorized", event.session_id)
    assert authorized["funding"] == "card"
    assert authorized["hold_amount"]["amount_minor"] == 5000
    assert authorized["limits"]["max_cost"]["amount_minor"] == 5000
    # that hold, and no second one: one PaymentIntent, placed by the checkout
    assert list(h.processor.intents.values()) == [intent]
    assert [key for _, key in h.processor.calls if key.startswith("hold:")] == []
    assert intent.status == "requires_capture"

    await h.publish(cost_for(event, 7_000))
    billed = await h.wait_for("SessionBilled", event.session_id)
    assert billed["charged"]["amount_minor"] == 333 and billed["funding"] == "card"
    captured = await eventually(
        lambda: asyncio.sleep(0, intent if intent.status == "succeeded" else None),
        what="the capture at the processor",
    )
    assert (captured.amount_received, captured.amount) == (333, 5000)  # the rest released
    books = await h.balances()
    assert books[f"revenue:EUR:{ORG}"][3] + books[f"vat_payable:EUR:{ORG}"][3] == 333
    settlement = books[f"session_settlement:EUR:{event.session_id}"]
    assert settlement[0] == settlement[2] == 0  # no hold left pending
    # the checkout paid its one session: a second scan with the same token is refused
    _, denied = await scan_denied(h, payer)
    assert "paid for its session already" in denied["message"]


async def test_3d_secure_failed_holds_nothing_and_starts_nothing(h: Harness) -> None:
    payer = uuid.uuid4()
    started = (await check_out(h, payer, "pm_card_authenticationRequired")).json()
    failed = await h.client.post(f"{started['next_action']['url']}/fail")
    assert failed.status_code == 303
    refused = await confirm(h, payer)
    assert (refused.status_code, refused.json()["reason"]) == (402, "authentication_failed")
    assert "3-D Secure" in refused.json()["message"]
    assert "nothing was reserved" in refused.json()["message"]
    [intent] = h.processor.intents.values()
    assert intent.status == "canceled"  # released at once, not left to expire
    # final: asking again, or starting again, is the same refusal
    assert (await confirm(h, payer)).json()["reason"] == "authentication_failed"
    again = await h.client.post(
        "/billing/checkout", json={"currency": "EUR"}, headers=guest(h, payer)
    )
    assert (again.status_code, again.json()["reason"]) == (402, "authentication_failed")
    assert len(h.processor.intents) == 1

    event, denied = await scan_denied(h, payer)  # a scan anyway: nothing held, nothing started
    assert "3-D Secure failed" in denied["message"]
    assert not await h.emitted("SessionAuthorized", event.session_id)
    assert all(sums == (0, 0, 0, 0) for sums in (await h.balances()).values())


async def test_a_return_without_completing_the_challenge_is_refused(h: Harness) -> None:
    payer = uuid.uuid4()
    started = (await check_out(h, payer, "pm_card_authenticationRequired")).json()
    # the page claims to be back from the bank, which was never answered
    forged = await confirm(h, payer)
    assert (forged.status_code, forged.json()["reason"]) == (402, "authentication_incomplete")
    [intent] = h.processor.intents.values()
    assert intent.status == "canceled"
    # the bank's page is gone with it: it cannot be completed afterwards
    url = started["next_action"]["url"]
    assert (await h.client.get(url)).status_code == 404
    assert (await h.client.post(f"{url}/complete")).status_code == 404
    assert intent.status == "canceled"
    _, denied = await scan_denied(h, payer)
    assert "3-D Secure check with your bank was not completed" in denied["message"]
    assert all(sums == (0, 0, 0, 0) for sums in (await h.balances()).values())


async def test_a_scan_before_the_challenge_is_answered_is_denied_and_the_hold_cancelled(
    h: Harness,
) -> None:
    payer = uuid.uuid4()
    await check_out(h, payer, "pm_card_authenticationRequired")
    _, denied = await scan_denied(h, payer)
    assert "3-D Secure check with your bank was not completed" in denied["message"]
    [intent] = h.processor.intents.values()
    await eventually(
        lambda: asyncio.sleep(0, intent.status == "canceled" or None),
        what="the checkout's hold cancelled after the denial",
    )


async def test_a_plain_card_is_held_at_once_and_released_when_the_guest_cancels(
    h: Harness,
) -> None:
    payer = uuid.uuid4()
    started = await check_out(h, payer, "pm_card_visa")
    assert started.status_code == 200, started.text
    assert started.json()["status"] == "held" and started.json()["next_action"] is None
    [intent] = h.processor.intents.values()
    assert intent.status == "requires_capture"
    cancelled = await h.client.delete("/billing/checkout", headers=guest(h, payer))
    assert cancelled.status_code == 204
    assert intent.status == "canceled"
    _, denied = await scan_denied(h, payer)  # a scan after cancelling starts nothing
    assert "cancelled" in denied["message"]


async def test_a_hold_no_session_takes_up_is_released_by_the_sweeper(h: Harness) -> None:
    payer = uuid.uuid4()
    assert (await check_out(h, payer, "pm_card_visa")).json()["status"] == "held"
    [intent] = h.processor.intents.values()
    await h.app.state.sweep_once()
    assert intent.status == "requires_capture"  # still in time to scan
    h.clock.offset = CHECKOUT_TTL + timedelta(minutes=1)
    await h.app.state.sweep_once()
    assert intent.status == "canceled"


async def test_a_declined_card_is_refused_at_checkout_in_plain_words(h: Harness) -> None:
    payer = uuid.uuid4()
    refused = await check_out(h, payer, "pm_card_chargeDeclined")
    assert (refused.status_code, refused.json()["reason"]) == (402, "payment_declined")
    assert "declined (card_declined)" in refused.json()["message"]
    assert not h.processor.intents


async def test_the_checkout_is_a_guests(h: Harness) -> None:
    driver = uuid.uuid4()
    answer = await h.client.post(
        "/billing/checkout", json={"currency": "EUR"}, headers=h.headers(driver)
    )
    assert (answer.status_code, answer.json()["reason"]) == (403, "guests_only")
    nothing = await h.client.post(
        "/billing/checkout", json={"currency": "EUR"}, headers=guest(h, uuid.uuid4())
    )
    assert (nothing.status_code, nothing.json()["reason"]) == (409, "no_payment_method")
    assert (await h.client.get("/billing/processor/3ds/made-up")).status_code == 404


async def test_declined_checkouts_count_against_card_testing_from_one_address(
    h: Harness,
) -> None:
    # fresh guest tokens are cheap: the declines are counted per address as well
    for _ in range(5):
        refused = await check_out(h, uuid.uuid4(), "pm_card_chargeDeclined")
        assert refused.status_code == 402
    calls = len(h.processor.calls)
    blocked = await add_card(h, uuid.uuid4(), "pm_card_visa")
    assert (blocked.status_code, blocked.json()["reason"]) == (429, "too_many_declines")
    assert len(h.processor.calls) == calls  # refused before the processor
