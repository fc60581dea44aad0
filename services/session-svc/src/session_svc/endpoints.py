"""session-svc's HTTP API: thin — parse, authorise, call the service, answer."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from plugpay_platform.app import ServiceDatabase
from plugpay_platform.database import Database
from plugpay_platform.security import CurrentPayer, CurrentPrincipal, Principal

from session_svc import service
from session_svc.domain import SessionStatus
from session_svc.live import SessionUpdates
from session_svc.schemas import (
    CodeLookup,
    CodePreview,
    ScanAccepted,
    ScanRequest,
    SessionList,
    SessionTimeline,
    SessionView,
    StopAccepted,
    TimelineStep,
)
from session_svc.timeline import timeline

router = APIRouter(prefix="/sessions", tags=["sessions"])


def _sessions(request: Request) -> service.Sessions:
    sessions: service.Sessions = request.app.state.sessions
    return sessions


Sessions = Annotated[service.Sessions, Depends(_sessions)]
Db = ServiceDatabase


def _updates(request: Request) -> SessionUpdates:
    updates: SessionUpdates = request.app.state.session_updates
    return updates


Updates = Annotated[SessionUpdates, Depends(_updates)]


@dataclass(frozen=True)
class CodeIntake:
    """Where the code a driver presents is read and, when typed, counted and waited for: what
    the scan, lookup and release endpoints share."""

    sessions: service.Sessions
    database: Database
    updates: SessionUpdates
    client_ip: str | None

    async def presented(self, principal: Principal, raw: str, now: datetime) -> service.Presented:
        """What the driver presented; a typed code is counted against the typed-code limits in
        its own transaction, so a refused or failed lookup still counts, then waited for."""
        presented = service.read_presented(principal, raw)
        if presented.typed:
            async with self.database.write() as db:
                too_many = await service.count_typed_lookup(
                    db, self.sessions, principal.user_id, self.client_ip, now
                )
            if too_many is not None:
                raise too_many
            await self._await_typed_code(presented.typed)
        return presented

    async def _await_typed_code(self, typed: str) -> None:
        """A typed code is only known to the store once it has consumed the code's
        SessionCodeIssued (a QR code proves itself): wait, bounded, until the store has learned
        it, so a code typed the moment it shows is accepted at once. No transaction is held
        while waiting; the lookup was counted once already. An unknown code is refused after
        the wait."""
        wait_s = self.sessions.settings.typed_code_wait_s
        if wait_s <= 0:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        with self.updates.code_learned(typed) as learned:
            while True:
                learned.clear()  # before looking: a code learned after the look still wakes us
                async with self.database.read() as db:
                    if await service.typed_code_known(db, typed):
                        return
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return
                try:
                    await asyncio.wait_for(learned.wait(), remaining)
                except TimeoutError:
                    return


def _code_intake(
    request: Request, sessions: Sessions, updates: Updates, database: Db
) -> CodeIntake:
    client_ip = request.client.host if request.client else None
    return CodeIntake(sessions, database, updates, client_ip)


Intake = Annotated[CodeIntake, Depends(_code_intake)]


@router.post("/scan", status_code=202, response_model=ScanAccepted)
async def scan(body: ScanRequest, driver: CurrentPayer, intake: Intake) -> ScanAccepted:
    """The phone sends what it scanned (QR URL or token) or what the driver typed."""
    now = intake.sessions.clock()
    presented = await intake.presented(driver, body.code, now)
    async with intake.database.write() as db:
        session_id = await service.scan(
            db, intake.sessions, driver, presented, now, intake.client_ip
        )
    return ScanAccepted(session_id=session_id)


@router.post("/codes/lookup", response_model=CodePreview)
async def lookup_code(body: CodeLookup, driver: CurrentPayer, intake: Intake) -> CodePreview:
    """A typed or scanned code's station, connector and expiry, so the app shows the price
    before the driver confirms; claims nothing; a typed code counts against the typed-code rate
    limit. The code is in the body: in a path it would be written to every access log."""
    now = intake.sessions.clock()
    presented = await intake.presented(driver, body.code, now)
    async with intake.database.read() as db:
        return await service.lookup_code(db, intake.sessions, driver, presented, now)


@router.post("/codes/release", status_code=204)
async def release_code(body: CodeLookup, driver: CurrentPayer, intake: Intake) -> None:
    """Cancel before starting: the code is retired and the charger free for the next driver
    (the code in the body, as for a lookup; a typed code counts against the same limit)."""
    now = intake.sessions.clock()
    presented = await intake.presented(driver, body.code, now)
    async with intake.database.write() as db:
        await service.release_code(db, intake.sessions, driver, presented, now)


@router.get("", response_model=SessionList)
async def list_sessions(
    principal: CurrentPrincipal,
    database: Db,
    status: Annotated[list[SessionStatus] | None, Query()] = None,
    started_from: datetime | None = None,
    started_before: datetime | None = None,
    scope: Literal["mine", "organisation"] | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> SessionList:
    """The caller's sessions, newest first; operators may ask for their organisation's."""
    async with database.read() as db:
        return await service.list_sessions(
            db,
            principal,
            scope=scope,
            statuses=status,
            started_from=started_from,
            started_before=started_before,
            cursor=cursor,
            limit=limit,
        )


@router.get("/{session_id}", response_model=SessionView)
async def get_session(
    session_id: uuid.UUID, principal: CurrentPrincipal, database: Db
) -> SessionView:
    async with database.read() as db:
        return await service.view(db, principal, session_id)


@router.get("/{session_id}/timeline", response_model=SessionTimeline)
async def session_timeline(
    session_id: uuid.UUID, principal: CurrentPrincipal, database: Db
) -> SessionTimeline:
    """What happened to a session, step by step, oldest first (the support desk's view)."""
    async with database.read() as db:
        state = await service.visible(db, principal, session_id)
    return SessionTimeline(
        session_id=session_id,
        steps=[TimelineStep(at=x.at, kind=x.kind, text=x.text) for x in timeline(state)],
    )


@router.post("/{session_id}/stop", status_code=202, response_model=StopAccepted)
async def stop_session(
    session_id: uuid.UUID, principal: CurrentPrincipal, sessions: Sessions, database: Db
) -> StopAccepted:
    """The driver ends charging from the app; the station stops and reports completion."""
    async with database.write() as db:
        await service.stop(db, sessions, principal, session_id)
    return StopAccepted(session_id=session_id)


@router.get("/{session_id}/events", response_class=StreamingResponse)
async def session_events(
    session_id: uuid.UUID,
    principal: CurrentPrincipal,
    sessions: Sessions,
    database: Db,
    request: Request,
) -> StreamingResponse:
    """Server-Sent Events: the session whenever it changes, then the receipt, then the end."""
    async with database.read() as db:
        await service.visible(db, principal, session_id)  # 404 before any stream starts
    updates: SessionUpdates = request.app.state.session_updates
    keepalive = sessions.settings.sse_keepalive_s

    async def stream() -> AsyncIterator[str]:
        queue = updates.subscribe(session_id)
        try:
            last = ""
            while True:
                async with database.read() as db:
                    state = await service.visible(db, principal, session_id)
                    view = await service.render(db, state)
                body = view.model_dump_json()
                if body != last:
                    last = body
                    yield f"event: session\nid: {view.version}\ndata: {body}\n\n"
                if state.terminal:
                    if view.receipt is not None:
                        yield f"event: receipt\ndata: {view.receipt.model_dump_json()}\n\n"
                    yield f'event: end\ndata: {{"status": "{view.status}"}}\n\n'
                    return
                if updates.stopping:
                    return
                try:
                    await asyncio.wait_for(queue.get(), keepalive)
                except TimeoutError:
                    yield ": keep-alive\n\n"
                while not queue.empty():
                    queue.get_nowait()
        finally:
            updates.unsubscribe(session_id, queue)

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
