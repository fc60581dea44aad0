"""Which element applies when: restriction checks, and the instants where their outcome changes."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta, tzinfo
from decimal import Decimal
from fractions import Fraction
from itertools import pairwise
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from plugpay_tariffs.model import (
    WEEK,
    ComponentType,
    PriceComponent,
    Tariff,
    TariffRestrictions,
    hhmm,
)


class _Ordered(Protocol):
    def __lt__(self, other: Any, /) -> bool: ...
    def __ge__(self, other: Any, /) -> bool: ...


@dataclass(frozen=True)
class Facts:
    """What is known at one moment of a session; ``None`` means unknown, and is not held against
    a restriction (so the limits can over-approximate and ``describe`` ignores power)."""

    local: datetime
    energy_wh: Fraction | None = None
    duration_s: Fraction | None = None
    power_w: Fraction | None = None
    current_a: Decimal | None = None


def zone(tz: tzinfo | str) -> tzinfo:
    """Accept an IANA name or a tzinfo."""
    return ZoneInfo(tz) if isinstance(tz, str) else tz


def holds(r: TariffRestrictions | None, facts: Facts) -> bool:
    """Whether restrictions ``r`` hold for ``facts`` (lower bounds inclusive, upper exclusive)."""
    if r is None:
        return True
    day = facts.local.date()
    if r.day_of_week is not None and WEEK[day.weekday()] not in r.day_of_week:
        return False
    return (
        _within(day, r.start_date, r.end_date)
        and _in_window(facts.local.time(), r.start_time, r.end_time)
        and _within(facts.energy_wh, r.min_energy_wh, r.max_energy_wh)
        and _within(facts.duration_s, r.min_duration_s, r.max_duration_s)
        and _within(facts.power_w, r.min_power_w, r.max_power_w)
        and _within(facts.current_a, r.min_current_a, r.max_current_a)
    )


def applicable(
    tariff: Tariff, component_type: ComponentType, facts: Facts
) -> tuple[int, PriceComponent] | None:
    """OCPI: the first element, in list order, that holds and has a component of this type."""
    for index, element in enumerate(tariff.elements):
        component = element.component(component_type)
        if component is not None and holds(element.restrictions, facts):
            return index, component
    return None


def wall_clock_breakpoints(
    tariff: Tariff, start: datetime, end: datetime, tz: tzinfo
) -> list[datetime]:
    """Every instant strictly between ``start`` and ``end`` where a time-of-day, weekday or date
    restriction can change outcome: local midnights, each restriction's start/end time (both
    folds of an ambiguous wall time) and each UTC-offset change (DST jumps skip wall times)."""
    walls = {time(0)} | {
        hhmm(value)
        for element in tariff.elements
        if element.restrictions is not None
        for value in (element.restrictions.start_time, element.restrictions.end_time)
        if value is not None
    }
    found: set[datetime] = set()
    day = start.astimezone(tz).date() - timedelta(days=1)
    while day <= end.astimezone(tz).date() + timedelta(days=1):
        for wall in walls:
            for fold in (0, 1):
                instant = datetime.combine(day, wall, tzinfo=tz).replace(fold=fold).astimezone(UTC)
                if start < instant < end:
                    found.add(instant)
        day += timedelta(days=1)
    for a, b in pairwise(sorted(found | {start.astimezone(UTC), end.astimezone(UTC)})):
        if a.astimezone(tz).utcoffset() != b.astimezone(tz).utcoffset():
            change = _offset_change(a, b, tz)
            if start < change < end:
                found.add(change)
    return sorted(found)


def _offset_change(a: datetime, b: datetime, tz: tzinfo) -> datetime:
    # Offsets change on whole seconds: bisect for the first second carrying b's offset.
    target = b.astimezone(tz).utcoffset()
    low, high = math.floor(a.timestamp()), math.ceil(b.timestamp())
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, UTC).astimezone(tz).utcoffset() == target:
            high = middle
        else:
            low = middle
    return datetime.fromtimestamp(high, UTC)


def _within(value: _Ordered | None, low: Any, high: Any) -> bool:
    if value is None:
        return True
    return (low is None or value >= low) and (high is None or value < high)


def _in_window(now: time, start: str | None, end: str | None) -> bool:
    begin = hhmm(start) if start else time(0)
    if end is None:
        return now >= begin
    finish = hhmm(end)
    if begin < finish:
        return begin <= now < finish
    if finish < begin:  # wraps past midnight, e.g. 22:00-06:00
        return now >= begin or now < finish
    return True  # only "end_time 00:00" without start_time: the whole day
