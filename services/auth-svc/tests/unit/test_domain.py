"""auth-svc's pure rules: password policy, throttling, refresh rotation, claims."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from auth_svc import domain
from auth_svc.domain import (
    RefreshToken,
    RejectRefresh,
    RevokeFamily,
    Rotate,
    ThrottleRule,
    ThrottleState,
)
from hypothesis import given
from hypothesis import strategies as st
from plugpay_platform import throttle
from plugpay_platform.errors import Refusal

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "password",
    ["password", "12345678", "Password1", "P@ssw0rd", "drowssap", "iloveyou", "sunshine99"],
)
def test_common_and_breached_passwords_are_refused(password: str) -> None:
    assert domain.password_problem(password) == (
        "this password is in a list of common or breached passwords"
    )


@pytest.mark.parametrize(
    "password",
    ["demo-password-1", "granite-otter-lantern-7", "with spaces in the password"],
)
def test_long_uncommon_passwords_pass(password: str) -> None:
    assert domain.password_problem(password) is None


@pytest.mark.parametrize("password", ["aaaaaaaa", "abcdefgh", "x" * 64, "1a" * 20, "Zq7!kd2#"])
def test_guessable_passwords_are_refused_by_their_zxcvbn_score(password: str) -> None:
    problem = domain.password_problem(password)
    assert problem is not None and problem.startswith("this password is too easy to guess")


@pytest.mark.parametrize("password", [" " * 8, " " * 20, "\u3000" * 10])
def test_whitespace_only_passwords_are_refused(password: str) -> None:
    assert domain.password_problem(password) == "the password must not be only spaces"


@pytest.mark.parametrize(
    "password",
    [
        "granite\x00otter-lantern",
        "granite-otter\tlantern",
        "granite-otter\u200blantern",
        "\x7f" * 9,
    ],
)
def test_control_and_invisible_characters_are_refused(password: str) -> None:
    assert domain.password_problem(password) == (
        "the password must not contain control or invisible characters"
    )


def test_the_email_is_context_for_the_score() -> None:
    # Strong for anyone else, weak for the person whose address is made of these words.
    assert domain.password_problem("fitzroyzelda1") is None
    email = "zelda.fitzroy@example.com"
    problem = domain.password_problem("fitzroyzelda1", personal=(email, "zelda.fitzroy"))
    assert problem is not None and "too easy to guess" in problem


def test_length_bounds() -> None:
    assert "at least 8" in (domain.password_problem("Zq7!kd2") or "")
    assert "at least 8" not in (domain.password_problem("Zq7!kd2#") or "")
    longest = ("granite-otter-lantern-" * 6)[:127] + "7"
    assert domain.password_problem(longest) is None
    assert "at most" in (domain.password_problem(longest + "y") or "")


def test_password_must_not_contain_the_email() -> None:
    problem = domain.password_problem("zelda.fitzroy-2026", personal=("zelda.fitzroy",))
    assert problem is not None and "email" in problem


def test_policy_refusal_is_a_422_with_reason() -> None:
    with pytest.raises(Refusal) as refused:
        domain.check_password_policy("qwerty123")
    assert refused.value.status_code == 422 and refused.value.reason == "weak_password"


def test_station_password_follows_ocpp() -> None:
    domain.check_station_password("demo-station-secret")
    for bad in ("short-secret", "x" * 41, "has space in it 123", "ünïcode-secret-pass"):
        with pytest.raises(Refusal):
            domain.check_station_password(bad)


def test_email_is_normalised_or_refused() -> None:
    assert domain.normalise_email("  Ann@Example.COM ") == "ann@example.com"
    for bad in ("no-at", "a@b", "a b@c.de", "@x.io", "a@@b.io"):
        with pytest.raises(Refusal):
            domain.normalise_email(bad)


RULE = ThrottleRule(free_failures=3, base_delay_s=2, max_delay_s=60)


def test_throttle_allows_free_failures_then_doubles_the_wait() -> None:
    state = ThrottleState()
    for _ in range(3):
        state = throttle.record_failure(state, RULE, NOW)
        assert throttle.retry_after_s(state, NOW) is None
    waits = []
    for _ in range(4):
        state = throttle.record_failure(state, RULE, NOW)
        waits.append(throttle.retry_after_s(state, NOW))
    assert waits == [2, 4, 8, 16]
    assert throttle.retry_after_s(state, NOW + timedelta(seconds=16)) is None


@given(st.integers(min_value=1, max_value=500))
def test_throttle_wait_is_capped_so_nobody_is_locked_out(failures: int) -> None:
    state = ThrottleState()
    for _ in range(failures):
        state = throttle.record_failure(state, RULE, NOW)
    wait = throttle.retry_after_s(state, NOW)
    assert wait is None or wait <= RULE.max_delay_s
    assert throttle.retry_after_s(state, NOW + timedelta(seconds=RULE.max_delay_s)) is None


def test_old_failures_are_forgiven() -> None:
    state = ThrottleState()
    for _ in range(10):
        state = throttle.record_failure(state, RULE, NOW)
    later = NOW + RULE.forget_after + timedelta(seconds=1)
    state = throttle.record_failure(state, RULE, later)
    assert state.failures == 1 and throttle.retry_after_s(state, later) is None


RULES = domain.LoginRules()


def _failed(state: ThrottleState, rule: ThrottleRule, times: int) -> ThrottleState:
    for _ in range(times):
        state = throttle.record_failure(state, rule, NOW)
    return state


def test_a_single_account_is_only_slowed_for_a_minute_from_anywhere() -> None:
    assert RULES.account.max_delay_s <= 60
    assert RULES.account_at_address.free_failures < RULES.account.free_failures


def test_an_attacked_account_stays_open_to_an_address_without_failures() -> None:
    attacked = _failed(ThrottleState(), RULES.account, RULES.account.free_failures + 5)
    assert throttle.retry_after_s(attacked, NOW) is not None
    owner = domain.LoginThrottles(account=attacked)
    assert domain.login_wait(owner, RULES, NOW) is None


def test_an_attacked_account_holds_back_addresses_that_failed() -> None:
    attacked = _failed(ThrottleState(), RULES.account, RULES.account.free_failures + 5)
    guesser = domain.LoginThrottles(
        account=attacked,
        account_at_address=_failed(ThrottleState(), RULES.account_at_address, 1),
        address=_failed(ThrottleState(), RULES.address, 1),
    )
    assert domain.login_wait(guesser, RULES, NOW) == throttle.retry_after_s(attacked, NOW)
    # An hour later the address's failures are forgotten: the account window alone holds no one.
    later = NOW + RULES.address.forget_after + timedelta(seconds=1)
    still = replace(attacked, blocked_until=later + timedelta(seconds=30))
    assert domain.login_wait(replace(guesser, account=still), RULES, later) is None


def test_the_address_and_the_account_at_the_address_are_held_back_on_their_own() -> None:
    at_address = _failed(ThrottleState(), RULES.account_at_address, 6)
    assert domain.login_wait(domain.LoginThrottles(account_at_address=at_address), RULES, NOW) == 2
    address = _failed(ThrottleState(), RULES.address, RULES.address.free_failures + 1)
    assert domain.login_wait(domain.LoginThrottles(address=address), RULES, NOW) == 1


def _token(**changes: object) -> RefreshToken:
    base = RefreshToken(
        token_hash="ab" * 32,
        family_id=uuid.uuid4(),
        user_id=uuid.uuid4(),
        issued_at=NOW - timedelta(minutes=5),
        expires_at=NOW + timedelta(days=1),
    )
    return RefreshToken(**{**base.__dict__, **changes})  # type: ignore[arg-type]


def test_fresh_refresh_token_rotates() -> None:
    decision = domain.decide_refresh(_token(), NOW)
    assert isinstance(decision, Rotate) and decision.used.used_at == NOW


def test_reused_refresh_token_revokes_its_family() -> None:
    token = _token(used_at=NOW - timedelta(seconds=30))
    assert domain.decide_refresh(token, NOW) == RevokeFamily(token.family_id)


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (None, "refresh_token_invalid"),
        (_token(revoked_at=NOW), "refresh_token_revoked"),
        (_token(expires_at=NOW), "refresh_token_expired"),
    ],
)
def test_refused_refresh_tokens(token: RefreshToken | None, reason: str) -> None:
    assert domain.decide_refresh(token, NOW) == RejectRefresh(reason)


def test_access_claims_match_what_the_platform_verifier_reads() -> None:
    org = uuid.uuid4()
    account = domain.Account(
        user_id=uuid.uuid4(),
        email="op@example.com",
        roles=("operator",),
        organisation_id=org,
        groups=("staff", "night"),
        email_verified=True,
    )
    claims = domain.access_claims(
        account, issuer="plugpay-auth", audience="plugpay", now=NOW, ttl_s=900
    )
    assert claims["org"] == str(org)
    assert claims["groups"] == ["night", "staff"]
    assert claims["exp"] == claims["iat"] + 900 == claims["nbf"] + 900
    driver = domain.access_claims(
        domain.Account(uuid.uuid4(), "d@example.com", ("driver",), None, (), False),
        issuer="i",
        audience="a",
        now=NOW,
        ttl_s=900,
    )
    assert "org" not in driver and driver["email_verified"] is False


def test_staff_accounts_and_organisations() -> None:
    domain.check_staff_account("operator", uuid.uuid4())
    domain.check_staff_account("admin", None)
    with pytest.raises(Refusal):
        domain.check_staff_account("operator", None)
    with pytest.raises(Refusal):
        domain.check_staff_account("analyst", uuid.uuid4())
