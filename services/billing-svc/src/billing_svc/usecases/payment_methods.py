"""Payment methods: tokenised cards saved at the processor (never card numbers)."""

from __future__ import annotations

import contextlib
import uuid

from plugpay_events.contracts.billing import (
    PaymentMethodAdded,
    PaymentMethodExpiring,
    PaymentMethodRemoved,
)
from plugpay_events.envelope import Event
from plugpay_platform.errors import Refusal
from sqlalchemy.ext.asyncio import AsyncSession

from billing_svc.domain import card_expiry_due, derived_id
from billing_svc.processor import ProcessorError
from billing_svc.repository import BillingRepository, PaymentMethod
from billing_svc.usecases.common import Billing, processor_customer, refuse_after_declines


async def add_payment_method(
    billing: Billing,
    session: AsyncSession,
    user_id: uuid.UUID,
    token: str,
    client_address: str | None = None,
    *,
    guest: bool = False,
) -> tuple[PaymentMethod, list[Event]]:
    """Save a tokenised card; a guest (one session, no account) holds exactly one."""
    repo = BillingRepository(session)
    profile = await repo.lock_profile(user_id)
    method_id = derived_id("payment-method", user_id, token)
    existing = await repo.method(user_id, method_id)
    if existing is not None:
        return existing, []
    if guest and await repo.methods(user_id):
        # A guest's checkout pays one session with one card: another card is a new checkout.
        raise Refusal("guest_card_exists", "this checkout already has its card", status_code=409)
    await refuse_after_declines(billing, repo, user_id, client_address)
    customer = await processor_customer(billing, repo, profile)
    try:
        card = await billing.processor.attach_payment_method(
            customer, token, idempotency_key=f"attach:{user_id}:{token}"
        )
    except ProcessorError as error:
        raise Refusal("payment_method_invalid", error.message, status_code=422) from error
    first = not await repo.methods(user_id)
    method = PaymentMethod(
        id=method_id,
        user_id=user_id,
        processor_token=card.token,
        brand=card.brand,
        last4=card.last4,
        exp_month=card.exp_month,
        exp_year=card.exp_year,
        is_default=first,
    )
    await repo.add_method(method)
    stored = await repo.method(user_id, method_id)
    if stored is None:
        # The id was used by a card removed earlier: a re-added card gets a fresh id.
        method = PaymentMethod(**{**method.__dict__, "id": uuid.uuid4()})
        await repo.add_method(method)
    return method, [
        PaymentMethodAdded(
            user_id=user_id,
            payment_method_id=method.id,
            brand=method.brand,
            last4=method.last4,
            added_at=billing.clock(),
        )
    ]


async def remove_payment_method(
    billing: Billing, session: AsyncSession, user_id: uuid.UUID, method_id: uuid.UUID
) -> list[Event]:
    repo = BillingRepository(session)
    await repo.lock_profile(user_id)
    method = await repo.method(user_id, method_id)
    if method is None:
        raise Refusal("not_found", "no such payment method", status_code=404)
    # Already gone at the processor: we still forget it.
    with contextlib.suppress(ProcessorError):
        await billing.processor.detach_payment_method(
            method.processor_token, idempotency_key=f"detach:{method.id}"
        )
    await repo.remove_method(user_id, method_id)
    remaining = await repo.methods(user_id)
    if method.is_default and remaining:
        await repo.set_default(user_id, remaining[0].id)
    return [
        PaymentMethodRemoved(
            user_id=user_id, payment_method_id=method_id, removed_at=billing.clock()
        )
    ]


async def set_default_method(
    billing: Billing, session: AsyncSession, user_id: uuid.UUID, method_id: uuid.UUID
) -> None:
    repo = BillingRepository(session)
    await repo.lock_profile(user_id)
    if await repo.method(user_id, method_id) is None:
        raise Refusal("not_found", "no such payment method", status_code=404)
    await repo.set_default(user_id, method_id)


async def notice_expiring_cards(
    billing: Billing, session: AsyncSession, limit: int = 500
) -> list[Event]:
    """``PaymentMethodExpiring`` once per saved card that expires within the notice period
    (run by the sweeper)."""
    repo = BillingRepository(session)
    now = billing.clock()
    events: list[Event] = []
    for card in await repo.cards_with_expiry_unnoticed(limit):
        if not card_expiry_due(card.exp_month, card.exp_year, now):
            # ordered by expiry: every later card is further away
            break
        await repo.mark_expiry_noticed(card.id, now)
        events.append(
            PaymentMethodExpiring(
                user_id=card.user_id,
                payment_method_id=card.id,
                brand=card.brand,
                last4=card.last4,
                exp_month=card.exp_month,
                exp_year=card.exp_year,
                is_default=card.is_default,
                noticed_at=now,
            )
        )
    return events
