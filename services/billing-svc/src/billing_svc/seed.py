"""The demo's billing data (idempotent): a funded wallet and a saved card for the demo driver,
nothing for the broke one.

    await seed_demo(session, driver_user_id, broke_user_id)          # inside your transaction
    await seed_demo_database(database, driver_user_id, broke_user_id)  # its own transaction

The driver gets 20.00 EUR of promotional credit (a ledger transfer from the ``promotions``
account, so the books balance) and the simulated processor's ``pm_card_visa`` as the default
card. Running it again changes nothing: the transfer id and card id are derived from the user.
"""

from __future__ import annotations

import uuid

from plugpay_platform.database import Database
from sqlalchemy.ext.asyncio import AsyncSession

from billing_svc.domain import AccountKind, TransferRequest, derived_id
from billing_svc.repository import BillingRepository, LedgerRepository, PaymentMethod

DEMO_CREDIT_MINOR = 2_000
DEMO_CURRENCY = "EUR"
DEMO_CARD_TOKEN = "pm_card_visa"


async def seed_demo(
    session: AsyncSession, driver_user_id: uuid.UUID, broke_user_id: uuid.UUID
) -> None:
    """Seed in the caller's transaction (nothing is committed here)."""
    repo, ledger = BillingRepository(session), LedgerRepository(session)
    await repo.ensure_profile(broke_user_id)
    await ledger.open(AccountKind.WALLET, DEMO_CURRENCY, broke_user_id)
    await repo.lock_profile(driver_user_id)
    wallet = await ledger.open(AccountKind.WALLET, DEMO_CURRENCY, driver_user_id)
    promotions = await ledger.open(AccountKind.PROMOTIONS, DEMO_CURRENCY)
    await ledger.create_transfer(
        TransferRequest.single(
            derived_id("demo-credit", driver_user_id),
            "promotional_credit",
            promotions,
            wallet,
            DEMO_CREDIT_MINOR,
            DEMO_CURRENCY,
            "demo seed",
        )
    )
    method_id = derived_id("payment-method", driver_user_id, DEMO_CARD_TOKEN)
    if await repo.method(driver_user_id, method_id) is None:
        has_default = await repo.default_method(driver_user_id) is not None
        await repo.add_method(
            PaymentMethod(
                id=method_id,
                user_id=driver_user_id,
                processor_token=DEMO_CARD_TOKEN,
                brand="visa",
                last4="4242",
                exp_month=12,
                exp_year=2034,
                is_default=not has_default,
            )
        )


async def seed_demo_database(
    database: Database | str, driver_user_id: uuid.UUID, broke_user_id: uuid.UUID
) -> None:
    """Seed billing-svc's database (a ``Database`` or its URL; migrations must have run)."""
    owned = isinstance(database, str)
    db = Database(database) if isinstance(database, str) else database
    try:
        async with db.write() as session:
            await seed_demo(session, driver_user_id, broke_user_id)
    finally:
        if owned:
            await db.dispose()
