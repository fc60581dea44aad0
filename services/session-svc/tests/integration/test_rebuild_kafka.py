"""The store rebuilt from the log equals the live one, row for row, on real Kafka."""

from __future__ import annotations

import random
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi import FastAPI
from plugpay_events.contracts.identity import ConnectorSpec, StationRegistered
from plugpay_events.contracts.stations import StationConnected, StationDisconnected
from plugpay_events.envelope import Envelope
from plugpay_events.session_code import generate_signing_key
from plugpay_testing import eventually
from plugpay_testing.tokens import TokenFactory
from session_harness import make_settings, running, scalar
from session_stories import mixed_sessions
from session_svc.handlers import CONSUMER
from session_svc.rebuild import rebuild_store
from session_svc.tables import STORE_TABLES, outbox_tables
from sqlalchemy import select

pytestmark = [pytest.mark.infra, pytest.mark.kafka]

SESSIONS = 300


async def snapshot(app: FastAPI) -> dict[str, list[dict[str, Any]]]:
    async with app.state.runtime.database.engine.connect() as conn:
        result = {}
        for table in STORE_TABLES:
            rows = (await conn.execute(select(table).order_by(*table.primary_key.columns))).all()
            result[table.name] = [dict(r._mapping) for r in rows]
        return result


async def test_rebuilt_store_equals_live_store(
    kafka: str, database_url: str, topic_prefix: str
) -> None:
    rng = random.Random(6)
    key = generate_signing_key()
    settings = make_settings(database_url, topic_prefix, key, kafka=kafka, start_timeout_s=None)
    async with running(settings, TokenFactory()) as app:
        bus = app.state.runtime.bus
        now = datetime.now(UTC)
        upstream: list[Envelope] = []
        for n in range(7):
            station = f"ST-{n}"
            upstream += [
                Envelope.wrap(
                    StationRegistered(
                        station_id=station,
                        organisation_id=uuid.uuid4(),
                        name=f"Station {n}",
                        connectors=(ConnectorSpec(connector_id=1, max_power_w=22_000),),
                        registered_at=now,
                    ),
                    producer="auth-svc",
                ),
                Envelope.wrap(
                    StationConnected(
                        station_id=station,
                        ocpp_version="1.6",
                        gateway_instance="gw",
                        connected_at=now,
                    ),
                    producer="station-gateway",
                ),
            ]
        upstream.append(
            Envelope.wrap(
                StationDisconnected(station_id="ST-6", gateway_instance="gw", disconnected_at=now),
                producer="station-gateway",
            )
        )
        await bus.publish(upstream)
        # Publish in rounds, as the services would: every session's next event, interleaved.
        sessions = [
            [Envelope.wrap(e, producer="upstream") for e in s]
            for s in mixed_sessions(rng, SESSIONS)
        ]
        published = {e.event_id for e in upstream}
        for step in range(max(len(s) for s in sessions)):
            batch = [s[step] for s in sessions if step < len(s)]
            # At-least-once: some events arrive twice.
            batch += [e for e in batch if rng.random() < 0.05]
            await bus.publish(batch)
            published |= {e.event_id for e in batch}

        async def all_handled() -> bool:
            handled = await scalar(
                app, "SELECT count(*) FROM inbox WHERE consumer = :c", c=CONSUMER
            )
            return handled == len(published)

        began = time.monotonic()
        await eventually(all_handled, within=90, what=f"{len(published)} events in the store")
        print(f"LIVE: {len(published)} events projected in {time.monotonic() - began:.1f}s")
        live = await snapshot(app)
        assert len(live["sessions"]) == SESSIONS
        statuses = {row["status"] for row in live["sessions"]}
        assert statuses == {
            "billed",
            "denied",
            "abandoned",
            "expired",
            "charging",
            "scanned",
            "code_issued",
        }
        assert len(live["meter_summaries"]) > 0 and len(live["timers"]) > 0

        progress = await rebuild_store(
            bus, app.state.runtime.database, outbox_tables, settings, batch_size=500, echo=print
        )
        rebuilt = await snapshot(app)
        print(f"REBUILD: {progress.line()}")

    assert progress.applied == progress.total >= len(published)
    for table in live:
        assert rebuilt[table] == live[table], table
    assert progress.events_per_s > 0
