"""Builders of charging-session events for session-svc's tests (module name unique)."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

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
    SessionFailed,
    SessionHoldReleased,
    SessionLimits,
    SessionPriced,
    SessionStopRequested,
)
from plugpay_events.envelope import Envelope, Event
from plugpay_events.session_code import new_typed_code, sign_session_code
from plugpay_events.types import Money
from plugpay_tariffs import SessionUsage, Tariff, calculate_cost

EUR = "EUR"
TARIFF = Tariff.model_validate(
    {
        "id": "t-standard",
        "version": 1,
        "currency": EUR,
        "elements": [
            {
                "price_components": [
                    {"type": "ENERGY", "price": "0.30", "vat": "19", "step_size": 1},
                    {"type": "FLAT", "price": "0.50", "vat": "19", "step_size": 1},
                ]
            }
        ],
    }
)


def eur(amount_minor: int) -> Money:
    return Money(amount_minor=amount_minor, currency=EUR)


@dataclass
class Story:
    """One charging session's events, built step by step in the order the services emit them."""

    station_id: str = "ST-1"
    connector_id: int = 1
    session_id: uuid.UUID = field(default_factory=uuid.uuid4)
    user_id: uuid.UUID = field(default_factory=uuid.uuid4)
    organisation_id: uuid.UUID = field(default_factory=uuid.uuid4)
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    code: str = field(default_factory=new_typed_code)
    token: str = ""
    token_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    lifetime: timedelta = timedelta(minutes=5)
    events: list[Event] = field(default_factory=list)

    def at(self, seconds: float) -> datetime:
        return self.started + timedelta(seconds=seconds)

    def issued(self, signing_key: dict[str, Any] | None = None) -> SessionCodeIssued:
        if signing_key is not None:
            self.token, claims = sign_session_code(
                signing_key,
                station_id=self.station_id,
                connector_id=self.connector_id,
                session_started_at=self.started,
                lifetime=self.lifetime,
            )
            self.session_id = claims.session_id  # the code names its session
            self.token_id = claims.token_id
            self.started = claims.session_started_at  # whole seconds, as the token says
        e = SessionCodeIssued(
            session_id=self.session_id,
            station_id=self.station_id,
            connector_id=self.connector_id,
            session_started_at=self.started,
            expires_at=self.started + self.lifetime,
            code=self.code,
            qr_url=f"https://pay.example/s/{self.token or 'x'}",
            token_id=self.token_id,
        )
        return self._add(e)

    def scanned(self, kind: str = "qr") -> SessionCodeScanned:
        return self._add(
            SessionCodeScanned(
                session_id=self.session_id,
                station_id=self.station_id,
                connector_id=self.connector_id,
                session_started_at=self.started,
                scanned_at=self.at(10),
                user_id=self.user_id,
                code_kind=kind,  # type: ignore[arg-type]
            )
        )

    def priced(self) -> SessionPriced:
        return self._add(
            SessionPriced(
                session_id=self.session_id,
                station_id=self.station_id,
                connector_id=self.connector_id,
                user_id=self.user_id,
                station_organisation_id=self.organisation_id,
                tariff=TARIFF,
                time_zone="Europe/Berlin",
                max_power_w=22_000,
                priced_at=self.at(11),
            )
        )

    def denied(self, reason: str = "insufficient_funds") -> SessionDenied:
        return self._add(
            SessionDenied(
                session_id=self.session_id,
                station_id=self.station_id,
                connector_id=self.connector_id,
                user_id=self.user_id,
                reason=reason,  # type: ignore[arg-type]
                message="not enough money",
                denied_by="billing-svc",
                denied_at=self.at(12),
            )
        )

    def authorised(self, deadline_s: float = 120) -> SessionAuthorized:
        return self._add(
            SessionAuthorized(
                session_id=self.session_id,
                station_id=self.station_id,
                connector_id=self.connector_id,
                user_id=self.user_id,
                funding="wallet",
                hold_id=uuid.uuid4(),
                hold_amount=eur(2000),
                limits=SessionLimits(max_energy_wh=50_000, max_cost=eur(2000)),
                authorized_at=self.at(12),
                start_deadline=self.at(12 + deadline_s),
            )
        )

    def started_charging(self) -> ChargingStarted:
        return self._add(
            ChargingStarted(
                session_id=self.session_id,
                station_id=self.station_id,
                connector_id=self.connector_id,
                transaction_id=f"tx-{self.session_id.hex[:8]}",
                meter_start_wh=100_000,
                started_at=self.at(20),
            )
        )

    def meter(self, seconds: float, energy_wh: int) -> MeterValuesReported:
        return self._add(
            MeterValuesReported(
                session_id=self.session_id,
                station_id=self.station_id,
                connector_id=self.connector_id,
                transaction_id=f"tx-{self.session_id.hex[:8]}",
                samples=(
                    MeterSample(
                        sampled_at=self.at(seconds), energy_wh=100_000 + energy_wh, power_w=11_000
                    ),
                ),
                soc_percent=50,
            )
        )

    def stop_requested(self, by: str = "driver") -> SessionStopRequested:
        return self._add(
            SessionStopRequested(
                session_id=self.session_id,
                requested_by=by,  # type: ignore[arg-type]
                user_id=self.user_id,
                requested_at=self.at(1500),
            )
        )

    def completed(self, energy_wh: int = 5000, reason: str = "ev_disconnected") -> SessionCompleted:
        return self._add(
            SessionCompleted(
                session_id=self.session_id,
                station_id=self.station_id,
                connector_id=self.connector_id,
                transaction_id=f"tx-{self.session_id.hex[:8]}",
                meter_start_wh=100_000,
                meter_stop_wh=100_000 + energy_wh,
                energy_wh=energy_wh,
                started_at=self.at(20),
                charging_ended_at=self.at(1800),
                ended_at=self.at(1900),
                stop_reason=reason,  # type: ignore[arg-type]
            )
        )

    def cost_calculated(self, energy_wh: int = 5000) -> SessionCostCalculated:
        breakdown = calculate_cost(
            TARIFF, SessionUsage.linear(self.at(20), energy_wh, self.at(1800), self.at(1900)), "UTC"
        )
        return self._add(
            SessionCostCalculated(
                session_id=self.session_id,
                user_id=self.user_id,
                station_id=self.station_id,
                total=eur(breakdown.total_incl_vat),
                breakdown=breakdown,
                calculated_at=self.at(1901),
            )
        )

    def billed(self) -> SessionBilled:
        cost = next(e for e in self.events if isinstance(e, SessionCostCalculated)).total
        return self._add(
            SessionBilled(
                session_id=self.session_id,
                user_id=self.user_id,
                receipt_id=uuid.uuid4(),
                charged=cost,
                funding="wallet",
                balance_after=eur(10_000),
                billed_at=self.at(1902),
            )
        )

    def expired(self) -> SessionCodeExpired:
        return self._add(
            SessionCodeExpired(
                session_id=self.session_id,
                station_id=self.station_id,
                connector_id=self.connector_id,
                expired_at=self.at(301),
            )
        )

    def abandoned(self, reason: str = "start_timeout") -> SessionAbandoned:
        return self._add(
            SessionAbandoned(
                session_id=self.session_id,
                station_id=self.station_id,
                connector_id=self.connector_id,
                reason=reason,  # type: ignore[arg-type]
                abandoned_at=self.at(200),
            )
        )

    def failed(self) -> SessionFailed:
        return self._add(
            SessionFailed(
                session_id=self.session_id, reason="station_faulted", failed_at=self.at(400)
            )
        )

    def hold_released(self) -> SessionHoldReleased:
        return self._add(
            SessionHoldReleased(
                session_id=self.session_id,
                user_id=self.user_id,
                hold_id=uuid.uuid4(),
                released=eur(2000),
                released_at=self.at(401),
            )
        )

    def _add(self, event: Any) -> Any:
        self.events.append(event)
        return event

    # whole paths

    def billed_path(self, stop_by_driver: bool = False) -> list[Event]:
        self.issued()
        self.scanned()
        self.priced()
        self.authorised()
        self.started_charging()
        self.meter(600, 2000)
        if stop_by_driver:
            self.stop_requested()
        self.completed(reason="remote" if stop_by_driver else "ev_disconnected")
        self.cost_calculated()
        self.billed()
        return self.events

    def denied_path(self) -> list[Event]:
        self.issued()
        self.scanned()
        self.priced()
        self.denied()
        return self.events

    def abandoned_path(self) -> list[Event]:
        self.issued()
        self.scanned()
        self.priced()
        self.authorised()
        self.abandoned()
        self.hold_released()
        return self.events

    def expired_path(self) -> list[Event]:
        self.issued()
        self.expired()
        return self.events


def wrap(events: list[Event], producer: str = "test") -> list[Envelope]:
    return [Envelope.wrap(e, producer=producer) for e in events]


def mixed_sessions(rng: random.Random, count: int = 300) -> list[list[Event]]:
    """``count`` sessions over every path, on a handful of stations of two organisations."""
    orgs = [uuid.uuid4(), uuid.uuid4()]
    now = datetime.now(UTC)
    stories: list[list[Event]] = []
    for i in range(count):
        story = Story(
            station_id=f"ST-{i % 7}",
            connector_id=1 + i % 2,
            organisation_id=orgs[i % 7 % 2],
            started=now - timedelta(seconds=rng.randint(0, 30)),
        )
        path = i % 10
        if path < 4:
            events = story.billed_path()
        elif path < 5:
            events = story.billed_path(stop_by_driver=True)
        elif path < 6:
            events = story.denied_path()
        elif path < 7:
            events = story.abandoned_path()
        elif path < 8:
            events = story.expired_path()
        elif path < 9:
            story.issued(), story.scanned(), story.priced(), story.authorised()
            story.started_charging(), story.meter(300, 1000), story.meter(600, 2500)
            events = story.events  # still charging
        elif i % 20 == 9:
            story.issued(), story.scanned()
            events = story.events  # waiting for pricing
        else:
            events = [story.issued()]  # shown on the station, not scanned yet
        stories.append(events)
    return stories
