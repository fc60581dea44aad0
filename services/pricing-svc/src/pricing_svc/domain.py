"""Pricing's rules, pure: who may charge where and when, which tariff version applies, and how a
completed session's meter data becomes the calculator's usage. No I/O, no framework."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from decimal import Decimal
from math import asin, cos, degrees, radians, sin, sqrt
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from plugpay_events.contracts.pricing import AccessPolicy, AccessWindow
from plugpay_tariffs import CostBreakdown, SessionUsage, Tariff
from plugpay_tariffs import usage_from_completion as usage_from_completion

PowerType = Literal["AC_1_PHASE", "AC_3_PHASE", "DC"]


@dataclass(frozen=True)
class Connector:
    """A connector as auth-svc registered it."""

    connector_id: int
    power_type: PowerType
    max_power_w: int
    standard: str = "IEC_62196_T2"


@dataclass(frozen=True)
class Commercials:
    """What the owning operator set for a station."""

    time_zone: str
    tariff_key: str
    access_policy: AccessPolicy
    connector_tariffs: dict[int, str] = field(default_factory=dict)
    connector_max_power_w: dict[int, int] = field(default_factory=dict)
    status: Literal["active", "inactive"] = "active"
    updated_at: datetime | None = None


@dataclass(frozen=True)
class Station:
    """pricing-svc's copy of a station: registration (from events) plus its commercials."""

    station_id: str
    organisation_id: uuid.UUID
    name: str
    connectors: tuple[Connector, ...]
    commercials: Commercials | None = None

    def connector(self, connector_id: int) -> Connector | None:
        return next((c for c in self.connectors if c.connector_id == connector_id), None)

    @property
    def power_class(self) -> Literal["AC", "DC"]:
        return "DC" if any(c.power_type == "DC" for c in self.connectors) else "AC"

    def max_power_w(self, connector_id: int) -> int | None:
        """The operator's limit for the connector, else what it was registered with."""
        connector = self.connector(connector_id)
        if connector is None:
            return None
        limit = (
            self.commercials.connector_max_power_w.get(connector_id) if self.commercials else None
        )
        return limit or connector.max_power_w

    def tariff_key(self, connector_id: int) -> str | None:
        """The connector's own tariff, else the station's default."""
        if self.commercials is None:
            return None
        return self.commercials.connector_tariffs.get(connector_id, self.commercials.tariff_key)


# --- access -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Driver:
    """Who scanned: the organisation and groups auth-svc put in their token."""

    user_id: uuid.UUID
    organisation_id: uuid.UUID | None = None
    groups: frozenset[str] = frozenset()


@dataclass(frozen=True)
class AccessDecision:
    """Allowed (and maybe free), or refused with a machine-readable reason."""

    allowed: bool
    free_of_charge: bool = False
    reason: str | None = None
    message: str = ""


def owner_groups(policy_owner: uuid.UUID, driver: Driver) -> frozenset[str]:
    """Groups are an organisation's own names: a ``staff`` group elsewhere is not ours."""
    return driver.groups if driver.organisation_id == policy_owner else frozenset()


def in_window(window: AccessWindow, local: datetime) -> bool:
    """Whether a local wall time falls in a window; ``22:00-06:00`` runs past midnight and
    belongs to the day it starts on (upper bound exclusive, like tariff restrictions)."""
    start = _hhmm(window.start_time) or time(0)  # a start is never 24:00 (pattern)
    end = _hhmm(window.end_time)
    now = local.time().replace(tzinfo=None)
    today = local.isoweekday()
    yesterday = (local - timedelta(days=1)).isoweekday()
    if end is None:  # 24:00
        return today in window.days_of_week and now >= start
    if start == end:  # empty, like a tariff restriction's min == max (refused on input)
        return False
    if start < end:
        return today in window.days_of_week and start <= now < end
    return (today in window.days_of_week and now >= start) or (
        yesterday in window.days_of_week and now < end
    )


def decide_access(
    policy: AccessPolicy, station_owner: uuid.UUID, driver: Driver, local: datetime
) -> AccessDecision:
    """The patent's access control (FIG. 3 blocks 324-332): public or restricted to
    organisations / the owner's groups, only within the windows if any, free for some groups.

    ``local`` is the decision instant in the station's time zone.
    """
    groups = owner_groups(station_owner, driver)
    if policy.kind == "restricted":
        member = driver.organisation_id is not None and (
            driver.organisation_id in policy.allowed_organisations
        )
        if not (member or groups & set(policy.allowed_groups)):
            return AccessDecision(
                False,
                reason="access_denied",
                message="this station is reserved for certain organisations or groups",
            )
    if policy.windows and not any(in_window(w, local) for w in policy.windows):
        return AccessDecision(
            False,
            reason="access_denied",
            message=f"this station cannot be used at this time ({local:%a %H:%M} local)",
        )
    return AccessDecision(True, free_of_charge=bool(groups & set(policy.free_for_groups)))


def policy_problems(policy: AccessPolicy) -> list[tuple[str, str, str]]:
    """(field, reason, message) for policies that cannot mean what the operator wants."""
    problems: list[tuple[str, str, str]] = []
    if policy.kind == "restricted" and not (policy.allowed_organisations or policy.allowed_groups):
        problems.append(
            (
                "access_policy.kind",
                "restricted_without_audience",
                "a restricted station needs allowed_organisations or allowed_groups",
            )
        )
    if policy.kind == "public" and (policy.allowed_organisations or policy.allowed_groups):
        problems.append(
            (
                "access_policy.allowed_organisations",
                "contradictory_policy",
                "a public station admits everyone; use kind=restricted to limit it",
            )
        )
    for i, window in enumerate(policy.windows):
        at = f"access_policy.windows[{i}]"
        days = window.days_of_week
        if not days or any(d < 1 or d > 7 for d in days) or len(set(days)) != len(days):
            problems.append(
                (f"{at}.days_of_week", "invalid_days", "days are distinct numbers 1 (Mon)..7")
            )
        if window.start_time == window.end_time:
            problems.append(
                (f"{at}.start_time", "contradictory_restrictions", "start_time == end_time")
            )
    return problems


def _hhmm(value: str) -> time | None:
    return None if value == "24:00" else time(int(value[:2]), int(value[3:]))


def valid_time_zone(name: str) -> bool:
    """An IANA zone name zoneinfo knows (``Europe/Berlin``)."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return "/" in name or name == "UTC"


# --- tariff versions ----------------------------------------------------------------------------


@dataclass(frozen=True)
class TariffVersion:
    """One published version of a tariff."""

    key: str
    version: int
    organisation_id: uuid.UUID
    tariff: Tariff
    published_at: datetime

    @property
    def effective_from(self) -> datetime:
        """A version applies from its ``valid_from`` if given, never before it was published."""
        valid_from = self.tariff.valid_from
        return max(valid_from, self.published_at) if valid_from else self.published_at


def version_in_force(versions: Iterable[TariffVersion], at: datetime) -> TariffVersion | None:
    """The newest version already in effect at ``at`` (scheduled ones wait for their time)."""
    effective = [v for v in versions if v.effective_from <= at]
    return max(effective, key=lambda v: v.version, default=None)


# --- final cost ---------------------------------------------------------------------------------


def free_breakdown(tariff: Tariff, usage: SessionUsage) -> CostBreakdown:
    """A zero bill that still says what was used and under which tariff."""
    charging = usage.charging_ended_at - usage.started_at
    parking = usage.ended_at - usage.charging_ended_at
    return CostBreakdown(
        tariff_id=tariff.id,
        tariff_version=tariff.version,
        currency=tariff.currency,
        lines=(),
        energy_wh=usage.energy_wh,
        charging_s=Decimal(str(charging.total_seconds())),
        parking_s=Decimal(str(parking.total_seconds())),
        lines_excl_vat=0,
        lines_vat=0,
        total_excl_vat=0,
        total_vat=0,
        total_incl_vat=0,
        min_price_applied=False,
        max_price_applied=False,
        rounding="free of charge under the station's access policy: nothing is billed",
    )


@dataclass(frozen=True)
class SessionPricing:
    """pricing-svc's own record of one session: the decision, the snapshot, then the cost."""

    session_id: uuid.UUID
    station_id: str
    connector_id: int
    user_id: uuid.UUID
    outcome: Literal["priced", "denied"]
    decided_at: datetime
    denial_reason: str | None = None
    station_organisation_id: uuid.UUID | None = None
    tariff: Tariff | None = None
    time_zone: str | None = None
    max_power_w: int | None = None
    free_of_charge: bool = False
    cost: CostBreakdown | None = None
    costed_at: datetime | None = None


# --- the station directory ("find a charger") ---------------------------------------------------

Availability = Literal["Available", "Occupied", "Charging", "Faulted", "Unavailable", "Offline"]

# What a driver needs to know of an OCPP connector status (1.6 and 2.0.1 values).
_AVAILABILITY: dict[str, Availability] = {
    "Available": "Available",
    "Charging": "Charging",
    # A car is plugged in or the connector is held: not free, whether energy flows or not.
    "Preparing": "Occupied",
    "SuspendedEV": "Occupied",
    "SuspendedEVSE": "Occupied",
    "Finishing": "Occupied",
    "Reserved": "Occupied",
    "Occupied": "Occupied",
    "Faulted": "Faulted",
    "Unavailable": "Unavailable",
}


@dataclass(frozen=True)
class Presence:
    """What pricing-svc learned of a station's link to the gateway."""

    connected: bool = False
    online: bool = False

    @property
    def reachable(self) -> bool:
        return self.connected and self.online


@dataclass(frozen=True)
class DirectoryRow:
    """One station as the directory stores it (before prices are attached)."""

    station: Station
    latitude: float | None
    longitude: float | None
    address: str | None
    presence: Presence | None
    presence_at: datetime | None
    statuses: dict[int, tuple[str, datetime]] = field(default_factory=dict)


def availability(
    presence: Presence | None, station_status: str | None, status: str | None
) -> Availability:
    """A connector's availability for drivers.

    ``Offline`` when the station is not connected (or stopped heart-beating, or was never
    heard of); a station-wide (connector 0) ``Faulted``/``Unavailable`` applies to every
    connector; a connector that has not reported yet is ``Unavailable``.
    """
    if presence is None or not presence.reachable:
        return "Offline"
    if station_status in ("Faulted", "Unavailable"):
        return _AVAILABILITY[station_status]
    if status is None:
        return "Unavailable"
    return _AVAILABILITY.get(status, "Unavailable")


def newer(candidate: datetime, applied: datetime | None) -> bool:
    """Whether an event at ``candidate`` may replace state set at ``applied`` (a redelivered
    or late event never rolls the state back)."""
    return applied is None or candidate >= applied


EARTH_RADIUS_KM = 6371.0088


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine)."""
    p1, p2 = radians(lat1), radians(lat2)
    dlat, dlon = p2 - p1, radians(lon2 - lon1)
    a = sin(dlat / 2) ** 2 + cos(p1) * cos(p2) * sin(dlon / 2) ** 2
    return 2 * EARTH_RADIUS_KM * asin(min(1.0, sqrt(a)))


def bounding_box(lat: float, lon: float, radius_km: float) -> tuple[float, float, float, float]:
    """(min_lat, max_lat, min_lon, max_lon) enclosing the circle; a prefilter for SQL."""
    dlat = degrees(radius_km / EARTH_RADIUS_KM)
    cos_lat = cos(radians(lat))
    dlon = 180.0 if cos_lat < 1e-6 else min(180.0, degrees(radius_km / EARTH_RADIUS_KM) / cos_lat)
    return max(-90.0, lat - dlat), min(90.0, lat + dlat), lon - dlon, lon + dlon


def visible_to(policy: AccessPolicy, station_owner: uuid.UUID, driver: Driver | None) -> bool:
    """Whether the directory lists a station to this caller: public stations to everyone,
    restricted ones only to members of their audience (time windows do not hide a station)."""
    if policy.kind == "public":
        return True
    if driver is None:
        return False
    member = driver.organisation_id is not None and (
        driver.organisation_id in policy.allowed_organisations
    )
    return member or bool(owner_groups(station_owner, driver) & set(policy.allowed_groups))
