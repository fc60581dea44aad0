"""The fixed demo data of the product, seeded idempotently through the normal use cases.

Every event (OrganisationCreated, UserRegistered, UserVerified, StationRegistered,
StationCredentialSet) goes through the outbox like any other, so the other services learn the
demo stations exactly as they learn real ones. The demo passwords pass the normal policy; no
bypass is used. Never run in production (the settings refuse AUTH_SVC_SEED_DEMO there).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from plugpay_events.contracts.identity import ConnectorSpec
from plugpay_platform.security import Principal
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession

from auth_svc import service
from auth_svc.repository import AuthRepository
from auth_svc.service import AuthContext, NewStation
from auth_svc.settings import Settings

DEMO_ORGANISATION = "Demo Charge Point Operator"
DEMO_PASSWORD = "demo-password-1"
DEMO_STATION_PASSWORD = "demo-station-secret"
OPERATOR_EMAIL = "operator@example.com"
DRIVER_EMAIL = "driver@example.com"
BROKE_EMAIL = "broke@example.com"
STAFF_GROUP = "staff"

_AC22 = {"power_type": "AC_3_PHASE", "max_power_w": 22_000}
DEMO_STATIONS = [
    NewStation(
        station_id="ST-0001",
        name="Demo Market Square",
        connectors=(
            ConnectorSpec(connector_id=1, **_AC22),
            ConnectorSpec(connector_id=2, **_AC22),
        ),
        latitude=52.5200,
        longitude=13.4050,
        address="Market Square 1, Demo City",
    ),
    NewStation(
        station_id="ST-0002",
        name="Demo Motorway Fast Charger",
        connectors=(
            ConnectorSpec(
                connector_id=1,
                standard="IEC_62196_T2_COMBO",
                power_type="DC",
                max_power_w=150_000,
            ),
        ),
        latitude=52.4000,
        longitude=13.1000,
        address="Motorway Services, Demo City",
    ),
    # Restricted to the operator's staff: the access policy itself is pricing-svc's.
    NewStation(
        station_id="ST-0003",
        name="Demo Depot (staff only)",
        connectors=(ConnectorSpec(connector_id=1, power_type="AC_3_PHASE", max_power_w=11_000),),
        latitude=52.5300,
        longitude=13.3800,
        address="Depot Road 3, Demo City",
    ),
]


@dataclass(frozen=True)
class DemoIds:
    organisation_id: uuid.UUID
    operator_id: uuid.UUID
    driver_id: uuid.UUID
    broke_id: uuid.UUID


async def seed_demo(
    session: AsyncSession,
    *,
    ctx: AuthContext | None = None,
    staff_emails: tuple[str, ...] = (OPERATOR_EMAIL,),
) -> DemoIds:
    """Create the demo organisation, accounts, stations, OCPP passwords and the staff group.

    Idempotent: what exists is left as it is (a changed OCPP password is not reset). Runs in the
    caller's transaction and does not commit.
    """
    ctx = ctx or AuthContext(Settings.model_construct(database_url=SecretStr("unused")))
    repo = AuthRepository(session)
    org = await repo.organisation_by_name(DEMO_ORGANISATION)
    if org is None:
        org = await service.create_organisation(ctx, session, DEMO_ORGANISATION)

    async def account(email: str, role: str, organisation_id: uuid.UUID | None) -> uuid.UUID:
        existing = await repo.user_by_email(email)
        if existing is not None:
            return existing.account.user_id
        return await service.create_staff_account(
            ctx,
            session,
            email=email,
            password=DEMO_PASSWORD,
            role=role,  # type: ignore[arg-type]
            organisation_id=organisation_id,
        )

    operator_id = await account(OPERATOR_EMAIL, "operator", org.id)
    driver_id = await account(DRIVER_EMAIL, "driver", None)
    broke_id = await account(BROKE_EMAIL, "driver", None)

    admin = Principal(user_id=uuid.UUID(int=0), roles=frozenset({"admin"}))
    for new in DEMO_STATIONS:
        station = await repo.station(new.station_id)
        if station is None:
            station = await service.register_station(ctx, session, admin, new, org.id)
        if station.credential_set_at is None:
            # Profile 1 (Basic auth without TLS): the local demo serves plain ws://.
            await service.set_station_credential(
                ctx, session, admin, new.station_id, DEMO_STATION_PASSWORD, 1
            )

    if await repo.group_organisation(STAFF_GROUP) is None:
        await service.create_group(session, admin, STAFF_GROUP, org.id)
    for email in staff_emails:
        await service.add_group_member(ctx, session, admin, STAFF_GROUP, email)
    return DemoIds(org.id, operator_id, driver_id, broke_id)
