"""In the distributed mode: the session store rebuilt from the event log equals the live one,
row for row. The test charges a session of its own first, so it holds wherever it is collected
(whatever other tests left in the log is compared too)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from typing import Any

import asyncpg
import pytest
from e2e_support import (
    FLOW_TIMEOUT_S,
    ROOT,
    STACK_KAFKA,
    VENV_BIN,
    Deployment,
    World,
    eventually,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")

# session-svc's projection (session_svc.tables.STORE_TABLES) and its primary keys
STORE = {
    "sessions": "session_id",
    "meter_summaries": "session_id",
    "stations": "station_id",
    "timers": "kind, session_id",
}
STORE_TOPICS = ("plugpay.sessions", "plugpay.meter", "plugpay.stations", "plugpay.identity")


async def snapshot(conn: asyncpg.Connection) -> dict[str, list[dict[str, Any]]]:
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        return {
            table: [dict(r) for r in await conn.fetch(f"SELECT * FROM {table} ORDER BY {key}")]
            for table, key in STORE.items()
        }


async def log_ids(world: World) -> list[str]:
    """Every event id in the topics the session store is built from."""
    ids: set[str] = set()
    for topic in STORE_TOPICS:
        name = world.bus.topic_name(topic)
        for record in await world.bus.read_topic(name, timeout_s=120):
            ids.add(str(json.loads(record.value)["event_id"]))
    return sorted(ids)


def session_svc_env(d: Deployment) -> dict[str, str]:
    """What scripts/stack.sh gives session-svc (service_env), for the rebuild command."""
    from plugpay_events.session_code import verification_jwks

    assert d.state_dir is not None
    key = json.loads((d.state_dir / "secrets" / "code-signing-key.json").read_text())
    return {
        **os.environ,
        "PLUGPAY_ENVIRONMENT": "development",
        "PLUGPAY_KAFKA_BOOTSTRAP": STACK_KAFKA,
        "PLUGPAY_TOPIC_PREFIX": d.topic_prefix,
        "PLUGPAY_PUBLIC_BASE_URL": d.base_url,
        "PLUGPAY_JWKS_URL": f"http://127.0.0.1:{d.port_base + 1}/auth/.well-known/jwks.json",
        "PLUGPAY_INSTANCE_ID": "session-svc-e2e-rebuild",
        "SESSION_SVC_DATABASE_URL": d.database_urls["sessions"].replace(
            "postgresql:", "postgresql+asyncpg:"
        ),
        "SESSION_SVC_CODE_VERIFICATION_JWKS": json.dumps(verification_jwks(key)),
    }


@pytest.mark.distributed_only
async def test_rebuilt_session_store_equals_the_live_one(world: World) -> None:
    # A billed session with meter values of its own: the store is never empty, even first.
    driver = await world.driver(wallet_minor=2_000)
    station = await world.station()
    code = await station.request_code(1)
    session_id = await world.scan(driver.phone, code["qr"])
    await world.wait(driver.phone, session_id, {"charging"})
    tx = station.transactions[1]
    await eventually(
        lambda: asyncio.sleep(0, tx.meter_wh > tx.meter_start_wh),
        within=FLOW_TIMEOUT_S,
        what="energy flows",
    )
    await station.unplug(1)
    await world.wait(driver.phone, session_id, {"billed"})

    conn = await asyncpg.connect(world.d.database_urls["sessions"])
    try:
        for _attempt in range(3):
            before = await log_ids(world)

            async def caught_up(before: list[str] = before) -> bool:
                # the live store has applied everything in the log (its inbox has each event)
                handled = await conn.fetchval(
                    "SELECT count(*) FROM inbox WHERE consumer = 'session-svc.store'"
                    " AND event_id = ANY($1::uuid[])",
                    before,
                )
                return handled == len(before)

            try:
                await eventually(
                    caught_up, within=180, what="the live store has every logged event", every=1.0
                )
            except AssertionError:
                handled = await conn.fetchval(
                    "SELECT count(*) FROM inbox WHERE consumer = 'session-svc.store'"
                    " AND event_id = ANY($1::uuid[])",
                    before,
                )
                pytest.fail(
                    f"the live session store never applied {len(before) - handled} of the"
                    f" {len(before)} events in the log (its consumer's offsets are past them)"
                )
            live = await snapshot(conn)
            done = await asyncio.to_thread(
                subprocess.run,
                [str(VENV_BIN / "session-svc"), "rebuild"],
                cwd=ROOT,
                env=session_svc_env(world.d),
                capture_output=True,
                text=True,
                timeout=600,
            )
            assert done.returncode == 0, done.stderr[-3000:]
            rebuilt = await snapshot(conn)
            if await log_ids(world) != before:
                continue  # someone wrote to the log meanwhile: compare again on a quiet log
            print(f"\n[e2e] rebuild: {done.stdout.strip()}")
            for table in STORE:
                live_rows = {json.dumps(r, default=str, sort_keys=True) for r in live[table]}
                rebuilt_rows = {json.dumps(r, default=str, sort_keys=True) for r in rebuilt[table]}
                assert rebuilt_rows == live_rows, (
                    table,
                    sorted(live_rows - rebuilt_rows)[:3],
                    sorted(rebuilt_rows - live_rows)[:3],
                )
            assert any(r["session_id"] == session_id for r in live["sessions"]), session_id
            return
        pytest.fail("the event log never stayed quiet long enough to compare")
    finally:
        await conn.close()
