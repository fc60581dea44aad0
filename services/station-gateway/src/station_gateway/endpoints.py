"""HTTP and WebSocket routes: the OCPP endpoint, QR images, the station display, commands."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import io
import json
import re
import secrets
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import segno
from fastapi import APIRouter, Depends, Request, WebSocket
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from plugpay_events.session_code import token_from_scan
from plugpay_platform.errors import Refusal
from plugpay_platform.http_security import NO_PERMISSIONS, page_headers
from plugpay_platform.security import CurrentOperator
from plugpay_platform.throttle import ThrottleRule
from sqlalchemy.engine import RowMapping

from station_gateway import service
from station_gateway.credentials import StationAuthRefused, basic_credentials
from station_gateway.gateway import Gateway
from station_gateway.ocpp_endpoint import serve_station
from station_gateway.repository import Repository
from station_gateway.schemas import (
    CodeRequest,
    CommandView,
    IssuedCodeView,
    MeterSampleView,
    OperatorCommand,
    SessionMeterView,
    StationLiveList,
    StationLiveView,
)

HERE = Path(__file__).parent
templates = Environment(
    loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"])
)

ocpp_router = APIRouter()
router = APIRouter(prefix="/stations", tags=["stations"])


def gateway_of(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


GatewayDep = Annotated[Gateway, Depends(gateway_of)]


@ocpp_router.websocket("/ocpp/{station_id}")
async def ocpp_socket(websocket: WebSocket, station_id: str) -> None:
    await serve_station(websocket, station_id, websocket.app.state.gateway)


@ocpp_router.get("/ocpp/docs", include_in_schema=False)
async def ocpp_docs() -> RedirectResponse:
    """/ocpp is the stations' WebSocket path; a person looking for its docs gets them."""
    return RedirectResponse("/stations/docs", status_code=307)


def _realm(station_id: str) -> str:
    """The station id in a header only when it is a registrable id (header values are
    latin-1: any other character used to answer 500)."""
    return station_id if re.fullmatch(r"[A-Za-z0-9._-]{1,64}", station_id) else "unknown"


async def _station_auth(request: Request, station_id: str, gateway: Gateway) -> None:
    """The station's own Basic credentials, throttled; raises the refusal as a 401/429."""
    try:
        await gateway.credentials.authenticate(
            station_id,
            basic_credentials(request.headers.get("authorization", "")),
            request.client.host if request.client else None,
        )
    except StationAuthRefused as refused:
        if refused.retry_after_s is not None:
            raise Refusal(
                refused.reason,
                refused.message,
                status_code=429,
                headers={"Retry-After": str(refused.retry_after_s)},
            ) from None
        raise Refusal(
            refused.reason,
            refused.message,
            status_code=401,
            headers={"WWW-Authenticate": f'Basic realm="plugpay station {_realm(station_id)}"'},
        ) from None


async def authenticated_station(request: Request, station_id: str) -> str:
    """The station itself, by its OCPP Basic credentials (its screen is a browser)."""
    await _station_auth(request, station_id, gateway_of(request))
    return station_id


CurrentStation = Annotated[str, Depends(authenticated_station)]


def display_csp(nonce: str) -> str:
    """The display page's policy: its own origin only, its one style block by nonce, never
    framed (a framing page could overlay the code and the price)."""
    return (
        f"default-src 'self'; style-src 'nonce-{nonce}'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'self'; "
        "form-action 'self'"
    )


@router.get("/{station_id}/display", response_class=HTMLResponse)
async def display_page(station_id: CurrentStation) -> HTMLResponse:
    nonce = secrets.token_urlsafe(16)
    html = templates.get_template("display.html").render(station_id=station_id, nonce=nonce)
    headers = page_headers(display_csp(nonce), permissions=NO_PERMISSIONS)
    return HTMLResponse(html, headers={**headers, "Cache-Control": "no-store"})


@router.get("/{station_id}/display/static/display.js")
async def display_script(station_id: CurrentStation) -> Response:
    return Response((HERE / "static" / "display.js").read_text(), media_type="text/javascript")


@router.get("/{station_id}/display/state")
async def display_state(station_id: CurrentStation, gateway: GatewayDep) -> dict[str, object]:
    async with gateway.database.read() as session:
        return await service.display_state(session, station_id)


@router.get("/{station_id}/display/events")
async def display_events(
    station_id: CurrentStation, gateway: GatewayDep, request: Request
) -> StreamingResponse:
    """Server-sent events: the display state whenever it changes (any gateway process)."""

    async def stream() -> AsyncIterator[str]:
        waiter = gateway.display_waiter(station_id)
        try:
            last = None
            while not await request.is_disconnected():
                waiter.clear()
                async with gateway.database.read() as session:
                    state = json.dumps(await service.display_state(session, station_id))
                if state != last:
                    yield f"event: state\ndata: {state}\n\n"
                    last = state
                else:
                    yield ": keep-alive\n\n"
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(waiter.wait(), 15)
        finally:
            gateway.drop_display_waiter(station_id, waiter)

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@router.post("/{station_id}/display/sessions/{session_id}/cancel")
async def cancel_code(
    station_id: CurrentStation, session_id: uuid.UUID, gateway: GatewayDep
) -> dict[str, bool]:
    """Cancel on the display: the shown code is retired and the connector free again."""
    try:
        async with gateway.database.write() as session:
            row = await service.cancel_code(session, station_id, session_id)
    except service.GatewayRefusal as refusal:
        raise Refusal(refusal.reason, refusal.message, status_code=409) from refusal
    handler = gateway.connections.get(station_id)
    if handler is not None:
        handler.spawn(handler.clear_code(row))
    return {"cancelled": True}


@router.post("/{station_id}/display/sessions", status_code=201)
async def request_code(
    station_id: CurrentStation, body: CodeRequest, gateway: GatewayDep
) -> IssuedCodeView:
    """The driver chose "pay with phone" on the display: a new session code."""
    try:
        async with gateway.database.write() as session:
            issued = await gateway.code_issuer().issue(
                session, station_id, body.connector_id, require_online=True
            )
    except service.GatewayRefusal as refusal:
        raise Refusal(refusal.reason, refusal.message, status_code=409) from refusal
    handler = gateway.connections.get(station_id)
    if handler is not None:
        handler.spawn(handler.show_code(issued))
    return IssuedCodeView.model_validate(issued)


# Wrong dynamic codes from one address: a person mistyping or rescanning is never slowed, a
# guesser soon is (the code space makes guessing hopeless anyway; this keeps it cheap).
WEB_PAYMENT_GUESSES = ThrottleRule(free_failures=10, base_delay_s=2, max_delay_s=15 * 60)


@router.get("/{station_id}/evses/{evse_id}/pay/{code}", status_code=303)
async def web_payment_landing(
    request: Request,
    station_id: str,
    evse_id: Annotated[int, PathParam(ge=1)],
    code: str,
    gateway: GatewayDep,
) -> RedirectResponse:
    """OCPP 2.1 C25: the URL in a station's dynamic QR code. A valid code (TOTP v1, the current
    step ±1) holds the connector for this payer and leads to its ordinary session code page,
    where a logged-in driver or a guest continues; anything else starts nothing."""
    settings = gateway.settings
    address = ("web_payment", request.client.host if request.client else None)
    now = service.now_utc()
    if (wait := gateway.web_payment_throttle.retry_after_s([address], now)) is not None:
        raise Refusal(
            "too_many_attempts",
            "too many wrong codes from here; try again later",
            status_code=429,
            headers={"Retry-After": str(wait)},
        )
    try:
        async with gateway.database.write() as session:
            issued = await service.open_web_payment(
                session,
                gateway.code_issuer(),
                station_id,
                evse_id,
                code[:64],
                hold_for=timedelta(seconds=settings.web_payment_timeout_s),
            )
    except service.GatewayRefusal as refusal:
        if refusal.reason == "code_invalid":
            gateway.web_payment_throttle.fail({address: WEB_PAYMENT_GUESSES}, now)
            raise Refusal(refusal.reason, refusal.message, status_code=404) from refusal
        raise Refusal(refusal.reason, refusal.message, status_code=409) from refusal
    return RedirectResponse(issued.qr_url, status_code=303, headers={"Cache-Control": "no-store"})


async def _qr_content(
    request: Request, station_id: str, session_id: uuid.UUID, token: str | None
) -> str:
    gateway = gateway_of(request)
    async with gateway.database.read() as session:
        row = await Repository(session).session_row(session_id)
    if row is None or row["station_id"] != station_id or not row["qr_url"]:
        raise Refusal("not_found", "no such session code", status_code=404)
    by_token = token is not None and hmac.compare_digest(
        token.encode(), token_from_scan(row["qr_url"]).encode()
    )
    if not by_token:
        await _station_auth(request, station_id, gateway)
    return str(row["qr_url"])


def _qr_image(content: str, kind: str, media_type: str, scale: int) -> Response:
    buffer = io.BytesIO()
    segno.make(content, error="m", micro=False).save(buffer, kind=kind, scale=scale, border=2)
    return Response(buffer.getvalue(), media_type=media_type, headers={"Cache-Control": "no-store"})


@router.get("/{station_id}/sessions/{session_id}/qr.svg")
async def qr_svg(
    request: Request, station_id: str, session_id: uuid.UUID, token: str | None = None
) -> Response:
    content = await _qr_content(request, station_id, session_id, token)
    return _qr_image(content, "svg", "image/svg+xml", scale=6)


@router.get("/{station_id}/sessions/{session_id}/qr.png")
async def qr_png(
    request: Request, station_id: str, session_id: uuid.UUID, token: str | None = None
) -> Response:
    content = await _qr_content(request, station_id, session_id, token)
    return _qr_image(content, "png", "image/png", scale=8)


# --- operators: live status and OCPP commands, their own organisation's stations only ------------


async def operator_organisation(operator: CurrentOperator) -> uuid.UUID:
    """Operators act for their own organisation only (as everywhere in Plugpay)."""
    if operator.organisation_id is None:
        raise Refusal("no_organisation", "your account belongs to no organisation", status_code=403)
    return operator.organisation_id


OperatorOrganisation = Annotated[uuid.UUID, Depends(operator_organisation)]


async def _own_station(repo: Repository, station_id: str, organisation_id: uuid.UUID) -> RowMapping:
    station = await repo.station(station_id)
    # A station auth-svc has not registered (yet) is nobody's, so no operator's; one outside
    # the caller's scope gets the same answer as a missing one: no ownership oracle.
    if station is None or station["organisation_id"] != organisation_id:
        raise Refusal("station_unknown", f"no station {station_id} is registered", status_code=404)
    return station


_NO_STORE = {"Cache-Control": "no-store"}


@router.get("", response_model=StationLiveList, tags=["operators"])
async def list_live_stations(
    organisation_id: OperatorOrganisation, gateway: GatewayDep, response: Response
) -> StationLiveList:
    """The organisation's stations now: online (connected and heart-beating), the last message,
    boot data, each connector's OCPP status and the session in progress on it."""
    async with gateway.database.read() as session:
        rows = await Repository(session).stations_of(organisation_id)
        views = await service.operator_view(session, rows)
    response.headers.update(_NO_STORE)
    return StationLiveList.model_validate({"items": views})


@router.get("/{station_id}/status", response_model=StationLiveView, tags=["operators"])
async def live_station(
    station_id: str, organisation_id: OperatorOrganisation, gateway: GatewayDep, response: Response
) -> StationLiveView:
    """One of the organisation's stations now (404 if unknown or another organisation's)."""
    async with gateway.database.read() as session:
        row = await _own_station(Repository(session), station_id, organisation_id)
        (view,) = await service.operator_view(session, [row])
    response.headers.update(_NO_STORE)
    return StationLiveView.model_validate(view)


MAX_SAMPLES = 20_000  # a day at one reading every 5 s


@router.get(
    "/{station_id}/sessions/{session_id}/meter",
    response_model=SessionMeterView,
    tags=["operators"],
)
async def session_meter(
    station_id: str,
    session_id: uuid.UUID,
    organisation_id: OperatorOrganisation,
    gateway: GatewayDep,
    response: Response,
) -> SessionMeterView:
    """A session's meter readings on one of the organisation's stations (404 otherwise)."""
    async with gateway.database.read() as session:
        repo = Repository(session)
        await _own_station(repo, station_id, organisation_id)
        row = await repo.session_row(session_id)
        if row is None or row["station_id"] != station_id:
            raise Refusal("session_unknown", "no such session at this station", status_code=404)
        rows = await repo.samples(session_id, limit=MAX_SAMPLES + 1)
    response.headers.update(_NO_STORE)
    return SessionMeterView(
        session_id=session_id,
        station_id=station_id,
        connector_id=row["connector_id"],
        samples=[MeterSampleView.model_validate(dict(r)) for r in rows[:MAX_SAMPLES]],
        truncated=len(rows) > MAX_SAMPLES,
    )


@router.post("/{station_id}/commands", status_code=202, tags=["operators"])
async def operator_command(
    station_id: str,
    body: OperatorCommand,
    organisation_id: OperatorOrganisation,
    gateway: GatewayDep,
) -> CommandView:
    """TriggerMessage, Get/ChangeConfiguration...: executed by the process holding the socket."""
    async with gateway.database.write() as session:
        repo = Repository(session)
        await _own_station(repo, station_id, organisation_id)
        command_id = await repo.add_command(
            station_id,
            "ocpp_call",
            gateway.instance_id,
            payload={"action": body.action, "payload": body.payload},
        )
    return CommandView(
        command_id=command_id,
        station_id=station_id,
        kind="ocpp_call",
        done=False,
        executed_by=None,
        result=None,
    )


@router.get("/{station_id}/commands/{command_id}", tags=["operators"])
async def command_status(
    station_id: str,
    command_id: Annotated[int, PathParam(ge=1, le=2**63 - 1)],  # the id column is a bigint
    organisation_id: OperatorOrganisation,
    gateway: GatewayDep,
) -> CommandView:
    async with gateway.database.read() as session:
        repo = Repository(session)
        await _own_station(repo, station_id, organisation_id)
        row = await repo.command(command_id)
    if row is None or row["station_id"] != station_id or row["kind"] != "ocpp_call":
        raise Refusal("not_found", "no such command", status_code=404)
    return CommandView(
        command_id=row["id"],
        station_id=station_id,
        kind=row["kind"],
        done=row["result"] is not None,
        executed_by=row["executed_by"],
        result=row["result"],
    )
