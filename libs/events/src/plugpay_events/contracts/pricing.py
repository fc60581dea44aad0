"""Tariffs and stations' commercial data, owned by pricing-svc, on ``plugpay.pricing``."""

from __future__ import annotations

import uuid
from typing import Literal

from plugpay_tariffs.model import Tariff
from pydantic import BaseModel, ConfigDict, Field

from plugpay_events.envelope import Event
from plugpay_events.registry import register
from plugpay_events.topics import PRICING
from plugpay_events.types import UtcDatetime

__all__ = ["AccessPolicy", "AccessWindow", "StationCommercialsSet", "TariffPublished"]


@register
class TariffPublished(Event):
    """A new version of a tariff; sessions authorised from now on use it."""

    type = "TariffPublished"
    topic = PRICING
    aggregate_field = "tariff_key"
    tariff_key: str
    organisation_id: uuid.UUID
    tariff: Tariff
    published_at: UtcDatetime


class AccessWindow(BaseModel):
    """Days of week (1=Monday) and local times when a rule applies."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    days_of_week: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7)
    start_time: str = Field(default="00:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    end_time: str = Field(default="24:00", pattern=r"^(([01]\d|2[0-3]):[0-5]\d|24:00)$")


class AccessPolicy(BaseModel):
    """Who may use a station and when (patent: free but restricted to certain users)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["public", "restricted"] = "public"
    allowed_organisations: tuple[uuid.UUID, ...] = ()
    allowed_groups: tuple[str, ...] = ()
    windows: tuple[AccessWindow, ...] = ()
    free_for_groups: tuple[str, ...] = ()


@register
class StationCommercialsSet(Event):
    """A station's commercial data: owner, tariff per connector, access policy, time zone."""

    type = "StationCommercialsSet"
    topic = PRICING
    aggregate_field = "station_id"
    station_id: str
    organisation_id: uuid.UUID
    time_zone: str
    tariff_key: str
    connector_tariffs: dict[int, str] = Field(default_factory=dict)
    access_policy: AccessPolicy
    power_class: Literal["AC", "DC"]
    status: Literal["active", "inactive"] = "active"
    updated_at: UtcDatetime
    connector_max_power_w: dict[int, int] = Field(
        default_factory=dict, description="max power per connector (W) as the operator set it"
    )
