"""``plan_transfers``: a batch decides exactly what its requests decide one by one."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta

from billing_batch_kit import CLEARING, SETTLEMENT, funding, one_by_one, random_requests, split
from billing_ledger_machine import ACCOUNTS, CURRENCY, WALLETS
from billing_svc.domain import (
    CREATED,
    EXISTS,
    InMemoryLedger,
    TransferKind,
    TransferRequest,
    trial_balance,
)
from hypothesis import given, settings
from hypothesis import strategies as st

NOW = datetime(2025, 1, 1, tzinfo=UTC)


def _ledger() -> InMemoryLedger:
    ledger = InMemoryLedger()
    for account in ACCOUNTS:
        ledger.open(account)
    return ledger


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(min_value=0, max_value=2**32), count=st.integers(1, 120))
def test_batches_equal_one_by_one(seed: int, count: int) -> None:
    rng = random.Random(seed)
    requests = funding(rng.choice((500, 10_000))) + random_requests(rng, count, NOW)
    reference, batched = _ledger(), _ledger()
    expected = one_by_one(reference, requests, NOW)
    got = []
    for batch in split(rng, requests):
        got += batched.create_transfers(batch, NOW)
    assert [(r.id, r.status, r.transfer) for r in got] == [
        (r.id, r.status, r.transfer) for r in expected
    ]
    assert batched.accounts == reference.accounts
    assert batched.entries == reference.entries
    for dp, cp, dq, cq in trial_balance(batched.accounts.values()).values():
        assert dp == cp and dq == cq
    for wallet in WALLETS:
        assert batched.accounts[wallet].available >= 0


def test_one_batch_mixed_results() -> None:
    ledger = _ledger()
    wallet = WALLETS[0]
    hold = TransferRequest(
        id=uuid.uuid4(),
        kind=TransferKind.PENDING,
        amount=700,
        currency=CURRENCY,
        code="hold",
        debit_account_id=wallet,
        credit_account_id=SETTLEMENT,
        expires_at=NOW + timedelta(hours=1),
    )
    too_big = TransferRequest(**{**hold.__dict__, "id": uuid.uuid4(), "amount": 400})
    fits = TransferRequest(**{**hold.__dict__, "id": uuid.uuid4(), "amount": 300})
    post = TransferRequest(
        id=uuid.uuid4(),
        kind=TransferKind.POST,
        amount=500,
        currency=CURRENCY,
        code="capture",
        pending_id=hold.id,
    )
    second_post = TransferRequest(**{**post.__dict__, "id": uuid.uuid4()})
    results = ledger.create_transfers(
        [
            *funding(1_000)[:1],
            hold,
            too_big,  # 700 held of 1000: 400 more is an overdraft, refused mid-batch
            fits,  # and the batch goes on
            hold,  # the same request again: an idempotent retry within the batch
            TransferRequest(**{**hold.__dict__, "amount": 1}),
            post,
            second_post,
        ],
        NOW,
    )
    assert [r.status for r in results] == [
        CREATED,
        CREATED,
        "exceeds_credits",
        CREATED,
        EXISTS,
        "exists_with_different_fields",
        CREATED,
        "pending_transfer_already_posted",
    ]
    assert results[4].transfer == results[1].transfer
    assert too_big.id not in ledger.transfers and second_post.id not in ledger.transfers
    a = ledger.accounts[wallet]
    assert (a.balance, a.held, a.available) == (500, 300, 200)
    assert ledger.accounts[CLEARING].balance == 1_000
