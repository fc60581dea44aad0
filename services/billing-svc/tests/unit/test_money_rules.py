"""The pure money rules: the authorised maximum, the bounds of a top-up, review decisions."""

from __future__ import annotations

from decimal import Decimal

from billing_svc.domain import (
    HoldPolicy,
    MoneyLimits,
    ReviewAdjustment,
    auto_topup_amount,
    cap_cost,
    choose_funding,
    review_adjustment,
    topup_problem,
)
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


@given(
    billed_excl=st.integers(0, 10**7),
    vat_percent=st.integers(0, 30),
    target=st.integers(0, 2 * 10**7),
    authorised_max=st.integers(0, 2 * 10**7),
)
def test_a_review_decision_moves_exactly_the_difference_within_the_authorised_max(
    billed_excl: int, vat_percent: int, target: int, authorised_max: int
) -> None:
    billed_vat = billed_excl * vat_percent // 100
    billed = billed_excl + billed_vat
    outcome = review_adjustment(billed, billed_vat, target, authorised_max, Decimal(vat_percent))
    if target > authorised_max:
        assert outcome == "above_authorised_max"
        return
    assert isinstance(outcome, ReviewAdjustment)
    # The driver ends up paying exactly the approved total, never above what they authorised.
    assert billed + outcome.charge - outcome.refund == target <= authorised_max
    assert min(outcome.charge, outcome.refund) == 0
    assert 0 <= outcome.charge_vat <= outcome.charge
    if billed == 0 and outcome.charge:
        expected = outcome.charge * vat_percent // (100 + vat_percent)
        assert abs(outcome.charge_vat - expected) <= 1


def test_a_negative_total_is_no_decision() -> None:
    assert review_adjustment(100, 16, -1, 1_000, Decimal(19)) == "invalid_amount"


@given(
    wallet=st.integers(min_value=1, max_value=5_000),
    has_card=st.booleans(),
    power=st.sampled_from([11_000, 150_000]),
)
def test_a_card_on_file_covers_beyond_a_wallet_hold(
    wallet: int, has_card: bool, power: int
) -> None:
    policy = HoldPolicy(wallet_hold_cap=5_000, card_hold_ac=5_000, card_hold_dc=10_000)
    choice = choose_funding(
        free=False,
        wallet_hold=wallet,
        wallet_buys_charging=True,
        prefers_card=False,
        has_card=has_card,
        max_power_w=power,
        policy=policy,
    )
    assert (choice.funding, choice.amount) == ("wallet", wallet)  # the wallet pays first
    # With a card the automatic stop is never below what a card session would have.
    expected = wallet + policy.card_hold(power) if has_card else wallet
    assert choice.max_cost == expected
