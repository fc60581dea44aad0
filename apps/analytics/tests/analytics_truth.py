"""Helpers the analytics tests share: report-vs-truth comparison and a tiny projection."""

from __future__ import annotations

from collections import Counter
from typing import Any

from plugpay_analytics.generator import GroundTruth
from plugpay_events.envelope import Envelope


def assert_report_matches(summary: dict[str, Any], truth: GroundTruth) -> None:
    """The report's totals are the live stores' totals: exactly, to the cent and the Wh."""
    totals = summary["totals"]
    assert totals["sessions"] == truth.completed
    assert totals["energy_wh"] == truth.energy_wh
    assert {r["currency"]: r["revenue_minor"] for r in summary["revenue"]} == truth.revenue_minor
    assert {r["currency"]: r["cost_minor"] for r in summary["cost"]} == truth.cost_minor
    assert totals["codes_issued"] == truth.codes_issued
    assert totals["scanned"] == truth.scanned
    assert totals["priced"] == truth.priced
    assert totals["authorized"] == truth.authorized
    assert totals["started"] == truth.started
    assert totals["billed"] == truth.billed
    assert totals["expired"] == truth.codes_expired
    assert totals["free_sessions"] == truth.free_sessions
    assert totals["charging_s"] == truth.charging_s
    denials = {r["reason"]: r["sessions"] for r in summary["losses"] if r["outcome"] == "denied"}
    assert denials == dict(truth.denials)
    abandoned = {
        r["reason"]: r["sessions"] for r in summary["losses"] if r["outcome"] == "abandoned"
    }
    assert abandoned == dict(truth.abandoned)
    per_station = {r["station_id"]: r for r in summary["per_station"]}
    assert {s: r["sessions"] for s, r in per_station.items()} == dict(truth.per_station_sessions)
    assert {s: r["energy_wh"] for s, r in per_station.items()} == dict(truth.per_station_energy_wh)
    assert {s: r["revenue_minor"] for s, r in per_station.items()} == dict(
        truth.per_station_revenue_minor
    )
    assert {r["day"]: r["sessions"] for r in summary["per_day"]} == dict(
        truth.per_local_day_sessions
    )
    assert sum(r["sessions"] for r in summary["heatmap"]) == truth.completed
    # Utilisation from connector status: its charging time is the sessions' charging time.
    assert summary["utilisation"]["charging"]["seconds"] == truth.charging_s
    assert summary["utilisation"]["unavailable"]["seconds"] == 20 * 3600  # the one fault
    assert summary["undecodable"] == 0


class SessionTotals:
    """A tiny read model (``plugpay_events.replay.Projection``): completed sessions, energy and
    revenue, counted once per session even when the log holds an event twice."""

    name = "analytics-test.session-totals"

    def __init__(self) -> None:
        self.completed: dict[str, int] = {}
        self.revenue: Counter[str] = Counter()
        self.billed: set[str] = set()
        self.pending: list[Envelope] = []
        self.resets = 0
        self.flushes = 0
        self.closed = False

    async def reset(self) -> None:
        self.resets += 1
        self.completed.clear()
        self.revenue.clear()
        self.billed.clear()

    async def apply(self, envelope: Envelope) -> None:
        self.pending.append(envelope)

    async def flush(self) -> None:
        self.flushes += 1
        for envelope in self.pending:
            event = envelope.event()
            if envelope.type == "SessionCompleted":
                self.completed.setdefault(envelope.aggregate_id, event.energy_wh)  # type: ignore[attr-defined]
            elif envelope.type == "SessionBilled" and envelope.aggregate_id not in self.billed:
                self.billed.add(envelope.aggregate_id)
                charged = event.charged  # type: ignore[attr-defined]
                self.revenue[charged.currency] += charged.amount_minor
        self.pending.clear()

    async def close(self) -> None:
        self.closed = True
