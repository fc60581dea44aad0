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
    session_id: uuid.UUID
    connector_id: int
    qr: str
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
