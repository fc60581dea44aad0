"""The only module with SQL: stations, tariff versions, session pricings, and the outbox."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from plugpay_events import Envelope
from plugpay_events.contracts.pricing import AccessPolicy
from plugpay_events.outbox import Outbox
from plugpay_platform.rows import column_values
from plugpay_tariffs import CostBreakdown, Tariff
from sqlalchemy import RowMapping, Select, bindparam, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from pricing_svc.domain import (
    Commercials,
    Connector,
    DirectoryRow,
    Presence,
    SessionPricing,
    Station,
    TariffVersion,
)
from pricing_svc.tables import (
    connector_status,
    outbox_tables,
    session_pricings,
    station_directory,
    stations,
    tariff_versions,
    tariffs,
)

# What every quote, status change and cost runs, built once: building a statement and its cache
# key costs more CPU than running it (docs/performance.md).
_STATION = select(stations).where(stations.c.station_id == bindparam("station_id"))
_STATION_LOCKED = _STATION.with_for_update()
_SESSION_PRICING = select(session_pricings).where(
    session_pricings.c.session_id == bindparam("session_id")
)
_SESSION_PRICING_LOCKED = _SESSION_PRICING.with_for_update()
_ADD_SESSION_PRICING = (
    pg_insert(session_pricings).on_conflict_do_nothing().returning(session_pricings.c.session_id)
)
_SAVE_COST = (
    update(session_pricings)
    # An UPDATE's parameters named like a column set that column: the key needs another name.
    .where(session_pricings.c.session_id == bindparam("where_session_id"))
    .values(
        cost_total_minor=bindparam("cost_total_minor"),
        cost_currency=bindparam("cost_currency"),
        cost_breakdown=bindparam("cost_breakdown", type_=session_pricings.c.cost_breakdown.type),
        costed_at=bindparam("costed_at"),
    )
)
_upsert_status = pg_insert(connector_status)
_SAVE_CONNECTOR_STATUS = _upsert_status.on_conflict_do_update(
    index_elements=[connector_status.c.station_id, connector_status.c.connector_id],
    set_={
        "status": _upsert_status.excluded.status,
        "error_code": _upsert_status.excluded.error_code,
        "changed_at": _upsert_status.excluded.changed_at,
    },
)


class PricingRepository:
    """Queries and writes inside the caller's transaction; never commits."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self._outbox = Outbox(outbox_tables)

    # --- stations ----------------------------------------------------------------------------

    async def station(self, station_id: str, *, for_update: bool = False) -> Station | None:
        query = _STATION_LOCKED if for_update else _STATION
        row = (await self.session.execute(query, {"station_id": station_id})).mappings().first()
        return _station(row) if row else None

    async def stations_of(self, organisation_id: uuid.UUID) -> list[Station]:
        rows = (
            await self.session.execute(
                select(stations)
                .where(stations.c.organisation_id == organisation_id)
                .order_by(stations.c.station_id)
            )
        ).mappings()
        return [_station(r) for r in rows]

    async def save_registration(self, station: Station, registered_at: datetime) -> None:
        """Insert or refresh what auth-svc registered; commercials are left as they are."""
        values = {
            "organisation_id": station.organisation_id,
            "name": station.name,
            "connectors": [
                {
                    "connector_id": c.connector_id,
                    "power_type": c.power_type,
                    "max_power_w": c.max_power_w,
                    "standard": c.standard,
                }
                for c in station.connectors
            ],
            "registered_at": registered_at,
        }
        await self.session.execute(
            pg_insert(stations)
            .values(station_id=station.station_id, **values)
            .on_conflict_do_update(index_elements=[stations.c.station_id], set_=values)
        )

    async def save_commercials(self, station_id: str, commercials: Commercials) -> None:
        await self.session.execute(
            update(stations)
            .where(stations.c.station_id == station_id)
            .values(
                time_zone=commercials.time_zone,
                tariff_key=commercials.tariff_key,
                connector_tariffs={str(k): v for k, v in commercials.connector_tariffs.items()},
                connector_max_power_w={
                    str(k): v for k, v in commercials.connector_max_power_w.items()
                },
                access_policy=commercials.access_policy.model_dump(mode="json"),
                status=commercials.status,
                commercials_updated_at=commercials.updated_at,
            )
        )

    # --- the station directory (find a charger) ----------------------------------------------

    async def save_location(
        self,
        station_id: str,
        latitude: float | None,
        longitude: float | None,
        address: str | None,
        at: datetime,
    ) -> None:
        values = {
            "latitude": latitude,
            "longitude": longitude,
            "address": address,
            "located_at": at,
        }
        await self.session.execute(
            pg_insert(station_directory)
            .values(station_id=station_id, connected=False, online=False, **values)
            .on_conflict_do_update(index_elements=[station_directory.c.station_id], set_=values)
        )

    async def save_presence(
        self,
        station_id: str,
        at: datetime,
        *,
        connected: bool | None = None,
        online: bool | None = None,
        ocpp_version: str | None = None,
    ) -> None:
        """Apply a presence change unless a newer one was applied already."""
        values: dict[str, Any] = {"presence_at": at}
        if connected is not None:
            values["connected"] = connected
        if online is not None:
            values["online"] = online
        if ocpp_version is not None:
            values["ocpp_version"] = ocpp_version
        insert = pg_insert(station_directory).values(
            station_id=station_id,
            **{"connected": False, "online": False, **values},
        )
        await self.session.execute(
            insert.on_conflict_do_update(
                index_elements=[station_directory.c.station_id],
                set_=values,
                where=station_directory.c.presence_at.is_(None)
                | (station_directory.c.presence_at <= insert.excluded.presence_at),
            )
        )

    async def save_connector_status(
        self, station_id: str, connector_id: int, status: str, error_code: str | None, at: datetime
    ) -> None:
        await self.session.execute(
            _SAVE_CONNECTOR_STATUS,
            {
                "station_id": station_id,
                "connector_id": connector_id,
                "status": status,
                "error_code": error_code,
                "changed_at": at,
            },
        )

    async def directory(
        self, box: tuple[float, float, float, float] | None = None
    ) -> list[DirectoryRow]:
        """Stations in service with their location, presence and connector statuses;
        ``box`` (min_lat, max_lat, min_lon, max_lon) keeps only the located ones inside it."""
        query = (
            select(
                stations,
                station_directory.c.latitude,
                station_directory.c.longitude,
                station_directory.c.address,
                station_directory.c.connected,
                station_directory.c.online,
                station_directory.c.presence_at,
            )
            .outerjoin(station_directory, station_directory.c.station_id == stations.c.station_id)
            .where(stations.c.tariff_key.is_not(None), stations.c.status == "active")
            .order_by(stations.c.station_id)
        )
        if box is not None:
            min_lat, max_lat, min_lon, max_lon = box
            query = query.where(station_directory.c.latitude.between(min_lat, max_lat))
            if min_lon >= -180 and max_lon <= 180:  # no wrap round the antimeridian
                query = query.where(station_directory.c.longitude.between(min_lon, max_lon))
            else:
                query = query.where(station_directory.c.longitude.is_not(None))
        rows = list((await self.session.execute(query)).mappings())
        statuses: dict[str, dict[int, tuple[str, datetime]]] = {}
        if rows:
            found = await self.session.execute(
                select(connector_status).where(
                    connector_status.c.station_id.in_([r["station_id"] for r in rows])
                )
            )
            for c in found.mappings():
                statuses.setdefault(c["station_id"], {})[c["connector_id"]] = (
                    c["status"],
                    c["changed_at"],
                )
        return [
            DirectoryRow(
                station=_station(r),
                latitude=r["latitude"],
                longitude=r["longitude"],
                address=r["address"],
                presence=None
                if r["presence_at"] is None
                else Presence(connected=r["connected"], online=r["online"]),
                presence_at=r["presence_at"],
                statuses=statuses.get(r["station_id"], {}),
            )
            for r in rows
        ]

    # --- tariffs -----------------------------------------------------------------------------

    async def tariff_owner(self, key: str, *, for_update: bool = False) -> uuid.UUID | None:
        query = select(tariffs.c.organisation_id).where(tariffs.c.tariff_key == key)
        row = await self._first(query, for_update=for_update)
        return row["organisation_id"] if row else None

    async def tariff_versions(self, key: str) -> list[TariffVersion]:
        rows = (
            await self.session.execute(
                select(tariff_versions, tariffs.c.organisation_id)
                .join(tariffs, tariffs.c.tariff_key == tariff_versions.c.tariff_key)
                .where(tariff_versions.c.tariff_key == key)
                .order_by(tariff_versions.c.version)
            )
        ).mappings()
        return [_version(r) for r in rows]

    async def latest_tariffs_of(self, organisation_id: uuid.UUID) -> list[TariffVersion]:
        rows = (
            await self.session.execute(
                select(tariff_versions, tariffs.c.organisation_id)
                .join(
                    tariffs,
                    (tariffs.c.tariff_key == tariff_versions.c.tariff_key)
                    & (tariffs.c.latest_version == tariff_versions.c.version),
                )
                .where(tariffs.c.organisation_id == organisation_id)
                .order_by(tariffs.c.tariff_key)
            )
        ).mappings()
        return [_version(r) for r in rows]

    async def create_tariff(self, key: str, organisation_id: uuid.UUID, at: datetime) -> bool:
        """Claim a new key for an organisation; False if someone else has just taken it."""
        result = await self.session.execute(
            pg_insert(tariffs)
            .values(
                tariff_key=key, organisation_id=organisation_id, latest_version=0, created_at=at
            )
            .on_conflict_do_nothing()
            .returning(tariffs.c.tariff_key)
        )
        return result.first() is not None

    async def add_tariff_version(self, version: TariffVersion) -> None:
        """Store a new version; the caller holds the tariff's row lock (or just created it)."""
        await self.session.execute(
            update(tariffs)
            .where(tariffs.c.tariff_key == version.key)
            .values(latest_version=version.version)
        )
        await self.session.execute(
            tariff_versions.insert().values(
                tariff_key=version.key,
                version=version.version,
                tariff=version.tariff.model_dump(mode="json"),
                published_at=version.published_at,
            )
        )

    # --- sessions ----------------------------------------------------------------------------

    async def session_pricing(
        self, session_id: uuid.UUID, *, for_update: bool = False
    ) -> SessionPricing | None:
        query = _SESSION_PRICING_LOCKED if for_update else _SESSION_PRICING
        row = (await self.session.execute(query, {"session_id": session_id})).mappings().first()
        return _pricing(row) if row else None

    async def add_session_pricing(self, record: SessionPricing) -> bool:
        """Insert the decision; False when this session was decided before."""
        result = await self.session.execute(
            _ADD_SESSION_PRICING,
            {
                **column_values(record, session_pricings),
                "tariff": record.tariff.model_dump(mode="json") if record.tariff else None,
            },
        )
        return result.first() is not None

    async def save_cost(
        self, session_id: uuid.UUID, cost: CostBreakdown, costed_at: datetime
    ) -> None:
        await self.session.execute(
            _SAVE_COST,
            {
                "where_session_id": session_id,
                "cost_total_minor": cost.total_incl_vat,
                "cost_currency": cost.currency,
                "cost_breakdown": cost.model_dump(mode="json"),
                "costed_at": costed_at,
            },
        )

    async def _first(self, query: Select[Any], *, for_update: bool) -> RowMapping | None:
        """The first row ``query`` finds, locked until the transaction ends if ``for_update``."""
        if for_update:
            query = query.with_for_update()
        row: RowMapping | None = (await self.session.execute(query)).mappings().first()
        return row

    # --- events ------------------------------------------------------------------------------

    async def emit(self, envelopes: Sequence[Envelope]) -> None:
        """Queue events in this transaction (published only if it commits)."""
        await self._outbox.add(self.session, envelopes)


def _station(row: Any) -> Station:
    commercials = None
    if row["tariff_key"] is not None:
        commercials = Commercials(
            time_zone=row["time_zone"],
            tariff_key=row["tariff_key"],
            access_policy=AccessPolicy.model_validate(row["access_policy"]),
            connector_tariffs={int(k): v for k, v in (row["connector_tariffs"] or {}).items()},
            connector_max_power_w={
                int(k): int(v) for k, v in (row["connector_max_power_w"] or {}).items()
            },
            status=row["status"],
            updated_at=row["commercials_updated_at"],
        )
    return Station(
        station_id=row["station_id"],
        organisation_id=row["organisation_id"],
        name=row["name"],
        connectors=tuple(
            Connector(
                connector_id=c["connector_id"],
                power_type=c["power_type"],
                max_power_w=c["max_power_w"],
                standard=c.get("standard", "IEC_62196_T2"),
            )
            for c in row["connectors"]
        ),
        commercials=commercials,
    )


def _version(row: Any) -> TariffVersion:
    return TariffVersion(
        key=row["tariff_key"],
        version=row["version"],
        organisation_id=row["organisation_id"],
        tariff=Tariff.model_validate(row["tariff"]),
        published_at=row["published_at"],
    )


def _pricing(row: Any) -> SessionPricing:
    return SessionPricing(
        session_id=row["session_id"],
        station_id=row["station_id"],
        connector_id=row["connector_id"],
        user_id=row["user_id"],
        outcome=row["outcome"],
        decided_at=row["decided_at"],
        denial_reason=row["denial_reason"],
        station_organisation_id=row["station_organisation_id"],
        tariff=Tariff.model_validate(row["tariff"]) if row["tariff"] else None,
        time_zone=row["time_zone"],
        max_power_w=row["max_power_w"],
        free_of_charge=row["free_of_charge"],
        cost=CostBreakdown.model_validate(row["cost_breakdown"]) if row["cost_breakdown"] else None,
        costed_at=row["costed_at"],
    )
