"""The simulated charge points against a central system written with the `ocpp` library (its
server side validates every message against the OCPP JSON schemas): a station connects with
Basic auth on its subprotocol, boots, and reports each connector Available."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from ocpp.routing import on
from ocpp.v16 import ChargePoint as CentralSystem16
from ocpp.v16 import call_result as result16
from ocpp.v201 import ChargePoint as CentralSystem201
from ocpp.v201 import call_result as result201
from plugpay_simulator.stations import SimulatedStation
from simulator_central import PASSWORD, Accepting, serving


@dataclass
class Seen:
    """What the central system received."""

    authorization: list[str] = field(default_factory=list)
    subprotocols: list[str | None] = field(default_factory=list)
    boots: list[str] = field(default_factory=list)
    statuses: dict[int, str] = field(default_factory=dict)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def saw(self) -> None:
        self.changed.set()


class Central16(Accepting, CentralSystem16):  # type: ignore[misc]
    results = result16

    @on("BootNotification")
    def on_boot(self, charge_point_vendor: str, charge_point_model: str, **_: Any) -> Any:
        self.seen.boots.append(charge_point_vendor)
        self.seen.saw()
        return self.boot_accepted()

    @on("StatusNotification")
    def on_status(self, connector_id: int, error_code: str, status: str, **_: Any) -> Any:
        self.seen.statuses[connector_id] = status
        self.seen.saw()
        return result16.StatusNotification()


class Central201(Accepting, CentralSystem201):  # type: ignore[misc]
    results = result201

    @on("BootNotification")
    def on_boot(self, charging_station: dict[str, Any], reason: str, **_: Any) -> Any:
        self.seen.boots.append(charging_station["vendor_name"])
        self.seen.saw()
        return self.boot_accepted()

    @on("StatusNotification")
    def on_status(self, evse_id: int, connector_status: str, **_: Any) -> Any:
        self.seen.statuses[evse_id] = connector_status
        self.seen.saw()
        return result201.StatusNotification()


@pytest.fixture
async def central() -> AsyncIterator[tuple[str, Seen]]:
    seen = Seen()

    async def handler(connection: Any) -> None:
        seen.authorization.append(connection.request.headers.get("Authorization", ""))
        seen.subprotocols.append(connection.subprotocol)
        station_id = connection.request.path.rsplit("/", 1)[-1]
        cls = Central16 if connection.subprotocol == "ocpp1.6" else Central201
        await cls(station_id, connection, seen).start()

    async with serving(handler, ["ocpp1.6", "ocpp2.0.1"]) as url:
        yield url, seen


async def until(seen: Seen, condition: Any) -> None:
    """Wait for the central system to have received what ``condition`` checks."""
    async with asyncio.timeout(10):
        while not condition():
            seen.changed.clear()
            await seen.changed.wait()


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_a_station_boots_and_reports_its_connectors(
    central: tuple[str, Seen], version: str
) -> None:
    url, seen = central
    station = SimulatedStation("SIM-1", url, PASSWORD, ocpp_version=version, connectors=2)
    await station.connect()
    try:
        await until(seen, lambda: len(seen.statuses) == 2)
        expected = base64.b64encode(f"SIM-1:{PASSWORD}".encode()).decode()
        assert seen.authorization == [f"Basic {expected}"]
        assert seen.subprotocols == ["ocpp1.6" if version == "1.6" else "ocpp2.0.1"]
        assert seen.boots == ["Plugpay"]
        assert seen.statuses == {1: "Available", 2: "Available"}
        assert station.heartbeat_interval_s == 300  # the interval the central system gave
    finally:
        await station.close()
