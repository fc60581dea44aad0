"""Fixtures: gateway processes on real uvicorn servers, a bus to publish on, OCPP stations."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import uvicorn
import websockets
from argon2 import PasswordHasher
from ocpp.routing import on
from ocpp.v16 import ChargePoint as CP16
from ocpp.v16 import call_result as r16
from ocpp.v21 import ChargePoint as CP21
from ocpp.v21 import call_result as r21
from ocpp.v201 import ChargePoint as CP201
from ocpp.v201 import call_result as r201
from plugpay_events import serde
from plugpay_events.bus.embedded import EmbeddedEventBus
from plugpay_events.bus.kafka import KafkaEventBus
from plugpay_events.bus.port import EventBus
from plugpay_events.contracts.identity import (
    ConnectorSpec,
    StationCredentialSet,
    StationRegistered,
)
from plugpay_events.contracts.pricing import AccessPolicy, StationCommercialsSet, TariffPublished
from plugpay_events.contracts.sessions import (
    SessionAuthorized,
    SessionCodeScanned,
    SessionLimits,
    SessionPriced,
    SessionStopRequested,
)
from plugpay_events.envelope import Envelope, Event
from plugpay_events.session_code import generate_signing_key
from plugpay_events.topics import ALL_TOPICS, METER, SESSIONS, STATIONS
from plugpay_events.types import Money
from plugpay_platform.database import Database
from plugpay_platform.settings import PlatformSettings
from plugpay_testing import eventually
from plugpay_testing.tokens import TokenFactory
from pydantic import SecretStr
from station_gateway.app import create_app
from station_gateway.settings import Settings

from .harness_station import ORG, PASSWORD, TARIFF, basic

_hash = PasswordHasher().hash(PASSWORD)


@dataclass
class GatewayProcess:
    app: Any
    server: uvicorn.Server
    task: asyncio.Task[Any]
    port: int

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ocpp"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        self.server.should_exit = True
        await self.task


class Station16(CP16):
    """A 1.6 charge point from the ``ocpp`` library, recording what the gateway asks."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.inbox: list[tuple[str, dict[str, Any]]] = []
        self.remote_start_status = "Accepted"

    @on("RemoteStartTransaction")
    def on_remote_start(self, id_tag: str, **kw: Any) -> Any:
        self.inbox.append(("RemoteStartTransaction", {"id_tag": id_tag, **kw}))
        return r16.RemoteStartTransaction(status=self.remote_start_status)

    @on("RemoteStopTransaction")
    def on_remote_stop(self, transaction_id: int) -> Any:
        self.inbox.append(("RemoteStopTransaction", {"transaction_id": transaction_id}))
        return r16.RemoteStopTransaction(status="Accepted")

    @on("DataTransfer")
    def on_data_transfer(self, vendor_id: str, **kw: Any) -> Any:
        self.inbox.append(("DataTransfer", {"vendor_id": vendor_id, **kw}))
        return r16.DataTransfer(status="Accepted")

    @on("GetConfiguration")
    def on_get_configuration(self, **kw: Any) -> Any:
        self.inbox.append(("GetConfiguration", kw))
        return r16.GetConfiguration(
            configuration_key=[{"key": "HeartbeatInterval", "readonly": False, "value": "60"}]
        )

    def got(self, action: str) -> list[dict[str, Any]]:
        return [payload for name, payload in self.inbox if name == action]


class Station201(CP201):
    """A 2.0.1 charging station from the ``ocpp`` library."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.inbox: list[tuple[str, dict[str, Any]]] = []

    @on("RequestStartTransaction")
    def on_request_start(self, id_token: dict[str, Any], remote_start_id: int, **kw: Any) -> Any:
        self.inbox.append(
            (
                "RequestStartTransaction",
                {"id_token": id_token, "remote_start_id": remote_start_id, **kw},
            )
        )
        return r201.RequestStartTransaction(status="Accepted")

    @on("RequestStopTransaction")
    def on_request_stop(self, transaction_id: str, **kw: Any) -> Any:
        self.inbox.append(("RequestStopTransaction", {"transaction_id": transaction_id}))
        return r201.RequestStopTransaction(status="Accepted")

    @on("SetDisplayMessage")
    def on_display(self, message: dict[str, Any], **kw: Any) -> Any:
        self.inbox.append(("SetDisplayMessage", message))
        return r201.SetDisplayMessage(status="Accepted")

    @on("CostUpdated")
    def on_cost(self, total_cost: float, transaction_id: str, **kw: Any) -> Any:
        self.inbox.append(
            ("CostUpdated", {"total_cost": total_cost, "transaction_id": transaction_id})
        )
        return r201.CostUpdated()

    @on("ClearDisplayMessage")
    def on_clear(self, id: int, **kw: Any) -> Any:
        self.inbox.append(("ClearDisplayMessage", {"id": id}))
        return r201.ClearDisplayMessage(status="Accepted")

    def got(self, action: str) -> list[dict[str, Any]]:
        return [payload for name, payload in self.inbox if name == action]


class Station21(Station201):
    """A 2.1 charging station: the 2.0.1 one's handlers, 2.1 framing and schemas."""

    _call = CP21._call
    _call_result = CP21._call_result
    _ocpp_version = CP21._ocpp_version

    @on("ChangeTransactionTariff")
    def on_change_tariff(self, tariff: dict[str, Any], transaction_id: str, **kw: Any) -> Any:
        self.inbox.append(
            ("ChangeTransactionTariff", {"tariff": tariff, "transaction_id": transaction_id})
        )
        return r21.ChangeTransactionTariff(status="Accepted")

    @on("SetVariables")
    def on_set_variables(self, set_variable_data: list[dict[str, Any]], **kw: Any) -> Any:
        self.inbox.append(("SetVariables", {"set_variable_data": set_variable_data}))
        return r21.SetVariables(
            set_variable_result=[
                {
                    "attribute_status": "Accepted",
                    "component": item["component"],
                    "variable": item["variable"],
                }
                for item in set_variable_data
            ]
        )

    @on("NotifyWebPaymentStarted")
    def on_web_payment_started(self, evse_id: int, timeout: int, **kw: Any) -> Any:
        self.inbox.append(("NotifyWebPaymentStarted", {"evse_id": evse_id, "timeout": timeout}))
        return r21.NotifyWebPaymentStarted()


@dataclass
class Harness:
    database_url: str
    topic_prefix: str
    bus: EventBus
    tokens: TokenFactory
    signing_key: dict[str, Any]
    kafka: str | None = None
    processes: list[GatewayProcess] = field(default_factory=list)
    _stack: contextlib.AsyncExitStack = field(default_factory=contextlib.AsyncExitStack)

    eventually = staticmethod(eventually)

    def settings(self, **overrides: Any) -> Settings:
        platform = PlatformSettings(
            eventlog_database_url=self.database_url if not self.kafka else None,
            topic_prefix=self.topic_prefix,
            kafka_bootstrap=self.kafka,
            environment="test",
            public_base_url="https://pay.plugpay.test",
            instance_id=overrides.pop("instance_id", f"gw-{uuid.uuid4().hex[:6]}"),
        )
        values: dict[str, Any] = {
            "database_url": SecretStr(self.database_url),
            "code_signing_key": SecretStr(__import__("json").dumps(self.signing_key)),
            "platform": platform,
            "presence_sweep_s": 0.5,
            "instance_heartbeat_s": 1.0,
            "limit_check_s": 0.5,
            "ocpp_response_timeout_s": 5.0,
            "max_message_bytes": 8192,
        }
        return Settings(**(values | overrides))

    async def start_gateway(self, **overrides: Any) -> GatewayProcess:
        app = create_app(self.settings(**overrides), key_source=self.tokens)
        config = uvicorn.Config(
            app, host="127.0.0.1", port=0, lifespan="on", log_config=None, ws_max_size=1 << 20
        )
        server = uvicorn.Server(config)
        server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        task = asyncio.create_task(server.serve())
        await eventually(lambda: server.started or task.done(), 30, "uvicorn to start")
        if task.done():
            task.result()
        port = server.servers[0].sockets[0].getsockname()[1]
        process = GatewayProcess(app, server, task, port)
        self.processes.append(process)
        return process

    @property
    def db(self) -> Database:
        return self.processes[0].app.state.runtime.database

    async def publish(self, *events: Event) -> list[Envelope]:
        envelopes = [Envelope.wrap(e, producer="test") for e in events]
        await self.bus.publish(envelopes)
        return envelopes

    async def register(self, station_id: str, connectors: int = 2) -> None:
        now = datetime.now(UTC)
        await self.publish(
            StationRegistered(
                station_id=station_id,
                organisation_id=ORG,
                name=f"Station {station_id}",
                connectors=tuple(
                    ConnectorSpec(connector_id=i, max_power_w=22_000)
                    for i in range(1, connectors + 1)
                ),
                registered_at=now,
            ),
            StationCredentialSet(
                station_id=station_id, password_hash=_hash, security_profile=1, set_at=now
            ),
            TariffPublished(tariff_key="std", organisation_id=ORG, tariff=TARIFF, published_at=now),
            StationCommercialsSet(
                station_id=station_id,
                organisation_id=ORG,
                time_zone="Europe/Berlin",
                tariff_key="std",
                access_policy=AccessPolicy(),
                power_class="AC",
                updated_at=now,
            ),
        )

        async def known() -> bool:
            async with self.db.read() as session:
                from station_gateway.repository import Repository

                row = await Repository(session).station(station_id)
                return bool(row and row["password_hash"] and row["time_zone"])

        await eventually(known, 20, f"{station_id} registered")

    async def events(self, topic: Any = SESSIONS) -> list[Envelope]:
        records = await self.bus.read_topic(self.bus.topic_name(topic))
        return [serde.decode(r.value) for r in records]

    async def wait_event(
        self,
        type_: str,
        *,
        count: int = 1,
        topic: Any = SESSIONS,
        where: Callable[[dict[str, Any]], bool] = lambda p: True,
        timeout_s: float = 15,
    ) -> list[dict[str, Any]]:
        async def found() -> list[dict[str, Any]] | None:
            payloads = [
                e.payload for e in await self.events(topic) if e.type == type_ and where(e.payload)
            ]
            return payloads if len(payloads) >= count else None

        return list(await eventually(found, timeout_s, f"{count} x {type_}"))

    async def authorize(
        self,
        session_id: str,
        station_id: str,
        connector_id: int = 1,
        limits: SessionLimits | None = None,
        priced: bool = True,
        authorized_at: datetime | None = None,
        hold_minor: int = 5000,
        free_of_charge: bool = False,
        start_deadline: datetime | None = None,
        guest: bool = False,
    ) -> None:
        now = datetime.now(UTC)
        # Billing's clock. Most tests replay station timestamps from the recent past, so the
        # authorisation is dated before them: a station's times after it are plausible.
        authorized_at = authorized_at or now - timedelta(hours=1)
        user = uuid.uuid4()
        events: list[Event] = []
        if guest:  # session-svc's scan by a guest (no account) comes first
            events.append(
                SessionCodeScanned(
                    session_id=uuid.UUID(session_id),
                    station_id=station_id,
                    connector_id=connector_id,
                    session_started_at=now,
                    scanned_at=now,
                    user_id=user,
                    code_kind="qr",
                    guest=True,
                )
            )
        if priced:
            events.append(
                SessionPriced(
                    session_id=uuid.UUID(session_id),
                    station_id=station_id,
                    connector_id=connector_id,
                    user_id=user,
                    station_organisation_id=ORG,
                    tariff=TARIFF,
                    time_zone="Europe/Berlin",
                    max_power_w=22_000,
                    free_of_charge=free_of_charge,
                    priced_at=now,
                )
            )
        events.append(
            SessionAuthorized(
                session_id=uuid.UUID(session_id),
                station_id=station_id,
                connector_id=connector_id,
                user_id=user,
                funding="card" if guest else "wallet",
                hold_id=uuid.uuid4(),
                hold_amount=Money(amount_minor=hold_minor, currency="EUR"),
                limits=limits or SessionLimits(),
                authorized_at=authorized_at,
                start_deadline=start_deadline or now + timedelta(minutes=2),
            )
        )
        await self.publish(*events)

    async def request_stop(self, session_id: str) -> None:
        """The driver stops the session in the app (session-svc's SessionStopRequested)."""
        await self.publish(
            SessionStopRequested(
                session_id=uuid.UUID(session_id),
                requested_by="driver",
                requested_at=datetime.now(UTC),
            )
        )

    async def connect(
        self,
        station_id: str,
        version: str = "1.6",
        *,
        process: GatewayProcess | None = None,
        password: str = PASSWORD,
    ) -> Any:
        process = process or self.processes[0]
        ws = await websockets.connect(
            f"{process.ws}/{station_id}",
            subprotocols=[f"ocpp{version}"],  # type: ignore[list-item]
            additional_headers={"Authorization": basic(station_id, password)},
        )
        cls = {"1.6": Station16, "2.0.1": Station201, "2.1": Station21}[version]
        station = cls(station_id, ws, response_timeout=5)
        station.ws = ws
        station.loop_task = asyncio.create_task(station.start())
        return station

    async def close(self, station: Any) -> None:
        await station.ws.close()
        station.loop_task.cancel()
        with contextlib.suppress(BaseException):
            await station.loop_task


@contextlib.asynccontextmanager
async def _running(harness: Harness) -> AsyncIterator[Harness]:
    await harness.bus.start()
    await harness.bus.ensure_topics(ALL_TOPICS)
    yield harness
    for process in reversed(harness.processes):
        await process.stop()
    await harness.bus.stop()


@pytest.fixture
async def harness(database_url: str, topic_prefix: str) -> AsyncIterator[Harness]:
    bus = EmbeddedEventBus(database_url, topic_prefix=topic_prefix)
    h = Harness(database_url, topic_prefix, bus, TokenFactory(), generate_signing_key())
    async with _running(h):
        yield h


@pytest.fixture
async def kafka_harness(database_url: str, topic_prefix: str, kafka: str) -> AsyncIterator[Harness]:
    bus = KafkaEventBus(kafka, topic_prefix=topic_prefix, client_id="station-gateway-tests")
    h = Harness(
        database_url, topic_prefix, bus, TokenFactory(), generate_signing_key(), kafka=kafka
    )
    async with _running(h):
        yield h


__all__ = ["METER", "STATIONS", "Harness", "eventually"]
