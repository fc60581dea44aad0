"""How a page takes a card: ``GET /billing/processor`` names the card form (the simulated
processor's, or Stripe.js with the publishable key, never a secret), and the simulated processor
turns a typed card into a token as Stripe's hosted fields do: a mistyped number, a past expiry or
a short CVC is refused with a reason; Stripe's test numbers behave as their test tokens."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from billing_kit import Harness, running
from billing_svc.app import create_app
from billing_svc.processor import CardPayment, luhn_valid
from billing_svc.settings import Settings
from billing_svc.stripe_processor import StripeProcessor
from plugpay_platform.settings import PlatformSettings
from plugpay_testing.tokens import TokenFactory

pytestmark = pytest.mark.infra


@pytest.fixture
async def h(database_url: str, topic_prefix: str) -> AsyncIterator[Harness]:
    async with running(database_url, topic_prefix) as harness:
        yield harness


def next_year() -> str:
    return f"{(datetime.now(UTC).year + 1) % 100:02d}"


async def tokenise(h: Harness, number: str, expiry: str | None = None, cvc: str = "123") -> Any:
    body = {"number": number, "expiry": expiry or f"08/{next_year()}", "cvc": cvc}
    return await h.client.post("/billing/processor/cards", json=body)


async def save(h: Harness, payer: uuid.UUID, token: str) -> Any:
    return await h.client.post(
        "/billing/payment-methods",
        json={"token": token},
        headers=h.headers(
            payer, uuid.uuid4().hex, roles=("guest",), email_verified=False, guest_code="c0de" * 16
        ),
    )


async def test_the_page_is_told_to_use_the_simulated_processors_form(h: Harness) -> None:
    answer = await h.client.get("/billing/processor")
    assert answer.status_code == 200
    assert answer.json() == {"kind": "simulated", "publishable_key": None}


async def test_a_typed_card_becomes_a_token_that_billing_saves_with_its_expiry(h: Harness) -> None:
    typed = await tokenise(h, "4242 4242 4242 4242", f"08/{next_year()}")
    assert typed.status_code == 201, typed.text
    card = typed.json()
    assert card["token"].startswith("pm_") and "4242424242424242" not in card["token"]
    assert (card["brand"], card["last4"], card["exp_month"]) == ("visa", "4242", 8)
    assert card["exp_year"] == datetime.now(UTC).year + 1
    # a new token each time, as Stripe.js makes a new PaymentMethod each time
    again = (await tokenise(h, "4242424242424242")).json()
    assert again["token"] != card["token"]

    saved = await save(h, uuid.uuid4(), card["token"])
    assert saved.status_code == 201, saved.text
    view = saved.json()
    assert (view["brand"], view["last4"]) == ("visa", "4242")
    assert (view["exp_month"], view["exp_year"]) == (8, datetime.now(UTC).year + 1)


@pytest.mark.parametrize(
    ("number", "brand", "last4"),
    [
        ("5555 5555 5555 4444", "mastercard", "4444"),
        ("3714 496353 98431", "amex", "8431"),
        ("4000-0000-0000-0002", "visa", "0002"),
        ("4000 0027 6000 3184", "visa", "3184"),
        ("4111 1111 1111 1111", "visa", "1111"),  # not a test number: an ordinary card
        ("2223 0000 4841 0010", "mastercard", "0010"),
    ],
)
async def test_numbers_map_to_their_brand_and_last_four(
    h: Harness, number: str, brand: str, last4: str
) -> None:
    cvc = "1234" if brand == "amex" else "123"
    card = await tokenise(h, number, cvc=cvc)
    assert card.status_code == 201, card.text
    assert (card.json()["brand"], card.json()["last4"]) == (brand, last4)


async def test_test_numbers_behave_as_their_test_tokens(h: Harness) -> None:
    """4242 holds, 0002 is declined, 3184 asks for 3-D Secure on the page, any other valid
    number holds like an ordinary card."""
    customer = await h.processor.create_customer(uuid.uuid4(), idempotency_key="c")

    async def hold(number: str) -> Any:
        token = (await tokenise(h, number)).json()["token"]
        await h.processor.attach_payment_method(customer, token, idempotency_key=token)
        return await h.processor.authorize_on_session(
            CardPayment(customer, token, 5000, "EUR"),
            return_url="http://app/#/guest",
            idempotency_key="hold:" + token,
        )

    assert (await hold("4242424242424242")).status == "requires_capture"
    assert (await hold("4111111111111111")).status == "requires_capture"
    challenged = await hold("4000002760003184")
    assert challenged.status == "requires_action" and challenged.redirect_url
    page = await h.client.get(challenged.redirect_url)
    assert page.status_code == 200 and "3184" in page.text
    with pytest.raises(Exception, match="card_declined"):
        await hold("4000000000000002")


@pytest.mark.parametrize(
    ("body", "reason", "words"),
    [
        ({"number": "4242 4242 4242 4241"}, "card_number_invalid", "typing mistake"),
        ({"number": "4242 4242"}, "card_number_invalid", "12 to 19 digits"),
        ({"number": "4242x4242 4242 4242"}, "card_number_invalid", "12 to 19 digits"),
        ({"expiry": "13/30"}, "card_expiry_invalid", "MM/YY"),
        ({"expiry": "0830"}, "card_expiry_invalid", "MM/YY"),
        ({"expiry": "01/20"}, "card_expired", "expired"),
        ({"cvc": "12"}, "card_cvc_invalid", "3 digits"),
        ({"cvc": "abc"}, "card_cvc_invalid", "3 digits"),
        ({"number": "371449635398431", "cvc": "123"}, "card_cvc_invalid", "4 digits"),
    ],
)
async def test_a_mistyped_card_is_refused_with_a_reason_and_words(
    h: Harness, body: dict[str, str], reason: str, words: str
) -> None:
    typed = {"number": "4242424242424242", "expiry": f"08/{next_year()}", "cvc": "123", **body}
    answer = await h.client.post("/billing/processor/cards", json=typed)
    assert answer.status_code == 422, answer.text
    assert answer.json()["reason"] == reason
    assert words in answer.json()["message"]


async def test_this_months_expiry_is_still_valid(h: Harness) -> None:
    now = h.processor.clock()
    card = await tokenise(h, "4242424242424242", f"{now.month:02d}/{now.year % 100:02d}")
    assert card.status_code == 201, card.text


async def test_a_made_up_token_is_not_a_card(h: Harness) -> None:
    forged = await save(h, uuid.uuid4(), "pm_typed_ok_visa_42_0830_00")
    assert forged.status_code in (400, 402, 422), forged.text


def test_luhn() -> None:
    assert luhn_valid("79927398713") and not luhn_valid("79927398710")


async def test_with_stripe_the_page_gets_the_publishable_key_and_no_card_form(
    database_url: str,
) -> None:
    settings = Settings(
        database_url=database_url,  # type: ignore[arg-type]
        processor="stripe",
        stripe_api_key="sk_test_secret",  # type: ignore[arg-type]
        stripe_publishable_key="pk_test_abc123",
    )
    # never called: neither route asks Stripe anything
    stripe = StripeProcessor("sk_test_secret", webhook_secret="", api_base="http://127.0.0.1:9")
    app = create_app(settings, key_source=TokenFactory(), processor=stripe)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://billing") as client:
        config = await client.get("/billing/processor")
        assert config.json() == {"kind": "stripe", "publishable_key": "pk_test_abc123"}
        assert "sk_test" not in config.text
        # cards are typed into Stripe's own fields: billing takes no card number
        typed = await client.post(
            "/billing/processor/cards",
            json={"number": "4242424242424242", "expiry": "08/40", "cvc": "123"},
        )
        assert (typed.status_code, typed.json()["reason"]) == (404, "not_found")
        assert "4242" not in typed.text


def test_a_secret_key_is_refused_as_the_publishable_key() -> None:
    with pytest.raises(ValueError, match="pk_"):
        Settings(
            database_url="postgresql://x/y",  # type: ignore[arg-type]
            stripe_publishable_key="sk_live_oops",
        )


def test_production_needs_the_publishable_key() -> None:
    platform = PlatformSettings(environment="production", kafka_bootstrap="k:9092")
    common: dict[str, Any] = {
        "database_url": "postgresql://x/y",
        "platform": platform,
        "processor": "stripe",
        "stripe_api_key": "sk_live_x",
        "stripe_webhook_secret": "whsec_x",
    }
    with pytest.raises(ValueError, match="PUBLISHABLE_KEY"):
        Settings(**common)
    assert Settings(**common, stripe_publishable_key="pk_live_x1").stripe_publishable_key
