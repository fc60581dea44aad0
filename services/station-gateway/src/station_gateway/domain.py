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

from plugpay_tariffs import (
    MINOR_UNIT_EXPONENT,
    ComponentType,
    SessionUsage,
    Tariff,
    calculate_cost,
)
from plugpay_tariffs import MeterSample as UsageSample

OcppVersion = Literal["1.6", "2.0.1", "2.1"]
# The client's order of preference decides among these (RFC 6455).
SUBPROTOCOLS: dict[str, OcppVersion] = {"ocpp2.1": "2.1", "ocpp2.0.1": "2.0.1", "ocpp1.6": "1.6"}

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


def capped_cost(cost_minor: int, hold_minor: int | None) -> int:
    """The cost the payer is charged: never above the hold agreed to before the start
    (billing-svc's cap; above it is the operator's loss, never the payer's)."""
    return max(min(cost_minor, hold_minor), 0) if hold_minor is not None else max(cost_minor, 0)


def major_units(amount_minor: int, currency: str) -> float:
    """OCPP's decimal amounts (totalCost, maxCost) from integer minor units."""
    exponent: int = MINOR_UNIT_EXPONENT.get(currency, 2)
    return float(Decimal(amount_minor).scaleb(-exponent))


def transaction_limit(limits: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """OCPP 2.1 ``transactionLimit`` from what billing authorised (SessionLimits as JSON): the
    station stops there itself; the gateway's own limit check stays (it decides, the station's
    stop is a convenience)."""
    if not limits:
        return None
    limit: dict[str, Any] = {}
    if limits.get("max_cost") is not None:
        cost = limits["max_cost"]
        limit["max_cost"] = major_units(int(cost["amount_minor"]), str(cost["currency"]))
    if limits.get("max_energy_wh") is not None:
        limit["max_energy"] = int(limits["max_energy_wh"])
    if limits.get("max_duration_s") is not None:
        limit["max_time"] = int(limits["max_duration_s"])
    return limit or None


# OCPP 2.1's idToken type for a payment made at the station's own payment page (C25): what a
# guest's card checkout is. Accounts' sessions are started as Central.
DIRECT_PAYMENT = "DirectPayment"


def start_id_token(id_tag: str, *, direct_payment: bool) -> dict[str, str]:
    """The idToken a remote start names: the session's own tag, typed DirectPayment for a
    guest's card payment on a 2.1 station, else Central."""
    return {"id_token": id_tag, "type": DIRECT_PAYMENT if direct_payment else "Central"}


def id_token_accepted(
    presented: Mapping[str, Any] | None, id_tag: str | None, *, guest: bool
) -> bool:
    """Whether a station's idToken stands for this session. A DirectPayment token is a
    guest's card payment: accepted for that guest's own session only; other types keep the
    session's link by remoteStartId or idTag."""
    if not presented or presented.get("type") != DIRECT_PAYMENT:
        return True
    return guest and id_tag is not None and str(presented.get("id_token")) == id_tag


def ocpp_tariff(tariff: Tariff) -> dict[str, Any] | None:
    """The driver's tariff as an OCPP 2.1 TariffType (snake_case, the ``ocpp`` library's form),
    or None where 2.1 cannot say the same thing: restricted elements (OCPI restrictions have no
    faithful 2.1 conditions for every field) or a minimum/maximum price. The station's figure is
    informational either way; the final cost is ours."""
    if tariff.min_price is not None or tariff.max_price is not None:
        return None
    if not all(element.is_unrestricted() for element in tariff.elements):
        return None

    def first(kind: ComponentType) -> Any:
        # Unrestricted elements: the first one with the dimension applies at every moment.
        return next((c for e in tariff.elements if (c := e.component(kind)) is not None), None)

    def taxes(component: Any) -> list[dict[str, Any]]:
        return [{"type": "VAT", "tax": float(component.vat)}] if component.vat else []

    result: dict[str, Any] = {"tariff_id": f"{tariff.id}:{tariff.version}"[:60]}
    result["currency"] = tariff.currency
    parts: tuple[tuple[ComponentType, str, str, Decimal], ...] = (
        (ComponentType.ENERGY, "energy", "price_kwh", Decimal(1)),
        (ComponentType.TIME, "charging_time", "price_minute", Decimal(60)),
        (ComponentType.PARKING_TIME, "idle_time", "price_minute", Decimal(60)),
        (ComponentType.FLAT, "fixed_fee", "price_fixed", Decimal(1)),
    )
    for kind, field, price_field, per in parts:
        component = first(kind)
        if component is None:
            continue
        entry: dict[str, Any] = {"prices": [{price_field: float(component.price / per)}]}
        if tax_rates := taxes(component):
            entry["tax_rates"] = tax_rates
        result[field] = entry
    return result


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
