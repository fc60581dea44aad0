"""Station presence and connector status, keyed by station id on ``plugpay.stations``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from plugpay_events.envelope import Event
from plugpay_events.registry import register
from plugpay_events.topics import STATIONS
from plugpay_events.types import UtcDatetime

__all__ = [
    "ConnectorStatus",
    "ConnectorStatusChanged",
    "StationBooted",
    "StationConnected",
    "StationDisconnected",
    "StationWentOffline",
]

ConnectorStatus = Literal[
    "Available",
    "Preparing",
    "Charging",
    "SuspendedEV",
    "SuspendedEVSE",
    "Finishing",
    "Reserved",
    "Unavailable",
    "Faulted",
    "Occupied",
]


class _StationEvent(Event):
    topic = STATIONS
    aggregate_field = "station_id"
    station_id: str = Field(min_length=1, max_length=64)


@register
class StationConnected(_StationEvent):
    """A station opened its OCPP WebSocket to a gateway process."""

    type = "StationConnected"
    ocpp_version: Literal["1.6", "2.0.1", "2.1"]
    gateway_instance: str
    connected_at: UtcDatetime


@register
class StationDisconnected(_StationEvent):
    """The WebSocket closed (the station may come back)."""

    type = "StationDisconnected"
    gateway_instance: str
    disconnected_at: UtcDatetime


@register
class StationWentOffline(_StationEvent):
    """No heartbeat within the allowed interval: codes are no longer issued for it."""

    type = "StationWentOffline"
    last_seen_at: UtcDatetime


@register
class StationBooted(_StationEvent):
    """BootNotification: what the station says it is."""

    type = "StationBooted"
    vendor: str
    model: str
    firmware_version: str | None = None
    booted_at: UtcDatetime


@register
class ConnectorStatusChanged(_StationEvent):
    """A connector's status as reported by StatusNotification."""

    type = "ConnectorStatusChanged"
    connector_id: int = Field(ge=0)
    status: ConnectorStatus
    error_code: str | None = None
    changed_at: UtcDatetime
