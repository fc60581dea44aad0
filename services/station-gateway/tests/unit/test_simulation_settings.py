"""The test-stack departures from reality (fast meters, simulated calendars) are refused in
production, where a station's meter and clock are evidence."""

from __future__ import annotations

import pytest
from plugpay_platform.settings import PlatformSettings
from pydantic import SecretStr, ValidationError
from station_gateway.domain import REAL_STATIONS, Simulation
from station_gateway.settings import Settings


def settings(environment: str, **values: object) -> Settings:
    platform = PlatformSettings(environment=environment, kafka_bootstrap="127.0.0.1:9092")  # type: ignore[arg-type]
    return Settings(database_url=SecretStr("postgresql+asyncpg://x/y"), platform=platform, **values)  # type: ignore[arg-type]


def test_real_stations_by_default() -> None:
    assert settings("production").simulation == REAL_STATIONS


@pytest.mark.parametrize(
    "values",
    [{"simulated_meter_speedup": 60.0}, {"simulated_station_clocks": True}],
)
def test_refused_in_production(values: dict[str, object]) -> None:
    with pytest.raises(ValidationError, match="test stacks only"):
        settings("production", **values)


def test_allowed_in_test_stacks() -> None:
    chosen = settings("test", simulated_meter_speedup=1800.0, simulated_station_clocks=True)
    assert chosen.simulation == Simulation(meter_speedup=1800.0, own_clocks=True)


def test_a_slower_meter_is_not_a_simulation() -> None:
    with pytest.raises(ValidationError):
        settings("test", simulated_meter_speedup=0.5)
