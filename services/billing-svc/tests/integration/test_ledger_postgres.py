"""The PostgreSQL ledger: the same state machine as the pure one, and concurrency."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from billing_kit import priced
from billing_ledger_machine import ACCOUNTS, LedgerMachine
from billing_svc.app import MIGRATIONS
from billing_svc.domain import (
    Account,
    AccountKind,
    HoldPolicy,
    LedgerRefusal,
    Transfer,
    TransferKind,
    TransferRequest,
    trial_balance,
)
from billing_svc.processor import SimulatedProcessor
from billing_svc.repository import LedgerRepository
from billing_svc.seed import seed_demo
from billing_svc.usecases.authorise import authorize
from billing_svc.usecases.common import Billing, BillingPolicy
from hypothesis import settings
from plugpay_events.types import utc_now
from plugpay_platform.database import Database
from plugpay_platform.migrations import upgrade_to_head
from sqlalchemy import text

pytestmark = pytest.mark.infra


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    await upgrade_to_head(MIGRATIONS, database_url)
    database = Database(database_url, pool_size=20)
    yield database
    await database.dispose()


async def _open_all(database: Database) -> None:
    async with database.write() as session:
        ledger = LedgerRepository(session)
        for account in ACCOUNTS:
            await ledger.open(account.kind, account.currency, account.owner_id)


def test_postgres_ledger_against_the_model(database_url: str) -> None:
    loop = asyncio.new_event_loop()
    loop.run_until_complete(upgrade_to_head(MIGRATIONS, database_url))
    database = Database(database_url)

    class PostgresLedgerMachine(LedgerMachine):
        def setup_ledger(self) -> None:
            async def reset() -> None:
                async with database.write() as session:
                    await session.execute(text("TRUNCATE ledger_entries, transfers, accounts"))
                await _open_all(database)

            loop.run_until_complete(reset())

        def submit(self, request: TransferRequest) -> Transfer:
            async def run() -> Transfer:
                async with database.write() as session:
                    return await LedgerRepository(session).create_transfer(request, self.now)

            return loop.run_until_complete(run())

        def snapshot(self) -> dict[uuid.UUID, Account]:
            async def run() -> dict[uuid.UUID, Account]:
                async with database.read() as session:
                    return {a.id: a for a in await LedgerRepository(session).all_accounts()}

            return loop.run_until_complete(run())

        def resolutions_of(self, pending_id: uuid.UUID) -> int:
            async def run() -> int:
                async with database.read() as session:
                    return await LedgerRepository(session).count_resolutions(pending_id)

            return loop.run_until_complete(run())

    PostgresLedgerMachine.TestCase.settings = settings(
        max_examples=15, stateful_step_count=25, deadline=None
    )
    try:
        PostgresLedgerMachine.TestCase().runTest()
    finally:
        loop.run_until_complete(database.dispose())
        loop.close()


async def test_opening_accounts_together_is_opening_them_one_by_one(db: Database) -> None:
    user, org = uuid.uuid4(), uuid.uuid4()
    wanted = [
        (AccountKind.WALLET, "EUR", user),
        (AccountKind.REVENUE, "EUR", org),
        (AccountKind.SESSION_SETTLEMENT, "EUR", uuid.uuid4()),
        (AccountKind.WALLET, "EUR", user),  # asked twice: opened once
    ]
    async with db.write() as session:
        ledger = LedgerRepository(session)
        first = await ledger.open(*wanted[1])
        ids = await ledger.open_all(*wanted)
        again = await ledger.open_all(*reversed(wanted))
    assert ids == [Account.open(*w).id for w in wanted]
    assert again == ids[::-1] and first == ids[1]
    async with db.read() as session:
        ledger = LedgerRepository(session)
        for w, account_id in zip(wanted, ids, strict=True):
            assert await ledger.account(account_id) == Account.open(*w)


async def test_ledger_rows_are_immutable(db: Database) -> None:
    await _open_all(db)
    clearing, wallet = ACCOUNTS[4].id, ACCOUNTS[0].id
    async with db.write() as session:
        await LedgerRepository(session).create_transfer(
            TransferRequest(
                id=uuid.uuid4(),
                kind=TransferKind.SINGLE,
                amount=100,
                currency="EUR",
                code="test",
                debit_account_id=clearing,
                credit_account_id=wallet,
            )
        )
    for statement in ("UPDATE transfers SET amount = 1", "DELETE FROM ledger_entries"):
        with pytest.raises(Exception, match="immutable"):
            async with db.write() as session:
                await session.execute(text(statement))
    # and the CHECK constraint refuses a wallet below zero even if code tried
    with pytest.raises(Exception, match="ck_accounts_debits_within_credits"):
        async with db.write() as session:
            await session.execute(
                text("UPDATE accounts SET debits_posted = 101 WHERE id = :id"), {"id": wallet}
            )


async def test_concurrent_transfers_never_overdraw_nor_deadlock(db: Database) -> None:
    await _open_all(db)
    wallets = [ACCOUNTS[0].id, ACCOUNTS[1].id]
    clearing, settlement = ACCOUNTS[4].id, ACCOUNTS[5].id
    async with db.write() as session:
        for w in wallets:
            await LedgerRepository(session).create_transfer(
                TransferRequest(
                    id=uuid.uuid4(),
                    kind=TransferKind.SINGLE,
                    amount=10_000,
                    currency="EUR",
                    code="fund",
                    debit_account_id=clearing,
                    credit_account_id=w,
                )
            )
    rng = random.Random(7)
    accepted: list[int] = []

    async def one(i: int) -> None:
        # holds on wallet 0, and transfers between the two wallets both ways (deadlock bait)
        if i % 3 == 0:
            a, b = (wallets[0], wallets[1]) if i % 2 else (wallets[1], wallets[0])
            request = TransferRequest(
                id=uuid.uuid4(),
                kind=TransferKind.SINGLE,
                amount=rng.randint(1, 300),
                currency="EUR",
                code="p2p",
                debit_account_id=a,
                credit_account_id=b,
            )
        else:
            request = TransferRequest(
                id=uuid.uuid4(),
                kind=TransferKind.PENDING,
                amount=rng.randint(100, 900),
                currency="EUR",
                code="hold",
                debit_account_id=wallets[0],
                credit_account_id=settlement,
                expires_at=utc_now() + timedelta(hours=1),
            )
        try:
            async with db.write() as session:
                await LedgerRepository(session).create_transfer(request)
            accepted.append(request.amount)
        except LedgerRefusal as refusal:
            assert refusal.reason == "exceeds_credits"

    await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(120))), timeout=60)
    async with db.read() as session:
        accounts = await LedgerRepository(session).all_accounts()
    for a in accounts:
        if a.kind is AccountKind.WALLET:
            assert a.available >= 0
    for dp, cp, dq, cq in trial_balance(accounts).values():
        assert dp == cp and dq == cq
    assert len(accepted) > 10


async def test_simultaneous_authorisations_on_one_wallet_never_overdraw(db: Database) -> None:
    billing = Billing(
        SimulatedProcessor(),
        BillingPolicy(holds=HoldPolicy(wallet_hold_cap=700, card_hold_ac=5000, card_hold_dc=10000)),
    )
    driver = uuid.uuid4()
    async with db.write() as session:
        await seed_demo(session, driver, uuid.uuid4())  # 20.00 EUR and a card
        await session.execute(text("UPDATE payment_methods SET removed_at = now()"))
    results: list[str] = []

    async def authorise() -> None:
        async with db.write() as session:
            events = await authorize(billing, session, priced(driver))
        results.append(type(events[-1]).__name__)

    await asyncio.wait_for(asyncio.gather(*(authorise() for _ in range(40))), timeout=60)
    async with db.read() as session:
        ledger = LedgerRepository(session)
        wallet = next(
            a
            for a in await ledger.all_accounts()
            if a.kind is AccountKind.WALLET and a.owner_id == driver
        )
        holds = await ledger.pending_holds(wallet.id)
    # 2000 = 2 x 700 + 600: three holds, then nothing left; every other attempt is denied
    assert sorted(h.amount for h in holds) == [600, 700, 700]
    assert wallet.available == 0 and wallet.balance == 2000
    assert results.count("SessionAuthorized") == 3
    assert results.count("SessionDenied") == 37
