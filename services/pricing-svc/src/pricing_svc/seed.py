"""Demo data for pricing-svc: three stations' tariffs and commercials (idempotent).

``await seed_demo(session, organisation_id)`` inside a write transaction, or
``await seed_demo_database(database, organisation_id)``; set ``PRICING_SVC_DEMO_ORGANISATION_ID``
to run it at start-up. It creates what is missing and never overwrites what an operator changed:

- ``DEMO-AC`` on ST-0001 (AC 22 kW, 2 connectors): 0.39 EUR/kWh + 1.00 EUR per session;
- ``DEMO-DC`` on ST-0002 (DC 150 kW): 0.59 EUR/kWh + idle fee 0.10 EUR/min once charging ended;
- ``DEMO-STAFF`` on ST-0003 (AC 11 kW): restricted to the organisation and its group ``staff``,
  free for ``staff``, 0.29 EUR/kWh for the organisation's other members.

All prices incl. 19 % VAT, Europe/Berlin. A station auth-svc has not registered yet is entered
with the connectors above; its StationRegistered later refreshes them, keeping the commercials.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from plugpay_events import utc_now
from plugpay_events.contracts.pricing import AccessPolicy
from plugpay_platform.database import Database
from sqlalchemy.ext.asyncio import AsyncSession

from pricing_svc import service
from pricing_svc.domain import Connector, Station
from pricing_svc.repository import PricingRepository

VAT = Decimal(19)
TIME_ZONE = "Europe/Berlin"


def excl_vat(incl: str) -> str:
    """A price incl. VAT as OCPI wants it: excl. VAT, six decimals."""
    value = Decimal(incl) / (1 + VAT / 100)
    return str(value.quantize(Decimal("0.000001"), rounding=ROUND_HALF_UP))


def _component(kind: str, incl: str, step: int = 1) -> dict[str, Any]:
    return {"type": kind, "price": excl_vat(incl), "vat": str(VAT), "step_size": step}


DEMO_TARIFFS: dict[str, dict[str, Any]] = {
    "DEMO-AC": {
        "currency": "EUR",
        "elements": [
            {"price_components": [_component("ENERGY", "0.39"), _component("FLAT", "1.00")]}
        ],
    },
    "DEMO-DC": {
        "currency": "EUR",
        "elements": [
            {
                "price_components": [
                    _component("ENERGY", "0.59"),
                    # 0.10 EUR per started minute of idling = 6.00 EUR/h, billed per minute.
                    _component("PARKING_TIME", "6.00", step=60),
                ]
            }
        ],
    },
    "DEMO-STAFF": {
        "currency": "EUR",
        "elements": [{"price_components": [_component("ENERGY", "0.29")]}],
    },
}


@dataclass(frozen=True)
class DemoStation:
    station_id: str
    name: str
    connectors: tuple[Connector, ...]
    tariff_key: str
    restricted_to_staff: bool = False


DEMO_STATIONS = (
    DemoStation(
        "ST-0001",
        "Demo AC 22 kW",
        (Connector(1, "AC_3_PHASE", 22_000), Connector(2, "AC_3_PHASE", 22_000)),
        "DEMO-AC",
    ),
    DemoStation(
        "ST-0002",
        "Demo DC 150 kW",
        (Connector(1, "DC", 150_000, "IEC_62196_T2_COMBO"),),
        "DEMO-DC",
    ),
    DemoStation(
        "ST-0003",
        "Demo staff AC 11 kW",
        (Connector(1, "AC_3_PHASE", 11_000),),
        "DEMO-STAFF",
        restricted_to_staff=True,
    ),
)


@dataclass
class SeedResult:
    """What this run created; ``skipped`` names things another organisation already owns."""

    tariffs_created: list[str] = field(default_factory=list)
    stations_registered: list[str] = field(default_factory=list)
    commercials_set: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


async def seed_demo(
    session: AsyncSession, organisation_id: uuid.UUID, *, now: datetime | None = None
) -> SeedResult:
    """Create the demo tariffs and commercials for ``organisation_id`` where missing, with
    their events (TariffPublished, StationCommercialsSet) in the caller's transaction."""
    now = now or utc_now()
    store = PricingRepository(session)
    result = SeedResult()
    for key, body in DEMO_TARIFFS.items():
        owner = await store.tariff_owner(key)
        if owner is None:
            await service.publish_tariff(store, organisation_id, key, dict(body), now)
            result.tariffs_created.append(key)
        elif owner != organisation_id:
            result.skipped.append(key)
    for demo in DEMO_STATIONS:
        station = await store.station(demo.station_id)
        if station is None:
            station = Station(demo.station_id, organisation_id, demo.name, demo.connectors)
            await store.save_registration(station, now)
            result.stations_registered.append(demo.station_id)
        if station.organisation_id != organisation_id or (
            await store.tariff_owner(demo.tariff_key) != organisation_id
        ):
            result.skipped.append(demo.station_id)
            continue
        if station.commercials is not None:
            continue
        policy = (
            AccessPolicy(
                kind="restricted",
                allowed_organisations=(organisation_id,),
                allowed_groups=("staff",),
                free_for_groups=("staff",),
            )
            if demo.restricted_to_staff
            else AccessPolicy()
        )
        change = service.CommercialsChange(
            time_zone=TIME_ZONE,
            tariff_key=demo.tariff_key,
            access_policy=policy,
            connector_tariffs={},
            connector_max_power_w={},
        )
        await service.set_commercials(store, organisation_id, demo.station_id, change, now)
        result.commercials_set.append(demo.station_id)
    return result


async def seed_demo_database(database: Database, organisation_id: uuid.UUID) -> SeedResult:
    """``seed_demo`` in its own unit of work."""
    async with database.write() as session:
        return await seed_demo(session, organisation_id)
