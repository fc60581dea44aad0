"""Demo data (README): fixed stations, operator and drivers, created once, in any mode.

auth-svc seeds its part itself (``AUTH_SVC_SEED_DEMO``): the organisation, the operator,
the drivers and stations ST-0001..3 with their OCPP password. This module then does the rest
as the people would, through the public API: the operator publishes the tariffs and sets each
station's commercials, and the driver saves a card and tops up 20.00 EUR. It never touches a
service's database. Running it again changes nothing.

- ``DEMO-AC`` on ST-0001 (AC 22 kW, 2 connectors): 0.39 EUR/kWh + 1.00 EUR per session;
- ``DEMO-DC`` on ST-0002 (DC 150 kW): 0.59 EUR/kWh + idle fee 0.10 EUR/min once charging ended;
- ``DEMO-STAFF`` on ST-0003 (AC 11 kW): restricted to the organisation and its group ``staff``,
  free for ``staff``, 0.29 EUR/kWh for the organisation's other members.

All prices incl. 19 % VAT, Europe/Berlin.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

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


VAT = Decimal(19)
TIME_ZONE = "Europe/Berlin"
DEMO_CREDIT = {"amount_minor": 2_000, "currency": "EUR"}
DEMO_CARD_TOKEN = "pm_card_visa"


def excl_vat(incl: str) -> str:
    """A price incl. VAT as OCPI wants it: excl. VAT, six decimals."""
    value = Decimal(incl) / (1 + VAT / 100)
    return str(value.quantize(Decimal("0.000001"), rounding=ROUND_HALF_UP))


def _component(kind: str, incl: str, step: int = 1) -> dict[str, Any]:
    return {"type": kind, "price": excl_vat(incl), "vat": str(VAT), "step_size": step}


DEMO_TARIFFS: dict[str, dict[str, Any]] = {
    "DEMO-AC": {
        "currency": "EUR",
        "elements": [
            {"price_components": [_component("ENERGY", "0.39"), _component("FLAT", "1.00")]}
        ],
    },
    "DEMO-DC": {
        "currency": "EUR",
        "elements": [
            {
                "price_components": [
                    _component("ENERGY", "0.59"),
                    # 0.10 EUR per started minute of idling = 6.00 EUR/h, billed per minute.
                    _component("PARKING_TIME", "6.00", step=60),
                ]
            }
        ],
    },
    "DEMO-STAFF": {
        "currency": "EUR",
        "elements": [{"price_components": [_component("ENERGY", "0.29")]}],
    },
}
# station -> its default tariff, and whether only the organisation's staff may charge there
DEMO_STATIONS = {"ST-0001": ("DEMO-AC", False), "ST-0002": ("DEMO-DC", False)}
DEMO_STATIONS["ST-0003"] = ("DEMO-STAFF", True)


@dataclass(frozen=True)
class Person:
    token: str
    me: dict[str, Any]

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def _log_in(http: httpx.AsyncClient, email: str, deadline: float) -> Person:
    """Log in (retrying until auth-svc has seeded) and read /auth/me."""
    loop = asyncio.get_running_loop()
    while True:
        response = await http.post(
            "/auth/token", data={"username": email, "password": DEMO_PASSWORD}
        )
        if response.status_code == 200:
            token = response.json()["access_token"]
            me = await http.get("/auth/me", headers={"Authorization": f"Bearer {token}"})
            me.raise_for_status()
            return Person(token, me.json())
        if loop.time() > deadline:
            raise RuntimeError(
                f"cannot log in as {email}: {response.status_code} {response.text[:200]}"
            )
        await asyncio.sleep(0.5)


async def _seed_pricing(http: httpx.AsyncClient, operator: Person, deadline: float) -> None:
    """The operator's tariffs and each station's commercials, where missing."""
    listed = await http.get("/pricing/tariffs", headers=operator.headers)
    listed.raise_for_status()
    existing = {t["key"] for t in listed.json()["items"]}
    for key, body in DEMO_TARIFFS.items():
        if key in existing:
            continue
        created = await http.post(
            "/pricing/tariffs", json={"key": key, **body}, headers=operator.headers
        )
        if created.status_code == 409:  # another organisation owns the key: leave it
            log.warning("demo tariff %s not created: %s", key, created.json().get("reason"))
            continue
        created.raise_for_status()
    organisation = str(operator.me["organisation_id"])
    loop = asyncio.get_running_loop()
    for station_id, (tariff_key, staff_only) in DEMO_STATIONS.items():
        # pricing-svc learns the station from auth-svc's StationRegistered: wait for it.
        while True:
            path = f"/pricing/stations/{station_id}"
            station = await http.get(path, headers=operator.headers)
            if station.status_code != 404 or loop.time() > deadline:
                break
            await asyncio.sleep(0.25)
        station.raise_for_status()
        if station.json()["commercials"] is not None:
            continue  # never overwrite what an operator set
        policy: dict[str, Any] = (
            {
                "kind": "restricted",
                "allowed_organisations": [organisation],
                "allowed_groups": ["staff"],
                "free_for_groups": ["staff"],
            }
            if staff_only
            else {"kind": "public"}
        )
        answer = await http.put(
            f"/pricing/stations/{station_id}",
            json={"time_zone": TIME_ZONE, "tariff_key": tariff_key, "access_policy": policy},
            headers=operator.headers,
        )
        answer.raise_for_status()


async def _seed_billing(http: httpx.AsyncClient, driver: Person) -> None:
    """The driver's card and 20.00 EUR in the wallet, once (with the first card)."""
    methods = await http.get("/billing/payment-methods", headers=driver.headers)
    methods.raise_for_status()
    if methods.json():
        return
    user = driver.me["user_id"]
    added = await http.post(
        "/billing/payment-methods",
        json={"token": DEMO_CARD_TOKEN},
        headers={**driver.headers, "Idempotency-Key": f"demo-card-{user}"},
    )
    added.raise_for_status()
    topped = await http.post(
        "/billing/topups",
        json={"amount": DEMO_CREDIT},
        headers={**driver.headers, "Idempotency-Key": f"demo-credit-{user}"},
    )
    topped.raise_for_status()
    if topped.json()["status"] != "succeeded":
        raise RuntimeError(f"the demo top-up failed: {topped.json()}")


async def demo_accounts(base_url: str, *, timeout_s: float = 60.0) -> DemoAccounts:
    """The demo accounts' ids, read through the public API."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    async with httpx.AsyncClient(base_url=base_url, timeout=10.0) as http:
        operator = await _log_in(http, OPERATOR_EMAIL, deadline)
        driver = await _log_in(http, DRIVER_EMAIL, deadline)
        broke = await _log_in(http, BROKE_EMAIL, deadline)
    return DemoAccounts(
        organisation_id=uuid.UUID(str(operator.me["organisation_id"])),
        operator_id=uuid.UUID(str(operator.me["user_id"])),
        driver_id=uuid.UUID(str(driver.me["user_id"])),
        broke_id=uuid.UUID(str(broke.me["user_id"])),
    )


async def seed(base_url: str, *, timeout_s: float = 60.0) -> DemoAccounts:
    """Create the demo data that auth-svc does not create itself (idempotent)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    async with httpx.AsyncClient(base_url=base_url, timeout=10.0) as http:
        operator = await _log_in(http, OPERATOR_EMAIL, deadline)
        driver = await _log_in(http, DRIVER_EMAIL, deadline)
        await _seed_pricing(http, operator, deadline)
        await _seed_billing(http, driver)
    accounts = await demo_accounts(base_url, timeout_s=timeout_s)
    log.info("demo data ready: operator, drivers, stations ST-0001..3, tariffs, wallet")
    return accounts
