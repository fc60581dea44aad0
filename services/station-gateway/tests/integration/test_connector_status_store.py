"""The hot path's status store: statuses are stored a batch per statement and each says what it
replaced (the previous status decides whether ConnectorStatusChanged is emitted)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from plugpay_events import topics
from station_gateway import service
from station_gateway.repository import Repository

pytestmark = pytest.mark.infra


async def test_each_status_says_the_one_before_it_one_by_one_or_in_one_batch(
    harness: Any,
) -> None:
    await harness.start_gateway()
    await harness.register("ST-STATUS", connectors=2)
    await harness.register("ST-BATCH", connectors=2)
    reports = [(1, "Available"), (1, "Preparing"), (1, "Preparing"), (2, "Faulted")]
    seen = []
    for connector, status in reports:
        async with harness.db.write() as session:
            seen += await Repository(session).set_connector_statuses(
                [("ST-STATUS", connector, status, None, datetime.now(UTC))]
            )
    assert seen == [None, "Available", "Preparing", None]
    # The same reports in one batch (connector 1 three times): the same answers, in order.
    async with harness.db.write() as session:
        batched = await Repository(session).set_connector_statuses(
            [("ST-BATCH", c, status, None, datetime.now(UTC)) for c, status in reports]
        )
    assert batched == seen
    async with harness.db.read() as session:
        for station in ("ST-STATUS", "ST-BATCH"):
            assert await Repository(session).connector_statuses(station) == {
                1: "Preparing",
                2: "Faulted",
            }


async def test_a_batch_publishes_only_the_changes_and_maps_unknown_statuses(harness: Any) -> None:
    await harness.start_gateway()
    await harness.register("ST-CHG", connectors=2)
    at = datetime.now(UTC)
    report = service.StatusReport
    async with harness.db.write() as session:
        previous = await service.connector_statuses_changed(
            session,
            [
                report("ST-CHG", 1, "Available", "NoError", at),
                report("ST-CHG", 1, "Available", None, at),  # no change: nothing published
                report("ST-CHG", 2, "Melting", "OtherError", at),  # not in the contract
            ],
        )
    assert previous == [None, "Available", None]
    changed = await harness.wait_event(
        "ConnectorStatusChanged",
        count=2,
        topic=topics.STATIONS,
        where=lambda p: p["station_id"] == "ST-CHG",
    )
    assert sorted((p["connector_id"], p["status"], p["error_code"]) for p in changed) == [
        (1, "Available", None),
        (2, "Unavailable", "OtherError"),
    ]
