"""Value types shared by every contract: money, energy, UTC time."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from plugpay_tariffs.currencies import CURRENCIES
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)


def _utc(value: datetime) -> datetime:
    # Naive datetimes are ambiguous on the wire; refuse them instead of guessing a zone.
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("datetime must be timezone-aware")
    return value.astimezone(UTC)


def _parse_utc(value: object, handler: ValidatorFunctionWrapHandler) -> datetime:
    # A calendar date-time string (every JSON time) is parsed by the C parser, which gives
    # datetime.UTC itself for "Z" and "+00:00"; pydantic's parser gives its own fixed zone,
    # which costs a conversion here and a Python call per comparison later. Anything else,
    # or what the C parser refuses, goes to pydantic's parser (and its error messages).
    if type(value) is str and value[4:5] == value[7:8] == "-" and value[10:11] in _SEPARATORS:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            parsed = handler(value)
    else:
        parsed = handler(value)
    if parsed.tzinfo is UTC:
        return parsed
    return _utc(parsed)


_SEPARATORS = frozenset("Tt ")


def _currency(value: str) -> str:
    if value not in CURRENCIES:
        raise ValueError(f"unknown ISO-4217 currency {value!r}")
    return value


UtcDatetime = Annotated[datetime, WrapValidator(_parse_utc)]
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
