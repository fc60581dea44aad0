"""A service at run time: database, bus, outbox relay, consumers, started and stopped together.

Every service's ``app.py`` builds one ``ServiceRuntime`` and hands its ``lifespan`` to FastAPI,
so start-up order (migrate, bus, relay, consumers) and graceful shutdown live here once.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from plugpay_events.bus.port import BatchHandler, Consumer, EventBus, Handler, RetryPolicy
from plugpay_events.envelope import Event
from plugpay_events.outbox import (
    EffectFn,
    OutboxRelay,
    OutboxTables,
    transactional_batch_handler,
    transactional_handler,
)
from plugpay_events.topics import ALL_TOPICS, Topic
from sqlalchemy.ext.asyncio import AsyncSession

from plugpay_platform.database import Database
from plugpay_platform.migrations import upgrade_to_head
from plugpay_platform.observability import Observability
from plugpay_platform.security import HttpJwks, KeySource, TokenVerifier
from plugpay_platform.settings import ServiceSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConsumerSpec:
    """A consumer group a service runs: its name, topics and handler."""

    group: str
    topics: Sequence[Topic]
    handler: Handler
    members: int = 1
    retry: RetryPolicy | None = None
    # Optional: each partition's fetched records in one call (``handler`` is the fallback).
    batch_handler: BatchHandler | None = None

    @classmethod
    def transactional(
        cls,
        group: str,
        topics: Sequence[Topic],
        session_factory: Callable[[], AsyncSession],
        tables: OutboxTables,
        effect: EffectFn,
        *,
        handles: Collection[type[Event]] | None = None,
        **options: Any,
    ) -> ConsumerSpec:
        """A consumer whose effect runs in the inbox + outbox transaction: a fetch's records of
        one partition in one transaction, or one by one when that batch fails. ``handles``:
        the event classes ``effect`` acts on (the others skip the transaction), or all."""
        return cls(
            group,
            topics,
            transactional_handler(session_factory, tables, group, effect, handles),
            batch_handler=transactional_batch_handler(
                session_factory, tables, group, effect, handles
            ),
            **options,
        )


@dataclass
class ServiceRuntime:
    """Everything a service runs besides its HTTP routes."""

    name: str
    settings: ServiceSettings
    migrations: Path
    outbox_tables: OutboxTables
    database: Database = field(init=False)
    bus: EventBus = field(init=False)
    relay: OutboxRelay = field(init=False)
    observability: Observability = field(init=False)
    consumers: list[ConsumerSpec] = field(default_factory=list)
    key_source: KeySource | None = None
    on_start: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    on_stop: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    bus_factory: Callable[[], EventBus] | None = None
    _running: list[Consumer] = field(default_factory=list)

    def __post_init__(self) -> None:
        from plugpay_platform.bus import build_event_bus

        self.database = Database(
            self.settings.database_url.get_secret_value(),
            pool_size=self.settings.platform.db_pool_size,
        )
        self.bus = (
            self.bus_factory() if self.bus_factory else build_event_bus(self.settings, self.name)
        )
        self.relay = OutboxRelay(self.database.engine, self.outbox_tables, self.bus)
        # Per runtime, not global: the embedded process runs five services side by side.
        self.observability = Observability(self.name)
        self.observability.watch_relay(self.relay)
        self.token_verifier = TokenVerifier(
            self.key_source or HttpJwks(self.settings.platform.jwks_url),
            issuer=self.settings.platform.jwt_issuer,
            audience=self.settings.platform.jwt_audience,
        )

    def consume(self, spec: ConsumerSpec) -> None:
        """Register a consumer group to run with the service."""
        self.consumers.append(spec)

    async def start(self) -> None:
        await upgrade_to_head(self.migrations, self.settings.database_url.get_secret_value())
        await self.bus.start()
        await self.bus.ensure_topics(ALL_TOPICS)
        await self.relay.start()
        for spec in self.consumers:
            group = f"{self.settings.platform.topic_prefix}{spec.group}"
            for _ in range(spec.members):
                batched: dict[str, BatchHandler] = {}
                if spec.batch_handler is not None:
                    batched["batch_handler"] = self.observability.observe_batch_handler(
                        group, spec.batch_handler
                    )
                consumer = self.bus.consumer(
                    group,
                    spec.topics,
                    self.observability.observe_handler(group, spec.handler),
                    retry=spec.retry,
                    **batched,
                )
                await consumer.start()
                self._running.append(consumer)
                self.observability.watch_consumer(group, consumer)
        for hook in self.on_start:
            await hook()
        log.info("%s started", self.name)

    async def stop(self) -> None:
        for hook in reversed(self.on_stop):
            with contextlib.suppress(Exception):
                await hook()
        for consumer in self._running:
            await consumer.stop()
        self._running.clear()
        self.observability.forget_consumers()
        await self.relay.stop()
        await self.bus.stop()
        await self.database.dispose()
        self.observability.flush()
        log.info("%s stopped", self.name)

    @contextlib.asynccontextmanager
    async def lifespan(self, app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        """FastAPI lifespan: start on boot, stop on shutdown."""
        app.state.runtime = self
        app.state.token_verifier = self.token_verifier
        await self.start()
        try:
            yield {}
        finally:
            await self.stop()
