"""A hypothesis state machine that drives a ledger against a naive model of it.

Subclassed per system under test: the pure ``InMemoryLedger`` and the PostgreSQL repository.
After every step: debits equal credits per currency (posted and pending), no wallet below zero
(holds included), every hold resolved at most once, and the system's balances equal the model's.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from billing_svc.domain import (
    Account,
    AccountKind,
    LedgerRefusal,
    Transfer,
    TransferKind,
    TransferRequest,
    trial_balance,
)
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

CURRENCY = "EUR"
USERS = [uuid.UUID(int=1), uuid.UUID(int=2)]
ORG = uuid.UUID(int=10)
ACCOUNTS = [
    *(Account.open(AccountKind.WALLET, CURRENCY, u) for u in USERS),
    *(Account.open(AccountKind.RECEIVABLE, CURRENCY, u) for u in USERS),
    Account.open(AccountKind.PROCESSOR_CLEARING, CURRENCY),
    Account.open(AccountKind.SESSION_SETTLEMENT, CURRENCY),
    Account.open(AccountKind.REVENUE, CURRENCY, ORG),
]
WALLETS = [a.id for a in ACCOUNTS if a.kind is AccountKind.WALLET]
IDS = [a.id for a in ACCOUNTS]


@dataclass
class ModelHold:
    debit: uuid.UUID
    credit: uuid.UUID
    amount: int
    expires_at: datetime
    state: str = "pending"


class LedgerMachine(RuleBasedStateMachine):
    """Override ``submit``, ``snapshot`` and ``resolutions_of``."""

    def __init__(self) -> None:
        super().__init__()
        self.now = datetime(2025, 1, 1, tzinfo=UTC)
        self.posted = {a: 0 for a in IDS}  # model: posted balance, credit side positive
        self.pending = {a: 0 for a in IDS}  # model: pending, credit side positive
        self.holds: dict[uuid.UUID, ModelHold] = {}
        self.done: list[tuple[TransferRequest, Transfer]] = []
        self.setup_ledger()

    # --- the system under test
    def setup_ledger(self) -> None:
        raise NotImplementedError

    def submit(self, request: TransferRequest) -> Transfer:
        raise NotImplementedError

    def snapshot(self) -> dict[uuid.UUID, Account]:
        raise NotImplementedError

    def resolutions_of(self, pending_id: uuid.UUID) -> int:
        raise NotImplementedError

    # --- helpers
    def _next_id(self) -> uuid.UUID:
        # Deterministic ids: hypothesis replays examples and must see the same draws.
        self.counter = getattr(self, "counter", 0) + 1
        return uuid.UUID(int=(1 << 64) + self.counter)

    def _available(self, wallet: uuid.UUID) -> int:
        # debits pending are negative in self.pending for the debit side
        held = sum(
            h.amount for h in self.holds.values() if h.state == "pending" and h.debit == wallet
        )
        return self.posted[wallet] - held

    def _expect_ok(self, request: TransferRequest) -> Transfer:
        try:
            result = self.submit(request)
        except LedgerRefusal as refusal:
            raise AssertionError(f"refused unexpectedly: {refusal}") from refusal
        self.done.append((request, result))
        return result

    def _expect_refusal(self, request: TransferRequest, reason: str | None = None) -> None:
        before = self.snapshot()
        try:
            self.submit(request)
        except LedgerRefusal as refusal:
            assert reason is None or refusal.reason == reason, refusal.reason
        else:
            raise AssertionError(f"accepted a transfer the model refuses: {request}")
        assert self.snapshot() == before

    # --- rules
    @rule(
        debit=st.sampled_from(IDS),
        credit=st.sampled_from(IDS),
        amount=st.integers(min_value=1, max_value=5_000),
    )
    def transfer(self, debit: uuid.UUID, credit: uuid.UUID, amount: int) -> None:
        request = TransferRequest(
            id=self._next_id(),
            kind=TransferKind.SINGLE,
            amount=amount,
            currency=CURRENCY,
            code="test",
            debit_account_id=debit,
            credit_account_id=credit,
        )
        if debit == credit:
            self._expect_refusal(request, "accounts_must_be_different")
        elif debit in WALLETS and self._available(debit) < amount:
            self._expect_refusal(request, "exceeds_credits")
        else:
            self._expect_ok(request)
            self.posted[debit] -= amount
            self.posted[credit] += amount

    @rule(
        wallet=st.sampled_from(WALLETS),
        amount=st.integers(min_value=1, max_value=3_000),
        ttl=st.integers(min_value=1, max_value=120),
    )
    def hold(self, wallet: uuid.UUID, amount: int, ttl: int) -> None:
        settlement = ACCOUNTS[5].id
        request = TransferRequest(
            id=self._next_id(),
            kind=TransferKind.PENDING,
            amount=amount,
            currency=CURRENCY,
            code="hold",
            debit_account_id=wallet,
            credit_account_id=settlement,
            expires_at=self.now + timedelta(seconds=ttl),
        )
        if self._available(wallet) < amount:
            self._expect_refusal(request, "exceeds_credits")
            return
        self._expect_ok(request)
        self.holds[request.id] = ModelHold(wallet, settlement, amount, request.expires_at)  # type: ignore[arg-type]

    def _pick(self, data: st.DataObject) -> uuid.UUID:
        return data.draw(st.sampled_from(sorted(self.holds)))

    @precondition(lambda self: self.holds)
    @rule(data=st.data(), fraction=st.floats(min_value=0.0, max_value=1.3))
    def post(self, data: st.DataObject, fraction: float) -> None:
        hold_id = self._pick(data)
        hold = self.holds[hold_id]
        amount = max(1, int(hold.amount * fraction))
        request = TransferRequest(
            id=self._next_id(),
            kind=TransferKind.POST,
            amount=amount,
            currency=CURRENCY,
            code="capture",
            pending_id=hold_id,
        )
        if hold.state != "pending":
            self._expect_refusal(request, f"pending_transfer_already_{hold.state}")
        elif self.now >= hold.expires_at:
            self._expect_refusal(request, "pending_transfer_expired")
        elif amount > hold.amount:
            self._expect_refusal(request, "exceeds_pending_transfer_amount")
        else:
            self._expect_ok(request)
            hold.state = "posted"
            self.posted[hold.debit] -= amount
            self.posted[hold.credit] += amount

    @precondition(lambda self: self.holds)
    @rule(data=st.data())
    def void(self, data: st.DataObject) -> None:
        hold_id = self._pick(data)
        hold = self.holds[hold_id]
        request = TransferRequest(
            id=self._next_id(),
            kind=TransferKind.VOID,
            amount=0,
            currency=CURRENCY,
            code="release",
            pending_id=hold_id,
        )
        if hold.state != "pending":
            self._expect_refusal(request, f"pending_transfer_already_{hold.state}")
        elif self.now >= hold.expires_at:
            self._expect_refusal(request, "pending_transfer_expired")
        else:
            self._expect_ok(request)
            hold.state = "voided"

    @rule(seconds=st.integers(min_value=1, max_value=90))
    def advance_clock(self, seconds: int) -> None:
        self.now += timedelta(seconds=seconds)

    @rule()
    def expire_due(self) -> None:
        for hold_id, hold in sorted(self.holds.items()):
            request = TransferRequest(
                id=uuid.uuid5(hold_id, "expire"),
                kind=TransferKind.EXPIRE,
                amount=0,
                currency=CURRENCY,
                code="expire",
                pending_id=hold_id,
            )
            if hold.state == "pending" and self.now >= hold.expires_at:
                self._expect_ok(request)
                hold.state = "expired"

    @precondition(lambda self: self.done)
    @rule(data=st.data())
    def retry_same(self, data: st.DataObject) -> None:
        request, first = data.draw(st.sampled_from(self.done))
        before = self.snapshot()
        assert self.submit(request) == first
        assert self.snapshot() == before

    @precondition(lambda self: self.done)
    @rule(data=st.data(), field=st.sampled_from(["code", "reference"]))
    def retry_different(self, data: st.DataObject, field: str) -> None:
        request, _ = data.draw(st.sampled_from(self.done))
        changed = TransferRequest(**{**request.__dict__, field: "something else"})
        self._expect_refusal(changed, "exists_with_different_fields")

    # --- invariants
    @invariant()
    def debits_equal_credits(self) -> None:
        for dp, cp, dq, cq in trial_balance(self.snapshot().values()).values():
            assert dp == cp and dq == cq

    @invariant()
    def no_wallet_below_zero(self) -> None:
        for account in self.snapshot().values():
            if account.kind is AccountKind.WALLET:
                assert account.available >= 0 and account.balance >= 0

    @invariant()
    def holds_resolved_at_most_once(self) -> None:
        for hold_id, hold in self.holds.items():
            assert self.resolutions_of(hold_id) == (0 if hold.state == "pending" else 1)

    @invariant()
    def balances_match_model(self) -> None:
        accounts = self.snapshot()
        for account_id, posted in self.posted.items():
            a = accounts[account_id]
            assert a.credits_posted - a.debits_posted == posted
        for wallet in WALLETS:
            assert accounts[wallet].available == self._available(wallet)
