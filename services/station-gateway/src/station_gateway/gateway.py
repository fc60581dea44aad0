"""One gateway process: the sockets it holds, the commands it executes for them, presence.

Several processes run side by side behind a load balancer; a station's socket lives in exactly
one. Session events are consumed once by the shared consumer group and turned into rows of
``station_commands`` (``handlers``); every process LISTENs for them and executes those for the
stations it holds, re-checking on a timer and at each connect in case a notification was missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

from plugpay_events.session_code import CODE_CHARS, generate_signing_key, is_signing_key
from plugpay_platform.background import PeriodicTask, PgListener
from plugpay_platform.database import Database
from plugpay_platform.group_commit import GroupCommit
from plugpay_platform.throttle import FailureThrottle
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession

from station_gateway import domain, service, web_payments
from station_gateway.credentials import CredentialVerifier
from station_gateway.ocpp_endpoint import HandshakeGate, StationHandler
from station_gateway.repository import COMMANDS_CHANNEL, DISPLAY_CHANNEL, Repository
from station_gateway.settings import Settings

log = logging.getLogger(__name__)
Item = TypeVar("Item")
Result = TypeVar("Result")
# QR content (URL) length that fits a version-6 symbol at error correction M (106 bytes) with
# room to spare: what a small charger screen shows legibly.
QR_CONTENT_LIMIT = 80

OPERATOR_ACTIONS = {
    "1.6": {
        "TriggerMessage",
        "GetConfiguration",
        "ChangeConfiguration",
        "Reset",
        "ChangeAvailability",
        "UnlockConnector",
    },
    "2.0.1": {
        "TriggerMessage",
        "GetVariables",
        "SetVariables",
        "Reset",
        "ChangeAvailability",
        "UnlockConnector",
    },
}
OPERATOR_ACTIONS["2.1"] = OPERATOR_ACTIONS["2.0.1"]


class Gateway:
    def __init__(self, settings: Settings, database: Callable[[], Database]) -> None:
        self.settings = settings
        self._database = database
        self.instance_id = settings.platform.instance_id
        self.connections: dict[str, StationHandler] = {}
        self._drain_locks: dict[str, asyncio.Lock] = {}
        self._periodic: list[PeriodicTask] = []
        self._listener: PgListener | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._display_waiters: dict[str, set[asyncio.Event]] = {}
        self._stopping = asyncio.Event()
        self._signing_key: dict[str, Any] | None = None
        self.credentials: CredentialVerifier
        self.handshakes = HandshakeGate(settings.max_handshakes_in_flight)
        # Wrong dynamic payment codes per address (OCPP 2.1 C25 landing), counted per process.
        self.web_payment_throttle = FailureThrottle()
        # Signs of life since the last beat: (connection, when) per station, written in one
        # statement per beat instead of one transaction per station message.
        self._seen: dict[str, tuple[uuid.UUID, datetime]] = {}
        # What every station sends, written in shared transactions: a burst (a reconnect
        # storm, a site's status reports) costs a few commits, not one per message.
        self._presence = self._grouped(
            functools.partial(service.presence_changed, instance_id=self.instance_id)
        )
        self.boots = self._grouped(service.stations_booted)
        self.statuses = self._grouped(service.connector_statuses_changed)

    @property
    def database(self) -> Database:
        return self._database()

    @property
    def silence(self) -> timedelta:
        return timedelta(
            seconds=self.settings.heartbeat_interval_s * self.settings.missed_heartbeats
        )

    @property
    def instance_dead_after(self) -> timedelta:
        return timedelta(seconds=self.settings.instance_heartbeat_s * 3)

    # -- life cycle ------------------------------------------------------------------------

    async def start(self) -> None:
        self.credentials = CredentialVerifier(self.database, self.settings.credential_cache_s)
        self._signing_key = await self._load_signing_key()
        qr_chars = len(self.settings.platform.public_base_url.rstrip("/")) + 3 + CODE_CHARS
        if qr_chars > QR_CONTENT_LIMIT:
            # Still works, but a small charger screen needs a bigger QR symbol than planned.
            log.warning(
                "QR content will be %d characters (PLUGPAY_PUBLIC_BASE_URL is long); "
                "at most %d keeps the symbol at version 6",
                qr_chars,
                QR_CONTENT_LIMIT,
            )
        async with self.database.write() as session:
            await Repository(session).instance_beat(self.instance_id)
        self._stopping.clear()
        self._listener = self._listen()
        self._periodic = [
            PeriodicTask("gateway-beat", self._beat, self.settings.instance_heartbeat_s),
            PeriodicTask("gateway-presence-sweep", self._sweep, self.settings.presence_sweep_s),
            PeriodicTask("gateway-limit-check", self._check_limits, self.settings.limit_check_s),
        ]
        await self._listener.start()
        for task in self._periodic:
            await task.start()

    async def stop(self) -> None:
        self._stopping.set()
        for handler in list(self.connections.values()):
            with contextlib.suppress(Exception):
                await handler._connection.websocket.close(code=1001)
        for task in self._periodic:
            await task.stop()
        self._periodic = []
        if self._listener is not None:
            await self._listener.stop()
            self._listener = None

    async def _load_signing_key(self) -> dict[str, Any]:
        if self.settings.code_signing_key is not None:
            key = dict(json.loads(self.settings.code_signing_key.get_secret_value()))
            if not is_signing_key(key):
                raise RuntimeError(
                    "STATION_GATEWAY_CODE_SIGNING_KEY must be a symmetric JWK (kty oct) shared "
                    "with session-svc: make one with plugpay_events.session_code."
                    "generate_signing_key (an Ed25519 key made codes too long for a QR)"
                )
            return key
        if self.settings.platform.environment == "production":
            raise RuntimeError("production needs STATION_GATEWAY_CODE_SIGNING_KEY")
        # Development: one generated key kept in the gateway's database, so restarts keep it
        # (an older Ed25519 key there is replaced: codes are MAC'd now).
        async with self.database.write() as session:
            repo = Repository(session)
            stored = await repo.signing_key()
            if stored is None or not is_signing_key(stored):
                await repo.add_signing_key(generate_signing_key())
                stored = await repo.signing_key()
        assert stored is not None
        return stored

    def code_issuer(self) -> service.CodeIssuer:
        assert self._signing_key is not None
        return service.CodeIssuer(
            self._signing_key,
            self.settings.platform.public_base_url,
            timedelta(seconds=self.settings.code_lifetime_s),
        )

    def saw(self, station_id: str, connection_id: uuid.UUID) -> None:
        """A message from a station: recorded at the next beat (presence_sweep runs after)."""
        self._seen[station_id] = (connection_id, service.now_utc())

    async def _beat(self) -> None:
        seen, self._seen = self._seen, {}
        try:
            async with self.database.write() as session:
                repo = Repository(session)
                await repo.instance_beat(self.instance_id)
                await repo.touch_presence([(s, c, at) for s, (c, at) in seen.items()])
        except Exception:
            for station_id, entry in seen.items():  # keep them for the next beat
                self._seen.setdefault(station_id, entry)
            raise

    @property
    def start_timeout(self) -> timedelta | None:
        seconds = self.settings.start_timeout_s
        return timedelta(seconds=seconds) if seconds else None

    async def _sweep(self) -> None:
        async with self.database.write() as session:
            # The gateway owns the start deadline: session-svc's timer is only a late backstop.
            await service.abandon_overdue_starts(session, self.start_timeout)
        async with self.database.write() as session:
            gone = await service.sweep_offline(session, self.silence, self.instance_dead_after)
        for station_id in gone:
            handler = self.connections.get(station_id)
            if handler is not None:
                # Connected but silent: drop it, the station will reconnect and boot.
                with contextlib.suppress(Exception):
                    await handler._connection.websocket.close(code=1001)
        # Commands arrive by notification; this catches any missed one (one query for all).
        async with self.database.read() as session:
            waiting = await Repository(session).stations_with_commands(list(self.connections))
        for station_id in waiting:
            await self.drain(station_id)
        await self._end_lost_transactions()

    async def _end_lost_transactions(self) -> None:
        now = service.now_utc()
        grace = timedelta(seconds=self.settings.lost_transaction_grace_s)
        unreachable = timedelta(seconds=self.settings.unreachable_transaction_s)
        async with self.database.read() as session:
            repo = Repository(session)
            lost = await repo.lost_transactions(now - grace)
            gone = await repo.unreachable_transactions(now - unreachable)
        for row, reason in [(r, "transaction_lost") for r in lost] + [
            (r, "station_unreachable") for r in gone
        ]:
            async with self.database.write() as session:
                ended = await service.end_lost_transaction(
                    session,
                    row["session_id"],
                    reason,  # type: ignore[arg-type]
                    simulation=self.settings.simulation,
                )
            if ended:
                log.warning(
                    "completed session %s (%s): station %s never ended transaction %s on "
                    "connector %s",
                    row["session_id"],
                    reason,
                    row["station_id"],
                    row["transaction_id"],
                    row["connector_id"],
                )

    async def _check_limits(self) -> None:
        """Time and cost limits of the sessions charging at stations this process holds: one
        query for all of them, then small transactions (each keeps its rows locked briefly)."""
        async with self.database.read() as session:
            rows = await Repository(session).charging_sessions(list(self.connections))
        for chunk in (rows[i : i + 50] for i in range(0, len(rows), 50)):
            reached = []
            async with self.database.write() as session:
                repo = Repository(session)
                ids = [r["session_id"] for r in chunk]
                for outcome in await service.check_progress(session, ids, service.now_utc()):
                    if outcome.limit:
                        reached.append(outcome.session_id)
                for station_id in sorted({r["station_id"] for r in chunk}):
                    await repo.notify_display(station_id)
            for session_id in reached:
                await self.stop_at_limit(session_id)

    async def stop_at_limit(self, session_id: Any) -> None:
        async with self.database.write() as session:
            row = await Repository(session).session_row(session_id)
            if row is not None and await service.request_limit_stop(session, session_id):
                await Repository(session).add_command(
                    row["station_id"], "stop", self.instance_id, session_id=session_id
                )

    # -- notifications ---------------------------------------------------------------------

    def _listen(self) -> PgListener:
        def on_command(station_id: str) -> None:
            if station_id in self.connections:
                self._spawn(self.drain(station_id))

        def on_display(station_id: str) -> None:
            for event in self._display_waiters.get(station_id, ()):
                event.set()

        def drain_all() -> None:
            # Commands that arrived while we were not listening.
            for station_id in list(self.connections):
                self._spawn(self.drain(station_id))

        return PgListener(
            self.database.engine,
            {COMMANDS_CHANNEL: on_command, DISPLAY_CHANNEL: on_display},
            name="gateway-listen",
            on_listening=drain_all,
        )

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def display_waiter(self, station_id: str) -> asyncio.Event:
        event = asyncio.Event()
        self._display_waiters.setdefault(station_id, set()).add(event)
        return event

    def drop_display_waiter(self, station_id: str, event: asyncio.Event) -> None:
        waiters = self._display_waiters.get(station_id, set())
        waiters.discard(event)
        if not waiters:
            self._display_waiters.pop(station_id, None)

    # -- connections -----------------------------------------------------------------------

    async def attach(self, handler: StationHandler) -> None:
        previous = self.connections.get(handler.id)
        self.connections[handler.id] = handler
        if previous is not None:
            # The newest connection wins: the old one is a half-open socket.
            with contextlib.suppress(Exception):
                await previous._connection.websocket.close(code=1000)
        opened = service.PresenceChange(
            handler.id, handler.connection_id, handler.connected_at, handler.version
        )
        if await self._presence.submit(opened):
            handler.spawn(self.drain(handler.id))

    async def detach(self, handler: StationHandler) -> None:
        if self.connections.get(handler.id) is handler:
            del self.connections[handler.id]
        closed = service.PresenceChange(handler.id, handler.connection_id, service.now_utc())
        with contextlib.suppress(Exception):
            await self._presence.submit(closed)

    def _grouped(
        self, use_case: Callable[[AsyncSession, Sequence[Item]], Awaitable[list[Result]]]
    ) -> GroupCommit[Item, Result]:
        """``use_case`` over batches of items, one transaction per batch."""

        async def write(items: Sequence[Item]) -> list[Result]:
            async with self.database.write() as session:
                return await use_case(session, items)

        return GroupCommit(write)

    # -- commands --------------------------------------------------------------------------

    async def drain(self, station_id: str) -> None:
        """Execute the pending commands of a station this process holds, in order."""
        lock = self._drain_locks.setdefault(station_id, asyncio.Lock())
        async with lock:
            handler = self.connections.get(station_id)
            if handler is None:
                return
            async with self.database.write() as session:
                taken = await Repository(session).take_commands([station_id], self.instance_id)
            order = domain.urgent_first([c["kind"] for c in taken])
            for command in (taken[i] for i in order):
                if command["kind"] == "stop" and command["created_at"] < handler.connected_at:
                    # Asked while the station was away: a charger reports on reconnecting what
                    # happened meanwhile (its own stop, often); give it that moment first.
                    handler.spawn(self._run_command(handler, command, delay_until_settled=True))
                    continue
                await self._run_command(handler, command)

    async def _run_command(
        self, handler: StationHandler, command: RowMapping, *, delay_until_settled: bool = False
    ) -> None:
        if delay_until_settled:
            settled_at = handler.connected_at + timedelta(seconds=self.settings.reconnect_settle_s)
            wait = (settled_at - service.now_utc()).total_seconds()
            if wait > 0:
                await asyncio.sleep(wait)
        try:
            result = await self.execute(handler, command)
        except Exception as error:  # one bad command must not block the next
            log.exception("command %s failed", command["id"])
            result = {"error": type(error).__name__}
        async with self.database.write() as session:
            await Repository(session).finish_command(command["id"], result)

    async def execute(self, handler: StationHandler, command: RowMapping) -> dict[str, Any]:
        kind = command["kind"]
        payload = command["payload"] or {}
        row = None
        if command["session_id"] is not None:
            async with self.database.read() as session:
                row = await Repository(session).session_row(command["session_id"])
            if row is None:
                return {"skipped": "unknown session"}
        if kind == "start":
            return await self._start(handler, row)
        if kind == "stop":
            assert row is not None
            if row["state"] != "charging" or row["transaction_id"] is None:
                return {"skipped": row["state"]}
            return {"status": await handler.remote_stop(row)}
        if kind == "show_denied":
            # A charger's screen is public: a neutral line, the driver's message is for the phone.
            await handler.show_denied(
                row, payload["reason"], service.public_refusal(payload["reason"])
            )
            return {"shown": True}
        if kind == "show_cost":
            await handler.show_cost(row, payload["amount_minor"], payload["currency"])
            return {"shown": True}
        if kind == "web_payment_started":
            await handler.web_payment_started(payload["evse_id"], payload["timeout_s"])
            return {"sent": True}
        if kind == "clear_display":
            await handler.clear_code(row)
            return {"cleared": True}
        if kind == "ocpp_call":
            action = payload["action"]
            if action not in OPERATOR_ACTIONS[handler.version]:
                return {"error": f"{action} is not allowed on OCPP {handler.version}"}
            if web_payments.names_shared_secret(payload["payload"]):
                return {"error": "the web payment shared secret is kept by the back office"}
            answer = await handler.call_station(handler.operator_call(action, payload["payload"]))
            from ocpp.charge_point import serialize_as_dict

            return {"status": "answered", "answer": serialize_as_dict(answer)}
        return {"error": f"unknown command {kind}"}

    async def _start(self, handler: StationHandler, row: RowMapping | None) -> dict[str, Any]:
        assert row is not None
        if row["state"] != "authorized":
            return {"skipped": row["state"]}
        async with self.database.write() as session:
            await Repository(session).update_session(row["session_id"], state="starting")
        try:
            status = await handler.remote_start(row)
        except (TimeoutError, ConnectionError) as error:
            async with self.database.write() as session:
                await service.abandon(session, row["session_id"], "station_offline")
            return {"error": type(error).__name__}
        except Exception as error:  # a CallError: the station refused to even consider it
            async with self.database.write() as session:
                await service.abandon(session, row["session_id"], "station_rejected")
            return {"error": type(error).__name__}
        if status != "Accepted":
            async with self.database.write() as session:
                await service.abandon(session, row["session_id"], "station_rejected")
        return {"status": status}
