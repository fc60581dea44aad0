"""A session's timeline: the steps that happened, oldest first, in words."""

from __future__ import annotations

import uuid

from plugpay_events.envelope import Event
from session_stories import Story
from session_svc.domain import ChargingSession, fold
from session_svc.timeline import timeline


def folded(events: list[Event]) -> ChargingSession:
    # The meter has its own summary: not a session event.
    kept = [e for e in events if e.type != "MeterValuesReported"]
    return fold(kept[0].session_id, [(uuid.uuid4(), e) for e in kept])  # type: ignore[attr-defined]


def test_a_billed_session_reads_from_code_to_bill() -> None:
    story = Story()
    steps = timeline(folded(story.billed_path(stop_by_driver=True)))
    kinds = [s.kind for s in steps]
    assert kinds[:2] == ["code_issued", "scanned"]
    for kind in ("priced", "authorised", "charging_started", "stop_requested", "completed"):
        assert kind in kinds
    assert kinds.index("stop_requested") < kinds.index("completed") < kinds.index("billed")
    assert [s.at for s in steps] == sorted(s.at for s in steps)
    completed = next(s for s in steps if s.kind == "completed")
    assert "5.00 kWh" in completed.text
    assert next(s for s in steps if s.kind == "stop_requested").text.endswith("by driver")


def test_a_denied_session_says_why_and_has_no_charging_steps() -> None:
    steps = timeline(folded(Story().denied_path()))
    kinds = [s.kind for s in steps]
    assert "denied" in kinds and "charging_started" not in kinds and "billed" not in kinds
    assert "insufficient funds" in next(s for s in steps if s.kind == "denied").text


def test_an_expired_code_is_two_steps() -> None:
    assert [s.kind for s in timeline(folded(Story().expired_path()))] == [
        "code_issued",
        "expired",
    ]
