"""Pure rules of the gateway: the session life cycle, meter readings, stop reasons, limits.
No I/O, no framework."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any, Literal

from plugpay_tariffs import MeterSample as UsageSample
from plugpay_tariffs import SessionUsage, Tariff, calculate_cost

OcppVersion = Literal["1.6", "2.0.1"]
SUBPROTOCOLS: dict[str, OcppVersion] = {"ocpp2.0.1": "2.0.1", "ocpp1.6": "1.6"}

ENERGY_REGISTER = "Energy.Active.Import.Register"
POWER = "Power.Active.Import"
SOC = "SoC"


class SessionState(StrEnum):
    """Where a session is in the gateway (the ``sessions.state`` column)."""

    CODE_ISSUED = "code_issued"
    AUTHORIZED = "authorized"
    STARTING = "starting"
    CHARGING = "charging"
    COMPLETED = "completed"
    ABANDONED = "abandoned"
    EXPIRED = "expired"
    DENIED = "denied"


class SessionStep(StrEnum):
    """What can happen to a session in the gateway."""

    ISSUE_CODE = "issue_code"  # a code for a connector, or session-svc's SessionPriced
    AUTHORIZE = "authorize"  # SessionAuthorized: funds are held
    SEND_START = "send_start"  # the remote start command goes to the station
    START_CHARGING = "start_charging"  # the station's transaction is linked to the session
    REQUEST_STOP = "request_stop"  # a driver, limit or system stop (no change of state)
    COMPLETE = "complete"  # the station ended the transaction
    ABANDON = "abandon"  # the station could not start, or never did
    EXPIRE = "expire"  # nobody scanned the code in time
    DENY = "deny"  # pricing or billing said no


S = SessionState

# The states each step may leave, and where it leads (None: the state stays).
_STEPS: dict[SessionStep, tuple[frozenset[SessionState | None], SessionState | None]] = {
    SessionStep.ISSUE_CODE: (frozenset({None}), S.CODE_ISSUED),
    SessionStep.AUTHORIZE: (frozenset({None, S.CODE_ISSUED, S.AUTHORIZED}), S.AUTHORIZED),
    SessionStep.SEND_START: (frozenset({S.AUTHORIZED}), S.STARTING),
    SessionStep.START_CHARGING: (frozenset({S.AUTHORIZED, S.STARTING}), S.CHARGING),
    SessionStep.REQUEST_STOP: (frozenset({S.AUTHORIZED, S.STARTING, S.CHARGING}), None),
    SessionStep.COMPLETE: (frozenset({S.CHARGING}), S.COMPLETED),
    # An expired code authorised late (a raced scan) is abandoned so billing voids the hold.
    SessionStep.ABANDON: (frozenset({S.AUTHORIZED, S.STARTING, S.EXPIRED}), S.ABANDONED),
    SessionStep.EXPIRE: (frozenset({S.CODE_ISSUED}), S.EXPIRED),
    SessionStep.DENY: (frozenset({None, S.CODE_ISSUED, S.DENIED}), S.DENIED),
}

# A driver is being served on the connector: no other code or start may use it.
IN_PROGRESS: frozenset[SessionState] = frozenset({S.AUTHORIZED, S.STARTING, S.CHARGING})
FINAL: frozenset[SessionState] = frozenset({S.COMPLETED, S.ABANDONED, S.DENIED})


@dataclass(frozen=True)
class StepRefused:
    """A step that may not happen now: ``reason`` for machines, ``message`` for people."""

    reason: str
    message: str


def start_overdue(row: Mapping[Any, Any], start_timeout: timedelta | None, now: datetime) -> bool:
    """An authorised session the station has not started by its deadline (billing's, or
    sooner if configured): the gateway gives it up and refuses a later start."""
    if row["state"] not in (SessionState.AUTHORIZED, SessionState.STARTING):
        return False
    deadline: datetime | None = row.get("start_deadline")
    if start_timeout is not None and row.get("authorized_at") is not None:
        by = row["authorized_at"] + start_timeout
        deadline = by if deadline is None else min(deadline, by)
    return deadline is not None and now >= deadline


def session_state(value: str | None) -> SessionState | None:
    """A stored state as the enum (None for a session the gateway has not seen)."""
    return None if value is None else SessionState(value)


def step_refusal(state: SessionState | str | None, step: SessionStep) -> StepRefused | None:
    """Why ``step`` may not happen to a session in ``state``, or None if it may."""
    current = session_state(state)
    allowed, _ = _STEPS[step]
    if current in allowed:
        return None
    if current in FINAL:
        return StepRefused(f"session_{current}", f"cannot {step} a session already {current}")
    if current is None:
        return StepRefused("session_unknown", f"cannot {step} a session the gateway never saw")
    return StepRefused("wrong_state", f"cannot {step} a session that is {current}")


def next_state(state: SessionState | str | None, step: SessionStep) -> SessionState | StepRefused:
    """The state after ``step``, or why it may not happen."""
    refused = step_refusal(state, step)
    if refused is not None:
        return refused
    _, target = _STEPS[step]
    if target is None:
        current = session_state(state)
        assert current is not None  # steps that keep the state never start a session
        return current
    return target


@dataclass(frozen=True)
class Simulation:
    """How a test stack's simulated stations depart from reality (never in production): their
    meters run ``meter_speedup`` times faster than real time, and with ``own_clocks`` they
    report times on a simulated calendar instead of a clock set by us."""

    meter_speedup: float = 1.0
    own_clocks: bool = False


REAL_STATIONS = Simulation()


@dataclass(frozen=True)
class Reading:
    """One meter value as reported: the cumulative register (Wh), power and SoC if given."""

    sampled_at: datetime
    energy_wh: int | None = None
    power_w: int | None = None
    soc_percent: int | None = None


def parse_timestamp(value: str | None, default: datetime) -> datetime:
    """An OCPP timestamp as UTC; a missing or garbled one is ``default`` (receive time)."""
    if not value:
        return default
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return default
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _scaled(value: Any, unit: str | None, multiplier: int = 0) -> Decimal | None:
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    number *= Decimal(10) ** multiplier
    if unit in {"kWh", "kW", "kvarh", "kVA"}:
        number *= 1000
    return number


def parse_meter_values(meter_values: Iterable[Mapping[str, Any]], now: datetime) -> list[Reading]:
    """Readings from 1.6 ``meterValue`` / 2.0.1 ``meterValue`` lists (snake_case keys)."""
    readings = []
    for meter_value in meter_values:
        at = parse_timestamp(meter_value.get("timestamp"), now)
        energy = power = soc = None
        for sampled in meter_value.get("sampled_value") or ():
            measurand = sampled.get("measurand") or ENERGY_REGISTER
            if sampled.get("phase"):
                continue  # per-phase values; the total is what is billed
            uom = sampled.get("unit_of_measure") or {}
            unit = sampled.get("unit") or uom.get("unit")
            number = _scaled(sampled.get("value"), unit, int(uom.get("multiplier") or 0))
            if number is None or number < 0:
                continue
            if measurand == ENERGY_REGISTER and energy is None:
                energy = int(number)
            elif measurand == POWER and power is None:
                power = int(number)
            elif measurand == SOC and soc is None:
                soc = min(100, int(number))
        if energy is not None or power is not None or soc is not None:
            readings.append(Reading(at, energy, power, soc))
    return readings


STOP_REASONS_16 = {
    "EVDisconnected": "ev_disconnected",
    "Local": "local",
    "Remote": "remote",
    "PowerLoss": "power_loss",
    "Reboot": "reboot",
    "HardReset": "reboot",
    "SoftReset": "reboot",
    "EmergencyStop": "emergency_stop",
    "DeAuthorized": "deauthorized",
}
STOP_REASONS_201 = {
    "EVDisconnected": "ev_disconnected",
    "Local": "local",
    "StoppedByEV": "local",
    "Remote": "remote",
    "PowerLoss": "power_loss",
    "Reboot": "reboot",
    "EmergencyStop": "emergency_stop",
    "DeAuthorized": "deauthorized",
    "EnergyLimitReached": "limit_reached",
    "TimeLimitReached": "limit_reached",
    "CostLimitReached": "limit_reached",
    "SOCLimitReached": "limit_reached",
}


def stop_reason(reported: str | None, version: OcppVersion, stop_requested_by: str | None) -> str:
    """Our StopReason: what we asked for wins over what the station says when it says Remote."""
    table = STOP_REASONS_16 if version == "1.6" else STOP_REASONS_201
    if reported is None and version != "1.6" and stop_requested_by:
        reported = "Remote"  # 2.0.1 may omit it only for Local; after our stop, it was ours
    # Both versions: no reason given means Local (1.6 StopTransaction, 2.0.1 E06 stoppedReason).
    mapped = table.get(reported or "Local", "other")
    if mapped == "remote" or (mapped == "other" and stop_requested_by):
        if stop_requested_by == "limit":
            return "limit_reached"
        if stop_requested_by == "driver":
            return "driver_stopped"
        return "remote"
    return mapped


# Commands a driver waits for; the rest (display text, costs) only inform, and go last.
URGENT_COMMANDS = frozenset({"start", "stop", "ocpp_call"})


def urgent_first(kinds: Sequence[str]) -> list[int]:
    """The order to run a station's pending commands in (indexes into ``kinds``): urgent ones
    first, each group in the order it came."""
    return sorted(range(len(kinds)), key=lambda i: kinds[i] not in URGENT_COMMANDS)


def new_id_tag(session_id: uuid.UUID) -> str:
    """An idTag bound to one session (OCPP 1.6 idTag: at most 20 characters)."""
    return f"PP{session_id.hex[:18].upper()}"


def usage(
    started_at: datetime,
    meter_start_wh: int,
    samples: Sequence[tuple[datetime, int]],
    until: datetime,
) -> SessionUsage:
    """The tariff calculator's view of a session: energy since start, rising timestamps."""
    until = max(until, started_at)
    points: list[UsageSample] = []
    for at, register in sorted(samples):
        energy = max(0, register - meter_start_wh)
        if at <= started_at or at > until:
            continue
        if points and (at <= points[-1].at or energy < points[-1].energy_wh):
            continue
        points.append(UsageSample(at=at, energy_wh=energy))
    return SessionUsage(
        started_at=started_at, charging_ended_at=until, ended_at=until, samples=tuple(points)
    )


def cost_minor(tariff: Tariff, session_usage: SessionUsage, time_zone: str) -> int:
    """Cost incl. VAT in minor units under ``tariff``."""
    return calculate_cost(tariff, session_usage, time_zone).total_incl_vat


LimitKind = Literal["energy", "time", "cost"]


def reached_limit(
    limits: Mapping[str, Any] | None,
    *,
    energy_wh: int,
    elapsed_s: float,
    cost_minor_so_far: int | None,
) -> LimitKind | None:
    """Which authorised limit (SessionLimits as JSON) is reached, if any."""
    if not limits:
        return None
    max_energy = limits.get("max_energy_wh")
    if max_energy is not None and energy_wh >= max_energy:
        return "energy"
    max_duration = limits.get("max_duration_s")
    if max_duration is not None and elapsed_s >= max_duration:
        return "time"
    max_cost = limits.get("max_cost")
    if max_cost is not None and cost_minor_so_far is not None:
        return "cost" if cost_minor_so_far >= int(max_cost["amount_minor"]) else None
    return None
