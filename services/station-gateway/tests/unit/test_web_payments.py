"""OCPP 2.1 C25 TOTP v1, against the test stations' implementation written from the spec's text
(``harness_station.station_totp``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from station_gateway.web_payments import (
    WebPaymentTerms,
    code_is_valid,
    names_shared_secret,
    new_shared_secret,
    time_step,
    totp,
    url_template,
)

from ..harness_station import station_totp

SECRET = "s3cr3t-shared-with-the-station-01"
TERMS = WebPaymentTerms(shared_secret=SECRET, validity_s=60, length=10)


def at(unix_seconds: float) -> datetime:
    return datetime.fromtimestamp(unix_seconds, UTC)


@pytest.mark.parametrize(
    ("secret", "unix_seconds", "validity_s", "length"),
    [
        (SECRET, 1_767_225_600, 60, 10),
        ("another-station-secret-xyz", 1_700_000_000, 30, 8),
        ("ünïcödé-secret-for-utf8-keys", 1_800_000_123, 3600, 16),
        # offset near the end: the read wraps around the 32-byte digest
        (SECRET, 0, 6, 32),
    ],
)
def test_totp_matches_the_spec_text(
    secret: str, unix_seconds: int, validity_s: int, length: int
) -> None:
    step = time_step(at(unix_seconds), validity_s)
    assert totp(secret, step, length) == station_totp(secret, unix_seconds, validity_s, length)


def test_the_code_is_not_rfc_6238() -> None:
    code = totp(SECRET, 28_000_000, 10)
    assert len(code) == 10 and not code.isdigit()


def test_the_current_step_and_one_either_side_are_valid_at_the_boundaries() -> None:
    boundary = 1_767_225_600  # a multiple of 60: the first second of a step
    now = at(boundary)
    for shown_at in (boundary - 60, boundary - 1, boundary, boundary + 59, boundary + 60):
        assert code_is_valid(station_totp(SECRET, shown_at, 60, 10), TERMS, now), shown_at
    # two steps away: stale (or from the future)
    assert not code_is_valid(station_totp(SECRET, boundary - 61, 60, 10), TERMS, now)
    assert not code_is_valid(station_totp(SECRET, boundary + 120, 60, 10), TERMS, now)
    # the last second of a step still accepts the previous one, not the one before it
    last = at(boundary + 59.999)
    assert code_is_valid(station_totp(SECRET, boundary - 60, 60, 10), TERMS, last)
    assert not code_is_valid(station_totp(SECRET, boundary - 120, 60, 10), TERMS, last)


def test_a_stale_code_is_refused() -> None:
    shown = station_totp(SECRET, 1_767_225_600, 60, 10)
    assert not code_is_valid(shown, TERMS, at(1_767_225_600) + timedelta(minutes=5))


def test_forged_codes_are_refused() -> None:
    now = at(1_767_225_600)
    good = station_totp(SECRET, 1_767_225_600, 60, 10)
    flipped = ("1" if good[0] != "1" else "2") + good[1:]
    assert not code_is_valid(flipped, TERMS, now)
    assert not code_is_valid(
        station_totp("a-guessed-secret-of-some-length", 1_767_225_600, 60, 10), TERMS, now
    )
    assert not code_is_valid(good[:-1], TERMS, now)  # wrong length
    assert not code_is_valid(good + "0", TERMS, now)
    assert not code_is_valid(good[:-1] + "-", TERMS, now)  # outside base62
    assert not code_is_valid("", TERMS, now)


def test_a_new_secret_is_long_and_random() -> None:
    secrets = {new_shared_secret() for _ in range(20)}
    assert len(secrets) == 20 and all(len(s) >= 32 for s in secrets)


def test_the_url_template_names_the_station_evse_and_code() -> None:
    template = url_template("https://pay.example.org/")
    assert (
        template == "https://pay.example.org/stations/{chargingStationId}/evses/{evse}/pay/{totp}"
    )


def test_operators_can_neither_read_nor_set_the_shared_secret() -> None:
    def data(kind: str, component: str, variable: str) -> dict[str, object]:
        return {kind: [{"component": {"name": component}, "variable": {"name": variable}}]}

    assert names_shared_secret(data("get_variable_data", "WebPaymentsCtrlr", "SharedSecret"))
    assert names_shared_secret(data("set_variable_data", "webpaymentsctrlr", "sharedsecret"))
    assert not names_shared_secret(data("get_variable_data", "WebPaymentsCtrlr", "URLTemplate"))
    assert not names_shared_secret(data("get_variable_data", "SecurityCtrlr", "SharedSecret"))
    assert not names_shared_secret({"type": "Immediate"})
