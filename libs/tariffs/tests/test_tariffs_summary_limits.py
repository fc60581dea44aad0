"""describe() and purchasable_limits(), worked by hand."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from plugpay_tariffs import SessionUsage, calculate_cost, describe, purchasable_limits
from tariff_factories import BERLIN, berlin, element, pc, tariff

SIMPLE = tariff(element(pc("FLAT", "0.840336", "19"), pc("ENERGY", "0.327731", "19")))
PEAK = tariff(
    element(
        pc("ENERGY", "0.50", "19"), pc("TIME", "3.00", "19"), start_time="17:00", end_time="20:00"
    ),
    element(pc("ENERGY", "0.30", "19"), pc("PARKING_TIME", "6.00", "19")),
)


def test_describe_simple() -> None:
    # 0.327731 x 1.19 = 0.38999989 → 0.39; 0.840336 x 1.19 = 0.99999984 → 1.00.
    summary = describe(SIMPLE, berlin(2024, 5, 6, 10), BERLIN)
    assert summary.text == "0.39 EUR/kWh + 1.00 EUR per session, incl. 19% VAT"
    assert (summary.per_kwh, summary.per_session, summary.vat_percent) == (
        Decimal("0.39"),
        Decimal("1.00"),
        Decimal("19"),
    )
    assert summary.per_hour is None and summary.idle_per_minute is None


def test_describe_follows_time_of_day() -> None:
    # Peak: 0.50 x 1.19 = 0.595/kWh; 3.00 x 1.19 = 3.57/h = 0.0595/min;
    # idle 6.00 x 1.19 / 60 = 0.119/min.
    peak = describe(PEAK, berlin(2024, 5, 6, 18), "Europe/Berlin")
    assert peak.text == "0.595 EUR/kWh + 3.57 EUR/h + 0.119 EUR/min idle, incl. 19% VAT"
    assert (peak.per_minute, peak.idle_per_hour) == (Decimal("0.0595"), Decimal("7.14"))
    off = describe(PEAK, berlin(2024, 5, 6, 21), BERLIN)
    assert off.text == "0.357 EUR/kWh + 0.119 EUR/min idle, incl. 19% VAT"


def test_describe_free_and_mixed_vat() -> None:
    assert (
        describe(tariff(element(pc("ENERGY", "0"))), berlin(2024, 5, 6), BERLIN).text
        == "free of charge"
    )
    mixed = tariff(element(pc("FLAT", "1.00", "7"), pc("ENERGY", "0.30", "19")))
    assert describe(mixed, berlin(2024, 5, 6), BERLIN).text.endswith(", incl. VAT")


def test_limits_simple_energy_tariff() -> None:
    # 0.25/kWh incl. 0 % VAT, FLAT 1.00, budget 10.00 = 1000. Lines: FLAT + ENERGY → 3 minor
    # units of rounding slack; rest = 1000 - 100 - 3 - 1 Wh step x 0.025 = 896.975 cents;
    # at 0.025 cents/Wh → 35 879 Wh. No time price → the whole 24 h horizon.
    t = tariff(element(pc("FLAT", "1.00"), pc("ENERGY", "0.25")))
    limits = purchasable_limits(t, 1000, berlin(2024, 5, 6, 10), BERLIN, 11_000)
    assert limits.affordable and limits.limited_by == "budget"
    assert (limits.max_energy_wh, limits.max_duration_s) == (35_879, 86_400)
    worst = SessionUsage.linear(berlin(2024, 5, 6, 10, 1), 35_879, berlin(2024, 5, 6, 14))
    assert calculate_cost(t, worst, BERLIN).total_incl_vat <= 1000


def test_limits_assume_the_most_expensive_element_and_max_power() -> None:
    # The 24 h window from 10:00 includes the peak, so both elements are candidates: worst
    # energy 0.595/kWh and time 3.57/h incl. VAT. Possible lines: ENERGY x2, TIME x1 → 4.5 minor
    # units of rounding slack, plus one 1 Wh and one 1 s step. At 11 kW each second costs
    # 357/3600 + 0.0595 x 11000/3600 cents.
    limits = purchasable_limits(PEAK, 2000, berlin(2024, 5, 6, 10), BERLIN, 11_000)
    per_second = Decimal("357") / 3600 + Decimal("59.5") / 1000 * 11_000 / 3600
    rest = 2000 - Decimal("4.5") - Decimal("0.0595") - Decimal("357") / 3600
    assert limits.max_duration_s == int(rest / per_second)
    assert limits.max_energy_wh == 11_000 * limits.max_duration_s // 3600


def test_limits_unaffordable_when_flat_exceeds_budget() -> None:
    limits = purchasable_limits(SIMPLE, 100, berlin(2024, 5, 6, 10), BERLIN, 11_000)
    assert not limits.affordable and (limits.max_energy_wh, limits.max_duration_s) == (0, 0)


def test_limits_min_and_max_price() -> None:
    capped = tariff(element(pc("ENERGY", "0.39", "19")), min_price=500, max_price=2000)
    # min 500 x 1.19 = 595 (+ 0.5): a 590 budget cannot cover the minimum.
    assert not purchasable_limits(capped, 590, berlin(2024, 5, 6), BERLIN, 11_000).affordable
    # max 2000 x 1.19 = 2380 plus half a unit per line → any session fits: the whole horizon.
    full = purchasable_limits(capped, 2381, berlin(2024, 5, 6), BERLIN, 11_000)
    assert full.limited_by == "horizon" and full.max_energy_wh == 11_000 * 24


def test_limits_ignore_elements_outside_the_window() -> None:
    # An expensive element valid only in January 2030 does not shrink today's limits...
    t = tariff(
        element(pc("ENERGY", "9.00"), start_date="2030-01-01", end_date="2030-02-01"),
        element(pc("ENERGY", "0.30")),
    )
    cheap = tariff(element(pc("ENERGY", "0.30")))
    today = berlin(2024, 5, 6)
    assert purchasable_limits(t, 5000, today, BERLIN, 11_000) == purchasable_limits(
        cheap, 5000, today, BERLIN, 11_000
    )
    # ...but counts when a session starting now could run into it: 5000 / 900 per kWh < 5.6 kWh.
    eve = berlin(2030, 1, 1) - timedelta(hours=1)
    assert purchasable_limits(t, 5000, eve, BERLIN, 11_000).max_energy_wh < 5_600
