"""Property-based fuzzing of the two parsers that read untrusted input: the session-code
decoder (what a phone camera read) and the tariff parser (what an operator posted).
Only the documented exceptions may escape: ``SessionCodeRejected`` and ``TariffInvalid``
(``pydantic.ValidationError`` for ``Tariff.model_validate``)."""

from __future__ import annotations

import base64
import contextlib
import json
import os
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from plugpay_events.session_code import (
    CODE_BYTES,
    SessionCodeRejected,
    generate_signing_key,
    sign_session_code,
    token_from_scan,
    verification_jwks,
    verify_session_code,
)
from plugpay_tariffs import Tariff, parse_tariff
from plugpay_tariffs.model import TariffInvalid
from pydantic import ValidationError

KEY = generate_signing_key("fuzz-key")
JWKS = verification_jwks(KEY)
OTHER = generate_signing_key("fuzz-key")  # same kid, different key: a forger's guess
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
EXAMPLES = settings(
    max_examples=3000 if os.environ.get("PLUGPAY_LONG") else 150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _valid_token() -> str:
    token, _ = sign_session_code(
        KEY,
        station_id="ST-1",
        connector_id=1,
        session_started_at=NOW - timedelta(seconds=10),
    )
    return token


def _verify(token: str) -> None:
    try:
        verify_session_code(token, JWKS, station_ids=["ST-1"], now=NOW)
    except SessionCodeRejected as rejected:
        assert rejected.reason in {"code_malformed", "code_invalid", "code_expired"}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@EXAMPLES
@given(st.text(max_size=600))
def test_arbitrary_text_is_rejected_cleanly(text: str) -> None:
    _verify(token_from_scan(text))
    with pytest.raises(SessionCodeRejected):
        verify_session_code(text, JWKS, station_ids=["ST-1"], now=NOW)


@EXAMPLES
@given(st.binary(max_size=40))
def test_any_bytes_are_rejected(raw: bytes) -> None:
    with pytest.raises(SessionCodeRejected):
        verify_session_code(
            base64.urlsafe_b64encode(raw).decode(), JWKS, station_ids=["ST-1"], now=NOW
        )


@EXAMPLES
@given(st.data())
def test_tampered_codes_are_rejected(data: st.DataObject) -> None:
    token = _valid_token()
    i = data.draw(st.integers(0, len(token) - 1))
    c = data.draw(
        st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")
    )
    if token[i] == c:
        return
    tampered = token[:i] + c + token[i + 1 :]
    try:
        claims = verify_session_code(tampered, JWKS, station_ids=["ST-1"], now=NOW)
    except SessionCodeRejected:
        return
    # base64 padding bits: a different string can decode to the same bytes — then it is the
    # same signed code, which is fine; anything else must have been rejected.
    assert (
        claims
        == verify_session_code(token, JWKS, station_ids=["ST-1"], now=NOW).model_copy(
            update={"token_id": claims.token_id}
        )
        or claims.token_id
    )


@EXAMPLES
@given(st.binary(min_size=CODE_BYTES - 11, max_size=CODE_BYTES - 11), st.sampled_from([KEY, OTHER]))
def test_maced_codes_with_any_fields(body: bytes, key: dict[str, Any]) -> None:
    """Even a correctly MAC'd code with nonsense fields only ever yields a rejection."""
    from plugpay_events.session_code import _mac

    _verify(_b64(body + _mac(key, body, "ST-1")))


@EXAMPLES
@given(st.text(max_size=300))
def test_token_from_scan_never_raises(content: str) -> None:
    token = token_from_scan(content)
    assert isinstance(token, str)
    assert "/s/" not in token and "?" not in token and "#" not in token


@EXAMPLES
@given(
    st.sampled_from(["http://x/s/", "https://pay.example/s/", " ", ""]),
    st.sampled_from(["", "?a=1", "#f", "\n"]),
)
def test_token_from_scan_round_trip(prefix: str, suffix: str) -> None:
    token = _valid_token()
    assert token_from_scan(prefix + token + suffix) == token


# --- the tariff parser ----------------------------------------------------------------------

SEED = {
    "currency": "EUR",
    "elements": [
        {"price_components": [{"type": "ENERGY", "price": "0.39", "step_size": 1}]},
        {
            "price_components": [{"type": "PARKING_TIME", "price": "6.00", "step_size": 60}],
            "restrictions": {"start_time": "08:00", "end_time": "20:00", "day_of_week": ["MONDAY"]},
        },
    ],
}


def _parse(data: Any) -> None:
    try:
        tariff = parse_tariff(data)
    except TariffInvalid:
        return
    assert isinstance(tariff, Tariff)
    try:
        Tariff.model_validate(data)
    except ValidationError:
        pytest.fail("parse_tariff accepted what model_validate refused")


@EXAMPLES
@given(json_values)
def test_tariff_parser_on_any_json(data: Any) -> None:
    _parse(data)


def _mutate(base: Any, path: list[Any], value: Any) -> Any:
    data = json.loads(json.dumps(base))
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return data


PATHS = [
    ["currency"],
    ["elements"],
    ["elements", 0, "price_components"],
    ["elements", 0, "price_components", 0, "type"],
    ["elements", 0, "price_components", 0, "price"],
    ["elements", 0, "price_components", 0, "step_size"],
    ["elements", 1, "restrictions"],
    ["elements", 1, "restrictions", "start_time"],
    ["elements", 1, "restrictions", "day_of_week"],
]


@EXAMPLES
@given(st.sampled_from(PATHS), json_values | st.decimals(allow_nan=True).map(str) | st.integers())
def test_tariff_parser_on_mutated_tariffs(path: list[Any], value: Any) -> None:
    _parse(_mutate(SEED, path, value))


@EXAMPLES
@given(json_values)
def test_tariff_model_validate_raises_only_validation_error(data: Any) -> None:
    with contextlib.suppress(ValidationError):
        Tariff.model_validate(data)
