"""A session held for review: the driver learns it (SessionFlagged names only the session; its
driver is known from SessionPriced) and learns the operator's decision (SessionReviewed). And a
card about to expire."""

from __future__ import annotations

import uuid
from typing import Literal

import pytest
from fastapi import FastAPI
from plugpay_events.contracts.billing import PaymentMethodExpiring
from plugpay_events.contracts.sessions import (
    MeterClaim,
    MeterJudgement,
    SessionFlagged,
    SessionPriced,
    SessionReviewed,
)
from plugpay_events.types import utc_now
from plugpay_testing import eventually

from ..events import eur, registered
from ..smtp_server import SmtpServer
from .conftest import publish
from .test_mail import handled, mail_rows

pytestmark = pytest.mark.infra

TARIFF = {
    "id": "t-1",
    "version": 1,
    "currency": "EUR",
    "elements": [{"price_components": [{"type": "ENERGY", "price": "0.40", "vat": "19"}]}],
}


def _priced(user: uuid.UUID) -> SessionPriced:
    return SessionPriced.model_validate(
        {
            "session_id": uuid.uuid4(),
            "station_id": "ST-7",
            "connector_id": 1,
            "user_id": user,
            "station_organisation_id": uuid.uuid4(),
            "tariff": TARIFF,
            "time_zone": "Europe/Berlin",
            "max_power_w": 11_000,
            "priced_at": utc_now(),
        }
    )


def _flagged(
    session_id: uuid.UUID, outcome: Literal["held", "corrected"] = "held"
) -> SessionFlagged:
    now = utc_now()
    return SessionFlagged(
        session_id=session_id,
        station_id="ST-7",
        connector_id=1,
        transaction_id="tx-1",
        judgement=MeterJudgement(
            outcome=outcome,
            reasons=("register_jump", "some_new_code"),
            claimed=MeterClaim(
                meter_start_wh=0,
                meter_stop_wh=16_500,
                energy_wh=16_500,
                started_at=now,
                ended_at=now,
            ),
            max_power_w=11_000,
            max_energy_wh=700,
        ),
        billed_energy_wh=650,
        flagged_at=now,
    )


async def test_held_and_reviewed_sessions_are_mailed_to_their_driver(
    app: FastAPI, smtp: SmtpServer
) -> None:
    user = uuid.uuid4()
    priced = _priced(user)
    await publish(app, registered(user, "hal@example.com"), priced, _flagged(priced.session_id))
    (held,) = await eventually(lambda: smtp.mailbox.to("hal@example.com"))
    assert held.message["Subject"] == "Your charging session at ST-7 is held for review"
    assert "the meter jumped by more than the charger can deliver" in held.text
    assert "- some new code" in held.text  # an unknown code, in words as far as it goes
    assert "The station claimed 16.500 kWh" in held.text and "(0.650 kWh)" in held.text

    await publish(
        app,
        SessionReviewed(
            session_id=priced.session_id,
            user_id=user,
            organisation_id=priced.station_organisation_id,
            decision="voided",
            approved_total=eur(0),
            billed_before=eur(31),
            charged=eur(0),
            refunded=eur(31),
            note="meter replaced",
            reviewed_by=uuid.uuid4(),
            reviewed_at=utc_now(),
        ),
    )
    await eventually(lambda: len(smtp.mailbox.to("hal@example.com")) == 2)
    reviewed = smtp.mailbox.to("hal@example.com")[1]
    assert reviewed.message["Subject"] == "Your charging session at ST-7 was reviewed: voided"
    assert "you pay nothing" in reviewed.text and "Refunded:       0.31 EUR" in reviewed.text
    assert "meter replaced" in reviewed.text


async def test_a_flag_for_a_session_never_priced_here_mails_nobody(
    app: FastAPI, smtp: SmtpServer
) -> None:
    user = uuid.uuid4()
    priced = _priced(user)
    await publish(app, registered(user, "ida@example.com"), priced)
    (stray,) = await publish(app, _flagged(uuid.uuid4()))
    await eventually(lambda: handled(app, "notification-svc.sessions", stray))
    assert await mail_rows(app) == []  # handled, and nothing queued for nobody
    await publish(app, _flagged(priced.session_id))
    (held,) = await eventually(lambda: smtp.mailbox.to("ida@example.com"))
    assert "held for review" in held.message["Subject"]
    assert len(await mail_rows(app)) == 1


async def test_a_correction_by_rule_is_not_mailed_as_held(app: FastAPI, smtp: SmtpServer) -> None:
    user = uuid.uuid4()
    priced = _priced(user)
    (_, _, corrected) = await publish(
        app, registered(user, "joe@example.com"), priced, _flagged(priced.session_id, "corrected")
    )
    await eventually(lambda: handled(app, "notification-svc.sessions", corrected))
    assert await mail_rows(app) == []  # the receipt names the correction; nothing is pending


async def test_an_expiring_card_is_mailed(app: FastAPI, smtp: SmtpServer) -> None:
    user = uuid.uuid4()
    now = utc_now()
    await publish(
        app,
        registered(user, "kim@example.com"),
        PaymentMethodExpiring(
            user_id=user,
            payment_method_id=uuid.uuid4(),
            brand="visa",
            last4="4242",
            exp_month=now.month,
            exp_year=now.year,
            is_default=True,
            noticed_at=now,
        ),
    )
    (mail,) = await eventually(lambda: smtp.mailbox.to("kim@example.com"))
    expiry = f"{now.month:02d}/{now.year}"
    assert mail.message["Subject"] == f"Your card visa •••• 4242 expires: {expiry}"
    assert f"expires at the end of {expiry}" in mail.text
    assert "https://plugpay.test/app/#/account" in mail.text
