"""auth-svc's rules, pure: password policy, login throttling, refresh-token rotation, claims.

Nothing here does I/O; the service layer loads state, asks these functions, and saves.
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from functools import cache
from typing import Literal

from plugpay_events.session_code import code_binding
from plugpay_platform.errors import Refusal
from plugpay_platform.throttle import ThrottleRule, ThrottleState, retry_after_s

Role = Literal["driver", "operator", "admin", "analyst"]
STAFF_ROLES: frozenset[str] = frozenset({"operator", "analyst", "admin"})

# --- passwords ----------------------------------------------------------------------------

# NIST SP 800-63B 5.1.1.2 / OWASP ASVS 2.1: at least 8 characters, at least 64 accepted, no
# composition rules, no forced rotation, screened against common and breached passwords.
PASSWORD_MIN_LENGTH = 8
PASSWORD_MAX_LENGTH = 128  # >= 64 as asked; bounded so nobody hashes megabytes on our CPU


@cache
def _common_passwords() -> dict[str, int]:
    # zxcvbn's ranked "passwords" list: the 30 000 most frequent passwords of public breach
    # corpora, maintained with the library (not a hand-typed list).
    from zxcvbn.matching import RANKED_DICTIONARIES

    ranked: dict[str, int] = RANKED_DICTIONARIES["passwords"]
    return ranked


def _deleet(word: str) -> str:
    table = str.maketrans({"4": "a", "@": "a", "8": "b", "3": "e", "1": "i", "!": "i",
                           "0": "o", "$": "s", "5": "s", "7": "t", "+": "t", "2": "z"})  # fmt: skip
    return word.translate(table)


# zxcvbn's estimate of guesses, 0 (too guessable) .. 4 (very unguessable); 3 resists an
# offline attack on a slow hash, which is what our argon2id hashes would face if stolen.
PASSWORD_MIN_SCORE = 3


def password_problem(password: str, *, personal: tuple[str, ...] = ()) -> str | None:
    """Why ``password`` is not acceptable, or None when it is.

    ``personal`` is what the user told us (the e-mail and its local part): zxcvbn counts it as
    a dictionary, so "alice2026" is weak for alice@example.com.
    """
    if len(password) < PASSWORD_MIN_LENGTH:
        return f"the password needs at least {PASSWORD_MIN_LENGTH} characters"
    if len(password) > PASSWORD_MAX_LENGTH:
        return f"the password may have at most {PASSWORD_MAX_LENGTH} characters"
    if any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Cn") for c in password):
        # NUL and friends: invisible, typed by no keyboard, truncated by C libraries.
        return "the password must not contain control or invisible characters"
    if not password.strip():
        return "the password must not be only spaces"
    folded = password.lower()
    common = _common_passwords()
    # The whole password (also reversed, or with common l33t substitutions) is a known one;
    # a trailing digit or two ("password12") does not make a breached password new.
    stripped = re.sub(r"[\d!.]{1,3}$", "", folded)
    candidates = {folded, folded[::-1], _deleet(folded), stripped, _deleet(stripped)}
    if any(c in common for c in candidates if c):
        return "this password is in a list of common or breached passwords"
    if any(p and len(p) >= 3 and p.lower() in folded for p in personal):
        return "the password must not contain your email address"
    from zxcvbn import zxcvbn

    # The words of the address too: "fitzroyzelda1" is weak for zelda.fitzroy@example.com.
    words = {w for p in personal for w in re.split(r"[^a-z0-9]+", p.lower()) if len(w) >= 3}
    context = [*personal, *sorted(words)]
    estimate = zxcvbn(password, user_inputs=context, max_length=PASSWORD_MAX_LENGTH)
    if estimate["score"] < PASSWORD_MIN_SCORE:
        hint = estimate["feedback"].get("warning") or "it follows a pattern"
        return f"this password is too easy to guess ({hint.rstrip('.').lower()}); try a longer one"
    return None


def check_password_policy(password: str, *, personal: tuple[str, ...] = ()) -> None:
    """Refuse a password that breaks the policy (422, reason ``weak_password``)."""
    if problem := password_problem(password, personal=personal):
        raise Refusal("weak_password", problem, status_code=422)


# OCPP 2.0.1 Part 2 (BasicAuthPassword, passwordString) and the OCPP 1.6 security whitepaper:
# 16 to 40 characters of letters, digits and "*-_=:+|@.".
STATION_PASSWORD = re.compile(r"^[A-Za-z0-9*\-_=:+|@.]{16,40}$")


def check_station_password(password: str) -> None:
    """Refuse an OCPP Basic-auth password the OCPP specifications would not allow."""
    if not STATION_PASSWORD.fullmatch(password):
        raise Refusal(
            "invalid_station_password",
            "an OCPP password has 16 to 40 characters: letters, digits and *-_=:+|@.",
            status_code=422,
        )


EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")


def email_key(email: str) -> str:
    """The stored form of an address a client typed, for a lookup: never refused, so an
    invalid address is answered as an unknown one."""
    return email.strip().lower()[:254]


def normalise_email(email: str) -> str:
    """The form emails are stored and compared in."""
    email = email.strip().lower()
    if len(email) > 254 or not EMAIL.fullmatch(email):
        raise Refusal("invalid_email", "this is not a valid email address", status_code=422)
    return email


# --- login throttling ---------------------------------------------------------------------


def has_recent_failures(state: ThrottleState, rule: ThrottleRule, now: datetime) -> bool:
    """Whether this key failed within the rule's memory."""
    return (
        state.failures > 0
        and state.last_failure_at is not None
        and now - state.last_failure_at <= rule.forget_after
    )


@dataclass(frozen=True)
class LoginRules:
    """The three login throttles: per (account, address), per account, per address."""

    # The attacker guessing from one place is slowed quickly and hard.
    account_at_address: ThrottleRule = ThrottleRule(5, base_delay_s=2, max_delay_s=15 * 60)
    # A distributed guesser: slowed, capped at a minute, and only for addresses that have
    # failed recently, so nobody can lock the owner out by failing from elsewhere.
    account: ThrottleRule = ThrottleRule(20, base_delay_s=1, max_delay_s=60)
    # Credential stuffing from one place over many accounts.
    address: ThrottleRule = ThrottleRule(50, base_delay_s=1, max_delay_s=15 * 60)


@dataclass(frozen=True)
class LoginThrottles:
    """What is remembered about one login attempt's three keys."""

    account_at_address: ThrottleState = ThrottleState()
    account: ThrottleState = ThrottleState()
    address: ThrottleState = ThrottleState()


def login_wait(throttles: LoginThrottles, rules: LoginRules, now: datetime) -> int | None:
    """Seconds to wait before this attempt's password is even checked, or None to check it.

    The per-account window holds back only addresses with recent failures of their own: the
    owner at home (no failures there) or on their phone (a refresh token, never throttled)
    still gets in while someone else guesses from many addresses.
    """
    waits = [
        retry_after_s(throttles.account_at_address, now),
        retry_after_s(throttles.address, now),
    ]
    if has_recent_failures(throttles.address, rules.address, now):
        waits.append(retry_after_s(throttles.account, now))
    known = [w for w in waits if w is not None]
    return max(known) if known else None


# Registrations from one address: a household or an office registers a few accounts, a script
# registering thousands waits longer and longer.
REGISTRATION = ThrottleRule(10, base_delay_s=60, max_delay_s=3600)
# Guest tokens per address: a few people paying at a public charger from one carrier NAT, not a
# script minting capabilities (each still needs a live code and a card).
GUEST_TOKENS = ThrottleRule(20, base_delay_s=60, max_delay_s=3600)
# Password reset requests per address, and per e-mail address whether or not it has an
# account (so the throttle tells nothing): three links, then 5 min, 10 min... (not a flood in
# someone's inbox); eleven per address, then waits.
PASSWORD_RESET_PER_ADDRESS = ThrottleRule(10, base_delay_s=60, max_delay_s=3600)
PASSWORD_RESET_PER_EMAIL = ThrottleRule(2, base_delay_s=300, max_delay_s=3600)


# --- refresh tokens -----------------------------------------------------------------------


@dataclass(frozen=True)
class RefreshToken:
    """One refresh token as stored (its secret only as a hash)."""

    token_hash: str
    family_id: uuid.UUID
    user_id: uuid.UUID
    issued_at: datetime
    expires_at: datetime
    used_at: datetime | None = None
    revoked_at: datetime | None = None


@dataclass(frozen=True)
class Rotate:
    """The token is good: mark it used and issue its successor in the same family."""

    used: RefreshToken


@dataclass(frozen=True)
class RevokeFamily:
    """An already-used token came back: someone holds a stolen copy; end the whole family."""

    family_id: uuid.UUID


@dataclass(frozen=True)
class RejectRefresh:
    """Expired, revoked or unknown: refuse, nothing else to do."""

    reason: str


RefreshDecision = Rotate | RevokeFamily | RejectRefresh


def decide_refresh(token: RefreshToken | None, now: datetime) -> RefreshDecision:
    """What presenting this refresh token means (RFC 9700 4.14.2: rotation + reuse detection)."""
    if token is None:
        return RejectRefresh("refresh_token_invalid")
    if token.revoked_at is not None:
        return RejectRefresh("refresh_token_revoked")
    if token.used_at is not None:
        return RevokeFamily(token.family_id)
    if token.expires_at <= now:
        return RejectRefresh("refresh_token_expired")
    return Rotate(replace(token, used_at=now))


# --- access tokens ------------------------------------------------------------------------


@dataclass(frozen=True)
class Account:
    """A user as the rules need it."""

    user_id: uuid.UUID
    email: str
    roles: tuple[str, ...]
    organisation_id: uuid.UUID | None
    groups: tuple[str, ...]
    email_verified: bool


def access_claims(
    account: Account, *, issuer: str, audience: str, now: datetime, ttl_s: int
) -> dict[str, object]:
    """The claims of an access token, as libs/platform's TokenVerifier reads them."""
    issued = int(now.timestamp())
    claims: dict[str, object] = {
        "iss": issuer,
        "aud": audience,
        "sub": str(account.user_id),
        "roles": list(account.roles),
        "groups": sorted(account.groups),
        "email_verified": account.email_verified,
        "iat": issued,
        "nbf": issued,
        "exp": issued + ttl_s,
        "jti": uuid.uuid4().hex,
    }
    if account.organisation_id is not None:
        claims["org"] = str(account.organisation_id)
    return claims


def guest_claims(
    code: str, *, issuer: str, audience: str, now: datetime, ttl_s: int
) -> dict[str, object]:
    """A guest's access token: a fresh subject that owns nothing yet, the role ``guest`` and
    the one session code it may use (as a digest), for as long as one charging session lasts."""
    issued = int(now.timestamp())
    return {
        "iss": issuer,
        "aud": audience,
        "sub": str(uuid.uuid4()),
        "roles": ["guest"],
        "groups": [],
        "email_verified": False,
        "guest_code": code_binding(code),
        "iat": issued,
        "nbf": issued,
        "exp": issued + ttl_s,
        "jti": uuid.uuid4().hex,
    }


def check_staff_account(role: str, organisation_id: uuid.UUID | None) -> None:
    """Operators belong to exactly one organisation; other staff to none."""
    if role == "operator" and organisation_id is None:
        raise Refusal(
            "organisation_required", "an operator belongs to an organisation", status_code=422
        )
    if role in {"admin", "analyst"} and organisation_id is not None:
        raise Refusal(
            "organisation_not_allowed", f"an {role} belongs to no organisation", status_code=422
        )


GROUP_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
