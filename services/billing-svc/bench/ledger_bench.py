"""Two-phase transfers (hold, then post) per second on PostgreSQL, with and without contention.

    export $(bash deploy/local/infra.sh env)
    UV_PROJECT_ENVIRONMENT=.cache/venvs/billing-svc python3 -m uv run --no-sync \
        python services/billing-svc/bench/ledger_bench.py [--pairs 2000] [--workers 16]

Creates a throw-away database on PLUGPAY_DATABASE_URL's server. One "pair" is two
transactions: a PENDING transfer from a wallet (hold) and a POST of part of it (capture), the
shape of every charging session. Uncontended: each worker has its own wallet. Contended: every
worker holds and posts on ONE wallet, serialised by its row lock.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from datetime import timedelta

import asyncpg
from billing_svc.app import MIGRATIONS
from billing_svc.domain import CREATED, AccountKind, TransferKind, TransferRequest
from billing_svc.repository import LedgerRepository
from plugpay_events.types import utc_now
from plugpay_platform.database import Database
from plugpay_platform.migrations import upgrade_to_head


def _hold(wallet: uuid.UUID, settlement: uuid.UUID) -> TransferRequest:
    """A session's hold: the first half of a pair."""
    return TransferRequest(
        id=uuid.uuid4(),
        kind=TransferKind.PENDING,
        amount=500,
        currency="EUR",
        code="session_hold",
        debit_account_id=wallet,
        credit_account_id=settlement,
        expires_at=utc_now() + timedelta(hours=1),
    )


def _capture(hold: TransferRequest) -> TransferRequest:
    """The capture of part of ``hold``: the second half of a pair."""
    return TransferRequest(
        uuid.uuid4(), TransferKind.POST, 321, "EUR", "session_capture", pending_id=hold.id
    )


async def _pair(db: Database, wallet: uuid.UUID, settlement: uuid.UUID) -> None:
    hold = _hold(wallet, settlement)
    async with db.write() as session:
        await LedgerRepository(session).create_transfer(hold)
    async with db.write() as session:
        await LedgerRepository(session).create_transfer(_capture(hold))


async def _batched_pairs(
    db: Database, wallet: uuid.UUID, settlement: uuid.UUID, pairs: int
) -> None:
    """``pairs`` holds in one transaction (one ``create_transfers`` batch), then their posts in
    another: the same two-phase pairs as ``_pair``, batched."""
    holds = [_hold(wallet, settlement) for _ in range(pairs)]
    async with db.write() as session:
        results = await LedgerRepository(session).create_transfers(holds)
    async with db.write() as session:
        results += await LedgerRepository(session).create_transfers([_capture(h) for h in holds])
    refused = [r.status for r in results if r.status != CREATED]
    assert not refused, refused


async def _fund(db: Database, owner: uuid.UUID) -> tuple[uuid.UUID, uuid.UUID]:
    async with db.write() as session:
        ledger = LedgerRepository(session)
        wallet = await ledger.open(AccountKind.WALLET, "EUR", owner)
        settlement = await ledger.open(AccountKind.SESSION_SETTLEMENT, "EUR", owner)
        clearing = await ledger.open(AccountKind.PROCESSOR_CLEARING, "EUR", owner)
        await ledger.create_transfer(
            TransferRequest.single(uuid.uuid4(), "fund", clearing, wallet, 10**12, "EUR", None)
        )
    return wallet, settlement


async def run(db: Database, pairs: int, workers: int, contended: bool) -> float:
    shared = await _fund(db, uuid.uuid4())
    accounts = [shared if contended else await _fund(db, uuid.uuid4()) for _ in range(workers)]
    per_worker = pairs // workers

    async def worker(i: int) -> None:
        for _ in range(per_worker):
            await _pair(db, *accounts[i])

    start = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(workers)))
    return per_worker * workers / (time.perf_counter() - start)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=16)
    args = parser.parse_args()
    admin = os.environ.get(
        "PLUGPAY_DATABASE_URL", "postgresql://plugpay:plugpay@127.0.0.1:5433/postgres"
    )
    plain = admin.replace("postgresql+asyncpg://", "postgresql://")
    name = f"bench_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(plain)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    url = f"{plain.rpartition('/')[0]}/{name}"
    try:
        await upgrade_to_head(MIGRATIONS, url)
        db = Database(url, pool_size=args.workers)
        for contended in (False, True):
            rate = await run(db, args.pairs, args.workers, contended)
            label = "one wallet (contended)" if contended else "own wallets"
            print(
                f"{label:24} {args.workers:3} workers: {rate:8.0f} hold+post pairs/s"
                f" = {2 * rate:8.0f} transfers/s"
            )
        await db.dispose()
    finally:
        conn = await asyncpg.connect(plain)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


if __name__ == "__main__":
    asyncio.run(main())
