"""The simulated processor's card form: Luhn, brands, and tokens that carry what the simulation
needs (a card saved before the embedded mode restarts still pays; a token never holds the
number or the CVC)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from billing_svc.processor import (
    TEST_CARDS,
    TEST_NUMBERS,
    CardEntryRefused,
    CardPayment,
    PaymentDeclined,
    SimulatedProcessor,
    card_brand,
    luhn_valid,
)
from hypothesis import given
from hypothesis import strategies as st


def fixed(now: datetime) -> SimulatedProcessor:
    return SimulatedProcessor(clock=lambda: now)


@given(st.text(alphabet="0123456789", min_size=11, max_size=18))
def test_exactly_one_check_digit_makes_a_number_luhn_valid(body: str) -> None:
    assert len([d for d in "0123456789" if luhn_valid(body + d)]) == 1


def test_every_stripe_test_number_is_valid_and_names_its_tokens_last4() -> None:
    for number, token in TEST_NUMBERS.items():
        assert luhn_valid(number), number
        assert number.endswith(TEST_CARDS[token][1]), number
        assert card_brand(number) == TEST_CARDS[token][0], number


async def test_a_card_saved_before_a_restart_still_pays() -> None:
    now = datetime(2026, 12, 3, tzinfo=UTC)
    card = fixed(now).tokenise("4000 0000 0000 0002", "12/26", "123")
    assert "4000000000000002" not in card.token
    again = fixed(now)  # another process: nothing in memory
    customer = await again.create_customer(uuid.uuid4(), idempotency_key="c")
    saved = await again.attach_payment_method(customer, card.token, idempotency_key="a")
    assert (saved.brand, saved.last4, saved.exp_month, saved.exp_year) == ("visa", "0002", 12, 2026)
    with pytest.raises(PaymentDeclined, match="card_declined"):
        await again.authorize(CardPayment(customer, card.token, 500, "EUR"), idempotency_key="h")


def test_the_expiry_month_is_valid_to_its_end() -> None:
    processor = fixed(datetime(2026, 12, 31, 23, 59, tzinfo=UTC))
    assert processor.tokenise("4242424242424242", "12/26", "123").exp_year == 2026
    with pytest.raises(CardEntryRefused) as refused:
        processor.tokenise("4242424242424242", "11/26", "123")
    assert refused.value.code == "card_expired"
