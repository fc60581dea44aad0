"""auth-svc's HTTP API; thin: parse, authorise, call the service, answer."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request, Response, status
from fastapi.responses import JSONResponse
from plugpay_platform.app import ServiceDatabase
from plugpay_platform.errors import Refusal
from plugpay_platform.security import CurrentOperator, CurrentPrincipal, Principal, require_role

from auth_svc import service
from auth_svc.repository import Station
from auth_svc.schemas import (
    AcceptInvitationRequest,
    CreatedUser,
    CreateGroupRequest,
    CreateOrganisationRequest,
    CreateUserRequest,
    GroupMemberRequest,
    GroupResponse,
    GuestRequest,
    GuestTokenResponse,
    InvitationAccepted,
    InvitationSent,
    Location,
    MeResponse,
    OrganisationResponse,
    PasswordResetConfirm,
    PasswordResetDone,
    PasswordResetRequest,
    PasswordResetRequested,
    RefreshRequest,
    RegisterRequest,
    RegisterResponse,
    RegisterStationRequest,
    ResendVerificationRequest,
    SigningKeyResponse,
    StationCredentialRequest,
    StationResponse,
    TokenResponse,
    VerifyRequest,
    VerifyResponse,
)
from auth_svc.service import AuthContext, IssuedTokens, NewStation

router = APIRouter(prefix="/auth", tags=["auth"])

CurrentAdmin = Annotated[Principal, Depends(require_role("admin"))]
# Token responses must never be cached (RFC 6749 section 5.1).
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _ctx(request: Request) -> AuthContext:
    ctx: AuthContext = request.app.state.auth
    return ctx


Ctx = Annotated[AuthContext, Depends(_ctx)]
Db = ServiceDatabase


def _client_address(request: Request) -> str:
    # The peer, or the address a trusted front door forwarded (uvicorn's proxy headers are
    # honoured only from PLUGPAY_FORWARDED_ALLOW_IPS; see __main__).
    return request.client.host if request.client else "unknown"


def _tokens(result: IssuedTokens | Refusal) -> JSONResponse:
    if isinstance(result, Refusal):
        raise result
    body = TokenResponse(
        access_token=result.access_token,
        expires_in=result.expires_in,
        refresh_token=result.refresh_token,
    )
    return JSONResponse(body.model_dump(), headers=NO_STORE)


@router.post("/register", status_code=202, response_model=RegisterResponse)
async def register(body: RegisterRequest, request: Request, ctx: Ctx, db: Db) -> RegisterResponse:
    # The link is mailed by notification-svc from the event this commits (never inline: a slow
    # mail server must not tell a new address from a registered one).
    async with db.write() as session:
        await service.register_driver(
            ctx, session, body.email, body.password, _client_address(request)
        )
    return RegisterResponse()


@router.post("/verify", response_model=VerifyResponse)
async def verify(body: VerifyRequest, ctx: Ctx, db: Db) -> VerifyResponse:
    async with db.write() as session:
        user_id = await service.verify_email(ctx, session, body.token)
    return VerifyResponse(user_id=user_id)


@router.post("/verify/resend", status_code=202, response_model=RegisterResponse)
async def resend_verification(
    body: ResendVerificationRequest, request: Request, ctx: Ctx, db: Db
) -> RegisterResponse:
    async with db.write() as session:
        await service.resend_verification(ctx, session, body.email, _client_address(request))
    return RegisterResponse()


@router.post("/password/reset/request", status_code=202, response_model=PasswordResetRequested)
async def request_password_reset(
    body: PasswordResetRequest, request: Request, ctx: Ctx, db: Db
) -> PasswordResetRequested:
    """Mail a reset link if an account has this address; the same answer either way."""
    async with db.write() as session:
        await service.request_password_reset(ctx, session, body.email, _client_address(request))
    return PasswordResetRequested()


@router.post("/password/reset", response_model=PasswordResetDone)
async def reset_password(body: PasswordResetConfirm, ctx: Ctx, db: Db) -> PasswordResetDone:
    """A new password with a reset link's code: every session of the account is signed out."""
    async with db.write() as session:
        user_id = await service.reset_password(ctx, session, body.token, body.new_password)
    return PasswordResetDone(user_id=user_id)


@router.post("/token", response_model=TokenResponse)
async def token(
    request: Request,
    ctx: Ctx,
    db: Db,
    grant_type: Annotated[str, Form(max_length=50)] = "password",
    username: Annotated[str | None, Form(max_length=254)] = None,
    password: Annotated[str | None, Form(max_length=200)] = None,
    refresh_token: Annotated[str | None, Form(max_length=200)] = None,
) -> JSONResponse:
    """OAuth2 token endpoint: the password grant, and the refresh_token grant."""
    if grant_type == "password":
        if not username or not password:
            raise Refusal("invalid_request", "username and password are required", status_code=400)
        async with db.write() as session:
            result = await service.login(ctx, session, username, password, _client_address(request))
    elif grant_type == "refresh_token":
        if not refresh_token:
            raise Refusal("invalid_request", "refresh_token is required", status_code=400)
        async with db.write() as session:
            result = await service.refresh(ctx, session, refresh_token)
    else:
        raise Refusal("unsupported_grant_type", "use password or refresh_token", status_code=400)
    return _tokens(result)


@router.post("/guest", response_model=GuestTokenResponse)
async def guest_token(request: Request, body: GuestRequest, ctx: Ctx, db: Db) -> JSONResponse:
    """Pay without an account: a short-lived token bound to the one session code presented
    (role ``guest``); session-svc checks the code itself at the scan."""
    async with db.write() as session:
        token, ttl = await service.issue_guest_token(
            ctx, session, body.code, _client_address(request)
        )
    return JSONResponse(
        GuestTokenResponse(access_token=token, expires_in=ttl).model_dump(), headers=NO_STORE
    )


@router.post("/refresh", response_model=TokenResponse)
async def refresh(body: RefreshRequest, ctx: Ctx, db: Db) -> JSONResponse:
    async with db.write() as session:
        result = await service.refresh(ctx, session, body.refresh_token)
    return _tokens(result)


@router.post("/logout", status_code=204)
async def logout(body: RefreshRequest, ctx: Ctx, db: Db) -> Response:
    async with db.write() as session:
        await service.logout(ctx, session, body.refresh_token)
    return Response(status_code=204)


@router.get("/.well-known/jwks.json")
async def jwks(ctx: Ctx, db: Db) -> JSONResponse:
    async with db.read() as session:
        document = await service.jwks(ctx, session)
    # Short enough that a rotated-in key reaches verifiers before the old one leaves.
    return JSONResponse(document, headers={"Cache-Control": "public, max-age=300"})


@router.post("/admin/signing-keys/rotate", response_model=SigningKeyResponse, status_code=201)
async def rotate_signing_key(_: CurrentAdmin, ctx: Ctx, db: Db) -> SigningKeyResponse:
    async with db.write() as session:
        key = await service.rotate_signing_key(ctx, session)
    return SigningKeyResponse(kid=key.kid)


@router.get("/me", response_model=MeResponse)
async def me(principal: CurrentPrincipal, db: Db) -> MeResponse:
    async with db.read() as session:
        account = await service.me(session, principal)
    return MeResponse.model_validate(account)


@router.post("/users", response_model=CreatedUser, status_code=201)
async def create_user(body: CreateUserRequest, _: CurrentAdmin, ctx: Ctx, db: Db) -> CreatedUser:
    async with db.write() as session:
        user_id = await service.create_staff_account(
            ctx,
            session,
            email=body.email,
            password=body.password,
            role=body.role,
            organisation_id=body.organisation_id,
        )
    return CreatedUser(user_id=user_id)


@router.post("/organisations", response_model=OrganisationResponse, status_code=201)
async def create_organisation(
    body: CreateOrganisationRequest, _: CurrentAdmin, ctx: Ctx, db: Db
) -> OrganisationResponse:
    async with db.write() as session:
        org = await service.create_organisation(ctx, session, body.name)
    return OrganisationResponse.model_validate(org)


@router.get("/organisations", response_model=list[OrganisationResponse])
async def list_organisations(_: CurrentAdmin, db: Db) -> list[OrganisationResponse]:
    async with db.read() as session:
        orgs = await service.list_organisations(session)
    return [OrganisationResponse.model_validate(o) for o in orgs]


@router.get("/organisations/{organisation_id}", response_model=OrganisationResponse)
async def get_organisation(
    organisation_id: uuid.UUID, principal: CurrentOperator, db: Db
) -> OrganisationResponse:
    async with db.read() as session:
        org = await service.get_organisation(session, principal, organisation_id)
    return OrganisationResponse.model_validate(org)


@router.post("/groups", status_code=201, response_model=GroupResponse)
async def create_group(body: CreateGroupRequest, principal: CurrentOperator, db: Db) -> Any:
    async with db.write() as session:
        await service.create_group(session, principal, body.name, body.organisation_id)
    return GroupResponse(name=body.name, members=[])


@router.get("/groups", response_model=list[GroupResponse])
async def list_groups(
    principal: CurrentOperator, db: Db, organisation_id: uuid.UUID | None = None
) -> list[GroupResponse]:
    async with db.read() as session:
        groups = await service.list_groups(session, principal, organisation_id)
    return [GroupResponse(name=name, members=members) for name, members in groups]


@router.post(
    "/groups/{group}/members",
    status_code=204,
    responses={202: {"model": InvitationSent, "description": "anyone but a colleague"}},
)
async def add_group_member(
    group: str,
    body: GroupMemberRequest,
    principal: CurrentOperator,
    ctx: Ctx,
    db: Db,
) -> Response:
    """A colleague joins at once (204); a driver gets an invitation, and any other address the
    same answer (202) with nothing done."""
    async with db.write() as session:
        outcome = await service.add_group_member(ctx, session, principal, group, body.email)
    if outcome is True:
        return Response(status_code=204)
    return JSONResponse(InvitationSent().model_dump(), status_code=202)


@router.post("/invitations/accept", response_model=InvitationAccepted)
async def accept_invitation(
    body: AcceptInvitationRequest, principal: CurrentPrincipal, ctx: Ctx, db: Db
) -> InvitationAccepted:
    async with db.write() as session:
        group = await service.accept_group_invitation(ctx, session, principal, body.token)
    return InvitationAccepted(group=group)


@router.delete("/groups/{group}/members/{email}", status_code=204)
async def remove_group_member(
    group: str, email: str, principal: CurrentOperator, db: Db
) -> Response:
    async with db.write() as session:
        await service.remove_group_member(session, principal, group, email)
    return Response(status_code=204)


def _station(station: Station) -> StationResponse:
    has_location = any(
        v is not None for v in (station.latitude, station.longitude, station.address)
    )
    return StationResponse(
        id=station.id,
        organisation_id=station.organisation_id,
        name=station.name,
        connectors=station.connectors,
        location=Location(
            latitude=station.latitude, longitude=station.longitude, address=station.address
        )
        if has_location
        else None,
        registered_at=station.registered_at,
        credential_set_at=station.credential_set_at,
        security_profile=station.security_profile,
    )


@router.post("/stations", response_model=StationResponse, status_code=201)
async def register_station(
    body: RegisterStationRequest, principal: CurrentOperator, ctx: Ctx, db: Db
) -> StationResponse:
    location = body.location or Location()
    new = NewStation(
        station_id=body.id,
        name=body.name,
        connectors=body.connectors,
        latitude=location.latitude,
        longitude=location.longitude,
        address=location.address,
    )
    async with db.write() as session:
        station = await service.register_station(ctx, session, principal, new, body.organisation_id)
    return _station(station)


@router.get("/stations", response_model=list[StationResponse])
async def list_stations(principal: CurrentOperator, db: Db) -> list[StationResponse]:
    async with db.read() as session:
        stations = await service.list_stations(session, principal)
    return [_station(s) for s in stations]


@router.get("/stations/{station_id}", response_model=StationResponse)
async def get_station(station_id: str, principal: CurrentOperator, db: Db) -> StationResponse:
    async with db.read() as session:
        station = await service.station_in_scope(session, principal, station_id)
    return _station(station)


@router.put("/stations/{station_id}/credentials", status_code=status.HTTP_204_NO_CONTENT)
async def set_station_credentials(
    station_id: str,
    body: StationCredentialRequest,
    principal: CurrentOperator,
    ctx: Ctx,
    db: Db,
) -> Response:
    async with db.write() as session:
        await service.set_station_credential(
            ctx, session, principal, station_id, body.password, body.security_profile
        )
    return Response(status_code=204)
