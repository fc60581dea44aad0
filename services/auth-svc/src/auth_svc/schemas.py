"""auth-svc's request and response bodies (never the ORM rows, never the events)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from plugpay_events.contracts.identity import ConnectorSpec
from pydantic import BaseModel, ConfigDict, Field

from auth_svc.domain import PASSWORD_MAX_LENGTH


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


Password = Field(min_length=1, max_length=PASSWORD_MAX_LENGTH)
Email = Field(min_length=3, max_length=254)
# The code of a mailed link: email verification, password reset, group invitation.
LinkCode = Field(min_length=16, max_length=200)


class RegisterRequest(_Body):
    email: str = Email
    password: str = Password


class RegisterResponse(BaseModel):
    status: Literal["verification_sent"] = "verification_sent"
    message: str = "if this address can be used, a verification link is on its way"


class VerifyRequest(_Body):
    token: str = LinkCode


class ResendVerificationRequest(_Body):
    email: str = Email


class PasswordResetRequest(_Body):
    email: str = Email


class PasswordResetRequested(BaseModel):
    status: Literal["reset_sent"] = "reset_sent"
    message: str = "if an account has this address, a password reset link is on its way"


class PasswordResetConfirm(_Body):
    token: str = LinkCode
    new_password: str = Password


class PasswordResetDone(BaseModel):
    user_id: uuid.UUID
    message: str = "your password was changed; every device was signed out"


class VerifyResponse(BaseModel):
    user_id: uuid.UUID
    email_verified: bool = True


class GuestRequest(BaseModel):
    """The session code (QR content or typed) a guest wants to pay for."""

    code: str = Field(min_length=1, max_length=300)


class GuestTokenResponse(BaseModel):
    """A guest's access token: no refresh token, it lives as long as one session may."""

    access_token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int


class TokenResponse(BaseModel):
    """RFC 6749 section 5.1."""

    access_token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int
    refresh_token: str


class RefreshRequest(_Body):
    refresh_token: str = Field(min_length=16, max_length=200)


class MeResponse(BaseModel):
    model_config = ConfigDict(from_attributes=True)  # read from the account

    user_id: uuid.UUID
    email: str
    roles: list[str]
    organisation_id: uuid.UUID | None
    groups: list[str]
    email_verified: bool


class CreateUserRequest(_Body):
    email: str = Email
    password: str = Password
    role: Literal["driver", "operator", "analyst", "admin"]
    organisation_id: uuid.UUID | None = None


class CreatedUser(BaseModel):
    user_id: uuid.UUID


class CreateOrganisationRequest(_Body):
    name: str = Field(min_length=1, max_length=200)


class OrganisationResponse(BaseModel):
    model_config = ConfigDict(from_attributes=True)  # read from the repository's record

    id: uuid.UUID
    name: str
    created_at: datetime


class CreateGroupRequest(_Body):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,62}$")
    organisation_id: uuid.UUID | None = None


class GroupMemberRequest(_Body):
    email: str = Email


class InvitationSent(BaseModel):
    status: Literal["invitation_sent"] = "invitation_sent"
    message: str = "if this account can join the group, an invitation is on its way"


class AcceptInvitationRequest(_Body):
    token: str = LinkCode


class InvitationAccepted(BaseModel):
    group: str


class GroupResponse(BaseModel):
    name: str
    members: list[str]


class Location(_Body):
    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=180)
    address: str | None = Field(default=None, max_length=500)


class RegisterStationRequest(_Body):
    # OCPP identities travel in a URL path (/ocpp/{id}): keep them to unreserved characters.
    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    name: str = Field(min_length=1, max_length=200)
    connectors: list[ConnectorSpec] = Field(min_length=1, max_length=32)
    location: Location | None = None
    organisation_id: uuid.UUID | None = None


class StationResponse(BaseModel):
    id: str
    organisation_id: uuid.UUID
    name: str
    connectors: list[ConnectorSpec]
    location: Location | None
    registered_at: datetime
    credential_set_at: datetime | None
    security_profile: int | None


class StationCredentialRequest(_Body):
    password: str = Field(min_length=1, max_length=200)
    security_profile: Literal[1, 2] = 2


class SigningKeyResponse(BaseModel):
    kid: str
