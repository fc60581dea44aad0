"""A guest's token: the role ``guest`` only counts with the one code it is bound to."""

from __future__ import annotations

import pytest
from plugpay_platform.errors import Refusal
from plugpay_platform.security import TokenVerifier
from plugpay_testing.tokens import TokenFactory


async def test_a_guest_token_names_its_code_and_nothing_else_is_a_guest() -> None:
    tokens = TokenFactory()
    verifier = TokenVerifier(tokens, issuer="plugpay-auth", audience="plugpay")
    guest = await verifier.verify(
        tokens.token(roles=("guest",), email_verified=False, guest_code="ab" * 32)
    )
    assert guest.is_guest and guest.guest_code == "ab" * 32 and not guest.has("driver")
    driver = await verifier.verify(tokens.token())
    assert not driver.is_guest and driver.guest_code is None
    with pytest.raises(Refusal) as unbound:
        await verifier.verify(tokens.token(roles=("guest",), email_verified=False))
    assert unbound.value.status_code == 401
