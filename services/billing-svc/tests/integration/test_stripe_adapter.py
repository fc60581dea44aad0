"""The Stripe adapter (official SDK) against Stripe's stripe-mock."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import stripe
from billing_svc.processor import PaymentDeclined, PaymentProcessor
from billing_svc.stripe_processor import StripeProcessor
from processor_contract import ProcessorContract
from stripe_mock import stripe_mock


class RecordingClient(stripe.HTTPXClient):
    """Records every request's method, path and idempotency key."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[tuple[str, str, str | None]] = []
        self.bodies: list[str] = []

    async def request_async(
        self, method: str, url: str, headers: Any, post_data: Any = None
    ) -> Any:
        key = next((v for k, v in (headers or {}).items() if k.lower() == "idempotency-key"), None)
        self.requests.append((method.upper(), url, key))
        self.bodies.append(post_data.decode() if isinstance(post_data, bytes) else str(post_data))
        return await super().request_async(method, url, headers, post_data)


@pytest.fixture(scope="module")
def stripe_mock_url() -> Iterator[str]:
    with stripe_mock() as url:
        yield url


class TestStripeProcessorOnStripeMock(ProcessorContract):
    stateful = False

    @pytest.fixture
    def recorder(self) -> RecordingClient:
        return RecordingClient()

    @pytest.fixture
    def processor(self, stripe_mock_url: str, recorder: RecordingClient) -> PaymentProcessor:
        return StripeProcessor(
            "sk_test_plugpay",
            webhook_secret=self.webhook_secret,
            api_base=stripe_mock_url,
            check_intent_status=False,
            http_client=recorder,
            max_network_retries=0,
        )

    async def test_every_post_carries_an_idempotency_key(
        self, processor: PaymentProcessor, recorder: RecordingClient
    ) -> None:
        await self.test_hold_then_partial_capture(processor)
        await self.test_charge_and_partial_refund(processor)
        posts = [r for r in recorder.requests if r[0] == "POST"]
        assert len(posts) >= 6
        assert all(key for _, _, key in posts), posts
        paths = {url.split("/v1/", 1)[1].split("?")[0] for _, url, _ in posts}
        assert "customers" in paths and "payment_intents" in paths and "refunds" in paths


async def test_an_intent_the_cardholder_must_still_act_on_is_declined(
    stripe_mock_url: str,
) -> None:
    # stripe-mock answers every intent with status requires_payment_method: neither a hold nor
    # a payment, so both must be refused; only the hold asks for manual capture.
    recorder = RecordingClient()
    processor = StripeProcessor(
        "sk_test_plugpay",
        webhook_secret="",
        api_base=stripe_mock_url,
        http_client=recorder,
        max_network_retries=0,
    )
    customer = await processor.create_customer(uuid.uuid4(), idempotency_key="c-1")
    with pytest.raises(PaymentDeclined) as held:
        await processor.authorize(customer, "pm_card_visa", 500, "EUR", idempotency_key="a-1")
    with pytest.raises(PaymentDeclined) as paid:
        await processor.charge(customer, "pm_card_visa", 500, "EUR", idempotency_key="p-1")
    assert held.value.code == paid.value.code == "authentication_required"
    hold_body, charge_body = recorder.bodies[-2:]
    assert "capture_method=manual" in hold_body and "off_session=true" in hold_body
    assert "capture_method" not in charge_body and "off_session=true" in charge_body
    assert "currency=eur" in hold_body and "currency=eur" in charge_body
