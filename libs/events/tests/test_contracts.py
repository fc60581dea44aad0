"""Envelopes, contracts, upcasting and the committed JSON schemas."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from plugpay_events import EVENT_TYPES, Envelope, Money, decode_payload, upcast
from plugpay_events.contracts import (
    MeterClaim,
    MeterJudgement,
    SessionAuthorized,
    SessionCodeScanned,
    SessionCompleted,
    SessionLimits,
)
from plugpay_events.registry import UnknownEventType, UnsupportedEventVersion
from plugpay_events.schemas import render_all
from plugpay_events.serde import decode, encode
from pydantic import ValidationError

NOW = datetime(2026, 11, 23, 8, 30, tzinfo=UTC)


def scanned(**overrides: object) -> SessionCodeScanned:
    fields: dict[str, object] = {
        "session_id": uuid.uuid4(),
        "station_id": "ST-0001",
        "connector_id": 1,
        "session_started_at": NOW,
        "scanned_at": NOW + timedelta(seconds=20),
        "user_id": uuid.uuid4(),
        "code_kind": "qr",
    }
    fields.update(overrides)
    return SessionCodeScanned.model_validate(fields)


def test_brief_names_are_kept() -> None:
    assert {"SessionCodeScanned", "SessionAuthorized", "SessionCompleted"} <= set(EVENT_TYPES)


def test_envelope_round_trips_and_keys_by_aggregate() -> None:
    event = scanned()
    envelope = Envelope.wrap(event, producer="session-svc")
    assert envelope.aggregate_id == str(event.session_id)
    assert envelope.type == "SessionCodeScanned" and envelope.version == 3
    again = decode(encode(envelope))
    assert again == envelope
    assert again.event() == event


def test_causation_carries_correlation() -> None:
    first = Envelope.wrap(scanned(), producer="session-svc")
    second = Envelope.wrap(scanned(), producer="pricing-svc", caused_by=first)
    assert second.correlation_id == first.correlation_id
    assert second.causation_id == first.event_id


def test_times_are_utc_and_naive_times_refused() -> None:
    berlin = timezone(timedelta(hours=1))
    event = scanned(session_started_at=datetime(2026, 11, 23, 9, 30, tzinfo=berlin))
    assert event.session_started_at == NOW
    assert event.session_started_at.tzinfo == UTC
    with pytest.raises(ValidationError):
        scanned(session_started_at=datetime(2026, 11, 23, 9, 30))


@pytest.mark.parametrize(
    "written",
    ["2026-11-23T08:30:00Z", "2026-11-23T09:30:00+01:00", "2026-11-23 08:30:00+00:00"],
)
def test_times_from_json_are_utc_whatever_offset_they_were_written_with(written: str) -> None:
    payload = scanned().model_dump(mode="json") | {"session_started_at": written}
    at = type(scanned()).model_validate_json(json.dumps(payload)).session_started_at
    assert at == NOW
    assert at.tzinfo is UTC


@pytest.mark.parametrize(
    "written",
    ["2026-11-23T08:30:00", "2026-W48-1T08:30:00Z", "2026-327T08:30:00Z", "23/11/2026", ""],
)
def test_json_times_refused_when_naive_or_not_a_calendar_date_time(written: str) -> None:
    payload = scanned().model_dump(mode="json") | {"session_started_at": written}
    with pytest.raises(ValidationError):
        type(scanned()).model_validate_json(json.dumps(payload))


def test_money_is_minor_units_with_a_known_currency() -> None:
    assert Money(amount_minor=1999, currency="EUR").amount_minor == 1999
    with pytest.raises(ValidationError):
        Money(amount_minor=1, currency="XXY")
    with pytest.raises(ValidationError):
        Money(amount_minor=1.5, currency="EUR")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="different currencies"):
        Money(amount_minor=1, currency="EUR") + Money(amount_minor=1, currency="USD")


def test_unknown_fields_and_types_are_refused() -> None:
    with pytest.raises(ValidationError):
        scanned(card_number="4242424242424242")
    with pytest.raises(UnknownEventType):
        decode_payload("SessionTeleported", 1, {})


def test_upcaster_v1_to_v2() -> None:
    v2 = scanned()
    v1_payload = v2.model_dump(mode="json")
    del v1_payload["code_kind"]
    assert upcast("SessionCodeScanned", 1, v1_payload)["code_kind"] == "qr"
    old = Envelope.model_validate(
        {**Envelope.wrap(v2, producer="x").model_dump(), "version": 1, "payload": v1_payload}
    )
    assert old.event() == v2.model_copy(update={"code_kind": "qr"})
    with pytest.raises(UnsupportedEventVersion):
        upcast("SessionCodeScanned", 4, v1_payload)


def test_upcaster_v2_to_v3_scans_before_guests_were_drivers() -> None:
    v3 = scanned(guest=True)
    v2_payload = v3.model_dump(mode="json")
    del v2_payload["guest"]
    assert upcast("SessionCodeScanned", 2, v2_payload)["guest"] is False
    old = Envelope.model_validate(
        {**Envelope.wrap(v3, producer="x").model_dump(), "version": 2, "payload": v2_payload}
    )
    assert old.event() == v3.model_copy(update={"guest": False})
    v1_payload = {k: v for k, v in v2_payload.items() if k != "code_kind"}
    assert decode_payload("SessionCodeScanned", 1, v1_payload) == v3.model_copy(
        update={"guest": False, "code_kind": "qr"}
    )


def test_authorized_limits_and_completed_energy() -> None:
    authorized = SessionAuthorized(
        session_id=uuid.uuid4(),
        station_id="ST-0001",
        connector_id=1,
        user_id=uuid.uuid4(),
        funding="wallet",
        hold_id=uuid.uuid4(),
        hold_amount=Money(amount_minor=2000, currency="EUR"),
        limits=SessionLimits(max_energy_wh=40_000, max_duration_s=7200),
        authorized_at=NOW,
        start_deadline=NOW + timedelta(minutes=3),
    )
    assert authorized.limits.max_energy_wh == 40_000
    with pytest.raises(ValidationError):
        SessionCompleted(
            session_id=uuid.uuid4(),
            station_id="ST-0001",
            connector_id=1,
            transaction_id="1",
            meter_start_wh=0,
            meter_stop_wh=10,
            energy_wh=-10,
            started_at=NOW,
            charging_ended_at=NOW,
            ended_at=NOW,
            stop_reason="ev_disconnected",
        )


def test_completed_carries_the_meter_judgement_and_older_events_still_decode() -> None:
    completed = {
        "session_id": str(uuid.uuid4()),
        "station_id": "ST-0001",
        "connector_id": 1,
        "transaction_id": "1",
        "meter_start_wh": 1000,
        "meter_stop_wh": 1000,
        "energy_wh": 0,
        "started_at": NOW.isoformat(),
        "charging_ended_at": NOW.isoformat(),
        "ended_at": NOW.isoformat(),
        "stop_reason": "remote",
    }
    before = decode_payload("SessionCompleted", 1, completed)
    assert isinstance(before, SessionCompleted)
    assert before.judgement is None and not before.held_for_review
    judgement = MeterJudgement(
        outcome="held",
        reasons=("register_jump",),
        claimed=MeterClaim(
            meter_start_wh=1000,
            meter_stop_wh=10_001_000,
            energy_wh=10_000_000,
            started_at=NOW,
            ended_at=NOW + timedelta(seconds=2),
        ),
        max_power_w=22_000,
        max_energy_wh=132,
    )
    judged = SessionCompleted.model_validate({**completed, "judgement": judgement})
    again = decode(encode(Envelope.wrap(judged, producer="test"))).event()
    assert again == judged and again.held_for_review
    assert again.judgement is not None and again.judgement.claimed.energy_wh == 10_000_000


def _docs_events() -> Path:
    for parent in Path(__file__).resolve().parents:
        if (parent / "docs" / "events").is_dir():
            return parent / "docs" / "events"
    raise AssertionError("docs/events not found")


def test_committed_schemas_match_the_models() -> None:
    folder = _docs_events()
    expected = render_all()
    committed = {p.name: p.read_text() for p in folder.glob("*.json")}
    assert set(committed) == set(expected), "run `make schemas` and commit docs/events"
    for name, text in expected.items():
        assert committed[name] == text, f"{name} drifted: run `make schemas` and commit"
