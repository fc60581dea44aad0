"""Invoices on real PostgreSQL: the organisation's legal profile over the API, a gapless
invoice sequence under concurrent settlement, numbers given back on rollback, credit notes."""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from billing_kit import ORG, Harness, cost_for, priced, running
from billing_svc.domain import card_valid_until, document_year
from billing_svc.repository import BillingRepository
from billing_svc.seed import seed_demo
from billing_svc.usecases import payment_methods, settle
from plugpay_events.contracts.identity import OrganisationCreated, StationRegistered

pytestmark = pytest.mark.infra

PROFILE = {
    "legal_name": "ACME Charging GmbH",
    "address": "Hauptstraße 1, 10115 Berlin, Germany",
    "vat_id": "DE 123 456 789",
    "invoice_prefix": "acme",
}


@pytest.fixture
async def h(database_url: str, topic_prefix: str) -> AsyncIterator[Harness]:
    async with running(database_url, topic_prefix) as harness:
        yield harness


def _operator(h: Harness, org: uuid.UUID = ORG) -> dict[str, str]:
    return h.headers(uuid.uuid4(), roles=["operator"], organisation_id=org)


async def _authorised(h: Harness, count: int) -> list:  # type: ignore[type-arg]
    events = []
    async with h.database.write() as session:
        for _ in range(count):
            driver = uuid.uuid4()
            await seed_demo(session, driver, uuid.uuid4())
            events.append(priced(driver))
    await h.publish(*events)
    for event in events:
        await h.wait_for("SessionAuthorized", event.session_id)
    return events


async def test_operators_keep_their_organisations_legal_profile(h: Harness) -> None:
    operator = _operator(h)
    url = "/billing/operator/legal-profile"
    empty = await h.client.get(url, headers=operator)
    assert empty.status_code == 200
    assert (empty.json()["legal_name"], empty.json()["invoice_prefix"]) == ("", "INV")
    put = await h.client.put(url, json=PROFILE, headers=operator)
    assert put.status_code == 200, put.text
    kept = (await h.client.get(url, headers=operator)).json()
    assert kept["legal_name"] == "ACME Charging GmbH"
    assert kept["vat_id"] == "DE123456789" and kept["invoice_prefix"] == "ACME"
    bad = await h.client.put(url, json={**PROFILE, "vat_id": "12"}, headers=operator)
    assert (bad.status_code, bad.json()["reason"]) == (422, "invalid_vat_id")
    bad = await h.client.put(url, json={**PROFILE, "invoice_prefix": "A-B"}, headers=operator)
    assert (bad.status_code, bad.json()["reason"]) == (422, "invalid_invoice_prefix")
    # another organisation's operator sees (and changes) only its own
    other = (await h.client.get(url, headers=_operator(h, uuid.uuid4()))).json()
    assert other["legal_name"] == ""
    driver = await h.client.put(url, json=PROFILE, headers=h.headers(uuid.uuid4()))
    assert driver.status_code == 403
    assert (await h.client.get(url, headers=operator)).json()["legal_name"] == kept["legal_name"]


async def test_organisations_and_stations_are_learned_for_the_invoice(h: Harness) -> None:
    await h.publish(
        OrganisationCreated(organisation_id=ORG, name="ACME", created_at=datetime.now(UTC)),
        StationRegistered(
            station_id="ST-1",
            organisation_id=ORG,
            name="Marktplatz",
            connectors=({"connector_id": 1, "max_power_w": 22_000},),  # type: ignore[arg-type]
            address="Marktplatz 1, Berlin",
            registered_at=datetime.now(UTC),
        ),
    )
    [event] = await _authorised(h, 1)
    await h.publish(cost_for(event, 5_000))
    await h.wait_for("SessionBilled", event.session_id)
    async with h.database.read() as session:
        receipt = await BillingRepository(session).receipt(event.session_id)
    assert receipt is not None
    assert receipt.seller["legal_name"] == "ACME"
    assert receipt.station == {
        "id": "ST-1",
        "name": "Marktplatz",
        "address": "Marktplatz 1, Berlin",
    }
    assert receipt.time_zone == "Europe/Berlin"
    doc = (
        await h.client.get(
            f"/billing/receipts/{event.session_id}", headers=h.headers(event.user_id)
        )
    ).json()
    assert doc["invoice_number"] == receipt.invoice_number
    assert doc["station"]["name"] == "Marktplatz" and doc["seller"]["legal_name"] == "ACME"
    assert doc["local_time"]["issued"].endswith(("CET", "CEST"))
    # the invoice's event carries its number and the PDF as issued, for the mail
    issued = await h.wait_for("InvoiceIssued", event.user_id)
    assert issued["invoice_number"] == receipt.invoice_number
    pdf = base64.b64decode(issued["document_pdf"])
    assert pdf.startswith(b"%PDF")


async def test_concurrent_settlements_of_one_organisation_number_1_to_n(h: Harness) -> None:
    await h.client.put("/billing/operator/legal-profile", json=PROFILE, headers=_operator(h))
    count = 24
    events = await _authorised(h, count)
    billed = await asyncio.gather(
        *(
            settle.settle(h.billing, h.database.write, cost_for(e, 1_000 + i))
            for i, e in enumerate(events)
        )
    )
    assert all(billed)
    async with h.database.read() as session:
        repo = BillingRepository(session)
        receipts = [await repo.receipt(e.session_id) for e in events]
    year = document_year(h.billing.clock(), "Europe/Berlin")
    numbers = sorted(r.invoice_number for r in receipts if r is not None)
    assert numbers == [f"ACME-{year}-{n:06d}" for n in range(1, count + 1)]


async def test_concurrent_numbering_with_rollbacks_commits_1_to_n(h: Harness) -> None:
    org = uuid.uuid4()
    committed: list[int] = []

    async def book(i: int) -> None:
        try:
            async with h.database.write() as session:
                number = await BillingRepository(session).next_document_number(org, "invoice", 2026)
                await asyncio.sleep(0)  # let the others queue on the counter row
                if i % 3 == 0:
                    raise RuntimeError("rolled back after numbering")
                committed.append(number)
        except RuntimeError:
            pass

    await asyncio.gather(*(book(i) for i in range(30)))
    assert sorted(committed) == list(range(1, 21))


async def test_a_rolled_back_number_is_given_again(h: Harness) -> None:
    other = uuid.uuid4()
    with pytest.raises(RuntimeError):
        async with h.database.write() as session:
            assert (
                await BillingRepository(session).next_document_number(other, "invoice", 2026) == 1
            )
            raise RuntimeError("the settlement failed after numbering")
    async with h.database.write() as session:
        repo = BillingRepository(session)
        assert await repo.next_document_number(other, "invoice", 2026) == 1
        assert await repo.next_document_number(other, "invoice", 2026) == 2
        assert await repo.next_document_number(other, "credit_note", 2026) == 1
        assert await repo.next_document_number(other, "invoice", 2027) == 1
        assert await repo.next_document_number(ORG, "invoice", 2026) == 1


async def test_a_refund_is_a_numbered_credit_note(h: Harness) -> None:
    operator = _operator(h)
    await h.client.put("/billing/operator/legal-profile", json=PROFILE, headers=operator)
    first, second = await _authorised(h, 2)
    for event in (first, second):
        await settle.settle(h.billing, h.database.write, cost_for(event, 10_000))
    year = document_year(h.billing.clock(), "Europe/Berlin")
    numbers, refund_ids = [], []
    for key, event in (("a", first), ("b", second), ("c", first)):
        r = await h.client.post(
            "/billing/operator/refunds",
            json={
                "session_id": str(event.session_id),
                "amount": {"amount_minor": 100, "currency": "EUR"},
                "reason": "connector fault",
            },
            headers={**operator, "Idempotency-Key": key},
        )
        assert r.status_code == 201, r.text
        numbers.append(r.json()["credit_note_number"])
        refund_ids.append(r.json()["refund_id"])
    assert numbers == [f"ACME-CN-{year}-{n:06d}" for n in (1, 2, 3)]
    url = f"/billing/credit-notes/{refund_ids[0]}"
    note = (await h.client.get(url, headers=h.headers(first.user_id))).json()
    assert note["credit_note_number"] == numbers[0] and note["reason"] == "connector fault"
    async with h.database.read() as session:
        invoice = await BillingRepository(session).receipt(first.session_id)
    assert invoice is not None and note["invoice_number"] == invoice.invoice_number
    pdf = await h.client.get(f"{url}?format=pdf", headers=operator)
    assert pdf.headers["content-type"] == "application/pdf"
    assert (await h.client.get(url, headers=h.headers(second.user_id))).status_code == 404
    receipt = (await h.client.get(f"/billing/receipts/{first.session_id}", headers=operator)).json()
    assert [r["credit_note_number"] for r in receipt["refunds"]] == [numbers[0], numbers[2]]
    notes = await h.emitted("CreditNoteIssued", first.user_id)
    assert [n["credit_note_number"] for n in notes] == [numbers[0], numbers[2]]
    assert all(base64.b64decode(n["document_pdf"]).startswith(b"%PDF") for n in notes)
    # a refund refused (more than was charged) takes no number
    r = await h.client.post(
        "/billing/operator/refunds",
        json={
            "session_id": str(second.session_id),
            "amount": {"amount_minor": 100_000, "currency": "EUR"},
            "reason": "too much",
        },
        headers={**operator, "Idempotency-Key": "d"},
    )
    assert r.status_code == 422
    async with h.database.write() as session:
        assert await BillingRepository(session).next_document_number(ORG, "credit_note", year) == 4


async def test_an_expiring_card_is_noticed_once(h: Harness) -> None:
    driver = uuid.uuid4()
    async with h.database.write() as session:
        await payment_methods.add_payment_method(h.billing, session, driver, "pm_card_visa")
        [card] = await BillingRepository(session).methods(driver)
    assert card.exp_month is not None and card.exp_year is not None
    await h.app.state.sweep_once()
    assert await h.emitted("PaymentMethodExpiring", driver) == []
    end = card_valid_until(card.exp_month, card.exp_year)
    h.clock.offset = end - timedelta(days=10) - datetime.now(UTC)
    await h.app.state.sweep_once()
    await h.app.state.sweep_once()
    [notice] = await h.emitted("PaymentMethodExpiring", driver)
    assert (notice["last4"], notice["exp_month"], notice["exp_year"]) == (
        card.last4,
        card.exp_month,
        card.exp_year,
    )
    assert notice["is_default"] is True
