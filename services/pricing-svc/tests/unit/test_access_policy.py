"""Access-policy rules (patent: free but restricted to certain users, days and times)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from plugpay_events.contracts.pricing import AccessPolicy, AccessWindow
from pricing_svc.domain import Driver, decide_access, in_window, policy_problems

BERLIN = ZoneInfo("Europe/Berlin")
OWNER = uuid.uuid4()
PARTNER = uuid.uuid4()
OTHER = uuid.uuid4()
# 2025-01-13 is a Monday.
MONDAY_NOON = datetime(2025, 1, 13, 12, 0, tzinfo=BERLIN)


def driver(org: uuid.UUID | None = None, *groups: str) -> Driver:
    return Driver(uuid.uuid4(), org, frozenset(groups))


STAFF_ONLY = AccessPolicy(
    kind="restricted",
    allowed_organisations=(PARTNER,),
    allowed_groups=("staff",),
    free_for_groups=("staff",),
)


def test_public_station_admits_anyone_and_charges_them() -> None:
    decision = decide_access(AccessPolicy(), OWNER, driver(), MONDAY_NOON)
    assert decision.allowed and not decision.free_of_charge


@pytest.mark.parametrize(
    ("who", "allowed", "free"),
    [
        (driver(OWNER, "staff"), True, True),
        (driver(OWNER, "guests"), False, False),
        (driver(PARTNER), True, False),
        (driver(OTHER), False, False),
        (driver(None), False, False),
        # A "staff" group of another organisation is not the owner's staff.
        (driver(OTHER, "staff"), False, False),
    ],
)
def test_restricted_station(who: Driver, allowed: bool, free: bool) -> None:
    decision = decide_access(STAFF_ONLY, OWNER, who, MONDAY_NOON)
    assert (decision.allowed, decision.free_of_charge) == (allowed, free)
    if not allowed:
        assert decision.reason == "access_denied"


def test_free_groups_on_a_public_station_only_count_for_the_owners_members() -> None:
    policy = AccessPolicy(free_for_groups=("staff",))
    assert decide_access(policy, OWNER, driver(OWNER, "staff"), MONDAY_NOON).free_of_charge
    other_staff = decide_access(policy, OWNER, driver(OTHER, "staff"), MONDAY_NOON)
    assert other_staff.allowed and not other_staff.free_of_charge


OFFICE_HOURS = AccessWindow(days_of_week=(1, 2, 3, 4, 5), start_time="08:00", end_time="18:00")
NIGHTS = AccessWindow(days_of_week=(5,), start_time="22:00", end_time="06:00")


@pytest.mark.parametrize(
    ("window", "local", "inside"),
    [
        (OFFICE_HOURS, datetime(2025, 1, 13, 8, 0), True),  # start inclusive
        (OFFICE_HOURS, datetime(2025, 1, 13, 17, 59), True),
        (OFFICE_HOURS, datetime(2025, 1, 13, 18, 0), False),  # end exclusive
        (OFFICE_HOURS, datetime(2025, 1, 18, 12, 0), False),  # Saturday
        (NIGHTS, datetime(2025, 1, 17, 21, 59), False),  # Friday before
        (NIGHTS, datetime(2025, 1, 17, 23, 0), True),  # Friday night
        (NIGHTS, datetime(2025, 1, 18, 5, 59), True),  # runs past midnight into Saturday
        (NIGHTS, datetime(2025, 1, 18, 6, 0), False),
        (NIGHTS, datetime(2025, 1, 18, 23, 0), False),  # Saturday night is not Friday's
        (AccessWindow(start_time="20:00"), datetime(2025, 1, 13, 23, 59), True),  # to 24:00
    ],
)
def test_windows(window: AccessWindow, local: datetime, inside: bool) -> None:
    assert in_window(window, local.replace(tzinfo=BERLIN)) is inside


def test_windows_apply_to_everyone_in_the_station_time_zone() -> None:
    policy = AccessPolicy(windows=(OFFICE_HOURS,))
    # 07:30 UTC is 08:30 in Berlin in winter: open.
    at = datetime(2025, 1, 13, 7, 30, tzinfo=ZoneInfo("UTC")).astimezone(BERLIN)
    assert decide_access(policy, OWNER, driver(), at).allowed
    closed = decide_access(policy, OWNER, driver(), at.replace(hour=19))
    assert closed.reason == "access_denied" and "cannot be used at this time" in closed.message


def test_restricted_users_are_also_bound_by_windows() -> None:
    policy = STAFF_ONLY.model_copy(update={"windows": (OFFICE_HOURS,)})
    assert decide_access(policy, OWNER, driver(OWNER, "staff"), MONDAY_NOON).allowed
    sunday = MONDAY_NOON - timedelta(days=1)
    assert not decide_access(policy, OWNER, driver(OWNER, "staff"), sunday).allowed


@pytest.mark.parametrize(
    ("policy", "field", "reason"),
    [
        (AccessPolicy(kind="restricted"), "access_policy.kind", "restricted_without_audience"),
        (
            AccessPolicy(allowed_groups=("staff",)),
            "access_policy.allowed_organisations",
            "contradictory_policy",
        ),
        (
            AccessPolicy(windows=(AccessWindow(days_of_week=(0, 8)),)),
            "access_policy.windows[0].days_of_week",
            "invalid_days",
        ),
        (
            AccessPolicy(windows=(AccessWindow(start_time="10:00", end_time="10:00"),)),
            "access_policy.windows[0].start_time",
            "contradictory_restrictions",
        ),
    ],
)
def test_policies_that_cannot_work_are_refused(
    policy: AccessPolicy, field: str, reason: str
) -> None:
    assert (field, reason) in [(f, r) for f, r, _ in policy_problems(policy)]


def test_sensible_policies_have_no_problems() -> None:
    assert policy_problems(STAFF_ONLY.model_copy(update={"windows": (NIGHTS,)})) == []
    assert policy_problems(AccessPolicy()) == []


# --- properties ---------------------------------------------------------------------------------

instants = st.datetimes(
    min_value=datetime(2024, 1, 1), max_value=datetime(2027, 1, 1), timezones=st.just(BERLIN)
)
times = st.sampled_from([f"{h:02d}:{m:02d}" for h in range(24) for m in (0, 15, 30, 45)])
day_sets = st.sets(st.integers(1, 7), min_size=1).map(lambda s: tuple(sorted(s)))
group_names = st.sets(st.sampled_from(["staff", "fleet", "guests", "vip"]), max_size=3)


@given(instants)
def test_a_window_covering_the_whole_week_is_no_restriction(local: datetime) -> None:
    assert in_window(AccessWindow(), local)


@given(day_sets, times, times, instants)
def test_a_wrapping_window_is_the_evening_plus_the_next_morning(
    days: tuple[int, ...], start: str, end: str, local: datetime
) -> None:
    if not end < start:
        return
    wrapped = in_window(AccessWindow(days_of_week=days, start_time=start, end_time=end), local)
    evening = AccessWindow(days_of_week=days, start_time=start, end_time="24:00")
    next_days = tuple(sorted(d % 7 + 1 for d in days))
    morning = AccessWindow(days_of_week=next_days, start_time="00:00", end_time=end)
    assert wrapped == (in_window(evening, local) or in_window(morning, local))


@given(group_names, group_names, st.booleans(), instants)
def test_nobody_outside_the_audience_gets_in_and_free_implies_allowed(
    allowed_groups: set[str], driver_groups: set[str], same_org: bool, local: datetime
) -> None:
    policy = AccessPolicy(
        kind="restricted",
        allowed_groups=tuple(sorted(allowed_groups)) or ("staff",),
        free_for_groups=("staff",),
    )
    who = driver(OWNER if same_org else OTHER, *driver_groups)
    decision = decide_access(policy, OWNER, who, local)
    expected = same_org and bool(set(policy.allowed_groups) & driver_groups)
    assert decision.allowed == expected
    assert not decision.free_of_charge or decision.allowed
