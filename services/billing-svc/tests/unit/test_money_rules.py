"""The pure money rules: the authorised maximum, and the bounds of a top-up."""

from __future__ import annotations

from billing_svc.domain import MoneyLimits, auto_topup_amount, cap_cost, topup_problem
from hypothesis import given
from hypothesis import strategies as st

BIG = 2**63 - 1
LIMITS = MoneyLimits(
    min_topup=100, max_topup=50_000, max_auto_topup=20_000, max_wallet_balance=50_000
)


@given(
    excl=st.integers(0, 10**12),
    vat_percent=st.integers(0, 30),
    cap=st.integers(0, 10**7),
)
def test_the_driver_never_pays_above_the_cap_and_nothing_is_lost(
    excl: int, vat_percent: int, cap: int
) -> None:
    vat = excl * vat_percent // 100
    total = excl + vat
    capped = cap_cost(total, excl, vat, cap)
    assert capped.payable == min(total, cap)
    assert capped.payable + capped.written_off == total
    assert capped.payable_excl_vat + capped.payable_vat == capped.payable
    assert 0 <= capped.payable_vat <= vat and capped.payable_excl_vat >= 0
    if total <= cap:
        assert (capped.payable_excl_vat, capped.payable_vat, capped.written_off) == (excl, vat, 0)


@given(amount=st.integers(0, BIG), balance=st.integers(0, 60_000))
def test_a_topup_is_accepted_only_within_every_bound(amount: int, balance: int) -> None:
    problem = topup_problem(amount, balance, LIMITS)
    fits = 100 <= amount <= 50_000 and balance + amount <= 50_000
    assert (problem is None) == fits


@given(configured=st.integers(0, BIG), balance=st.integers(0, 60_000))
def test_an_auto_topup_is_bounded_or_skipped(configured: int, balance: int) -> None:
    amount = auto_topup_amount(configured, balance, LIMITS)
    assert amount == 0 or topup_problem(amount, balance, LIMITS, auto=True) is None
    assert amount <= configured
