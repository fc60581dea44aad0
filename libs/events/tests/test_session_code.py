"""Session codes: a correctly signed code whose numbers no int/datetime can hold is rejected
as malformed (found by tests/reliability fuzzing: OverflowError escaped)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import jwt
import pytest
from jwt.algorithms import OKPAlgorithm
from plugpay_events.session_code import (
    AUDIENCE,
    SessionCodeRejected,
    generate_signing_key,
    public_jwks,
    verify_session_code,
)

NOW = datetime.now(UTC)  # PyJWT checks iat against the real clock


@pytest.mark.parametrize(
    "overrides",
    [{"cn": 1e308 * 10}, {"exp": 10**20}, {"cn": float("inf")}],
)
def test_unrepresentable_numbers_are_malformed(overrides: dict[str, object]) -> None:
    key = generate_signing_key("k")
    claims = {
        "aud": AUDIENCE,
        "st": "ST-1",
        "cn": 1,
        "sid": "6f0c6b2e-9a4e-4a53-9a57-3b8f1f7b6c11",
        "iat": int(NOW.timestamp()),
        "exp": int(NOW.timestamp()) + 300,
        "jti": "x",
        **overrides,
    }
    token = jwt.encode(
        claims, OKPAlgorithm.from_jwk(json.dumps(key)), algorithm="EdDSA", headers={"kid": "k"}
    )
    with pytest.raises(SessionCodeRejected) as rejected:
        verify_session_code(token, public_jwks(key), now=NOW)
    assert rejected.value.reason == "code_malformed"
