"""What to mail for which event, and when to try again: pure, no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from plugpay_events.types import Money

MailKind = Literal[
    "verify_email",
    "password_reset",
    "password_changed",
    "group_invitation",
    "receipt",
    "top_up_done",
    "top_up_declined",
    "refund_issued",
    "session_held",
    "session_reviewed",
    "card_expiring",
]
# Mails a driver may switch off; everything else concerns the account's security or money
# taken without a session (top-ups, refunds) and is always sent.
OPTIONAL_KINDS: frozenset[MailKind] = frozenset({"receipt"})
# A mail's delivery state, one life cycle:
#   [awaiting_address ->] queued -> (sending -> queued)* -> sent | failed
# "awaiting_address": the event came before the one telling the user's address (topics are
# consumed independently); learning the address queues it.
MailState = Literal["awaiting_address", "queued", "sending", "sent", "failed"]


@dataclass(frozen=True)
class Contact:
    """What notification-svc keeps of a user: where to write, and what they want."""

    user_id: str
    email: str | None
    receipts: bool = True


def wanted(kind: MailKind, contact: Contact | None) -> bool:
    """Whether a mail of ``kind`` goes to this contact (an unknown one has opted out of
    nothing: the mail waits for its address)."""
    if contact is None:
        return True
    return kind not in OPTIONAL_KINDS or contact.receipts


def is_history(occurred_at: datetime, now: datetime, max_age: timedelta) -> bool:
    """An event this old is a replay of the log, not news: it sends nothing."""
    return now - occurred_at > max_age


def retry_delay(attempts: int, base_s: float, max_s: float) -> timedelta:
    """Exponential back-off after ``attempts`` failed tries: base, 2 base, 4 base... capped."""
    return timedelta(seconds=min(max_s, base_s * 2 ** max(0, attempts - 1)))


def after_failure(
    attempts: int, max_attempts: int, now: datetime, base_s: float, max_s: float
) -> tuple[MailState, datetime | None]:
    """The next state of a mail whose ``attempts``-th try failed, and when to try again."""
    if attempts >= max_attempts:
        return "failed", None
    return "queued", now + retry_delay(attempts, base_s, max_s)


def format_money(money: Money) -> str:
    """``12.34 EUR`` from minor units (ISO-4217 currencies with 2 decimals; JPY-like with 0)."""
    digits = 0 if money.currency in {"JPY", "KRW", "ISK", "CLP", "VND"} else 2
    sign = "-" if money.amount_minor < 0 else ""
    whole, part = divmod(abs(money.amount_minor), 10**digits)
    return (
        f"{sign}{whole}.{part:0{digits}d} {money.currency}"
        if digits
        else f"{sign}{whole} {money.currency}"
    )


def card_expired(exp_month: int, exp_year: int, now: datetime) -> bool:
    """A card is good through the last day of its expiry month."""
    return (now.year, now.month) > (exp_year, exp_month)
