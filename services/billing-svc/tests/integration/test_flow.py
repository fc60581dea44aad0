"""Authorisation and settlement through the bus, on real PostgreSQL (embedded event log)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from billing_kit import (
    ORG,
    Harness,
    abandoned,
    card_session,
    cost_for,
    priced,
    running,
    seed_wallet,
    wrap,
)
from billing_svc.repository import BillingRepository
from billing_svc.seed import seed_demo
from billing_svc.usecases import payment_methods, top_up
from billing_svc.usecases.common import make_call
from plugpay_testing import eventually
from sqlalchemy import select, text

pytestmark = pytest.mark.infra


@pytest.fixture
async def h(database_url: str, topic_prefix: str) -> AsyncIterator[Harness]:
    async with running(database_url, topic_prefix) as harness:
        yield harness


async def seeded(h: Harness) -> tuple[uuid.UUID, uuid.UUID]:
    driver, broke = uuid.uuid4(), uuid.uuid4()
    async with h.database.write() as session:
        await seed_demo(session, driver, broke)
    return driver, broke


async def test_wallet_hold_then_capture_splits_revenue_and_vat(h: Harness) -> None:
    driver, _ = await seeded(h)
    event = priced(driver)
    await h.publish(event)
    authorized = await h.wait_for("SessionAuthorized", event.session_id)
    assert authorized["funding"] == "wallet"
    assert authorized["hold_amount"] == {"amount_minor": 2000, "currency": "EUR"}
    # The 20.00 EUR wallet pays first and the visa on file covers up to 50.00 beyond it:
    # 70.00 EUR at 0.476 EUR/kWh incl. VAT buys a bit over 140 kWh, conservatively
    assert authorized["limits"]["max_cost"]["amount_minor"] == 7000
    assert 140_000 <= authorized["limits"]["max_energy_wh"] < 147_059
    assert await h.wallet(driver) == (2000, 0)

    cost = cost_for(event, 10_000)  # 10 kWh: 4.00 + 0.76 VAT
    assert cost.total.amount_minor == 476
    [cost_envelope] = await h.publish(cost)
    billed = await h.wait_for("SessionBilled", event.session_id)
    assert billed["charged"]["amount_minor"] == 476
    outbox = h.app.state.runtime.outbox_tables.outbox
    async with h.database.read() as session:
        envelopes = (await session.execute(select(outbox.c.envelope))).scalars().all()
    [billed_envelope] = [e for e in envelopes if e["type"] == "SessionBilled"]
    assert billed_envelope["causation_id"] == str(cost_envelope.event_id)
    assert billed_envelope["correlation_id"] == str(cost_envelope.correlation_id)
    assert billed["balance_after"]["amount_minor"] == 1524
    assert billed["outstanding_debt"] is None
    assert await h.wallet(driver) == (1524, 1524)
    books = await h.balances()
    assert books[f"revenue:EUR:{ORG}"][3] == 400
    assert books[f"vat_payable:EUR:{ORG}"][3] == 76
    settlement = books[f"session_settlement:EUR:{event.session_id}"]
    assert settlement[1] == settlement[3] and settlement[0] == settlement[2] == 0


async def test_broke_driver_is_denied_for_insufficient_funds(h: Harness) -> None:
    _, broke = await seeded(h)
    event = priced(broke)
    await h.publish(event)
    denied = await h.wait_for("SessionDenied", event.session_id)
    assert denied["reason"] == "insufficient_funds"
    assert denied["denied_by"] == "billing-svc"


async def test_card_preauthorisation_by_power_class_and_partial_capture(h: Harness) -> None:
    driver = uuid.uuid4()
    async with h.database.write() as session:
        await payment_methods.add_payment_method(h.billing, session, driver, "pm_card_mastercard")
    ac, dc = priced(driver, max_power_w=11_000), priced(driver, max_power_w=150_000)
    await h.publish(ac, dc)
    a = await h.wait_for("SessionAuthorized", ac.session_id)
    d = await h.wait_for("SessionAuthorized", dc.session_id)
    assert (a["funding"], a["hold_amount"]["amount_minor"]) == ("card", 5000)
    assert (d["funding"], d["hold_amount"]["amount_minor"]) == ("card", 10000)
    await h.publish(cost_for(ac, 5_000))
    billed = await h.wait_for("SessionBilled", ac.session_id)
    assert billed["funding"] == "card" and billed["charged"]["amount_minor"] == 238
    intents = [i for i in h.processor.intents.values() if i.capture_manual]
    captured = [i for i in intents if i.status == "succeeded"]
    assert len(captured) == 1 and captured[0].amount_received == 238 and captured[0].amount == 5000
    # the abandoned DC session releases its card hold at the processor and in the ledger
    await h.publish(abandoned(dc, "start_timeout"))
    released = await h.wait_for("SessionHoldReleased", dc.session_id)
    assert released["released"]["amount_minor"] == 10000
    # the processor is called after the release is committed (never inside that transaction)
    statuses = await eventually(
        lambda: asyncio.sleep(0, sorted(i.status for i in intents) == ["canceled", "succeeded"]),
        what="the card hold cancelled at the processor",
    )
    assert statuses is True


async def test_declined_card_is_denied(h: Harness) -> None:
    driver = uuid.uuid4()
    async with h.database.write() as session:
        await payment_methods.add_payment_method(
            h.billing, session, driver, "pm_card_chargeDeclinedInsufficientFunds"
        )
    event = priced(driver)
    await h.publish(event)
    denied = await h.wait_for("SessionDenied", event.session_id)
    assert denied["reason"] == "payment_declined"


async def test_cost_above_the_hold_is_capped_and_the_rest_is_the_operators(h: Harness) -> None:
    driver = uuid.uuid4()
    async with h.database.write() as session:
        await seed_wallet(session, driver, 2000)  # 20.00 EUR wallet, no card
    event = priced(driver)
    await h.publish(event)
    authorized = await h.wait_for("SessionAuthorized", event.session_id)
    assert authorized["limits"]["max_cost"]["amount_minor"] == 2000  # no card: the wallet's
    await h.publish(cost_for(event, 50_000))  # 23.80 EUR claimed > the 20.00 agreed to
    billed = await h.wait_for("SessionBilled", event.session_id)
    assert billed["charged"]["amount_minor"] == 2000 and billed["outstanding_debt"] is None
    assert billed["wallet_charged"]["amount_minor"] == 2000
    assert billed["card_charged"]["amount_minor"] == 0
    assert billed["capped"]["amount_minor"] == 380
    assert not [i for i in h.processor.intents.values() if not i.capture_manual]
    books = await h.balances()
    # VAT only on what was collected, in the claimed cost's proportion
    assert books[f"revenue:EUR:{ORG}"][3] + books[f"vat_payable:EUR:{ORG}"][3] == 2000
    assert books[f"vat_payable:EUR:{ORG}"][3] == 2000 * 380 // 2380
    assert f"receivable:EUR:{driver}" not in books or books[f"receivable:EUR:{driver}"][1] == 0
    async with h.database.read() as session:
        overrun = await BillingRepository(session).cost_overrun(event.session_id)
    assert overrun is not None
    assert (overrun.claimed_total, overrun.authorised_max, overrun.written_off) == (
        2380,
        2000,
        380,
    )
    assert overrun.organisation_id == ORG and overrun.energy_wh == 50_000
    doc = (
        await h.client.get(f"/billing/receipts/{event.session_id}", headers=h.headers(driver))
    ).json()
    assert doc["total_incl_vat"]["amount_minor"] == 2000
    assert doc["claimed_total"]["amount_minor"] == 2380
    assert doc["capped"]["amount_minor"] == 380
    assert doc["funding_split"]["wallet"]["amount_minor"] == 2000
    assert doc["funding_split"]["card"]["amount_minor"] == 0
    assert doc["payment_method"] == "Wallet"
    assert any("not charged to you" in note for note in doc["notes"])


async def test_a_small_wallet_with_a_card_on_file_does_not_lower_the_automatic_stop(
    h: Harness,
) -> None:
    """The wallet pays first; the card on file covers beyond it (up to what a card hold would),
    so a few euros in the wallet do not stop the car after a few kWh."""
    driver = uuid.uuid4()
    async with h.database.write() as session:
        await seed_wallet(session, driver, 300)
        await payment_methods.add_payment_method(h.billing, session, driver, "pm_card_visa")
    event = priced(driver)  # 0.476 EUR/kWh incl. VAT, an AC charger (card hold 50.00)
    await h.publish(event)
    authorized = await h.wait_for("SessionAuthorized", event.session_id)
    assert authorized["funding"] == "wallet"
    assert authorized["hold_amount"]["amount_minor"] == 300  # the wallet's 3.00 held
    assert authorized["limits"]["max_cost"]["amount_minor"] == 300 + 5000
    # 53.00 EUR buys over 100 kWh (3.00 alone: about 6 kWh)
    assert authorized["limits"]["max_energy_wh"] > 100_000
    await h.publish(cost_for(event, 20_000))  # 9.52 EUR
    billed = await h.wait_for("SessionBilled", event.session_id)
    assert billed["charged"]["amount_minor"] == 952 and billed["outstanding_debt"] is None
    assert billed["wallet_charged"]["amount_minor"] == 300
    assert billed["card_charged"]["amount_minor"] == 652
    assert not billed.get("capped")
    assert await h.wallet(driver) == (0, 0)
    doc = (
        await h.client.get(f"/billing/receipts/{event.session_id}", headers=h.headers(driver))
    ).json()
    assert doc["funding_split"]["wallet"]["amount_minor"] == 300
    assert doc["funding_split"]["card"]["amount_minor"] == 652
    # Beyond the wallet and the card's cover the cost is capped at the agreed maximum.
    above = priced(driver)
    async with h.database.write() as session:
        await seed_wallet(session, driver, 300)
    await h.publish(above)
    await h.wait_for("SessionAuthorized", above.session_id)
    await h.publish(cost_for(above, 150_000))  # 71.40 EUR claimed > the 53.00 agreed to
    capped = await h.wait_for("SessionBilled", above.session_id)
    assert capped["charged"]["amount_minor"] == 5300
    assert capped["capped"]["amount_minor"] == 7140 - 5300


async def test_expired_card_hold_is_charged_anew_only_within_the_authorised_amount(
    h: Harness,
) -> None:
    driver, event, authorized = await card_session(h)
    assert authorized["hold_amount"]["amount_minor"] == 5000
    h.clock.offset = timedelta(days=8)  # the processor's 7-day card hold is gone
    await h.publish(cost_for(event, 150_000))  # 71.40 EUR claimed
    billed = await h.wait_for("SessionBilled", event.session_id)
    charges = [i.amount for i in h.processor.intents.values() if not i.capture_manual]
    assert charges == [5000]  # never more off-session than the driver authorised
    assert billed["card_charged"]["amount_minor"] == 5000
    assert billed["capped"]["amount_minor"] == 7140 - 5000
    doc = (
        await h.client.get(f"/billing/receipts/{event.session_id}", headers=h.headers(driver))
    ).json()
    assert doc["payment_method"] == "visa •••• 4242"
    assert doc["funding_split"]["card"]["amount_minor"] == 5000


async def test_a_declined_shortfall_becomes_debt_and_the_next_topup_pays_it(h: Harness) -> None:
    driver = uuid.uuid4()
    async with h.database.write() as session:
        await payment_methods.add_payment_method(h.billing, session, driver, "pm_card_visa")
        declining, _ = await payment_methods.add_payment_method(
            h.billing, session, driver, "pm_card_chargeDeclined"
        )
    event = priced(driver)
    await h.publish(event)
    await h.wait_for("SessionAuthorized", event.session_id)
    async with h.database.write() as session:
        await payment_methods.set_default_method(h.billing, session, driver, declining.id)
    h.clock.offset = timedelta(days=8)  # the card hold expired: the cost is charged anew
    await h.publish(cost_for(event, 10_000))  # 4.76 EUR
    billed = await h.wait_for("SessionBilled", event.session_id)
    assert billed["charged"]["amount_minor"] == 0
    assert billed["outstanding_debt"]["amount_minor"] == 476
    async with h.database.read() as session:
        declines = await BillingRepository(session).recent_declines(
            driver, None, h.clock() - timedelta(hours=1)
        )
    assert len(declines) == 1  # counts towards the card-testing limit
    books = await h.balances()
    assert books[f"receivable:EUR:{driver}"][1] == 476
    visa = next(m for m in await _methods(h, driver) if m.last4 == "4242")
    topup_id = uuid.uuid4()
    async with h.database.write() as session:
        call = await top_up.begin(
            h.billing,
            session,
            user_id=driver,
            topup_id=topup_id,
            amount=1000,
            currency="EUR",
            method=visa,
            trigger="manual",
        )
    assert call is not None
    await make_call(h.billing, h.database.write, call)
    result = await top_up.finish_in(h.billing, h.database.write, topup_id)
    assert result.status == "succeeded"
    assert await h.wallet(driver) == (524, 524)
    books = await h.balances()
    receivable = books[f"receivable:EUR:{driver}"]
    assert receivable[1] - receivable[3] == 0


async def _methods(h: Harness, user: uuid.UUID) -> list:
    from billing_svc.repository import BillingRepository

    async with h.database.read() as session:
        return await BillingRepository(session).methods(user)


async def test_auto_topup_before_the_hold_and_after_the_capture(h: Harness) -> None:
    driver = uuid.uuid4()
    async with h.database.write() as session:
        method, _ = await payment_methods.add_payment_method(
            h.billing, session, driver, "pm_card_visa"
        )
        from plugpay_events.types import Money

        await top_up.configure_auto_topup(
            h.billing,
            session,
            driver,
            enabled=True,
            threshold=Money(amount_minor=1000, currency="EUR"),
            amount=Money(amount_minor=1500, currency="EUR"),
            method_id=method.id,
        )
    event = priced(driver)
    await h.publish(event)
    authorized = await h.wait_for("SessionAuthorized", event.session_id)
    topped = await h.wait_for("WalletToppedUp", driver)
    assert topped["trigger"] == "auto" and topped["amount"]["amount_minor"] == 1500
    assert authorized["funding"] == "wallet" and authorized["hold_amount"]["amount_minor"] == 1500
    await h.publish(cost_for(event, 20_000))  # 9.52 EUR leaves 5.48 < 10.00: top up again
    await h.wait_for("SessionBilled", event.session_id)
    await h.wait_for("WalletToppedUp", driver, count=2)
    assert await h.wallet(driver) == (1500 - 952 + 1500, 1500 - 952 + 1500)


async def test_abandoned_session_voids_the_wallet_hold(h: Harness) -> None:
    driver, _ = await seeded(h)
    event = priced(driver)
    await h.publish(event)
    await h.wait_for("SessionAuthorized", event.session_id)
    assert await h.wallet(driver) == (2000, 0)
    await h.publish(abandoned(event, "station_rejected"))
    released = await h.wait_for("SessionHoldReleased", event.session_id)
    assert released["released"]["amount_minor"] == 2000
    assert await h.wallet(driver) == (2000, 2000)


async def test_free_session_holds_nothing_and_bills_zero(h: Harness) -> None:
    _, broke = await seeded(h)
    event = priced(broke, free=True, kwh_price="0")
    await h.publish(event)
    authorized = await h.wait_for("SessionAuthorized", event.session_id)
    assert authorized["funding"] == "free" and authorized["hold_id"] is None
    await h.publish(cost_for(event, 5_000))
    billed = await h.wait_for("SessionBilled", event.session_id)
    assert billed["charged"]["amount_minor"] == 0 and billed["funding"] == "free"


async def test_expired_hold_is_released_once_by_the_sweeper(h: Harness) -> None:
    driver, _ = await seeded(h)
    event = priced(driver)
    await h.publish(event)
    await h.wait_for("SessionAuthorized", event.session_id)
    h.clock.offset = timedelta(days=3)
    assert await h.app.state.sweep_once() == 1
    assert await h.app.state.sweep_once() == 0
    released = await h.wait_for("SessionHoldReleased", event.session_id)
    assert released["released"]["amount_minor"] == 2000
    assert await h.wallet(driver) == (2000, 2000)
    # a late cost is still collected: from the wallet's free balance now
    await h.publish(cost_for(event, 10_000))
    billed = await h.wait_for("SessionBilled", event.session_id)
    assert billed["charged"]["amount_minor"] == 476
    assert await h.wallet(driver) == (1524, 1524)


async def test_replaying_every_event_changes_no_balance(h: Harness) -> None:
    driver, broke = await seeded(h)
    sessions = [priced(driver), priced(driver), priced(broke)]
    await h.publish(*sessions)
    for s in sessions[:2]:
        await h.wait_for("SessionAuthorized", s.session_id)
    await h.publish(cost_for(sessions[0], 10_000))
    await h.publish(abandoned(sessions[1], "start_timeout"))
    await h.wait_for("SessionBilled", sessions[0].session_id)
    await h.wait_for("SessionHoldReleased", sessions[1].session_id)
    before = await h.balances()
    emitted_before = len(await h.emitted("SessionBilled")) + len(
        await h.emitted("SessionAuthorized")
    )
    # the same envelopes again (a redelivery), and the same events with new ids (a re-emission)

    again = list(h.sent)
    await h.publish(*again, *[wrap(e.event()) for e in again])
    marker = priced(broke)
    await h.publish(marker)  # consumed after everything above (same topic, ordered per key)
    await h.wait_for("SessionDenied", marker.session_id)

    distinct = {e.event_id for e in h.sent}

    async def handled_all() -> bool:
        async with h.database.read() as session:
            n = await session.scalar(
                text("SELECT count(*) FROM inbox WHERE consumer = 'billing-svc.sessions'")
            )
        return int(n or 0) >= len(distinct)

    await eventually(handled_all, what="replayed events handled")
    assert await h.balances() == before
    emitted_after = len(await h.emitted("SessionBilled")) + len(
        await h.emitted("SessionAuthorized")
    )
    assert emitted_after == emitted_before
