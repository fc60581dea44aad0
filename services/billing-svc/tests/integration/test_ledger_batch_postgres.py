"""``LedgerRepository.create_transfers`` on PostgreSQL: the same results as one by one, inside
the caller's transaction, and exactly once under concurrency."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from billing_batch_kit import SETTLEMENT, funding, one_by_one, random_requests, split
from billing_ledger_machine import ACCOUNTS, CURRENCY, WALLETS
from billing_svc.app import MIGRATIONS
from billing_svc.domain import (
    CREATED,
    EXISTS,
    Account,
    AccountKind,
    InMemoryLedger,
    TransferKind,
    TransferRequest,
    TransferResult,
    trial_balance,
)
from billing_svc.repository import LedgerRepository
from plugpay_events.types import utc_now
from plugpay_platform.database import Database

pytestmark = pytest.mark.infra

NOW = datetime(2025, 1, 1, tzinfo=UTC)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    await upgrade(database_url)
    database = Database(database_url, pool_size=20)
    async with database.write() as session:
        ledger = LedgerRepository(session)
        for account in ACCOUNTS:
            await ledger.open(account.kind, account.currency, account.owner_id)
    yield database
    await database.dispose()


async def upgrade(url: str) -> None:
    from plugpay_platform.migrations import upgrade_to_head

    await upgrade_to_head(MIGRATIONS, url)


async def _batch(
    db: Database, requests: list[TransferRequest], now: datetime | None = None
) -> list[TransferResult]:
    async with db.write() as session:
        return await LedgerRepository(session).create_transfers(requests, now)


async def _accounts(db: Database) -> dict[uuid.UUID, Account]:
    async with db.read() as session:
        return {a.id: a for a in await LedgerRepository(session).all_accounts()}


def _balanced_and_covered(accounts: dict[uuid.UUID, Account]) -> None:
    for dp, cp, dq, cq in trial_balance(accounts.values()).values():
        assert dp == cp and dq == cq
    for a in accounts.values():
        if a.kind is AccountKind.WALLET:
            assert a.available >= 0


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_batches_equal_one_by_one(db: Database, seed: int) -> None:
    rng = random.Random(seed)
    requests = funding() + random_requests(rng, 300, NOW)
    reference = InMemoryLedger()
    for account in ACCOUNTS:
        reference.open(account)
    expected = one_by_one(reference, requests, NOW)
    got: list[TransferResult] = []
    for batch in split(rng, requests):
        got += await _batch(db, batch, NOW)
    assert [(r.id, r.status, r.transfer) for r in got] == [
        (r.id, r.status, r.transfer) for r in expected
    ]
    assert sum(r.status == CREATED for r in got) > 50  # the mix really moved money
    accounts = await _accounts(db)
    assert accounts == reference.accounts
    _balanced_and_covered(accounts)
    async with db.read() as session:
        ledger = LedgerRepository(session)
        for account in ACCOUNTS:
            history = list(reversed(await ledger.entries(account.id, limit=10_000)))
            assert history == [e for e in reference.entries if e.account_id == account.id]

    # Across batches: everything created, sent again in one batch, exists and changes nothing.
    created = {r.id: r.transfer for r in got if r.status == CREATED}
    again = [q for q, r in zip(requests, got, strict=True) if r.status == CREATED]
    rng.shuffle(again)
    results = await _batch(db, again, NOW + timedelta(days=1))
    assert all(r.status == EXISTS and r.transfer == created[r.id] for r in results)
    assert await _accounts(db) == accounts


async def test_a_batch_is_part_of_the_callers_transaction(db: Database) -> None:
    class Abort(Exception):
        pass

    with pytest.raises(Abort):
        async with db.write() as session:
            results = await LedgerRepository(session).create_transfers(funding(), NOW)
            assert [r.status for r in results] == [CREATED, CREATED]
            raise Abort
    async with db.read() as session:
        ledger = LedgerRepository(session)
        assert [await ledger.transfer(r.id) for r in funding()] == [None, None]
    assert all(a.entries == 0 for a in (await _accounts(db)).values())
    # after other statements of the same unit of work, too
    async with db.write() as session:
        ledger = LedgerRepository(session)
        await ledger.lock_accounts(WALLETS)
        assert [r.status for r in await ledger.create_transfers(funding(), NOW)] == [CREATED] * 2
    assert (await _accounts(db))[WALLETS[0]].balance == 10_000


def _hold(wallet: uuid.UUID, amount: int, hold_id: uuid.UUID | None = None) -> TransferRequest:
    return TransferRequest(
        id=hold_id or uuid.uuid4(),
        kind=TransferKind.PENDING,
        amount=amount,
        currency=CURRENCY,
        code="hold",
        debit_account_id=wallet,
        credit_account_id=SETTLEMENT,
        expires_at=utc_now() + timedelta(hours=1),
    )


async def test_concurrent_batches_on_shared_wallets_never_overdraw(db: Database) -> None:
    await _batch(db, funding(10_000))
    rng = random.Random(11)
    held: list[tuple[uuid.UUID, int]] = []

    async def worker(i: int) -> None:
        for _ in range(6):
            batch: list[TransferRequest] = []
            for _ in range(rng.randint(5, 25)):
                roll = rng.random()
                if roll < 0.6:
                    batch.append(_hold(rng.choice(WALLETS), rng.randint(100, 900)))
                elif roll < 0.8 and held:
                    pending_id, amount = rng.choice(held)
                    batch.append(
                        TransferRequest(
                            id=uuid.uuid4(),
                            kind=rng.choice((TransferKind.POST, TransferKind.VOID)),
                            amount=rng.randint(1, amount),
                            currency=CURRENCY,
                            code="resolve",
                            pending_id=pending_id,
                        )
                    )
                else:  # wallet to wallet, both ways: deadlock bait
                    a, b = rng.sample(WALLETS, 2)
                    batch.append(
                        TransferRequest(
                            id=uuid.uuid4(),
                            kind=TransferKind.SINGLE,
                            amount=rng.randint(1, 300),
                            currency=CURRENCY,
                            code="p2p",
                            debit_account_id=a,
                            credit_account_id=b,
                        )
                    )
            for request, result in zip(batch, await _batch(db, batch), strict=True):
                if result.status == CREATED and request.kind is TransferKind.PENDING:
                    held.append((request.id, request.amount))

    # the time-out only turns a deadlock into a failure instead of a hung run
    await asyncio.wait_for(asyncio.gather(*(worker(i) for i in range(8))), timeout=120)
    accounts = await _accounts(db)
    _balanced_and_covered(accounts)
    assert len(held) > 10
    async with db.read() as session:
        ledger = LedgerRepository(session)
        for pending_id, _ in held:
            assert await ledger.count_resolutions(pending_id) <= 1
        still_held = 0
        for w in WALLETS:
            still_held += sum(h.amount for h in await ledger.pending_holds(w))
    assert still_held == sum(accounts[w].held for w in WALLETS)


async def test_the_same_batch_sent_concurrently_takes_effect_once(db: Database) -> None:
    await _batch(db, funding(10_000))
    holds = [_hold(WALLETS[i % 2], 100 * (i + 1)) for i in range(10)]
    copies = await asyncio.wait_for(
        asyncio.gather(*(_batch(db, holds) for _ in range(6))), timeout=120
    )
    for i in range(len(holds)):
        statuses = sorted(results[i].status for results in copies)
        assert statuses == [CREATED] + [EXISTS] * 5
    posts = [
        [
            TransferRequest(
                id=uuid.uuid4(),  # different ids: different clients capturing the same hold
                kind=TransferKind.POST,
                amount=50,
                currency=CURRENCY,
                code="capture",
                pending_id=hold.id,
            )
            for hold in holds
        ]
        for _ in range(6)
    ]
    outcomes = await asyncio.wait_for(
        asyncio.gather(*(_batch(db, batch) for batch in posts)), timeout=120
    )
    for i in range(len(holds)):
        statuses = sorted(results[i].status for results in outcomes)
        assert statuses == [CREATED] + ["pending_transfer_already_posted"] * 5
    accounts = await _accounts(db)
    _balanced_and_covered(accounts)
    for w in WALLETS:
        assert accounts[w].held == 0
        assert accounts[w].balance == 10_000 - 50 * 5
