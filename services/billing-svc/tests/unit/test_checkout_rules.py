"""What the processor's intent means for a guest's checkout, and the words the guest reads."""

from __future__ import annotations

import pytest
from billing_svc.processor import IntentState
from billing_svc.usecases.checkout import outcome, refusal


def state(status: str, decline: str | None = None) -> IntentState:
    return IntentState("pi_1", status, 5000, "EUR", decline_code=decline)


@pytest.mark.parametrize(
    ("status", "decline", "expected"),
    [
        ("requires_capture", None, "held"),
        ("requires_action", None, "authentication_incomplete"),
        ("requires_payment_method", "authentication_failed", "authentication_failed"),
        (
            "requires_payment_method",
            "payment_intent_authentication_failure",
            "authentication_failed",
        ),
        ("requires_payment_method", None, "authentication_failed"),
        ("requires_payment_method", "card_declined", "card_declined"),
        ("canceled", None, "authentication_failed"),
        ("succeeded", None, "authentication_failed"),  # never a hold: not taken as one
    ],
)
def test_only_a_hold_awaiting_capture_is_held(
    status: str, decline: str | None, expected: str
) -> None:
    assert outcome(state(status, decline)) == expected


def test_every_refusal_is_a_4xx_in_words() -> None:
    for reason, code, words in (
        ("authentication_failed", 402, "3-D Secure failed"),
        ("authentication_incomplete", 402, "not completed"),
        ("card_declined", 402, "declined (card_declined)"),
        ("insufficient_funds", 402, "not enough funds"),
        ("released", 409, "cancelled"),
        ("used", 409, "already"),
    ):
        refused = refusal(reason)
        assert refused.status_code == code and words in refused.message, reason
    assert refusal("card_declined").reason == "payment_declined"
