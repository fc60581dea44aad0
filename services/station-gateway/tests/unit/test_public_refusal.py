"""The station screen is public: a refused driver's money situation never shows there."""

from __future__ import annotations

import pytest
from station_gateway.service import public_refusal


@pytest.mark.parametrize(
    "reason", ["insufficient_funds", "payment_declined", "no_payment_method", "account_unverified"]
)
def test_money_refusals_are_neutral(reason: str) -> None:
    text = public_refusal(reason)
    assert "phone" in text
    for private in ("balance", "funds", "declined", "card", "wallet", "verify"):
        assert private not in text.lower()


def test_other_refusals_have_a_line_too() -> None:
    assert public_refusal("access_denied") != public_refusal("insufficient_funds")
    assert public_refusal("station_offline")
    assert public_refusal(None)
