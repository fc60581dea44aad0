"""The processor contract for the simulation, and the simulation's expiring holds."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from billing_kit import Clock
from billing_svc.processor import PaymentProcessor, ProcessorError, SimulatedProcessor
from processor_contract import ProcessorContract


class TestSimulatedProcessor(ProcessorContract):
    @pytest.fixture
    def processor(self) -> PaymentProcessor:
        return SimulatedProcessor(webhook_secret=self.webhook_secret)

    async def test_holds_expire(self) -> None:
        clock = Clock()
        processor = SimulatedProcessor(clock=clock)
        customer = await processor.create_customer(uuid.uuid4(), idempotency_key="c")
        await processor.attach_payment_method(customer, "pm_card_visa", idempotency_key="a")
        hold = await processor.authorize(customer, "pm_card_visa", 5000, "EUR", idempotency_key="h")
        clock.offset = timedelta(days=7, seconds=1)
        with pytest.raises(ProcessorError) as error:
            await processor.capture(hold.intent_id, 100, idempotency_key="x")
        assert error.value.code == "payment_intent_unexpected_state"

    async def test_every_mutating_call_carried_an_idempotency_key(self) -> None:
        processor = SimulatedProcessor()
        customer = await processor.create_customer(uuid.uuid4(), idempotency_key="c")
        await processor.attach_payment_method(customer, "pm_card_visa", idempotency_key="a")
        assert all(key for _, key in processor.calls)
