"""Bench fleet, created through the public APIs the way an operator and drivers would.

Stations BST-0001.. (``connectors`` each, OCPP password BENCH_STATION_PASSWORD) in the demo
organisation with the DEMO-AC tariff; drivers bench-driver-NNN@example.com, each with the
simulated processor's ``pm_card_visa`` as default card (holds go on the card). Idempotent: what
exists is kept. The fleet is remembered in .local/stack-<name>/bench-fleet.json.

    python bench/fleet.py --stations 100 --connectors 10 --drivers 50
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import httpx
from common import BASE_URL, STATE

STATION_PASSWORD = "bench-station-secret-1"
DRIVER_PASSWORD = "bench-driver-pass-1"
OPERATOR = ("operator@example.com", "demo-password-1")


async def _token(http: httpx.AsyncClient, email: str, password: str, tries: int = 120) -> str:
    for _ in range(tries):
        r = await http.post("/auth/token", data={"username": email, "password": password})
        if r.status_code == 200:
            return str(r.json()["access_token"])
        await asyncio.sleep(0.5)
    raise RuntimeError(f"cannot log in as {email}: {r.status_code} {r.text[:200]}")


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _retry(call: Any, ok: tuple[int, ...], what: str, tries: int = 120) -> httpx.Response:
    for _ in range(tries):
        r = await call()
        if r.status_code in ok:
            return r
        await asyncio.sleep(0.25)
    raise RuntimeError(f"{what}: {r.status_code} {r.text[:300]}")


async def ensure_fleet(
    stations: int,
    connectors: int,
    drivers: int,
    *,
    base_url: str = BASE_URL,
    state: Path = STATE,
    admin_password: str | None = None,
) -> dict[str, Any]:
    path = state / "bench-fleet.json"
    known: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    have_st = set(known.get("stations", []))
    have_dr = set(known.get("drivers", []))
    station_ids = [f"BST-{i:04d}" for i in range(1, stations + 1)]
    driver_emails = [f"bench-driver-{i:03d}@example.com" for i in range(1, drivers + 1)]
    if (
        known.get("connectors") == connectors
        and set(station_ids) <= have_st
        and set(driver_emails) <= have_dr
    ):
        return known
    admin_pw = admin_password or (state / "secrets" / "admin-password").read_text().strip()
    limits = httpx.Limits(max_connections=16)
    async with httpx.AsyncClient(base_url=base_url, timeout=30, limits=limits) as http:
        op = _bearer(await _token(http, *OPERATOR))
        admin = _bearer(await _token(http, "admin@example.com", admin_pw))
        sem = asyncio.Semaphore(8)

        async def station(sid: str) -> None:
            async with sem:
                body = {
                    "id": sid,
                    "name": f"Bench {sid}",
                    "connectors": [
                        {"connector_id": c, "max_power_w": 22_000} for c in range(1, connectors + 1)
                    ],
                }
                await _retry(
                    lambda: http.post("/auth/stations", json=body, headers=op),
                    (201, 409),
                    f"register {sid}",
                )
                await _retry(
                    lambda: http.put(
                        f"/auth/stations/{sid}/credentials",
                        json={"password": STATION_PASSWORD, "security_profile": 1},
                        headers=op,
                    ),
                    (204,),
                    f"credential {sid}",
                )
                await _retry(
                    lambda: http.put(
                        f"/pricing/stations/{sid}",
                        json={"time_zone": "Europe/Berlin", "tariff_key": "DEMO-AC"},
                        headers=op,
                    ),
                    (200,),
                    f"commercials {sid}",
                )

        async def driver(email: str) -> None:
            async with sem:
                await _retry(
                    lambda: http.post(
                        "/auth/users",
                        json={"email": email, "password": DRIVER_PASSWORD, "role": "driver"},
                        headers=admin,
                    ),
                    (201, 409),
                    f"user {email}",
                )
                me = _bearer(await _token(http, email, DRIVER_PASSWORD))
                methods = await _retry(
                    lambda: http.get("/billing/payment-methods", headers=me),
                    (200,),
                    f"methods {email}",
                )
                if not methods.json():
                    await _retry(
                        lambda: http.post(
                            "/billing/payment-methods",
                            json={"token": "pm_card_visa"},
                            headers={**me, "Idempotency-Key": f"card-{email}"},
                        ),
                        (201,),
                        f"card {email}",
                    )

        await asyncio.gather(*(station(s) for s in station_ids if s not in have_st))
        await asyncio.gather(*(driver(d) for d in driver_emails if d not in have_dr))
    fleet = {
        "stations": sorted(have_st | set(station_ids)),
        "connectors": connectors,
        "drivers": sorted(have_dr | set(driver_emails)),
        "station_password": STATION_PASSWORD,
        "driver_password": DRIVER_PASSWORD,
    }
    path.write_text(json.dumps(fleet, indent=1))
    return fleet


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--stations", type=int, default=100)
    p.add_argument("--connectors", type=int, default=10)
    p.add_argument("--drivers", type=int, default=50)
    a = p.parse_args()
    fleet = asyncio.run(ensure_fleet(a.stations, a.connectors, a.drivers))
    print(
        f"fleet: {len(fleet['stations'])} stations x {fleet['connectors']} connectors, "
        f"{len(fleet['drivers'])} drivers",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
