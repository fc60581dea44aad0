"""The OCPP-J endpoint: Starlette WebSocket in, the ``ocpp`` library's ChargePoint on top.

The library does the framing and schema validation; this module adapts Starlette's WebSocket
to the ``recv()``/``send()`` pair it expects, answers what it leaves unanswered (unparseable
frames, unknown actions, calls before BootNotification) with the CallError OCPP specifies,
and maps each station message to a use case in ``service``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import math
import time
import uuid
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import ocpp.messages
from ocpp.exceptions import OCPPError, SecurityError
from ocpp.messages import CallError, MessageType, unpack
from ocpp.routing import on
from ocpp.v16 import ChargePoint as ChargePoint16Base
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v21 import ChargePoint as ChargePoint21Base
from ocpp.v201 import ChargePoint as ChargePoint201Base
from plugpay_platform.logging import mark_websocket_denied
from plugpay_tariffs import Tariff
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.responses import JSONResponse
from starlette.websockets import (
    WebSocket,
    WebSocketDisconnect,
    WebSocketDisconnected,
    WebSocketState,
)

from station_gateway import domain, service, web_payments
from station_gateway.credentials import StationAuthRefused, basic_credentials
from station_gateway.domain import OcppVersion, parse_meter_values, parse_timestamp
from station_gateway.frame_log import FrameLogFilter
from station_gateway.repository import Repository

if TYPE_CHECKING:
    from station_gateway.gateway import Gateway

log = logging.getLogger(__name__)
# Handed to the ocpp library, which logs whole frames: they are rendered safe first.
ocpp_log = logging.getLogger("station_gateway.ocpp")
ocpp_log.addFilter(FrameLogFilter())

# The library validates every frame against its schema in a worker thread by default. Under
# the GIL that buys no parallelism, and the hop to the thread and back cost more than the
# validation itself (~60 µs for a StatusNotification; ~30 % of the gateway's samples at 600/s).
# Frames are bounded (``max_message_bytes``, 64 KiB ≈ 40 ms of validation at worst).
ocpp.messages.ASYNC_VALIDATION = False

VENDOR_ID = "com.plugpay"
CLOSE_TOO_BIG = 1009
CLOSE_UNSUPPORTED_DATA = 1003
CLOSE_POLICY = 1008

# The database cannot take a write right now (restarting, unreachable, every pooled connection
# busy past the pool's wait). Transaction messages then get the library's CallError, which
# chargers answer by retrying the message (OCPP 1.6 TransactionMessageAttempts, 2.0.1 E04); a
# boot gets Pending and a code request a Rejected with a reason, both of which a station retries.
STORAGE_UNAVAILABLE = (DBAPIError, OSError, TimeoutError, PoolTimeout)
BOOT_RETRY_S = 10


class HandshakeGate:
    """How many stations this process is bringing in at once: from the handshake until the
    station's first message (a reconnect's BootNotification) has been answered.

    When every station reconnects together (a site's power or a mobile network comes back),
    the ones beyond ``limit`` are answered at once with 503 and a Retry-After that gives each
    its own turn: turns are handed out one after another at the pace the gate lets stations
    through (``limit`` places, each held for the mean time stations have recently taken to
    get in), no sooner than ``retry_after_s``. Told once, a site comes back spread over as long
    as this process needs to bring it in, not all in the same second and not into a gate
    that is still full. Counting to the first answer, not just the handshake, keeps admitted
    stations from flooding the event loop with boots faster than they are answered.
    """

    def __init__(
        self,
        limit: int,
        retry_after_s: int = BOOT_RETRY_S,
        max_retry_after_s: int = 600,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.retry_after_s = retry_after_s
        self.max_retry_after_s = max_retry_after_s
        self.clock = clock
        self.in_flight = 0
        self.turned_away = 0
        self.mean_hold_s = 1.0  # how long an admitted station takes to get in (moving mean)
        self._next_turn = 0.0

    def enter(self) -> bool:
        if self.in_flight >= self.limit:
            self.turned_away += 1
            return False
        self.in_flight += 1
        return True

    def leave(self, held_s: float | None = None) -> None:
        """Give a place back; ``held_s``: the station got in after holding it that long."""
        self.in_flight -= 1
        if held_s is not None:
            self.mean_hold_s += 0.05 * (held_s - self.mean_hold_s)

    def retry_after(self) -> int:
        """Whole seconds until the next free turn for a station turned away now."""
        now = self.clock()
        # Beyond the cap every station gets the cap; the queue of turns does not run on past it
        # (a huge storm would otherwise leave later, lone stations waiting the longest).
        turn = min(max(now + self.retry_after_s, self._next_turn), now + self.max_retry_after_s)
        self._next_turn = turn + max(self.mean_hold_s, 0.01) / self.limit
        return math.ceil(turn - now)


class Admission:
    """One station's place in the ``HandshakeGate``, given back once."""

    def __init__(self, gate: HandshakeGate) -> None:
        self._gate: HandshakeGate | None = gate
        self._since = gate.clock()

    def release(self, *, got_in: bool = False) -> None:
        """Give the place back; ``got_in``: the station's first message was answered (or it
        held the place in silence to the end), which is how long getting in takes."""
        if self._gate is not None:
            self._gate.leave(self._gate.clock() - self._since if got_in else None)
            self._gate = None


# A station that says nothing after its handshake gives its place back after this long.
FIRST_MESSAGE_S = 10.0


# The two versions spell some error codes differently.
_CODES = {
    "1.6": {
        "FormatViolation": "FormationViolation",
        "OccurrenceConstraintViolation": "OccurenceConstraintViolation",
        "RpcFrameworkError": "FormationViolation",
        "MessageTypeNotSupported": "NotSupported",
    },
    "2.0.1": {
        "FormationViolation": "FormatViolation",
        "OccurenceConstraintViolation": "OccurrenceConstraintViolation",
    },
}
_CODES["2.1"] = _CODES["2.0.1"]


def utc_iso(value: datetime | None = None) -> str:
    value = value or datetime.now(UTC)
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class MessageTooBig(Exception):
    """A frame over the configured limit: the connection closes with 1009."""


class BinaryFrame(Exception):
    """OCPP-J is text only: the connection closes with 1003."""


class StarletteConnection:
    """What the ocpp library needs of a connection: ``recv()`` and ``send()``."""

    def __init__(self, websocket: WebSocket, max_bytes: int) -> None:
        self.websocket = websocket
        self.max_bytes = max_bytes

    async def recv(self) -> str:
        message = await self.websocket.receive()
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", 1000))
        text = message.get("text")
        if text is None:
            raise BinaryFrame()
        if len(text.encode()) > self.max_bytes:
            raise MessageTooBig(len(text))
        return str(text)

    async def send(self, data: str) -> None:
        await self.websocket.send_text(data)


def _unique_id_of(raw: str) -> str:
    with contextlib.suppress(Exception):
        parsed = json.loads(raw)
        if isinstance(parsed, list) and len(parsed) > 1 and isinstance(parsed[1], str):
            return parsed[1][:36]
    return "-1"


class StationProtocol:
    """Behaviour shared by both versions: error answers, background calls, presence."""

    id: str  # the station id, set by the ocpp library's ChargePoint
    version: OcppVersion
    _ocpp_version: str

    def setup(self, gateway: Gateway, connection_id: uuid.UUID, booted: bool) -> None:
        self.gateway = gateway
        self.connection_id = connection_id
        self.connected_at = datetime.now(UTC)
        self.booted = booted
        self.tasks: set[asyncio.Task[Any]] = set()
        self.admission: Admission | None = None

    # The library would log and drop these; OCPP wants a CallError (message id "-1" if unknown).
    async def route_message(self, raw_msg: str) -> None:
        try:
            msg = unpack(raw_msg)
            if msg.message_type_id == MessageType.Call:
                if not isinstance(msg.unique_id, str) or not isinstance(msg.action, str):
                    await self._send_error(_unique_id_of(raw_msg), "FormatViolation", "bad frame")
                    return
                if not isinstance(msg.payload, dict):
                    await self._send_error(
                        msg.unique_id, "TypeConstraintViolation", "payload must be an object"
                    )
                    return
                if (field := _out_of_range_integer(msg.payload)) is not None:
                    await self._send_error(
                        msg.unique_id, "PropertyConstraintViolation", f"{field} is out of range"
                    )
                    return
                if msg.action not in self.route_map:  # type: ignore[attr-defined]
                    await self._send_error(
                        msg.unique_id, "NotImplemented", f"unknown action {msg.action}"[:200]
                    )
                    return
                if not self.booted and msg.action != "BootNotification":
                    # 2.0.1 B02/B03: nothing but BootNotification before it was accepted, a
                    # Heartbeat included (1.6 alike: a station boots before it talks).
                    await self._send_error(
                        msg.unique_id, SecurityError.code, "send BootNotification first"
                    )
                    return
                await self._touch()
            elif msg.message_type_id == MessageType.CallResult and not isinstance(
                msg.payload, dict
            ):
                return
        except OCPPError as error:
            code = error.code
            if code == "PropertyConstraintViolation":
                code = "MessageTypeNotSupported"
            elif code in ("FormatViolation", "ProtocolError") and _unique_id_of(raw_msg) == "-1":
                code = "RpcFrameworkError"
            await self._send_error(_unique_id_of(raw_msg), code, str(error.description))
            return
        except Exception:
            log.exception("station %s: unreadable frame", self.id)
            await self._send_error(_unique_id_of(raw_msg), "InternalError", "unreadable frame")
            return
        await super().route_message(raw_msg)  # type: ignore[misc]
        if self.admission is not None:
            self.admission.release(got_in=True)  # its first message is answered

    async def _send_error(self, unique_id: str, code: str, description: str) -> None:
        await self._send(CallError(unique_id, code, description, {}).to_json())

    async def _send(self, message: str) -> None:
        if message.startswith("[4"):
            # Version-correct code names, and no echo of the offending message in details.
            with contextlib.suppress(Exception):
                _, uid, code, description, details = json.loads(message)
                code = _CODES[self.version].get(code, code)
                cause = details.get("cause") if isinstance(details, dict) else None
                message = json.dumps(
                    [
                        4,
                        uid,
                        code,
                        str(description)[:255],
                        {"cause": str(cause)[:255]} if cause else {},
                    ],
                    separators=(",", ":"),
                )
        ocpp_log.debug("%s <- %s", self.id, message)
        await self._connection.send(message)  # type: ignore[attr-defined]

    async def _touch(self) -> None:
        # Any message is a sign of life; the gateway writes them all at its next beat.
        self.gateway.saw(self.id, self.connection_id)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run a call to the station outside the handler (the handler's answer goes first)."""
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("station %s: background call failed: %r", self.id, task.exception())

    async def call_station(self, payload: Any) -> Any:
        """A call to the station; raises on CallError or timeout."""
        return await self.call(payload, suppress=False)  # type: ignore[attr-defined]

    async def _card_refused(self) -> None:
        # Best effort: the screen's hint must never fail the Authorize answer.
        with contextlib.suppress(Exception):
            async with self.gateway.database.write() as session:
                await service.card_refused(session, self.id)

    async def inform(self, payload: Any) -> Any | None:
        """An informational call (display text, a cost): given up after a short wait, quietly.
        OCPP-J allows one outstanding call per connection, so a station that never answers one
        would otherwise hold a start, a stop or a new code behind it for the full timeout."""
        timeout = self.gateway.settings.informational_timeout_s
        action = type(payload).__name__
        try:
            return await asyncio.wait_for(self.call_station(payload), timeout)
        except TimeoutError:
            log.info(
                "station %s: no answer to %s within %.0f s (informational)",
                self.id,
                action,
                timeout,
            )
        except OCPPError as error:
            log.info("station %s: %s refused: %s (informational)", self.id, action, error)
        return None

    async def code_requested(self, connector_id: int, *, reuse_open: bool) -> service.IssuedCode:
        async with self.gateway.database.write() as session:
            issued = await self.gateway.code_issuer().issue(
                session,
                self.id,
                connector_id,
                reuse_open=reuse_open,
            )
        self.spawn(self.show_code(issued))
        return issued

    async def show_code(self, issued: service.IssuedCode) -> None:
        raise NotImplementedError

    async def web_payment_started(self, evse_id: int, timeout_s: int) -> None:
        """Only 2.1 has a message for it; the back office's hold applies to every version."""

    async def after_meter(self, outcome: service.MeterOutcome) -> None:
        if outcome.limit and outcome.session_id:
            await self.gateway.stop_at_limit(outcome.session_id)

    def data_of(self, data: Any) -> dict[str, Any]:
        if isinstance(data, str):
            try:
                data = json.loads(data)
            except ValueError:
                return {}
        return data if isinstance(data, dict) else {}

    async def on_session_code_request(self, data: Any) -> dict[str, Any] | None:
        fields = self.data_of(data)
        connector = fields.get("connectorId", fields.get("connector_id"))
        if not isinstance(connector, int) or isinstance(connector, bool) or connector < 1:
            return None
        try:
            issued = await self.code_requested(connector, reuse_open=False)
        except STORAGE_UNAVAILABLE as error:
            raise service.GatewayRefusal(
                "temporarily_unavailable", "no code can be issued right now; try again"
            ) from error
        return issued.reply()


INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def _out_of_range_integer(payload: Any) -> str | None:
    """The first field holding an integer no OCPP field may hold (OCPP integers are 32-bit), so
    it is refused before it reaches a use case or a column."""
    stack: list[tuple[str, Any]] = [("", payload)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, bool):
            continue
        if isinstance(value, int) and not INT32_MIN <= value <= INT32_MAX:
            return path or "payload"
        if isinstance(value, dict):
            stack.extend((f"{path}.{k}" if path else str(k), v) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((f"{path}[{i}]", v) for i, v in enumerate(value))
    return None


def _status_at(timestamp: str | None) -> datetime:
    return parse_timestamp(timestamp, service.now_utc())


class ChargePoint16(StationProtocol, ChargePoint16Base):
    version: OcppVersion = "1.6"

    @on("BootNotification")
    async def on_boot(self, charge_point_vendor: str, charge_point_model: str, **kw: Any) -> Any:
        try:
            firmware = kw.get("firmware_version")
            at = service.now_utc()
            boot = service.Boot(self.id, charge_point_vendor, charge_point_model, firmware, at)
            await self.gateway.boots.submit(boot)
        except STORAGE_UNAVAILABLE:
            log.warning("station %s: boot not stored (database unavailable); Pending", self.id)
            return result16.BootNotification(
                current_time=utc_iso(), interval=BOOT_RETRY_S, status="Pending"
            )
        self.booted = True
        return result16.BootNotification(
            current_time=utc_iso(),
            interval=self.gateway.settings.heartbeat_interval_s,
            status="Accepted",
        )

    @on("Heartbeat")
    async def on_heartbeat(self) -> Any:
        return result16.Heartbeat(current_time=utc_iso())

    @on("StatusNotification")
    async def on_status(self, connector_id: int, error_code: str, status: str, **kw: Any) -> Any:
        at = _status_at(kw.get("timestamp"))
        report = service.StatusReport(self.id, connector_id, status, error_code, at)
        previous = await self.gateway.statuses.submit(report)
        if status == "Preparing" and previous != "Preparing" and connector_id > 0:
            with contextlib.suppress(service.GatewayRefusal):
                await self.code_requested(connector_id, reuse_open=True)
        return result16.StatusNotification()

    @on("Authorize")
    async def on_authorize(self, id_tag: str) -> Any:
        async with self.gateway.database.read() as session:
            row = await Repository(session).session_by(
                station_id=self.id, id_tag=id_tag, lock=False
            )
        ok = row is not None and row["state"] in ("authorized", "starting", "charging")
        if not ok:
            await self._card_refused()
            self.spawn(
                self._vendor_message("DisplayCardRefused", {"message": service.CARD_REFUSED_TEXT})
            )
        return result16.Authorize(id_tag_info={"status": "Accepted" if ok else "Invalid"})

    @on("StartTransaction")
    async def on_start(
        self, connector_id: int, id_tag: str, meter_start: int, timestamp: str, **_: Any
    ) -> Any:
        async with self.gateway.database.write() as session:
            started = await service.start_transaction_16(
                session,
                self.id,
                connector_id,
                id_tag,
                meter_start,
                _status_at(timestamp),
                self.gateway.start_timeout,
            )
        status = "Accepted" if started.accepted else "Invalid"
        return result16.StartTransaction(
            transaction_id=int(started.transaction_id), id_tag_info={"status": status}
        )

    @on("MeterValues")
    async def on_meter_values(
        self,
        connector_id: int,
        meter_value: list[dict[str, Any]],
        transaction_id: int | None = None,
    ) -> Any:
        if transaction_id is not None:
            readings = parse_meter_values(meter_value, service.now_utc())
            async with self.gateway.database.write() as session:
                outcome = await service.record_meter_values(
                    session, self.id, str(transaction_id), readings
                )
            self.spawn(self.after_meter(outcome))
        return result16.MeterValues()

    @on("StopTransaction")
    async def on_stop(self, meter_stop: int, timestamp: str, transaction_id: int, **kw: Any) -> Any:
        readings = parse_meter_values(kw.get("transaction_data") or (), service.now_utc())
        async with self.gateway.database.write() as session:
            await service.complete_transaction(
                session,
                self.id,
                str(transaction_id),
                version="1.6",
                meter_stop_wh=meter_stop,
                ended_at=_status_at(timestamp),
                reported_reason=kw.get("reason"),
                readings=readings,
                simulation=self.gateway.settings.simulation,
            )
        return result16.StopTransaction(id_tag_info={"status": "Accepted"})

    @on("DataTransfer")
    async def on_data_transfer(
        self, vendor_id: str, message_id: str | None = None, data: Any = None
    ) -> Any:
        if vendor_id != VENDOR_ID:
            return result16.DataTransfer(status="UnknownVendorId")
        if message_id != "RequestSessionCode":
            return result16.DataTransfer(status="UnknownMessageId")
        try:
            reply = await self.on_session_code_request(data)
        except service.GatewayRefusal as refusal:
            return result16.DataTransfer(
                status="Rejected",
                data=json.dumps({"reason": refusal.reason, "message": refusal.message}),
            )
        if reply is None:
            return result16.DataTransfer(
                status="Rejected", data=json.dumps({"reason": "bad_request"})
            )
        return result16.DataTransfer(status="Accepted", data=json.dumps(reply))

    @on("DiagnosticsStatusNotification")
    async def on_diagnostics(self, status: str) -> Any:
        return result16.DiagnosticsStatusNotification()

    @on("FirmwareStatusNotification")
    async def on_firmware(self, status: str) -> Any:
        return result16.FirmwareStatusNotification()

    async def _vendor_message(
        self, message_id: str, data: dict[str, Any], *, informational: bool = True
    ) -> Any:
        message = call16.DataTransfer(
            vendor_id=VENDOR_ID, message_id=message_id, data=json.dumps(data)
        )
        return await (self.inform(message) if informational else self.call_station(message))

    async def show_code(self, issued: service.IssuedCode) -> None:
        await self._vendor_message(
            "DisplaySessionCode",
            {"connectorId": issued.connector_id, **issued.reply()},
            informational=False,
        )

    async def remote_start(self, row: Any) -> str:
        result = await self.call_station(
            call16.RemoteStartTransaction(id_tag=row["id_tag"], connector_id=row["connector_id"])
        )
        return str(result.status)

    async def remote_stop(self, row: Any) -> str:
        result = await self.call_station(
            call16.RemoteStopTransaction(transaction_id=int(row["transaction_id"]))
        )
        return str(result.status)

    async def show_denied(self, row: Any, reason: str, message: str) -> None:
        await self._vendor_message(
            "DisplaySessionDenied",
            {
                "connectorId": row["connector_id"],
                "sessionId": str(row["session_id"]),
                "reason": reason,
                "message": message,
            },
        )

    async def show_cost(self, row: Any, amount_minor: int, currency: str) -> None:
        await self._vendor_message(
            "DisplaySessionCost",
            {
                "connectorId": row["connector_id"],
                "sessionId": str(row["session_id"]),
                "transactionId": row["transaction_id"],
                "totalCostMinor": amount_minor,
                "currency": currency,
            },
        )

    async def clear_code(self, row: Any) -> None:
        await self._vendor_message(
            "ClearSessionCode",
            {"connectorId": row["connector_id"], "sessionId": str(row["session_id"])},
        )

    def operator_call(self, action: str, payload: dict[str, Any]) -> Any:
        return getattr(call16, action)(**payload)


class ChargePoint201(StationProtocol, ChargePoint201Base):
    version: OcppVersion = "2.0.1"

    @on("BootNotification")
    async def on_boot(self, charging_station: dict[str, Any], reason: str, **_: Any) -> Any:
        try:
            boot = service.Boot(
                self.id,
                charging_station.get("vendor_name", ""),
                charging_station.get("model", ""),
                charging_station.get("firmware_version"),
                service.now_utc(),
            )
            await self.gateway.boots.submit(boot)
        except STORAGE_UNAVAILABLE:
            log.warning("station %s: boot not stored (database unavailable); Pending", self.id)
            return self._call_result.BootNotification(
                current_time=utc_iso(), interval=BOOT_RETRY_S, status="Pending"
            )
        self.booted = True
        self.spawn(self.after_boot())
        return self._call_result.BootNotification(
            current_time=utc_iso(),
            interval=self.gateway.settings.heartbeat_interval_s,
            status="Accepted",
        )

    @on("Heartbeat")
    async def on_heartbeat(self, **_: Any) -> Any:
        return self._call_result.Heartbeat(current_time=utc_iso())

    @on("StatusNotification")
    async def on_status(
        self, timestamp: str, connector_status: str, evse_id: int, connector_id: int, **_: Any
    ) -> Any:
        at = _status_at(timestamp)
        report = service.StatusReport(self.id, evse_id, connector_status, None, at)
        previous = await self.gateway.statuses.submit(report)
        # 2.0.1 has no Preparing; Occupied on an idle EVSE is the plug-in.
        if connector_status == "Occupied" and previous in (None, "Available") and evse_id > 0:
            with contextlib.suppress(service.GatewayRefusal):
                await self.code_requested(evse_id, reuse_open=True)
        return self._call_result.StatusNotification()

    @on("Authorize")
    async def on_authorize(self, id_token: dict[str, Any], **_: Any) -> Any:
        async with self.gateway.database.read() as session:
            row = await Repository(session).session_by(
                station_id=self.id, id_tag=id_token.get("id_token"), lock=False
            )
            ok = (
                row is not None
                and row["state"] in ("authorized", "starting", "charging")
                and await service.id_token_accepted(session, row, id_token)
            )
        if not ok:
            await self._card_refused()
            self.spawn(
                self.inform(
                    self._call.SetDisplayMessage(
                        message={
                            "id": 3,
                            "priority": "InFront",
                            "message": {"format": "ASCII", "content": service.CARD_REFUSED_TEXT},
                            "display": {"name": "Plugpay"},
                        }
                    )
                )
            )
        return self._call_result.Authorize(
            id_token_info={"status": "Accepted" if ok else "Invalid"}
        )

    @on("TransactionEvent")
    async def on_transaction_event(
        self,
        event_type: str,
        timestamp: str,
        trigger_reason: str,
        seq_no: int,
        transaction_info: dict[str, Any],
        **kw: Any,
    ) -> Any:
        at = _status_at(timestamp)
        transaction_id = str(transaction_info["transaction_id"])
        readings = parse_meter_values(kw.get("meter_value") or (), at)
        presented = kw.get("id_token")
        id_token = (presented or {}).get("id_token")
        outcome = None
        final: service.EndedCost | None = None
        token_ok: bool | None = None
        async with self.gateway.database.write() as session:
            row = await service.find_transaction_201(
                session, self.id, transaction_id, transaction_info.get("remote_start_id"), id_token
            )
            if row is not None and not await service.id_token_accepted(session, row, presented):
                # A DirectPayment token names a guest's card payment: that session's only.
                log.info("station %s: idToken refused for transaction %s", self.id, transaction_id)
                token_ok = False
            elif row is not None and row["transaction_id"] is None:
                token_ok = await service.link_transaction_201(
                    session, row, transaction_id, readings, at, self.gateway.start_timeout
                )
            elif row is not None:
                token_ok = True
            if event_type == "Ended":
                await service.complete_transaction(
                    session,
                    self.id,
                    transaction_id,
                    version=self.version,
                    meter_stop_wh=None,
                    ended_at=at,
                    reported_reason=transaction_info.get("stopped_reason"),
                    readings=readings,
                    simulation=self.gateway.settings.simulation,
                )
                final = await service.ended_cost(session, self.id, transaction_id)
            elif readings:
                outcome = await service.record_meter_values(
                    session, self.id, transaction_id, readings
                )
        if outcome is not None:
            self.spawn(self.after_meter(outcome))
        answer: dict[str, Any] = {}
        if event_type == "Started" and row is not None and token_ok:
            answer.update(self.start_terms(row, transaction_id))
        if id_token is not None:
            answer["id_token_info"] = {"status": "Accepted" if token_ok else "Invalid"}
        # totalCost is the final cost, so only in the Ended answer (2.0.1 and 2.1 E/I); the
        # running cost is for the driver's eyes, as the personal message.
        if final is not None:
            answer["total_cost"] = domain.major_units(final.amount_minor, final.currency)
        elif outcome is not None and outcome.cost_so_far_minor is not None and outcome.currency:
            amount = domain.major_units(outcome.cost_so_far_minor, outcome.currency)
            answer["updated_personal_message"] = {
                "format": "ASCII",
                "content": f"Cost so far: {amount:.2f} {outcome.currency}",
            }
        return self._call_result.TransactionEvent(**answer)

    def start_terms(self, row: Any, transaction_id: str) -> dict[str, Any]:
        """What the Started answer adds for this version (2.0.1: nothing)."""
        return {}

    async def after_boot(self) -> None:
        """What the back office sets up once the station is accepted (2.0.1: nothing)."""

    @on("MeterValues")
    async def on_meter_values(
        self, evse_id: int, meter_value: list[dict[str, Any]], **_: Any
    ) -> Any:
        return self._call_result.MeterValues()  # outside a transaction: nothing to bill

    @on("DataTransfer")
    async def on_data_transfer(
        self, vendor_id: str, message_id: str | None = None, data: Any = None, **_: Any
    ) -> Any:
        if vendor_id != VENDOR_ID:
            return self._call_result.DataTransfer(status="UnknownVendorId")
        if message_id != "RequestSessionCode":
            return self._call_result.DataTransfer(status="UnknownMessageId")
        try:
            reply = await self.on_session_code_request(data)
        except service.GatewayRefusal as refusal:
            return self._call_result.DataTransfer(
                status="Rejected", data={"reason": refusal.reason, "message": refusal.message}
            )
        if reply is None:
            return self._call_result.DataTransfer(status="Rejected", data={"reason": "bad_request"})
        return self._call_result.DataTransfer(status="Accepted", data=reply)

    @on("NotifyEvent")
    async def on_notify_event(self, **_: Any) -> Any:
        return self._call_result.NotifyEvent()

    @on("NotifyReport")
    async def on_notify_report(self, **_: Any) -> Any:
        return self._call_result.NotifyReport()

    @on("SecurityEventNotification")
    async def on_security_event(self, **_: Any) -> Any:
        return self._call_result.SecurityEventNotification()

    @on("FirmwareStatusNotification")
    async def on_firmware(self, **_: Any) -> Any:
        return self._call_result.FirmwareStatusNotification()

    @on("LogStatusNotification")
    async def on_log_status(self, **_: Any) -> Any:
        return self._call_result.LogStatusNotification()

    @staticmethod
    def _message_id(session_id: Any, slot: int = 0) -> int:
        return int(uuid.UUID(str(session_id)).hex[:7], 16) * 4 + slot

    def _display_message(
        self, session_id: Any, slot: int, fmt: str, content: str, evse: int
    ) -> Any:
        return self._call.SetDisplayMessage(
            message={
                "id": self._message_id(session_id, slot),
                "priority": "InFront",
                "message": {"format": fmt, "content": content[:512]},
                "display": {"name": "Plugpay", "evse": {"id": evse}},
            }
        )

    async def _display(self, session_id: Any, slot: int, fmt: str, content: str, evse: int) -> None:
        await self.inform(self._display_message(session_id, slot, fmt, content, evse))

    async def show_code(self, issued: service.IssuedCode) -> None:
        qr = self._display_message(issued.session_id, 0, "URI", issued.qr_url, issued.connector_id)
        try:
            qr_shown = str((await self.call_station(qr)).status) == "Accepted"
        except OCPPError as error:
            log.info("station %s: QR display refused: %s", self.id, error)
            qr_shown = False
        # The typed code in plain text always; alone (and said so) when the station cannot show
        # the QR (NotSupportedMessageFormat, a CallError): never no code at all.
        text = (
            f"Pay with phone: scan or enter {issued.code}"
            if qr_shown
            else f"Pay with phone: open the Plugpay app and enter {issued.code}"
        )
        await self.call_station(
            self._display_message(issued.session_id, 1, "ASCII", text, issued.connector_id)
        )

    async def remote_start(self, row: Any) -> str:
        async with self.gateway.database.read() as session:
            id_token = await service.start_id_token(session, row, version=self.version)
        result = await self.call_station(
            self._call.RequestStartTransaction(
                id_token=id_token,
                remote_start_id=int(row["remote_start_id"]),
                evse_id=row["connector_id"],
            )
        )
        return str(result.status)

    async def remote_stop(self, row: Any) -> str:
        result = await self.call_station(
            self._call.RequestStopTransaction(transaction_id=str(row["transaction_id"]))
        )
        return str(result.status)

    async def show_denied(self, row: Any, reason: str, message: str) -> None:
        await self._display(
            row["session_id"], 2, "UTF8", f"Not authorised: {message}", row["connector_id"]
        )

    async def show_cost(self, row: Any, amount_minor: int, currency: str) -> None:
        if row["transaction_id"]:
            await self.inform(
                self._call.CostUpdated(
                    total_cost=amount_minor / 100, transaction_id=row["transaction_id"]
                )
            )

    async def clear_code(self, row: Any) -> None:
        for slot in (0, 1):
            await self.inform(
                self._call.ClearDisplayMessage(id=self._message_id(row["session_id"], slot))
            )

    def operator_call(self, action: str, payload: dict[str, Any]) -> Any:
        return getattr(self._call, action)(**payload)


class ChargePoint21(ChargePoint201):
    """OCPP 2.1: the 2.0.1 behaviour, framed and validated against the 2.1 schemas."""

    version: OcppVersion = "2.1"
    _call = ChargePoint21Base._call
    _call_result = ChargePoint21Base._call_result
    _ocpp_version = ChargePoint21Base._ocpp_version

    async def after_boot(self) -> None:
        """C25: provision the WebPaymentsCtrlr (URL template, shared secret, validity, length)
        so the station shows a dynamic payment code the landing route can check."""
        settings = self.gateway.settings
        async with self.gateway.database.write() as session:
            terms = await service.web_payment_terms(
                session, self.id, settings.web_payment_validity_s, settings.web_payment_code_length
            )
        values = {
            "Enabled": "true",
            "URLTemplate": web_payments.url_template(settings.platform.public_base_url),
            "SharedSecret": terms.shared_secret,
            "ValidityTime": str(terms.validity_s),
            "Length": str(terms.length),
        }
        result = await self.inform(
            self._call.SetVariables(
                set_variable_data=[
                    {
                        "attribute_value": value,
                        "component": {"name": web_payments.COMPONENT},
                        "variable": {"name": name},
                    }
                    for name, value in values.items()
                ]
            )
        )
        statuses = [
            r.get("attribute_status") for r in (result.set_variable_result if result else [])
        ]
        if len(statuses) == len(values) and all(status == "Accepted" for status in statuses):
            async with self.gateway.database.write() as session:
                await service.web_payment_provisioned(session, self.id)
        else:
            log.info("station %s: WebPaymentsCtrlr not provisioned: %s", self.id, statuses)

    async def web_payment_started(self, evse_id: int, timeout_s: int) -> None:
        """C25: the payer is on the landing page; the station locks the EVSE meanwhile."""
        await self.inform(self._call.NotifyWebPaymentStarted(evse_id=evse_id, timeout=timeout_s))

    def start_terms(self, row: Any, transaction_id: str) -> dict[str, Any]:
        # 2.1 takes the limits in the Started answer (RequestStartTransaction has no field for
        # them) and the driver's tariff as ChangeTransactionTariff once the transaction exists.
        if row["tariff"] and not row["free_of_charge"]:
            tariff = domain.ocpp_tariff(Tariff.model_validate(row["tariff"]))
            if tariff is not None:
                self.spawn(
                    self.inform(
                        self._call.ChangeTransactionTariff(
                            tariff=tariff, transaction_id=transaction_id
                        )
                    )
                )
        limit = domain.transaction_limit(row["limits"])
        return {"transaction_limit": limit} if limit else {}


StationHandler = ChargePoint16 | ChargePoint201

HANDLERS: dict[OcppVersion, Callable[..., StationHandler]] = {
    "1.6": ChargePoint16,
    "2.0.1": ChargePoint201,
    "2.1": ChargePoint21,
}


async def refuse(
    websocket: WebSocket,
    status: int,
    reason: str,
    message: str,
    headers: dict[str, str] | None = None,
) -> None:
    """Refuse at the handshake: an HTTP answer where the server allows it, else a close."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        mark_websocket_denied()
        await websocket.send_denial_response(
            JSONResponse({"reason": reason, "message": message}, status, headers=headers)
        )
    else:
        await websocket.close(code=CLOSE_POLICY, reason=reason)


async def serve_station(websocket: WebSocket, station_id: str, gateway: Gateway) -> None:
    """One station's connection, from handshake to close."""
    offered = websocket.scope.get("subprotocols") or []
    chosen = next((p for p in offered if p in domain.SUBPROTOCOLS), None)
    if chosen is None:
        await refuse(
            websocket,
            400,
            "subprotocol_unsupported",
            "offer subprotocol ocpp1.6, ocpp2.0.1 or ocpp2.1",
        )
        return
    if not gateway.handshakes.enter():
        await refuse(
            websocket,
            503,
            "busy",
            "too many stations are connecting at once; try again later",
            {"Retry-After": str(gateway.handshakes.retry_after())},
        )
        return
    admission = Admission(gateway.handshakes)
    try:
        handler = await _handshake(websocket, station_id, gateway, chosen)
    except BaseException:
        admission.release()
        raise
    if handler is None:
        admission.release()
        return
    handler.admission = admission
    silent = asyncio.get_running_loop().call_later(
        FIRST_MESSAGE_S, functools.partial(admission.release, got_in=True)
    )
    close_code = 1000
    try:
        await handler.start()
    except (WebSocketDisconnect, WebSocketDisconnected):
        pass  # gone, or gone while we answered it (a station that timed out, a storm's retry)
    except MessageTooBig:
        close_code = CLOSE_TOO_BIG
    except BinaryFrame:
        close_code = CLOSE_UNSUPPORTED_DATA
    except Exception:
        log.exception("station %s: connection failed", station_id)
        close_code = 1011
    finally:
        silent.cancel()
        admission.release()
        await gateway.detach(handler)
        for task in list(handler.tasks):
            task.cancel()
        if websocket.application_state == WebSocketState.CONNECTED:
            with contextlib.suppress(Exception):
                await websocket.close(code=close_code)


async def _handshake(
    websocket: WebSocket, station_id: str, gateway: Gateway, chosen: str
) -> StationHandler | None:
    """Sign the station in, accept its socket and attach it to this process (None: refused)."""
    try:
        station = await gateway.credentials.authenticate(
            station_id,
            basic_credentials(websocket.headers.get("authorization", "")),
            websocket.client.host if websocket.client else None,
        )
    except STORAGE_UNAVAILABLE:
        log.warning("station %s: handshake while the database is unavailable", station_id)
        await refuse(
            websocket,
            503,
            "temporarily_unavailable",
            "try again in a moment",
            {"Retry-After": str(gateway.handshakes.retry_after())},
        )
        return None
    except StationAuthRefused as refused:
        # Expected traffic (a misconfigured station, a guesser): never an error line.
        log.info("station handshake refused: %s", refused.reason)
        if refused.retry_after_s is not None:
            headers = {"Retry-After": str(refused.retry_after_s)}
            await refuse(websocket, 429, refused.reason, refused.message, headers)
        else:
            headers = {"WWW-Authenticate": 'Basic realm="plugpay-ocpp"'}
            await refuse(websocket, 401, refused.reason, refused.message, headers)
        return None
    version = domain.SUBPROTOCOLS[chosen]
    await websocket.accept(subprotocol=chosen)
    connection = StarletteConnection(websocket, gateway.settings.max_message_bytes)
    handler = HANDLERS[version](
        station_id,
        connection,
        response_timeout=gateway.settings.ocpp_response_timeout_s,
        logger=ocpp_log,
    )
    try:
        handler.setup(gateway, uuid.uuid4(), booted=bool(station["booted_at"]))
        await gateway.attach(handler)
    except STORAGE_UNAVAILABLE:
        # 1013 Try Again Later: the station reconnects, as after any dropped link.
        log.warning("station %s: connected while the database is unavailable", station_id)
        await gateway.detach(handler)
        with contextlib.suppress(Exception):
            await websocket.close(code=1013)
        return None
    return handler
