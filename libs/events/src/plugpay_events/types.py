"""Value types shared by every contract: money, energy, UTC time."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from plugpay_tariffs.currencies import CURRENCIES
from pydantic import AfterValidator, BaseModel, ConfigDict, Field


def _utc(value: datetime) -> datetime:
    # Naive datetimes are ambiguous on the wire; refuse them instead of guessing a zone.
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("datetime must be timezone-aware")
    return value.astimezone(UTC)


def _currency(value: str) -> str:
    if value not in CURRENCIES:
        raise ValueError(f"unknown ISO-4217 currency {value!r}")
    return value


UtcDatetime = Annotated[datetime, AfterValidator(_utc)]
"""A timezone-aware datetime, normalised to UTC."""

CurrencyCode = Annotated[str, Field(pattern=r"^[A-Z]{3}$"), AfterValidator(_currency)]
"""An active ISO-4217 currency code."""

WattHours = Annotated[int, Field(ge=0)]
"""Energy in whole watt-hours."""


class Money(BaseModel):
    """An amount in integer minor units (cents) of an ISO-4217 currency."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    amount_minor: int
    currency: CurrencyCode

    def __add__(self, other: Money) -> Money:
        if other.currency != self.currency:
            raise ValueError("cannot add amounts in different currencies")
        return Money(amount_minor=self.amount_minor + other.amount_minor, currency=self.currency)


def utc_now() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)
