"""An in-memory store with the repository's contract, for service tests."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from plugpay_events import Envelope
from plugpay_tariffs import CostBreakdown
from pricing_svc.domain import Commercials, SessionPricing, Station, TariffVersion


class FakeStore:
    def __init__(self) -> None:
        self.stations: dict[str, Station] = {}
        self.owners: dict[str, uuid.UUID] = {}
        self.versions: dict[str, list[TariffVersion]] = {}
        self.pricings: dict[uuid.UUID, SessionPricing] = {}
        self.emitted: list[Envelope] = []

    def events(self, type_: str) -> list[object]:
        return [e.event() for e in self.emitted if e.type == type_]

    async def station(self, station_id: str, *, for_update: bool = False) -> Station | None:
        return self.stations.get(station_id)

    async def stations_of(self, organisation_id: uuid.UUID) -> list[Station]:
        return [s for s in self.stations.values() if s.organisation_id == organisation_id]

    async def save_registration(self, station: Station, registered_at: datetime) -> None:
        old = self.stations.get(station.station_id)
        self.stations[station.station_id] = replace(
            station, commercials=old.commercials if old else None
        )

    async def save_commercials(self, station_id: str, commercials: Commercials) -> None:
        self.stations[station_id] = replace(self.stations[station_id], commercials=commercials)

    async def tariff_owner(self, key: str, *, for_update: bool = False) -> uuid.UUID | None:
        return self.owners.get(key)

    async def tariff_versions(self, key: str) -> list[TariffVersion]:
        return list(self.versions.get(key, []))

    async def latest_tariffs_of(self, organisation_id: uuid.UUID) -> list[TariffVersion]:
        return [v[-1] for k, v in self.versions.items() if self.owners[k] == organisation_id]

    async def create_tariff(self, key: str, organisation_id: uuid.UUID, at: datetime) -> bool:
        if key in self.owners:
            return False
        self.owners[key] = organisation_id
        return True

    async def add_tariff_version(self, version: TariffVersion) -> None:
        self.versions.setdefault(version.key, []).append(version)

    async def session_pricing(
        self, session_id: uuid.UUID, *, for_update: bool = False
    ) -> SessionPricing | None:
        return self.pricings.get(session_id)

    async def add_session_pricing(self, record: SessionPricing) -> bool:
        if record.session_id in self.pricings:
            return False
        self.pricings[record.session_id] = record
        return True

    async def save_cost(
        self, session_id: uuid.UUID, cost: CostBreakdown, costed_at: datetime
    ) -> None:
        self.pricings[session_id] = replace(
            self.pricings[session_id], cost=cost, costed_at=costed_at
        )

    async def emit(self, envelopes: Sequence[Envelope]) -> None:
        self.emitted.extend(envelopes)
