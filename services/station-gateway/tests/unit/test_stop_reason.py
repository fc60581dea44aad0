"""Which stop reason a station's report becomes."""

from __future__ import annotations

from station_gateway.domain import stop_reason


def test_a_201_end_without_a_reason_is_local() -> None:
    """OCPP 2.0.1 lets a station omit stoppedReason only when it is Local."""
    assert stop_reason(None, "2.0.1", None) == "local"
    assert stop_reason("EVDisconnected", "2.0.1", None) == "ev_disconnected"


def test_what_we_asked_for_wins_over_remote_or_silence() -> None:
    assert stop_reason(None, "2.0.1", "driver") == "driver_stopped"
    assert stop_reason("Remote", "2.0.1", "limit") == "limit_reached"
    assert stop_reason("Remote", "1.6", "driver") == "driver_stopped"
    assert stop_reason(None, "1.6", None) == "local"


def test_an_unknown_reason_is_other() -> None:
    assert stop_reason("Sunspots", "2.0.1", None) == "other"
