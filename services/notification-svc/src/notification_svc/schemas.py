"""notification-svc's request and response bodies (never the ORM rows, never the events)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class Preferences(BaseModel):
    """What the driver receives by mail (security and money mails are always sent)."""

    receipts: bool
    email: str | None = None


class PreferencesUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    receipts: bool


class MailLogEntry(BaseModel):
    # Read from the delivery log's records (``MailRecord``): the same fields, ``to`` renamed.
    model_config = ConfigDict(from_attributes=True)

    kind: str
    to: str | None = Field(validation_alias="to_address")
    subject: str
    state: str
    attempts: int
    created_at: datetime
    sent_at: datetime | None
