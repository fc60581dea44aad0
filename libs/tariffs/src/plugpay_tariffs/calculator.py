"""The cost of a session under a tariff, after OCPI 2.2.1.

Periods. The session is cut at every instant where the applicable element can change: the start
of parking, meter samples (power changes), local midnights and restriction times in the station's
zone (incl. DST jumps), duration thresholds and energy thresholds (interpolated between samples).
Within a period every restriction has one outcome, taken at the period's midpoint.

Dimensions. In each period, for ENERGY (the energy delivered in it), TIME (while charging) and
PARKING_TIME (after charging ended), the FIRST element in list order that holds and has a
component of that type prices the period. FLAT is charged once per session, by the first FLAT
component that applies (in time order, then list order); a session with no energy and no time
costs only that FLAT fee.

Step size (OCPI). Per dimension, the total volume is rounded up to a multiple of the step_size of
the element that priced the dimension's LAST period, and the extra volume is billed at that
element's price.

Rounding. Volumes are exact (``Fraction``). Volume of one dimension priced by one element is one
line; each line's amount is computed exactly and rounded half-up to the minor unit ONCE. A line's
VAT is its rounded amount times its VAT percent, rounded half-up. Totals are sums of lines. If the
excl.-VAT total is below ``min_price`` or above ``max_price`` it is replaced by that price and the
VAT total is re-derived from it at the lines' VAT rate weighted by their excl.-VAT amounts (with a
single VAT rate, that rate; when the lines sum to 0, the tariff's highest VAT rate), rounded
half-up. So the excl.-VAT total of lines is within half a minor unit per line of the exact price.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from itertools import pairwise

from pydantic import AwareDatetime, BaseModel, ConfigDict

from plugpay_tariffs.evaluation import Facts, applicable, wall_clock_breakpoints, zone
from plugpay_tariffs.model import ComponentType, PriceComponent, Tariff
from plugpay_tariffs.usage import MeterCurve, SessionUsage

ROUNDING = (
    "Each line (one component type under one tariff element) is priced exactly and rounded "
    "half-up to the minor unit once; its VAT is the rounded amount times the VAT percent, rounded "
    "half-up; totals are sums of lines. A min/max price replaces the excl.-VAT total and VAT is "
    "re-derived at the lines' excl.-VAT-weighted VAT rate, rounded half-up."
)

# Units the per-unit prices are quoted in: per kWh (in Wh), per hour (in s), per session.
UNIT = {
    ComponentType.FLAT: 1,
    ComponentType.ENERGY: 1000,
    ComponentType.TIME: 3600,
    ComponentType.PARKING_TIME: 3600,
}
_FROZEN = ConfigDict(frozen=True, extra="forbid")


class CostLine(BaseModel):
    """One component type billed under one tariff element. ``quantity`` is in Wh (ENERGY),
    seconds (TIME, PARKING_TIME) or 1 (FLAT), shown to 0.001, and includes ``step_extra``;
    ``unit_price`` is the tariff's excl.-VAT price per kWh / hour / session in major units.
    The period spans the first to the last moment this line was billed."""

    model_config = _FROZEN
    component_type: ComponentType
    element_index: int
    quantity: Decimal
    step_extra: Decimal
    unit_price: Decimal
    amount_excl_vat: int
    vat_percent: Decimal
    vat: int
    amount_incl_vat: int
    period_start: AwareDatetime
    period_end: AwareDatetime


class CostBreakdown(BaseModel):
    """The cost of a session, in the tariff's currency's minor units."""

    model_config = _FROZEN
    tariff_id: str
    tariff_version: int
    currency: str
    lines: tuple[CostLine, ...]
    energy_wh: int
    charging_s: Decimal
    parking_s: Decimal
    lines_excl_vat: int
    lines_vat: int
    total_excl_vat: int
    total_vat: int
    total_incl_vat: int
    min_price_applied: bool
    max_price_applied: bool
    rounding: str = ROUNDING


@dataclass
class _Billed:
    component: PriceComponent
    start: Fraction
    end: Fraction = Fraction(0)
    volume: Fraction = Fraction(0)
    extra: Fraction = Fraction(0)


def half_up(value: Fraction) -> int:
    """Round a non-negative exact amount half-up to an integer."""
    return math.floor(value + Fraction(1, 2))


def minor_per_unit(component: PriceComponent, exponent: int) -> Fraction:
    """Excl.-VAT price in minor units per Wh, per second, or per session."""
    return Fraction(component.price) * Fraction(10) ** exponent / UNIT[component.type]


def calculate_cost(tariff: Tariff, usage: SessionUsage, tz: tzinfo | str) -> CostBreakdown:
    """Price ``usage`` under ``tariff``, evaluating restrictions in the station's zone ``tz``.

    See the module docstring for periods, OCPI's first-match and step-size rules, and rounding.
    """
    tz = zone(tz)
    curve = MeterCurve(usage)
    end, charge_end = usage.offset(usage.ended_at), usage.offset(usage.charging_ended_at)
    cuts = {Fraction(0), charge_end, end, *curve.times}
    walls = wall_clock_breakpoints(tariff, usage.started_at, usage.ended_at, tz)
    cuts |= {usage.offset(instant) for instant in walls}
    for element in tariff.elements:
        r = element.restrictions
        if r is None:
            continue
        cuts |= {Fraction(s) for s in (r.min_duration_s, r.max_duration_s) if s is not None}
        for wh in (r.min_energy_wh, r.max_energy_wh):
            reached = None if wh is None else curve.reaches(Fraction(wh))
            if reached is not None:
                cuts.add(reached)
    points = sorted(c for c in cuts if 0 <= c <= end)
    periods = list(pairwise(points)) or [(Fraction(0), Fraction(0))]

    billed: dict[tuple[ComponentType, int], _Billed] = {}  # insertion order = first billed
    last: dict[ComponentType, tuple[int, PriceComponent]] = {}

    def bill(kind: ComponentType, facts: Facts, volume: Fraction, a: Fraction, b: Fraction) -> None:
        found = applicable(tariff, kind, facts)
        if found is not None:
            entry = billed.setdefault((kind, found[0]), _Billed(found[1], start=a))
            entry.volume += volume
            entry.end = b
            last[kind] = found

    for a, b in periods:
        mid = (a + b) / 2
        facts = Facts(
            local=_instant(usage.started_at, mid).astimezone(tz),
            energy_wh=curve.energy_at(mid),
            duration_s=mid,
            power_w=curve.power_at(mid),
            current_a=curve.current_at(mid),
        )
        if ComponentType.FLAT not in last:
            bill(ComponentType.FLAT, facts, Fraction(1), a, b)
        energy = curve.energy_at(b) - curve.energy_at(a)
        if energy > 0:
            bill(ComponentType.ENERGY, facts, energy, a, b)
        if b > a:
            kind = ComponentType.TIME if mid < charge_end else ComponentType.PARKING_TIME
            bill(kind, facts, b - a, a, b)

    for kind, (index, component) in last.items():
        if kind is not ComponentType.FLAT:
            total = sum((v.volume for (k, _), v in billed.items() if k is kind), Fraction(0))
            step = component.step_size
            billed[(kind, index)].extra = math.ceil(total / step) * step - total

    lines = []
    for (kind, index), entry in billed.items():
        quantity, component = entry.volume + entry.extra, entry.component
        excl = half_up(quantity * minor_per_unit(component, tariff.exponent))
        vat = half_up(excl * Fraction(component.vat) / 100)
        lines.append(
            CostLine(
                component_type=kind,
                element_index=index,
                quantity=_decimal(quantity),
                step_extra=_decimal(entry.extra),
                unit_price=component.price,
                amount_excl_vat=excl,
                vat_percent=component.vat,
                vat=vat,
                amount_incl_vat=excl + vat,
                period_start=_instant(usage.started_at, entry.start),
                period_end=_instant(usage.started_at, entry.end),
            )
        )
    return _totals(tariff, usage, lines, charge_end, end)


def _totals(
    tariff: Tariff, usage: SessionUsage, lines: list[CostLine], charge_end: Fraction, end: Fraction
) -> CostBreakdown:
    lines_excl = sum(line.amount_excl_vat for line in lines)
    lines_vat = sum(line.vat for line in lines)
    total_excl, total_vat = lines_excl, lines_vat
    if tariff.min_price is not None:
        total_excl = max(total_excl, tariff.min_price)
    if tariff.max_price is not None:
        total_excl = min(total_excl, tariff.max_price)
    if total_excl != lines_excl:
        # The excl.-VAT-weighted VAT rate of the lines: with one rate, exactly that rate.
        weighted = sum((x.amount_excl_vat * Fraction(x.vat_percent) for x in lines), Fraction())
        rate = weighted / lines_excl if lines_excl else Fraction(highest_vat(tariff))
        total_vat = half_up(total_excl * rate / 100)
    return CostBreakdown(
        tariff_id=tariff.id,
        tariff_version=tariff.version,
        currency=tariff.currency,
        lines=tuple(lines),
        energy_wh=usage.energy_wh,
        charging_s=_decimal(charge_end),
        parking_s=_decimal(end - charge_end),
        lines_excl_vat=lines_excl,
        lines_vat=lines_vat,
        total_excl_vat=total_excl,
        total_vat=total_vat,
        total_incl_vat=total_excl + total_vat,
        min_price_applied=total_excl > lines_excl,
        max_price_applied=total_excl < lines_excl,
    )


def highest_vat(tariff: Tariff) -> Decimal:
    """The highest VAT percent of any component of the tariff (0 if none)."""
    return max((c.vat for e in tariff.elements for c in e.price_components), default=Decimal(0))


def _instant(started_at: datetime, offset: Fraction) -> datetime:
    # Floor to the microsecond: all cuts other than energy thresholds are whole microseconds.
    return started_at + timedelta(microseconds=math.floor(offset * 10**6))


def _decimal(value: Fraction) -> Decimal:
    if value.denominator == 1:
        return Decimal(value.numerator)
    exact = Decimal(value.numerator) / Decimal(value.denominator)
    return exact.quantize(Decimal("0.001"), rounding=ROUND_HALF_UP)
