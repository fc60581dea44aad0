"""The processor contract for the simulation, and the simulation's expiring holds."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from billing_kit import Clock
from billing_svc.processor import (
    CHALLENGE_PATH,
    CardPayment,
    IntentState,
    PaymentProcessor,
    ProcessorError,
    SimulatedProcessor,
)
from processor_contract import RETURN_URL, ProcessorContract


class TestSimulatedProcessor(ProcessorContract):
    @pytest.fixture
    def processor(self) -> PaymentProcessor:
        return SimulatedProcessor(webhook_secret=self.webhook_secret)

    async def entered_card(self, processor: PaymentProcessor) -> str:
        assert isinstance(processor, SimulatedProcessor)
        return processor.tokenise("4242 4242 4242 4242", "12/40", "123").token

    async def authenticate(
        self, processor: PaymentProcessor, state: IntentState, *, complete: bool
    ) -> None:
        # The simulated bank's page, as a browser would answer it (billing-svc serves it).
        assert isinstance(processor, SimulatedProcessor) and state.redirect_url
        assert state.redirect_url.startswith(CHALLENGE_PATH + "/")
        challenge = state.redirect_url.rsplit("/", 1)[1]
        assert processor.challenge(challenge) is not None
        back = processor.answer_challenge(challenge, authenticated=complete)
        assert back == RETURN_URL
        assert processor.challenge(challenge) is None  # answered once

    async def test_holds_expire(self) -> None:
        clock = Clock()
        processor = SimulatedProcessor(clock=clock)
        customer = await processor.create_customer(uuid.uuid4(), idempotency_key="c")
        await processor.attach_payment_method(customer, "pm_card_visa", idempotency_key="a")
        hold = await processor.authorize(
            CardPayment(customer, "pm_card_visa", 5000, "EUR"), idempotency_key="h"
        )
        clock.offset = timedelta(days=7, seconds=1)
        with pytest.raises(ProcessorError) as error:
            await processor.capture(hold.intent_id, 100, idempotency_key="x")
        assert error.value.code == "payment_intent_unexpected_state"

    async def test_every_mutating_call_carried_an_idempotency_key(self) -> None:
        processor = SimulatedProcessor()
        customer = await processor.create_customer(uuid.uuid4(), idempotency_key="c")
        await processor.attach_payment_method(customer, "pm_card_visa", idempotency_key="a")
        assert all(key for _, key in processor.calls)
