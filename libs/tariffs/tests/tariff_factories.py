"""Small builders shared by the tariff tests (module name unique across the workspace)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from plugpay_tariffs import MeterSample, SessionUsage, Tariff

BERLIN = ZoneInfo("Europe/Berlin")


def tariff(*elements: dict[str, Any], **fields: Any) -> Tariff:
    """A EUR tariff from element dicts (JSON shape)."""
    data: dict[str, Any] = {"id": "t-1", "version": 1, "currency": "EUR", "elements": elements}
    return Tariff.model_validate(data | fields)


def element(*components: dict[str, Any], **restrictions: Any) -> dict[str, Any]:
    """An element dict; keyword arguments become its restrictions."""
    result: dict[str, Any] = {"price_components": list(components)}
    if restrictions:
        result["restrictions"] = restrictions
    return result


def pc(kind: str, price: str, vat: str = "0", step: int = 1) -> dict[str, Any]:
    """A price component dict."""
    return {"type": kind, "price": price, "vat": vat, "step_size": step}


def berlin(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    """A Europe/Berlin wall time (fold 0)."""
    return datetime(year, month, day, hour, minute, second, tzinfo=BERLIN)


def constant_power(
    start: datetime, charging_s: int, power_w: int, parking_s: int = 0, every_s: int = 600
) -> SessionUsage:
    """Charging at a constant power with a sample every ``every_s`` seconds (whole Wh)."""
    samples = [
        MeterSample(at=start + timedelta(seconds=t), energy_wh=power_w * t // 3600)
        for t in [*range(every_s, charging_s, every_s), charging_s]
        if t > 0
    ]
    end_charging = start + timedelta(seconds=charging_s)
    return SessionUsage(
        started_at=start,
        charging_ended_at=end_charging,
        ended_at=end_charging + timedelta(seconds=parking_s),
        samples=tuple(samples),
    )
