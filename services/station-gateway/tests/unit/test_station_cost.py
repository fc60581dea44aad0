"""The cost a station is told: capped by the hold, in the currency's own decimals."""

from station_gateway.domain import capped_cost, major_units


def test_the_cost_is_capped_by_the_hold_and_never_negative() -> None:
    assert capped_cost(240, 5_000) == 240
    assert capped_cost(200, 100) == 100
    assert capped_cost(-5, 100) == 0
    assert capped_cost(240, None) == 240  # no hold known (a session from before the column)


def test_major_units_follow_the_currency_exponent() -> None:
    assert major_units(24, "EUR") == 0.24
    assert major_units(1_234, "JPY") == 1_234.0
    assert major_units(1_234, "BHD") == 1.234
