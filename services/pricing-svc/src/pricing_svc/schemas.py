"""Request and response models of the pricing API (never the ORM rows, never the events)."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from plugpay_tariffs import TariffSummary
from pydantic import BaseModel, ConfigDict, Field, StrictInt

_IN = ConfigDict(extra="forbid")


class AccessWindowIn(BaseModel):
    """Days (1=Monday..7) and local times; ``22:00``-``06:00`` runs past midnight."""

    model_config = _IN
    days_of_week: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7)
    start_time: str = Field(default="00:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    end_time: str = Field(default="24:00", pattern=r"^(([01]\d|2[0-3]):[0-5]\d|24:00)$")


class AccessPolicyIn(BaseModel):
    """Public, or restricted to organisations / the owner's user groups; optional time windows
    (local to the station); groups that charge for free."""

    model_config = _IN
    kind: Literal["public", "restricted"] = "public"
    allowed_organisations: tuple[uuid.UUID, ...] = ()
    allowed_groups: tuple[str, ...] = ()
    windows: tuple[AccessWindowIn, ...] = ()
    free_for_groups: tuple[str, ...] = ()


class ConnectorCommercialsIn(BaseModel):
    """Per-connector overrides: its own tariff, a power limit below its rating."""

    model_config = _IN
    connector_id: StrictInt = Field(ge=1, le=2_147_483_647)
    tariff_key: str | None = None
    max_power_w: StrictInt | None = Field(default=None, gt=0, le=2_147_483_647)


class StationCommercialsIn(BaseModel):
    """``PUT /pricing/stations/{station_id}``."""

    model_config = _IN
    time_zone: str = Field(examples=["Europe/Berlin"])
    tariff_key: str = Field(description="the station's default tariff")
    access_policy: AccessPolicyIn = AccessPolicyIn()
    connectors: list[ConnectorCommercialsIn] = []
    status: Literal["active", "inactive"] = "active"


class ConnectorOut(BaseModel):
    connector_id: int
    power_type: str
    standard: str
    rated_power_w: int
    max_power_w: int
    tariff_key: str | None


class CommercialsOut(BaseModel):
    time_zone: str
    tariff_key: str
    access_policy: dict[str, Any]
    status: str
    updated_at: datetime | None


class StationOut(BaseModel):
    station_id: str
    organisation_id: uuid.UUID
    name: str
    power_class: Literal["AC", "DC"]
    connectors: list[ConnectorOut]
    commercials: CommercialsOut | None


class StationListOut(BaseModel):
    items: list[StationOut]


class TariffOut(BaseModel):
    key: str
    version: int
    organisation_id: uuid.UUID
    published_at: datetime
    effective_from: datetime
    tariff: dict[str, Any] = Field(description="the OCPI-style tariff as stored (plugpay_tariffs)")
    summary: str = Field(
        description="the prices as drivers read them (a quote's text) for a session starting now;"
        " time-restricted elements judged on the UTC clock"
    )


class TariffListOut(BaseModel):
    items: list[TariffOut]


class MoneyOut(BaseModel):
    amount_minor: int
    currency: str


class ExampleSessionOut(BaseModel):
    """What a typical session would cost now, for comparison."""

    energy_wh: int
    duration_s: int
    total: MoneyOut


class LimitsOut(BaseModel):
    """What the given budget buys at most (no idle time), computed conservatively."""

    budget: MoneyOut
    affordable: bool
    max_energy_wh: int
    max_duration_s: int
    note: str


class TariffRatesOut(BaseModel):
    """A tariff's rates in force now, incl. VAT, as plugpay_tariffs.describe summarises them."""

    per_kwh: Decimal | None
    per_hour: Decimal | None
    per_minute: Decimal | None
    per_session: Decimal | None
    idle_per_hour: Decimal | None
    idle_per_minute: Decimal | None
    vat_percent: Decimal | None

    @staticmethod
    def rates_of(summary: TariffSummary) -> dict[str, Any]:
        """The rates of ``summary``, as keyword arguments of a model built on this one."""
        return summary.model_dump(include=set(TariffRatesOut.model_fields))


class QuoteOut(TariffRatesOut):
    """The tariff in plain terms, incl. VAT, as the app and the station screen show it."""

    model_config = ConfigDict(json_schema_extra={"description": "prices are decimal strings"})
    station_id: str
    connector_id: int
    station_name: str
    power_type: str
    max_power_w: int
    access: Literal["public", "restricted"]
    in_service: bool
    tariff_key: str
    tariff_version: int
    currency: str
    time_zone: str
    valid_at: datetime
    min_price_excl_vat: MoneyOut | None
    max_price_excl_vat: MoneyOut | None
    text: str
    example: ExampleSessionOut
    limits: LimitsOut | None = None


# --- the public station directory ("find a charger") ---------------------------------------------


class PriceSummaryOut(TariffRatesOut):
    """The tariff in force now, in plain terms, incl. VAT (plugpay_tariffs.describe)."""

    tariff_key: str
    tariff_version: int
    currency: str
    text: str


class DirectoryConnectorOut(BaseModel):
    connector_id: int
    standard: str
    power_type: str
    max_power_w: int
    status: Literal["Available", "Occupied", "Charging", "Faulted", "Unavailable", "Offline"] = (
        Field(description="availability for drivers, from the station's live reports")
    )
    ocpp_status: str | None = Field(description="the connector status the station reported last")
    status_since: datetime | None
    price: PriceSummaryOut | None


class DirectoryStationOut(BaseModel):
    station_id: str
    name: str
    address: str | None
    latitude: float | None
    longitude: float | None
    distance_km: float | None = Field(description="from lat/lon, when given")
    access: Literal["public", "restricted"]
    online: bool
    available_connectors: int
    price_text: str | None = Field(description="the price, when every connector has the same")
    connectors: list[DirectoryConnectorOut]


class NearOut(BaseModel):
    latitude: float
    longitude: float
    radius_km: float | None


class DirectoryOut(BaseModel):
    items: list[DirectoryStationOut]
    near: NearOut | None
    generated_at: datetime
