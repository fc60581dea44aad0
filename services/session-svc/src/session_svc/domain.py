"""The charging-session aggregate: pure, no I/O, no framework.

A session's state is a fold over its events (``apply``, after eventsourcing's aggregate7
``mutate``: one ``match`` over the event types says what each event does to the state).
Commands (``scan``, ``request_stop``, ``expire_code``, ``abandon``) look at the state and return
new events or a ``Rejected`` value with a machine-readable reason; they never change the state
themselves.

Folding events read from the log is tolerant, because the log is the truth and delivery is
at-least-once: an event already applied (same event id) or one that repeats the transition the
session already made is a no-op, and an event the state machine does not allow is skipped and
recorded in ``ignored`` instead of corrupting the state.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

from plugpay_events.contracts.sessions import (
    ChargingStarted,
    SessionAbandoned,
    SessionAuthorized,
    SessionBilled,
    SessionCodeExpired,
    SessionCodeIssued,
    SessionCodeScanned,
    SessionCompleted,
    SessionCostCalculated,
    SessionDenied,
    SessionFailed,
    SessionHoldReleased,
    SessionLimits,
    SessionPriced,
    SessionStopRequested,
)
from plugpay_events.envelope import Event
from plugpay_events.session_code import SessionCodeClaims
from plugpay_events.types import Money
from plugpay_tariffs.calculator import CostBreakdown
from plugpay_tariffs.model import Tariff
from pydantic import BaseModel, ConfigDict


class SessionStatus(StrEnum):
    """Where a charging session is in patent FIG. 3."""

    CODE_ISSUED = "code_issued"
    SCANNED = "scanned"
    PRICED = "priced"
    AUTHORISED = "authorised"
    CHARGING = "charging"
    STOPPING = "stopping"
    COMPLETED = "completed"
    COST_CALCULATED = "cost_calculated"
    BILLED = "billed"
    DENIED = "denied"
    EXPIRED = "expired"
    ABANDONED = "abandoned"
    FAILED = "failed"


S = SessionStatus
# Nothing leaves these except a hold release, which is a fact about money, not a transition,
# and a station's proven start after session-svc's backstop gave up on it (``overruled_abandon``).
TERMINAL: frozenset[SessionStatus] = frozenset(
    {S.BILLED, S.DENIED, S.EXPIRED, S.ABANDONED, S.FAILED}
)
# The main line, in order: a session never moves backwards on it.
MAIN_LINE: tuple[SessionStatus, ...] = (
    S.CODE_ISSUED,
    S.SCANNED,
    S.PRICED,
    S.AUTHORISED,
    S.CHARGING,
    S.STOPPING,
    S.COMPLETED,
    S.COST_CALCULATED,
    S.BILLED,
)
# Which statuses may precede the status an event leads to.
ALLOWED_FROM: dict[SessionStatus, frozenset[SessionStatus]] = {
    S.SCANNED: frozenset({S.CODE_ISSUED}),
    S.EXPIRED: frozenset({S.CODE_ISSUED}),
    S.PRICED: frozenset({S.SCANNED}),
    S.DENIED: frozenset({S.SCANNED, S.PRICED}),
    S.AUTHORISED: frozenset({S.PRICED}),
    S.CHARGING: frozenset({S.AUTHORISED}),
    S.ABANDONED: frozenset({S.AUTHORISED}),
    S.STOPPING: frozenset({S.AUTHORISED, S.CHARGING}),
    S.COMPLETED: frozenset({S.CHARGING, S.STOPPING}),
    S.COST_CALCULATED: frozenset({S.COMPLETED}),
    S.BILLED: frozenset({S.COST_CALCULATED}),
    S.FAILED: frozenset(
        {S.SCANNED, S.PRICED, S.AUTHORISED, S.CHARGING, S.STOPPING, S.COMPLETED, S.COST_CALCULATED}
    ),
}
HOLD_RELEASABLE: frozenset[SessionStatus] = frozenset({S.DENIED, S.ABANDONED, S.FAILED})

CodeKind = Literal["qr", "typed"]


@dataclass(frozen=True)
class Rejected:
    """A command said no: ``reason`` for machines, ``message`` for people."""

    reason: str
    message: str


class ChargingSession(BaseModel):
    """The state of one charging session, as its events made it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    session_id: uuid.UUID
    status: SessionStatus | None = None
    version: int = 0
    applied: tuple[uuid.UUID, ...] = ()
    ignored: tuple[str, ...] = ()
    last_event_at: datetime | None = None
    # code issued (patent claim 1 b: station id, session id, start time)
    station_id: str | None = None
    connector_id: int | None = None
    session_started_at: datetime | None = None
    code: str | None = None
    token_id: str | None = None
    code_expires_at: datetime | None = None
    # scanned (claim 1 d: the user's identity joined to the code's data)
    user_id: uuid.UUID | None = None
    organisation_id: uuid.UUID | None = None
    user_groups: tuple[str, ...] = ()
    code_kind: CodeKind | None = None
    scanned_at: datetime | None = None
    # priced
    station_organisation_id: uuid.UUID | None = None
    tariff: Tariff | None = None
    time_zone: str | None = None
    max_power_w: int | None = None
    free_of_charge: bool = False
    priced_at: datetime | None = None
    # authorised
    funding: Literal["wallet", "card", "free"] | None = None
    hold_id: uuid.UUID | None = None
    hold_amount: Money | None = None
    limits: SessionLimits | None = None
    authorized_at: datetime | None = None
    start_deadline: datetime | None = None
    # charging
    transaction_id: str | None = None
    meter_start_wh: int | None = None
    started_at: datetime | None = None
    # stop requested
    stop_requested_by: str | None = None
    stop_requested_at: datetime | None = None
    # completed
    meter_stop_wh: int | None = None
    energy_wh: int | None = None
    charging_ended_at: datetime | None = None
    ended_at: datetime | None = None
    stop_reason: str | None = None
    # cost and bill
    cost: Money | None = None
    breakdown: CostBreakdown | None = None
    cost_calculated_at: datetime | None = None
    receipt_id: uuid.UUID | None = None
    charged: Money | None = None
    balance_after: Money | None = None
    outstanding_debt: Money | None = None
    billed_at: datetime | None = None
    # unhappy endings
    denial_reason: str | None = None
    denial_message: str | None = None
    denied_by: str | None = None
    denied_at: datetime | None = None
    expired_at: datetime | None = None
    abandoned_reason: str | None = None
    abandoned_at: datetime | None = None
    failure_reason: str | None = None
    failed_at: datetime | None = None
    hold_released: Money | None = None
    hold_released_at: datetime | None = None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def outcome(self) -> str | None:
        """How a finished session ended, in words the app and the support desk use."""
        if self.status is None or not (self.terminal or self.status is S.COMPLETED):
            return None
        if self.status in (S.DENIED, S.EXPIRED, S.ABANDONED, S.FAILED):
            return self.status.value
        if self.stop_requested_by == "driver" or self.stop_reason == "driver_stopped":
            return "stopped_by_driver"
        if self.stop_requested_by == "limit" or self.stop_reason == "limit_reached":
            return "stopped_at_limit"
        return "completed"


# --- folding -------------------------------------------------------------------------------

# What an event does: the status it leads to (None: unchanged) and the fields it sets.
Change = tuple[SessionStatus | None, dict[str, object]]


def _kept(event: Event, *names: str) -> dict[str, object]:
    """The event's fields that the state keeps under the same names."""
    return {name: getattr(event, name) for name in names}


def mutate(event: Event, state: ChargingSession) -> Change:
    """What an event does to ``state``: the status it leads to and the fields it sets."""
    match event:
        case SessionCodeIssued(expires_at=expires_at):
            where = _kept(event, "station_id", "connector_id", "session_started_at")
            # After an early scan (the scan needs no Issued first) the code's facts only fill in.
            first = S.CODE_ISSUED if state.status is None else None
            return first, {
                **where,
                **_kept(event, "code", "token_id"),
                "code_expires_at": expires_at,
            }
        case SessionCodeScanned(user_groups=groups):
            # What the verified code said: the session may be scanned before its Issued arrives.
            code = _kept(event, "station_id", "connector_id", "session_started_at")
            scanner = _kept(event, "user_id", "organisation_id", "code_kind", "scanned_at")
            return S.SCANNED, {**code, **scanner, "user_groups": tuple(groups)}
        case SessionCodeExpired():
            return S.EXPIRED, _kept(event, "expired_at")
        case SessionPriced():
            station = _kept(event, "station_organisation_id", "time_zone", "max_power_w")
            return S.PRICED, {**station, **_kept(event, "tariff", "free_of_charge", "priced_at")}
        case SessionDenied(reason=reason, message=message):
            denied = _kept(event, "denied_by", "denied_at")
            return S.DENIED, {"denial_reason": reason, "denial_message": message, **denied}
        case SessionAuthorized():
            hold = _kept(event, "funding", "hold_id", "hold_amount", "limits")
            return S.AUTHORISED, {**hold, **_kept(event, "authorized_at", "start_deadline")}
        case ChargingStarted():
            # A stop requested before the station confirmed the start still stands.
            target = S.STOPPING if state.status is S.STOPPING else S.CHARGING
            started = _kept(event, "transaction_id", "meter_start_wh", "started_at")
            if overruled_abandon(state):
                # The station proves the start our backstop gave up on: the energy is billed.
                started |= {"abandoned_reason": None, "abandoned_at": None}
            return target, started
        case SessionStopRequested(requested_by=by, requested_at=at):
            return S.STOPPING, {"stop_requested_by": by, "stop_requested_at": at}
        case SessionCompleted():
            meter = _kept(event, "transaction_id", "meter_start_wh", "meter_stop_wh", "energy_wh")
            ending = _kept(event, "started_at", "charging_ended_at", "ended_at", "stop_reason")
            return S.COMPLETED, {**meter, **ending}
        case SessionCostCalculated(total=total, calculated_at=at):
            costed = {"cost": total, "breakdown": event.breakdown, "cost_calculated_at": at}
            return S.COST_CALCULATED, costed
        case SessionBilled():
            bill = _kept(event, "receipt_id", "charged", "balance_after", "outstanding_debt")
            return S.BILLED, {**bill, "billed_at": event.billed_at}
        case SessionAbandoned(reason=reason, abandoned_at=at):
            return S.ABANDONED, {"abandoned_reason": reason, "abandoned_at": at}
        case SessionFailed(reason=reason, failed_at=at):
            return S.FAILED, {"failure_reason": reason, "failed_at": at}
        case SessionHoldReleased(released=released, released_at=at):
            return None, {"hold_released": released, "hold_released_at": at}
    raise TypeError(f"{type(event).__name__} is not a charging-session event")


def transition_problem(
    state: ChargingSession, event: Event, target: SessionStatus | None = None
) -> str | None:
    """Why ``event`` cannot happen to ``state`` now, or None if it can (``target``: what
    ``mutate`` says the event leads to, if the caller knows it already)."""
    if target is None:
        target, _ = mutate(event, state)
    current = state.status
    if isinstance(event, SessionHoldReleased):
        if current not in HOLD_RELEASABLE and state.started_at is None:
            return f"no hold to release while {current}"
        if state.hold_released_at is not None:
            return "the hold was already released"
        return None
    if isinstance(event, SessionCodeIssued):
        if current is None or state.code is None:
            return None  # first, or after the scan that overtook it in the log
        return "the code was already issued"
    if current is None:
        if isinstance(event, SessionCodeScanned):
            return None  # a verified code scanned before its Issued reached the log
        return f"{event.type} before the code was issued"
    assert target is not None
    not_started = current is S.STOPPING and state.started_at is None
    if isinstance(event, ChargingStarted | SessionAbandoned) and not_started:
        return None  # the stop was asked for before the station confirmed the start
    if isinstance(event, ChargingStarted) and overruled_abandon(state):
        return None
    if current not in ALLOWED_FROM[target]:
        return f"{event.type} cannot follow {current}"
    return None


def overruled_abandon(state: ChargingSession) -> bool:
    """Abandoned on session-svc's start backstop, a guess made while the station's word was
    delayed (a broker outage): its ChargingStarted, arriving later, is the truth and wins.
    station-gateway's own abandons are decided under the connector lock, so no start follows
    them; billing has voided the hold by then and bills the delivered energy without it."""
    return state.status is S.ABANDONED and state.abandoned_reason == START_TIMEOUT


def is_repeat(state: ChargingSession, event: Event, target: SessionStatus | None = None) -> bool:
    """The session already made the transition this event describes (a re-sent event)."""
    if target is None:
        target, _ = mutate(event, state)
    if isinstance(event, SessionHoldReleased):
        return state.hold_released_at is not None
    if isinstance(event, SessionCodeIssued):
        return state.code is not None
    if isinstance(event, SessionStopRequested):
        return state.stop_requested_at is not None
    if isinstance(event, ChargingStarted):
        return state.started_at is not None
    return target is not None and target == state.status


def apply(
    state: ChargingSession, event: Event, event_id: uuid.UUID | None = None
) -> ChargingSession:
    """Fold one event from the log into the state; duplicates and illegal events are no-ops.

    ``event_id`` makes redeliveries of the very same event harmless; a different event that
    repeats the last transition (a timer that fired twice) is harmless too.
    """
    if event_id is not None and event_id in state.applied:
        return state
    # One mutate and one copy per event: a rebuild folds every event of the log through here.
    target, changes = mutate(event, state)
    remember = {} if event_id is None else {"applied": (*state.applied, event_id)}
    if is_repeat(state, event, target):
        return state.model_copy(update=remember) if remember else state
    problem = transition_problem(state, event, target)
    if problem is not None:
        # Skip rather than corrupt; kept so the support desk can see what the log said.
        return state.model_copy(update={**remember, "ignored": (*state.ignored, problem)[-20:]})
    update: dict[str, object] = {**changes, **remember}
    if target is not None:
        update["status"] = target
    update["version"] = state.version + 1
    occurred = _occurred(event)
    if occurred is None or (state.last_event_at is not None and occurred < state.last_event_at):
        occurred = state.last_event_at  # a late Issued does not move the session back in time
    update["last_event_at"] = occurred
    return state.model_copy(update=update)


# Every charging-session event (``mutate``'s cases) and the field that says when it happened.
OCCURRED_FIELD: dict[type[Event], str] = {
    SessionCodeIssued: "session_started_at",
    SessionCodeScanned: "scanned_at",
    SessionCodeExpired: "expired_at",
    SessionPriced: "priced_at",
    SessionDenied: "denied_at",
    SessionAuthorized: "authorized_at",
    ChargingStarted: "started_at",
    SessionStopRequested: "requested_at",
    SessionCompleted: "ended_at",
    SessionCostCalculated: "calculated_at",
    SessionBilled: "billed_at",
    SessionAbandoned: "abandoned_at",
    SessionFailed: "failed_at",
    SessionHoldReleased: "released_at",
}


def _occurred(event: Event) -> datetime | None:
    value = getattr(event, OCCURRED_FIELD.get(type(event), ""), None)
    return value if isinstance(value, datetime) else None


def fold(
    session_id: uuid.UUID, events: Iterable[tuple[uuid.UUID | None, Event]]
) -> ChargingSession:
    """The state after ``events`` (pairs of event id and event), from nothing."""
    state = ChargingSession(session_id=session_id)
    for event_id, event in events:
        state = apply(state, event, event_id)
    return state


# --- commands ------------------------------------------------------------------------------


def issued_from_code(claims: SessionCodeClaims) -> ChargingSession:
    """The session as its verified code proves it was issued, for a scan that arrives before
    the code's ``SessionCodeIssued`` (the typed code is not known yet: only the log has it)."""
    said = claims.model_dump(include={"session_id", "station_id", "connector_id", "token_id"})
    return ChargingSession(
        **said,
        status=S.CODE_ISSUED,
        session_started_at=claims.session_started_at,
        code_expires_at=claims.expires_at,
    )


def online_for_code(
    online: bool, presence_changed_at: datetime | None, *, session_started_at: datetime
) -> bool:
    """Whether a station counts as online for a code it showed: the gateway makes codes only
    for a connected station, so only an offline heard of at or after the code's issue (the
    second it was made) counts; an older one is the store not having heard of the
    reconnection yet."""
    if online:
        return True
    return presence_changed_at is not None and presence_changed_at < session_started_at


def scan(
    state: ChargingSession,
    *,
    user_id: uuid.UUID,
    organisation_id: uuid.UUID | None,
    user_groups: Iterable[str],
    code_kind: CodeKind,
    now: datetime,
    guest: bool = False,
    clock_skew: timedelta = timedelta(seconds=30),
    tolerance: timedelta = timedelta(minutes=5),
    presented: tuple[str, int, str] | None = None,
) -> SessionCodeScanned | Rejected:
    """A logged-in driver presents this session's code (patent claim 1 d-e).

    ``presented`` is what a signed QR code says (station, connector, token id); it must be
    the code this session issued, not one from another station.
    """
    if state.status is None:
        return Rejected("code_invalid", "this code is not known")
    if presented is not None and presented != (
        state.station_id,
        state.connector_id,
        state.token_id,
    ):
        return Rejected("code_invalid", "this code does not belong to this station and connector")
    if state.status is S.EXPIRED:
        return Rejected("code_expired", "the code has expired; ask the station for a new one")
    if state.status is not S.CODE_ISSUED:
        return Rejected("code_used", "this code was already used")
    assert state.code_expires_at and state.station_id and state.connector_id
    assert state.session_started_at is not None
    if now > min(state.code_expires_at, state.session_started_at + tolerance) + clock_skew:
        return Rejected("code_expired", "the code has expired; ask the station for a new one")
    return SessionCodeScanned(
        **_at_connector(state),
        session_started_at=state.session_started_at,
        scanned_at=now,
        user_id=user_id,
        organisation_id=organisation_id,
        user_groups=tuple(sorted(set(user_groups))),
        code_kind=code_kind,
        guest=guest,
    )


def _at_connector(state: ChargingSession) -> dict[str, Any]:
    """Where an event about the session happens: the session, its station and connector."""
    assert state.station_id and state.connector_id
    return {
        "session_id": state.session_id,
        "station_id": state.station_id,
        "connector_id": state.connector_id,
    }


def request_stop(
    state: ChargingSession,
    *,
    requested_by: Literal["driver", "limit", "operator", "system"],
    user_id: uuid.UUID | None,
    now: datetime,
) -> list[SessionStopRequested] | Rejected:
    """Ask the station to stop; asking again while it stops is answered with nothing new."""
    if state.status is S.STOPPING:
        return []
    if state.status not in (S.AUTHORISED, S.CHARGING):
        return Rejected("not_charging", f"the session is {state.status}, there is nothing to stop")
    return [
        SessionStopRequested(
            session_id=state.session_id,
            requested_by=requested_by,
            user_id=user_id,
            requested_at=now,
        )
    ]


def expire_code(
    state: ChargingSession, *, now: datetime, due: datetime
) -> list[SessionCodeExpired]:
    """A code still unscanned when it can no longer be accepted (``due``)."""
    if state.status is not S.CODE_ISSUED or now < due:
        return []
    return [SessionCodeExpired(**_at_connector(state), expired_at=now)]


def abandon(state: ChargingSession, *, now: datetime, deadline: datetime) -> list[SessionAbandoned]:
    """Authorised but never started by ``deadline``: billing voids the hold on this."""
    if state.status is not S.AUTHORISED or now < deadline:
        return []
    return [SessionAbandoned(**_at_connector(state), reason="start_timeout", abandoned_at=now)]


# The timers a session may have pending (rows in the store, fired by session-svc's timer task).
CODE_EXPIRY = "code_expiry"
START_TIMEOUT = "start_timeout"


def start_deadline(
    state: ChargingSession, start_timeout: timedelta | None, backstop: timedelta = timedelta(0)
) -> datetime | None:
    """When an authorised session is abandoned here: billing's deadline, or sooner if
    configured, plus ``backstop`` (station-gateway owns the deadline and decides first)."""
    if state.status is not S.AUTHORISED or state.start_deadline is None:
        return None
    if start_timeout is None or state.authorized_at is None:
        return state.start_deadline + backstop
    return min(state.start_deadline, state.authorized_at + start_timeout) + backstop


def with_pending_scan(
    state: ChargingSession | None, scanned: SessionCodeScanned
) -> ChargingSession:
    """The session as it is once ``scanned`` is applied, for a reader that must not wait for
    the store to consume the scan back from the log (read-your-writes). A state that has moved
    on already is returned unchanged."""
    if state is None:
        # The store lost the session (a rebuild in progress): the scan alone knows enough, it
        # carries the code's station, connector and issue time.
        state = ChargingSession(session_id=scanned.session_id, status=S.CODE_ISSUED)
    if state.status is not S.CODE_ISSUED:
        return state
    return apply(state, scanned)
