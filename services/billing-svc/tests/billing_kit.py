"""Builders and an app harness shared by billing-svc's tests."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from billing_svc.app import create_app
from billing_svc.domain import AccountKind, TransferKind, TransferRequest, account_id
from billing_svc.processor import SimulatedProcessor
from billing_svc.repository import BillingRepository, LedgerRepository
from billing_svc.settings import Settings
from billing_svc.usecases import payment_methods
from fastapi import FastAPI
from plugpay_events.contracts.sessions import (
    SessionAbandoned,
    SessionCostCalculated,
    SessionPriced,
)
from plugpay_events.envelope import Envelope, Event
from plugpay_events.types import Money
from plugpay_platform.settings import PlatformSettings
from plugpay_tariffs import SessionUsage, Tariff, calculate_cost
from plugpay_testing import eventually
from plugpay_testing.tokens import TokenFactory
from sqlalchemy import select

ORG = uuid.UUID("00000000-0000-4000-8000-00000000000a")
TZ = "Europe/Berlin"


def tariff(kwh_price: str = "0.40", vat: str = "19", currency: str = "EUR") -> Tariff:
    return Tariff.model_validate(
        {
            "id": "t-1",
            "version": 1,
            "currency": currency,
            "elements": [
                {"price_components": [{"type": "ENERGY", "price": kwh_price, "vat": vat}]}
            ],
        }
    )


def priced(
    user_id: uuid.UUID,
    session_id: uuid.UUID | None = None,
    *,
    free: bool = False,
    max_power_w: int = 11_000,
    kwh_price: str = "0.40",
) -> SessionPriced:
    return SessionPriced(
        session_id=session_id or uuid.uuid4(),
        station_id="ST-1",
        connector_id=1,
        user_id=user_id,
        station_organisation_id=ORG,
        tariff=tariff(kwh_price),
        time_zone=TZ,
        max_power_w=max_power_w,
        free_of_charge=free,
        priced_at=datetime.now(UTC),
    )


def cost_for(event: SessionPriced, energy_wh: int) -> SessionCostCalculated:
    start = datetime.now(UTC) - timedelta(hours=1)
    usage = SessionUsage.linear(start, energy_wh, start + timedelta(minutes=30))
    breakdown = calculate_cost(event.tariff, usage, event.time_zone)
    return SessionCostCalculated(
        session_id=event.session_id,
        user_id=event.user_id,
        station_id=event.station_id,
        total=Money(amount_minor=breakdown.total_incl_vat, currency=breakdown.currency),
        breakdown=breakdown,
        calculated_at=datetime.now(UTC),
    )


def abandoned(event: SessionPriced, reason: str) -> SessionAbandoned:
    """The gateway gave up on ``event``'s session before it started."""
    return SessionAbandoned(
        session_id=event.session_id,
        station_id=event.station_id,
        connector_id=event.connector_id,
        reason=reason,
        abandoned_at=datetime.now(UTC),
    )


def wrap(event: Event) -> Envelope:
    return Envelope.wrap(event, producer="test")


@dataclass
class Clock:
    offset: timedelta = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


@dataclass
class Harness:
    app: FastAPI
    client: httpx.AsyncClient
    tokens: TokenFactory
    processor: SimulatedProcessor
    clock: Clock
    sent: list[Envelope] = field(default_factory=list)

    @property
    def database(self) -> Any:
        return self.app.state.runtime.database

    @property
    def billing(self) -> Any:
        return self.app.state.billing

    async def publish(self, *events: Event | Envelope) -> list[Envelope]:
        envelopes = [e if isinstance(e, Envelope) else wrap(e) for e in events]
        await self.app.state.runtime.bus.publish(envelopes)
        self.sent += envelopes
        return envelopes

    async def emitted(
        self, type_: str, aggregate_id: uuid.UUID | str | None = None
    ) -> list[dict[str, Any]]:
        outbox = self.app.state.runtime.outbox_tables.outbox
        query = select(outbox.c.envelope).order_by(outbox.c.id)
        async with self.database.read() as session:
            rows = (await session.execute(query)).scalars().all()
        return [
            r["payload"]
            for r in rows
            if r["type"] == type_
            and (aggregate_id is None or r["aggregate_id"] == str(aggregate_id))
        ]

    async def wait_for(
        self, type_: str, aggregate_id: uuid.UUID | str, count: int = 1
    ) -> dict[str, Any]:
        async def probe() -> list[dict[str, Any]] | None:
            found = await self.emitted(type_, aggregate_id)
            return found if len(found) >= count else None

        found = await eventually(probe, what=f"{type_} for {aggregate_id}")
        return found[count - 1]

    async def wallet(self, user_id: uuid.UUID, currency: str = "EUR") -> tuple[int, int]:
        """(balance, available) of a driver's wallet."""
        async with self.database.read() as session:
            account = await LedgerRepository(session).account(
                account_id(AccountKind.WALLET, currency, user_id)
            )
        return (account.balance, account.available) if account else (0, 0)

    async def balances(self) -> dict[str, tuple[int, int, int, int]]:
        async with self.database.read() as session:
            return {
                a.code: (a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted)
                for a in await LedgerRepository(session).all_accounts()
            }

    def headers(self, user_id: uuid.UUID, key: str | None = None, **claims: Any) -> dict[str, str]:
        headers = self.tokens.headers(user_id=user_id, **claims)
        if key:
            headers["Idempotency-Key"] = key
        return headers


async def card_session(h: Harness) -> tuple[uuid.UUID, SessionPriced, dict[str, Any]]:
    """A scan by a driver with a saved visa card and an empty wallet: the driver, the event and
    its SessionAuthorized (a card hold)."""
    driver = uuid.uuid4()
    async with h.database.write() as session:
        await payment_methods.add_payment_method(h.billing, session, driver, "pm_card_visa")
    event = priced(driver)
    await h.publish(event)
    authorized = await h.wait_for("SessionAuthorized", event.session_id)
    assert authorized["funding"] == "card"
    return driver, event, authorized


@asynccontextmanager
async def running(
    database_url: str,
    topic_prefix: str,
    *,
    kafka: str | None = None,
    processor: SimulatedProcessor | None = None,
    **overrides: Any,
) -> AsyncIterator[Harness]:
    tokens = TokenFactory()
    clock = Clock()
    processor = processor or SimulatedProcessor()
    processor.clock = clock
    settings = Settings(
        database_url=database_url,  # type: ignore[arg-type]
        platform=PlatformSettings(
            eventlog_database_url=None if kafka else database_url,
            topic_prefix=topic_prefix,
            kafka_bootstrap=kafka,
            # A busy machine's event-loop lag must not answer a top-up with 503 busy: these
            # tests are about money, not admission (plugpay_platform's own tests cover that).
            admission_max_loop_lag_ms=0,
        ),
        **overrides,
    )
    app = create_app(settings, key_source=tokens, processor=processor, clock=clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://billing") as client:
            yield Harness(app, client, tokens, processor, clock)


async def seed_wallet(session: Any, driver: uuid.UUID, amount: int, currency: str = "EUR") -> None:
    """Credit a driver's wallet with ``amount`` (no card on file), in the caller's transaction."""
    ledger = LedgerRepository(session)
    await BillingRepository(session).lock_profile(driver)
    wallet = await ledger.open(AccountKind.WALLET, currency, driver)
    promotions = await ledger.open(AccountKind.PROMOTIONS, currency)
    await ledger.create_transfer(
        TransferRequest(
            id=uuid.uuid4(),
            kind=TransferKind.SINGLE,
            amount=amount,
            currency=currency,
            code="promotional_credit",
            debit_account_id=promotions,
            credit_account_id=wallet,
            reference="test",
        )
    )
