"""Random mixed transfer requests for the batch tests, and their one-by-one reference results.

The reference is ``InMemoryLedger.create_transfer`` called once per request: a batch must give
exactly these results (statuses, transfers, balances, entries), whatever its size.
"""

from __future__ import annotations

import random
import uuid
from datetime import datetime, timedelta

from billing_ledger_machine import ACCOUNTS, CURRENCY, IDS, WALLETS
from billing_svc.domain import (
    CREATED,
    EXISTS,
    InMemoryLedger,
    LedgerRefusal,
    TransferKind,
    TransferRequest,
    TransferResult,
)

CLEARING = ACCOUNTS[4].id
SETTLEMENT = ACCOUNTS[5].id
UNKNOWN_ACCOUNT = uuid.UUID(int=99)


def funding(amount: int = 10_000) -> list[TransferRequest]:
    return [
        TransferRequest(
            id=uuid.uuid5(wallet, "fund"),
            kind=TransferKind.SINGLE,
            amount=amount,
            currency=CURRENCY,
            code="fund",
            debit_account_id=CLEARING,
            credit_account_id=wallet,
        )
        for wallet in WALLETS
    ]


def random_requests(rng: random.Random, count: int, now: datetime) -> list[TransferRequest]:
    """Holds, posts, voids, expiries, plain transfers, retries (same and different fields),
    unknown accounts and pendings, overdrafts: everything the ledger can answer."""
    made: list[TransferRequest] = []
    holds: list[uuid.UUID] = []

    def new_id() -> uuid.UUID:
        return uuid.UUID(int=rng.getrandbits(128))

    while len(made) < count:
        roll = rng.random()
        if roll < 0.35:
            request = TransferRequest(
                id=new_id(),
                kind=TransferKind.PENDING,
                amount=rng.randint(1, 4_000),
                currency=CURRENCY,
                code="hold",
                debit_account_id=rng.choice(WALLETS),
                credit_account_id=SETTLEMENT,
                expires_at=now + timedelta(seconds=rng.choice((-5, 60, 3600))),
            )
            holds.append(request.id)
        elif roll < 0.6 and holds:
            kind = rng.choice((TransferKind.POST, TransferKind.POST, TransferKind.VOID))
            kind = TransferKind.EXPIRE if rng.random() < 0.1 else kind
            request = TransferRequest(
                id=new_id(),
                kind=kind,
                amount=rng.randint(1, 4_500) if kind is TransferKind.POST else 0,
                currency=CURRENCY,
                code=kind.value,
                pending_id=rng.choice(holds) if rng.random() < 0.95 else new_id(),
            )
        elif roll < 0.75:
            request = TransferRequest(
                id=new_id(),
                kind=TransferKind.SINGLE,
                amount=rng.randint(1, 6_000),
                currency=CURRENCY,
                code="transfer",
                debit_account_id=rng.choice(IDS),
                credit_account_id=rng.choice([*IDS, UNKNOWN_ACCOUNT]),
            )
        elif made and roll < 0.9:
            request = rng.choice(made)  # an idempotent retry
        elif made:
            again = rng.choice(made)
            request = TransferRequest(**{**again.__dict__, "reference": "changed"})
        else:
            continue
        made.append(request)
    return made


def one_by_one(
    ledger: InMemoryLedger, requests: list[TransferRequest], now: datetime
) -> list[TransferResult]:
    """The reference: each request alone, in order."""
    results = []
    for request in requests:
        known = request.id in ledger.transfers
        try:
            transfer = ledger.create_transfer(request, now)
        except LedgerRefusal as refusal:
            results.append(TransferResult(request.id, refusal.reason, message=refusal.message))
        else:
            results.append(TransferResult(request.id, EXISTS if known else CREATED, transfer))
    return results


def split(rng: random.Random, requests: list[TransferRequest]) -> list[list[TransferRequest]]:
    """Cut requests into batches of random sizes (1 to 40)."""
    batches, i = [], 0
    while i < len(requests):
        size = rng.randint(1, 40)
        batches.append(requests[i : i + size])
        i += size
    return batches
