"""Demo data (README): fixed stations, operator and drivers, created once, in any mode.

auth-svc seeds its part itself (``AUTH_SVC_SEED_DEMO``): the organisation, the operator,
the drivers and stations ST-0001..3 with their OCPP password. This module then learns the
ids the way any client does — by logging in — and runs pricing-svc's and billing-svc's own
idempotent seed functions against their databases: tariffs and access policies, the driver's
20.00 EUR wallet and saved card. Running it again changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from dataclasses import dataclass

import httpx

log = logging.getLogger(__name__)

DEMO_PASSWORD = "demo-password-1"
OPERATOR_EMAIL = "operator@example.com"
DRIVER_EMAIL = "driver@example.com"
BROKE_EMAIL = "broke@example.com"


@dataclass(frozen=True)
class DemoAccounts:
    """Who the demo people are, as auth-svc knows them."""

    organisation_id: uuid.UUID
    operator_id: uuid.UUID
    driver_id: uuid.UUID
    broke_id: uuid.UUID


async def _whoami(http: httpx.AsyncClient, email: str, deadline: float) -> dict[str, object]:
    """Log in (retrying until auth-svc has seeded) and return /auth/me."""
    loop = asyncio.get_running_loop()
    while True:
        response = await http.post(
            "/auth/token", data={"username": email, "password": DEMO_PASSWORD}
        )
        if response.status_code == 200:
            token = response.json()["access_token"]
            me = await http.get("/auth/me", headers={"Authorization": f"Bearer {token}"})
            me.raise_for_status()
            result: dict[str, object] = me.json()
            return result
        if loop.time() > deadline:
            raise RuntimeError(
                f"cannot log in as {email}: {response.status_code} {response.text[:200]}"
            )
        await asyncio.sleep(0.5)


async def demo_accounts(base_url: str, *, timeout_s: float = 60.0) -> DemoAccounts:
    """The demo accounts' ids, read through the public API."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    async with httpx.AsyncClient(base_url=base_url, timeout=10.0) as http:
        operator = await _whoami(http, OPERATOR_EMAIL, deadline)
        driver = await _whoami(http, DRIVER_EMAIL, deadline)
        broke = await _whoami(http, BROKE_EMAIL, deadline)
    return DemoAccounts(
        organisation_id=uuid.UUID(str(operator["organisation_id"])),
        operator_id=uuid.UUID(str(operator["user_id"])),
        driver_id=uuid.UUID(str(driver["user_id"])),
        broke_id=uuid.UUID(str(broke["user_id"])),
    )


async def seed(
    base_url: str, *, pricing_database_url: str, billing_database_url: str
) -> DemoAccounts:
    """Create the demo data that auth-svc does not create itself (idempotent)."""
    from billing_svc.seed import seed_demo_database as seed_billing
    from plugpay_platform.database import Database
    from pricing_svc.seed import seed_demo_database as seed_pricing

    accounts = await demo_accounts(base_url)
    pricing_db = Database(pricing_database_url, pool_size=1)
    try:
        await seed_pricing(pricing_db, accounts.organisation_id)
    finally:
        await pricing_db.dispose()
    await seed_billing(billing_database_url, accounts.driver_id, accounts.broke_id)
    log.info("demo data ready: operator, drivers, stations ST-0001..3, tariffs, wallet")
    return accounts


async def seed_embedded(base_url: str) -> DemoAccounts:
    """Seed the embedded installation, whose settings are in this process's environment."""
    return await seed(
        base_url,
        pricing_database_url=os.environ["PRICING_SVC_DATABASE_URL"],
        billing_database_url=os.environ["BILLING_SVC_DATABASE_URL"],
    )
