"""Simulated charge points built on the `ocpp` library (OCPP 1.6J, 2.0.1 and 2.1).

A ``SimulatedStation`` behaves like a real charger: it boots, heart-beats, reports connector
status, asks the back office for a session code when a driver picks "pay with phone", starts
when told to, reports meter values while charging, and stops on a remote stop or when the
driver unplugs. Demos, the end-to-end tests and the benchmarks all use it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import websockets
from ocpp.routing import on
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v16 import enums as enums16
from ocpp.v21 import ChargePoint as ChargePoint21
from ocpp.v21 import call as call21
from ocpp.v21 import call_result as result21
from ocpp.v201 import ChargePoint as ChargePoint201
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201
from ocpp.v201 import datatypes as types201
from ocpp.v201 import enums as enums201

log = logging.getLogger(__name__)

VENDOR_ID = "com.plugpay"


def now_iso() -> str:
    return iso(datetime.now(UTC))


def iso(at: datetime) -> str:
    """An OCPP timestamp (UTC, ``Z``)."""
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


# What time it is on a connector's clock (connector 0: the station as a whole).
StationClock = Callable[[int], datetime]


def simulation_settings(energy_speedup: float, *, own_clocks: bool = False) -> dict[str, str]:
    """The station-gateway settings (environment variables) of a test stack whose simulated
    stations meter up to ``energy_speedup`` times faster than real time and, with
    ``own_clocks``, report times on a simulated calendar (``clock=``). Without them the
    gateway's plausibility judgement holds or corrects their sessions, as it would a real
    station's; production refuses them. The demo (``plugpay run``) meters in real time."""
    settings = {"STATION_GATEWAY_SIMULATED_METER_SPEEDUP": str(float(energy_speedup))}
    if own_clocks:
        settings["STATION_GATEWAY_SIMULATED_STATION_CLOCKS"] = "true"
    return settings


@dataclass
class Transaction:
    """A charging transaction on one connector, as the station sees it."""

    connector_id: int
    session_ref: str  # 1.6: the idTag; 2.0.1: the remoteStartId
    transaction_id: str
    meter_start_wh: int
    meter_wh: int
    started: asyncio.Event = field(default_factory=asyncio.Event)
    stopped: asyncio.Event = field(default_factory=asyncio.Event)
    # The stop was sent and answered (or failed): the connector is free for the next driver.
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    stop_reason: str | None = None
    # The stop reached the back office (else it is sent again after a restart).
    stop_sent: bool = False
    seq_no: int = 0  # 2.0.1: the next TransactionEvent's seqNo

    def next_seq(self) -> int:
        self.seq_no += 1
        return self.seq_no - 1


class SimulatedStation:
    """One simulated charger with ``connectors`` connectors."""

    def __init__(
        self,
        station_id: str,
        base_url: str,
        password: str,
        *,
        ocpp_version: str = "1.6",
        connectors: int = 1,
        power_w: int = 11_000,
        meter_interval_s: float = 1.0,
        energy_speedup: float = 1.0,
        meter_start_wh: int = 1_000_000,
        clock: StationClock | None = None,
        journal: Path | None = None,
    ) -> None:
        self.station_id = station_id
        self.base_url = base_url.rstrip("/")
        self.password = password
        self.ocpp_version = ocpp_version
        self.connectors = connectors
        self.power_w = power_w
        self.meter_interval_s = meter_interval_s
        self.energy_speedup = energy_speedup
        # Each connector has its own energy register, as a real charger's meter per EVSE.
        self.meter_start_wh = meter_start_wh
        self.registers: dict[int, int] = {}
        # The station's own clock for the timestamps it reports (status, start, meter values,
        # stop); default the real time. Simulations of past or future activity give their own.
        self.clock = clock
        self.transactions: dict[int, Transaction] = {}
        self.displayed: list[dict[str, Any]] = []
        self.costs: list[dict[str, Any]] = []
        # 2.1: what the back office set (component.variable -> value), tariffs per transaction,
        # web payment notices.
        self.variables: dict[str, str] = {}
        self.tariffs: dict[str, dict[str, Any]] = {}
        self.web_payments: list[dict[str, Any]] = []
        self.start_requests = 0
        # 2.0.1/2.1: the idToken each connector was last told to start with (echoed in its
        # Started event, as a real station does) and the back office's TransactionEvent answers.
        self.start_id_tokens: dict[int, dict[str, Any]] = {}
        self.transaction_answers: list[tuple[str, Any]] = []
        # 2.1: the station's own cost calculation (CostDetailsType, snake_case), sent with each
        # TransactionEvent when set: a claim the back office must not bill from.
        self.claimed_cost_details: dict[str, Any] | None = None
        # Called with (connector_id, session_ref) the moment a start command arrives (benchmarks).
        self.on_start_request: Callable[[int, str], None] | None = None
        self._cp: Any = None
        self._ws: Any = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._next_tx = 1  # 2.0.1: the station numbers its own transactions
        self.heartbeat_interval_s = 60
        # 1.6 StartTransaction calls the back office never answered (the connection dropped):
        # like a real charger's transaction queue, they are sent again after reconnecting.
        self.unsent_starts: dict[int, Any] = {}
        # Connectors with an accepted remote start whose transaction is not open yet: a real
        # charger refuses a second start there (the connector is taken).
        self.starting: set[int] = set()
        # Where the station keeps its open transactions and meter registers, so that a
        # restarted simulation resumes them as a real charger does (None: kept in memory only).
        self.journal = journal
        if journal is not None and journal.exists():
            self._restore(json.loads(journal.read_text()))

    # -- what the station keeps across a restart --------------------------------------------

    def _open_or_unreported(self) -> list[Transaction]:
        return [
            t
            for t in self.transactions.values()
            if t.started.is_set() and not (t.stopped.is_set() and t.stop_sent)
        ]

    def _save(self) -> None:
        if self.journal is None:
            return
        state = {
            "registers": {str(c): wh for c, wh in self.registers.items()},
            "next_tx": self._next_tx,
            "transactions": [
                {
                    "connector_id": t.connector_id,
                    "session_ref": t.session_ref,
                    "transaction_id": t.transaction_id,
                    "meter_start_wh": t.meter_start_wh,
                    "meter_wh": t.meter_wh,
                    "seq_no": t.seq_no,
                    "stop_reason": t.stop_reason if t.stopped.is_set() else None,
                }
                for t in self._open_or_unreported()
            ],
        }
        self.journal.parent.mkdir(parents=True, exist_ok=True)
        partial = self.journal.with_suffix(".partial")
        partial.write_text(json.dumps(state))
        os.replace(partial, self.journal)  # whole or not at all, even if killed mid-write

    def _restore(self, state: dict[str, Any]) -> None:
        self.registers = {int(c): int(wh) for c, wh in state.get("registers", {}).items()}
        self._next_tx = int(state.get("next_tx", 1))
        for saved in state.get("transactions", []):
            tx = Transaction(
                int(saved["connector_id"]),
                str(saved["session_ref"]),
                str(saved["transaction_id"]),
                int(saved["meter_start_wh"]),
                int(saved["meter_wh"]),
                seq_no=int(saved.get("seq_no", 0)),
            )
            tx.started.set()
            if saved.get("stop_reason"):
                tx.stopped.set()
                tx.stop_reason = str(saved["stop_reason"])
            self.transactions[tx.connector_id] = tx

    async def _resume_transactions(self) -> None:
        """After a boot: meter the transactions still open (on this connection) and send the
        stops the back office never received."""
        for tx in self._open_or_unreported():
            if tx.stopped.is_set():
                with contextlib.suppress(Exception):
                    await self._send_stop(tx)
                continue
            self._tasks.append(asyncio.create_task(self._meter_loop(tx)))
            with contextlib.suppress(Exception):
                await self.send_meter_values(tx)

    # -- connection -------------------------------------------------------------------------

    async def connect(self, *, boot: bool = True) -> None:
        """Open the WebSocket with Basic auth, boot and report every connector Available."""
        token = base64.b64encode(f"{self.station_id}:{self.password}".encode()).decode()
        subprotocol = f"ocpp{self.ocpp_version}"
        self._ws = await websockets.connect(
            f"{self.base_url}/ocpp/{self.station_id}",
            subprotocols=[subprotocol],  # type: ignore[list-item]
            additional_headers={"Authorization": f"Basic {token}"},
            open_timeout=10,
        )
        cls = {"1.6": _Handlers16, "2.0.1": _Handlers201, "2.1": _Handlers21}[self.ocpp_version]
        self._cp = cls(self.station_id, self._ws, self)
        self._tasks.append(asyncio.create_task(self._cp.start(), name=f"ocpp-{self.station_id}"))
        if boot:
            await self.boot()

    async def boot(self) -> None:
        if self.ocpp_version == "1.6":
            reply = await self._cp.call(
                call16.BootNotification(
                    charge_point_model="SimCharger", charge_point_vendor="Plugpay"
                )
            )
        else:
            reply = await self._cp.call(
                call201.BootNotification(
                    charging_station={"model": "SimCharger", "vendor_name": "Plugpay"},
                    reason=enums201.BootReasonEnumType.power_up,
                )
            )
        self.heartbeat_interval_s = int(getattr(reply, "interval", 60) or 60)
        for connector in range(1, self.connectors + 1):
            await self.set_status(connector, "Charging" if self.busy(connector) else "Available")
        self._tasks.append(asyncio.create_task(self._heartbeats()))
        await self._send_unsent_starts()
        await self._resume_transactions()

    def timestamp(self, connector_id: int = 0) -> str:
        """The time on ``connector_id``'s clock, as the station reports it."""
        return now_iso() if self.clock is None else iso(self.clock(connector_id))

    def busy(self, connector_id: int) -> bool:
        """A transaction runs (or waits to be reported) on the connector."""
        tx = self.transactions.get(connector_id)
        return (
            connector_id in self.unsent_starts
            or connector_id in self.starting
            or (tx is not None and not tx.stopped.is_set())
        )

    async def _send_unsent_starts(self) -> None:
        for connector_id, request in list(self.unsent_starts.items()):
            reply = await self._cp.call(request)  # raises again if the link is still down
            del self.unsent_starts[connector_id]
            await self._started_16(connector_id, request, reply)

    async def _heartbeats(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_interval_s)
            await self.heartbeat()

    async def heartbeat(self) -> None:
        await self._cp.call(
            call16.Heartbeat() if self.ocpp_version == "1.6" else call201.Heartbeat()
        )

    async def close(self) -> None:
        """Drop the connection (a station losing its network)."""
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            # Bounded: a task that swallowed its cancellation (a library's wait_for racing a
            # reply) must not keep the station from going offline; it ends with its connection.
            await asyncio.wait(self._tasks, timeout=5)
        self._tasks.clear()
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._ws.close(), 10)

    # -- the driver at the station -------------------------------------------------------------

    async def set_status(self, connector_id: int, status: str) -> None:
        if self.ocpp_version == "1.6":
            await self._cp.call(
                call16.StatusNotification(
                    connector_id=connector_id,
                    error_code="NoError",
                    status=status,
                    timestamp=self.timestamp(connector_id),
                )
            )
        else:
            status201 = {
                "Preparing": "Occupied",
                "Charging": "Occupied",
                "Finishing": "Occupied",
            }.get(status, status)
            await self._cp.call(
                call201.StatusNotification(
                    timestamp=self.timestamp(connector_id),
                    connector_status=status201,
                    evse_id=connector_id,
                    connector_id=1,
                )
            )

    async def present_card(self, id_tag: str) -> str:
        """Someone holds a charging card to the reader: the back office's answer (``Invalid``
        for a card Plugpay does not know)."""
        if self.ocpp_version == "1.6":
            reply = await self._cp.call(call16.Authorize(id_tag=id_tag))
            return str(reply.id_tag_info["status"])
        answer = await self._cp.call(
            call201.Authorize(id_token={"id_token": id_tag, "type": "ISO14443"})
        )
        return str(answer.id_token_info["status"])

    async def request_code(self, connector_id: int = 1) -> dict[str, Any]:
        """The driver picked "pay with phone": ask the back office for a session code."""
        import json

        data = json.dumps({"connectorId": connector_id})
        if self.ocpp_version == "1.6":
            reply = await self._cp.call(
                call16.DataTransfer(vendor_id=VENDOR_ID, message_id="RequestSessionCode", data=data)
            )
        else:
            reply = await self._cp.call(
                call201.DataTransfer(
                    vendor_id=VENDOR_ID, message_id="RequestSessionCode", data=data
                )
            )
        status = str(reply.status)
        if "accepted" not in status.lower():
            raise RuntimeError(f"code request refused: {status} {reply.data!r}")
        payload = reply.data
        return json.loads(payload) if isinstance(payload, str) else dict(payload)

    async def unplug(self, connector_id: int = 1) -> None:
        """The driver unplugs: the transaction on that connector ends with EVDisconnected."""
        tx = self.transactions.get(connector_id)
        if tx is not None and not tx.stopped.is_set():
            await self._stop(tx, "EVDisconnected")
        elif tx is not None:
            # A remote stop is being sent: a charger reports the end before the connector free.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(tx.ended.wait(), 30)
        await self.set_status(connector_id, "Available")

    # -- what the back office asks ---------------------------------------------------------------

    async def _start(self, connector_id: int, session_ref: str) -> None:
        try:
            await self._open_transaction(connector_id, session_ref)
        finally:
            self.starting.discard(connector_id)

    async def _open_transaction(self, connector_id: int, session_ref: str) -> None:
        meter_start = self.register_wh(connector_id)
        if self.ocpp_version == "1.6":
            with contextlib.suppress(Exception):  # a status may be lost; the transaction not
                await self.set_status(connector_id, "Preparing")
            request = call16.StartTransaction(
                connector_id=connector_id,
                id_tag=session_ref,
                meter_start=meter_start,
                timestamp=self.timestamp(connector_id),
            )
            try:
                reply = await self._cp.call(request)
            except Exception:
                self.unsent_starts[connector_id] = request
                raise
            await self._started_16(connector_id, request, reply)
            return
        tx_id, self._next_tx = f"{self.station_id}-{self._next_tx}", self._next_tx + 1
        tx = Transaction(connector_id, session_ref, tx_id, meter_start, meter_start)
        self.transactions[connector_id] = tx
        await self._transaction_event(tx, "Started", "RemoteStart")
        await self._charging(tx)
        self._save()

    async def _started_16(self, connector_id: int, request: Any, reply: Any) -> None:
        """The back office answered StartTransaction: charge, or not if the idTag is refused."""
        info = getattr(reply, "id_tag_info", None) or {}
        if str(info.get("status", "")) != "Accepted":
            await self.set_status(connector_id, "Available")
            return
        tx = Transaction(
            connector_id,
            request.id_tag,
            str(reply.transaction_id),
            request.meter_start,
            # A start re-sent after a reconnect: the register may have moved on meanwhile.
            max(request.meter_start, self.register_wh(connector_id)),
        )
        self.transactions[connector_id] = tx
        await self._charging(tx)
        self._save()

    def register_wh(self, connector_id: int) -> int:
        """The connector's energy register now."""
        return self.registers.get(connector_id, self.meter_start_wh)

    async def _charging(self, tx: Transaction) -> None:
        tx.started.set()
        self._tasks.append(asyncio.create_task(self._meter_loop(tx)))
        await self.set_status(tx.connector_id, "Charging")

    async def _meter_loop(self, tx: Transaction) -> None:
        connection = self._ws  # the loop belongs to the connection it started on
        while not tx.stopped.is_set():
            await asyncio.sleep(self.meter_interval_s)
            if tx.stopped.is_set() or self._ws is not connection:
                return
            step = int(self.power_w * self.meter_interval_s * self.energy_speedup / 3600)
            tx.meter_wh += step
            self.registers[tx.connector_id] = tx.meter_wh
            self._save()
            with contextlib.suppress(Exception):
                await self.send_meter_values(tx)

    async def send_meter_values(self, tx: Transaction) -> None:
        sampled = [
            {"measurand": "Energy.Active.Import.Register", "unit": "Wh", "value": str(tx.meter_wh)},
            {"measurand": "Power.Active.Import", "unit": "W", "value": str(self.power_w)},
        ]
        if self.ocpp_version == "1.6":
            await self._cp.call(
                call16.MeterValues(
                    connector_id=tx.connector_id,
                    transaction_id=int(tx.transaction_id),
                    meter_value=[
                        {"timestamp": self.timestamp(tx.connector_id), "sampled_value": sampled}
                    ],
                )
            )
        else:
            await self._transaction_event(tx, "Updated", "MeterValuePeriodic")

    async def _transaction_event(
        self, tx: Transaction, kind: str, trigger: str, stop_reason: str | None = None
    ) -> None:
        info: dict[str, Any] = {"transaction_id": tx.transaction_id}
        if kind == "Started":
            info["remote_start_id"] = int(tx.session_ref)
        if stop_reason:
            info["stopped_reason"] = stop_reason
        at = self.timestamp(tx.connector_id)
        meter = [
            types201.MeterValueType(
                timestamp=at,
                sampled_value=[
                    types201.SampledValueType(
                        value=tx.meter_wh,
                        measurand="Energy.Active.Import.Register",
                        unit_of_measure=types201.UnitOfMeasureType(unit="Wh"),
                    ),
                    types201.SampledValueType(
                        value=self.power_w,
                        measurand="Power.Active.Import",
                        unit_of_measure=types201.UnitOfMeasureType(unit="W"),
                    ),
                ],
            )
        ]
        fields: dict[str, Any] = {
            "event_type": kind,
            "timestamp": at,
            "trigger_reason": trigger,
            "seq_no": tx.next_seq(),
            "transaction_info": info,
            "meter_value": meter,
            "evse": types201.EVSEType(id=tx.connector_id, connector_id=1),
            "id_token": self._started_id_token(tx) if kind == "Started" else None,
        }
        if self.ocpp_version == "2.1" and self.claimed_cost_details is not None:
            request: Any = call21.TransactionEvent(**fields, cost_details=self.claimed_cost_details)
        else:
            request = call201.TransactionEvent(**fields)
        reply = await self._cp.call(request)
        self.transaction_answers.append((kind, reply))

    def _started_id_token(self, tx: Transaction) -> Any:
        given = self.start_id_tokens.get(tx.connector_id)
        if given is None:  # started before this simulation (a restored journal)
            return types201.IdTokenType(id_token=f"remote-{tx.session_ref}", type="Central")
        return types201.IdTokenType(id_token=given["id_token"], type=given["type"])

    async def _stop(self, tx: Transaction, reason: str) -> None:
        if tx.stopped.is_set():
            return
        tx.stopped.set()
        tx.stop_reason = reason
        self._save()
        try:
            await self._send_stop(tx)
        finally:
            tx.ended.set()
        await self.set_status(tx.connector_id, "Finishing")

    async def _send_stop(self, tx: Transaction) -> None:
        reason = tx.stop_reason or "Local"
        if self.ocpp_version == "1.6":
            await self._cp.call(
                call16.StopTransaction(
                    meter_stop=tx.meter_wh,
                    timestamp=self.timestamp(tx.connector_id),
                    transaction_id=int(tx.transaction_id),
                    reason=reason,
                )
            )
        else:
            trigger = "EVCommunicationLost" if reason == "EVDisconnected" else "RemoteStop"
            await self._transaction_event(tx, "Ended", trigger, stop_reason=reason)
        tx.stop_sent = True
        self._save()

    def _find(self, transaction_id: str) -> Transaction | None:
        return next(
            (t for t in self.transactions.values() if t.transaction_id == transaction_id), None
        )


class _Handlers16(ChargePoint16):
    def __init__(self, station_id: str, ws: Any, station: SimulatedStation) -> None:
        super().__init__(station_id, ws)
        self.station = station

    @on(enums16.Action.remote_start_transaction)
    async def on_remote_start(self, id_tag: str, connector_id: int | None = None, **_: Any) -> Any:
        self.station.start_requests += 1
        connector = connector_id or 1
        if self.station.on_start_request is not None:
            self.station.on_start_request(connector, id_tag)
        if self.station.busy(connector):
            return result16.RemoteStartTransaction(status=enums16.RemoteStartStopStatus.rejected)
        self.station.starting.add(connector)
        asyncio.get_running_loop().call_soon(
            lambda: asyncio.ensure_future(self.station._start(connector, id_tag))
        )
        return result16.RemoteStartTransaction(status=enums16.RemoteStartStopStatus.accepted)

    @on(enums16.Action.remote_stop_transaction)
    async def on_remote_stop(self, transaction_id: int, **_: Any) -> Any:
        tx = self.station._find(str(transaction_id))
        if tx is None or tx.stopped.is_set():
            return result16.RemoteStopTransaction(status=enums16.RemoteStartStopStatus.rejected)
        asyncio.get_running_loop().call_soon(
            lambda: asyncio.ensure_future(self.station._stop(tx, "Remote"))
        )
        return result16.RemoteStopTransaction(status=enums16.RemoteStartStopStatus.accepted)

    @on(enums16.Action.data_transfer)
    async def on_data_transfer(
        self, vendor_id: str, message_id: str | None = None, data: str | None = None, **_: Any
    ) -> Any:
        self.station.displayed.append({"message_id": message_id, "data": data})
        return result16.DataTransfer(status=enums16.DataTransferStatus.accepted)

    @on(enums16.Action.get_configuration)
    async def on_get_configuration(self, key: list[str] | None = None, **_: Any) -> Any:
        return result16.GetConfiguration(
            configuration_key=[
                {
                    "key": "HeartbeatInterval",
                    "readonly": False,
                    "value": str(self.station.heartbeat_interval_s),
                }
            ]
        )

    @on(enums16.Action.change_configuration)
    async def on_change_configuration(self, key: str, value: str, **_: Any) -> Any:
        return result16.ChangeConfiguration(status=enums16.ConfigurationStatus.accepted)

    @on(enums16.Action.trigger_message)
    async def on_trigger_message(self, requested_message: str, **_: Any) -> Any:
        return result16.TriggerMessage(status=enums16.TriggerMessageStatus.accepted)


class _Handlers201(ChargePoint201):
    def __init__(self, station_id: str, ws: Any, station: SimulatedStation) -> None:
        super().__init__(station_id, ws)
        self.station = station

    @on(enums201.Action.request_start_transaction)
    async def on_request_start(
        self, id_token: dict[str, Any], remote_start_id: int, evse_id: int | None = None, **_: Any
    ) -> Any:
        self.station.start_requests += 1
        connector = evse_id or 1
        if self.station.on_start_request is not None:
            self.station.on_start_request(connector, str(remote_start_id))
        if self.station.busy(connector):
            return result201.RequestStartTransaction(
                status=enums201.RequestStartStopStatusEnumType.rejected
            )
        self.station.start_id_tokens[connector] = dict(id_token)
        self.station.starting.add(connector)
        asyncio.get_running_loop().call_soon(
            lambda: asyncio.ensure_future(self.station._start(connector, str(remote_start_id)))
        )
        return result201.RequestStartTransaction(
            status=enums201.RequestStartStopStatusEnumType.accepted
        )

    @on(enums201.Action.request_stop_transaction)
    async def on_request_stop(self, transaction_id: str, **_: Any) -> Any:
        tx = self.station._find(transaction_id)
        if tx is None or tx.stopped.is_set():
            return result201.RequestStopTransaction(
                status=enums201.RequestStartStopStatusEnumType.rejected
            )
        asyncio.get_running_loop().call_soon(
            lambda: asyncio.ensure_future(self.station._stop(tx, "Remote"))
        )
        return result201.RequestStopTransaction(
            status=enums201.RequestStartStopStatusEnumType.accepted
        )

    @on(enums201.Action.set_display_message)
    async def on_set_display_message(self, message: dict[str, Any], **_: Any) -> Any:
        self.station.displayed.append(message)
        return result201.SetDisplayMessage(status=enums201.DisplayMessageStatusEnumType.accepted)

    @on(enums201.Action.clear_display_message)
    async def on_clear_display_message(self, id: int, **_: Any) -> Any:
        # what was shown stays in ``displayed`` (tests read the history); the screen is cleared
        return result201.ClearDisplayMessage(status=enums201.ClearMessageStatusEnumType.accepted)

    @on(enums201.Action.cost_updated)
    async def on_cost_updated(self, total_cost: float, transaction_id: str, **_: Any) -> Any:
        self.station.costs.append({"total_cost": total_cost, "transaction_id": transaction_id})
        return result201.CostUpdated()

    @on(enums201.Action.data_transfer)
    async def on_data_transfer(
        self, vendor_id: str, message_id: str | None = None, data: Any = None, **_: Any
    ) -> Any:
        self.station.displayed.append({"message_id": message_id, "data": data})
        return result201.DataTransfer(status=enums201.DataTransferStatusEnumType.accepted)

    @on(enums201.Action.trigger_message)
    async def on_trigger_message(self, requested_message: str, **_: Any) -> Any:
        return result201.TriggerMessage(status=enums201.TriggerMessageStatusEnumType.accepted)


class _Handlers21(_Handlers201):
    """OCPP 2.1: the 2.0.1 charger's behaviour, framed and validated as 2.1; it takes the
    back office's web payment settings, tariffs and web payment notices and keeps them."""

    _call = ChargePoint21._call
    _call_result = ChargePoint21._call_result
    _ocpp_version = ChargePoint21._ocpp_version

    @on("SetVariables")
    async def on_set_variables(self, set_variable_data: list[dict[str, Any]], **_: Any) -> Any:
        for item in set_variable_data:
            key = f"{item['component']['name']}.{item['variable']['name']}"
            self.station.variables[key] = item["attribute_value"]
        return result21.SetVariables(
            set_variable_result=[
                {
                    "attribute_status": "Accepted",
                    "component": item["component"],
                    "variable": item["variable"],
                }
                for item in set_variable_data
            ]
        )

    @on("ChangeTransactionTariff")
    async def on_change_tariff(self, tariff: dict[str, Any], transaction_id: str, **_: Any) -> Any:
        self.station.tariffs[transaction_id] = tariff
        return result21.ChangeTransactionTariff(status="Accepted")

    @on("NotifyWebPaymentStarted")
    def on_web_payment_started(self, evse_id: int, timeout: int, **_: Any) -> Any:
        self.station.web_payments.append({"evse_id": evse_id, "timeout": timeout})
        return result21.NotifyWebPaymentStarted()


async def run_fleet(
    base_url: str,
    *,
    count: int,
    password: str,
    prefix: str = "ST-",
    ocpp_version: str = "1.6",
    reconnect_s: float = 5.0,
    journal_dir: Path | None = None,
) -> None:
    """Keep ``count`` stations (ST-0001...) connected to ``base_url`` until cancelled; with
    ``journal_dir`` each keeps its open transactions there across a restart."""

    async def keep_connected(index: int) -> None:
        station_id = f"{prefix}{index:04d}"
        station = SimulatedStation(
            station_id,
            base_url,
            password,
            ocpp_version=ocpp_version,
            journal=journal_dir / f"{station_id}.json" if journal_dir else None,
        )
        while True:
            try:
                await station.connect()
                await asyncio.wait_for(station._ws.wait_closed(), None)
            except asyncio.CancelledError:
                await station.close()
                raise
            except Exception as error:
                log.info("station %s not connected (%s); retrying", station.station_id, error)
            await station.close()
            await asyncio.sleep(reconnect_s)

    await asyncio.gather(*(keep_connected(i) for i in range(1, count + 1)))
