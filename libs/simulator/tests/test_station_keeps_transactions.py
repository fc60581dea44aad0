"""A simulated charger with a journal keeps its open transaction across a restart, as a real
one does: the restarted simulation boots, says the connector is charging, meters the same
transaction on and stops it when told (against a central system built on the `ocpp` library,
which validates every message against the OCPP schemas)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import websockets
from ocpp.routing import on
from ocpp.v16 import ChargePoint as CentralSystem16
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v21 import ChargePoint as CentralSystem21
from ocpp.v201 import ChargePoint as CentralSystem201
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201
from plugpay_simulator.stations import SimulatedStation
from simulator_central import PASSWORD, Accepting, serving


@dataclass
class Seen:
    """What the central system received, as (kind, transaction id, meter Wh) in order."""

    boots: int = 0
    statuses: list[str] = field(default_factory=list)
    transaction: list[tuple[str, str, int]] = field(default_factory=list)
    central: Any = None  # the connection to the station now
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def saw(self) -> None:
        self.changed.set()

    async def until(self, condition: Callable[[], bool]) -> None:
        async with asyncio.timeout(10):
            while not condition():
                self.changed.clear()
                await self.changed.wait()


def _wh(meter_value: list[dict[str, Any]]) -> int:
    for sample in meter_value[-1]["sampled_value"]:
        if sample.get("measurand") == "Energy.Active.Import.Register":
            return int(float(sample["value"]))
    raise AssertionError(meter_value)


class Counting(Accepting):
    """Boots and statuses are seen alike in every version (the status under its own name)."""

    @on("BootNotification")
    def on_boot(self, **_: Any) -> Any:
        self.seen.boots += 1
        self.seen.saw()
        return self.boot_accepted()

    def status_seen(self, status: str) -> Any:
        self.seen.statuses.append(status)
        self.seen.saw()
        return self.results.StatusNotification()


class Central16(Counting, CentralSystem16):  # type: ignore[misc]
    results = result16

    @on("StatusNotification")
    def on_status(self, status: str, **_: Any) -> Any:
        return self.status_seen(status)

    @on("StartTransaction")
    def on_start(self, meter_start: int, **_: Any) -> Any:
        self.seen.transaction.append(("start", "42", meter_start))
        self.seen.saw()
        return result16.StartTransaction(transaction_id=42, id_tag_info={"status": "Accepted"})

    @on("MeterValues")
    def on_meter(self, transaction_id: int, meter_value: list[dict[str, Any]], **_: Any) -> Any:
        self.seen.transaction.append(("meter", str(transaction_id), _wh(meter_value)))
        self.seen.saw()
        return result16.MeterValues()

    @on("StopTransaction")
    def on_stop(self, transaction_id: int, meter_stop: int, **_: Any) -> Any:
        self.seen.transaction.append(("stop", str(transaction_id), meter_stop))
        self.seen.saw()
        return result16.StopTransaction()


class Central201(Counting, CentralSystem201):  # type: ignore[misc]
    results = result201

    @on("StatusNotification")
    def on_status(self, connector_status: str, **_: Any) -> Any:
        return self.status_seen(connector_status)

    @on("TransactionEvent")
    def on_transaction_event(
        self,
        event_type: str,
        transaction_info: dict[str, Any],
        seq_no: int,
        meter_value: list[dict[str, Any]],
        **_: Any,
    ) -> Any:
        kind = {"Started": "start", "Updated": "meter", "Ended": "stop"}[event_type]
        self.seen.transaction.append((kind, transaction_info["transaction_id"], _wh(meter_value)))
        self.seen.saw()
        return result201.TransactionEvent()


class Central21(Central201):
    """2.1 frames the same messages as 2.0.1 (validated against the 2.1 schemas)."""

    _call = CentralSystem21._call
    _call_result = CentralSystem21._call_result
    _ocpp_version = CentralSystem21._ocpp_version


@pytest.fixture
async def central() -> AsyncIterator[tuple[str, Seen]]:
    seen = Seen()

    async def handler(connection: Any) -> None:
        station_id = connection.request.path.rsplit("/", 1)[-1]
        cls = {"ocpp1.6": Central16, "ocpp2.0.1": Central201, "ocpp2.1": Central21}[
            connection.subprotocol
        ]
        seen.central = cls(station_id, connection, seen)
        await seen.central.start()

    async with serving(handler, ["ocpp1.6", "ocpp2.0.1", "ocpp2.1"]) as url:
        yield url, seen


async def remote_start(seen: Seen, version: str) -> None:
    if version == "1.6":
        await seen.central.call(call16.RemoteStartTransaction(id_tag="7", connector_id=1))
    else:
        await seen.central.call(
            call201.RequestStartTransaction(
                id_token={"id_token": "7", "type": "Central"}, remote_start_id=7, evse_id=1
            )
        )


async def remote_stop(seen: Seen, version: str, transaction_id: str) -> None:
    if version == "1.6":
        await seen.central.call(call16.RemoteStopTransaction(transaction_id=int(transaction_id)))
    else:
        await seen.central.call(call201.RequestStopTransaction(transaction_id=transaction_id))


@pytest.mark.parametrize("version", ["1.6", "2.0.1", "2.1"])
async def test_a_restarted_station_resumes_its_open_transaction(
    central: tuple[str, Seen], version: str, tmp_path: Path
) -> None:
    url, seen = central
    journal = tmp_path / "SIM-1.json"

    def station() -> SimulatedStation:
        return SimulatedStation(
            "SIM-1",
            url,
            PASSWORD,
            ocpp_version=version,
            meter_interval_s=0.05,
            journal=journal,
            energy_speedup=100.0,
        )

    def meters() -> list[tuple[str, str, int]]:
        return [t for t in seen.transaction if t[0] == "meter"]

    first = station()
    await first.connect()
    await remote_start(seen, version)
    await seen.until(lambda: len(meters()) >= 2)
    await first.close()  # the simulation ends with the transaction open
    [(_, tx_id, started_wh)] = [t for t in seen.transaction if t[0] == "start"]
    before = len(seen.transaction)
    last_wh = seen.transaction[-1][2]

    second = station()
    assert second.busy(1)  # the transaction came back from the journal
    await second.connect()
    try:
        await seen.until(lambda: len(meters()) >= before + 1)
        assert seen.boots == 2 and seen.statuses[-1] in ("Charging", "Occupied")
        resumed = seen.transaction[before:]
        # The same transaction metered on from where it was, never a new start.
        assert {t[1] for t in resumed} == {tx_id} and {t[0] for t in resumed} == {"meter"}
        assert resumed[0][2] >= last_wh > started_wh
        await remote_stop(seen, version, tx_id)
        await seen.until(lambda: seen.transaction[-1][0] == "stop")
        assert seen.transaction[-1][1] == tx_id
    finally:
        await second.close()

    # Stopped and reported: a third start of the simulation has nothing open.
    third = station()
    assert not third.busy(1)
    assert third.register_wh(1) >= seen.transaction[-1][2]


async def test_a_stop_the_back_office_never_got_is_sent_after_the_restart(
    central: tuple[str, Seen], tmp_path: Path
) -> None:
    url, seen = central
    journal = tmp_path / "SIM-2.json"
    first = SimulatedStation("SIM-2", url, PASSWORD, meter_interval_s=0.05, journal=journal)
    await first.connect()
    await remote_start(seen, "1.6")
    await seen.until(lambda: any(t[0] == "meter" for t in seen.transaction))
    await first.close()
    with pytest.raises(websockets.ConnectionClosed):  # the link is down; unplugged all the same
        await first.unplug(1)
    assert not any(t[0] == "stop" for t in seen.transaction)

    second = SimulatedStation("SIM-2", url, PASSWORD, meter_interval_s=0.05, journal=journal)
    await second.connect()
    try:
        await seen.until(lambda: seen.transaction[-1][0] == "stop")
        assert seen.transaction[-1][1] == "42"
        assert not second.busy(1)
    finally:
        await second.close()
