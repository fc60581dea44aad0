"""calculate_cost: OCPI 2.2.1 worked examples (reconstructed) and boundaries, by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from plugpay_tariffs import ComponentType, CostBreakdown, MeterSample, SessionUsage, calculate_cost
from tariff_factories import BERLIN, berlin, constant_power, element, pc, tariff

E, T, P, F = "ENERGY", "TIME", "PARKING_TIME", "FLAT"


def amounts(cost: CostBreakdown) -> list[tuple[str, int, int, int]]:
    """(type, element, excl, vat) per line."""
    return [
        (line.component_type.value, line.element_index, line.amount_excl_vat, line.vat)
        for line in cost.lines
    ]


# --- OCPI examples -------------------------------------------------------------------------------


def test_simple_per_kwh() -> None:
    # OCPI "0.25 EUR per kWh", VAT 10 %. 10 kWh → 10 x 0.25 = 2.50 EUR = 250; VAT 25.
    cost = calculate_cost(
        tariff(element(pc(E, "0.25", "10"))),
        constant_power(berlin(2024, 5, 6, 10), 3600, 10_000),
        BERLIN,
    )
    assert amounts(cost) == [(E, 0, 250, 25)]
    assert (cost.total_excl_vat, cost.total_vat, cost.total_incl_vat) == (250, 25, 275)


def test_start_fee_plus_per_kwh() -> None:
    # OCPI "0.25 EUR per kWh + start fee 0.50 EUR" (FLAT VAT 20 %, ENERGY VAT 10 %), 10 kWh:
    # FLAT 50 + 10 VAT; ENERGY 250 + 25 VAT → 300 excl, 35 VAT, 335 incl.
    t = tariff(element(pc(F, "0.50", "20"), pc(E, "0.25", "10")))
    cost = calculate_cost(t, constant_power(berlin(2024, 5, 6, 10), 3600, 10_000), BERLIN)
    assert amounts(cost) == [(F, 0, 50, 10), (E, 0, 250, 25)]
    assert (cost.total_excl_vat, cost.total_vat, cost.total_incl_vat) == (300, 35, 335)


def test_per_kwh_with_min_price() -> None:
    # OCPI "0.25 EUR per kWh + min price 0.50 EUR", 1 kWh: line 25, VAT 2.5 → 3 (half-up).
    # 25 < 50 → total 50 excl; VAT re-derived at the lines' 10 % → 5; incl 55.
    t = tariff(element(pc(E, "0.25", "10")), min_price=50)
    cost = calculate_cost(t, constant_power(berlin(2024, 5, 6, 10), 3600, 1_000), BERLIN)
    assert (cost.lines_excl_vat, cost.lines_vat) == (25, 3)
    assert (cost.total_excl_vat, cost.total_vat, cost.total_incl_vat) == (50, 5, 55)
    assert cost.min_price_applied and not cost.max_price_applied


def test_per_hour_with_minute_steps() -> None:
    # OCPI "2.00 EUR per hour", step 60 s, VAT 10 %. 90 min 30 s → 91 min = 5460 s billed;
    # 5460 / 3600 x 200 = 303.33 → 303; VAT 30.3 → 30.
    t = tariff(element(pc(T, "2.00", "10", step=60)))
    usage = SessionUsage.linear(berlin(2024, 5, 6, 10), 0, berlin(2024, 5, 6, 11, 30, 30))
    cost = calculate_cost(t, usage, BERLIN)
    assert amounts(cost) == [(T, 0, 303, 30)]
    assert cost.lines[0].quantity == 5460 and cost.lines[0].step_extra == 30


def test_step_size_300_bills_six_minutes_as_ten() -> None:
    # OCPI's step_size text: TIME step 300 s, 6 min consumed → 10 min billed; 1.20/h → 0.20 = 20.
    t = tariff(element(pc(T, "1.20", step=300)))
    usage = SessionUsage.linear(berlin(2024, 5, 6, 10), 0, berlin(2024, 5, 6, 10, 6))
    assert amounts(calculate_cost(t, usage, BERLIN)) == [(T, 0, 20, 0)]


def test_complex_start_fee_energy_time_and_daytime_parking() -> None:
    # OCPI-style complex tariff: 2.00 start fee; 0.25/kWh and 1.00/h charging (step 300 s);
    # 5.00/h parking on weekdays 09:00-18:00 only (step 300 s); VAT 20 % everywhere.
    t = tariff(
        element(pc(F, "2.00", "20")),
        element(pc(E, "0.25", "20"), pc(T, "1.00", "20", step=300)),
        element(
            pc(P, "5.00", "20", step=300),
            start_time="09:00",
            end_time="18:00",
            day_of_week=["MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY"],
        ),
    )
    # Monday 16:00, 1 h at 12 kW, then parked 17:00-17:40.
    # FLAT 200 (+40); ENERGY 12 kWh x 25 = 300 (+60); TIME 3600 s → 100 (+20);
    # PARKING 2400 s x 5.00/h = 333.33 → 333 (+66.6 → 67). Excl 933, VAT 187, incl 1120.
    cost = calculate_cost(t, constant_power(berlin(2024, 5, 6, 16), 3600, 12_000, 2400), BERLIN)
    assert amounts(cost) == [(F, 0, 200, 40), (E, 1, 300, 60), (T, 1, 100, 20), (P, 2, 333, 67)]
    assert (cost.total_excl_vat, cost.total_vat, cost.total_incl_vat) == (933, 187, 1120)
    # Parked 17:50-18:30: only 10 min fall before 18:00 → 600 s x 5.00/h = 83.33 → 83 (+16.67 → 17).
    late = calculate_cost(t, constant_power(berlin(2024, 5, 6, 16, 50), 3600, 12_000, 2400), BERLIN)
    assert amounts(late)[-1] == (P, 2, 83, 17)
    # Saturday: no parking fee at all.
    weekend = calculate_cost(t, constant_power(berlin(2024, 5, 11, 16), 3600, 12_000, 2400), BERLIN)
    assert [line.component_type for line in weekend.lines] == [
        ComponentType.FLAT,
        ComponentType.ENERGY,
        ComponentType.TIME,
    ]


def test_step_size_uses_the_last_element_for_the_whole_dimension() -> None:
    # Peak 17:00-18:00 2.00/h step 300; else 1.00/h step 900. Charging 17:50-18:07 (1020 s):
    # peak 600 s → 33.33 → 33. The total 1020 s rounds up to 1800 s with the LAST element's step
    # (900), and the 780 s extra is billed at its price: 420 + 780 = 1200 s x 1.00/h → 33.33 → 33.
    t = tariff(
        element(pc(T, "2.00", step=300), start_time="17:00", end_time="18:00"),
        element(pc(T, "1.00", step=900)),
    )
    usage = SessionUsage.linear(berlin(2024, 5, 6, 17, 50), 0, berlin(2024, 5, 6, 18, 7))
    cost = calculate_cost(t, usage, BERLIN)
    assert amounts(cost) == [(T, 0, 33, 0), (T, 1, 33, 0)]
    assert cost.lines[1].quantity == 1200 and cost.lines[1].step_extra == 780


def test_energy_step_size() -> None:
    # 0.30/kWh with 1 kWh steps: 2.4 kWh bills 3 kWh → 90.
    t = tariff(element(pc(E, "0.30", step=1000)))
    assert amounts(
        calculate_cost(t, constant_power(berlin(2024, 5, 6, 10), 1200, 7_200), BERLIN)
    ) == [(E, 0, 90, 0)]


# --- Time of day, midnight wrap, DST ------------------------------------------------------------

OFF_PEAK = tariff(
    element(pc(E, "0.20"), start_time="22:00", end_time="06:00"),
    element(pc(E, "0.40")),
)


def test_midnight_wrap_evening() -> None:
    # 21:00-23:00 at 12 kW: 12 kWh x 0.40 = 480, 12 kWh x 0.20 = 240.
    cost = calculate_cost(OFF_PEAK, constant_power(berlin(2024, 5, 6, 21), 7200, 12_000), BERLIN)
    assert amounts(cost) == [(E, 1, 480, 0), (E, 0, 240, 0)]


def test_midnight_wrap_through_midnight_and_morning() -> None:
    # 23:30-00:30 all off-peak: 12 kWh x 0.20 = 240. 05:00-07:00: 240 off-peak + 480 peak.
    across = calculate_cost(
        OFF_PEAK, constant_power(berlin(2024, 5, 6, 23, 30), 3600, 12_000), BERLIN
    )
    assert amounts(across) == [(E, 0, 240, 0)]
    morning = calculate_cost(OFF_PEAK, constant_power(berlin(2024, 5, 7, 5), 7200, 12_000), BERLIN)
    assert amounts(morning) == [(E, 0, 240, 0), (E, 1, 480, 0)]


def test_peak_starting_mid_session_changes_price() -> None:
    # Peak 0.50/kWh from 17:00; else 0.30. 16:30-17:30 at 12 kW: 6 kWh x 0.30 = 180, 6 x 0.50 = 300.
    t = tariff(element(pc(E, "0.50"), start_time="17:00", end_time="20:00"), element(pc(E, "0.30")))
    cost = calculate_cost(t, constant_power(berlin(2024, 5, 6, 16, 30), 3600, 12_000), BERLIN)
    assert amounts(cost) == [(E, 1, 180, 0), (E, 0, 300, 0)]
    assert cost.lines[1].period_start == berlin(2024, 5, 6, 17)


NIGHT = tariff(element(pc(T, "6.00"), start_time="01:00", end_time="03:00"), element(pc(T, "3.00")))


def test_dst_spring_forward_berlin() -> None:
    # 2024-03-31: 02:00 CET jumps to 03:00 CEST (01:00 UTC). 00:30 CET → 03:30 CEST is 2 real h:
    # 01:00-02:00 CET is the only hour in the 01:00-03:00 window → 6.00; the other hour → 3.00.
    usage = SessionUsage.linear(
        datetime(2024, 3, 30, 23, 30, tzinfo=UTC), 0, datetime(2024, 3, 31, 1, 30, tzinfo=UTC)
    )
    assert amounts(calculate_cost(NIGHT, usage, BERLIN)) == [(T, 1, 300, 0), (T, 0, 600, 0)]


def test_dst_spring_forward_window_starting_in_the_gap() -> None:
    # A window from 02:30 (a wall time that does not exist that night) starts at the jump,
    # 01:00 UTC. 00:30-01:30 UTC: 30 min x 3.00/h = 150, 30 min x 6.00/h = 300.
    t = tariff(element(pc(T, "6.00"), start_time="02:30", end_time="04:00"), element(pc(T, "3.00")))
    usage = SessionUsage.linear(
        datetime(2024, 3, 31, 0, 30, tzinfo=UTC), 0, datetime(2024, 3, 31, 1, 30, tzinfo=UTC)
    )
    cost = calculate_cost(t, usage, "Europe/Berlin")
    assert amounts(cost) == [(T, 1, 150, 0), (T, 0, 300, 0)]
    assert cost.lines[1].period_start == datetime(2024, 3, 31, 1, tzinfo=UTC)


def test_dst_fall_back_berlin() -> None:
    # 2024-10-27: 03:00 CEST falls back to 02:00 CET (01:00 UTC), so 02:00-03:00 happens twice.
    # 01:30 CEST (23:30 UTC) → 03:30 CET (02:30 UTC), 3 real hours, all inside 01:00-03:00 but
    # the last 30 min: 2.5 h x 6.00 = 1500, 0.5 h x 3.00 = 150.
    usage = SessionUsage.linear(
        datetime(2024, 10, 26, 23, 30, tzinfo=UTC), 0, datetime(2024, 10, 27, 2, 30, tzinfo=UTC)
    )
    assert amounts(calculate_cost(NIGHT, usage, BERLIN)) == [(T, 0, 1500, 0), (T, 1, 150, 0)]


def test_dst_fall_back_window_starting_in_the_repeated_hour() -> None:
    # A window from 02:30 opens twice that night: 00:30 UTC (CEST) and 01:30 UTC (CET).
    # 00:00-02:00 UTC: in the window 00:30-01:00 and 01:30-02:00 → 1 h x 6.00; out 1 h x 3.00.
    t = tariff(element(pc(T, "6.00"), start_time="02:30", end_time="04:00"), element(pc(T, "3.00")))
    usage = SessionUsage.linear(
        datetime(2024, 10, 27, 0, tzinfo=UTC), 0, datetime(2024, 10, 27, 2, tzinfo=UTC)
    )
    assert amounts(calculate_cost(t, usage, BERLIN)) == [(T, 1, 300, 0), (T, 0, 600, 0)]


def test_weekday_and_date_restrictions_are_local() -> None:
    # Sunday 23:30 Berlin is Sunday 21:30 UTC; Sunday-only element applies until local midnight.
    t = tariff(
        element(
            pc(T, "6.00"), day_of_week=["SUNDAY"], start_date="2024-05-01", end_date="2024-06-01"
        ),
        element(pc(T, "3.00")),
    )
    cost = calculate_cost(
        t, SessionUsage.linear(berlin(2024, 5, 12, 23, 30), 0, berlin(2024, 5, 13, 0, 30)), BERLIN
    )
    assert amounts(cost) == [(T, 0, 300, 0), (T, 1, 150, 0)]
    # end_date is exclusive: on 2024-06-02 (a Sunday) the element no longer applies.
    june = calculate_cost(
        t, SessionUsage.linear(berlin(2024, 6, 2, 10), 0, berlin(2024, 6, 2, 11)), BERLIN
    )
    assert amounts(june) == [(T, 1, 300, 0)]


# --- Energy, duration, power restrictions --------------------------------------------------------


def test_kwh_threshold_is_interpolated_between_samples() -> None:
    # First 5 kWh at 0.50, then 0.30. Samples: 2 kWh at 10 min, 8 kWh at 20 min, 10 kWh at 30 min;
    # 5 kWh is reached at 15 min. 5000 Wh x 0.50 = 250, 5000 x 0.30 = 150.
    t = tariff(element(pc(E, "0.50"), max_energy_wh=5000), element(pc(E, "0.30")))
    start = berlin(2024, 5, 6, 10)
    usage = SessionUsage(
        started_at=start,
        charging_ended_at=start + timedelta(minutes=30),
        ended_at=start + timedelta(minutes=30),
        samples=tuple(
            MeterSample(at=start + timedelta(minutes=m), energy_wh=wh)
            for m, wh in ((10, 2000), (20, 8000), (30, 10_000))
        ),
    )
    cost = calculate_cost(t, usage, BERLIN)
    assert amounts(cost) == [(E, 0, 250, 0), (E, 1, 150, 0)]
    assert cost.lines[1].period_start == start + timedelta(minutes=15)


def test_first_hour_free_then_per_hour() -> None:
    # TIME free below 3600 s, then 2.40/h: 90 min charging → 30 min x 2.40/h = 120.
    t = tariff(element(pc(T, "0"), max_duration_s=3600), element(pc(T, "2.40")))
    usage = SessionUsage.linear(berlin(2024, 5, 6, 10), 0, berlin(2024, 5, 6, 11, 30))
    assert amounts(calculate_cost(t, usage, BERLIN)) == [(T, 0, 0, 0), (T, 1, 120, 0)]


def test_power_restriction_uses_reported_power() -> None:
    # >= 50 kW at 0.59/kWh, else 0.39. 10 kWh at 60 kW then 5 kWh at 30 kW: 590 + 195.
    t = tariff(element(pc(E, "0.59"), min_power_w=50_000), element(pc(E, "0.39")))
    start = berlin(2024, 5, 6, 10)
    usage = SessionUsage(
        started_at=start,
        charging_ended_at=start + timedelta(minutes=20),
        ended_at=start + timedelta(minutes=20),
        samples=(
            MeterSample(at=start, energy_wh=0, power_w=60_000),
            MeterSample(at=start + timedelta(minutes=10), energy_wh=10_000, power_w=30_000),
            MeterSample(at=start + timedelta(minutes=20), energy_wh=15_000, power_w=0),
        ),
    )
    assert amounts(calculate_cost(t, usage, BERLIN)) == [(E, 0, 590, 0), (E, 1, 195, 0)]


# --- Zero usage, rounding, min/max ---------------------------------------------------------------


def test_zero_energy_zero_time_costs_only_flat() -> None:
    t = tariff(element(pc(F, "1.00", "19"), pc(E, "0.39", "19"), pc(T, "1.00", "19")))
    start = berlin(2024, 5, 6, 10)
    cost = calculate_cost(
        t, SessionUsage(started_at=start, charging_ended_at=start, ended_at=start), BERLIN
    )
    assert amounts(cost) == [(F, 0, 100, 19)] and cost.total_incl_vat == 119
    assert cost.energy_wh == 0 and cost.charging_s == 0


def test_zero_energy_with_time_costs_flat_and_time() -> None:
    t = tariff(element(pc(F, "1.00"), pc(E, "0.39"), pc(T, "1.20")))
    usage = SessionUsage.linear(berlin(2024, 5, 6, 10), 0, berlin(2024, 5, 6, 10, 30))
    assert amounts(calculate_cost(t, usage, BERLIN)) == [(F, 0, 100, 0), (T, 0, 60, 0)]


def test_sub_cent_unit_price_rounds_half_up_once_per_line() -> None:
    # 0.385/kWh x 1 kWh = 38.5 cents → 39; VAT 19 % of 39 = 7.41 → 7.
    t = tariff(element(pc(E, "0.385", "19")))
    cost = calculate_cost(t, constant_power(berlin(2024, 5, 6, 10), 3600, 1_000), BERLIN)
    assert amounts(cost) == [(E, 0, 39, 7)]
    assert cost.rounding.startswith("Each line")


def test_max_price_caps_and_rederives_vat() -> None:
    # 48 kWh x 0.39 = 1872 > 1000 → 1000; VAT 19 % of 1000 = 190; incl 1190.
    t = tariff(element(pc(E, "0.39", "19")), max_price=1000)
    cost = calculate_cost(t, constant_power(berlin(2024, 5, 6, 10), 3600, 48_000), BERLIN)
    assert (cost.lines_excl_vat, cost.lines_vat) == (1872, 356)
    assert (cost.total_excl_vat, cost.total_vat, cost.total_incl_vat) == (1000, 190, 1190)
    assert cost.max_price_applied


def test_min_price_with_no_lines_uses_highest_vat() -> None:
    # Nothing billed at all; min_price 200 plus the highest VAT in the tariff (19 %) = 38.
    t = tariff(element(pc(E, "0.39", "19"), pc(P, "1.00", "7")), min_price=200)
    start = berlin(2024, 5, 6, 10)
    cost = calculate_cost(
        t, SessionUsage(started_at=start, charging_ended_at=start, ended_at=start), BERLIN
    )
    assert (cost.total_excl_vat, cost.total_vat) == (200, 38)


def test_jpy_has_no_minor_unit() -> None:
    # 45.5 JPY/kWh x 10 kWh = 455 JPY.
    t = tariff(element(pc(E, "45.5")), currency="JPY")
    assert (
        calculate_cost(
            t, constant_power(berlin(2024, 5, 6, 10), 3600, 10_000), BERLIN
        ).total_excl_vat
        == 455
    )


def test_breakdown_json_round_trips() -> None:
    t = tariff(element(pc(F, "1.00", "19"), pc(E, "0.385", "19"), pc(T, "1.20", "19", step=300)))
    cost = calculate_cost(t, constant_power(berlin(2024, 5, 6, 10), 3700, 11_000, 600), BERLIN)
    data = cost.model_dump(mode="json")
    assert isinstance(data["lines"][1]["unit_price"], str)
    assert type(cost).model_validate(data) == cost
    assert cost.lines[1].unit_price == Decimal("0.385")
