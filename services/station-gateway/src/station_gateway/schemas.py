"""Request and response models of the HTTP endpoints (never ORM rows, never events)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class CodeRequest(BaseModel):
    """The display's "pay with phone" button."""

    model_config = ConfigDict(extra="forbid")
    connector_id: int = Field(ge=1)


class IssuedCodeView(BaseModel):
    # Read from the service's IssuedCode: the same fields, ``qr`` named for the display.
    model_config = ConfigDict(from_attributes=True)

    session_id: uuid.UUID
    connector_id: int
    qr: str = Field(validation_alias="qr_url")
    code: str
    expires_at: datetime


class OperatorCommand(BaseModel):
    """An OCPP call an operator asks a station to answer (payload in snake_case fields)."""

    model_config = ConfigDict(extra="forbid")
    action: Literal[
        "TriggerMessage",
        "GetConfiguration",
        "ChangeConfiguration",
        "GetVariables",
        "SetVariables",
        "Reset",
        "ChangeAvailability",
        "UnlockConnector",
    ]
    payload: dict[str, Any] = Field(default_factory=dict)


class CommandView(BaseModel):
    command_id: int
    station_id: str
    kind: str
    done: bool
    executed_by: str | None
    result: dict[str, Any] | None


class CurrentSessionView(BaseModel):
    """The session in progress on a connector (or the code waiting for a driver)."""

    session_id: uuid.UUID
    state: str = Field(description="code_issued | authorized | starting | charging")
    session_started_at: datetime
    started_at: datetime | None = Field(description="when the station started charging")
    energy_wh: int | None
    cost_so_far_minor: int | None
    currency: str | None
    expires_at: datetime | None = Field(description="of the code, while one is waiting")


class ConnectorLiveView(BaseModel):
    connector_id: int
    status: str = Field(description="the OCPP status the station reported last, or Unknown")
    error_code: str | None
    status_since: datetime | None
    session: CurrentSessionView | None


class StationLiveView(BaseModel):
    """A station as the gateway sees it now."""

    station_id: str
    name: str
    organisation_id: uuid.UUID | None
    online: bool = Field(description="connected and heart-beating")
    connected: bool
    ocpp_version: str | None
    connected_at: datetime | None
    last_seen_at: datetime | None = Field(
        description="the last message from the station (heartbeats included)"
    )
    vendor: str | None
    model: str | None
    firmware_version: str | None
    booted_at: datetime | None
    station_status: str | None = Field(description="connector 0: the whole station")
    connectors: list[ConnectorLiveView]


class StationLiveList(BaseModel):
    items: list[StationLiveView]


class MeterSampleView(BaseModel):
    sampled_at: datetime
    energy_wh: int = Field(description="the station's energy register")
    power_w: int | None
    soc_percent: int | None


class SessionMeterView(BaseModel):
    """A session's meter readings as the station reported them (the evidence an operator
    answers a driver's complaint with), oldest first."""

    session_id: uuid.UUID
    station_id: str
    connector_id: int
    samples: list[MeterSampleView]
    truncated: bool = Field(description="more readings exist than were returned")
