"""Users, organisations and the station registry, owned by auth-svc, on ``plugpay.identity``."""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from plugpay_events.envelope import Event
from plugpay_events.registry import register
from plugpay_events.topics import IDENTITY
from plugpay_events.types import UtcDatetime

__all__ = [
    "ConnectorSpec",
    "EmailVerificationRequested",
    "OrganisationCreated",
    "Role",
    "StationCredentialSet",
    "StationRegistered",
    "UserRegistered",
    "UserVerified",
]

Role = Literal["driver", "operator", "admin", "analyst"]


@register
class UserRegistered(Event):
    """A new account; drivers start unverified and cannot pay until verified."""

    type = "UserRegistered"
    topic = IDENTITY
    aggregate_field = "user_id"
    user_id: uuid.UUID
    roles: tuple[Role, ...]
    organisation_id: uuid.UUID | None = None
    groups: tuple[str, ...] = ()
    registered_at: UtcDatetime


@register
class EmailVerificationRequested(Event):
    """A verification link was (notionally) mailed; the link itself is never in the event."""

    type = "EmailVerificationRequested"
    topic = IDENTITY
    aggregate_field = "user_id"
    user_id: uuid.UUID
    expires_at: UtcDatetime


@register
class UserVerified(Event):
    """The email address was confirmed."""

    type = "UserVerified"
    topic = IDENTITY
    aggregate_field = "user_id"
    user_id: uuid.UUID
    verified_at: UtcDatetime


@register
class OrganisationCreated(Event):
    """A charge-point operator organisation."""

    type = "OrganisationCreated"
    topic = IDENTITY
    aggregate_field = "organisation_id"
    organisation_id: uuid.UUID
    name: str
    created_at: UtcDatetime


class ConnectorSpec(BaseModel):
    """One connector of a station as registered."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # 32-bit like every column that keeps them (OCPP's connector ids are 32-bit too).
    connector_id: int = Field(ge=1, le=2_147_483_647)
    standard: str = "IEC_62196_T2"
    power_type: Literal["AC_1_PHASE", "AC_3_PHASE", "DC"] = "AC_3_PHASE"
    max_power_w: int = Field(gt=0, le=2_147_483_647)


@register
class StationRegistered(Event):
    """An operator registered a station in its organisation."""

    type = "StationRegistered"
    topic = IDENTITY
    aggregate_field = "station_id"
    station_id: str = Field(min_length=1, max_length=64)
    organisation_id: uuid.UUID
    name: str
    connectors: tuple[ConnectorSpec, ...] = Field(min_length=1)
    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=180)
    address: str | None = None
    registered_at: UtcDatetime


@register
class StationCredentialSet(Event):
    """A new OCPP Basic-auth password for a station; only its argon2id hash travels."""

    type = "StationCredentialSet"
    topic = IDENTITY
    aggregate_field = "station_id"
    station_id: str = Field(min_length=1, max_length=64)
    password_hash: str = Field(pattern=r"^\$argon2id\$")
    security_profile: Literal[1, 2]
    set_at: UtcDatetime
