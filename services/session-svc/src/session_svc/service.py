"""Use cases of session-svc, shared by the endpoints and the background tasks.

Each takes the caller's unit of work (``db``) and never commits: the endpoint or task that opens
the transaction commits it once. Outgoing events go to the outbox in that same transaction.
"""

from __future__ import annotations

import base64
import binascii
import logging
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, NamedTuple

from plugpay_events.contracts.sessions import SessionCodeScanned
from plugpay_events.envelope import Event
from plugpay_events.outbox import Outbox
from plugpay_events.session_code import (
    TYPED_CODE_ALPHABET,
    TYPED_CODE_LENGTH,
    SessionCodeClaims,
    SessionCodeRejected,
    UnverifiedCode,
    code_binding,
    looks_like_session_code,
    normalise_typed_code,
    read_session_code,
    token_from_scan,
    verify_session_code,
)
from plugpay_events.types import Money, utc_now
from plugpay_platform.errors import Refusal
from plugpay_platform.outgoing import envelopes
from plugpay_platform.security import Principal
from plugpay_tariffs import MeterSample as TariffMeterSample
from plugpay_tariffs import SessionUsage, calculate_cost
from sqlalchemy.ext.asyncio import AsyncSession

from session_svc import domain, repository
from session_svc.domain import (
    CODE_EXPIRY,
    START_TIMEOUT,
    ChargingSession,
    Rejected,
    SessionStatus,
)
from session_svc.schemas import (
    CodePreview,
    CostView,
    DenialView,
    LimitsView,
    MoneyView,
    ReceiptView,
    SessionList,
    SessionView,
)
from session_svc.settings import Settings
from session_svc.tables import outbox_tables

log = logging.getLogger(__name__)

PRODUCER = "session-svc"
# HTTP status per refusal reason: distinct reasons, each with the status that fits it.
STATUS_OF: dict[str, int] = {
    "code_malformed": 400,
    "code_invalid": 400,
    "code_expired": 410,
    "code_used": 409,
    "station_offline": 409,
    "not_charging": 409,
}
_TYPED = set(TYPED_CODE_ALPHABET)


def refuse(rejected: Rejected | SessionCodeRejected) -> Refusal:
    return Refusal(
        rejected.reason, rejected.message, status_code=STATUS_OF.get(rejected.reason, 400)
    )


@dataclass(frozen=True)
class Sessions:
    """What every use case needs besides its unit of work: the settings and a clock."""

    settings: Settings
    clock: Callable[[], datetime] = utc_now


_outbox = Outbox(outbox_tables)


async def emit(db: AsyncSession, events: list[Event]) -> None:
    """Queue events in the caller's transaction (published only if it commits)."""
    await _outbox.add(db, envelopes(events, producer=PRODUCER))


class Presented(NamedTuple):
    """What a driver presented: the raw ``content``, and either a QR code read (``code``, not
    yet verified against its key) or a well-formed ``typed`` code; the other one is empty."""

    content: str
    code: UnverifiedCode | None
    typed: str


# --- scan --------------------------------------------------------------------------------


async def scan(
    db: AsyncSession,
    sessions: Sessions,
    principal: Principal,
    presented: Presented,
    now: datetime,
    client_ip: str | None = None,
) -> uuid.UUID:
    """Verify what a driver scanned or typed and emit SessionCodeScanned; one scan wins."""
    if not await repository.try_lock_store_shared(db):
        raise Refusal(
            "store_rebuilding",
            "sessions are being rebuilt; try again in a moment",
            status_code=503,
            headers={"Retry-After": "5"},
        )
    _, result = await _check_code(db, sessions, principal, presented, now)
    if principal.is_guest:
        await _count_guest_scan(db, sessions, result.station_id, client_ip, now)
    if not await repository.claim_scan(db, result.session_id, principal.user_id, result):
        raise Refusal("code_used", "this code was already used", status_code=409)
    await emit(db, [result])
    return result.session_id


async def _resolve(
    db: AsyncSession, sessions: Sessions, presented: Presented, now: datetime
) -> tuple[uuid.UUID | None, SessionCodeClaims | None]:
    """The session a presented code names: a QR code's by its verified MAC, a typed one's
    from the store (None: no such live code)."""
    if presented.code is not None:
        claims = await _verify(db, sessions, presented.code, presented.content, now)
        return claims.session_id, claims
    return await repository.find_typed_code(db, presented.typed), None


async def _verify(
    db: AsyncSession, sessions: Sessions, presented: UnverifiedCode, content: str, now: datetime
) -> SessionCodeClaims:
    """A QR code's MAC checked against its session's station, or, before the store has
    the session (the code's SessionCodeIssued still on its way), against the stations
    whose tag the code carries: the code alone proves what it says."""
    settings = sessions.settings
    state = await repository.load_session(db, presented.session_id)
    if state is not None and state.station_id is not None:
        station_ids = [state.station_id]
    else:
        station_ids = [s for s in await repository.station_ids(db) if presented.may_be_for(s)]
    try:
        return verify_session_code(
            token_from_scan(content),
            settings.code_verification_jwks,
            station_ids=station_ids,
            now=now,
            tolerance=settings.code_tolerance,
            clock_skew=settings.clock_skew,
        )
    except SessionCodeRejected as rejected:
        raise refuse(rejected) from None


async def _check_code(
    db: AsyncSession,
    sessions: Sessions,
    principal: Principal,
    presented: Presented,
    now: datetime,
) -> tuple[ChargingSession, SessionCodeScanned]:
    """Everything a scan checks before it claims: known, this station's, unused, fresh,
    station online. Returns the session and the event a scan would emit."""
    settings = sessions.settings
    session_id, claims = await _resolve(db, sessions, presented, now)
    state = await repository.load_session(db, session_id) if session_id else None
    if (state is None or state.status is None) and claims is not None:
        # A verified code is its own proof of issue: no waiting for the log to bring it.
        state = domain.issued_from_code(claims)
    if session_id is None or state is None:
        raise Refusal("code_invalid", "this code is not known", status_code=400)
    if await repository.is_scan_claimed(db, session_id):
        raise Refusal("code_used", "this code was already used", status_code=409)
    result = domain.scan(
        state,
        user_id=principal.user_id,
        organisation_id=principal.organisation_id,
        user_groups=principal.groups,
        code_kind="qr" if claims else "typed",
        now=now,
        guest=principal.is_guest,
        clock_skew=settings.clock_skew,
        tolerance=settings.code_tolerance,
        presented=(claims.station_id, claims.connector_id, claims.token_id) if claims else None,
    )
    if isinstance(result, Rejected):
        raise refuse(result)
    assert state.station_id is not None and state.session_started_at is not None
    presence = await repository.station_presence(db, state.station_id)
    if presence is not None and not domain.online_for_code(
        *presence, session_started_at=state.session_started_at
    ):
        raise Refusal(
            "station_offline",
            "the station is offline; try another one or ask for help",
            status_code=409,
        )
    assert state.connector_id is not None
    if await repository.newer_code_exists(
        db, state.station_id, state.connector_id, state.session_started_at
    ):
        # The gateway issues a code only for a free connector and retires the older ones:
        # refused here before any hold is placed (the gateway would abandon it anyway).
        raise Refusal(
            "code_superseded",
            "the charger shows a newer code for this connector; scan that one",
            status_code=409,
        )
    return state, result


async def lookup_code(
    db: AsyncSession,
    sessions: Sessions,
    principal: Principal,
    presented: Presented,
    now: datetime,
) -> CodePreview:
    """What a typed or scanned code names (station, connector, until when), without
    claiming it, so the app can show the price before the driver confirms."""
    state, _ = await _check_code(db, sessions, principal, presented, now)
    assert state.station_id and state.connector_id
    assert state.code_expires_at and state.session_started_at
    name = await repository.station_name(db, state.station_id)
    return CodePreview(
        code=presented.typed or None,
        station_id=state.station_id,
        station_name=name,
        connector_id=state.connector_id,
        expires_at=min(
            state.code_expires_at, state.session_started_at + sessions.settings.code_tolerance
        ),
    )


async def release_code(
    db: AsyncSession,
    sessions: Sessions,
    principal: Principal,
    presented: Presented,
    now: datetime,
) -> None:
    """The driver cancelled before starting: the code is retired at once (as if expired),
    so the charger's screen and connector are free for the next driver, not for minutes.
    Anyone holding the code may do it (they could as well have scanned it); it claims the
    code, so no scan wins afterwards."""
    state, _ = await _check_code(db, sessions, principal, presented, now)
    if not await repository.claim_scan(db, state.session_id, principal.user_id):
        raise Refusal("code_used", "this code was already used", status_code=409)
    await emit(db, list(domain.expire_code(state, now=now, due=now)))


def read_presented(principal: Principal, raw: str) -> Presented:
    """What a driver presented: a QR code read (not yet verified against its key) or a
    well-formed typed code (which the caller counts with ``count_typed_lookup``)."""
    if principal.is_guest:
        if principal.guest_code != code_binding(raw):
            # A guest's token is the capability for one code, never a pass for others.
            raise Refusal(
                "code_not_guests", "this guest checkout is for another code", status_code=403
            )
    elif not principal.email_verified:
        raise Refusal(
            "account_unverified", "verify your e-mail address before paying", status_code=403
        )
    content = raw.strip()
    if looks_like_session_code(content):
        try:
            return Presented(content, read_session_code(token_from_scan(content)), "")
        except SessionCodeRejected as rejected:
            raise refuse(rejected) from None
    typed = normalise_typed_code(content)
    if len(typed) != TYPED_CODE_LENGTH or not set(typed) <= _TYPED:
        raise Refusal("code_malformed", "this is not a Plugpay code", status_code=400)
    return Presented(content, None, typed)


async def typed_code_known(db: AsyncSession, typed: str) -> bool:
    """Whether the store has learned this typed code (from its SessionCodeIssued) yet."""
    return await repository.find_typed_code(db, typed) is not None


def _fixed_window(now: datetime, window_s: int) -> tuple[datetime, int]:
    """The start of the rate-limit window ``now`` falls in, and the seconds until the next one
    (a Retry-After of at least 1)."""
    start = datetime.fromtimestamp(math.floor(now.timestamp() / window_s) * window_s, UTC)
    return start, max(1, math.ceil((start + timedelta(seconds=window_s) - now).total_seconds()))


def _too_many_requests(message: str, retry_after: int) -> Refusal:
    """A rate limit's refusal, saying when the next window starts."""
    return Refusal(
        "too_many_requests", message, status_code=429, headers={"Retry-After": str(retry_after)}
    )


async def _count_guest_scan(
    db: AsyncSession,
    sessions: Sessions,
    station_id: str,
    client_ip: str | None,
    now: datetime,
) -> None:
    """Guest scans per station and per address, counted in the scan's own transaction: a
    scan that wins places a card pre-authorisation, so these bound card testing."""
    settings = sessions.settings
    start, retry_after = _fixed_window(now, settings.guest_window_s)
    station_hits = await repository.count_hit(db, f"guest-station:{station_id}", start)
    ip_hits = await repository.count_hit(db, f"guest-ip:{client_ip}", start) if client_ip else 0
    if station_hits > settings.guest_scans_per_station or ip_hits > settings.guest_scans_per_ip:
        raise _too_many_requests(
            "too many guest checkouts here; wait a moment or log in", retry_after
        )


async def count_typed_lookup(
    db: AsyncSession,
    sessions: Sessions,
    user_id: uuid.UUID,
    client_ip: str | None,
    now: datetime,
) -> Refusal | None:
    """Typed codes are short: count lookups per user and per address so nobody can guess.
    Returns the refusal (not raised) so the caller commits the count before refusing."""
    settings = sessions.settings
    window = settings.typed_lookup_window_s
    start, retry_after = _fixed_window(now, window)
    user_hits = await repository.count_hit(db, f"user:{user_id}", start)
    ip_hits = await repository.count_hit(db, f"ip:{client_ip}", start) if client_ip else 0
    if user_hits == 1:
        await repository.prune_rate_limits(db, start - timedelta(seconds=window))
    if user_hits > settings.typed_lookups_per_user or ip_hits > settings.typed_lookups_per_ip:
        return _too_many_requests(
            "too many typed codes; wait a moment or scan the QR code", retry_after
        )
    return None


# --- reading -----------------------------------------------------------------------------


def may_see(principal: Principal, state: ChargingSession) -> bool:
    if "admin" in principal.roles:
        return True
    if state.user_id is not None and state.user_id == principal.user_id:
        return True
    return (
        principal.has("operator")
        and principal.organisation_id is not None
        and state.station_organisation_id == principal.organisation_id
    )


async def visible(db: AsyncSession, principal: Principal, session_id: uuid.UUID) -> ChargingSession:
    state = await repository.load_session(db, session_id)
    if state is None or state.status is SessionStatus.CODE_ISSUED:
        # Read-your-writes: a scan claimed in its own transaction is the session's truth
        # until the store has consumed SessionCodeScanned back from the log.
        scanned = await repository.pending_scan(db, session_id)
        if scanned is not None:
            state = domain.with_pending_scan(state, scanned)
    if state is None or not may_see(principal, state):
        # Someone else's session does not exist for you.
        raise Refusal("not_found", "no such session", status_code=404)
    return state


async def view(db: AsyncSession, principal: Principal, session_id: uuid.UUID) -> SessionView:
    return await render(db, await visible(db, principal, session_id))


async def render(db: AsyncSession, state: ChargingSession) -> SessionView:
    meter = await repository.load_meter_reading(db, state.session_id)
    name = await repository.station_name(db, state.station_id) if state.station_id else None
    return session_view(state, meter, name)


async def list_sessions(
    db: AsyncSession,
    principal: Principal,
    *,
    scope: str | None,
    statuses: list[SessionStatus] | None,
    started_from: datetime | None,
    started_before: datetime | None,
    cursor: str | None,
    limit: int,
) -> SessionList:
    if scope is None:
        scope = (
            "organisation" if principal.has("operator") and not principal.has("driver") else "mine"
        )
    user_id: uuid.UUID | None = principal.user_id
    organisation_id = None
    if scope == "organisation":
        if not principal.has("operator") or principal.organisation_id is None:
            raise Refusal(
                "forbidden",
                "only an organisation's operators see its sessions",
                status_code=403,
            )
        user_id, organisation_id = None, principal.organisation_id
    page = await repository.list_sessions(
        db,
        user_id=user_id,
        organisation_id=organisation_id,
        statuses=statuses,
        started_from=started_from,
        started_before=started_before,
        after=decode_cursor(cursor) if cursor else None,
        limit=limit,
    )
    items = [await render(db, s) for s in page.states]
    return SessionList(
        items=items, next_cursor=encode_cursor(page.next_after) if page.next_after else None
    )


# --- control -----------------------------------------------------------------------------


async def stop(
    db: AsyncSession, sessions: Sessions, principal: Principal, session_id: uuid.UUID
) -> None:
    """The driver (or the station's operator) ends charging from the app."""
    state = await visible(db, principal, session_id)
    by: Literal["driver", "operator"] = (
        "driver" if state.user_id == principal.user_id else "operator"
    )
    result = domain.request_stop(
        state, requested_by=by, user_id=principal.user_id, now=sessions.clock()
    )
    if isinstance(result, Rejected):
        raise refuse(result)
    await emit(db, list[Event](result))


# --- timers ------------------------------------------------------------------------------


async def scans_backlogged(db: AsyncSession, sessions: Sessions) -> bool:
    """Whether enough recent scans wait too long for their authorisation that a new one
    should be refused (admission control; pricing and billing are behind)."""
    settings = sessions.settings
    late = settings.scan_backlog_late
    if late <= 0:
        return False
    count = await repository.late_scans(
        db, waited=timedelta(seconds=settings.scan_backlog_after_s), within=timedelta(minutes=1)
    )
    return count >= late


async def fire_due_timers(db: AsyncSession, sessions: Sessions, limit: int = 100) -> int:
    """Expire unscanned codes and abandon sessions that never started; returns how many
    timers were handled. Safe on many replicas at once (SKIP LOCKED)."""
    settings = sessions.settings
    now = sessions.clock()
    if not await repository.try_lock_store_shared(db):
        return 0  # a rebuild is running: its timers are not trustworthy yet
    due = await repository.claim_due_timers(db, now, limit)
    emitted: list[Event] = []
    for kind, session_id in due:
        state = await repository.load_session(db, session_id)
        if state is not None and kind == CODE_EXPIRY:
            # A scan that has not come back from the log yet still wins over expiry.
            if not await repository.is_scan_claimed(db, session_id):
                assert state.code_expires_at and state.session_started_at
                deadline = (
                    min(state.code_expires_at, state.session_started_at + settings.code_tolerance)
                    + settings.clock_skew
                )
                emitted += domain.expire_code(state, now=now, due=deadline)
        elif state is not None and kind == START_TIMEOUT:
            start_by = domain.start_deadline(state, settings.start_timeout, settings.start_backstop)
            if start_by is not None:
                emitted += domain.abandon(state, now=now, deadline=start_by)
        await repository.delete_timer(db, kind, session_id)
    await emit(db, emitted)
    return len(due)


# --- views ---------------------------------------------------------------------------------


def _money(value: Money | None) -> MoneyView | None:
    return MoneyView(amount_minor=value.amount_minor, currency=value.currency) if value else None


def energy_so_far(state: ChargingSession, meter: repository.MeterReading | None) -> int | None:
    if state.energy_wh is not None:
        return state.energy_wh
    if meter is None or state.meter_start_wh is None:
        return None
    return max(0, meter.energy_register_wh - state.meter_start_wh)


def cost_so_far(state: ChargingSession, meter: repository.MeterReading | None) -> CostView | None:
    """Final cost once calculated; before, the tariff snapshot applied to the meter so far."""
    if state.cost is not None:
        b = state.breakdown
        return CostView(
            final=True,
            total=MoneyView(amount_minor=state.cost.amount_minor, currency=state.cost.currency),
            total_excl_vat=b.total_excl_vat if b else None,
            total_vat=b.total_vat if b else None,
            breakdown=b.model_dump(mode="json") if b else None,
        )
    if state.tariff is None or state.started_at is None or state.time_zone is None:
        return None
    currency = state.tariff.currency
    if state.free_of_charge:
        return CostView(final=False, total=MoneyView(amount_minor=0, currency=currency))
    if state.charging_ended_at is not None and state.ended_at is not None:
        charging_end, end, energy = state.charging_ended_at, state.ended_at, state.energy_wh or 0
    elif meter is not None and meter.sampled_at > state.started_at:
        charging_end = end = meter.sampled_at
        energy = energy_so_far(state, meter) or 0
    else:
        charging_end = end = state.started_at
        energy = 0
    samples = (
        (TariffMeterSample(at=charging_end, energy_wh=energy),)
        if charging_end > state.started_at
        else ()
    )
    try:
        usage = SessionUsage(
            started_at=state.started_at,
            charging_ended_at=charging_end,
            ended_at=end,
            samples=samples,
        )
        breakdown = calculate_cost(state.tariff, usage, state.time_zone)
    except (ValueError, KeyError) as error:
        # An estimate must never break the page; the final cost comes from pricing-svc anyway.
        log.warning("cost so far unavailable for %s: %s", state.session_id, error)
        return None
    return CostView(
        final=False,
        total=MoneyView(amount_minor=breakdown.total_incl_vat, currency=breakdown.currency),
        total_excl_vat=breakdown.total_excl_vat,
        total_vat=breakdown.total_vat,
        breakdown=breakdown.model_dump(mode="json"),
    )


# The state's fields the view shows as they are.
_SHOWN_AS_FOLDED: set[str] = {
    "session_id",
    "station_id",
    "connector_id",
    "user_id",
    "code_kind",
    "session_started_at",
    "scanned_at",
    "authorized_at",
    "started_at",
    "charging_ended_at",
    "ended_at",
    "funding",
    "stop_requested_by",
    "stop_reason",
    "abandoned_reason",
    "failure_reason",
    "version",
}


def session_view(
    state: ChargingSession, meter: repository.MeterReading | None, station_name: str | None
) -> SessionView:
    assert state.status is not None
    limits = state.limits
    live_meter = meter if state.status in (SessionStatus.CHARGING, SessionStatus.STOPPING) else None
    return SessionView(
        **state.model_dump(include=_SHOWN_AS_FOLDED),
        status=state.status.value,
        outcome=state.outcome,
        station_name=station_name,
        energy_wh=energy_so_far(state, meter),
        power_w=live_meter.power_w if live_meter else None,
        soc_percent=meter.soc_percent if meter else None,
        meter_sampled_at=meter.sampled_at if meter else None,
        cost=cost_so_far(state, meter),
        hold_amount=_money(state.hold_amount),
        limits=LimitsView(
            max_energy_wh=limits.max_energy_wh,
            max_duration_s=limits.max_duration_s,
            max_cost=_money(limits.max_cost),
        )
        if limits
        else None,
        denial=DenialView(
            reason=state.denial_reason,
            message=state.denial_message,
            denied_by=state.denied_by,
            denied_at=state.denied_at,
        )
        if state.denial_reason
        else None,
        hold_released=_money(state.hold_released),
        receipt=ReceiptView(
            receipt_id=state.receipt_id,
            charged=MoneyView(
                amount_minor=state.charged.amount_minor, currency=state.charged.currency
            ),
            funding=state.funding,
            balance_after=_money(state.balance_after),
            outstanding_debt=_money(state.outstanding_debt),
            billed_at=state.billed_at,
        )
        if state.receipt_id and state.charged
        else None,
        updated_at=state.last_event_at,
    )


def encode_cursor(after: tuple[datetime, uuid.UUID]) -> str:
    return base64.urlsafe_b64encode(f"{after[0].isoformat()}|{after[1]}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        started, _, session_id = base64.urlsafe_b64decode(cursor.encode()).decode().partition("|")
        return datetime.fromisoformat(started), uuid.UUID(session_id)
    except (ValueError, binascii.Error, UnicodeDecodeError) as error:
        raise Refusal("invalid_cursor", "this cursor is not valid", status_code=400) from error
