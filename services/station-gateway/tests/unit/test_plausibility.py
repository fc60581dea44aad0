"""The meter is evidence: honest sessions are billed as reported, every lie is corrected or held.

An honest session is generated from the physics (a connector never above its maximum power,
a station clock within its measured skew, timestamps between our authorisation and our receipt
of the stop); each lie is one change to it that a lying or broken station makes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from hypothesis import assume, given, settings
from hypothesis import strategies as st
from station_gateway.plausibility import (
    CLOCK_SLACK,
    IDLE_SLACK,
    Judgement,
    MeterEvidence,
    Reason,
    Sample,
    StatusChange,
    judge,
    max_energy_wh,
)

T0 = datetime(2026, 11, 3, 8, 0, tzinfo=UTC)
MAX_POWERS = (3_700, 7_400, 11_000, 22_000, 50_000, 150_000)


@dataclass(frozen=True)
class Honest:
    """A generated session: what the station reports, and what physically happened."""

    evidence: MeterEvidence
    true_energy_wh: int
    idle_from: datetime  # the station's time charging ended (the stop if it never idled)
    registers: tuple[int, ...]  # start, samples..., stop


@st.composite
def honest_sessions(draw: st.DrawFn, *, idle: bool | None = None) -> Honest:
    max_power = draw(st.sampled_from(MAX_POWERS))
    authorized_at = T0 + timedelta(seconds=draw(st.integers(0, 400 * 24 * 3600)))
    skew = timedelta(seconds=draw(st.integers(0, 120)))
    offset = timedelta(seconds=draw(st.integers(-skew.seconds, skew.seconds)))
    started = authorized_at + timedelta(seconds=draw(st.integers(1, 120)))
    meter_start = draw(st.integers(0, 10**9))
    # Charging steps then (maybe) idle steps; a step's energy never beats the connector.
    charging = draw(
        st.lists(
            st.tuples(st.integers(10, 900), st.integers(1_000, max_power)), min_size=1, max_size=12
        )
    )
    with_idle = draw(st.booleans()) if idle is None else idle
    idling = draw(st.lists(st.integers(30, 1800), min_size=1, max_size=6)) if with_idle else []
    times = [started]
    registers = [meter_start]
    for seconds, power in charging:
        times.append(times[-1] + timedelta(seconds=seconds))
        registers.append(registers[-1] + power * seconds // 3600)
    idle_from = times[-1]
    for seconds in idling:
        times.append(times[-1] + timedelta(seconds=seconds))
        registers.append(registers[-1])
    stopped = times[-1]
    received = stopped + timedelta(seconds=draw(st.integers(0, 6 * 3600)))
    with_meter_stop = draw(st.booleans())
    points = list(zip(times, registers, strict=True))
    # The station reports on its own clock; 2.0.1 reports the last reading instead of meterStop.
    samples = tuple(
        Sample(at + offset, register, draw(st.none() | st.integers(0, max_power)))
        for at, register in (points[1:-1] if with_meter_stop else points[1:])
    )
    statuses: tuple[StatusChange, ...] = ()
    if draw(st.booleans()):
        statuses = (StatusChange(started + offset, "Charging"),)
        if with_idle:
            statuses += (StatusChange(idle_from + offset, "SuspendedEV"),)
    evidence = MeterEvidence(
        max_power_w=max_power,
        authorized_at=authorized_at,
        stop_received_at=received,
        started_at=started + offset,
        stopped_at=stopped + offset,
        meter_start_wh=meter_start,
        meter_stop_wh=registers[-1] if with_meter_stop else None,
        samples=samples,
        statuses=statuses,
        clock_skew=skew,
    )
    return Honest(evidence, registers[-1] - meter_start, idle_from + offset, tuple(registers))


def assert_sound(judgement: Judgement, evidence: MeterEvidence) -> None:
    """What holds of every judgement, whatever the station sent."""
    assert judgement.meter_start_wh >= 0 and judgement.energy_wh >= 0
    assert judgement.energy_wh == judgement.meter_stop_wh - judgement.meter_start_wh
    bound = max_energy_wh(evidence.max_power_w, evidence.stop_received_at - evidence.authorized_at)
    assert judgement.energy_wh <= bound == judgement.max_energy_wh
    assert judgement.started_at <= judgement.charging_ended_at <= judgement.ended_at
    tolerance = evidence.clock_skew + CLOCK_SLACK
    assert judgement.started_at >= evidence.authorized_at - tolerance
    assert judgement.ended_at <= evidence.stop_received_at + tolerance
    assert (judgement.outcome == "accepted") == (judgement.reasons == ())
    registers = [s.register_wh for s in judgement.samples]
    assert registers == sorted(registers)
    assert all(judgement.meter_start_wh <= r <= judgement.meter_stop_wh for r in registers)


@settings(max_examples=300)
@given(honest_sessions())
def test_honest_sessions_are_accepted_unchanged(session: Honest) -> None:
    e = session.evidence
    judgement = judge(e)
    assert_sound(judgement, e)
    assert judgement.outcome == "accepted", judgement.reasons
    assert judgement.energy_wh == session.true_energy_wh == judgement.claimed.energy_wh
    assert judgement.meter_start_wh == e.meter_start_wh
    assert judgement.meter_stop_wh == session.registers[-1]
    assert (judgement.started_at, judgement.ended_at) == (e.started_at, e.stopped_at)
    idle = e.stopped_at - session.idle_from
    assert judgement.charging_ended_at == (session.idle_from if idle > IDLE_SLACK else e.stopped_at)
    assert [s.register_wh for s in judgement.samples] == [s.register_wh for s in e.samples]


Lie = Callable[[st.DrawFn, Honest], MeterEvidence]


def inflated_energy(draw: st.DrawFn, s: Honest) -> MeterEvidence:
    e = s.evidence
    bound = max_energy_wh(e.max_power_w, e.stop_received_at - e.authorized_at)
    extra = bound + draw(st.integers(1, 10**10))
    if e.meter_stop_wh is not None:
        return replace(e, meter_stop_wh=e.meter_stop_wh + extra)
    *head, last = e.samples
    return replace(e, samples=(*head, replace(last, register_wh=last.register_wh + extra)))


def _rising(s: Honest) -> list[int]:
    """Indexes of samples whose register rose since the reading before."""
    e = s.evidence
    previous = [e.meter_start_wh or 0, *(x.register_wh for x in e.samples)]
    return [i for i, x in enumerate(e.samples) if x.register_wh > previous[i]]


def register_regression(draw: st.DrawFn, s: Honest) -> MeterEvidence:
    e = s.evidence
    # A reading after it shows the true register again (the last one's successor: meterStop).
    last = len(e.samples) - (1 if e.meter_stop_wh is None else 0)
    rising = [i for i in _rising(s) if 0 < i < last]
    assume(rising)
    i = draw(st.sampled_from(rising))
    before = e.samples[i - 1].register_wh
    assume(before > (e.meter_start_wh or 0))
    # Below the reading before it, above where the session began: backwards, not a reset.
    value = draw(st.integers(e.meter_start_wh or 0, before - 1))
    samples = list(e.samples)
    samples[i] = replace(samples[i], register_wh=value)
    return replace(e, samples=tuple(samples))


def meter_stop_backwards(draw: st.DrawFn, s: Honest) -> MeterEvidence:
    e = s.evidence
    assume(e.meter_stop_wh is not None and e.samples)
    highest = max(x.register_wh for x in e.samples)
    assume(highest > 0)
    return replace(e, meter_stop_wh=draw(st.integers(0, highest - 1)))


def register_reset(draw: st.DrawFn, s: Honest) -> MeterEvidence:
    e = s.evidence
    assume((e.meter_start_wh or 0) > 0 and len(e.samples) >= 2)
    i = draw(st.integers(1, len(e.samples) - 1))
    # The meter restarted from zero at sample i and counted on from there.
    base = e.samples[i].register_wh
    samples = tuple(
        x if j < i else replace(x, register_wh=x.register_wh - base)
        for j, x in enumerate(e.samples)
    )
    stop = None if e.meter_stop_wh is None else e.meter_stop_wh - base
    return replace(e, samples=samples, meter_stop_wh=stop)


def register_jump(draw: st.DrawFn, s: Honest) -> MeterEvidence:
    e = s.evidence
    assume(e.samples)
    i = draw(st.integers(0, len(e.samples) - 1))
    bound = max_energy_wh(e.max_power_w, e.stop_received_at - e.authorized_at)
    jump = bound + draw(st.integers(1, 10**9))
    samples = tuple(
        x if j < i else replace(x, register_wh=x.register_wh + jump)
        for j, x in enumerate(e.samples)
    )
    stop = None if e.meter_stop_wh is None else e.meter_stop_wh + jump
    return replace(e, samples=samples, meter_stop_wh=stop)


def _beyond(draw: st.DrawFn, e: MeterEvidence) -> timedelta:
    return e.clock_skew + CLOCK_SLACK + timedelta(seconds=draw(st.integers(1, 60 * 24 * 3600)))


def backdated_start(draw: st.DrawFn, s: Honest) -> MeterEvidence:
    e = s.evidence
    return replace(e, started_at=e.authorized_at - _beyond(draw, e))


def future_stop(draw: st.DrawFn, s: Honest) -> MeterEvidence:
    e = s.evidence
    return replace(e, stopped_at=e.stop_received_at + _beyond(draw, e))


def future_start(draw: st.DrawFn, s: Honest) -> MeterEvidence:
    e = s.evidence
    return replace(e, started_at=e.stop_received_at + _beyond(draw, e))


def zero_baseline(draw: st.DrawFn, s: Honest) -> MeterEvidence:
    e = s.evidence
    bound = max_energy_wh(e.max_power_w, e.stop_received_at - e.authorized_at)
    assume((e.meter_start_wh or 0) > bound)
    return replace(e, meter_start_wh=0)


def kwh_labelled_samples(draw: st.DrawFn, s: Honest) -> MeterEvidence:
    e = s.evidence
    assume(e.samples and (e.meter_start_wh or 0) >= 1000)
    samples = tuple(replace(x, register_wh=x.register_wh * 1000) for x in e.samples)
    return replace(e, samples=samples)


LIES: dict[str, Lie] = {
    "inflated_energy": inflated_energy,
    "register_regression": register_regression,
    "meter_stop_backwards": meter_stop_backwards,
    "register_reset": register_reset,
    "register_jump": register_jump,
    "backdated_start": backdated_start,
    "future_start": future_start,
    "future_stop": future_stop,
    "zero_baseline": zero_baseline,
    "kwh_labelled_samples": kwh_labelled_samples,
}


@settings(max_examples=400)
@given(st.data(), st.sampled_from(sorted(LIES)))
def test_every_lie_is_corrected_or_held_never_billed_as_claimed(
    data: st.DataObject, lie: str
) -> None:
    session = data.draw(honest_sessions())
    lying = LIES[lie](data.draw, session)
    judgement = judge(lying)
    assert_sound(judgement, lying)
    assert judgement.outcome in ("corrected", "held"), (lie, judgement)
    # Never more energy than physically delivered, and never the inflated claim. (Samples a
    # thousand times too high without a meterStop can still look physical on a big connector:
    # then only the physical bound holds.)
    if lie != "kwh_labelled_samples" or lying.meter_stop_wh is not None:
        assert judgement.energy_wh <= session.true_energy_wh
    if judgement.claimed.energy_wh > session.true_energy_wh:
        assert judgement.energy_wh < judgement.claimed.energy_wh
    if lie in ("backdated_start", "future_start"):
        assert judgement.started_at >= lying.authorized_at
        assert judgement.started_at != lying.started_at
    if lie == "future_stop":
        # The time we received the stop (unless the start, on a fast clock, is later still).
        assert judgement.ended_at == max(lying.stop_received_at, judgement.started_at)
    if lie == "register_regression":
        # The highest valid reading stands: nothing delivered is lost to a backwards step.
        assert judgement.energy_wh == session.true_energy_wh
    if lie == "meter_stop_backwards":
        highest = max(x.register_wh for x in lying.samples)
        assert judgement.energy_wh == highest - (lying.meter_start_wh or 0)


@settings(max_examples=200)
@given(honest_sessions(idle=True), st.data())
def test_idle_reported_as_charging_is_billed_as_idle(session: Honest, data: st.DataObject) -> None:
    e = session.evidence
    assume(e.stopped_at - session.idle_from > IDLE_SLACK)
    lying = replace(e, statuses=(StatusChange(e.started_at, "Charging"),))
    judgement = judge(lying)
    assert_sound(judgement, lying)
    assert judgement.outcome == "corrected"
    assert judgement.reasons == (Reason.IDLE_REPORTED_AS_CHARGING,)
    assert judgement.charging_ended_at == session.idle_from
    assert judgement.idle_s == int((e.stopped_at - session.idle_from).total_seconds()) > 0
    assert judgement.energy_wh == session.true_energy_wh


@st.composite
def any_evidence(draw: st.DrawFn) -> MeterEvidence:
    """Whatever a station may send: arbitrary registers, timestamps and statuses."""
    authorized_at = T0 + timedelta(seconds=draw(st.integers(0, 10**6)))
    stamp = st.integers(-(10**7), 10**7).map(lambda s: authorized_at + timedelta(seconds=s))
    register = st.integers(-(10**6), 10**12)
    status = st.sampled_from(["Charging", "SuspendedEV", "Finishing", "Available"])
    return MeterEvidence(
        max_power_w=draw(st.integers(1, 400_000)),
        authorized_at=authorized_at,
        stop_received_at=authorized_at + timedelta(seconds=draw(st.integers(0, 10**6))),
        started_at=draw(stamp),
        stopped_at=draw(stamp),
        meter_start_wh=draw(st.none() | register),
        meter_stop_wh=draw(st.none() | register),
        samples=tuple(draw(st.lists(st.builds(Sample, stamp, register), max_size=12))),
        statuses=tuple(draw(st.lists(st.builds(StatusChange, stamp, status), max_size=5))),
        clock_skew=timedelta(seconds=draw(st.integers(0, 3600))),
    )


@settings(max_examples=300)
@given(any_evidence())
def test_any_evidence_yields_a_bounded_consistent_bill(evidence: MeterEvidence) -> None:
    assert_sound(judge(evidence), evidence)


# -- the reported cases ---------------------------------------------------------------------


def _evidence(**changes: object) -> MeterEvidence:
    base = MeterEvidence(
        max_power_w=22_000,
        authorized_at=T0,
        stop_received_at=T0 + timedelta(seconds=5),
        started_at=T0 + timedelta(seconds=1),
        stopped_at=T0 + timedelta(seconds=3),
        meter_start_wh=1_234_000,
        meter_stop_wh=1_234_000,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_ten_megawatt_hours_two_seconds_after_start_is_held_at_nothing() -> None:
    judgement = judge(_evidence(meter_stop_wh=1_234_000 + 10_000_000))
    assert judgement.outcome == "held"
    assert Reason.REGISTER_JUMP in judgement.reasons
    assert judgement.energy_wh == 0
    assert judgement.claimed.energy_wh == 10_000_000
    # 22 kW for the 5 s we observed, +5 %, +100 Wh.
    assert judgement.max_energy_wh == 132


def test_ten_megawatt_hours_after_honest_samples_bills_the_samples() -> None:
    at = T0 + timedelta(minutes=1)
    judgement = judge(
        _evidence(
            stop_received_at=T0 + timedelta(minutes=31),
            started_at=at,
            stopped_at=at + timedelta(minutes=30),
            samples=(Sample(at + timedelta(minutes=15), 1_234_000 + 5_000),),
            meter_stop_wh=1_234_000 + 10_000_000,
        )
    )
    assert judgement.outcome == "corrected"
    assert judgement.reasons == (Reason.METER_STOP_JUMP,)
    assert judgement.energy_wh == 5_000


def test_start_backdated_by_thirty_days_is_billed_from_the_authorisation() -> None:
    stop = T0 + timedelta(hours=1)
    judgement = judge(
        _evidence(
            stop_received_at=stop + timedelta(seconds=2),
            started_at=T0 - timedelta(days=30),
            stopped_at=stop,
            meter_stop_wh=1_234_000 + 1_000,
        )
    )
    assert judgement.outcome == "corrected"
    assert judgement.reasons == (Reason.START_BEFORE_AUTHORISATION,)
    assert judgement.started_at == T0
    assert judgement.ended_at == stop
    assert judgement.energy_wh == 1_000


def test_wh_labelled_as_kwh_is_held_without_the_thousandfold_energy() -> None:
    at = T0 + timedelta(seconds=1)
    samples = tuple(
        Sample(at + timedelta(seconds=5 * i), (1_234_000 + 15 * i) * 1000) for i in range(1, 4)
    )
    judgement = judge(
        _evidence(
            stop_received_at=at + timedelta(seconds=16),
            stopped_at=at + timedelta(seconds=15),
            meter_stop_wh=None,
            samples=samples,
        )
    )
    assert judgement.outcome == "held"
    assert judgement.claimed.energy_wh > 1_000_000_000
    assert judgement.energy_wh <= judgement.max_energy_wh == 209  # 22 kW for 17 s: 109 + 100


def test_register_going_backwards_bills_the_kilowatt_hour_delivered() -> None:
    at = T0 + timedelta(seconds=10)
    judgement = judge(
        _evidence(
            stop_received_at=at + timedelta(minutes=11),
            started_at=at,
            stopped_at=at + timedelta(minutes=10),
            samples=(
                Sample(at + timedelta(minutes=5), 1_234_500),
                Sample(at + timedelta(minutes=9), 1_235_000),
            ),
            meter_stop_wh=1_233_000,  # below where it started: the claim is 0 Wh
        )
    )
    assert judgement.claimed.energy_wh == 0
    assert judgement.outcome == "corrected"
    assert judgement.reasons == (Reason.METER_STOP_BELOW_REGISTER,)
    assert judgement.energy_wh == 1_000
    assert judgement.meter_stop_wh == 1_235_000


def test_offline_zero_baseline_bills_from_the_first_reading() -> None:
    at = T0 + timedelta(seconds=10)
    judgement = judge(
        _evidence(
            stop_received_at=at + timedelta(minutes=3),
            started_at=at,
            stopped_at=at + timedelta(minutes=2),
            meter_start_wh=0,
            samples=(Sample(at + timedelta(seconds=30), 910_000),),
            meter_stop_wh=910_083,
        )
    )
    assert judgement.claimed.energy_wh == 910_083
    assert judgement.outcome == "corrected"
    assert judgement.reasons == (Reason.METER_START_MISMATCH,)
    assert judgement.meter_start_wh == 910_000
    assert judgement.energy_wh == 83


def test_idle_split_follows_the_register_and_the_status() -> None:
    at = T0 + timedelta(seconds=10)
    full = at + timedelta(minutes=40)
    judgement = judge(
        _evidence(
            stop_received_at=at + timedelta(hours=2, seconds=1),
            started_at=at,
            stopped_at=at + timedelta(hours=2),
            samples=(
                Sample(at + timedelta(minutes=20), 1_234_000 + 7_000),
                Sample(full, 1_234_000 + 14_000),
                Sample(at + timedelta(hours=1), 1_234_000 + 14_000),
            ),
            statuses=(StatusChange(at, "Charging"), StatusChange(full, "SuspendedEV")),
            meter_stop_wh=1_234_000 + 14_000,
        )
    )
    assert judgement.outcome == "accepted"
    assert judgement.charging_ended_at == full
    assert judgement.charging_s == 40 * 60
    assert judgement.idle_s == 80 * 60
