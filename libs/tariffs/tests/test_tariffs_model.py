"""Tariff validation: every reason, with its field path, through both entry points."""

from __future__ import annotations

from typing import Any

import pytest
from plugpay_tariffs import (
    CURRENCIES,
    MINOR_UNIT_EXPONENT,
    SessionUsage,
    Tariff,
    TariffInvalid,
    parse_tariff,
)
from pydantic import ValidationError
from tariff_factories import berlin, element, pc, tariff


def reasons(data: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(TariffInvalid) as caught:
        parse_tariff(data)
    return [(r["field"], r["reason"]) for r in caught.value.reasons]


def raw(*elements: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"id": "t-1", "version": 1, "currency": "EUR", "elements": list(elements)} | fields


OK = pc("ENERGY", "0.39", "19")


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            raw(element(pc("ENERGY", "-0.01"))),
            ("elements[0].price_components[0].price", "negative_price"),
        ),
        (
            raw(element(pc("ENERGY", "0.1234567"))),
            ("elements[0].price_components[0].price", "too_many_decimals"),
        ),
        (
            raw(element(pc("ENERGY", "0.39", "-1"))),
            ("elements[0].price_components[0].vat", "invalid_vat"),
        ),
        (
            raw(element(pc("ENERGY", "0.39", "100.5"))),
            ("elements[0].price_components[0].vat", "invalid_vat"),
        ),
        (
            raw(element(pc("TIME", "1", step=0))),
            ("elements[0].price_components[0].step_size", "invalid_step_size"),
        ),
        (raw(element(OK), currency="EUX"), ("currency", "unknown_currency")),
        (raw(), ("elements", "no_elements")),
        (raw(element()), ("elements[0].price_components", "no_price_components")),
        (raw(element(OK, OK)), ("elements[0].price_components[1]", "duplicate_component_type")),
        (raw(element(OK), min_price=-1), ("min_price", "negative_price")),
        (
            raw(element(OK), min_price=500, max_price=400),
            ("min_price", "min_price_above_max_price"),
        ),
        (
            raw(element(OK), element(pc("ENERGY", "0.2"), start_time="22:00")),
            ("elements[1].price_components[0]", "shadowed_element"),
        ),
        (
            raw(
                element(OK, start_time="22:00", end_time="06:00"),
                element(pc("ENERGY", "0.2"), start_time="22:00", end_time="06:00"),
            ),
            ("elements[1].restrictions", "overlapping_restrictions"),
        ),
        (
            raw(element(OK, min_energy_wh=5000, max_energy_wh=1000)),
            ("elements[0].restrictions.min_energy_wh", "contradictory_restrictions"),
        ),
        (
            raw(element(OK, min_power_w=22000, max_power_w=11000)),
            ("elements[0].restrictions.min_power_w", "contradictory_restrictions"),
        ),
        (
            raw(element(OK, min_duration_s=60, max_duration_s=60)),
            ("elements[0].restrictions.min_duration_s", "contradictory_restrictions"),
        ),
        (
            raw(element(OK, min_current_a="32", max_current_a="16")),
            ("elements[0].restrictions.min_current_a", "contradictory_restrictions"),
        ),
        (
            raw(element(OK, start_date="2024-06-01", end_date="2024-05-01")),
            ("elements[0].restrictions.start_date", "contradictory_restrictions"),
        ),
        (
            raw(element(OK, start_time="10:00", end_time="10:00")),
            ("elements[0].restrictions.start_time", "contradictory_restrictions"),
        ),
        (
            raw(element(OK, min_energy_wh=-1)),
            ("elements[0].restrictions.min_energy_wh", "negative_value"),
        ),
        (
            raw(element(OK, start_time="25:00")),
            ("elements[0].restrictions.start_time", "string_pattern_mismatch"),
        ),
        (raw(element(OK), valid_from="2024-05-01T00:00:00"), ("valid_from", "timezone_aware")),
    ],
)
def test_each_reason(data: dict[str, Any], expected: tuple[str, str]) -> None:
    assert expected in reasons(data)


def test_all_reasons_are_reported_together() -> None:
    found = reasons(raw(element(pc("ENERGY", "-1", "101", step=-5)), currency="XXX"))
    assert [reason for _, reason in found] == [
        "unknown_currency",
        "negative_price",
        "invalid_vat",
        "invalid_step_size",
    ]


def test_same_restrictions_for_different_types_do_not_overlap() -> None:
    # FLAT in one element and ENERGY in the next, both unrestricted: OCPI's usual layout.
    tariff(element(pc("FLAT", "1")), element(pc("ENERGY", "0.39")), element(pc("TIME", "1")))
    tariff(
        element(pc("ENERGY", "0.2"), start_time="22:00", end_time="06:00"),
        element(pc("TIME", "0.5"), start_time="22:00", end_time="06:00"),
        element(pc("ENERGY", "0.4"), pc("TIME", "1")),
    )


def test_model_validate_raises_validation_error_with_reason_and_location() -> None:
    with pytest.raises(ValidationError) as caught:
        Tariff.model_validate(raw(element(OK), element(pc("ENERGY", "-1"))))
    errors = {(e["type"], e["loc"]) for e in caught.value.errors()}
    assert ("negative_price", ("elements", 1, "price_components", 0, "price")) in errors
    assert ("shadowed_element", ("elements", 1, "price_components", 0)) in errors


def test_json_round_trip_keeps_decimals_as_strings() -> None:
    t = tariff(
        element(pc("FLAT", "1.00", "19")),
        element(
            pc("ENERGY", "0.385", "7.7", step=100),
            start_time="22:00",
            end_time="06:00",
            day_of_week=["SUNDAY", "MONDAY", "MONDAY"],
            min_current_a="16",
        ),
        element(pc("ENERGY", "0.45", "7.7")),
        min_price=100,
        max_price=5000,
        valid_from="2024-05-01T00:00:00+02:00",
    )
    data = t.model_dump(mode="json")
    assert data["elements"][1]["price_components"][0]["price"] == "0.385"
    assert data["elements"][1]["restrictions"]["day_of_week"] == ["MONDAY", "SUNDAY"]
    assert Tariff.model_validate(data) == t
    assert Tariff.model_validate_json(t.model_dump_json()) == t


def test_models_are_frozen() -> None:
    t = tariff(element(OK))
    with pytest.raises(ValidationError):
        t.version = 2


def test_currency_table() -> None:
    assert {"EUR", "USD", "GBP", "CHF", "SEK", "NOK", "DKK", "PLN", "CZK", "HUF"} <= CURRENCIES
    assert (MINOR_UNIT_EXPONENT["JPY"], MINOR_UNIT_EXPONENT["KWD"], MINOR_UNIT_EXPONENT["EUR"]) == (
        0,
        3,
        2,
    )
    assert len(CURRENCIES) > 150 and "HRK" not in CURRENCIES


@pytest.mark.parametrize(
    "fields",
    [
        {"charging_ended_at": berlin(2024, 5, 6, 9)},
        {
            "samples": [
                {"at": berlin(2024, 5, 6, 10, 30), "energy_wh": 5},
                {"at": berlin(2024, 5, 6, 10, 20), "energy_wh": 6},
            ]
        },
        {
            "samples": [
                {"at": berlin(2024, 5, 6, 10, 10), "energy_wh": 5},
                {"at": berlin(2024, 5, 6, 10, 20), "energy_wh": 4},
            ]
        },
        {"samples": [{"at": berlin(2024, 5, 6, 12), "energy_wh": 5}]},
        {"samples": [{"at": berlin(2024, 5, 6, 10), "energy_wh": 5}]},
        {"started_at": "2024-05-06T10:00:00"},
    ],
)
def test_session_usage_rejects_inconsistent_facts(fields: dict[str, Any]) -> None:
    data: dict[str, Any] = {
        "started_at": berlin(2024, 5, 6, 10),
        "charging_ended_at": berlin(2024, 5, 6, 11),
        "ended_at": berlin(2024, 5, 6, 11),
    }
    with pytest.raises(ValidationError):
        SessionUsage.model_validate(data | fields)
