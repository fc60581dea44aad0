"""pricing-svc's use cases, shared by the operator API and the consumers.

Each takes a store (the repository, or a fake in unit tests) inside the caller's transaction and
never commits; outgoing events go through ``store.emit`` so they share that transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol
from zoneinfo import ZoneInfo

from plugpay_events import Envelope, Money
from plugpay_events.bus.port import PoisonEvent
from plugpay_events.contracts.identity import StationRegistered
from plugpay_events.contracts.pricing import AccessPolicy, StationCommercialsSet, TariffPublished
from plugpay_events.contracts.sessions import (
    SessionCodeScanned,
    SessionCompleted,
    SessionCostCalculated,
    SessionDenied,
    SessionPriced,
)
from plugpay_events.contracts.stations import (
    ConnectorStatusChanged,
    StationConnected,
    StationDisconnected,
    StationWentOffline,
)
from plugpay_platform.errors import Refusal
from plugpay_platform.outgoing import envelopes
from plugpay_tariffs import (
    CostBreakdown,
    PurchaseLimits,
    SessionUsage,
    TariffInvalid,
    TariffSummary,
    calculate_cost,
    describe,
    parse_tariff,
    purchasable_limits,
)
from pydantic import ValidationError

from pricing_svc.domain import (
    Availability,
    Commercials,
    Connector,
    DirectoryRow,
    Driver,
    SessionPricing,
    Station,
    TariffVersion,
    availability,
    bounding_box,
    decide_access,
    distance_km,
    free_breakdown,
    policy_problems,
    usage_from_completion,
    valid_time_zone,
    version_in_force,
    visible_to,
)

PRODUCER = "pricing-svc"
TARIFF_KEY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,35}$"


class Store(Protocol):
    """What the use cases need from persistence (``PricingRepository`` or a fake)."""

    async def station(self, station_id: str, *, for_update: bool = False) -> Station | None: ...
    async def stations_of(self, organisation_id: uuid.UUID) -> list[Station]: ...
    async def save_registration(self, station: Station, registered_at: datetime) -> None: ...
    async def save_commercials(self, station_id: str, commercials: Commercials) -> None: ...
    async def tariff_owner(self, key: str, *, for_update: bool = False) -> uuid.UUID | None: ...
    async def tariff_versions(self, key: str) -> list[TariffVersion]: ...
    async def latest_tariffs_of(self, organisation_id: uuid.UUID) -> list[TariffVersion]: ...
    async def create_tariff(self, key: str, organisation_id: uuid.UUID, at: datetime) -> bool: ...
    async def add_tariff_version(self, version: TariffVersion) -> None: ...
    async def session_pricing(
        self, session_id: uuid.UUID, *, for_update: bool = False
    ) -> SessionPricing | None: ...
    async def add_session_pricing(self, record: SessionPricing) -> bool: ...
    async def save_cost(
        self, session_id: uuid.UUID, cost: CostBreakdown, costed_at: datetime
    ) -> None: ...
    async def emit(self, envelopes: Sequence[Envelope]) -> None: ...
    async def save_location(
        self,
        station_id: str,
        latitude: float | None,
        longitude: float | None,
        address: str | None,
        at: datetime,
    ) -> None: ...
    async def save_presence(
        self,
        station_id: str,
        at: datetime,
        *,
        connected: bool | None = None,
        online: bool | None = None,
        ocpp_version: str | None = None,
    ) -> None: ...
    async def save_connector_status(
        self, station_id: str, connector_id: int, status: str, error_code: str | None, at: datetime
    ) -> None: ...
    async def directory(
        self, box: tuple[float, float, float, float] | None = None
    ) -> list[DirectoryRow]: ...


class InvalidInput(Exception):
    """Input that cannot be accepted, with one ``{"field", "reason", "message"}`` per problem;
    the API answers 422 with them."""

    def __init__(self, reason: str, problems: Sequence[dict[str, str]]) -> None:
        self.reason = reason
        self.problems = list(problems)
        super().__init__("; ".join(f"{p['field']}: {p['reason']}" for p in self.problems))


def _problem(field: str, reason: str, message: str) -> dict[str, str]:
    return {"field": field, "reason": reason, "message": message}


def _wrap(event: Any, caused_by: Envelope | None = None) -> Envelope:
    return envelopes([event], producer=PRODUCER, caused_by=caused_by)[0]


def _own_station(station: Station | None, station_id: str, organisation_id: uuid.UUID) -> Station:
    # Outside the caller's scope is the same answer as missing: no ownership oracle.
    if station is None or station.organisation_id != organisation_id:
        raise Refusal("station_unknown", f"no station {station_id} is registered", status_code=404)
    return station


# --- stations -----------------------------------------------------------------------------------


async def register_station(store: Store, event: StationRegistered) -> None:
    """Keep auth-svc's registration (owner, connectors) beside the commercials."""
    await store.save_registration(
        Station(
            station_id=event.station_id,
            organisation_id=event.organisation_id,
            name=event.name,
            connectors=tuple(
                Connector(c.connector_id, c.power_type, c.max_power_w, c.standard)
                for c in event.connectors
            ),
        ),
        event.registered_at,
    )


async def station_of(store: Store, organisation_id: uuid.UUID, station_id: str) -> Station:
    """A station the operator's organisation owns."""
    return _own_station(await store.station(station_id), station_id, organisation_id)


@dataclass(frozen=True)
class CommercialsChange:
    """What an operator sets for a station."""

    time_zone: str
    tariff_key: str
    access_policy: AccessPolicy
    connector_tariffs: dict[int, str]
    connector_max_power_w: dict[int, int]
    status: Literal["active", "inactive"] = "active"


async def set_commercials(
    store: Store,
    organisation_id: uuid.UUID,
    station_id: str,
    change: CommercialsChange,
    now: datetime,
) -> Station:
    """Validate and store a station's commercials; emit StationCommercialsSet."""
    station = _own_station(
        await store.station(station_id, for_update=True), station_id, organisation_id
    )
    problems = [_problem(*p) for p in policy_problems(change.access_policy)]
    if not valid_time_zone(change.time_zone):
        problems.append(_problem("time_zone", "unknown_time_zone", "not an IANA time zone"))
    known = {c.connector_id: c for c in station.connectors}
    for connector_id in change.connector_tariffs:
        if connector_id not in known:
            problems.append(
                _problem(f"connectors[{connector_id}]", "connector_unknown", "no such connector")
            )
    for connector_id, power in change.connector_max_power_w.items():
        connector = known.get(connector_id)
        if connector is None:
            problems.append(
                _problem(f"connectors[{connector_id}]", "connector_unknown", "no such connector")
            )
        elif not 0 < power <= connector.max_power_w:
            problems.append(
                _problem(
                    f"connectors[{connector_id}].max_power_w",
                    "power_above_rating",
                    f"must be within 1..{connector.max_power_w} W, the registered rating",
                )
            )
    keys = {("tariff_key", change.tariff_key)} | {
        (f"connectors[{c}].tariff_key", k) for c, k in change.connector_tariffs.items()
    }
    for field, key in sorted(keys):
        if await store.tariff_owner(key) != organisation_id:
            problems.append(
                _problem(field, "tariff_unknown", f"your organisation has no tariff {key!r}")
            )
    if problems:
        raise InvalidInput("commercials_invalid", problems)
    commercials = Commercials(
        time_zone=change.time_zone,
        tariff_key=change.tariff_key,
        access_policy=change.access_policy,
        connector_tariffs=dict(change.connector_tariffs),
        connector_max_power_w=dict(change.connector_max_power_w),
        status=change.status,
        updated_at=now,
    )
    await store.save_commercials(station_id, commercials)
    await store.emit(
        [
            _wrap(
                # The commercials as set, and whose station they are.
                StationCommercialsSet(
                    **asdict(commercials),
                    station_id=station_id,
                    organisation_id=station.organisation_id,
                    power_class=station.power_class,
                )
            )
        ]
    )
    return Station(
        station.station_id, station.organisation_id, station.name, station.connectors, commercials
    )


# --- the station directory (find a charger) ----------------------------------------------------


async def locate_station(store: Store, event: StationRegistered) -> None:
    """Where the station is, as its operator registered it (a re-registration moves it)."""
    await store.save_location(
        event.station_id, event.latitude, event.longitude, event.address, event.registered_at
    )


StationEvent = ConnectorStatusChanged | StationConnected | StationDisconnected | StationWentOffline


async def station_presence(store: Store, event: StationEvent) -> None:
    """Live availability from station-gateway's presence and connector status events.

    Connector statuses are applied in log order (the topic is keyed by station, and the
    gateway forwards the station's own order); presence changes carry the gateway's clock and
    one older than the state applied is ignored (a late StationWentOffline after a reconnect).
    """
    if isinstance(event, ConnectorStatusChanged):
        await store.save_connector_status(
            event.station_id, event.connector_id, event.status, event.error_code, event.changed_at
        )
    elif isinstance(event, StationConnected):
        await store.save_presence(
            event.station_id,
            event.connected_at,
            connected=True,
            online=True,
            ocpp_version=event.ocpp_version,
        )
    elif isinstance(event, StationDisconnected):
        await store.save_presence(event.station_id, event.disconnected_at, connected=False)
    elif isinstance(event, StationWentOffline):
        await store.save_presence(event.station_id, event.last_seen_at, online=False)


@dataclass(frozen=True)
class Near:
    """Where the driver is and how far to look."""

    latitude: float
    longitude: float
    radius_km: float | None = None


@dataclass(frozen=True)
class DirectoryConnector:
    connector: Connector
    max_power_w: int
    availability: Availability
    status: str | None
    status_since: datetime | None
    version: TariffVersion | None
    summary: TariffSummary | None


@dataclass(frozen=True)
class DirectoryEntry:
    row: DirectoryRow
    distance_km: float | None
    connectors: tuple[DirectoryConnector, ...]

    @property
    def station(self) -> Station:
        return self.row.station

    @property
    def reachable(self) -> bool:
        return self.row.presence is not None and self.row.presence.reachable


async def directory(
    store: Store,
    at: datetime,
    *,
    near: Near | None = None,
    driver: Driver | None = None,
    limit: int = 100,
) -> list[DirectoryEntry]:
    """Stations in service a driver may use, nearest first when ``near`` is given (else the
    reachable ones first, then those with a location, each by id): location, each connector's
    availability and the price in force at ``at``.

    Anonymous callers see public stations; a driver also sees the restricted ones whose
    audience they belong to. Within a radius only located stations qualify; without one,
    stations without a location come last.
    """
    radius = near.radius_km if near is not None else None
    box = None
    if near is not None and radius is not None:
        box = bounding_box(near.latitude, near.longitude, radius)
    versions: dict[str, TariffVersion | None] = {}
    summaries: dict[tuple[str, int, str], TariffSummary] = {}
    entries: list[DirectoryEntry] = []
    for row in await store.directory(box):
        station, commercials = row.station, row.station.commercials
        assert commercials is not None
        if not visible_to(commercials.access_policy, station.organisation_id, driver):
            continue
        distance = None
        if near is not None and row.latitude is not None and row.longitude is not None:
            distance = distance_km(near.latitude, near.longitude, row.latitude, row.longitude)
        if radius is not None and (distance is None or distance > radius):
            continue
        station_status = row.statuses.get(0, (None, None))[0]
        connectors = []
        for connector in station.connectors:
            key = station.tariff_key(connector.connector_id)
            if key is not None and key not in versions:
                versions[key] = version_in_force(await store.tariff_versions(key), at)
            version = versions.get(key) if key else None
            summary = None
            if version is not None:
                cache = (version.key, version.version, commercials.time_zone)
                if cache not in summaries:
                    summaries[cache] = describe(version.tariff, at, commercials.time_zone)
                summary = summaries[cache]
            status, since = row.statuses.get(connector.connector_id, (None, None))
            connectors.append(
                DirectoryConnector(
                    connector=connector,
                    max_power_w=station.max_power_w(connector.connector_id)
                    or connector.max_power_w,
                    availability=availability(row.presence, station_status, status),
                    status=status,
                    status_since=since,
                    version=version,
                    summary=summary,
                )
            )
        if not any(c.summary for c in connectors):
            continue  # nothing priced yet: a driver could not charge there
        entries.append(DirectoryEntry(row=row, distance_km=distance, connectors=tuple(connectors)))
    if near is not None:
        entries.sort(
            key=lambda e: (e.distance_km is None, e.distance_km or 0.0, e.station.station_id)
        )
    else:
        # Where a driver can charge comes first: an offline station with no location is last.
        entries.sort(key=lambda e: (not e.reachable, e.row.latitude is None, e.station.station_id))
    return entries[:limit]


# --- tariffs ------------------------------------------------------------------------------------


async def publish_tariff(
    store: Store,
    organisation_id: uuid.UUID,
    key: str,
    body: dict[str, Any],
    now: datetime,
    *,
    create_only: bool = False,
) -> tuple[TariffVersion, bool]:
    """Validate ``body`` with plugpay_tariffs and store it as the key's next version (1 for a new
    key); emit TariffPublished. Returns the version and whether the key is new."""
    for server_field in ("id", "version"):
        if server_field in body:
            raise InvalidInput(
                "tariff_invalid",
                [_problem(server_field, "server_assigned", "set by the server, not the caller")],
            )
    owner = await store.tariff_owner(key, for_update=True)
    if owner is not None and owner != organisation_id:
        # Tariff keys are one namespace: a taken key is refused without saying whose it is.
        raise Refusal(
            "tariff_key_unavailable",
            f"tariff key {key!r} cannot be used; choose another",
            status_code=409,
        )
    if owner is not None and create_only:
        raise Refusal(
            "tariff_exists", f"tariff {key!r} exists; PUT a new version instead", status_code=409
        )
    previous = await store.tariff_versions(key) if owner else []
    number = previous[-1].version + 1 if previous else 1
    try:
        tariff = parse_tariff({**body, "id": key, "version": number})
    except TariffInvalid as invalid:
        problems = [_problem(r["field"], r["reason"], r["message"]) for r in invalid.reasons]
        raise InvalidInput("tariff_invalid", problems) from invalid
    if owner is None and not await store.create_tariff(key, organisation_id, now):
        raise Refusal(
            "conflict", f"tariff {key!r} was created concurrently; retry", status_code=409
        )
    version = TariffVersion(key, number, organisation_id, tariff, now)
    await store.add_tariff_version(version)
    await store.emit(
        [
            _wrap(
                TariffPublished(
                    tariff_key=key, organisation_id=organisation_id, tariff=tariff, published_at=now
                )
            )
        ]
    )
    return version, owner is None


async def tariff_history(store: Store, organisation_id: uuid.UUID, key: str) -> list[TariffVersion]:
    """Every version of one of the organisation's tariffs, oldest first."""
    owner = await store.tariff_owner(key)
    if owner is None or owner != organisation_id:
        raise Refusal("tariff_unknown", f"no tariff {key!r}", status_code=404)
    return await store.tariff_versions(key)


# --- quotes -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Quote:
    """The price a driver would pay at a connector if charging started at ``at``."""

    station: Station
    connector: Connector
    max_power_w: int
    version: TariffVersion
    summary: TariffSummary
    example_energy_wh: int
    example_duration_s: int
    example: CostBreakdown
    limits: PurchaseLimits | None


EXAMPLE_ENERGY_WH = 20_000


async def quote(
    store: Store,
    station_id: str,
    connector_id: int,
    at: datetime,
    budget_minor: int | None,
    caller: Driver | None = None,
) -> Quote:
    """The tariff in force at a connector, in plain terms, with an example session and (given a
    budget) the energy and charging time it buys. A restricted station is hidden from whom the
    directory hides it (its owner's operators see it too)."""
    station = await store.station(station_id)
    if (
        station is None
        or station.commercials is None
        or not (
            visible_to(station.commercials.access_policy, station.organisation_id, caller)
            or (caller is not None and caller.organisation_id == station.organisation_id)
        )
    ):
        raise Refusal(
            "station_unknown", f"no prices are published for {station_id}", status_code=404
        )
    connector = station.connector(connector_id)
    key = station.tariff_key(connector_id)
    if connector is None or key is None:
        raise Refusal(
            "connector_unknown", f"{station_id} has no connector {connector_id}", status_code=404
        )
    version = version_in_force(await store.tariff_versions(key), at)
    if version is None:
        raise Refusal(
            "tariff_unknown", f"no tariff is in force at {station_id} yet", status_code=404
        )
    tz = station.commercials.time_zone
    power = station.max_power_w(connector_id) or connector.max_power_w
    duration = max(1, -(-EXAMPLE_ENERGY_WH * 3600 // power))
    example = calculate_cost(
        version.tariff,
        SessionUsage.linear(at, EXAMPLE_ENERGY_WH, at + timedelta(seconds=duration)),
        tz,
    )
    limits = None
    if budget_minor is not None:
        limits = purchasable_limits(version.tariff, budget_minor, at, tz, power)
    return Quote(
        station=station,
        connector=connector,
        max_power_w=power,
        version=version,
        summary=describe(version.tariff, at, tz),
        example_energy_wh=EXAMPLE_ENERGY_WH,
        example_duration_s=duration,
        example=example,
        limits=limits,
    )


# --- the session flow ---------------------------------------------------------------------------


async def price_session(store: Store, envelope: Envelope, event: SessionCodeScanned) -> None:
    """Patent FIG. 3 blocks 322-332: access policy, then the tariff snapshot or a denial.

    Decided at ``scanned_at`` (what the driver saw), so a replay decides the same way. A
    session is decided once; a second scan event for it emits nothing.
    """
    if await store.session_pricing(event.session_id) is not None:
        return
    station = await store.station(event.station_id)
    decision = await _decide(store, station, event)
    # Denied until the decision says otherwise: the scan's session, station and driver.
    record = SessionPricing(
        **_named_by(event),
        outcome="denied",
        decided_at=event.scanned_at,
    )
    if isinstance(decision, SessionDenied):
        record = replace(record, decided_at=decision.denied_at, denial_reason=decision.reason)
    else:
        record = replace(
            record,
            outcome="priced",
            decided_at=decision.priced_at,
            station_organisation_id=decision.station_organisation_id,
            tariff=decision.tariff,
            time_zone=decision.time_zone,
            max_power_w=decision.max_power_w,
            free_of_charge=decision.free_of_charge,
        )
    if await store.add_session_pricing(record):
        await store.emit([_wrap(decision, envelope)])


def _named_by(scan: SessionCodeScanned) -> dict[str, Any]:
    """The scan's session, station, connector and driver: what every pricing outcome names."""
    return {
        "session_id": scan.session_id,
        "station_id": scan.station_id,
        "connector_id": scan.connector_id,
        "user_id": scan.user_id,
    }


async def _decide(
    store: Store, station: Station | None, event: SessionCodeScanned
) -> SessionPriced | SessionDenied:
    def deny(reason: Any, message: str) -> SessionDenied:
        return SessionDenied(
            **_named_by(event),
            reason=reason,
            message=message,
            denied_by=PRODUCER,
            denied_at=event.scanned_at,
        )

    if station is None:
        return deny("station_unknown", f"station {event.station_id} is not known")
    commercials = station.commercials
    if commercials is None:
        return deny("station_unknown", f"station {event.station_id} has no prices set yet")
    connector = station.connector(event.connector_id)
    if connector is None:
        return deny("connector_unavailable", f"connector {event.connector_id} does not exist")
    if commercials.status != "active":
        return deny("connector_unavailable", "this station is out of service")
    key = station.tariff_key(event.connector_id)
    version = version_in_force(await store.tariff_versions(key), event.scanned_at) if key else None
    if version is None:
        return deny("station_unknown", "no tariff is in force at this station")
    access = decide_access(
        commercials.access_policy,
        station.organisation_id,
        Driver(event.user_id, event.organisation_id, frozenset(event.user_groups)),
        event.scanned_at.astimezone(ZoneInfo(commercials.time_zone)),
    )
    if not access.allowed:
        return deny(access.reason, access.message)
    return SessionPriced(
        **_named_by(event),
        station_organisation_id=station.organisation_id,
        tariff=version.tariff,
        time_zone=commercials.time_zone,
        max_power_w=station.max_power_w(event.connector_id) or connector.max_power_w,
        free_of_charge=access.free_of_charge,
        priced_at=event.scanned_at,
    )


async def cost_session(
    store: Store, envelope: Envelope, event: SessionCompleted, now: datetime
) -> None:
    """The final cost from the snapshot taken when the session was priced; once per session."""
    record = await store.session_pricing(event.session_id, for_update=True)
    if record is None or record.outcome != "priced" or record.tariff is None:
        # Nothing to price it with: park it where people look instead of guessing a price.
        raise PoisonEvent(f"session {event.session_id} was never priced by pricing-svc")
    if record.cost is not None:
        return
    try:
        usage = usage_from_completion(
            started_at=event.started_at,
            charging_ended_at=event.charging_ended_at,
            ended_at=event.ended_at,
            meter_start_wh=event.meter_start_wh,
            energy_wh=event.energy_wh,
            samples=event.samples,
        )
    except (ValidationError, ValueError) as error:
        raise PoisonEvent(f"inconsistent session data: {error}") from error
    assert record.time_zone is not None
    breakdown = (
        free_breakdown(record.tariff, usage)
        if record.free_of_charge
        else calculate_cost(record.tariff, usage, record.time_zone)
    )
    await store.save_cost(event.session_id, breakdown, now)
    await store.emit(
        [
            _wrap(
                SessionCostCalculated(
                    session_id=event.session_id,
                    user_id=record.user_id,
                    station_id=record.station_id,
                    total=Money(amount_minor=breakdown.total_incl_vat, currency=breakdown.currency),
                    breakdown=breakdown,
                    calculated_at=now,
                    free_of_charge=record.free_of_charge,
                ),
                envelope,
            )
        ]
    )
