"""The directory's pure rules: availability for drivers, distances, who sees what."""

from __future__ import annotations

import uuid

import pytest
from plugpay_events.contracts.pricing import AccessPolicy
from pricing_svc.domain import (
    Driver,
    Presence,
    availability,
    bounding_box,
    distance_km,
    visible_to,
)

UP = Presence(connected=True, online=True)


@pytest.mark.parametrize(
    ("presence", "station", "status", "expected"),
    [
        (None, None, "Available", "Offline"),
        (Presence(connected=False, online=True), None, "Available", "Offline"),
        (Presence(connected=True, online=False), None, "Charging", "Offline"),
        (UP, None, None, "Unavailable"),
        (UP, None, "Available", "Available"),
        (UP, None, "Charging", "Charging"),
        (UP, None, "Preparing", "Occupied"),
        (UP, None, "SuspendedEV", "Occupied"),
        (UP, None, "SuspendedEVSE", "Occupied"),
        (UP, None, "Finishing", "Occupied"),
        (UP, None, "Reserved", "Occupied"),
        (UP, None, "Occupied", "Occupied"),
        (UP, None, "Faulted", "Faulted"),
        (UP, None, "Unavailable", "Unavailable"),
        (UP, None, "SomethingNew", "Unavailable"),
        (UP, "Faulted", "Available", "Faulted"),
        (UP, "Unavailable", "Charging", "Unavailable"),
        (UP, "Available", "Charging", "Charging"),
    ],
)
def test_availability(
    presence: Presence | None, station: str | None, status: str | None, expected: str
) -> None:
    assert availability(presence, station, status) == expected


def test_distance_and_box() -> None:
    assert distance_km(52.52, 13.405, 52.52, 13.405) == 0
    # Berlin - Munich is about 504 km.
    assert 500 < distance_km(52.52, 13.405, 48.137, 11.575) < 510
    min_lat, max_lat, min_lon, max_lon = bounding_box(52.52, 13.405, 10)
    for lat, lon in [(min_lat, 13.405), (max_lat, 13.405), (52.52, min_lon), (52.52, max_lon)]:
        assert distance_km(52.52, 13.405, lat, lon) == pytest.approx(10, rel=0.01)
    assert bounding_box(89.999999, 0, 10)[2:] == (-180, 180)


def test_visibility() -> None:
    owner, other = uuid.uuid4(), uuid.uuid4()
    public = AccessPolicy()
    staff = AccessPolicy(kind="restricted", allowed_groups=("staff",))
    partners = AccessPolicy(kind="restricted", allowed_organisations=(other,))
    anyone = None
    member = Driver(uuid.uuid4(), owner, frozenset({"staff"}))
    foreign_staff = Driver(uuid.uuid4(), other, frozenset({"staff"}))
    assert visible_to(public, owner, anyone) and visible_to(public, owner, member)
    assert not visible_to(staff, owner, anyone)
    assert visible_to(staff, owner, member)
    assert not visible_to(staff, owner, foreign_staff)
    assert visible_to(partners, owner, foreign_staff) and not visible_to(partners, owner, member)
