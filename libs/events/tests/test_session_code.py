"""Session codes: short enough for a small QR symbol, bound to station, connector and session,
unforgeable without the key, and malformed input refused with a reason (never an exception
escaping)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from plugpay_events.session_code import (
    CODE_CHARS,
    SessionCodeRejected,
    generate_signing_key,
    read_session_code,
    sign_session_code,
    token_from_scan,
    verification_jwks,
    verify_session_code,
)

NOW = datetime(2026, 12, 3, 2, 0, tzinfo=UTC)
KEY = generate_signing_key("k1")
JWKS = verification_jwks(KEY)
LONG_STATION = "S" * 64  # the longest station id a registration allows


def _code(station_id: str = "ST-1", connector_id: int = 2) -> str:
    code, _ = sign_session_code(
        KEY, station_id=station_id, connector_id=connector_id, session_started_at=NOW
    )
    return code


def test_the_qr_content_is_short_whatever_the_station_id() -> None:
    """80 characters fit a version-6 symbol at error correction M (the gateway's tests draw it)."""
    code = _code(LONG_STATION, 255)
    content = f"https://charge.plugpay.example/s/{code}"
    assert len(code) == CODE_CHARS == 40
    assert len(content) <= 80


def test_a_code_says_what_it_was_made_for() -> None:
    code, made = sign_session_code(
        KEY,
        station_id=LONG_STATION,
        connector_id=3,
        session_started_at=NOW,
        lifetime=timedelta(seconds=90),
    )
    claims = verify_session_code(
        token_from_scan(f"http://x/s/{code}"), JWKS, station_ids=["ST-9", LONG_STATION], now=NOW
    )
    assert claims == made
    assert (claims.station_id, claims.connector_id) == (LONG_STATION, 3)
    assert claims.expires_at == NOW + timedelta(seconds=90)
    assert read_session_code(code).session_id == made.session_id


def test_two_codes_name_two_sessions() -> None:
    assert read_session_code(_code()).session_id != read_session_code(_code()).session_id


def test_a_code_is_bound_to_its_station() -> None:
    code = _code("ST-1")
    with pytest.raises(SessionCodeRejected) as rejected:
        verify_session_code(code, JWKS, station_ids=["ST-2"], now=NOW)
    assert rejected.value.reason == "code_invalid"


def test_another_key_cannot_make_codes() -> None:
    forged, _ = sign_session_code(
        generate_signing_key("k1"), station_id="ST-1", connector_id=2, session_started_at=NOW
    )
    with pytest.raises(SessionCodeRejected) as rejected:
        verify_session_code(forged, JWKS, station_ids=["ST-1"], now=NOW)
    assert rejected.value.reason == "code_invalid"


def test_rotation_verifies_with_either_key() -> None:
    new = generate_signing_key("k2")
    code, _ = sign_session_code(new, station_id="ST-1", connector_id=1, session_started_at=NOW)
    both = verification_jwks(new, KEY)
    assert verify_session_code(code, both, station_ids=["ST-1"], now=NOW).station_id == "ST-1"
    assert verify_session_code(_code(), both, station_ids=["ST-1"], now=NOW).connector_id == 2


@pytest.mark.parametrize("offset", [0, 5, 11, 14, 16, 22, 29])
def test_any_changed_byte_is_refused(offset: int) -> None:
    """Nonce, time, lifetime, connector, station tag and MAC are all covered."""
    raw = bytearray(base64.urlsafe_b64decode(_code()))
    raw[offset] ^= 0x01
    tampered = base64.urlsafe_b64encode(bytes(raw)).decode()
    with pytest.raises(SessionCodeRejected) as rejected:
        verify_session_code(tampered, JWKS, station_ids=["ST-1"], now=NOW)
    assert rejected.value.reason in ("code_invalid", "code_malformed")


def test_expired_and_future_codes() -> None:
    code = _code()
    late = NOW + timedelta(minutes=5, seconds=31)
    with pytest.raises(SessionCodeRejected) as expired:
        verify_session_code(code, JWKS, station_ids=["ST-1"], now=late)
    assert expired.value.reason == "code_expired"
    early = NOW - timedelta(seconds=31)
    with pytest.raises(SessionCodeRejected) as future:
        verify_session_code(code, JWKS, station_ids=["ST-1"], now=early)
    assert future.value.reason == "code_invalid"


@given(st.text(max_size=60))
def test_anything_else_is_refused_with_a_reason(text: str) -> None:
    with pytest.raises(SessionCodeRejected):
        verify_session_code(text, JWKS, station_ids=["ST-1"], now=NOW)


def test_codes_outside_the_format_cannot_be_made() -> None:
    with pytest.raises(ValueError):
        sign_session_code(KEY, station_id="ST-1", connector_id=256, session_started_at=NOW)
    with pytest.raises(ValueError):
        sign_session_code(
            {"kty": "OKP", "kid": "old"}, station_id="ST-1", connector_id=1, session_started_at=NOW
        )
