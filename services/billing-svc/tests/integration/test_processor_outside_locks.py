"""Processor calls never hold ledger locks: a slow capture of one session does not delay the
settlement of another at the same operator, and a crash between a processor call and its
posting is recovered with the same idempotency key (nothing charged twice)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta

import httpx
import pytest
from billing_kit import ORG, Harness, card_session, cost_for, running
from billing_svc.processor import SimulatedProcessor
from billing_svc.repository import BillingRepository
from billing_svc.usecases import settle
from billing_svc.usecases.recover import recover
from plugpay_events.types import utc_now

pytestmark = pytest.mark.infra


@dataclass
class GatedProcessor(SimulatedProcessor):
    """Captures wait at a gate per payment intent until the test opens it (a slow processor);
    ``lose`` makes the next capture or refund succeed at the processor but lose its answer."""

    gates: dict[str, asyncio.Event] = field(default_factory=dict)
    entered: dict[str, asyncio.Event] = field(default_factory=dict)
    lose: set[str] = field(default_factory=set)

    def gate(self, intent_id: str) -> None:
        self.gates[intent_id] = asyncio.Event()
        self.entered[intent_id] = asyncio.Event()

    async def capture(self, intent_id: str, amount: int, *, idempotency_key: str) -> int:
        if intent_id in self.gates:
            self.entered[intent_id].set()
            await self.gates[intent_id].wait()
        captured = await super().capture(intent_id, amount, idempotency_key=idempotency_key)
        if "capture" in self.lose:
            self.lose.discard("capture")
            raise ConnectionError("the processor's answer was lost")
        return captured

    async def refund(self, intent_id: str, amount: int, *, idempotency_key: str) -> str:
        refund_id = await super().refund(intent_id, amount, idempotency_key=idempotency_key)
        if "refund" in self.lose:
            self.lose.discard("refund")
            raise ConnectionError("the processor's answer was lost")
        return refund_id


@pytest.fixture
async def h(database_url: str, topic_prefix: str) -> AsyncIterator[Harness]:
    async with running(database_url, topic_prefix, processor=GatedProcessor()) as harness:
        yield harness


async def _card_session(h: Harness) -> tuple[uuid.UUID, object, str]:
    driver, event, _ = await card_session(h)
    async with h.database.read() as session:
        row = await BillingRepository(session).session_row(event.session_id)
    assert row is not None
    return driver, event, row.payment_intent_id


async def _status(h: Harness, session_id: uuid.UUID) -> str:
    async with h.database.read() as session:
        row = await BillingRepository(session).session_row(session_id)
    assert row is not None
    return str(row.status)


async def test_concurrent_settlements_do_not_wait_for_each_others_processor_call(
    h: Harness,
) -> None:
    processor: GatedProcessor = h.processor  # type: ignore[assignment]
    _, a, intent_a = await _card_session(h)
    _, b, intent_b = await _card_session(h)
    processor.gate(intent_a)
    processor.gate(intent_b)
    cost_a, cost_b = cost_for(a, 10_000), cost_for(b, 20_000)  # 4.76 and 9.52 EUR, one operator
    settling_a = asyncio.create_task(settle.settle(h.billing, h.database.write, cost_a))
    settling_b = asyncio.create_task(settle.settle(h.billing, h.database.write, cost_b))
    # Both are inside their processor call at once: neither waited for the other to start.
    await asyncio.wait_for(processor.entered[intent_a].wait(), timeout=30)
    await asyncio.wait_for(processor.entered[intent_b].wait(), timeout=30)
    processor.gates[intent_b].set()
    # B is billed while A's capture is still at the (slow) processor: no lock of A's held B.
    assert await asyncio.wait_for(settling_b, timeout=30) is True
    assert not settling_a.done()
    assert await _status(h, b.session_id) == "billed"
    assert await _status(h, a.session_id) == "settling"
    processor.gates[intent_a].set()
    assert await asyncio.wait_for(settling_a, timeout=30) is True
    books = await h.balances()
    assert books[f"revenue:EUR:{ORG}"][3] + books[f"vat_payable:EUR:{ORG}"][3] == 476 + 952
    assert [
        i.amount_received for i in (processor.intents[intent_a], processor.intents[intent_b])
    ] == [
        476,
        952,
    ]
    billed = await h.emitted("SessionBilled")
    assert sorted(e["card_charged"]["amount_minor"] for e in billed) == [476, 952]


async def test_a_capture_whose_answer_was_lost_is_recovered_with_the_same_key(h: Harness) -> None:
    processor: GatedProcessor = h.processor  # type: ignore[assignment]
    _, event, intent = await _card_session(h)
    processor.lose.add("capture")
    with pytest.raises(ConnectionError):
        await settle.settle(h.billing, h.database.write, cost_for(event, 10_000))
    # captured at the processor, not yet in the ledger: the session waits, nothing is billed
    assert processor.intents[intent].amount_received == 476
    assert await _status(h, event.session_id) == "settling"
    assert await h.emitted("SessionBilled", event.session_id) == []
    # the sweeper (after a restart, say) takes it up again with the same idempotency key
    assert await recover(h.billing, h.database.write, utc_now() + timedelta(minutes=1)) >= 1
    assert await _status(h, event.session_id) == "billed"
    captures = [key for op, key in processor.calls if op == "capture"]
    assert captures == [f"capture:{event.session_id}"] * 2
    assert processor.intents[intent].amount_received == 476  # once
    billed = await h.emitted("SessionBilled", event.session_id)
    assert len(billed) == 1 and billed[0]["charged"]["amount_minor"] == 476
    # a redelivered cost changes nothing
    assert await settle.settle(h.billing, h.database.write, cost_for(event, 10_000)) is False
    assert len(await h.emitted("SessionBilled", event.session_id)) == 1


async def test_a_card_refund_whose_answer_was_lost_is_finished_by_a_retry(h: Harness) -> None:
    processor: GatedProcessor = h.processor  # type: ignore[assignment]
    _, event, intent = await _card_session(h)
    assert await settle.settle(h.billing, h.database.write, cost_for(event, 10_000)) is True
    operator = h.headers(uuid.uuid4(), "refund-1", roles=["operator"], organisation_id=str(ORG))
    body = {
        "session_id": str(event.session_id),
        "amount": {"amount_minor": 200, "currency": "EUR"},
        "reason": "connector fault",
    }
    processor.lose.add("refund")
    transport = httpx.ASGITransport(app=h.app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://billing") as client:
        lost = await client.post("/billing/operator/refunds", json=body, headers=operator)
    assert lost.status_code == 500
    assert processor.intents[intent].refunded == 200
    # the amount is reserved meanwhile: no second refund beyond what was charged
    over = await h.client.post(
        "/billing/operator/refunds",
        json={**body, "amount": {"amount_minor": 277, "currency": "EUR"}},
        headers={**operator, "Idempotency-Key": "refund-2"},
    )
    assert over.status_code == 422 and over.json()["reason"] == "refund_exceeds_charged"
    retried = await h.client.post("/billing/operator/refunds", json=body, headers=operator)
    assert retried.status_code == 201, retried.text
    assert retried.json()["destination"] == "card"
    assert processor.intents[intent].refunded == 200  # the retry used the same key
    assert len(await h.emitted("RefundIssued")) == 1
    doc = (await h.client.get(f"/billing/receipts/{event.session_id}", headers=operator)).json()
    assert doc["refunded"]["amount_minor"] == 200


async def test_a_card_refund_the_processor_refuses_is_failed_and_frees_its_amount(
    h: Harness,
) -> None:
    _, event, intent = await _card_session(h)
    assert await settle.settle(h.billing, h.database.write, cost_for(event, 10_000)) is True
    operator = h.headers(uuid.uuid4(), "refund-x", roles=["operator"], organisation_id=str(ORG))
    body = {
        "session_id": str(event.session_id),
        "amount": {"amount_minor": 476, "currency": "EUR"},
        "reason": "charger fault",
    }
    h.processor.intents[intent].status = "canceled"  # e.g. disputed and reversed meanwhile
    refused = await h.client.post("/billing/operator/refunds", json=body, headers=operator)
    assert refused.status_code == 409 and refused.json()["reason"] == "refund_failed"
    again = await h.client.post("/billing/operator/refunds", json=body, headers=operator)
    assert again.status_code == 409 and again.headers["idempotent-replayed"] == "true"
    assert await h.emitted("RefundIssued") == []
    books = await h.balances()
    assert books[f"revenue:EUR:{ORG}"][0] == 0  # nothing reversed
    h.processor.intents[intent].status = "succeeded"
    # the failed refund reserved nothing: the whole amount can still be refunded
    r = await h.client.post(
        "/billing/operator/refunds", json=body, headers={**operator, "Idempotency-Key": "refund-y"}
    )
    assert r.status_code == 201, r.text
    assert r.json()["destination"] == "card"
    assert h.processor.intents[intent].refunded == 476
    # The portal lists both attempts: the failed one moved nothing, the card got the second.
    listed = await h.client.get(
        "/billing/operator/refunds", params={"session_id": str(event.session_id)}, headers=operator
    )
    assert [(x["status"], x["destination"]) for x in listed.json()["refunds"]] == [
        ("failed", "card"),
        ("done", "card"),
    ]
    assert listed.json()["destination"] == "card"
    charged = listed.json()["charged"]["amount_minor"]
    assert listed.json()["refundable"]["amount_minor"] == charged - 476
