"""One contract suite for the payment-processor port, subclassed once per adapter.

``stateful`` adapters (the simulation, real Stripe) also prove Stripe's state rules: declines,
captures never above the hold, holds that expire, idempotent replays. stripe-mock is stateless
(static fixtures), so against it the suite proves the requests are valid Stripe API calls, that
each carries an idempotency key, and that webhook signatures follow Stripe's scheme.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest
from billing_svc.processor import (
    CardPayment,
    IntentState,
    InvalidWebhook,
    PaymentDeclined,
    PaymentProcessor,
    ProcessorError,
    sign_webhook,
)

RETURN_URL = "https://plugpay.example/app/#/guest"


class ProcessorContract:
    stateful = True
    webhook_secret = "whsec_contract"

    async def authenticate(
        self, processor: PaymentProcessor, state: IntentState, *, complete: bool
    ) -> None:
        """What the cardholder does on the bank's page at ``state.redirect_url``."""
        pytest.skip("this adapter's 3-D Secure page needs a person (or Stripe's browser)")

    @pytest.fixture
    def processor(self) -> PaymentProcessor:
        raise NotImplementedError

    async def entered_card(self, processor: PaymentProcessor) -> str:
        """4242 4242 4242 4242 typed into the processor's own card form (Stripe.js's
        createPaymentMethod with the publishable key; the simulated processor's form): its
        token."""
        raise NotImplementedError

    async def test_saves_a_card_entered_at_its_form(self, processor: PaymentProcessor) -> None:
        token = await self.entered_card(processor)
        assert token.startswith("pm_") and "4242424242424242" not in token
        customer = await processor.create_customer(uuid.uuid4(), idempotency_key=uuid.uuid4().hex)
        card = await processor.attach_payment_method(
            customer, token, idempotency_key=uuid.uuid4().hex
        )
        assert (card.token, card.brand, card.last4) == (token, "visa", "4242")

    async def _card(
        self, processor: PaymentProcessor, token: str = "pm_card_visa"
    ) -> tuple[str, str]:
        customer = await processor.create_customer(uuid.uuid4(), idempotency_key=uuid.uuid4().hex)
        card = await processor.attach_payment_method(
            customer, token, idempotency_key=uuid.uuid4().hex
        )
        return customer, card.token

    async def _on_session_hold(
        self, processor: PaymentProcessor, card: str = "pm_card_visa"
    ) -> IntentState:
        """A 5000 EUR hold on a newly saved ``card``, placed with the cardholder on the page."""
        customer, token = await self._card(processor, card)
        return await processor.authorize_on_session(
            CardPayment(customer, token, 5000, "EUR"),
            return_url=RETURN_URL,
            idempotency_key=uuid.uuid4().hex,
        )

    async def test_saves_a_card_by_token_with_brand_and_last4(
        self, processor: PaymentProcessor
    ) -> None:
        customer = await processor.create_customer(uuid.uuid4(), idempotency_key=uuid.uuid4().hex)
        card = await processor.attach_payment_method(
            customer, "pm_card_visa", idempotency_key=uuid.uuid4().hex
        )
        assert card.brand == "visa" and card.last4.isdigit() and len(card.last4) == 4
        await processor.detach_payment_method(card.token, idempotency_key=uuid.uuid4().hex)

    async def test_hold_then_partial_capture(self, processor: PaymentProcessor) -> None:
        customer, token = await self._card(processor)
        hold = await processor.authorize(
            CardPayment(customer, token, 5000, "EUR"), idempotency_key=uuid.uuid4().hex
        )
        assert hold.intent_id.startswith("pi_") and hold.amount == 5000
        assert (
            await processor.capture(hold.intent_id, 1234, idempotency_key=uuid.uuid4().hex) == 1234
        )

    async def test_hold_can_be_cancelled(self, processor: PaymentProcessor) -> None:
        customer, token = await self._card(processor)
        hold = await processor.authorize(
            CardPayment(customer, token, 5000, "EUR"), idempotency_key=uuid.uuid4().hex
        )
        await processor.cancel(hold.intent_id, idempotency_key=uuid.uuid4().hex)

    async def test_an_on_session_hold_is_read_back_and_cancelled(
        self, processor: PaymentProcessor
    ) -> None:
        state = await self._on_session_hold(processor)
        assert state.intent_id.startswith("pi_") and state.amount == 5000
        again = await processor.intent(state.intent_id)
        assert again.intent_id == state.intent_id
        if self.stateful:  # stripe-mock answers its fixture (another currency, no hold)
            assert state.held and again.held and state.redirect_url is None
            assert again.currency == "EUR"
        await processor.cancel(state.intent_id, idempotency_key=uuid.uuid4().hex)

    async def test_charge_and_partial_refund(self, processor: PaymentProcessor) -> None:
        customer, token = await self._card(processor)
        charge = await processor.charge(
            CardPayment(customer, token, 700, "EUR"), idempotency_key=uuid.uuid4().hex
        )
        assert charge.amount == 700
        refund = await processor.refund(charge.intent_id, 200, idempotency_key=uuid.uuid4().hex)
        assert refund.startswith("re_")

    def test_webhook_signature_is_verified(self, processor: PaymentProcessor) -> None:
        body = json.dumps(
            {
                "id": "evt_1",
                "object": "event",
                "type": "payment_intent.canceled",
                "data": {"object": {"id": "pi_1", "object": "payment_intent"}},
            }
        ).encode()
        event = processor.verify_webhook(body, sign_webhook(body, self.webhook_secret))
        assert (event.id, event.type, event.object_id) == (
            "evt_1",
            "payment_intent.canceled",
            "pi_1",
        )
        with pytest.raises(InvalidWebhook):
            processor.verify_webhook(body + b" ", sign_webhook(body, self.webhook_secret))
        with pytest.raises(InvalidWebhook):
            processor.verify_webhook(body, sign_webhook(body, "whsec_other"))
        with pytest.raises(InvalidWebhook):
            processor.verify_webhook(
                body, sign_webhook(body, self.webhook_secret, int(time.time()) - 3600)
            )
        with pytest.raises(InvalidWebhook):
            processor.verify_webhook(body, None)

    # --- Stripe's state rules (stateful adapters only)

    @pytest.fixture
    def stateful_only(self) -> None:
        if not self.stateful:
            pytest.skip("stripe-mock is stateless: it cannot decline, expire or remember keys")

    async def test_declined_cards(self, processor: PaymentProcessor, stateful_only: None) -> None:
        for token, code in (
            ("pm_card_chargeDeclined", "card_declined"),
            ("pm_card_chargeDeclinedInsufficientFunds", "insufficient_funds"),
            ("pm_card_authenticationRequired", "authentication_required"),
        ):
            customer, saved = await self._card(processor, token)
            with pytest.raises(PaymentDeclined) as declined:
                await processor.authorize(
                    CardPayment(customer, saved, 5000, "EUR"), idempotency_key=uuid.uuid4().hex
                )
            assert declined.value.code == code
            with pytest.raises(PaymentDeclined):
                await processor.charge(
                    CardPayment(customer, saved, 500, "EUR"), idempotency_key=uuid.uuid4().hex
                )

    async def test_capture_never_above_the_hold_and_only_once(
        self, processor: PaymentProcessor, stateful_only: None
    ) -> None:
        customer, token = await self._card(processor)
        hold = await processor.authorize(
            CardPayment(customer, token, 5000, "EUR"), idempotency_key=uuid.uuid4().hex
        )
        with pytest.raises(ProcessorError):
            await processor.capture(hold.intent_id, 5001, idempotency_key=uuid.uuid4().hex)
        await processor.capture(hold.intent_id, 5000, idempotency_key=uuid.uuid4().hex)
        with pytest.raises(ProcessorError):
            await processor.capture(hold.intent_id, 1, idempotency_key=uuid.uuid4().hex)
        with pytest.raises(ProcessorError):
            await processor.cancel(hold.intent_id, idempotency_key=uuid.uuid4().hex)

    async def test_same_idempotency_key_returns_the_first_result(
        self, processor: PaymentProcessor, stateful_only: None
    ) -> None:
        customer, token = await self._card(processor)
        key = uuid.uuid4().hex
        first = await processor.authorize(
            CardPayment(customer, token, 5000, "EUR"), idempotency_key=key
        )
        again = await processor.authorize(
            CardPayment(customer, token, 5000, "EUR"), idempotency_key=key
        )
        assert again.intent_id == first.intent_id
        with pytest.raises(ProcessorError):
            await processor.authorize(
                CardPayment(customer, token, 4000, "EUR"), idempotency_key=key
            )

    async def test_unknown_token_is_refused(
        self, processor: PaymentProcessor, stateful_only: None
    ) -> None:
        customer = await processor.create_customer(uuid.uuid4(), idempotency_key=uuid.uuid4().hex)
        with pytest.raises(ProcessorError):
            await processor.attach_payment_method(
                customer, "pm_does_not_exist", idempotency_key=uuid.uuid4().hex
            )

    async def test_a_card_whose_bank_asks_is_held_only_after_the_challenge(
        self, processor: PaymentProcessor, stateful_only: None
    ) -> None:
        state = await self._on_session_hold(processor, "pm_card_authenticationRequired")
        assert state.status == "requires_action" and state.redirect_url
        assert not state.held
        with pytest.raises(ProcessorError):  # nothing to capture before the cardholder acts
            await processor.capture(state.intent_id, 100, idempotency_key=uuid.uuid4().hex)
        await self.authenticate(processor, state, complete=True)
        held = await processor.intent(state.intent_id)
        assert held.held and held.amount == 5000 and held.redirect_url is None
        assert (
            await processor.capture(state.intent_id, 1234, idempotency_key=uuid.uuid4().hex) == 1234
        )

    async def test_a_failed_challenge_holds_nothing(
        self, processor: PaymentProcessor, stateful_only: None
    ) -> None:
        state = await self._on_session_hold(processor, "pm_card_authenticationRequired")
        await self.authenticate(processor, state, complete=False)
        refused = await processor.intent(state.intent_id)
        assert refused.status == "requires_payment_method" and refused.decline_code
        with pytest.raises(ProcessorError):
            await processor.capture(state.intent_id, 100, idempotency_key=uuid.uuid4().hex)
        await processor.cancel(state.intent_id, idempotency_key=uuid.uuid4().hex)
        assert (await processor.intent(state.intent_id)).status == "canceled"

    async def test_an_on_session_decline_is_refused(
        self, processor: PaymentProcessor, stateful_only: None
    ) -> None:
        with pytest.raises(PaymentDeclined) as declined:
            await self._on_session_hold(processor, "pm_card_chargeDeclined")
        assert declined.value.code == "card_declined"
