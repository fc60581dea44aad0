"""The words a refused card gets, and the buyer details a payer may type."""

from __future__ import annotations

import pytest
from billing_svc.domain import buyer_problem, decline_message, normalised_vat_id


def test_a_card_that_needs_3d_secure_is_told_apart_from_a_declined_one() -> None:
    assert "3-D Secure" in decline_message("authentication_required")
    assert "not enough funds" in decline_message("insufficient_funds")
    assert decline_message("card_declined") == "Your card was declined (card_declined)."


@pytest.mark.parametrize(
    ("email", "vat_id", "problem"),
    [
        ("fleet@business.example", "", None),
        ("fleet@business.example", "DE123456789", None),
        ("fleet@business", "", "invalid_email"),
        ("two@at@signs.example", "", "invalid_email"),
        ("a" * 250 + "@b.example", "", "invalid_email"),
        ("fleet@business.example", "12", "invalid_vat_id"),
        ("fleet@business.example", "DE1", "invalid_vat_id"),
        ("fleet@business.example", "DE12345678901234", "invalid_vat_id"),
    ],
)
def test_buyer_details(email: str, vat_id: str, problem: str | None) -> None:
    found = buyer_problem(email, vat_id)
    assert (found[0] if found else None) == problem


def test_a_typed_vat_id_is_normalised_before_it_is_checked() -> None:
    assert normalised_vat_id("de 123.456-789") == "DE123456789"
    assert buyer_problem("a@b.example", normalised_vat_id("de 123.456-789")) is None
