"""Sockets opened and closed are recorded a batch per transaction (a reconnect storm shares
commits): a close releases only the connection it names, whatever else is in its batch."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from station_gateway import service
from station_gateway.repository import Repository
from station_gateway.tables import outbox_tables

pytestmark = pytest.mark.infra


async def test_one_batch_of_opens_and_closes_ends_as_the_same_changes_one_by_one(
    harness: Any,
) -> None:
    await harness.start_gateway()
    for station in ("ST-P1", "ST-P2", "ST-P3"):
        await harness.register(station)
    at = datetime.now(UTC)
    old, new, brief, first, second = (uuid.uuid4() for _ in range(5))
    async with harness.db.write() as session:
        await service.presence_changed(
            session, [service.PresenceChange("ST-P2", old, at, "1.6")], instance_id="elsewhere"
        )
        await Repository(session).add_command("ST-P1", "clear_display", "test")
    change = service.PresenceChange
    batch = [
        change("ST-P1", first, at, "2.0.1"),
        change("ST-P2", new, at + timedelta(seconds=1), "1.6"),
        change("ST-P2", old, at + timedelta(seconds=2)),  # the replaced socket's close, late
        change("ST-P3", brief, at, "1.6"),
        change("ST-P3", brief, at + timedelta(seconds=3)),  # opened and closed at once
        change("ST-P1", second, at + timedelta(seconds=4), "2.0.1"),  # a second open wins
    ]
    async with harness.db.write() as session:
        before = await _outbox_size(session)
        waiting = await service.presence_changed(session, batch, instance_id="here")
        events = await _outbox_since(session, before)
    # Only the stations opened with commands queued are told to drain them.
    assert waiting == [True, False, False, False, False, True]
    async with harness.db.read() as session:
        repo = Repository(session)
        p1, p2, p3 = [await repo.presence(s) for s in ("ST-P1", "ST-P2", "ST-P3")]
    assert p1 is not None and p2 is not None and p3 is not None
    assert (p1["connection_id"], p1["instance_id"], p1["connected"]) == (second, "here", True)
    assert (p2["connection_id"], p2["connected"]) == (new, True)  # the late close took nothing
    assert (p3["connection_id"], p3["connected"]) == (brief, False)
    assert events == [
        ("StationConnected", "ST-P1"),
        ("StationConnected", "ST-P2"),
        ("StationConnected", "ST-P3"),
        ("StationDisconnected", "ST-P3"),
    ]


async def _outbox_size(session: Any) -> int:
    """The newest outbox row's id (the relay deletes what it published, so not a count)."""
    newest = await session.scalar(select(func.max(outbox_tables.outbox.c.id)))
    return int(newest or 0)


async def _outbox_since(session: Any, after: int) -> list[tuple[str, str]]:
    """Presence events this transaction queued, in order (uncommitted: the relay cannot take
    them yet)."""
    rows = await session.execute(
        select(outbox_tables.outbox.c.envelope)
        .where(outbox_tables.outbox.c.id > after)
        .order_by(outbox_tables.outbox.c.id)
    )
    return [
        (e["type"], e["payload"]["station_id"])
        for e in (r.envelope for r in rows)
        if e["type"] in ("StationConnected", "StationDisconnected")
    ]
