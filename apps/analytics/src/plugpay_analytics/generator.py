"""A realistic month of charging activity as the EVENTS the real flow produces, with ground truth.

Every event is a real contract class from ``plugpay_events`` in a real ``Envelope``, in the order
and with the causation the services produce them (docs/flow.md): station boot and connector
status, tariffs and station commercials, then per visit ``SessionCodeIssued`` → (expired | scanned
→ priced | denied → authorised | denied → started | abandoned → meter values → (stop requested)
→ completed → cost calculated with ``plugpay_tariffs.calculate_cost`` → billed). Connector status
follows each visit (Preparing, Charging, SuspendedEV while parked, Finishing, Available), and one
connector faults for a while.

Realism: arrivals follow a weekday/weekend hour-of-day profile in the stations' time zone; AC and
DC stations; energy needs, parking after charging, peak-hour and time-based tariffs; a few free
sessions under an access policy; the first days' scans are stored as ``SessionCodeScanned`` v1
(before ``code_kind`` existed) so readers must upcast; a few envelopes are published twice
(at-least-once delivery) and must be counted once.

``GroundTruth`` is what the live stores would hold: the totals a report must reproduce exactly.
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from plugpay_events.contracts.pricing import AccessPolicy, StationCommercialsSet, TariffPublished
from plugpay_events.contracts.sessions import (
    ChargingStarted,
    MeterSample,
    MeterValuesReported,
    SessionAbandoned,
    SessionAuthorized,
    SessionBilled,
    SessionCodeExpired,
    SessionCodeIssued,
    SessionCodeScanned,
    SessionCompleted,
    SessionCostCalculated,
    SessionDenied,
    SessionHoldReleased,
    SessionLimits,
    SessionPriced,
    SessionStopRequested,
)
from plugpay_events.contracts.stations import ConnectorStatusChanged, StationBooted
from plugpay_events.envelope import Envelope, Event
from plugpay_events.types import Money
from plugpay_tariffs import (
    ComponentType,
    PriceComponent,
    SessionUsage,
    Tariff,
    TariffElement,
    TariffRestrictions,
    calculate_cost,
)
from plugpay_tariffs import MeterSample as UsageSample

TIME_ZONE = "Europe/Amsterdam"
CURRENCY = "EUR"

# Relative arrival intensity per local hour (0..23).
WEEKDAY_PROFILE = [
    0.2, 0.1, 0.1, 0.1, 0.2, 0.4, 1.0, 2.2, 3.0, 2.4, 1.6, 1.6,
    2.0, 1.8, 1.5, 1.6, 2.2, 3.0, 3.2, 2.4, 1.6, 1.1, 0.7, 0.4,
]  # fmt: skip
WEEKEND_PROFILE = [
    0.3, 0.2, 0.1, 0.1, 0.1, 0.2, 0.3, 0.6, 1.2, 2.0, 2.6, 3.0,
    3.0, 2.8, 2.6, 2.4, 2.2, 2.0, 1.8, 1.4, 1.0, 0.8, 0.6, 0.4,
]  # fmt: skip


def _at_vat(kind: ComponentType, eur: str, step_size: int = 1) -> PriceComponent:
    """A price in euros with Dutch VAT (21 %), as every demo tariff has."""
    return PriceComponent(type=kind, price=Decimal(eur), vat=Decimal(21), step_size=step_size)


def demo_tariffs() -> dict[str, Tariff]:
    """Three real tariffs: AC with parking fee, AC with evening peak, DC with time and minimum."""
    standard = Tariff(
        id="ac-standard",
        version=1,
        currency=CURRENCY,
        elements=(
            TariffElement(
                price_components=(
                    _at_vat(ComponentType.FLAT, "0.35"),
                    _at_vat(ComponentType.ENERGY, "0.39", step_size=1),
                    _at_vat(ComponentType.PARKING_TIME, "2.40", step_size=60),
                )
            ),
        ),
    )
    peak = Tariff(
        id="ac-peak",
        version=3,
        currency=CURRENCY,
        elements=(
            TariffElement(
                price_components=(_at_vat(ComponentType.ENERGY, "0.49"),),
                restrictions=TariffRestrictions(start_time="17:00", end_time="21:00"),
            ),
            TariffElement(
                price_components=(_at_vat(ComponentType.ENERGY, "0.34"),),
            ),
        ),
    )
    fast = Tariff(
        id="dc-fast",
        version=2,
        currency=CURRENCY,
        min_price=200,
        elements=(
            TariffElement(
                price_components=(
                    _at_vat(ComponentType.ENERGY, "0.59"),
                    _at_vat(ComponentType.TIME, "1.20", step_size=60),
                )
            ),
        ),
    )
    return {t.id: t for t in (standard, peak, fast)}


@dataclass(frozen=True)
class StationSpec:
    station_id: str
    organisation_id: uuid.UUID
    tariff: str
    power_class: str
    max_power_w: int
    connectors: int
    free_group: str | None = None


@dataclass
class GroundTruth:
    """What the live stores would say about the generated month."""

    period_start: dt.datetime
    period_end: dt.datetime
    codes_issued: int = 0
    codes_expired: int = 0
    scanned: int = 0
    scanned_v1: int = 0
    priced: int = 0
    authorized: int = 0
    started: int = 0
    completed: int = 0
    billed: int = 0
    abandoned: Counter[str] = field(default_factory=Counter)
    denials: Counter[str] = field(default_factory=Counter)
    energy_wh: int = 0
    revenue_minor: dict[str, int] = field(default_factory=dict)
    cost_minor: dict[str, int] = field(default_factory=dict)
    free_sessions: int = 0
    charging_s: int = 0
    per_station_sessions: Counter[str] = field(default_factory=Counter)
    per_station_energy_wh: Counter[str] = field(default_factory=Counter)
    per_station_revenue_minor: Counter[str] = field(default_factory=Counter)
    per_local_day_sessions: Counter[str] = field(default_factory=Counter)
    events: int = 0
    duplicates: int = 0
    by_type: Counter[str] = field(default_factory=Counter)
    session_durations_s: list[int] = field(default_factory=list)


@dataclass
class Month:
    """The envelopes to publish (duplicates included, in publishing order) and the truth."""

    envelopes: list[Envelope]
    truth: GroundTruth
    tariffs: dict[str, Tariff]
    stations: list[StationSpec]


class _Ids:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def uuid(self) -> uuid.UUID:
        return uuid.UUID(int=self.rng.getrandbits(128), version=4)


def _profile_times(rng: random.Random, day: dt.date, tz: ZoneInfo, count: int) -> list[dt.datetime]:
    profile = WEEKEND_PROFILE if day.weekday() >= 5 else WEEKDAY_PROFILE
    hours = rng.choices(range(24), weights=profile, k=count)
    times = []
    for hour in hours:
        local = dt.datetime.combine(day, dt.time(hour), tzinfo=tz) + dt.timedelta(
            seconds=rng.randrange(3600)
        )
        times.append(local.astimezone(dt.UTC))
    return sorted(times)


class _Emitter:
    def __init__(self, ids: _Ids, truth: GroundTruth) -> None:
        self.ids = ids
        self.truth = truth
        self.envelopes: list[Envelope] = []

    def emit(
        self,
        event: Event,
        at: dt.datetime,
        producer: str,
        caused_by: Envelope | None = None,
        correlation_id: uuid.UUID | None = None,
    ) -> Envelope:
        envelope = Envelope.wrap(
            event,
            producer=producer,
            caused_by=caused_by,
            correlation_id=correlation_id,
            occurred_at=at,
        ).model_copy(update={"event_id": self.ids.uuid()})
        self.envelopes.append(envelope)
        self.truth.events += 1
        self.truth.by_type[event.type] += 1
        return envelope

    def emit_v1_scan(
        self, event: SessionCodeScanned, at: dt.datetime, caused_by: Envelope
    ) -> Envelope:
        """A scan as session-svc stored it before v2: no ``code_kind``, version 1."""
        payload = event.model_dump(mode="json")
        del payload["code_kind"]
        envelope = Envelope(
            event_id=self.ids.uuid(),
            type=event.type,
            version=1,
            occurred_at=at,
            aggregate_id=event.aggregate_id(),
            correlation_id=caused_by.correlation_id,
            causation_id=caused_by.event_id,
            producer="session-svc",
            payload=payload,
        )
        self.envelopes.append(envelope)
        self.truth.events += 1
        self.truth.by_type[event.type] += 1
        return envelope


def generate_month(
    *,
    seed: int = 11,
    start: dt.date = dt.date(2025, 5, 1),
    days: int = 31,
    stations: int = 10,
    visits_per_connector_day: float = 10.0,
    duplicate_rate: float = 0.003,
    v1_scan_days: int = 10,
) -> Month:
    """Generate ``days`` of activity; about ``stations x 2 x days x visits x 0.75`` code issues
    (visits that find the connector busy go elsewhere and leave no trace)."""
    rng = random.Random(seed)  # noqa: S311  (reproducible test data)
    ids = _Ids(rng)
    tz = ZoneInfo(TIME_ZONE)
    period_start = dt.datetime.combine(start, dt.time(0), tzinfo=tz).astimezone(dt.UTC)
    period_end = period_start + dt.timedelta(days=days)
    truth = GroundTruth(period_start=period_start, period_end=period_end)
    out = _Emitter(ids, truth)
    tariffs = demo_tariffs()
    orgs = [ids.uuid(), ids.uuid()]
    users = [ids.uuid() for _ in range(600)]
    staff = set(rng.sample(users, 40))

    specs: list[StationSpec] = []
    for index in range(stations):
        dc = index % 4 == 3
        specs.append(
            StationSpec(
                station_id=f"NL-AMS-{index + 1:03d}",
                organisation_id=orgs[index % 2],
                tariff="dc-fast" if dc else ("ac-peak" if index % 4 == 1 else "ac-standard"),
                power_class="DC" if dc else "AC",
                max_power_w=50_000 if dc else (11_000 if index % 2 else 7_400),
                connectors=2,
                free_group="staff" if index == 0 else None,
            )
        )

    # Set-up: tariffs, commercials, boot and initial connector status, just before the month.
    setup_at = period_start - dt.timedelta(hours=1)
    for key, tariff in tariffs.items():
        out.emit(
            TariffPublished(
                tariff_key=key, organisation_id=orgs[0], tariff=tariff, published_at=setup_at
            ),
            setup_at,
            "pricing-svc",
        )
    for spec in specs:
        out.emit(
            StationCommercialsSet(
                station_id=spec.station_id,
                organisation_id=spec.organisation_id,
                time_zone=TIME_ZONE,
                tariff_key=spec.tariff,
                access_policy=AccessPolicy(
                    free_for_groups=(spec.free_group,) if spec.free_group else ()
                ),
                power_class=spec.power_class,
                updated_at=setup_at,
                connector_max_power_w={c: spec.max_power_w for c in range(1, spec.connectors + 1)},
            ),
            setup_at,
            "pricing-svc",
        )
        booted = period_start - dt.timedelta(minutes=5)
        out.emit(
            StationBooted(
                station_id=spec.station_id,
                vendor="Alfen" if spec.power_class == "AC" else "ABB",
                model="Eve Double" if spec.power_class == "AC" else "Terra 54",
                firmware_version="6.4.0",
                booted_at=booted,
            ),
            booted,
            "station-gateway",
        )
        for connector in range(1, spec.connectors + 1):
            out.emit(
                ConnectorStatusChanged(
                    station_id=spec.station_id,
                    connector_id=connector,
                    status="Available",
                    changed_at=period_start,
                ),
                period_start,
                "station-gateway",
            )

    def status(spec: StationSpec, connector: int, value: str, at: dt.datetime) -> None:
        out.emit(
            ConnectorStatusChanged(
                station_id=spec.station_id,
                connector_id=connector,
                status=value,
                changed_at=at,
            ),
            at,
            "station-gateway",
        )

    register_wh: dict[tuple[str, int], int] = {}
    fault = (specs[min(6, len(specs) - 1)].station_id, 2)
    fault_from = period_start + dt.timedelta(days=11, hours=9)
    fault_to = fault_from + dt.timedelta(hours=20)

    for spec in specs:
        tariff = tariffs[spec.tariff]
        for connector in range(1, spec.connectors + 1):
            free_at = period_start
            register_wh[(spec.station_id, connector)] = rng.randrange(1_000_000, 9_000_000)
            faulted = False
            for day_index in range(days):
                day = start + dt.timedelta(days=day_index)
                count = max(0, round(rng.gauss(visits_per_connector_day, 2.0)))
                for arrival in _profile_times(rng, day, tz, count):
                    if (
                        (spec.station_id, connector) == fault
                        and not faulted
                        and arrival >= fault_from
                    ):
                        at = max(fault_from, free_at)
                        status(spec, connector, "Faulted", at)
                        status(spec, connector, "Available", fault_to)
                        free_at = fault_to
                        faulted = True
                    if arrival < free_at or arrival >= period_end - dt.timedelta(hours=4):
                        continue  # connector busy: this driver goes elsewhere
                    free_at = _visit(
                        rng,
                        ids,
                        out,
                        truth,
                        spec,
                        connector,
                        tariff,
                        arrival,
                        users,
                        staff,
                        register_wh,
                        status,
                        v1_until=period_start + dt.timedelta(days=v1_scan_days),
                    )

    # Publishing order: by time (each session's events are strictly increasing in time), then
    # a few envelopes again, as a relay does after a crash between publish and marking.
    envelopes = sorted(out.envelopes, key=lambda e: e.occurred_at)
    published: list[Envelope] = []
    for envelope in envelopes:
        published.append(envelope)
        if envelope.type.startswith("Session") and rng.random() < duplicate_rate:
            published.append(envelope)
            truth.duplicates += 1
    return Month(published, truth, tariffs, specs)


def _visit(
    rng: random.Random,
    ids: _Ids,
    out: _Emitter,
    truth: GroundTruth,
    spec: StationSpec,
    connector: int,
    tariff: Tariff,
    arrival: dt.datetime,
    users: list[uuid.UUID],
    staff: set[uuid.UUID],
    register_wh: dict[tuple[str, int], int],
    status: Callable[[StationSpec, int, str, dt.datetime], None],
    *,
    v1_until: dt.datetime,
) -> dt.datetime:
    """One driver at one connector; returns when the connector is free again."""
    sid = ids.uuid()
    station = spec.station_id
    # what every connector-scoped session event of this session carries
    at_connector: dict[str, Any] = {
        "session_id": sid,
        "station_id": station,
        "connector_id": connector,
    }
    sec = dt.timedelta(seconds=1)
    arrival = arrival.replace(microsecond=0)
    status(spec, connector, "Preparing", arrival)
    issued_at = arrival + 5 * sec
    issued = out.emit(
        SessionCodeIssued(
            **at_connector,
            session_started_at=issued_at,
            expires_at=issued_at + dt.timedelta(minutes=5),
            code=f"{rng.randrange(16**6):06X}",
            qr_url=f"https://pay.example/s/{sid.hex}",
            token_id=uuid.UUID(int=ids.rng.getrandbits(128)).hex,
        ),
        issued_at,
        "station-gateway",
        correlation_id=ids.uuid(),
    )
    truth.codes_issued += 1

    def leave(at: dt.datetime) -> dt.datetime:
        status(spec, connector, "Available", at)
        return at

    if rng.random() < 0.06:  # nobody scans
        expired_at = issued_at + dt.timedelta(minutes=5)
        out.emit(
            SessionCodeExpired(**at_connector, expired_at=expired_at),
            expired_at,
            "session-svc",
            issued,
        )
        truth.codes_expired += 1
        return leave(expired_at + dt.timedelta(minutes=1))

    user = rng.choice(users)
    scanned_at = issued_at + dt.timedelta(seconds=rng.randrange(15, 120))
    kind = "typed" if rng.random() < 0.12 else "qr"
    scan = SessionCodeScanned(
        **at_connector,
        session_started_at=issued_at,
        scanned_at=scanned_at,
        user_id=user,
        code_kind=kind,
        user_groups=("staff",) if user in staff else (),
    )
    if scanned_at < v1_until and kind == "qr":
        scanned = out.emit_v1_scan(scan, scanned_at, issued)
        truth.scanned_v1 += 1
    else:
        scanned = out.emit(scan, scanned_at, "session-svc", issued)
    truth.scanned += 1

    def deny(reason: str, by: str, at: dt.datetime, cause: Envelope) -> dt.datetime:
        out.emit(
            SessionDenied(
                **at_connector,
                user_id=user,
                reason=reason,
                message=reason.replace("_", " "),
                denied_by=by,
                denied_at=at,
            ),
            at,
            by,
            cause,
        )
        truth.denials[reason] += 1
        return leave(at + dt.timedelta(minutes=2))

    priced_at = scanned_at + sec
    if rng.random() < 0.02:
        return deny("access_denied", "pricing-svc", priced_at, scanned)
    free = spec.free_group is not None and user in staff
    priced = out.emit(
        SessionPriced(
            **at_connector,
            user_id=user,
            station_organisation_id=spec.organisation_id,
            tariff=tariff,
            time_zone=TIME_ZONE,
            max_power_w=spec.max_power_w,
            free_of_charge=free,
            priced_at=priced_at,
        ),
        priced_at,
        "pricing-svc",
        scanned,
    )
    truth.priced += 1

    authorized_at = priced_at + 2 * sec
    roll = rng.random()
    if not free and roll < 0.055:
        reason = rng.choices(
            ["insufficient_funds", "payment_declined", "no_payment_method"], weights=[6, 3, 1]
        )[0]
        return deny(reason, "billing-svc", authorized_at, priced)
    funding = "free" if free else rng.choice(["wallet", "wallet", "card"])
    hold = Money(amount_minor=0 if free else 6000, currency=CURRENCY)
    hold_id = None if free else ids.uuid()
    authorized = out.emit(
        SessionAuthorized(
            **at_connector,
            user_id=user,
            funding=funding,
            hold_id=hold_id,
            hold_amount=hold,
            limits=SessionLimits(max_cost=None if free else hold),
            authorized_at=authorized_at,
            start_deadline=authorized_at + dt.timedelta(minutes=2),
        ),
        authorized_at,
        "billing-svc",
        priced,
    )
    truth.authorized += 1

    if rng.random() < 0.025:
        reason = rng.choice(["start_timeout", "start_timeout", "station_rejected"])
        at = authorized_at + (dt.timedelta(minutes=2) if reason == "start_timeout" else 8 * sec)
        abandoned = out.emit(
            SessionAbandoned(
                **at_connector,
                reason=reason,
                abandoned_at=at,
            ),
            at,
            "session-svc" if reason == "start_timeout" else "station-gateway",
            authorized,
        )
        truth.abandoned[reason] += 1
        if hold_id is not None:
            out.emit(
                SessionHoldReleased(
                    session_id=sid,
                    user_id=user,
                    hold_id=hold_id,
                    released=hold,
                    released_at=at + sec,
                ),
                at + sec,
                "billing-svc",
                abandoned,
            )
        return leave(at + dt.timedelta(minutes=1))

    started_at = authorized_at + dt.timedelta(seconds=rng.randrange(4, 30))
    meter_start = register_wh[(station, connector)]
    transaction = str(rng.randrange(10**8))
    started = out.emit(
        ChargingStarted(
            **at_connector,
            transaction_id=transaction,
            meter_start_wh=meter_start,
            started_at=started_at,
        ),
        started_at,
        "station-gateway",
        authorized,
    )
    status(spec, connector, "Charging", started_at)
    truth.started += 1

    power = spec.max_power_w * rng.uniform(0.55, 0.95)
    need_wh = rng.randint(4_000, 48_000 if spec.power_class == "DC" else 36_000)
    charging_s = int(need_wh / power * 3600)
    stop_reason = "ev_disconnected"
    if spec.power_class == "AC" and charging_s > 5 * 3600 and rng.random() < 0.5:
        charging_s = rng.randint(3600, 5 * 3600)  # left early
        stop_reason = "driver_stopped"
    charging_s = max(charging_s, 120)
    energy_wh = int(power * charging_s / 3600)
    charging_ended_at = started_at + dt.timedelta(seconds=charging_s)
    parked = spec.power_class == "AC" and rng.random() < 0.45
    parking_s = rng.randint(600, 3 * 3600) if parked else rng.randint(20, 240)
    ended_at = charging_ended_at + dt.timedelta(seconds=parking_s)

    # Meter values every 15 minutes, a few samples each (cumulative register).
    samples: list[MeterSample] = []
    usage_points: list[UsageSample] = []
    t = 900
    while t < charging_s:
        at = started_at + dt.timedelta(seconds=t)
        delivered = int(energy_wh * t / charging_s)
        samples.append(
            MeterSample(sampled_at=at, energy_wh=meter_start + delivered, power_w=int(power))
        )
        usage_points.append(UsageSample(at=at, energy_wh=delivered, power_w=int(power)))
        t += 900
    usage_points.append(UsageSample(at=charging_ended_at, energy_wh=energy_wh))
    for i in range(0, len(samples), 4):
        group = tuple(samples[i : i + 4])
        out.emit(
            MeterValuesReported(
                **at_connector,
                transaction_id=transaction,
                samples=group,
                soc_percent=min(100, 20 + int(70 * (i + len(group)) / max(len(samples), 1))),
            ),
            group[-1].sampled_at,
            "station-gateway",
            started,
        )
    cause = started
    if stop_reason == "driver_stopped":
        requested_at = charging_ended_at - 3 * sec
        cause = out.emit(
            SessionStopRequested(
                session_id=sid, requested_by="driver", user_id=user, requested_at=requested_at
            ),
            requested_at,
            "session-svc",
            started,
        )
        stop_reason = "remote"
    if stop_reason == "remote":  # the transaction ends with the charging
        status(spec, connector, "Finishing", charging_ended_at)
    else:  # the car is full: suspended until it is unplugged
        status(spec, connector, "SuspendedEV", charging_ended_at)
        status(spec, connector, "Finishing", ended_at - sec)
    register_wh[(station, connector)] = meter_start + energy_wh
    completed = out.emit(
        SessionCompleted(
            **at_connector,
            transaction_id=transaction,
            meter_start_wh=meter_start,
            meter_stop_wh=meter_start + energy_wh,
            energy_wh=energy_wh,
            started_at=started_at,
            charging_ended_at=charging_ended_at,
            ended_at=ended_at,
            stop_reason=stop_reason,
            samples=tuple(samples),
        ),
        ended_at,
        "station-gateway",
        cause,
    )
    truth.completed += 1
    truth.energy_wh += energy_wh
    truth.charging_s += charging_s
    truth.session_durations_s.append(charging_s + parking_s)
    truth.per_station_sessions[station] += 1
    truth.per_station_energy_wh[station] += energy_wh
    local_day = started_at.astimezone(ZoneInfo(TIME_ZONE)).date().isoformat()
    truth.per_local_day_sessions[local_day] += 1

    usage = SessionUsage(
        started_at=started_at,
        charging_ended_at=charging_ended_at,
        ended_at=ended_at,
        samples=tuple(usage_points),
    )
    breakdown = calculate_cost(tariff, usage, TIME_ZONE)
    total = 0 if free else breakdown.total_incl_vat
    if free:
        breakdown = breakdown.model_copy(
            update={
                "lines": (),
                "lines_excl_vat": 0,
                "lines_vat": 0,
                "total_excl_vat": 0,
                "total_vat": 0,
                "total_incl_vat": 0,
                "rounding": "free of charge under the station's access policy: nothing is billed",
            }
        )
        truth.free_sessions += 1
    calculated_at = ended_at + 2 * sec
    cost = out.emit(
        SessionCostCalculated(
            session_id=sid,
            user_id=user,
            station_id=station,
            total=Money(amount_minor=total, currency=CURRENCY),
            breakdown=breakdown,
            calculated_at=calculated_at,
            free_of_charge=free,
        ),
        calculated_at,
        "pricing-svc",
        completed,
    )
    truth.cost_minor[CURRENCY] = truth.cost_minor.get(CURRENCY, 0) + total
    billed_at = calculated_at + 2 * sec
    out.emit(
        SessionBilled(
            session_id=sid,
            user_id=user,
            receipt_id=ids.uuid(),
            charged=Money(amount_minor=total, currency=CURRENCY),
            funding=funding,
            balance_after=Money(amount_minor=rng.randrange(0, 20000), currency=CURRENCY)
            if funding == "wallet"
            else None,
            billed_at=billed_at,
        ),
        billed_at,
        "billing-svc",
        cost,
    )
    truth.billed += 1
    truth.revenue_minor[CURRENCY] = truth.revenue_minor.get(CURRENCY, 0) + total
    truth.per_station_revenue_minor[station] += total
    return leave(ended_at + 10 * sec)
