"""The HTTP API on real PostgreSQL: idempotent money-moving calls, cards, receipts, operators."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from billing_kit import ORG, Harness, cost_for, priced, running
from billing_svc.processor import sign_webhook
from billing_svc.settings import Settings
from plugpay_platform.settings import PlatformSettings
from plugpay_testing.tokens import TokenFactory
from plugpay_testing.verifier_contract import VerifierContract

pytestmark = pytest.mark.infra
EUR = "EUR"


@pytest.fixture
async def h(database_url: str, topic_prefix: str) -> AsyncIterator[Harness]:
    async with running(database_url, topic_prefix) as harness:
        yield harness


class TestTokenVerification(VerifierContract):
    @pytest.fixture
    async def client(self, h: Harness) -> httpx.AsyncClient:
        return h.client

    @pytest.fixture
    def tokens(self, h: Harness) -> TokenFactory:
        return h.tokens

    @pytest.fixture
    def protected(self) -> tuple[str, str]:
        return ("GET", "/billing/account")

    @pytest.fixture
    def valid_token(self, h: Harness) -> str:
        return h.tokens.token(roles=["driver"])


async def _add_card(h: Harness, user: uuid.UUID, token: str = "pm_card_visa") -> dict:
    r = await h.client.post(
        "/billing/payment-methods", json={"token": token}, headers=h.headers(user, uuid.uuid4().hex)
    )
    assert r.status_code == 201, r.text
    return r.json()


async def test_topup_requires_and_honours_an_idempotency_key(h: Harness) -> None:
    user = uuid.uuid4()
    card = await _add_card(h, user)
    assert card["is_default"] and card["last4"] == "4242"
    body = {"amount": {"amount_minor": 1500, "currency": EUR}}
    r = await h.client.post("/billing/topups", json=body, headers=h.headers(user))
    assert r.status_code == 400 and r.json()["reason"] == "idempotency_key_required"
    headers = h.headers(user, "topup-1")
    answers = await asyncio.gather(
        *(h.client.post("/billing/topups", json=body, headers=headers) for _ in range(5))
    )
    assert {a.status_code for a in answers} == {201}
    assert len({a.json()["topup_id"] for a in answers}) == 1
    assert sum(a.headers.get("idempotent-replayed") == "true" for a in answers) == 4
    assert await h.wallet(user) == (1500, 1500)
    charges = [i for i in h.processor.intents.values() if not i.capture_manual]
    assert len(charges) == 1
    other = await h.client.post(
        "/billing/topups", json={"amount": {"amount_minor": 99, "currency": EUR}}, headers=headers
    )
    assert other.status_code == 422 and other.json()["reason"] == "idempotency_key_reused"


async def test_declined_topup_is_recorded_and_replayed(h: Harness) -> None:
    user = uuid.uuid4()
    await _add_card(h, user, "pm_card_chargeDeclinedInsufficientFunds")
    body = {"amount": {"amount_minor": 1500, "currency": EUR}}
    for _ in range(2):
        r = await h.client.post("/billing/topups", json=body, headers=h.headers(user, "k"))
        assert r.status_code == 402 and r.json()["failure_reason"] == "insufficient_funds"
    assert len(await h.emitted("TopUpFailed", user)) == 1


async def test_account_ledger_cards_and_auto_topup(h: Harness) -> None:
    user = uuid.uuid4()
    visa = await _add_card(h, user)
    mc = await _add_card(h, user, "pm_card_mastercard")
    r = await h.client.put(f"/billing/payment-methods/{mc['id']}/default", headers=h.headers(user))
    assert [m["is_default"] for m in r.json()] == [False, True]
    for i, amount in enumerate((1000, 700, 300)):
        r = await h.client.post(
            "/billing/topups",
            json={
                "amount": {"amount_minor": amount, "currency": EUR},
                "payment_method_id": visa["id"],
            },
            headers=h.headers(user, f"t{i}"),
        )
        assert r.status_code == 201
    r = await h.client.put(
        "/billing/auto-topup",
        json={
            "enabled": True,
            "threshold": {"amount_minor": 500, "currency": EUR},
            "amount": {"amount_minor": 2000, "currency": EUR},
            "payment_method_id": visa["id"],
        },
        headers=h.headers(user),
    )
    assert r.status_code == 200
    event = priced(user)
    await h.publish(event)
    await h.wait_for("SessionAuthorized", event.session_id)
    account = (await h.client.get("/billing/account", headers=h.headers(user))).json()
    assert account["balance"]["amount_minor"] == 2000
    assert account["held"]["amount_minor"] == 2000 and account["available"]["amount_minor"] == 0
    assert account["holds"][0]["session_id"] == str(event.session_id)
    assert account["auto_topup"]["enabled"] is True
    assert "processor_token" not in json.dumps(account) and "pm_card" not in json.dumps(account)
    page = (await h.client.get("/billing/ledger?limit=2", headers=h.headers(user))).json()
    assert [line["kind"] for line in page["lines"]] == ["session_hold", "topup"]
    assert page["lines"][0]["available_after"]["amount_minor"] == 0
    assert page["lines"][1]["balance_after"]["amount_minor"] == 2000
    rest = (
        await h.client.get(f"/billing/ledger?before={page['next_before']}", headers=h.headers(user))
    ).json()
    assert [line["balance_after"]["amount_minor"] for line in rest["lines"]] == [1700, 1000]
    r = await h.client.delete(f"/billing/payment-methods/{mc['id']}", headers=h.headers(user))
    assert r.status_code == 204
    methods = (await h.client.get("/billing/payment-methods", headers=h.headers(user))).json()
    assert [(m["id"], m["is_default"]) for m in methods] == [(visa["id"], True)]


async def test_card_numbers_are_refused(h: Harness) -> None:
    user = uuid.uuid4()
    r = await h.client.post(
        "/billing/payment-methods",
        json={"token": "4242424242424242"},
        headers=h.headers(user, "k"),
    )
    assert r.status_code == 422


async def test_receipt_in_json_html_and_pdf_and_operator_views(h: Harness) -> None:
    user = uuid.uuid4()
    await _add_card(h, user)
    await h.client.post(
        "/billing/topups",
        json={"amount": {"amount_minor": 3000, "currency": EUR}},
        headers=h.headers(user, "t"),
    )
    event = priced(user)
    await h.publish(event)
    await h.wait_for("SessionAuthorized", event.session_id)
    await h.publish(cost_for(event, 12_345))
    await h.wait_for("SessionBilled", event.session_id)
    url = f"/billing/receipts/{event.session_id}"
    doc = (await h.client.get(url, headers=h.headers(user))).json()
    assert doc["station_id"] == "ST-1" and doc["payment_method"] == "Wallet"
    assert (
        doc["total_incl_vat"]["amount_minor"]
        == doc["total_excl_vat"]["amount_minor"] + doc["total_vat"]["amount_minor"]
    )
    assert doc["lines"][0]["vat_percent"] == "19"
    html = await h.client.get(url, headers={**h.headers(user), "Accept": "text/html"})
    assert html.headers["content-type"].startswith("text/html") and "ST-1" in html.text
    pdf = await h.client.get(f"{url}?format=pdf", headers=h.headers(user))
    assert pdf.headers["content-type"] == "application/pdf" and pdf.content.startswith(b"%PDF")
    stranger = await h.client.get(url, headers=h.headers(uuid.uuid4()))
    assert stranger.status_code == 404

    operator = h.headers(uuid.uuid4(), roles=["operator"], organisation_id=ORG)
    report = (await h.client.get("/billing/operator/revenue", headers=operator)).json()
    [station] = report["stations"]
    assert station["station_id"] == "ST-1" and station["sessions"] == 1
    assert station["total_incl_vat"]["amount_minor"] == doc["total_incl_vat"]["amount_minor"]
    foreign = h.headers(uuid.uuid4(), roles=["operator"], organisation_id=uuid.uuid4())
    body = {
        "session_id": str(event.session_id),
        "amount": {"amount_minor": 100, "currency": EUR},
        "reason": "connector fault",
    }
    r = await h.client.post(
        "/billing/operator/refunds", json=body, headers={**foreign, "Idempotency-Key": "r"}
    )
    # Another organisation's session answers exactly as one that does not exist.
    missing = await h.client.post(
        "/billing/operator/refunds",
        json={**body, "session_id": str(uuid.uuid4())},
        headers={**foreign, "Idempotency-Key": "r0"},
    )
    assert (r.status_code, r.json()["reason"]) == (missing.status_code, missing.json()["reason"])
    assert r.status_code == 404
    before = (await h.wallet(user))[0]
    for _ in range(2):
        r = await h.client.post(
            "/billing/operator/refunds", json=body, headers={**operator, "Idempotency-Key": "r1"}
        )
        assert r.status_code == 201, r.text
    assert (await h.wallet(user))[0] == before + 100
    [issued] = await h.emitted("RefundIssued", user)
    assert issued["reason"] == "connector fault"
    too_much = {**body, "amount": {"amount_minor": 10_000, "currency": EUR}}
    r = await h.client.post(
        "/billing/operator/refunds", json=too_much, headers={**operator, "Idempotency-Key": "r2"}
    )
    assert r.status_code == 422 and r.json()["reason"] == "refund_exceeds_charged"
    charged = doc["charged"]["amount_minor"]
    left = f"{(charged - 100) // 100}.{(charged - 100) % 100:02d} EUR"
    assert r.json()["message"] == f"at most {left} can still be refunded"
    # The portal's view of a session's refunds: the reason, where it went, what is left.
    listed = await h.client.get(
        "/billing/operator/refunds", params={"session_id": str(event.session_id)}, headers=operator
    )
    assert listed.status_code == 200, listed.text
    refunds = listed.json()
    assert refunds["refundable"] == {"amount_minor": charged - 100, "currency": EUR}
    assert refunds["destination"] == "wallet"
    [done] = refunds["refunds"]
    assert (done["reason"], done["destination"], done["status"]) == (
        "connector fault",
        "wallet",
        "done",
    )
    assert done["amount"]["amount_minor"] == 100
    hidden = await h.client.get(
        "/billing/operator/refunds", params={"session_id": str(event.session_id)}, headers=foreign
    )
    assert hidden.status_code == 404
    report = (await h.client.get("/billing/operator/revenue", headers=operator)).json()
    assert report["stations"][0]["refunded"]["amount_minor"] == 100
    driver_tries = await h.client.get("/billing/operator/revenue", headers=h.headers(user))
    assert driver_tries.status_code == 403


async def test_processor_webhooks_are_verified_and_deduplicated(h: Harness) -> None:
    user = uuid.uuid4()
    await _add_card(h, user)
    event = priced(user)
    await h.publish(event)
    await h.wait_for("SessionAuthorized", event.session_id)
    intent = next(iter(h.processor.intents))
    body = json.dumps(
        {"id": "evt_42", "type": "payment_intent.canceled", "data": {"object": {"id": intent}}}
    ).encode()
    bad = await h.client.post(
        "/billing/webhooks/processor", content=body, headers={"Stripe-Signature": "t=1,v1=00"}
    )
    assert bad.status_code == 400
    # no install shares a webhook secret: the old public default no longer verifies
    public = {"Stripe-Signature": sign_webhook(body, "whsec_simulated")}
    forged = await h.client.post("/billing/webhooks/processor", content=body, headers=public)
    assert forged.status_code == 400
    signature = {"Stripe-Signature": sign_webhook(body, h.processor.webhook_secret)}
    first = await h.client.post("/billing/webhooks/processor", content=body, headers=signature)
    again = await h.client.post("/billing/webhooks/processor", content=body, headers=signature)
    assert first.json() == {"received": True, "duplicate": False}
    assert again.json() == {"received": True, "duplicate": True}
    released = await h.wait_for("SessionHoldReleased", event.session_id)
    assert released["released"]["amount_minor"] == 5000


def test_production_refuses_the_simulated_processor() -> None:
    with pytest.raises(ValueError, match="simulated"):
        Settings(
            database_url="postgresql://x/y",  # type: ignore[arg-type]
            platform=PlatformSettings(environment="production", kafka_bootstrap="k:9092"),
        )
