"""The 401 of the station pages names the station in ``WWW-Authenticate`` only when the id is
a registrable one: header values are latin-1, and an id like ``7g\U0003384d`` used to answer
500 (found by schemathesis, tests/reliability)."""

from __future__ import annotations

from station_gateway.endpoints import _realm


def test_realm_is_always_a_latin1_header_value() -> None:
    assert _realm("ST-0001") == "ST-0001"
    for hostile in ('7g\U0003384dm"', "\U000f0d79", 'a"b', "x" * 65, ""):
        realm = _realm(hostile)
        realm.encode("latin-1")
        assert realm == "unknown"
