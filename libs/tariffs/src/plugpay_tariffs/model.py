"""The tariff model, after OCPI 2.2.1 mod_tariffs, and the rules that make a tariff valid.

Prices are exact decimals in the currency's MAJOR unit, excluding VAT, with at most six decimal
places (OCPI's habit): per kWh for ENERGY, per hour for TIME and PARKING_TIME, per session for
FLAT. min_price / max_price are integers in the MINOR unit, excluding VAT. Every model is a frozen
pydantic v2 model whose ``model_dump(mode="json")`` round-trips, so a tariff can travel as a
snapshot inside an event.

Invalid tariffs fail ``Tariff.model_validate`` with a pydantic ``ValidationError`` whose errors
carry a machine-readable ``type`` (the reason) and ``loc`` (the field); ``parse_tariff`` turns the
same errors into a ``TariffInvalid`` with ``{"field": "elements[1].price_components[0].price",
"reason": "negative_price"}`` items.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, time
from decimal import Decimal
from enum import StrEnum
from typing import Any, Self, TypedDict

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from plugpay_tariffs.currencies import MINOR_UNIT_EXPONENT

MAX_PRICE_DECIMALS = 6
_HHMM = r"^([01]\d|2[0-3]):[0-5]\d$"
_FROZEN = ConfigDict(frozen=True, extra="forbid")


class ComponentType(StrEnum):
    """What a price component charges for (OCPI TariffDimensionType)."""

    FLAT = "FLAT"  # once per session
    ENERGY = "ENERGY"  # per kWh
    TIME = "TIME"  # per hour of charging
    PARKING_TIME = "PARKING_TIME"  # per hour connected but not charging


class DayOfWeek(StrEnum):
    """Weekdays in ``date.weekday()`` order."""

    MONDAY = "MONDAY"
    TUESDAY = "TUESDAY"
    WEDNESDAY = "WEDNESDAY"
    THURSDAY = "THURSDAY"
    FRIDAY = "FRIDAY"
    SATURDAY = "SATURDAY"
    SUNDAY = "SUNDAY"


WEEK: tuple[DayOfWeek, ...] = tuple(DayOfWeek)


class PriceComponent(BaseModel):
    """One price dimension of an element: ``price`` excl. VAT per unit, ``vat`` in percent.

    ``step_size`` is in Wh for ENERGY and seconds for TIME / PARKING_TIME; FLAT ignores it.
    """

    model_config = _FROZEN
    type: ComponentType
    price: Decimal
    vat: Decimal = Decimal(0)
    step_size: int = 1


class TariffRestrictions(BaseModel):
    """When an element applies. Lower bounds are inclusive, upper bounds exclusive (OCPI).

    Times and dates are local to the station. ``end_time`` earlier than ``start_time`` wraps past
    midnight; a missing ``end_time`` means the end of the day.
    """

    model_config = _FROZEN
    start_time: str | None = Field(default=None, pattern=_HHMM)
    end_time: str | None = Field(default=None, pattern=_HHMM)
    start_date: date | None = None
    end_date: date | None = None
    min_energy_wh: int | None = None
    max_energy_wh: int | None = None
    min_current_a: Decimal | None = None
    max_current_a: Decimal | None = None
    min_power_w: int | None = None
    max_power_w: int | None = None
    min_duration_s: int | None = None
    max_duration_s: int | None = None
    day_of_week: tuple[DayOfWeek, ...] | None = None

    @field_validator("day_of_week")
    @classmethod
    def _normalise_days(cls, days: tuple[DayOfWeek, ...] | None) -> tuple[DayOfWeek, ...] | None:
        # Week order and no duplicates, so equal restrictions compare (and serialise) equal.
        return tuple(d for d in WEEK if d in days) if days else None

    def is_unrestricted(self) -> bool:
        """True when no field restricts anything."""
        return all(value is None for value in self.__dict__.values())


class TariffElement(BaseModel):
    """Price components that apply together while the restrictions hold."""

    model_config = _FROZEN
    price_components: tuple[PriceComponent, ...]
    restrictions: TariffRestrictions | None = None

    def component(self, component_type: ComponentType) -> PriceComponent | None:
        """This element's component of the given type, if it has one."""
        return next((c for c in self.price_components if c.type == component_type), None)

    def is_unrestricted(self) -> bool:
        """True when the element applies at every moment."""
        return self.restrictions is None or self.restrictions.is_unrestricted()


class Tariff(BaseModel):
    """A versioned tariff: for each dimension at each moment, the first element that holds wins."""

    model_config = _FROZEN
    id: str = Field(min_length=1, max_length=36)
    version: int = Field(ge=0)
    currency: str
    elements: tuple[TariffElement, ...]
    min_price: int | None = None
    max_price: int | None = None
    valid_from: AwareDatetime | None = None

    @property
    def exponent(self) -> int:
        """Decimal places of the currency's minor unit."""
        return MINOR_UNIT_EXPONENT[self.currency]

    @model_validator(mode="after")
    def _check(self) -> Self:
        problems = _tariff_problems(self)
        if problems:
            raise ValidationError.from_exception_data(
                type(self).__name__,
                [
                    InitErrorDetails(type=PydanticCustomError(reason, message), loc=loc, input=None)
                    for loc, reason, message in problems
                ],
            )
        return self


class TariffProblem(TypedDict):
    """One machine-readable reason a tariff is invalid."""

    field: str
    reason: str
    message: str


class TariffInvalid(ValueError):
    """A tariff failed validation; ``reasons`` says where and why."""

    def __init__(self, reasons: Sequence[TariffProblem]) -> None:
        self.reasons = list(reasons)
        super().__init__("; ".join(f"{r['field']}: {r['reason']}" for r in self.reasons))

    @classmethod
    def from_validation_error(cls, error: ValidationError) -> TariffInvalid:
        """Turn pydantic's errors (ours and its own type errors) into problems."""
        return cls(
            [
                TariffProblem(field=field_path(e["loc"]), reason=e["type"], message=e["msg"])
                for e in error.errors()
            ]
        )


def parse_tariff(data: Any) -> Tariff:
    """Validate raw (JSON-like) data into a ``Tariff`` or raise ``TariffInvalid``."""
    try:
        return Tariff.model_validate(data)
    except ValidationError as error:
        raise TariffInvalid.from_validation_error(error) from error


def field_path(loc: Sequence[int | str]) -> str:
    """``("elements", 1, "price")`` → ``"elements[1].price"``."""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else part)
    return path


def hhmm(value: str) -> time:
    """Parse a validated ``HH:MM`` string."""
    return time(int(value[:2]), int(value[3:]))


_Loc = tuple[int | str, ...]
_Problem = tuple[_Loc, str, str]
_RANGES = (
    ("min_energy_wh", "max_energy_wh"),
    ("min_current_a", "max_current_a"),
    ("min_power_w", "max_power_w"),
    ("min_duration_s", "max_duration_s"),
    ("start_date", "end_date"),
)


def _decimals(value: Decimal) -> int:
    exponent = value.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def _tariff_problems(tariff: Tariff) -> list[_Problem]:
    problems: list[_Problem] = []
    if tariff.currency not in MINOR_UNIT_EXPONENT:
        problems.append((("currency",), "unknown_currency", "not an active ISO 4217 code"))
    if not tariff.elements:
        problems.append((("elements",), "no_elements", "a tariff needs at least one element"))
    for name in ("min_price", "max_price"):
        if (getattr(tariff, name) or 0) < 0:
            problems.append(((name,), "negative_price", "must not be negative"))
    low, high = tariff.min_price, tariff.max_price
    if low is not None and high is not None and low > high:
        problems.append((("min_price",), "min_price_above_max_price", "min_price > max_price"))

    # Per component type: earlier unrestricted elements and earlier restriction sets.
    unrestricted: set[ComponentType] = set()
    restricted: dict[ComponentType, list[TariffRestrictions]] = {t: [] for t in ComponentType}
    for i, element in enumerate(tariff.elements):
        at: _Loc = ("elements", i)
        if not element.price_components:
            problems.append(((*at, "price_components"), "no_price_components", "empty element"))
        seen: set[ComponentType] = set()
        for k, component in enumerate(element.price_components):
            problems += _component_problems(component, (*at, "price_components", k))
            if component.type in seen:
                problems.append(
                    ((*at, "price_components", k), "duplicate_component_type", "dead duplicate")
                )
            seen.add(component.type)
            if component.type in unrestricted:
                problems.append(
                    (
                        (*at, "price_components", k),
                        "shadowed_element",
                        f"an earlier unrestricted element already prices {component.type}",
                    )
                )
            elif element.restrictions in restricted[component.type]:
                problems.append(
                    (
                        (*at, "restrictions"),
                        "overlapping_restrictions",
                        f"an earlier element with the same restrictions prices {component.type}",
                    )
                )
        if element.restrictions is not None:
            problems += _restriction_problems(element.restrictions, (*at, "restrictions"))
        for component_type in seen:
            if element.is_unrestricted():
                unrestricted.add(component_type)
            else:
                assert element.restrictions is not None
                restricted[component_type].append(element.restrictions)
    return problems


def _component_problems(component: PriceComponent, at: _Loc) -> list[_Problem]:
    problems: list[_Problem] = []
    if component.price < 0:
        problems.append(((*at, "price"), "negative_price", "must not be negative"))
    elif _decimals(component.price) > MAX_PRICE_DECIMALS:
        problems.append(((*at, "price"), "too_many_decimals", "at most 6 decimal places"))
    if not 0 <= component.vat <= 100:
        problems.append(((*at, "vat"), "invalid_vat", "VAT percent must be within 0..100"))
    if component.step_size <= 0:
        problems.append(((*at, "step_size"), "invalid_step_size", "step_size must be positive"))
    return problems


def _restriction_problems(r: TariffRestrictions, at: _Loc) -> list[_Problem]:
    problems: list[_Problem] = []
    for low_name, high_name in _RANGES:
        low, high = getattr(r, low_name), getattr(r, high_name)
        for name, value in ((low_name, low), (high_name, high)):
            if value is not None and not isinstance(value, date) and value < 0:
                problems.append(((*at, name), "negative_value", "must not be negative"))
        # Upper bounds are exclusive, so min == max already selects nothing.
        if low is not None and high is not None and low >= high:
            problems.append(
                ((*at, low_name), "contradictory_restrictions", f"{low_name} >= {high_name}")
            )
    if r.start_time is not None and r.start_time == r.end_time:
        problems.append(
            ((*at, "start_time"), "contradictory_restrictions", "start_time == end_time")
        )
    return problems
