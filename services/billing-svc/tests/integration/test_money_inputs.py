"""Money inputs are strict and bounded, checked before any processor call; only verified
drivers save cards or top up; repeated declines are throttled (card testing)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from billing_kit import Harness, running
from billing_svc.repository import BillingRepository

pytestmark = pytest.mark.infra
EUR = "EUR"
BIG = 2**63


@pytest.fixture
async def h(database_url: str, topic_prefix: str) -> AsyncIterator[Harness]:
    async with running(database_url, topic_prefix) as harness:
        yield harness


async def _card(h: Harness, user: uuid.UUID, token: str = "pm_card_visa") -> dict:
    r = await h.client.post(
        "/billing/payment-methods", json={"token": token}, headers=h.headers(user, uuid.uuid4().hex)
    )
    assert r.status_code == 201, r.text
    return r.json()


async def _topup(h: Harness, user: uuid.UUID, amount: object, **headers: str):  # type: ignore[no-untyped-def]
    return await h.client.post(
        "/billing/topups",
        json={"amount": {"amount_minor": amount, "currency": EUR}},
        headers={**h.headers(user, uuid.uuid4().hex), **headers},
    )


def _fields(response) -> list[list]:  # type: ignore[no-untyped-def]
    assert response.status_code == 422, response.text
    return [e["loc"] for e in response.json()["errors"]]


@pytest.mark.parametrize("amount", [True, "100", 100.0, BIG, -1])
async def test_topup_amounts_are_strict_integers_within_a_bigint(
    h: Harness, amount: object
) -> None:
    user = uuid.uuid4()
    await _card(h, user)
    calls = len(h.processor.calls)
    r = await _topup(h, user, amount)
    assert ["body", "amount", "amount_minor"] in _fields(r)
    assert len(h.processor.calls) == calls  # refused before the processor


@pytest.mark.parametrize(
    ("amount", "reason"),
    [
        (99, "amount_below_minimum"),
        (50_001, "amount_above_maximum"),
        (10**12, "amount_above_maximum"),
    ],
)
async def test_topup_bounds_refuse_before_the_processor(
    h: Harness, amount: int, reason: str
) -> None:
    user = uuid.uuid4()
    await _card(h, user)
    calls = len(h.processor.calls)
    r = await _topup(h, user, amount)
    assert r.status_code == 422 and r.json()["reason"] == reason, r.text
    assert len(h.processor.calls) == calls
    assert await h.wallet(user) == (0, 0)


async def test_wallet_balance_has_a_maximum(h: Harness) -> None:
    user = uuid.uuid4()
    await _card(h, user)
    assert (await _topup(h, user, 40_000)).status_code == 201
    calls = len(h.processor.calls)
    r = await _topup(h, user, 10_001)  # 500.01 EUR would be above the 500 EUR maximum
    assert r.status_code == 422 and r.json()["reason"] == "balance_limit_exceeded"
    assert len(h.processor.calls) == calls
    assert (await _topup(h, user, 10_000)).status_code == 201
    assert await h.wallet(user) == (50_000, 50_000)


async def test_limits_are_settings_per_currency(database_url: str, topic_prefix: str) -> None:
    async with running(
        database_url,
        topic_prefix,
        max_wallet_balance_minor=1_000,
        currency_limits={"EUR": {"max_topup_minor": 700}},
    ) as h:
        user = uuid.uuid4()
        await _card(h, user)
        assert (await _topup(h, user, 701)).json()["reason"] == "amount_above_maximum"
        assert (await _topup(h, user, 700)).status_code == 201
        assert (await _topup(h, user, 301)).json()["reason"] == "balance_limit_exceeded"


async def test_ledger_cursor_and_auto_topup_integers_are_bounded(h: Harness) -> None:
    user = uuid.uuid4()
    r = await h.client.get("/billing/ledger?before=99999999999999999999", headers=h.headers(user))
    assert ["query", "before"] in _fields(r)
    card = await _card(h, user)
    body = {
        "enabled": True,
        "threshold": {"amount_minor": 1000, "currency": EUR},
        "amount": {"amount_minor": BIG, "currency": EUR},
        "payment_method_id": card["id"],
    }
    r = await h.client.put("/billing/auto-topup", json=body, headers=h.headers(user))
    assert ["body", "amount", "amount_minor"] in _fields(r)
    body["amount"] = {"amount_minor": True, "currency": EUR}
    r = await h.client.put("/billing/auto-topup", json=body, headers=h.headers(user))
    assert ["body", "amount", "amount_minor"] in _fields(r)
    body["amount"] = {"amount_minor": 20_001, "currency": EUR}
    r = await h.client.put("/billing/auto-topup", json=body, headers=h.headers(user))
    assert r.status_code == 422 and r.json()["reason"] == "amount_above_maximum"
    body["amount"] = {"amount_minor": 2_500, "currency": EUR}
    body["threshold"] = {"amount_minor": "750", "currency": EUR}
    r = await h.client.put("/billing/auto-topup", json=body, headers=h.headers(user))
    assert ["body", "threshold", "amount_minor"] in _fields(r)
    body["threshold"] = {"amount_minor": 750, "currency": EUR}
    r = await h.client.put("/billing/auto-topup", json=body, headers=h.headers(user))
    assert r.status_code == 200 and r.json()["amount"]["amount_minor"] == 2_500


async def test_refund_amounts_are_strict(h: Harness) -> None:
    operator = h.headers(uuid.uuid4(), uuid.uuid4().hex, roles=["operator"])
    body = {"session_id": str(uuid.uuid4()), "amount": {"amount_minor": BIG, "currency": EUR}}
    r = await h.client.post(
        "/billing/operator/refunds", json={**body, "reason": "goodwill"}, headers=operator
    )
    assert ["body", "amount", "amount_minor"] in _fields(r)


async def test_unverified_driver_can_neither_save_a_card_nor_top_up(h: Harness) -> None:
    user = uuid.uuid4()
    unverified = h.headers(user, uuid.uuid4().hex, email_verified=False)
    r = await h.client.post(
        "/billing/payment-methods", json={"token": "pm_card_visa"}, headers=unverified
    )
    assert r.status_code == 403 and r.json()["reason"] == "account_unverified", r.text
    r = await h.client.post(
        "/billing/topups",
        json={"amount": {"amount_minor": 1000, "currency": EUR}},
        headers=unverified,
    )
    assert r.status_code == 403 and r.json()["reason"] == "account_unverified"
    # refused before the body is even read (the authorisation matrix probes with {})
    for path in ("/billing/topups", "/billing/payment-methods"):
        r = await h.client.post(path, json={}, headers=unverified)
        assert r.status_code == 403 and r.json()["reason"] == "account_unverified", r.text
    assert h.processor.calls == []
    # UserVerified reached billing after this token was issued: the account counts as verified
    async with h.database.write() as session:
        await BillingRepository(session).mark_verified(user)
    r = await h.client.post(
        "/billing/payment-methods",
        json={"token": "pm_card_visa"},
        headers=h.headers(user, uuid.uuid4().hex, email_verified=False),
    )
    assert r.status_code == 201, r.text


async def test_declines_are_throttled_per_account(h: Harness) -> None:
    user = uuid.uuid4()
    await _card(h, user, "pm_card_chargeDeclined")
    for _ in range(5):
        assert (await _topup(h, user, 100)).status_code == 402
    charges = len(h.processor.calls)
    r = await _topup(h, user, 100)
    assert r.status_code == 429 and r.json()["reason"] == "too_many_declines"
    assert 3500 <= int(r.headers["retry-after"]) <= 3600
    assert len(h.processor.calls) == charges
    r = await h.client.post(
        "/billing/payment-methods",
        json={"token": "pm_card_mastercard"},
        headers=h.headers(user, uuid.uuid4().hex),
    )
    assert r.status_code == 429 and r.json()["reason"] == "too_many_declines"
    # after the window the account may try again
    h.clock.offset = timedelta(hours=1, seconds=1)
    assert (await _topup(h, user, 100)).status_code == 402


async def test_declines_are_throttled_per_client_address(h: Harness) -> None:
    # every test request comes from the same ASGI client address: five accounts, one tester
    users = [uuid.uuid4() for _ in range(6)]
    for user in users:
        await _card(h, user, "pm_card_chargeDeclinedInsufficientFunds")
    for user in users[:5]:
        assert (await _topup(h, user, 100)).status_code == 402
    r = await _topup(h, users[5], 100)
    assert r.status_code == 429 and r.json()["reason"] == "too_many_declines"


async def test_a_card_saved_without_a_processor_customer_still_tops_up(h: Harness) -> None:
    """The demo seed (and older rows) save a card with no customer at the processor: the
    first top-up creates the customer instead of answering 'no payment method'."""
    from billing_svc.seed import seed_demo

    user = uuid.uuid4()
    async with h.database.write() as session:
        await seed_demo(session, user, uuid.uuid4())
    r = await _topup(h, user, 5_000)
    assert r.status_code == 201, r.text
    assert r.json()["balance_after"]["amount_minor"] == 2_000 + 5_000
    async with h.database.read() as session:
        profile = await BillingRepository(session).ensure_profile_readonly(user)
    assert profile is not None and profile.processor_customer_id
