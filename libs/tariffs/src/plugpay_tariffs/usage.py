"""What happened in a session: timestamps and the cumulative meter, as the calculator needs them."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from fractions import Fraction
from itertools import pairwise
from typing import Protocol, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class MeterSample(BaseModel):
    """A meter reading: energy delivered since the session started (Wh, not the meter register),
    and optionally the power and current reported at that moment."""

    model_config = _FROZEN
    at: AwareDatetime
    energy_wh: int = Field(ge=0)
    power_w: int | None = Field(default=None, ge=0)
    current_a: Decimal | None = Field(default=None, ge=0)


class SessionUsage(BaseModel):
    """A session: charging (TIME) from ``started_at`` to ``charging_ended_at``, then parking
    (PARKING_TIME) until ``ended_at`` (unplug). Energy is 0 at ``started_at``, interpolated
    linearly between samples and flat after the last one."""

    model_config = _FROZEN
    started_at: AwareDatetime
    charging_ended_at: AwareDatetime
    ended_at: AwareDatetime
    samples: tuple[MeterSample, ...] = ()

    @model_validator(mode="after")
    def _check(self) -> Self:
        if not self.started_at <= self.charging_ended_at <= self.ended_at:
            raise ValueError("need started_at <= charging_ended_at <= ended_at")
        for earlier, later in pairwise(self.samples):
            if later.at <= earlier.at or later.energy_wh < earlier.energy_wh:
                raise ValueError("samples must have rising timestamps and non-decreasing energy")
        if self.samples and not self.started_at <= self.samples[0].at:
            raise ValueError("samples must not precede started_at")
        if self.samples and not self.samples[-1].at <= self.ended_at:
            raise ValueError("samples must not follow ended_at")
        if self.samples and self.samples[0].at == self.started_at and self.samples[0].energy_wh:
            raise ValueError("energy is counted from started_at, so it is 0 there")
        return self

    @classmethod
    def linear(
        cls,
        started_at: datetime,
        energy_wh: int,
        charging_ended_at: datetime,
        ended_at: datetime | None = None,
    ) -> SessionUsage:
        """A session delivering ``energy_wh`` at a constant rate while charging (for quotes)."""
        samples = (MeterSample(at=charging_ended_at, energy_wh=energy_wh),)
        return cls(
            started_at=started_at,
            charging_ended_at=charging_ended_at,
            ended_at=ended_at or charging_ended_at,
            samples=samples if charging_ended_at > started_at else (),
        )

    @property
    def energy_wh(self) -> int:
        """Energy delivered in the whole session."""
        return self.samples[-1].energy_wh if self.samples else 0

    def offset(self, instant: datetime) -> Fraction:
        """Exact seconds from ``started_at`` to ``instant``."""
        delta = instant - self.started_at
        return Fraction(delta.days * 86_400 + delta.seconds) + Fraction(delta.microseconds, 10**6)


class RegisterReading(Protocol):
    """A station's meter reading as reported: the REGISTER (not energy since the start)."""

    @property
    def sampled_at(self) -> datetime: ...
    @property
    def energy_wh(self) -> int: ...
    @property
    def power_w(self) -> int | None: ...


def usage_from_completion(
    *,
    started_at: datetime,
    charging_ended_at: datetime,
    ended_at: datetime,
    meter_start_wh: int,
    energy_wh: int,
    samples: Sequence[RegisterReading],
) -> SessionUsage:
    """The calculator's usage from a completed session's report, made consistent.

    Samples carry the meter REGISTER; the calculator wants energy since the start, rising in time
    and ending at the reported total. Samples outside the charging time are dropped, the energy is
    clamped to 0..total and made non-decreasing, and the total lands at ``charging_ended_at``
    (the station's total wins over a sample that disagrees). pricing-svc prices the final cost
    with it and station-gateway the cost it tells the station at the end: the same figure.
    """
    charging_ended_at = min(max(charging_ended_at, started_at), ended_at)
    total = max(energy_wh, 0)
    points: list[MeterSample] = []
    level = 0
    for sample in sorted(samples, key=lambda s: s.sampled_at):
        if not started_at < sample.sampled_at < charging_ended_at:
            continue
        if points and sample.sampled_at <= points[-1].at:
            continue
        level = min(max(level, sample.energy_wh - meter_start_wh), total)
        points.append(MeterSample(at=sample.sampled_at, energy_wh=level, power_w=sample.power_w))
    if total and charging_ended_at > started_at:
        points.append(MeterSample(at=charging_ended_at, energy_wh=total))
    elif total and ended_at > started_at:
        # Energy without charging time is a station glitch; spread it over the session.
        points = [MeterSample(at=ended_at, energy_wh=total)]
    return SessionUsage(
        started_at=started_at,
        charging_ended_at=charging_ended_at,
        ended_at=ended_at,
        samples=tuple(points),
    )


class MeterCurve:
    """The cumulative energy curve on exact offsets (seconds since ``started_at``)."""

    def __init__(self, usage: SessionUsage) -> None:
        self.times = [Fraction(0)] + [usage.offset(s.at) for s in usage.samples]
        self.energy = [Fraction(0)] + [Fraction(s.energy_wh) for s in usage.samples]
        self._power: list[int | None] = [None, *(s.power_w for s in usage.samples)]
        self._current: list[Decimal | None] = [None, *(s.current_a for s in usage.samples)]
        if len(self.times) > 1 and self.times[1] == 0:  # a sample at started_at is the origin
            del self.times[0], self.energy[0], self._power[0], self._current[0]

    def energy_at(self, t: Fraction) -> Fraction:
        """Energy delivered by offset ``t`` (linear between samples, flat after the last)."""
        i = bisect_right(self.times, t) - 1
        if i < 0:
            return Fraction(0)
        if i + 1 >= len(self.times):
            return self.energy[-1]
        t0, t1, e0, e1 = self.times[i], self.times[i + 1], self.energy[i], self.energy[i + 1]
        return e0 + (e1 - e0) * (t - t0) / (t1 - t0)

    def reaches(self, energy_wh: Fraction) -> Fraction | None:
        """The first offset at which the delivered energy is at least ``energy_wh``."""
        if energy_wh <= 0:
            return Fraction(0)
        for (t0, e0), (t1, e1) in pairwise(zip(self.times, self.energy, strict=True)):
            if e0 < energy_wh <= e1:
                return t0 + (energy_wh - e0) * (t1 - t0) / (e1 - e0)
        return None

    def power_at(self, t: Fraction) -> Fraction:
        """Reported power at the last sample at or before ``t``, else the segment's average."""
        i = max(bisect_right(self.times, t) - 1, 0)
        reported = self._power[i]
        if reported is not None:
            return Fraction(reported)
        if i + 1 >= len(self.times):
            return Fraction(0)
        rate = (self.energy[i + 1] - self.energy[i]) / (self.times[i + 1] - self.times[i])
        return rate * 3600

    def current_at(self, t: Fraction) -> Decimal | None:
        """Reported current at the last sample at or before ``t``, if any."""
        return self._current[max(bisect_right(self.times, t) - 1, 0)]
