"""Plugpay's tariff calculator: a pure shared kernel (no I/O) after OCPI 2.2.1 tariffs.

pricing-svc uses ``calculate_cost`` for quotes and final costs and ``describe`` for displays;
billing-svc uses ``purchasable_limits`` to turn a reserved amount into energy and time limits.
"""

from plugpay_tariffs.calculator import ROUNDING, CostBreakdown, CostLine, calculate_cost
from plugpay_tariffs.currencies import CURRENCIES, MINOR_UNIT_EXPONENT
from plugpay_tariffs.limits import PurchaseLimits, purchasable_limits
from plugpay_tariffs.model import (
    ComponentType,
    DayOfWeek,
    PriceComponent,
    Tariff,
    TariffElement,
    TariffInvalid,
    TariffProblem,
    TariffRestrictions,
    parse_tariff,
)
from plugpay_tariffs.summary import TariffSummary, describe
from plugpay_tariffs.usage import MeterSample, RegisterReading, SessionUsage, usage_from_completion

__all__ = [
    "CURRENCIES",
    "MINOR_UNIT_EXPONENT",
    "ROUNDING",
    "ComponentType",
    "CostBreakdown",
    "CostLine",
    "DayOfWeek",
    "MeterSample",
    "PriceComponent",
    "PurchaseLimits",
    "RegisterReading",
    "SessionUsage",
    "Tariff",
    "TariffElement",
    "TariffInvalid",
    "TariffProblem",
    "TariffRestrictions",
    "TariffSummary",
    "calculate_cost",
    "describe",
    "parse_tariff",
    "purchasable_limits",
    "usage_from_completion",
]
