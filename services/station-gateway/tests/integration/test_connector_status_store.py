"""The hot path's status store: one statement stores a connector's status and says what it was
(the previous status decides whether ConnectorStatusChanged is emitted)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from station_gateway.repository import Repository

pytestmark = pytest.mark.infra


async def test_set_connector_status_returns_the_status_before_it(harness: Any) -> None:
    await harness.start_gateway()
    await harness.register("ST-STATUS", connectors=2)
    seen = []
    for connector, status in ((1, "Available"), (1, "Preparing"), (1, "Preparing"), (2, "Faulted")):
        async with harness.db.write() as session:
            seen.append(
                await Repository(session).set_connector_status(
                    "ST-STATUS", connector, status, None, datetime.now(UTC)
                )
            )
    assert seen == [None, "Available", "Preparing", None]
    async with harness.db.read() as session:
        assert await Repository(session).connector_statuses("ST-STATUS") == {
            1: "Preparing",
            2: "Faulted",
        }
