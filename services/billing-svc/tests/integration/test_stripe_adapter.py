"""The Stripe adapter (official SDK) against Stripe's stripe-mock."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import stripe
from billing_svc.processor import CardPayment, PaymentDeclined, PaymentProcessor
from billing_svc.stripe_processor import StripeProcessor, intent_state
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


def recorded_processor(
    stripe_mock_url: str, recorder: RecordingClient, *, check_intent_status: bool = True
) -> StripeProcessor:
    """The adapter on stripe-mock, its requests recorded, without webhooks or retries."""
    return StripeProcessor(
        "sk_test_plugpay",
        webhook_secret="",
        api_base=stripe_mock_url,
        check_intent_status=check_intent_status,
        http_client=recorder,
        max_network_retries=0,
    )


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
        self.api_base = stripe_mock_url
        return StripeProcessor(
            "sk_test_plugpay",
            webhook_secret=self.webhook_secret,
            api_base=stripe_mock_url,
            check_intent_status=False,
            http_client=recorder,
            max_network_retries=0,
        )

    async def entered_card(self, processor: PaymentProcessor) -> str:
        # What Stripe.js does in the browser with the publishable key (stripe-mock takes only
        # secret-looking keys, and answers its fixture PaymentMethod, a visa 4242).
        browser = stripe.StripeClient("sk_test_browser", base_addresses={"api": self.api_base})
        method = await browser.v1.payment_methods.create_async(
            params={"type": "card", "card": {"token": "tok_visa"}}
        )
        return str(method.id)

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
    processor = recorded_processor(stripe_mock_url, recorder)
    customer = await processor.create_customer(uuid.uuid4(), idempotency_key="c-1")
    with pytest.raises(PaymentDeclined) as held:
        await processor.authorize(
            CardPayment(customer, "pm_card_visa", 500, "EUR"), idempotency_key="a-1"
        )
    with pytest.raises(PaymentDeclined) as paid:
        await processor.charge(
            CardPayment(customer, "pm_card_visa", 500, "EUR"), idempotency_key="p-1"
        )
    assert held.value.code == paid.value.code == "authentication_required"
    hold_body, charge_body = recorder.bodies[-2:]
    assert "capture_method=manual" in hold_body and "off_session=true" in hold_body
    assert "capture_method" not in charge_body and "off_session=true" in charge_body
    assert "currency=eur" in hold_body and "currency=eur" in charge_body


async def test_an_on_session_hold_asks_stripe_for_the_guest_and_reads_the_intent_back(
    stripe_mock_url: str,
) -> None:
    recorder = RecordingClient()
    processor = recorded_processor(stripe_mock_url, recorder, check_intent_status=False)
    customer = await processor.create_customer(uuid.uuid4(), idempotency_key="c-2")
    state = await processor.authorize_on_session(
        CardPayment(customer, "pm_card_authenticationRequired", 5000, "EUR"),
        return_url="https://plugpay.example/app/#/guest",
        idempotency_key="checkout:guest",
    )
    assert state.intent_id.startswith("pi_")
    body = recorder.bodies[-1]
    # confirmed now, with the cardholder present: a hold, and where the bank sends them back
    assert "capture_method=manual" in body and "confirm=true" in body
    assert "off_session" not in body
    assert "return_url=https%3A%2F%2Fplugpay.example%2Fapp%2F%23%2Fguest" in body
    assert recorder.requests[-1][2] == "checkout:guest"
    read = await processor.intent(state.intent_id)
    method, url, key = recorder.requests[-1]
    assert method == "GET" and url.endswith(f"/v1/payment_intents/{state.intent_id}")
    assert key is None and read.intent_id == state.intent_id


def test_stripes_next_action_is_the_page_the_guest_is_sent_to() -> None:
    # stripe-mock's fixtures never ask for 3-D Secure: Stripe's documented answer, mapped.
    intent = stripe.PaymentIntent.construct_from(
        {
            "id": "pi_3ds",
            "object": "payment_intent",
            "status": "requires_action",
            "amount": 5000,
            "currency": "eur",
            "next_action": {
                "type": "redirect_to_url",
                "redirect_to_url": {
                    "url": "https://hooks.stripe.com/3d_secure_2/hosted?merchant=acct_1",
                    "return_url": "https://plugpay.example/app/#/guest",
                },
            },
            "last_payment_error": None,
        },
        "sk_test_plugpay",
    )
    state = intent_state(intent)
    assert (state.status, state.amount, state.currency) == ("requires_action", 5000, "EUR")
    assert state.redirect_url == "https://hooks.stripe.com/3d_secure_2/hosted?merchant=acct_1"
    assert not state.held and state.expires_at is None
    failed = stripe.PaymentIntent.construct_from(
        {
            "id": "pi_3ds",
            "object": "payment_intent",
            "status": "requires_payment_method",
            "amount": 5000,
            "currency": "eur",
            "next_action": None,
            "last_payment_error": {"code": "payment_intent_authentication_failure"},
        },
        "sk_test_plugpay",
    )
    refused = intent_state(failed)
    assert refused.decline_code == "payment_intent_authentication_failure"
    assert refused.redirect_url is None
    held = intent_state(
        stripe.PaymentIntent.construct_from(
            {"id": "pi_ok", "status": "requires_capture", "amount": 5000, "currency": "eur"},
            "sk_test_plugpay",
        )
    )
    assert held.held and held.expires_at is not None
