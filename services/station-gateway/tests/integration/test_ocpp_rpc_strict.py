"""An independent client: npm's ocpp-rpc in strict mode checks our replies against the schemas."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from ..harness_station import PASSWORD

pytestmark = pytest.mark.infra

HERE = Path(__file__).parents[1] / "ocpp_rpc"


@pytest.fixture(scope="module")
def ocpp_rpc() -> Path:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node/npm not installed")
    if not (HERE / "node_modules" / "ocpp-rpc").exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=HERE, check=True, timeout=300)
    return HERE / "station.mjs"


@pytest.mark.parametrize("protocol", ["ocpp1.6", "ocpp2.0.1"])
async def test_ocpp_rpc_strict_client(harness, ocpp_rpc: Path, protocol: str) -> None:  # type: ignore[no-untyped-def]
    gw = await harness.start_gateway()
    station_id = f"RPC-{protocol[-3:].replace('.', '')}"
    await harness.register(station_id)
    process = await asyncio.create_subprocess_exec(
        "node",
        str(ocpp_rpc),
        env={
            "PATH": __import__("os").environ["PATH"],
            "GATEWAY_URL": gw.ws,
            "STATION_ID": station_id,
            "STATION_PASSWORD": PASSWORD,
            "OCPP_PROTOCOL": protocol,
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode() + out.decode()
    result = json.loads(out.decode().strip().splitlines()[-1])
    assert result["boot"]["status"] == "Accepted"
    assert result["code"]["qr"].startswith("https://pay.plugpay.test/s/")
    assert result["unknown"]["status"] == "UnknownVendorId"
    assert result["pushed"]
    await harness.wait_event("SessionCodeIssued")
