"""What a driver presented, read before any transaction: refusals that need no database, and
which codes are typed (so the endpoint counts them against the typed-code limits)."""

from __future__ import annotations

import uuid

import pytest
from plugpay_platform.errors import Refusal
from plugpay_platform.security import Principal
from session_svc.service import read_presented

DRIVER = Principal(uuid.uuid4(), frozenset({"driver"}), email_verified=True)


def reason(principal: Principal, raw: str) -> tuple[int, str]:
    with pytest.raises(Refusal) as refused:
        read_presented(principal, raw)
    return refused.value.status_code, refused.value.reason


def test_a_driver_without_a_verified_address_pays_nothing() -> None:
    unverified = Principal(uuid.uuid4(), frozenset({"driver"}))
    assert reason(unverified, "ACD-34F") == (403, "account_unverified")


def test_a_typed_code_is_read_tolerantly_and_marked_typed() -> None:
    presented = read_presented(DRIVER, "  acd-34f ")
    assert presented.typed == "ACD34F" and presented.code is None


@pytest.mark.parametrize("raw", ["ACD34", "ACD34FF", "ACD34B", "", "hello world"])
def test_anything_else_is_not_a_plugpay_code(raw: str) -> None:
    # Too short, too long, a letter outside the alphabet (B), nothing, prose.
    assert reason(DRIVER, raw) == (400, "code_malformed")
