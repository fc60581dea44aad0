"""The invoice numbering rule: per organisation, series and year, 1..N with no gap and no
duplicate whatever rolls back; numbers readable and unambiguous; legal profiles checked."""

from __future__ import annotations

import copy
import uuid
from datetime import UTC, datetime

import pytest
from billing_svc.domain import (
    DocumentCounters,
    LegalProfile,
    document_number,
    document_year,
    legal_profile_problem,
)
from hypothesis import given
from hypothesis import strategies as st

ORGS = [uuid.UUID(int=i + 1) for i in range(3)]
SERIES = ("invoice", "credit_note")

# A transaction: which (organisation, series, year) documents it numbers, and whether it commits.
transaction = st.tuples(
    st.lists(
        st.tuples(st.sampled_from(ORGS), st.sampled_from(SERIES), st.sampled_from([2025, 2026])),
        min_size=1,
        max_size=4,
    ),
    st.booleans(),
)


@given(st.lists(transaction, max_size=40))
def test_committed_numbers_are_gapless_and_unique_per_series_and_year(
    transactions: list[tuple[list[tuple[uuid.UUID, str, int]], bool]],
) -> None:
    committed = DocumentCounters()
    issued: dict[tuple[uuid.UUID, str, int], list[int]] = {}
    for takes, commits in transactions:
        # A transaction works on the counters as committed; a rollback leaves them as they were.
        working = copy.deepcopy(committed)
        numbers = [(key, working.take(*key)) for key in takes]  # type: ignore[arg-type]
        if commits:
            committed = working
            for key, number in numbers:
                issued.setdefault(key, []).append(number)
    for key, numbers in issued.items():
        assert numbers == list(range(1, len(numbers) + 1)), key
        assert committed.last[key] == len(numbers)
    for key, last in committed.last.items():
        assert len(issued.get(key, [])) == last  # nothing counted that was rolled back


@given(
    st.from_regex(r"[A-Z0-9]{1,10}", fullmatch=True),
    st.sampled_from(SERIES),
    st.integers(2000, 2999),
    st.integers(1, 10**7),
    st.sampled_from(SERIES),
    st.integers(2000, 2999),
    st.integers(1, 10**7),
)
def test_different_documents_of_one_prefix_never_share_a_number(
    prefix: str, s1: str, y1: int, n1: int, s2: str, y2: int, n2: int
) -> None:
    a = document_number(prefix, s1, y1, n1)  # type: ignore[arg-type]
    b = document_number(prefix, s2, y2, n2)  # type: ignore[arg-type]
    assert (a == b) == ((s1, y1, n1) == (s2, y2, n2))


def test_numbers_read_as_prefix_series_year_and_number() -> None:
    assert document_number("INV", "invoice", 2026, 42) == "INV-2026-000042"
    assert document_number("ACME", "credit_note", 2026, 3) == "ACME-CN-2026-000003"
    with pytest.raises(ValueError):
        document_number("INV", "invoice", 2026, 0)


def test_the_year_is_the_stations_calendar_year() -> None:
    new_year_in_berlin = datetime(2025, 12, 31, 23, 30, tzinfo=UTC)
    assert document_year(new_year_in_berlin, "Europe/Berlin") == 2026
    assert document_year(new_year_in_berlin, "America/New_York") == 2025
    assert document_year(new_year_in_berlin, None) == 2025
    assert document_year(new_year_in_berlin, "Not/A_Zone") == 2025


@pytest.mark.parametrize(
    ("profile", "reason"),
    [
        (LegalProfile("ACME Charging GmbH", "Hauptstr. 1, Berlin", "DE123456789", "ACME"), None),
        (LegalProfile("ACME", "Somewhere 1", "", "INV"), None),
        (LegalProfile(" ", "Somewhere 1", "", "INV"), "invalid_legal_name"),
        (LegalProfile("ACME", "", "", "INV"), "invalid_address"),
        (LegalProfile("ACME", "Somewhere 1", "123", "INV"), "invalid_vat_id"),
        (LegalProfile("ACME", "Somewhere 1", "", "IN-V"), "invalid_invoice_prefix"),
        (LegalProfile("ACME", "Somewhere 1", "", "inv"), "invalid_invoice_prefix"),
    ],
)
def test_legal_profiles_are_checked(profile: LegalProfile, reason: str | None) -> None:
    problem = legal_profile_problem(profile)
    assert (problem[0] if problem else None) == reason
