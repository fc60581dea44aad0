"""How much charging an amount of money buys: conservative energy and time limits.

Guarantee: for every session that starts within ``start_window_s`` after ``start_at``, charges at
most ``max_power_w``, delivers at most ``max_energy_wh`` within at most ``max_duration_s`` and has
NO parking time, ``calculate_cost(...).total_incl_vat <= budget``. Parking (idle) time is not
covered: it is billed after the fact and is the billing service's risk to hold for separately.

How. Over the window ``[start_at, start_at + start_window_s + horizon_s]`` an element is a
candidate when its time-of-day / weekday / date restrictions hold somewhere in it and its
``min_power_w`` is reachable; energy, duration and current restrictions are assumed to hold. The
bound prices every dimension at its most expensive candidate incl. VAT, adds the most expensive
FLAT fee, one full step of every dimension (OCPI bills a partial step at most once per
dimension) and 1.5 minor units of rounding per possible line (half a unit on the amount, half on
the VAT, and VAT on the half unit). ``min_price`` and ``max_price`` are honoured the same way.
The limits assume charging at ``max_power_w``: time is what the budget buys at full power, and a
tariff with no time price gets the whole horizon.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta, tzinfo
from fractions import Fraction
from itertools import pairwise
from typing import Literal

from pydantic import BaseModel, ConfigDict

from plugpay_tariffs.calculator import highest_vat, minor_per_unit
from plugpay_tariffs.evaluation import Facts, holds, wall_clock_breakpoints, zone
from plugpay_tariffs.model import ComponentType, Tariff, TariffElement

NOTE = "Limits exclude parking (idle) time; idle fees are not covered by the budget."


class PurchaseLimits(BaseModel):
    """The most energy and charging time a budget safely buys; zeros when ``affordable`` is
    False. ``limited_by`` says whether the budget or the horizon bound the result."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    affordable: bool
    max_energy_wh: int
    max_duration_s: int
    limited_by: Literal["budget", "horizon"]
    budget_incl_vat: int
    currency: str
    horizon_s: int
    note: str = NOTE


def purchasable_limits(
    tariff: Tariff,
    budget_minor_incl_vat: int,
    start_at: datetime,
    tz: tzinfo | str,
    max_power_w: int,
    *,
    horizon_s: int = 86_400,
    start_window_s: int = 60,
) -> PurchaseLimits:
    """Energy (Wh) and charging time (s) that ``budget_minor_incl_vat`` buys at this station
    when charging starts now; conservative, see the module docstring for the guarantee."""
    if max_power_w <= 0 or horizon_s <= 0 or start_window_s < 0:
        raise ValueError("max_power_w and horizon_s must be positive, start_window_s not negative")
    if start_at.tzinfo is None:
        raise ValueError("start_at must be timezone-aware")
    candidates = _candidates(
        tariff,
        start_at,
        start_at + timedelta(seconds=start_window_s + horizon_s),
        zone(tz),
        max_power_w,
    )

    def worst(kind: ComponentType) -> tuple[Fraction, int, int]:
        # (highest price incl. VAT per unit, largest step, number of candidate lines)
        found = [c for e in candidates if (c := e.component(kind)) is not None]
        price = max(
            (minor_per_unit(c, tariff.exponent) * (1 + Fraction(c.vat) / 100) for c in found),
            default=Fraction(0),
        )
        return price, max((c.step_size for c in found), default=0), len(found)

    flat, _, flat_lines = worst(ComponentType.FLAT)
    energy_price, energy_step, energy_lines = worst(ComponentType.ENERGY)
    time_price, time_step, time_lines = worst(ComponentType.TIME)
    lines = min(flat_lines, 1) + energy_lines + time_lines
    vat = 1 + Fraction(highest_vat(tariff)) / 100
    budget = Fraction(budget_minor_incl_vat)
    full_energy = max_power_w * horizon_s // 3600
    full = (full_energy, horizon_s)

    def result(energy_wh: int, duration_s: int) -> PurchaseLimits:
        affordable = energy_wh > 0 and duration_s > 0
        return PurchaseLimits(
            affordable=affordable,
            max_energy_wh=energy_wh if affordable else 0,
            max_duration_s=duration_s if affordable else 0,
            limited_by="horizon" if (energy_wh, duration_s) == full else "budget",
            budget_incl_vat=budget_minor_incl_vat,
            currency=tariff.currency,
            horizon_s=horizon_s,
        )

    # Below min_price, the total is min_price plus VAT at no more than the highest rate.
    if tariff.min_price is not None and budget < tariff.min_price * vat + Fraction(1, 2):
        return result(0, 0)
    # Above max_price the total is capped; at or below it, lines round up by at most 1/2 each.
    if tariff.max_price is not None and budget >= tariff.max_price * vat + Fraction(lines, 2):
        return result(full_energy, horizon_s)
    rest = (
        budget - flat - Fraction(3, 2) * lines - energy_price * energy_step - time_price * time_step
    )
    if rest < 0:
        return result(0, 0)
    if time_price == 0:
        if energy_price == 0:
            return result(*full)
        return result(min(full_energy, math.floor(rest / energy_price)), horizon_s)
    duration = min(horizon_s, math.floor(rest / (time_price + energy_price * max_power_w / 3600)))
    return result(max_power_w * duration // 3600, duration)


def _candidates(
    tariff: Tariff, start: datetime, end: datetime, tz: tzinfo, max_power_w: int
) -> list[TariffElement]:
    cuts = [start, *wall_clock_breakpoints(tariff, start, end, tz), end]
    moments = [(a + (b - a) / 2).astimezone(tz) for a, b in pairwise(cuts)]
    return [
        e
        for e in tariff.elements
        if (e.restrictions is None or (e.restrictions.min_power_w or 0) <= max_power_w)
        and any(holds(e.restrictions, Facts(local=m)) for m in moments)
    ]
