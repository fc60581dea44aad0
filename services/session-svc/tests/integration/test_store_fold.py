"""The rebuild's bulk path (``StoreFold`` + COPY, several flushes) writes the store the live
one-event path writes from the same events, row for row, on real PostgreSQL."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from plugpay_events import serde
from plugpay_events.bus.port import Delivery
from plugpay_events.bus.recorded import RecordedLog
from plugpay_events.contracts.identity import ConnectorSpec, StationRegistered
from plugpay_events.contracts.sessions import MeterSample, MeterValuesReported, SessionPriced
from plugpay_events.contracts.stations import (
    StationConnected,
    StationDisconnected,
    StationWentOffline,
)
from plugpay_events.envelope import Envelope, Event
from plugpay_events.replay import decode_event
from plugpay_events.session_code import generate_signing_key
from plugpay_platform.database import Database
from plugpay_platform.migrations import upgrade_to_head
from session_harness import make_settings
from session_stories import TARIFF, Story, mixed_sessions
from session_svc.app import MIGRATIONS
from session_svc.handlers import CONSUMER, live_handler, timer_rules
from session_svc.rebuild import SessionStoreProjection, rebuild_store
from session_svc.tables import STORE_TABLES, outbox_tables, scan_claims
from sqlalchemy import select

pytestmark = pytest.mark.infra

NOW = datetime.now(UTC).replace(microsecond=0)


def station_events(rng: random.Random) -> list[Event]:
    events: list[Event] = []
    for n in range(7):
        station = f"ST-{n}"
        at = NOW - timedelta(minutes=rng.randint(1, 50))
        events += [
            StationConnected(
                station_id=station, ocpp_version="1.6", gateway_instance="gw", connected_at=at
            ),
            StationRegistered(
                station_id=station,
                organisation_id=uuid.uuid4(),
                name=f"Station {n}",
                connectors=(ConnectorSpec(connector_id=1, max_power_w=22_000),),
                registered_at=at,
            ),
        ]
        if n % 3 == 0:
            events.append(
                StationDisconnected(station_id=station, gateway_instance="gw", disconnected_at=at)
            )
        if n % 3 == 1:
            events.append(StationWentOffline(station_id=station, last_seen_at=at))
    return events


def odd_events() -> list[Event]:
    """What the log may hold besides well-formed stories."""
    story = Story(station_id="ST-1")
    story.issued(), story.scanned(), story.priced(), story.authorised(), story.started_charging()
    tied = story.at(300)
    # Two reports with the same newest sample: the first one stays.
    same_time = [
        MeterValuesReported(
            session_id=story.session_id,
            station_id="ST-1",
            connector_id=story.connector_id,
            transaction_id=f"tx-{energy}",
            samples=(MeterSample(sampled_at=tied, energy_wh=energy, power_w=7000),),
        )
        for energy in (1000, 2000)
    ]
    # An event of a session whose code was never issued, and a meter report of no session.
    orphan = SessionPriced(
        session_id=uuid.uuid4(),
        station_id="ST-2",
        connector_id=1,
        user_id=uuid.uuid4(),
        station_organisation_id=uuid.uuid4(),
        tariff=TARIFF,
        time_zone="Europe/Berlin",
        max_power_w=11_000,
        priced_at=NOW,
    )
    stray_meter = MeterValuesReported(
        session_id=uuid.uuid4(),
        station_id="ST-3",
        connector_id=1,
        transaction_id="tx-stray",
        samples=(MeterSample(sampled_at=NOW, energy_wh=10, power_w=None),),
    )
    # A transition the state machine refuses (kept in ``ignored``), and a hold released late.
    late = Story(station_id="ST-4")
    denied = late.denied_path()
    return [*story.events, *same_time, orphan, stray_meter, *denied, late.scanned()]


def the_log(seed: int) -> list[Envelope]:
    rng = random.Random(seed)
    stories = [[Envelope.wrap(e, producer="t") for e in s] for s in mixed_sessions(rng, 90)]
    log = [Envelope.wrap(e, producer="t") for e in station_events(rng) + odd_events()]
    for step in range(max(len(s) for s in stories)):
        batch = [s[step] for s in stories if step < len(s)]
        batch += [e for e in batch if rng.random() < 0.08]  # redelivered
        log += batch
    log += [e for e in log[:40] if rng.random() < 0.5]  # redelivered much later
    return log


async def snapshot(database: Database) -> dict[str, Any]:
    async with database.engine.connect() as conn:
        result: dict[str, Any] = {}
        for table in STORE_TABLES:
            rows = (await conn.execute(select(table).order_by(*table.primary_key.columns))).all()
            result[table.name] = [dict(r._mapping) for r in rows]
        claims = await conn.execute(
            select(scan_claims.c.session_id, scan_claims.c.user_id, scan_claims.c.scanned)
        )
        result["scan_claims"] = sorted(map(tuple, claims.all()))
        inbox = outbox_tables.inbox
        handled = await conn.execute(select(inbox.c.event_id).where(inbox.c.consumer == CONSUMER))
        result["inbox"] = sorted(r.event_id for r in handled)
        return result


@pytest.mark.parametrize("batch_size", [1, 37, 100_000])
async def test_bulk_rebuild_writes_what_the_live_path_writes(
    database_url: str, batch_size: int
) -> None:
    settings = make_settings(database_url, "t.", generate_signing_key(), start_timeout_s=None)
    await upgrade_to_head(MIGRATIONS, database_url)
    database = Database(database_url)
    log = the_log(seed=batch_size)
    try:
        handle = live_handler(database.sessions, outbox_tables, timer_rules(settings))
        for envelope in log:
            await handle(_delivery(envelope))
        live = await snapshot(database)

        projection = SessionStoreProjection(database, outbox_tables, settings)
        await projection.reset()
        try:
            events = [decode_event(serde.encode(e)) for e in log]
            for start in range(0, len(events), batch_size):
                await projection.apply_events(events[start : start + batch_size])
                await projection.flush()
        finally:
            await projection.close()
        rebuilt = await snapshot(database)
    finally:
        await database.dispose()

    assert len(live["sessions"]) == 90 + 2 and live["meter_summaries"] and live["timers"]
    assert len(live["inbox"]) == len({e.event_id for e in log}) < len(log)
    assert any(row["state"]["ignored"] for row in live["sessions"])
    for name in live:
        assert rebuilt[name] == live[name], name


def _delivery(envelope: Envelope) -> Delivery:
    return Delivery(envelope, "t", 0, 0)


def as_version_1(envelope: Envelope) -> Envelope:
    """A QR scan as session-svc wrote it before ``code_kind`` (upcast on reading)."""
    payload = {k: v for k, v in envelope.payload.items() if k != "code_kind"}
    return envelope.model_copy(update={"version": 1, "payload": payload})


@pytest.mark.parametrize("batch_size", [50, 100_000])
async def test_the_whole_rebuild_from_a_partitioned_log_writes_what_the_live_path_writes(
    database_url: str, batch_size: int
) -> None:
    """``rebuild_store`` end to end without Kafka: read, decoded while applied (older versions
    upcast), merged across partitions, batches flushed while the next is applied."""
    settings = make_settings(database_url, "t.", generate_signing_key(), start_timeout_s=None)
    await upgrade_to_head(MIGRATIONS, database_url)
    database = Database(database_url)
    log = [
        as_version_1(e)
        if e.type == "SessionCodeScanned" and e.payload.get("code_kind") == "qr"
        else e
        for e in the_log(seed=7)
    ]
    assert any(e.version == 1 for e in log)
    try:
        handle = live_handler(database.sessions, outbox_tables, timer_rules(settings))
        for envelope in log:
            await handle(_delivery(envelope))
        live = await snapshot(database)
        bus = RecordedLog.of(log, topic_prefix="t.")
        assert max(r.partition for records in bus.records.values() for r in records) > 0
        progress = await rebuild_store(
            bus, database, outbox_tables, settings, batch_size=batch_size
        )
        rebuilt = await snapshot(database)
    finally:
        await database.dispose()

    assert progress.applied == progress.total == len(log)
    assert progress.undecodable == 0
    assert len(live["sessions"]) == 90 + 2 and live["inbox"]
    for name in live:
        assert rebuilt[name] == live[name], name
