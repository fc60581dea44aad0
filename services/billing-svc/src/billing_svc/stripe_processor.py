"""The Stripe adapter of the payment-processor port (official ``stripe`` SDK, async calls).

Holds are PaymentIntents with ``capture_method=manual`` confirmed off-session with the saved
card; capture may be partial (Stripe releases the rest); every mutating call sends an
idempotency key. A guest's hold is confirmed on-session with a ``return_url``: a card whose bank
wants 3-D Secure answers ``requires_action`` with ``next_action.redirect_to_url``, the page the
guest is sent to; the intent is read back from Stripe afterwards. Webhooks are verified with
Stripe's signature scheme before anything else.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import stripe
from stripe.params import PaymentIntentCreateParams

from billing_svc.processor import (
    Authorization,
    CardDetails,
    CardPayment,
    Charge,
    IntentState,
    InvalidWebhook,
    PaymentDeclined,
    PaymentProcessor,
    ProcessorError,
    WebhookEvent,
    parse_webhook_body,
)

STRIPE_HOLD_TTL = timedelta(days=7)


def _hold_expiry() -> datetime:
    """When a hold placed now ends at Stripe; an hour's margin on its 7 days covers clock skew."""
    return datetime.now(UTC) + STRIPE_HOLD_TTL - timedelta(hours=1)


def _error(error: stripe.StripeError) -> ProcessorError:
    code = getattr(error, "code", None) or "processor_error"
    message = getattr(error, "user_message", None) or str(error)
    if isinstance(error, stripe.CardError):
        decline = (getattr(error, "error", None) and error.error.decline_code) or code  # type: ignore[union-attr]
        return PaymentDeclined(str(decline), str(message))
    return ProcessorError(str(code), str(message))


def intent_state(intent: Any) -> IntentState:
    """What billing needs of a Stripe PaymentIntent: its status, the page a cardholder must visit
    (``next_action.redirect_to_url``) and why it was refused (``last_payment_error``)."""
    action = getattr(intent, "next_action", None)
    redirect = getattr(action, "redirect_to_url", None) if action is not None else None
    redirect_url = getattr(redirect, "url", None) if redirect is not None else None
    error = getattr(intent, "last_payment_error", None)
    decline = (
        (getattr(error, "decline_code", None) or getattr(error, "code", None)) if error else None
    )
    return IntentState(
        intent_id=str(intent.id),
        status=str(intent.status),
        amount=int(intent.amount),
        currency=str(intent.currency).upper(),
        redirect_url=str(redirect_url) if redirect_url else None,
        decline_code=str(decline) if decline else None,
        expires_at=_hold_expiry() if intent.status == "requires_capture" else None,
    )


class StripeProcessor(PaymentProcessor):
    name = "stripe"
    simulated = False

    def __init__(
        self,
        api_key: str,
        *,
        webhook_secret: str,
        api_base: str | None = None,
        max_network_retries: int = 2,
        check_intent_status: bool = True,
        http_client: stripe.HTTPClient | None = None,
    ) -> None:
        kwargs: dict[str, Any] = {
            "http_client": http_client or stripe.HTTPXClient(),
            "max_network_retries": max_network_retries,
        }
        if api_base:
            kwargs["base_addresses"] = {"api": api_base}
        self.client = stripe.StripeClient(api_key, **kwargs)
        self.webhook_secret = webhook_secret
        # stripe-mock answers with static fixtures (status requires_payment_method); only tests
        # against it turn this off, to exercise the request shapes without Stripe's state.
        self.check_intent_status = check_intent_status

    async def _call(self, coroutine: Any) -> Any:
        try:
            return await coroutine
        except stripe.StripeError as error:
            raise _error(error) from error

    async def _confirmed_intent(
        self,
        payment: CardPayment,
        idempotency_key: str,
        *,
        capture_manual: bool,
        return_url: str | None = None,
    ) -> Any:
        """A PaymentIntent for ``payment``, confirmed at once with the saved card: a hold (manual
        capture) or a payment; off-session, or with the cardholder on the page (``return_url``)."""
        params: PaymentIntentCreateParams = {
            "amount": payment.amount,
            "currency": payment.currency.lower(),
            "customer": payment.customer_id,
            "payment_method": payment.token,
            "confirm": True,
            "metadata": payment.metadata,
        }
        if capture_manual:
            params["capture_method"] = "manual"
        if return_url is None:
            params["off_session"] = True
        else:
            # The bank may ask the cardholder (3-D Secure) on a page Stripe names in
            # next_action, which sends them back here.
            params["return_url"] = return_url
        return await self._call(
            self.client.v1.payment_intents.create_async(
                params=params, options={"idempotency_key": idempotency_key}
            )
        )

    async def _off_session_intent(
        self, payment: CardPayment, idempotency_key: str, *, capture_manual: bool
    ) -> Any:
        """A hold or a payment made without the cardholder. One the cardholder must still act
        on (3-D Secure) is refused as declined."""
        intent = await self._confirmed_intent(
            payment, idempotency_key, capture_manual=capture_manual
        )
        done = ("requires_capture", "succeeded") if capture_manual else ("succeeded", "processing")
        if self.check_intent_status and intent.status not in done:
            raise PaymentDeclined("authentication_required", f"payment intent is {intent.status}")
        return intent

    async def create_customer(self, user_id: uuid.UUID, *, idempotency_key: str) -> str:
        customer = await self._call(
            self.client.v1.customers.create_async(
                params={"metadata": {"user_id": str(user_id)}},
                options={"idempotency_key": idempotency_key},
            )
        )
        return str(customer.id)

    async def attach_payment_method(
        self, customer_id: str, token: str, *, idempotency_key: str
    ) -> CardDetails:
        method = await self._call(
            self.client.v1.payment_methods.attach_async(
                token,
                params={"customer": customer_id},
                options={"idempotency_key": idempotency_key},
            )
        )
        card = method.card
        return CardDetails(
            token=str(method.id),
            brand=str(card.brand) if card else "card",
            last4=str(card.last4) if card else "0000",
            exp_month=int(card.exp_month) if card else None,
            exp_year=int(card.exp_year) if card else None,
        )

    async def detach_payment_method(self, token: str, *, idempotency_key: str) -> None:
        await self._call(
            self.client.v1.payment_methods.detach_async(
                token, options={"idempotency_key": idempotency_key}
            )
        )

    async def authorize(self, payment: CardPayment, *, idempotency_key: str) -> Authorization:
        intent = await self._off_session_intent(payment, idempotency_key, capture_manual=True)
        # The intent was created by this very call.
        return Authorization(str(intent.id), payment.amount, payment.currency, _hold_expiry())

    async def authorize_on_session(
        self, payment: CardPayment, *, return_url: str, idempotency_key: str
    ) -> IntentState:
        intent = await self._confirmed_intent(
            payment, idempotency_key, capture_manual=True, return_url=return_url
        )
        state = intent_state(intent)
        if self.check_intent_status and state.status not in ("requires_capture", "requires_action"):
            raise PaymentDeclined(
                state.decline_code or "card_declined", f"payment intent is {state.status}"
            )
        return state

    async def intent(self, intent_id: str) -> IntentState:
        return intent_state(
            await self._call(self.client.v1.payment_intents.retrieve_async(intent_id))
        )

    async def capture(self, intent_id: str, amount: int, *, idempotency_key: str) -> int:
        await self._call(
            self.client.v1.payment_intents.capture_async(
                intent_id,
                params={"amount_to_capture": amount},
                options={"idempotency_key": idempotency_key},
            )
        )
        return amount

    async def cancel(self, intent_id: str, *, idempotency_key: str) -> None:
        await self._call(
            self.client.v1.payment_intents.cancel_async(
                intent_id, options={"idempotency_key": idempotency_key}
            )
        )

    async def charge(self, payment: CardPayment, *, idempotency_key: str) -> Charge:
        intent = await self._off_session_intent(payment, idempotency_key, capture_manual=False)
        return Charge(str(intent.id), payment.amount, payment.currency)

    async def refund(self, intent_id: str, amount: int, *, idempotency_key: str) -> str:
        refund = await self._call(
            self.client.v1.refunds.create_async(
                params={"payment_intent": intent_id, "amount": amount},
                options={"idempotency_key": idempotency_key},
            )
        )
        return str(refund.id)

    def verify_webhook(self, payload: bytes, signature: str | None) -> WebhookEvent:
        if not self.webhook_secret:
            raise InvalidWebhook("webhooks_disabled", "no webhook secret is configured")
        try:
            stripe.WebhookSignature.verify_header(
                payload.decode("utf-8"), signature or "", self.webhook_secret, 300
            )
        except (stripe.SignatureVerificationError, UnicodeDecodeError) as error:
            raise InvalidWebhook("signature_invalid", str(error)) from error
        return parse_webhook_body(payload)
