"""A guest (no account, EU ad hoc charging) is a payer like any other: one card saved for one
checkout, a card pre-authorisation with manual capture, exactly the cost captured and the rest
released; a declined card and a card that insists on 3-D Secure are refused in plain words."""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from billing_kit import ORG, Harness, cost_for, priced, running
from plugpay_testing import eventually

pytestmark = pytest.mark.infra


@pytest.fixture
async def h(database_url: str, topic_prefix: str) -> AsyncIterator[Harness]:
    async with running(database_url, topic_prefix) as harness:
        yield harness


def guest(h: Harness, user_id: uuid.UUID, key: str | None = None) -> dict[str, str]:
    """A token as auth-svc's POST /auth/guest issues it (no e-mail, bound to one code)."""
    return h.headers(user_id, key, roles=("guest",), email_verified=False, guest_code="c0de" * 16)


async def add_card(h: Harness, user_id: uuid.UUID, token: str) -> Any:
    return await h.client.post(
        "/billing/payment-methods",
        json={"token": token},
        headers=guest(h, user_id, uuid.uuid4().hex),
    )


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
    event = priced(payer)
    await h.publish(event)
    denied = await h.wait_for("SessionDenied", event.session_id)
    assert denied["reason"] == "payment_declined" and denied["denied_by"] == "billing-svc"
    assert words in denied["message"]
    assert not h.processor.intents  # no hold anywhere
    assert all(sums == (0, 0, 0, 0) for sums in (await h.balances()).values())  # nothing moved
    assert not await h.emitted("SessionAuthorized", event.session_id)


async def test_a_guest_without_a_card_is_denied_before_any_processor_call(h: Harness) -> None:
    event = priced(uuid.uuid4())
    await h.publish(event)
    denied = await h.wait_for("SessionDenied", event.session_id)
    # billing cannot tell a guest from a driver with an empty wallet: the same denial
    assert denied["reason"] == "insufficient_funds"
    assert not h.processor.intents


async def test_a_guest_mails_its_invoice_to_an_address_it_types_with_its_vat_id(
    h: Harness,
) -> None:
    payer = uuid.uuid4()
    assert (await add_card(h, payer, "pm_card_visa")).status_code == 201
    event = priced(payer)
    await h.publish(event)
    await h.wait_for("SessionAuthorized", event.session_id)
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
    assert (await add_card(h, payer, "pm_card_visa")).status_code == 201
    event = priced(payer)
    await h.publish(event)
    authorized = await h.wait_for("SessionAuthorized", event.session_id)
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
