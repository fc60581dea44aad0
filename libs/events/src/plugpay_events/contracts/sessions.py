"""The charging-session flow of patent FIG. 3, keyed by session id on ``plugpay.sessions``.

Names of SessionCodeScanned, SessionAuthorized and SessionCompleted are fixed by the product brief.
"""

from __future__ import annotations

import uuid
from typing import Any, Literal

from plugpay_tariffs.calculator import CostBreakdown
from plugpay_tariffs.model import Tariff
from pydantic import BaseModel, ConfigDict, Field

from plugpay_events.envelope import Event
from plugpay_events.registry import register, upcaster
from plugpay_events.topics import METER, SESSIONS
from plugpay_events.types import Money, UtcDatetime, WattHours

__all__ = [
    "DENIAL_REASONS",
    "ChargingStarted",
    "DenialReason",
    "MeterClaim",
    "MeterJudgement",
    "MeterSample",
    "MeterValuesReported",
    "SessionAbandoned",
    "SessionAuthorized",
    "SessionBilled",
    "SessionCodeExpired",
    "SessionCodeIssued",
    "SessionCodeScanned",
    "SessionCompleted",
    "SessionCostCalculated",
    "SessionDenied",
    "SessionFailed",
    "SessionFlagged",
    "SessionHoldReleased",
    "SessionLimits",
    "SessionPriced",
    "SessionReviewed",
    "SessionStopRequested",
    "StopReason",
]

StationId = str
DenialReason = Literal[
    "code_expired",
    "code_used",
    "code_invalid",
    "station_unknown",
    "station_offline",
    "connector_unavailable",
    "access_denied",
    "account_unverified",
    "insufficient_funds",
    "payment_declined",
    "no_payment_method",
    "station_rejected",
    "internal_error",
]
DENIAL_REASONS: tuple[str, ...] = DenialReason.__args__  # type: ignore[attr-defined]

StopReason = Literal[
    "ev_disconnected",
    "driver_stopped",
    "limit_reached",
    "local",
    "remote",
    "power_loss",
    "reboot",
    "emergency_stop",
    "deauthorized",
    "other",
    # the station reported the connector free but never this transaction's end; the gateway
    # completed it from the last reading it had
    "transaction_lost",
    # the station was not seen for the gateway's unreachable-transaction bound; completed from
    # the last reading it had
    "station_unreachable",
]


class _SessionEvent(Event):
    topic = SESSIONS
    aggregate_field = "session_id"
    session_id: uuid.UUID


class _ConnectorSessionEvent(_SessionEvent):
    """A session's step on one connector of one station."""

    station_id: StationId
    connector_id: int = Field(ge=1)


@register
class SessionCodeIssued(_ConnectorSessionEvent):
    """The gateway made a one-time code for a connector; the station shows it as QR and text."""

    type = "SessionCodeIssued"
    session_started_at: UtcDatetime
    expires_at: UtcDatetime
    code: str = Field(min_length=4, max_length=16, description="typed alphanumeric code")
    qr_url: str = Field(description="the QR content: {public base URL}/s/{MAC'd code}")
    token_id: str = Field(description="the QR code's nonce (base64url), to make it single-use")


@register
class SessionCodeScanned(_ConnectorSessionEvent):
    """A logged-in driver presented a valid code (patent claim 1 d-e).

    v2 added ``code_kind``; v1 events are upcast as QR scans, the only way then. v3 added
    ``guest`` (a payer without an account, EU ad hoc charging); older events were drivers'.
    """

    type = "SessionCodeScanned"
    version = 3
    session_started_at: UtcDatetime
    scanned_at: UtcDatetime
    user_id: uuid.UUID
    organisation_id: uuid.UUID | None = None
    user_groups: tuple[str, ...] = ()
    code_kind: Literal["qr", "typed"]
    # The station is told how the session is paid (2.1: idToken type DirectPayment).
    guest: bool = False


@upcaster("SessionCodeScanned", 1)
def _scanned_v1_to_v2(payload: dict[str, Any]) -> dict[str, Any]:
    return {**payload, "code_kind": "qr"}


@upcaster("SessionCodeScanned", 2)
def _scanned_v2_to_v3(payload: dict[str, Any]) -> dict[str, Any]:
    return {**payload, "guest": False}


@register
class SessionPriced(_ConnectorSessionEvent):
    """Access granted and the tariff fixed: the snapshot every later cost is computed from."""

    type = "SessionPriced"
    user_id: uuid.UUID
    station_organisation_id: uuid.UUID
    tariff: Tariff
    time_zone: str
    max_power_w: int = Field(gt=0)
    free_of_charge: bool = False
    priced_at: UtcDatetime


@register
class SessionDenied(_ConnectorSessionEvent):
    """Any step refused the session; ``reason`` is machine-readable, ``message`` for people."""

    type = "SessionDenied"
    user_id: uuid.UUID | None = None
    reason: DenialReason
    message: str
    denied_by: str
    denied_at: UtcDatetime


class SessionLimits(BaseModel):
    """What the reserved funds buy; the gateway stops the transaction at the first one reached."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_energy_wh: WattHours | None = None
    max_duration_s: int | None = Field(default=None, ge=0)
    max_cost: Money | None = None


@register
class SessionAuthorized(_ConnectorSessionEvent):
    """Funds are held; the station may start (patent FIG. 3 blocks 332-336)."""

    type = "SessionAuthorized"
    user_id: uuid.UUID
    funding: Literal["wallet", "card", "free"]
    hold_id: uuid.UUID | None
    hold_amount: Money
    limits: SessionLimits
    authorized_at: UtcDatetime
    start_deadline: UtcDatetime = Field(description="abandoned if charging has not started by then")


@register
class ChargingStarted(_ConnectorSessionEvent):
    """The station confirmed the start of a transaction for this session."""

    type = "ChargingStarted"
    transaction_id: str
    meter_start_wh: WattHours
    started_at: UtcDatetime


class MeterSample(BaseModel):
    """One reading of the energy register (cumulative Wh) and optionally the power."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sampled_at: UtcDatetime
    energy_wh: WattHours
    power_w: int | None = Field(default=None, ge=0)


@register
class MeterValuesReported(_ConnectorSessionEvent):
    """Readings during a transaction; its own high-volume topic, same key as the session."""

    type = "MeterValuesReported"
    topic = METER
    transaction_id: str
    samples: tuple[MeterSample, ...] = Field(min_length=1)
    soc_percent: int | None = Field(default=None, ge=0, le=100)


@register
class SessionStopRequested(_SessionEvent):
    """Someone asked the station to stop: the driver in the app, or a reached limit."""

    type = "SessionStopRequested"
    requested_by: Literal["driver", "limit", "operator", "system"]
    user_id: uuid.UUID | None = None
    requested_at: UtcDatetime


MeterOutcome = Literal["accepted", "corrected", "held"]


class MeterClaim(BaseModel):
    """What the station reported for a transaction, before any judgement."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    meter_start_wh: int
    meter_stop_wh: int
    energy_wh: WattHours
    started_at: UtcDatetime
    ended_at: UtcDatetime


class MeterJudgement(BaseModel):
    """The gateway's plausibility judgement of a transaction's meter evidence.

    ``accepted``: the session's values are the station's claim. ``corrected``: they were
    derived from the plausible part of the evidence by a fixed rule. ``held``: they are the
    plausible part only, and an operator must review the session before more is billed.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    outcome: MeterOutcome
    reasons: tuple[str, ...] = Field(
        default=(), description="machine-readable codes, e.g. register_jump, stop_in_future"
    )
    claimed: MeterClaim
    max_power_w: int = Field(gt=0, description="the connector's registered maximum")
    max_energy_wh: WattHours = Field(
        description="the physical bound: max power over authorisation to the stop we received"
    )
    clock_skew_s: int = Field(default=0, ge=0, description="the station clock's offset we saw")


@register
class SessionCompleted(_ConnectorSessionEvent):
    """The station ended the transaction: the completed charging-session data (claim 6)."""

    type = "SessionCompleted"
    transaction_id: str
    meter_start_wh: WattHours
    meter_stop_wh: WattHours
    energy_wh: WattHours
    started_at: UtcDatetime
    charging_ended_at: UtcDatetime
    ended_at: UtcDatetime
    stop_reason: StopReason
    samples: tuple[MeterSample, ...] = ()
    judgement: MeterJudgement | None = Field(
        default=None,
        description="how the station's meter evidence was judged; the energy, times and samples"
        " above are the billable ones. None: completed before the gateway judged evidence",
    )

    @property
    def held_for_review(self) -> bool:
        """Only the plausible part may be captured until an operator decides."""
        return self.judgement is not None and self.judgement.outcome == "held"


@register
class SessionFlagged(_ConnectorSessionEvent):
    """The gateway did not bill a session's meter evidence as claimed: only its plausible part
    is in ``SessionCompleted``. ``judgement.outcome`` says what follows: ``corrected`` — billed
    by a fixed rule, listed for operators to see; ``held`` — an operator of the station's
    organisation decides the rest (``SessionReviewed``). Emitted with the ``SessionCompleted``
    it flags, in one transaction."""

    type = "SessionFlagged"
    transaction_id: str
    judgement: MeterJudgement
    billed_energy_wh: WattHours = Field(description="the plausible energy SessionCompleted bills")
    flagged_at: UtcDatetime


ReviewDecision = Literal["approved", "voided"]


@register
class SessionReviewed(_SessionEvent):
    """An operator decided a flagged session: billed in total ``approved_total`` (never above
    the driver's authorised maximum; 0 when voided). ``charged`` and ``refunded`` are the money
    the decision moved on top of what was billed before it."""

    type = "SessionReviewed"
    user_id: uuid.UUID
    organisation_id: uuid.UUID
    decision: ReviewDecision
    approved_total: Money
    billed_before: Money
    charged: Money
    refunded: Money
    note: str = Field(default="", max_length=500)
    reviewed_by: uuid.UUID
    reviewed_at: UtcDatetime


@register
class SessionCostCalculated(_SessionEvent):
    """The final cost from the tariff snapshot, line by line."""

    type = "SessionCostCalculated"
    user_id: uuid.UUID
    station_id: StationId
    total: Money
    breakdown: CostBreakdown
    calculated_at: UtcDatetime
    free_of_charge: bool = Field(
        default=False, description="the access policy waived the price; total and lines are 0"
    )


@register
class SessionBilled(_SessionEvent):
    """The cost was captured and the rest of the hold released; the receipt exists."""

    type = "SessionBilled"
    user_id: uuid.UUID
    receipt_id: uuid.UUID
    charged: Money
    funding: Literal["wallet", "card", "free"]
    balance_after: Money | None = None
    outstanding_debt: Money | None = None
    billed_at: UtcDatetime
    # The funding split of ``charged`` (None from producers that predate it).
    wallet_charged: Money | None = None
    card_charged: Money | None = None
    # What the final cost claimed above the authorised maximum: not charged, the operator's.
    capped: Money | None = None


@register
class SessionCodeExpired(_ConnectorSessionEvent):
    """Nobody scanned the code in time."""

    type = "SessionCodeExpired"
    expired_at: UtcDatetime


@register
class SessionAbandoned(_ConnectorSessionEvent):
    """Authorised but charging never started before the deadline; billing voids the hold."""

    type = "SessionAbandoned"
    # connector_busy: another session holds the connector; code_superseded: the station asked
    # for a newer code on the connector before this one was authorised
    reason: Literal[
        "start_timeout", "station_rejected", "station_offline", "connector_busy", "code_superseded"
    ]
    abandoned_at: UtcDatetime


@register
class SessionFailed(_SessionEvent):
    """The session cannot finish normally (e.g. station faulted); billing voids the hold."""

    type = "SessionFailed"
    reason: str
    failed_at: UtcDatetime


@register
class SessionHoldReleased(_SessionEvent):
    """Billing voided a hold without charging (abandoned, failed or denied after the hold)."""

    type = "SessionHoldReleased"
    user_id: uuid.UUID
    hold_id: uuid.UUID
    released: Money
    released_at: UtcDatetime
