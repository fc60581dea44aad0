"""A guest's checkout: the card hold placed while the guest is on the page, before the scan.

"Pay by card and start" places the PaymentIntent (manual capture, the power class's hold, keyed
``checkout:<guest>``) with the cardholder present. Held at once, or after the bank's 3-D Secure
challenge in the guest's browser: back from it, the intent is read from the processor (the
browser's word is never taken). Only then the guest scans, and ``authorise`` uses this hold for
that session (no second hold). A hold no session took up is cancelled: the guest's "Cancel", or
the sweeper after ``CHECKOUT_TTL``.

A checkout is one state machine: ``requires_action`` -> ``held`` | ``refused``; ``held`` ->
``used`` (by the session) | ``released``; ``requires_action`` -> ``released`` too. A refused or
released checkout is final: another try is a new code, as another card is.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from plugpay_platform.errors import Refusal
from sqlalchemy.ext.asyncio import AsyncSession

from billing_svc.domain import decline_message
from billing_svc.processor import (
    UNCONFIRMED,
    CardPayment,
    IntentState,
    PaymentDeclined,
    ProcessorError,
)
from billing_svc.repository import BillingRepository, GuestCheckout
from billing_svc.usecases.common import (
    Billing,
    ProcessorCall,
    processor_customer,
    record_call,
    refuse_after_declines,
)

# Long enough to scan after paying; a hold nobody uses is released soon after.
CHECKOUT_TTL = timedelta(minutes=15)
LIVE = ("requires_action", "held")
# What the processors report for a failed 3-D Secure (the simulation; Stripe's error code).
AUTH_FAILURES = ("authentication_failed", "payment_intent_authentication_failure")


@dataclass(frozen=True)
class CheckoutAnswer:
    """``held``, or ``requires_action``: the guest's bank asks them at ``redirect_url``."""

    status: str
    amount: int
    currency: str
    redirect_url: str | None = None


def refusal(reason: str) -> Refusal:
    """A refused checkout in words (``reason``: what the checkout row keeps)."""
    if reason == "authentication_failed":
        return Refusal(
            reason,
            "Your bank did not confirm this payment (3-D Secure failed), so nothing was "
            "reserved on your card.",
            status_code=402,
        )
    if reason == "authentication_incomplete":
        return Refusal(
            reason,
            "The 3-D Secure check with your bank was not completed, so nothing was reserved "
            "on your card.",
            status_code=402,
        )
    if reason == "released":
        return Refusal(
            "checkout_released",
            "This checkout was cancelled; nothing is reserved.",
            status_code=409,
        )
    if reason == "used":
        return Refusal(
            "checkout_used",
            "This checkout paid for its session already: scan the charger's code again.",
            status_code=409,
        )
    return Refusal("payment_declined", decline_message(reason), status_code=402)


def outcome(state: IntentState) -> str:
    """What the processor's intent means for the checkout: ``held``, or why it is refused."""
    if state.held:
        return "held"
    if state.status == "requires_action":
        return "authentication_incomplete"  # back without finishing the bank's check
    if state.decline_code in (None, *AUTH_FAILURES):
        return "authentication_failed"
    return state.decline_code


def _answer(checkout: GuestCheckout) -> CheckoutAnswer | Refusal:
    if checkout.status in ("held", "used"):
        return CheckoutAnswer("held", checkout.amount, checkout.currency)
    if checkout.status == "requires_action":
        return CheckoutAnswer(
            "requires_action", checkout.amount, checkout.currency, checkout.redirect_url
        )
    return refusal(checkout.reason or checkout.status)


async def _cancel(repo: BillingRepository, checkout: GuestCheckout) -> list[ProcessorCall]:
    if checkout.intent_id is None:
        return []
    key = cancel_key(checkout.user_id)
    return [await record_call(repo, key, "cancel", key, intent_id=checkout.intent_id)]


def cancel_key(user_id: uuid.UUID) -> str:
    """The journalled cancel of a guest's checkout hold (its key is also its reference)."""
    return f"cancel:checkout:{user_id}"


async def start(
    billing: Billing,
    session: AsyncSession,
    user_id: uuid.UUID,
    *,
    max_power_w: int | None,
    currency: str,
    return_url: str,
    client_address: str | None,
) -> CheckoutAnswer | Refusal:
    """Place the guest's hold on its saved card; again, the first answer (one per guest).

    A refusal is returned, not raised: the refused checkout and the decline count must be
    committed (card testing)."""
    repo = BillingRepository(session)
    profile = await repo.lock_profile(user_id)
    existing = await repo.guest_checkout(user_id, lock=True)
    if existing is not None:
        return _answer(existing)
    card = await repo.default_method(user_id)
    if card is None:
        raise Refusal("no_payment_method", "save the card first", status_code=409)
    await refuse_after_declines(billing, repo, user_id, client_address)
    holds = billing.policy.holds
    # The charger's class as the guest's page was quoted; unknown: the larger class. A smaller
    # hold than the charger's class only buys less charging (the limits follow the hold).
    amount = holds.card_hold(max_power_w) if max_power_w else holds.card_hold_dc
    customer = await processor_customer(billing, repo, profile)
    now = billing.clock()
    checkout = GuestCheckout(user_id, card.id, None, amount, currency, "refused")
    try:
        state = await billing.processor.authorize_on_session(
            CardPayment(
                customer, card.processor_token, amount, currency, {"guest_checkout": str(user_id)}
            ),
            return_url=return_url,
            idempotency_key=f"checkout:{user_id}",
        )
    except PaymentDeclined as declined:
        await repo.record_decline(user_id, client_address, declined.code, now)
        await repo.insert_guest_checkout(
            GuestCheckout(**{**checkout.__dict__, "reason": declined.code})
        )
        return refusal(declined.code)
    except ProcessorError as error:
        raise Refusal(
            "payment_unavailable",
            f"The card could not be checked ({error.code}); try again.",
            status_code=409,
        ) from error
    status = "requires_action" if state.status == "requires_action" else "held"
    await repo.insert_guest_checkout(
        GuestCheckout(
            user_id,
            card.id,
            state.intent_id,
            state.amount,
            currency,
            status,
            redirect_url=state.redirect_url,
            expires_at=state.expires_at,
        )
    )
    return CheckoutAnswer(status, state.amount, currency, state.redirect_url)


async def confirm(
    billing: Billing, session: AsyncSession, user_id: uuid.UUID, client_address: str | None
) -> tuple[CheckoutAnswer | Refusal, list[ProcessorCall]]:
    """Back from the bank's check: what the processor says now decides (a refused intent is
    cancelled after the commit, so nothing stays reserved)."""
    repo = BillingRepository(session)
    await repo.lock_profile(user_id)
    checkout = await repo.guest_checkout(user_id, lock=True)
    if checkout is None:
        raise Refusal("not_found", "no checkout to confirm", status_code=404)
    if checkout.status != "requires_action" or checkout.intent_id is None:
        return _answer(checkout), []
    state = await billing.processor.intent(checkout.intent_id)
    result = outcome(state)
    if result == "held":
        await repo.update_guest_checkout(
            user_id, status="held", redirect_url=None, expires_at=state.expires_at
        )
        return CheckoutAnswer("held", checkout.amount, checkout.currency), []
    await repo.update_guest_checkout(user_id, status="refused", reason=result)
    await repo.record_decline(user_id, client_address, result, billing.clock())
    calls = await _cancel(repo, checkout) if state.status in UNCONFIRMED else []
    return refusal(result), calls


async def release(
    billing: Billing, session: AsyncSession, user_id: uuid.UUID
) -> list[ProcessorCall]:
    """The guest cancels before any session took the hold: cancel it after the commit."""
    repo = BillingRepository(session)
    await repo.lock_profile(user_id)
    checkout = await repo.guest_checkout(user_id, lock=True)
    if checkout is None or checkout.status not in LIVE:
        return []
    await repo.update_guest_checkout(user_id, status="released", reason="released")
    return await _cancel(repo, checkout)


async def release_unused(
    billing: Billing, session: AsyncSession, limit: int = 100
) -> list[ProcessorCall]:
    """The sweeper: holds (or unfinished challenges) no session took up within the TTL."""
    repo = BillingRepository(session)
    calls: list[ProcessorCall] = []
    for user_id in await repo.unused_guest_checkouts(billing.clock() - CHECKOUT_TTL, limit):
        calls += await release(billing, session, user_id)
    return calls


async def for_session(
    repo: BillingRepository, user_id: uuid.UUID, currency: str
) -> tuple[GuestCheckout | None, Refusal | None, list[ProcessorCall]]:
    """Authorisation's look at the payer's checkout (its profile row already locked): the
    hold to use, or why the session is denied (an unconfirmed or refused checkout, another
    currency: released then). (None, None): no checkout, the ordinary rules decide."""
    checkout = await repo.guest_checkout(user_id, lock=True)
    if checkout is None:
        return None, None, []
    if checkout.status == "held" and checkout.currency == currency:
        return checkout, None, []
    if checkout.status == "held":
        denial = Refusal(
            "payment_declined", "The card was reserved in another currency.", status_code=402
        )
    elif checkout.status == "requires_action":
        denial = refusal("authentication_incomplete")
    else:
        return None, refusal(checkout.reason or checkout.status), []
    await repo.update_guest_checkout(user_id, status="released", reason=denial.reason)
    return None, denial, await _cancel(repo, checkout)
