"""Plain prices for the app and the station screen, before charging starts."""

from __future__ import annotations

from datetime import datetime, tzinfo
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

from pydantic import AwareDatetime, BaseModel, ConfigDict

from plugpay_tariffs.evaluation import Facts, applicable, zone
from plugpay_tariffs.model import ComponentType, PriceComponent, Tariff


class TariffSummary(BaseModel):
    """Prices incl. VAT in major units for the elements applicable at ``at`` (None: not charged).

    Prices are rounded half-up to two decimals more than the currency has, trailing zeros cut
    down to the currency's decimals, so ``text`` and the fields show the same numbers.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    tariff_id: str
    currency: str
    at: AwareDatetime
    per_kwh: Decimal | None
    per_hour: Decimal | None
    per_minute: Decimal | None
    per_session: Decimal | None
    idle_per_hour: Decimal | None
    idle_per_minute: Decimal | None
    vat_percent: Decimal | None
    text: str


def describe(tariff: Tariff, at: datetime, tz: tzinfo | str) -> TariffSummary:
    """Summarise what a session starting at ``at`` pays: the elements that hold then, with no
    energy delivered and no time elapsed yet (power and current restrictions are not known)."""
    if at.tzinfo is None:
        raise ValueError("at must be timezone-aware")
    facts = Facts(local=at.astimezone(zone(tz)), energy_wh=Fraction(0), duration_s=Fraction(0))
    shown = {
        kind: found[1]
        for kind in ComponentType
        if (found := applicable(tariff, kind, facts)) is not None
    }
    exponent = tariff.exponent

    def price(kind: ComponentType, per: int = 1) -> Decimal | None:
        component = shown.get(kind)
        return None if component is None else _display(_incl_vat(component) / per, exponent)

    per_kwh, per_hour = price(ComponentType.ENERGY), price(ComponentType.TIME)
    per_minute = price(ComponentType.TIME, 60)
    per_session = price(ComponentType.FLAT)
    idle_hour = price(ComponentType.PARKING_TIME)
    idle_minute = price(ComponentType.PARKING_TIME, 60)
    rates = {c.vat for c in shown.values() if c.price > 0}
    vat = rates.pop() if len(rates) == 1 else None
    cur = tariff.currency
    parts = [
        f"{value} {label}"
        for value, label in (
            (per_kwh, f"{cur}/kWh"),
            (per_hour, f"{cur}/h"),
            (per_session, f"{cur} per session"),
            (idle_minute, f"{cur}/min idle"),
        )
        if value
    ]
    if not parts:
        text = "free of charge"
    elif vat is None:
        text = " + ".join(parts) + ", incl. VAT"
    elif vat == 0:
        text = " + ".join(parts) + ", no VAT"
    else:
        text = " + ".join(parts) + f", incl. {format(vat.normalize(), 'f')}% VAT"
    return TariffSummary(
        tariff_id=tariff.id,
        currency=cur,
        at=at,
        per_kwh=per_kwh,
        per_hour=per_hour,
        per_minute=per_minute,
        per_session=per_session,
        idle_per_hour=idle_hour,
        idle_per_minute=idle_minute,
        vat_percent=vat,
        text=text,
    )


def _incl_vat(component: PriceComponent) -> Decimal:
    return component.price * (1 + component.vat / 100)


def _display(value: Decimal, exponent: int) -> Decimal:
    rounded = value.quantize(Decimal(1).scaleb(-(exponent + 2)), rounding=ROUND_HALF_UP)
    significant = -int(rounded.normalize().as_tuple().exponent)
    return rounded.quantize(Decimal(1).scaleb(-max(exponent, significant)))
