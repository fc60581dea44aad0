"""A session's life as a timeline: each step the log recorded, in order, in words.

Pure: read from the folded state (every step keeps its time there), so the support desk sees what
happened without the event log being read again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from session_svc.domain import ChargingSession


@dataclass(frozen=True)
class Step:
    at: datetime
    kind: str  # the step's event, snake case (code_issued, scanned, ..., billed)
    text: str


def _money(m: object) -> str:
    amount, currency = getattr(m, "amount_minor", 0), getattr(m, "currency", "")
    return f"{amount / 100:.2f} {currency}"


def timeline(state: ChargingSession) -> list[Step]:
    """The steps of ``state`` that happened, oldest first (a tie keeps the life cycle's order)."""
    s = state
    where = f"{s.station_id} connector {s.connector_id}" if s.station_id else "the station"
    steps: list[tuple[datetime | None, str, str]] = [
        (s.session_started_at, "code_issued", f"Code shown on {where}"),
        (
            s.scanned_at,
            "scanned",
            "Driver scanned the code" if s.code_kind != "typed" else "Driver typed the code",
        ),
        (s.priced_at, "priced", f"Priced with tariff {s.tariff.id}" if s.tariff else "Priced"),
        (
            s.authorized_at,
            "authorised",
            f"Authorised: {_money(s.hold_amount)} held ({s.funding})"
            if s.hold_amount is not None
            else f"Authorised ({s.funding or 'free'})",
        ),
        (s.started_at, "charging_started", f"Charging started (meter {s.meter_start_wh} Wh)"),
        (s.stop_requested_at, "stop_requested", f"Stop requested by {s.stop_requested_by}"),
        (
            s.charging_ended_at or s.ended_at,
            "completed",
            f"Charging ended: {(s.energy_wh or 0) / 1000:.2f} kWh"
            + (f" ({s.stop_reason.replace('_', ' ')})" if s.stop_reason else ""),
        ),
        (s.cost_calculated_at, "cost_calculated", f"Cost calculated: {_money(s.cost)}"),
        (s.billed_at, "billed", f"Billed: {_money(s.charged)} charged"),
        (
            s.denied_at,
            "denied",
            f"Denied: {(s.denial_reason or 'unknown').replace('_', ' ')}"
            + (f" by {s.denied_by}" if s.denied_by else ""),
        ),
        (s.expired_at, "expired", "The code expired unused"),
        (s.abandoned_at, "abandoned", f"Cancelled: {s.abandoned_reason or 'not started'}"),
        (s.failed_at, "failed", f"Failed: {s.failure_reason or 'unknown'}"),
        (s.hold_released_at, "hold_released", f"Hold released: {_money(s.hold_released)}"),
    ]
    happened = [(at, i, kind, text) for i, (at, kind, text) in enumerate(steps) if at is not None]
    return [Step(at, kind, text) for at, _, kind, text in sorted(happened)]
