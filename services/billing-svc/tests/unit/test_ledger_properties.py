"""The pure ledger against the model (fast: many examples)."""

from __future__ import annotations

import uuid

from billing_ledger_machine import ACCOUNTS, LedgerMachine
from billing_svc.domain import Account, InMemoryLedger, Transfer, TransferRequest
from hypothesis import settings


class InMemoryLedgerMachine(LedgerMachine):
    def setup_ledger(self) -> None:
        self.ledger = InMemoryLedger()
        for account in ACCOUNTS:
            self.ledger.open(account)

    def submit(self, request: TransferRequest) -> Transfer:
        return self.ledger.create_transfer(request, self.now)

    def snapshot(self) -> dict[uuid.UUID, Account]:
        return dict(self.ledger.accounts)

    def resolutions_of(self, pending_id: uuid.UUID) -> int:
        return sum(1 for t in self.ledger.transfers.values() if t.pending_id == pending_id)


InMemoryLedgerMachine.TestCase.settings = settings(
    max_examples=300, stateful_step_count=40, deadline=None
)
TestInMemoryLedger = InMemoryLedgerMachine.TestCase
