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
    "GroupInvitationRequested",
    "OrganisationCreated",
    "PasswordChanged",
    "PasswordResetRequested",
    "Role",
    "StationCredentialSet",
    "StationRegistered",
    "UserRegistered",
    "UserVerified",
]

Role = Literal["driver", "operator", "admin", "analyst"]


class _UserEvent(Event):
    """An event about one user account, keyed by its id on ``plugpay.identity``."""

    topic = IDENTITY
    aggregate_field = "user_id"
    user_id: uuid.UUID


@register
class UserRegistered(_UserEvent):
    """A new account; drivers start unverified and cannot pay until verified."""

    type = "UserRegistered"
    roles: tuple[Role, ...]
    organisation_id: uuid.UUID | None = None
    groups: tuple[str, ...] = ()
    registered_at: UtcDatetime
    # Where notification-svc writes to (None in events that predate it).
    email: str | None = Field(default=None, max_length=254)


@register
class EmailVerificationRequested(_UserEvent):
    """A verification link is to be mailed. Its code travels only sealed for notification-svc
    (``plugpay_events.sealed``): the log keeps events forever and analysts read it."""

    type = "EmailVerificationRequested"
    expires_at: UtcDatetime
    # None in events that predate notification-svc (nothing is mailed for them).
    email: str | None = Field(default=None, max_length=254)
    sealed_code: str | None = Field(default=None, max_length=1000)


@register
class PasswordResetRequested(_UserEvent):
    """Somebody asked for a password reset of an existing account; the single-use code rides
    sealed for notification-svc, which mails the link."""

    type = "PasswordResetRequested"
    email: str = Field(max_length=254)
    sealed_code: str = Field(max_length=1000)
    expires_at: UtcDatetime


@register
class PasswordChanged(_UserEvent):
    """A new password was set (through a reset link); every refresh token was revoked."""

    type = "PasswordChanged"
    email: str = Field(max_length=254)
    changed_at: UtcDatetime


@register
class GroupInvitationRequested(_UserEvent):
    """An operator invited a driver into a group; the single-use code rides sealed."""

    type = "GroupInvitationRequested"
    email: str = Field(max_length=254)
    group: str = Field(max_length=100)
    sealed_code: str = Field(max_length=1000)
    expires_at: UtcDatetime


@register
class UserVerified(_UserEvent):
    """The email address was confirmed."""

    type = "UserVerified"
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
