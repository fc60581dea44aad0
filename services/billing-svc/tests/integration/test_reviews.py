"""Sessions held for review, on real Kafka and PostgreSQL: only the plausible part is billed,
the operator's revenue shows it as pending, and an operator of the station's organisation
decides — approving up to a stated total (never above what the driver authorised) or voiding —
with the decision moving exactly the money it states."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import pytest
from billing_kit import ORG, Harness, cost_for, priced, running, seed_wallet
from plugpay_events.contracts.sessions import (
    MeterClaim,
    MeterJudgement,
    SessionFlagged,
    SessionPriced,
)
from plugpay_events.envelope import Envelope
from plugpay_testing import eventually
from sqlalchemy import select

pytestmark = [pytest.mark.infra, pytest.mark.kafka]

EUR = "EUR"
PLAUSIBLE_WH = 1_000  # 0.40 EUR/kWh + 19 % VAT: 0.48 EUR
PLAUSIBLE_MINOR = 48
AUTHORISED_MAX = 2_000  # the wallet hold of a driver with 20.00 EUR and no card


@pytest.fixture
async def h(database_url: str, topic_prefix: str, kafka: str) -> AsyncIterator[Harness]:
    async with running(database_url, topic_prefix, kafka=kafka) as harness:
        yield harness


def flagged(event: SessionPriced) -> SessionFlagged:
    """What the gateway says of a 22 kW connector that claimed 10 MWh after two seconds."""
    return flag_of(event, "held", ("register_jump",))


def flag_of(
    event: SessionPriced, outcome: Literal["corrected", "held"], reasons: tuple[str, ...]
) -> SessionFlagged:
    now = datetime.now(UTC)
    return SessionFlagged(
        session_id=event.session_id,
        station_id=event.station_id,
        connector_id=event.connector_id,
        transaction_id="17",
        judgement=MeterJudgement(
            outcome=outcome,
            reasons=reasons,
            claimed=MeterClaim(
                meter_start_wh=10_000,
                meter_stop_wh=10_010_000,
                energy_wh=10_000_000,
                started_at=now - timedelta(minutes=10),
                ended_at=now,
            ),
            max_power_w=22_000,
            max_energy_wh=3_950,
        ),
        billed_energy_wh=PLAUSIBLE_WH,
        flagged_at=now,
    )


async def authorised(h: Harness) -> tuple[uuid.UUID, SessionPriced]:
    """A session of a driver whose wallet holds the authorised maximum, authorised."""
    driver = uuid.uuid4()
    async with h.database.write() as session:
        await seed_wallet(session, driver, AUTHORISED_MAX)
    event = priced(driver)
    await h.publish(event)
    await h.wait_for("SessionAuthorized", event.session_id)
    return driver, event


async def held_and_billed(h: Harness) -> tuple[uuid.UUID, SessionPriced, Envelope]:
    """A wallet driver's session, flagged and billed its plausible part."""
    driver, event = await authorised(h)
    [flag] = await h.publish(flagged(event))
    await h.publish(cost_for(event, PLAUSIBLE_WH))
    billed = await h.wait_for("SessionBilled", event.session_id)
    assert billed["charged"]["amount_minor"] == PLAUSIBLE_MINOR
    assert await h.wallet(driver) == (AUTHORISED_MAX - PLAUSIBLE_MINOR,) * 2

    async def listed() -> list[dict[str, Any]] | None:
        r = await h.client.get("/billing/operator/reviews", headers=operator(h))
        assert r.status_code == 200, r.text
        found = [x for x in r.json() if x["session_id"] == str(event.session_id)]
        return found if found and found[0]["billed_total"] is not None else None

    await eventually(listed, what="the review lists the billed session")
    return driver, event, flag


def operator(h: Harness, org: uuid.UUID = ORG) -> dict[str, str]:
    return h.headers(uuid.UUID(int=org.int + 1), roles=["operator"], organisation_id=org)


async def decide(h: Harness, session_id: uuid.UUID, body: dict[str, Any], key: str) -> Any:
    return await h.client.post(
        f"/billing/operator/reviews/{session_id}",
        json=body,
        headers={**operator(h), "Idempotency-Key": key},
    )


async def station_revenue(h: Harness) -> dict[str, Any]:
    report = (await h.client.get("/billing/operator/revenue", headers=operator(h))).json()
    [station] = report["stations"]
    return dict(station)


async def assert_books_balance(h: Harness, session_id: uuid.UUID) -> None:
    books = await h.balances()
    debits = sum(v[1] for v in books.values())
    credits = sum(v[3] for v in books.values())
    assert debits == credits
    settlement = books[f"session_settlement:EUR:{session_id}"]
    assert settlement[1] == settlement[3], settlement


async def test_the_review_list_shows_the_evidence_and_revenue_counts_it_as_pending(
    h: Harness,
) -> None:
    _, event, _ = await held_and_billed(h)
    [review] = (await h.client.get("/billing/operator/reviews", headers=operator(h))).json()
    assert review["status"] == "pending"
    assert review["judgement"]["claimed"]["energy_wh"] == 10_000_000
    assert review["judgement"]["reasons"] == ["register_jump"]
    assert review["judgement"]["max_energy_wh"] == 3_950
    assert review["billed_energy_wh"] == PLAUSIBLE_WH
    assert review["billed_total"] == {"amount_minor": PLAUSIBLE_MINOR, "currency": EUR}
    assert review["authorised_max"] == {"amount_minor": AUTHORISED_MAX, "currency": EUR}
    receipt = await h.client.get(
        f"/billing/receipts/{event.session_id}", headers=h.headers(event.user_id)
    )
    assert receipt.json()["review"] == "pending"
    assert any("reviewing" in note for note in receipt.json()["notes"])
    station = await station_revenue(h)
    assert station["sessions"] == 0
    assert station["total_incl_vat"]["amount_minor"] == 0
    assert station["pending_review_sessions"] == 1
    assert station["pending_review"]["amount_minor"] == PLAUSIBLE_MINOR
    foreign = h.headers(uuid.uuid4(), roles=["operator"], organisation_id=uuid.uuid4())
    assert (await h.client.get("/billing/operator/reviews", headers=foreign)).json() == []
    driver = await h.client.get("/billing/operator/reviews", headers=h.headers(event.user_id))
    assert driver.status_code == 403


async def test_a_correction_is_listed_with_its_evidence_and_counts_as_revenue(h: Harness) -> None:
    driver, event = await authorised(h)
    await h.publish(flag_of(event, "corrected", ("start_before_authorisation",)))
    await h.publish(cost_for(event, PLAUSIBLE_WH))
    await h.wait_for("SessionBilled", event.session_id)

    async def listed() -> list[dict[str, Any]] | None:
        r = await h.client.get("/billing/operator/reviews?status=corrected", headers=operator(h))
        assert r.status_code == 200, r.text
        found = [x for x in r.json() if x["billed_total"] is not None]
        return found or None

    [correction] = await eventually(listed, what="the correction is listed")
    assert correction["session_id"] == str(event.session_id)
    assert correction["status"] == "corrected"
    assert correction["judgement"]["reasons"] == ["start_before_authorisation"]
    assert correction["billed_total"] == {"amount_minor": PLAUSIBLE_MINOR, "currency": EUR}
    pending = await h.client.get("/billing/operator/reviews", headers=operator(h))
    assert pending.json() == []  # nothing for the operator to decide
    r = await decide(h, event.session_id, {"decision": "void"}, "c1")
    assert (r.status_code, r.json()["reason"]) == (409, "review_not_held")
    assert await h.wallet(driver) == (AUTHORISED_MAX - PLAUSIBLE_MINOR,) * 2
    station = await station_revenue(h)
    assert (station["sessions"], station["pending_review_sessions"]) == (1, 0)
    assert station["total_incl_vat"]["amount_minor"] == PLAUSIBLE_MINOR
    receipt = (
        await h.client.get(f"/billing/receipts/{event.session_id}", headers=h.headers(driver))
    ).json()
    assert receipt["review"] == "corrected"
    assert any("dated before you authorised it" in note for note in receipt["notes"])


async def test_an_approval_charges_exactly_the_stated_total(h: Harness) -> None:
    driver, event, flag = await held_and_billed(h)
    sid = event.session_id
    foreign = h.headers(uuid.uuid4(), roles=["operator"], organisation_id=uuid.uuid4())
    r = await h.client.post(
        f"/billing/operator/reviews/{sid}",
        json={"decision": "void"},
        headers={**foreign, "Idempotency-Key": "f"},
    )
    assert (r.status_code, r.json()["reason"]) == (404, "not_found")
    too_much = {
        "decision": "approve",
        "amount": {"amount_minor": AUTHORISED_MAX + 1, "currency": EUR},
    }
    r = await decide(h, sid, too_much, "a0")
    assert (r.status_code, r.json()["reason"]) == (422, "above_authorised_max")
    r = await decide(
        h, sid, {"decision": "approve", "amount": {"amount_minor": "900", "currency": EUR}}, "a1"
    )
    assert r.status_code == 422
    r = await decide(h, sid, {"decision": "approve"}, "a2")
    assert (r.status_code, r.json()["reason"]) == (422, "invalid_decision")
    assert await h.wallet(driver) == (AUTHORISED_MAX - PLAUSIBLE_MINOR,) * 2

    approve = {
        "decision": "approve",
        "amount": {"amount_minor": 900, "currency": EUR},
        "note": "meter replaced",
    }
    for _ in range(2):  # a retry with the same key is the same decision
        r = await decide(h, sid, approve, "a3")
        assert r.status_code == 200, r.text
    decided = r.json()
    assert decided["status"] == "approved"
    assert decided["approved_total"]["amount_minor"] == 900
    assert decided["charged"]["amount_minor"] == 900 - PLAUSIBLE_MINOR
    assert decided["refunded"]["amount_minor"] == 0
    assert await h.wallet(driver) == (AUTHORISED_MAX - 900,) * 2
    [reviewed] = await h.emitted("SessionReviewed", sid)
    assert reviewed["decision"] == "approved"
    assert reviewed["billed_before"]["amount_minor"] == PLAUSIBLE_MINOR
    assert reviewed["charged"]["amount_minor"] == 900 - PLAUSIBLE_MINOR
    outbox = h.app.state.runtime.outbox_tables.outbox
    async with h.database.read() as session:
        envelopes = (await session.execute(select(outbox.c.envelope))).scalars().all()
    [envelope] = [e for e in envelopes if e["type"] == "SessionReviewed"]
    assert envelope["causation_id"] == str(flag.event_id)
    assert envelope["correlation_id"] == str(flag.correlation_id)

    station = await station_revenue(h)
    assert (station["sessions"], station["pending_review_sessions"]) == (1, 0)
    assert station["total_incl_vat"]["amount_minor"] == 900
    assert station["revenue_excl_vat"]["amount_minor"] + station["vat"]["amount_minor"] == 900
    receipt = (await h.client.get(f"/billing/receipts/{sid}", headers=h.headers(driver))).json()
    assert receipt["total_incl_vat"]["amount_minor"] == 900
    assert receipt["review"] == "approved"
    assert any("approved a total of" in note for note in receipt["notes"])
    assert receipt["funding_split"]["wallet"]["amount_minor"] == 900
    books = await h.balances()
    assert books[f"revenue:EUR:{ORG}"][3] + books[f"vat_payable:EUR:{ORG}"][3] == 900
    await assert_books_balance(h, sid)
    again = await decide(h, sid, {"decision": "void"}, "a4")
    assert (again.status_code, again.json()["reason"]) == (409, "review_decided")


async def test_a_void_gives_back_exactly_what_was_billed(h: Harness) -> None:
    driver, event, _ = await held_and_billed(h)
    sid = event.session_id
    r = await decide(h, sid, {"decision": "void", "note": "station fault"}, "v1")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "voided"
    assert r.json()["refunded"]["amount_minor"] == PLAUSIBLE_MINOR
    assert await h.wallet(driver) == (AUTHORISED_MAX, AUTHORISED_MAX)
    [reviewed] = await h.emitted("SessionReviewed", sid)
    assert reviewed["decision"] == "voided"
    assert reviewed["approved_total"]["amount_minor"] == 0
    assert reviewed["refunded"]["amount_minor"] == PLAUSIBLE_MINOR
    receipt = (await h.client.get(f"/billing/receipts/{sid}", headers=h.headers(driver))).json()
    assert receipt["review"] == "voided"
    assert receipt["funding_split"]["refunded"]["amount_minor"] == PLAUSIBLE_MINOR
    station = await station_revenue(h)
    assert station["pending_review_sessions"] == 0
    assert station["total_incl_vat"]["amount_minor"] - station["refunded"]["amount_minor"] == 0
    books = await h.balances()
    revenue, vat = books[f"revenue:EUR:{ORG}"], books[f"vat_payable:EUR:{ORG}"]
    assert revenue[3] - revenue[1] == 0 and vat[3] - vat[1] == 0
    await assert_books_balance(h, sid)


async def test_a_decision_before_the_plausible_part_is_billed_waits(h: Harness) -> None:
    driver, event = await authorised(h)
    await h.publish(flagged(event))

    async def pending() -> bool:
        r = await h.client.get("/billing/operator/reviews", headers=operator(h))
        return any(x["session_id"] == str(event.session_id) for x in r.json())

    await eventually(pending, what="billing keeps the flagged session")
    r = await decide(h, event.session_id, {"decision": "void"}, "w1")
    assert (r.status_code, r.json()["reason"]) == (409, "review_not_billed_yet")
    assert await h.wallet(driver) == (AUTHORISED_MAX, 0)  # the hold stands
