"""What only the containers can show: a station-gateway replica crashes mid-session.

The station holds its socket on replica 1 (directly, so we know which one dies); the service's
process inside that container is SIGKILLed. The station reconnects through the front door
(nginx sends it to the surviving replica), keeps charging, and the unplug completes and bills the
session exactly once. Meanwhile Docker's restart policy brings the crashed replica back healthy.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import pytest
from e2e_support import (
    COMPOSE_DIR,
    FLOW_TIMEOUT_S,
    SETUP_TIMEOUT_S,
    World,
    compose,
    compose_container,
    connect_with_retry,
    container_state,
    crash_service_process,
    eventually,
)

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.compose_only]


async def test_gateway_replica_killed_mid_session(world: World) -> None:
    driver = await world.driver(wallet_minor=2_000)
    station_id = await world.register_station()
    station = await world.connect_station(
        station_id, ocpp_version="2.0.1", ws_url=world.d.gateway_ws_urls[0]
    )
    session_id = await world.scan(driver.phone, (await station.request_code(1))["qr"])
    await world.wait(driver.phone, session_id, {"charging"})
    tx = station.transactions[1]
    await eventually(
        lambda: asyncio.sleep(0, tx.meter_wh > tx.meter_start_wh),
        within=FLOW_TIMEOUT_S,
        what="energy before the crash",
    )

    container = compose_container("station-gateway")
    restarts_before, _, _ = await asyncio.to_thread(container_state, container)
    await asyncio.to_thread(crash_service_process, container)
    await station.close()  # the charger sees its socket drop and dials the public address again
    station.base_url = world.d.ws_url
    tx.meter_wh += 300  # charged while it was reconnecting
    station.registers[tx.connector_id] = tx.meter_wh
    await connect_with_retry(station, boot=False)
    station._tasks.append(asyncio.create_task(station._meter_loop(tx)))
    await station.send_meter_values(tx)
    assert (await world.wait(driver.phone, session_id, {"charging"}))["status"] == "charging"
    await station.unplug(1)
    final = await world.wait(driver.phone, session_id, {"billed"})
    assert final["energy_wh"] == tx.meter_wh - tx.meter_start_wh
    counts = (await world.session_events())[session_id]
    assert counts["SessionCompleted"] == 1 and counts["SessionBilled"] == 1, counts

    async def restarted_and_healthy() -> bool:
        restarts, status, health = await asyncio.to_thread(container_state, container)
        return restarts > restarts_before and status == "running" and health == "healthy"

    await eventually(
        restarted_and_healthy, within=SETUP_TIMEOUT_S, what="the crashed replica back, healthy"
    )


def project_objects(project: str) -> list[str]:
    """Ids of the containers and volumes Compose made for ``project``."""
    label = f"label=com.docker.compose.project={project}"
    found = []
    for command in (["ps", "-aq"], ["volume", "ls", "-q"]):
        out = subprocess.run(
            ["docker", *command, "--filter", label], capture_output=True, text=True, check=True
        )
        found += out.stdout.split()
    return found


async def test_down_without_the_secret_files(world: World, tmp_path: Path) -> None:
    """Stopping a deployment needs none of its secrets (a machine where they were never made, or
    were deleted): `compose.sh down --volumes` removes its containers and volumes, quietly."""
    project = {"COMPOSE_PROJECT_NAME": "plugpay-down-check"}
    # containers and volumes made, not started, from the running deployment's secret files
    await asyncio.to_thread(compose, "compose", "up", "--no-start", "nginx", env=project)
    assert await asyncio.to_thread(project_objects, project["COMPOSE_PROJECT_NAME"])

    down = await asyncio.to_thread(
        subprocess.run,
        ["bash", str(COMPOSE_DIR / "compose.sh"), "down", "--volumes"],
        env={**os.environ, **project, "PLUGPAY_COMPOSE_SECRETS": str(tmp_path / "none")},
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert down.returncode == 0, down.stderr
    assert "secret" not in down.stderr, down.stderr
    assert not await asyncio.to_thread(project_objects, project["COMPOSE_PROJECT_NAME"])
    assert not (tmp_path / "none").exists()
