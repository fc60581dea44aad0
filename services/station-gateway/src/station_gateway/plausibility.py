"""Is a station's meter evidence physically plausible? One pure judgement, no I/O, no clock.

A station's register readings, power samples, statuses and timestamps are claims. Before
anything is billed they are checked against what we know ourselves: the connector's registered
maximum power, when we authorised the session and when we received its stop, and the station's
clock skew. The result is the values to bill and why they differ from the claim, if they do:

- ``accepted``: billed exactly as reported;
- ``corrected``: billed from the plausible part of the evidence by a fixed rule (the highest
  valid register reading, the time we saw), the reasons recorded as codes;
- ``held``: the evidence contradicts itself in a way no rule resolves (a jump, a reset, more
  energy than the connector can deliver); only the plausible part is billable until an
  operator decides.

The register is read as a chain: each step between consecutive readings (meterStart, the
samples in time order, meterStop) counts only if it is monotone and within the connector's
power over the step's duration. Steps that are not are discarded and reported; the energy is
the sum of the counted steps, capped by the physical bound over the time we observed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Literal

Outcome = Literal["accepted", "corrected", "held"]

# Meters are class 1-2 and a 22 kW connector may deliver 22.08 kW: 5 % headroom on power.
POWER_TOLERANCE_PERCENT = 5
# Meter resolution and rounding of whole-session figures.
ENERGY_SLACK_WH = 100
# Timestamps often have whole-second resolution: a step may be up to this much longer.
TIMESTAMP_RESOLUTION = timedelta(seconds=2)
# Network delay and clock setting granularity, on top of the station's measured skew.
CLOCK_SLACK = timedelta(seconds=30)
# Below this average power a step is idle (the car's electronics, meter creep), not charging.
IDLE_POWER_W = 200
# A station's status may lag its meter by about a sample interval before it is a mislabel, and
# idle time this short (the last sample to the unplug) is not parking.
IDLE_SLACK = timedelta(seconds=60)

CHARGING_STATUSES = frozenset({"Charging"})
IDLE_STATUSES = frozenset({"SuspendedEV", "SuspendedEVSE", "Finishing", "Available", "EVConnected"})


class Reason(StrEnum):
    """Why billed values differ from the station's claim (machine-readable, stable)."""

    START_BEFORE_AUTHORISATION = "start_before_authorisation"
    START_IN_FUTURE = "start_in_future"
    STOP_BEFORE_AUTHORISATION = "stop_before_authorisation"
    STOP_IN_FUTURE = "stop_in_future"
    STOP_BEFORE_START = "stop_before_start"
    SAMPLE_TIME_IMPLAUSIBLE = "sample_time_implausible"
    CONFLICTING_SAMPLES = "conflicting_samples"
    METER_START_MISMATCH = "meter_start_mismatch"
    METER_STOP_BELOW_REGISTER = "meter_stop_below_register"
    METER_STOP_JUMP = "meter_stop_jump"
    SAMPLES_DISAGREE_WITH_TRANSACTION = "samples_disagree_with_transaction"
    REGISTER_REGRESSION = "register_regression"
    REGISTER_RESET = "register_reset"
    REGISTER_JUMP = "register_jump"
    ENERGY_ABOVE_PHYSICAL_BOUND = "energy_above_physical_bound"
    IDLE_REPORTED_AS_CHARGING = "idle_reported_as_charging"


# Evidence no fixed rule can settle: unknown energy was discarded or the total is impossible.
HOLDING_REASONS = frozenset(
    {Reason.REGISTER_RESET, Reason.REGISTER_JUMP, Reason.ENERGY_ABOVE_PHYSICAL_BOUND}
)


@dataclass(frozen=True)
class Sample:
    """One reported reading: the cumulative register (Wh) at the station's time."""

    at: datetime
    register_wh: int
    power_w: int | None = None


@dataclass(frozen=True)
class StatusChange:
    """A connector status (OCPP 1.6 status or 2.0.1 charging state) at the station's time."""

    at: datetime
    status: str


@dataclass(frozen=True)
class MeterEvidence:
    """Everything known about a finished transaction: the station's claims and our own facts.

    ``authorized_at`` and ``stop_received_at`` are our clock; ``start_received_at`` too (when
    known). ``clock_skew`` is how far the station's clock was seen to be off ours (at boot,
    heartbeats, status messages), as a magnitude.
    """

    max_power_w: int
    authorized_at: datetime
    stop_received_at: datetime
    started_at: datetime
    stopped_at: datetime
    meter_start_wh: int | None
    meter_stop_wh: int | None
    samples: Sequence[Sample] = ()
    statuses: Sequence[StatusChange] = ()
    clock_skew: timedelta = timedelta(0)
    start_received_at: datetime | None = None


@dataclass(frozen=True)
class Claim:
    """What the station said, as it would be billed without judgement."""

    meter_start_wh: int
    meter_stop_wh: int
    energy_wh: int
    started_at: datetime
    ended_at: datetime


@dataclass(frozen=True)
class Judgement:
    """The billable view of a session and why it differs from the claim."""

    outcome: Outcome
    reasons: tuple[Reason, ...]
    meter_start_wh: int
    meter_stop_wh: int
    energy_wh: int
    started_at: datetime
    charging_ended_at: datetime
    ended_at: datetime
    max_energy_wh: int
    claimed: Claim
    # The samples as billed: times kept, register rebuilt from the counted steps only, so that
    # ``register - meter_start_wh`` is the billed energy so far.
    samples: tuple[Sample, ...] = field(default=())

    @property
    def charging_s(self) -> int:
        return int((self.charging_ended_at - self.started_at).total_seconds())

    @property
    def idle_s(self) -> int:
        return int((self.ended_at - self.charging_ended_at).total_seconds())


def max_energy_wh(max_power_w: int, duration: timedelta, slack_wh: int = ENERGY_SLACK_WH) -> int:
    """The most a connector can deliver in ``duration``, with the tolerance and a constant."""
    micros = max(0, duration // timedelta(microseconds=1))
    percent = 100 + POWER_TOLERANCE_PERCENT
    return max_power_w * micros * percent // (3600 * 10**6 * 100) + slack_wh


def _step_bound_wh(max_power_w: int, duration: timedelta) -> int:
    # Per-step: one timestamp's rounding plus the meter's last digit.
    return max_energy_wh(max_power_w, duration + TIMESTAMP_RESOLUTION, slack_wh=1)


@dataclass
class _Chain:
    """The register read step by step; only monotone, physically possible steps count."""

    max_power_w: int
    reasons: list[Reason]
    ref_wh: int
    ref_at: datetime
    segment_floor_wh: int
    energy_wh: int = 0
    # Billed register at each sample time (the counted energy so far).
    billed: list[tuple[datetime, int, int | None]] = field(default_factory=list)
    # (start, end) of every step that delivered energy, with its average power.
    deliveries: list[tuple[datetime, datetime, int]] = field(default_factory=list)

    def step(
        self,
        at: datetime,
        register_wh: int,
        *,
        on_regression: Reason,
        on_reset: Reason,
        on_jump: Reason,
    ) -> None:
        delta = register_wh - self.ref_wh
        duration = at - self.ref_at
        if delta < 0:
            if register_wh < self.segment_floor_wh:
                # Below where this stretch of register began: the meter restarted. Count on
                # from the new value, but the lost stretch needs a person.
                self.reasons.append(on_reset)
                self.ref_wh, self.ref_at, self.segment_floor_wh = register_wh, at, register_wh
            else:
                # Backwards: the reading is wrong, the highest valid reading stands.
                self.reasons.append(on_regression)
            return
        if delta > _step_bound_wh(self.max_power_w, duration):
            # More than the connector can deliver in the step: none of it counts, and the
            # register goes on from the new value (a baseline the station got wrong).
            self.reasons.append(on_jump)
            self.ref_wh, self.ref_at, self.segment_floor_wh = register_wh, at, register_wh
            return
        if delta > 0:
            seconds = max(duration.total_seconds(), 1e-6)
            self.deliveries.append((self.ref_at, at, int(delta * 3600 / seconds)))
        self.energy_wh += delta
        self.ref_wh, self.ref_at = register_wh, at


def judge(evidence: MeterEvidence) -> Judgement:
    """The billable values of a finished transaction from its meter evidence."""
    if evidence.max_power_w <= 0:
        raise ValueError("max_power_w must be positive")
    e = evidence
    reasons: list[Reason] = []
    tolerance = abs(e.clock_skew) + CLOCK_SLACK
    earliest = e.authorized_at - tolerance
    latest = e.stop_received_at + tolerance

    claimed_start = e.meter_start_wh
    if claimed_start is None:
        claimed_start = min(e.samples, key=lambda s: s.at).register_wh if e.samples else 0
    claimed_stop = e.meter_stop_wh
    if claimed_stop is None:
        # A transaction without meterStop (2.0.1, a lost one) claims its highest reading.
        claimed_stop = max(
            (s.register_wh for s in e.samples if e.started_at <= s.at <= e.stopped_at),
            default=claimed_start,
        )
    claim = Claim(
        meter_start_wh=claimed_start,
        meter_stop_wh=claimed_stop,
        energy_wh=max(0, claimed_stop - claimed_start),
        started_at=e.started_at,
        ended_at=e.stopped_at,
    )
    # A register is never negative: such a reading is no reading at all.
    if claimed_start < 0:
        reasons.append(Reason.METER_START_MISMATCH)
        claimed_start = next((s.register_wh for s in e.samples if s.register_wh >= 0), 0)
    meter_stop_wh = e.meter_stop_wh
    if meter_stop_wh is not None and meter_stop_wh < 0:
        reasons.append(Reason.METER_STOP_BELOW_REGISTER)
        meter_stop_wh = None

    # Time: the station's stamps must fall between our authorisation and our receipt of the
    # stop (widened by its clock skew); otherwise the time we saw is used.
    started_at = e.started_at
    if started_at < earliest:
        reasons.append(Reason.START_BEFORE_AUTHORISATION)
        started_at = e.authorized_at
    elif started_at > latest:
        reasons.append(Reason.START_IN_FUTURE)
        started_at = min(e.start_received_at or e.authorized_at, e.stop_received_at)
    ended_at = e.stopped_at
    if ended_at > latest:
        reasons.append(Reason.STOP_IN_FUTURE)
        ended_at = e.stop_received_at
    elif ended_at < earliest:
        reasons.append(Reason.STOP_BEFORE_AUTHORISATION)
        ended_at = e.stop_received_at
    if ended_at < started_at:
        reasons.append(Reason.STOP_BEFORE_START)
        ended_at = max(started_at, e.stop_received_at)

    samples: list[Sample] = []
    seen: dict[datetime, int] = {}
    for sample in sorted(e.samples, key=lambda s: s.at):
        if sample.at < earliest or sample.at > latest:
            reasons.append(Reason.SAMPLE_TIME_IMPLAUSIBLE)
            continue
        if sample.register_wh < 0:
            reasons.append(Reason.REGISTER_RESET)
            continue
        if sample.at < started_at or sample.at > ended_at:
            continue  # a reading outside the transaction
        if sample.at in seen:
            if seen[sample.at] != sample.register_wh:
                # Two registers at one instant: the first stands, the claim is not billed.
                reasons.append(Reason.CONFLICTING_SAMPLES)
            continue
        seen[sample.at] = sample.register_wh
        samples.append(sample)

    # Energy: the register chain, meterStart first.
    baseline = claimed_start
    chain = _Chain(e.max_power_w, reasons, baseline, started_at, baseline)
    for index, sample in enumerate(samples):
        first = index == 0
        chain.step(
            sample.at,
            sample.register_wh,
            on_regression=Reason.METER_START_MISMATCH if first else Reason.REGISTER_REGRESSION,
            on_reset=Reason.METER_START_MISMATCH if first else Reason.REGISTER_RESET,
            on_jump=Reason.METER_START_MISMATCH if first else Reason.REGISTER_JUMP,
        )
        if first and chain.reasons and chain.reasons[-1] is Reason.METER_START_MISMATCH:
            # The first reading is the better baseline: meterStart of a station that was
            # offline (0) or that mixed up its units disagrees with its own register.
            baseline = sample.register_wh
            chain.ref_wh, chain.ref_at, chain.segment_floor_wh = baseline, sample.at, baseline
        chain.billed.append((sample.at, baseline + chain.energy_wh, sample.power_w))
    if meter_stop_wh is not None:
        alone = not samples
        chain.step(
            ended_at,
            meter_stop_wh,
            on_regression=Reason.REGISTER_RESET if alone else Reason.METER_STOP_BELOW_REGISTER,
            on_reset=Reason.REGISTER_RESET if alone else Reason.METER_STOP_BELOW_REGISTER,
            on_jump=Reason.REGISTER_JUMP if alone else Reason.METER_STOP_JUMP,
        )

    bound = max_energy_wh(e.max_power_w, e.stop_received_at - e.authorized_at)
    if Reason.METER_START_MISMATCH in reasons and _endpoints_agree(e, started_at, ended_at, bound):
        # meterStart and meterStop agree with each other and not with the samples (a meter
        # that labels Wh as kWh in its samples): the transaction's own readings stand.
        chain_reasons = set(Reason) - _TIME_REASONS
        reasons[:] = [r for r in reasons if r not in chain_reasons]
        reasons.append(Reason.SAMPLES_DISAGREE_WITH_TRANSACTION)
        assert e.meter_start_wh is not None and e.meter_stop_wh is not None
        baseline = e.meter_start_wh
        chain.energy_wh = e.meter_stop_wh - e.meter_start_wh
        chain.billed = []
        chain.deliveries = [(started_at, ended_at, 0)] if chain.energy_wh > 0 else []
    energy = chain.energy_wh
    if energy > bound:
        reasons.append(Reason.ENERGY_ABOVE_PHYSICAL_BOUND)
        energy = bound

    charging_ended_at = _charging_end(chain.deliveries, e.statuses, started_at, ended_at, reasons)

    unique = tuple(dict.fromkeys(reasons))
    if any(r in HOLDING_REASONS for r in unique):
        outcome: Outcome = "held"
    elif unique:
        outcome = "corrected"
    else:
        outcome = "accepted"
    billed_samples = tuple(
        Sample(at, min(register, baseline + energy), power) for at, register, power in chain.billed
    )
    if outcome == "accepted":
        # Nothing was changed, so the judged values are the claim's: the chain telescopes to it.
        assert (baseline, energy, started_at, ended_at) == (
            claim.meter_start_wh,
            claim.energy_wh,
            claim.started_at,
            claim.ended_at,
        ), (baseline, energy, claim)
    return Judgement(
        outcome=outcome,
        reasons=unique,
        meter_start_wh=baseline,
        meter_stop_wh=baseline + energy,
        energy_wh=energy,
        started_at=started_at,
        charging_ended_at=charging_ended_at,
        ended_at=ended_at,
        max_energy_wh=bound,
        claimed=claim,
        samples=billed_samples,
    )


_TIME_REASONS = frozenset(
    {
        Reason.START_BEFORE_AUTHORISATION,
        Reason.START_IN_FUTURE,
        Reason.STOP_BEFORE_AUTHORISATION,
        Reason.STOP_IN_FUTURE,
        Reason.STOP_BEFORE_START,
        Reason.SAMPLE_TIME_IMPLAUSIBLE,
        Reason.IDLE_REPORTED_AS_CHARGING,
    }
)


def _endpoints_agree(
    e: MeterEvidence, started_at: datetime, ended_at: datetime, bound: int
) -> bool:
    if e.meter_start_wh is None or e.meter_stop_wh is None or e.meter_start_wh < 0:
        return False
    delta = e.meter_stop_wh - e.meter_start_wh
    return 0 <= delta <= min(bound, _step_bound_wh(e.max_power_w, ended_at - started_at))


def _charging_end(
    deliveries: Sequence[tuple[datetime, datetime, int]],
    statuses: Sequence[StatusChange],
    started_at: datetime,
    ended_at: datetime,
    reasons: list[Reason],
) -> datetime:
    """When energy stopped flowing, from the register; the station's status only refines it
    within the last step that delivered energy, it never extends charging into idle time."""
    charging = [d for d in deliveries if d[2] >= IDLE_POWER_W] or list(deliveries)
    if not charging:
        measured_end = started_at
        last_step_start = started_at
    else:
        last_step_start, measured_end, _ = charging[-1]
    claimed_end = _claimed_charging_end(statuses, started_at, ended_at)
    if claimed_end is not None:
        if claimed_end > measured_end + IDLE_SLACK:
            # The station says it was charging while its own register stood still.
            reasons.append(Reason.IDLE_REPORTED_AS_CHARGING)
        if last_step_start < claimed_end < measured_end:
            measured_end = claimed_end
    if ended_at - measured_end <= IDLE_SLACK:
        # Shorter than a meter interval and an unplug: not parking.
        return ended_at
    return max(measured_end, started_at)


def _claimed_charging_end(
    statuses: Sequence[StatusChange], started_at: datetime, ended_at: datetime
) -> datetime | None:
    """When the station says charging ended: its first idle status after its last Charging one
    (the stop itself if it never left Charging); None without any status in the session."""
    ordered = sorted(statuses, key=lambda s: s.at)
    during = [s for s in ordered if started_at <= s.at <= ended_at]
    before = [s for s in ordered if s.at < started_at]
    if not during and not before:
        return None
    # The Charging status often comes a moment before the start's own timestamp.
    charging = bool(before) and before[-1].status in CHARGING_STATUSES
    end: datetime | None = None
    for status in during:
        if status.status in CHARGING_STATUSES:
            charging, end = True, None
        elif status.status in IDLE_STATUSES and charging:
            charging, end = False, status.at
    if charging:
        return ended_at
    return end if end is not None else started_at
