"""Request and response bodies of session-svc's API (never ORM rows, never events)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ScanRequest(BaseModel):
    """What the phone read: the QR content (URL or token) or the code typed by hand."""

    model_config = ConfigDict(extra="forbid")
    code: str = Field(min_length=1, max_length=4096)


class ScanAccepted(BaseModel):
    session_id: uuid.UUID


class CodeLookup(BaseModel):
    """A code typed by hand or a scanned QR's content, to preview before scanning it."""

    model_config = ConfigDict(extra="forbid")
    code: str = Field(min_length=1, max_length=512)


class CodePreview(BaseModel):
    """What a typed or scanned code names, before the driver confirms (nothing is claimed)."""

    code: str | None = Field(default=None, description="the typed code (none for a QR code)")
    station_id: str
    station_name: str | None = None
    connector_id: int
    expires_at: datetime


class StopAccepted(BaseModel):
    session_id: uuid.UUID
    status: str = "stop_requested"


class MoneyView(BaseModel):
    amount_minor: int
    currency: str


class CostView(BaseModel):
    """Cost so far while charging (an estimate from the tariff snapshot) or the final cost."""

    final: bool
    total: MoneyView
    total_excl_vat: int | None = None
    total_vat: int | None = None
    breakdown: dict[str, Any] | None = None


class LimitsView(BaseModel):
    max_energy_wh: int | None = None
    max_duration_s: int | None = None
    max_cost: MoneyView | None = None


class DenialView(BaseModel):
    reason: str
    message: str | None = None
    denied_by: str | None = None
    denied_at: datetime | None = None


class ReceiptView(BaseModel):
    receipt_id: uuid.UUID
    charged: MoneyView
    funding: str | None = None
    balance_after: MoneyView | None = None
    outstanding_debt: MoneyView | None = None
    billed_at: datetime | None = None


class SessionView(BaseModel):
    """A charging session as the app and the support desk see it."""

    session_id: uuid.UUID
    status: str
    outcome: str | None = None
    station_id: str | None = None
    station_name: str | None = None
    connector_id: int | None = None
    user_id: uuid.UUID | None = None
    code_kind: str | None = None
    session_started_at: datetime | None = None
    scanned_at: datetime | None = None
    authorized_at: datetime | None = None
    started_at: datetime | None = None
    charging_ended_at: datetime | None = None
    ended_at: datetime | None = None
    energy_wh: int | None = None
    power_w: int | None = None
    soc_percent: int | None = None
    meter_sampled_at: datetime | None = None
    cost: CostView | None = None
    funding: str | None = None
    hold_amount: MoneyView | None = None
    limits: LimitsView | None = None
    stop_requested_by: str | None = None
    stop_reason: str | None = None
    denial: DenialView | None = None
    abandoned_reason: str | None = None
    failure_reason: str | None = None
    hold_released: MoneyView | None = None
    receipt: ReceiptView | None = None
    version: int
    updated_at: datetime | None = None


class SessionList(BaseModel):
    items: list[SessionView]
    next_cursor: str | None = None


class TimelineStep(BaseModel):
    at: datetime
    kind: str
    text: str


class SessionTimeline(BaseModel):
    session_id: uuid.UUID
    steps: list[TimelineStep]
