"""The Stripe adapter (official SDK) against Stripe's stripe-mock."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import stripe
from billing_svc.processor import PaymentProcessor
from billing_svc.stripe_processor import StripeProcessor
from processor_contract import ProcessorContract
from stripe_mock import stripe_mock


class RecordingClient(stripe.HTTPXClient):
    """Records every request's method, path and idempotency key."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[tuple[str, str, str | None]] = []

    async def request_async(
        self, method: str, url: str, headers: Any, post_data: Any = None
    ) -> Any:
        key = next((v for k, v in (headers or {}).items() if k.lower() == "idempotency-key"), None)
        self.requests.append((method.upper(), url, key))
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
