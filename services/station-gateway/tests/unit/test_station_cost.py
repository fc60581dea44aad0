"""The cost a station is told: capped by the hold, in the currency's own decimals."""

from plugpay_tariffs import Tariff
from station_gateway.domain import capped_cost, major_units, ocpp_tariff, transaction_limit


def test_the_cost_is_capped_by_the_hold_and_never_negative() -> None:
    assert capped_cost(240, 5_000) == 240
    assert capped_cost(200, 100) == 100
    assert capped_cost(-5, 100) == 0
    assert capped_cost(240, None) == 240  # no hold known (a session from before the column)


def test_major_units_follow_the_currency_exponent() -> None:
    assert major_units(24, "EUR") == 0.24
    assert major_units(1_234, "JPY") == 1_234.0
    assert major_units(1_234, "BHD") == 1.234


def _tariff(elements: list[dict], **extra: object) -> Tariff:
    return Tariff.model_validate(
        {"id": "t-9", "version": 3, "currency": "EUR", "elements": elements, **extra}
    )


def test_an_unrestricted_tariff_becomes_an_ocpp21_tariff() -> None:
    tariff = _tariff(
        [
            {
                "price_components": [
                    {"type": "ENERGY", "price": "0.30", "vat": "19"},
                    {"type": "TIME", "price": "1.20", "vat": "19"},
                ]
            },
            {
                "price_components": [
                    {"type": "PARKING_TIME", "price": "6.00"},
                    {"type": "FLAT", "price": "0.50", "vat": "19"},
                ]
            },
        ]
    )
    vat = [{"type": "VAT", "tax": 19.0}]
    assert ocpp_tariff(tariff) == {
        "tariff_id": "t-9:3",
        "currency": "EUR",
        "energy": {"prices": [{"price_kwh": 0.3}], "tax_rates": vat},
        "charging_time": {"prices": [{"price_minute": 0.02}], "tax_rates": vat},  # 1.20 / h
        "idle_time": {"prices": [{"price_minute": 0.1}]},
        "fixed_fee": {"prices": [{"price_fixed": 0.5}], "tax_rates": vat},
    }


def test_what_21_cannot_say_faithfully_is_not_sent() -> None:
    restricted = [
        {
            "price_components": [{"type": "ENERGY", "price": "0.20"}],
            "restrictions": {"start_time": "22:00", "end_time": "06:00"},
        },
        {"price_components": [{"type": "ENERGY", "price": "0.40"}]},
    ]
    assert ocpp_tariff(_tariff(restricted)) is None
    capped = [{"price_components": [{"type": "ENERGY", "price": "0.40"}]}]
    assert ocpp_tariff(_tariff(capped, max_price=2_000)) is None


def test_the_transaction_limit_is_what_billing_authorised() -> None:
    limits = {
        "max_energy_wh": 12_000,
        "max_duration_s": 5_400,
        "max_cost": {"amount_minor": 2_050, "currency": "EUR"},
    }
    assert transaction_limit(limits) == {"max_cost": 20.5, "max_energy": 12_000, "max_time": 5_400}
    assert transaction_limit({"max_energy_wh": None, "max_duration_s": None}) is None
    assert transaction_limit(None) is None
