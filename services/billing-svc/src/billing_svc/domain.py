"""Pure billing rules: the double-entry ledger (after TigerBeetle), funding and settlement plans.

No I/O here. ``repository.py`` locks rows and stores what these functions decide; the
``InMemoryLedger`` runs the very same rules for unit and property tests.

Ledger semantics (TigerBeetle's):
- an account keeps four sums: debits/credits, pending/posted; balances are derived from them;
- a transfer moves ``amount`` from its debit account to its credit account, atomically, once;
  its id is chosen by the client: the same id with the same fields returns the first result,
  with different fields it is refused (``exists_with_different_fields``);
- a PENDING transfer reserves the amount (pending sums); exactly one of POST (for at most the
  pending amount, the rest returns), VOID or EXPIRE (after ``expires_at``) later resolves it;
- an account's rule may forbid debits above credits (a wallet can never go below zero, holds
  included) or the reverse;
- transfers can be created in a batch (``plan_transfers``): applied in order, as if one by one,
  each with its own result, so one refused transfer does not fail the others.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

BIGINT_MAX = 2**63 - 1  # every amount and counter column is a PostgreSQL bigint

LEDGER_NAMESPACE = uuid.UUID("0b1f5a52-8c57-4e55-9a3c-6a2f0b7e41c1")


class AccountKind(StrEnum):
    """The chart of accounts (docs/billing.md). Credit-normal kinds are liabilities/income."""

    WALLET = "wallet"  # liability: prepaid money we owe one driver, per currency
    RECEIVABLE = "receivable"  # asset: what one driver owes us (a session ran over its hold)
    PROCESSOR_CLEARING = "processor_clearing"  # asset: money the card processor collects for us
    SESSION_SETTLEMENT = "session_settlement"  # clearing: holds land here, split at settlement
    REVENUE = "revenue"  # income of one station-owning organisation, excl. VAT
    VAT_PAYABLE = "vat_payable"  # liability: VAT collected for one organisation's sales
    PROMOTIONS = "promotions"  # expense: credit given away (demo seed, goodwill)


CREDIT_NORMAL = frozenset(
    {
        AccountKind.WALLET,
        AccountKind.SESSION_SETTLEMENT,
        AccountKind.REVENUE,
        AccountKind.VAT_PAYABLE,
    }
)


class BalanceRule(StrEnum):
    """What an account may never do (checked after every change, and by a CHECK in SQL)."""

    NONE = "none"
    DEBITS_MUST_NOT_EXCEED_CREDITS = "debits_must_not_exceed_credits"
    CREDITS_MUST_NOT_EXCEED_DEBITS = "credits_must_not_exceed_debits"


RULE_OF_KIND = {AccountKind.WALLET: BalanceRule.DEBITS_MUST_NOT_EXCEED_CREDITS}


def account_code(kind: AccountKind, currency: str, owner: uuid.UUID | None = None) -> str:
    """The stable name of an account: ``wallet:EUR:<user>``, ``vat_payable:EUR:<org>``..."""
    return f"{kind.value}:{currency}" + (f":{owner}" if owner else "")


def account_id(kind: AccountKind, currency: str, owner: uuid.UUID | None = None) -> uuid.UUID:
    """Account ids are derived from their code, so callers never need a lookup to name one."""
    return uuid.uuid5(LEDGER_NAMESPACE, account_code(kind, currency, owner))


def derived_id(*parts: object) -> uuid.UUID:
    """A deterministic id for a transfer or record caused by something with its own id.

    Handlers derive transfer ids from the session id, so a replayed event (even re-emitted with
    a new event id) finds the transfer it made the first time instead of moving money again.
    """
    return uuid.uuid5(LEDGER_NAMESPACE, "/".join(str(p) for p in parts))


@dataclass(frozen=True)
class Account:
    """An account and its four sums, in minor units of its one currency."""

    id: uuid.UUID
    code: str
    kind: AccountKind
    currency: str
    rule: BalanceRule = BalanceRule.NONE
    owner_id: uuid.UUID | None = None
    debits_pending: int = 0
    debits_posted: int = 0
    credits_pending: int = 0
    credits_posted: int = 0
    entries: int = 0

    @classmethod
    def open(cls, kind: AccountKind, currency: str, owner: uuid.UUID | None = None) -> Account:
        return cls(
            id=account_id(kind, currency, owner),
            code=account_code(kind, currency, owner),
            kind=kind,
            currency=currency,
            rule=RULE_OF_KIND.get(kind, BalanceRule.NONE),
            owner_id=owner,
        )

    @property
    def credit_normal(self) -> bool:
        return self.kind in CREDIT_NORMAL

    @property
    def balance(self) -> int:
        """Posted balance on the account's normal side."""
        net = self.credits_posted - self.debits_posted
        return net if self.credit_normal else -net

    @property
    def held(self) -> int:
        """Amount reserved by pending transfers against the normal side."""
        return self.debits_pending if self.credit_normal else self.credits_pending

    @property
    def available(self) -> int:
        """What can still be spent: posted balance less pending holds."""
        return self.balance - self.held

    def changed(self, d_pend: int, d_post: int, c_pend: int, c_post: int) -> Account:
        """This account with its sums moved and one more entry (``replace``, minus its cost:
        it runs twice per transfer)."""
        return Account(
            self.id,
            self.code,
            self.kind,
            self.currency,
            self.rule,
            self.owner_id,
            self.debits_pending + d_pend,
            self.debits_posted + d_post,
            self.credits_pending + c_pend,
            self.credits_posted + c_post,
            self.entries + 1,
        )

    def violates_rule(self) -> bool:
        if self.rule is BalanceRule.DEBITS_MUST_NOT_EXCEED_CREDITS:
            return self.debits_pending + self.debits_posted > self.credits_posted
        if self.rule is BalanceRule.CREDITS_MUST_NOT_EXCEED_DEBITS:
            return self.credits_pending + self.credits_posted > self.debits_posted
        return False


class TransferKind(StrEnum):
    SINGLE = "single"  # posted at once
    PENDING = "pending"  # a reservation (hold)
    POST = "post_pending"  # completes a pending transfer for at most its amount
    VOID = "void_pending"  # cancels a pending transfer
    EXPIRE = "expire_pending"  # cancels a pending transfer after its expiry (the sweeper)


RESOLVING = frozenset({TransferKind.POST, TransferKind.VOID, TransferKind.EXPIRE})


@dataclass(frozen=True)
class TransferRequest:
    """What a client asks for. For POST/VOID/EXPIRE the accounts come from the pending one;
    VOID/EXPIRE amounts are the pending amount (0 in the request means "all of it")."""

    id: uuid.UUID
    kind: TransferKind
    amount: int
    currency: str
    code: str
    debit_account_id: uuid.UUID | None = None
    credit_account_id: uuid.UUID | None = None
    pending_id: uuid.UUID | None = None
    expires_at: datetime | None = None
    reference: str | None = None

    @classmethod
    def single(
        cls,
        id: uuid.UUID,
        code: str,
        debit: uuid.UUID,
        credit: uuid.UUID,
        amount: int,
        currency: str,
        reference: str | None,
    ) -> TransferRequest:
        """A transfer posted at once: ``amount`` from ``debit`` to ``credit`` (in the order
        use cases list their moves: key, code, debit, credit, amount)."""
        return cls(
            id, TransferKind.SINGLE, amount, currency, code, debit, credit, reference=reference
        )


@dataclass(frozen=True)
class Transfer:
    """An immutable, stored transfer."""

    id: uuid.UUID
    kind: TransferKind
    debit_account_id: uuid.UUID
    credit_account_id: uuid.UUID
    amount: int
    currency: str
    code: str
    created_at: datetime
    pending_id: uuid.UUID | None = None
    expires_at: datetime | None = None
    reference: str | None = None

    def matches(self, request: TransferRequest) -> bool:
        """True when ``request`` asks for exactly this transfer (an idempotent retry)."""
        if request.kind is not self.kind or request.currency != self.currency:
            return False
        if request.code != self.code or request.reference != self.reference:
            return False
        if request.pending_id != self.pending_id:
            return False
        if self.kind in (TransferKind.VOID, TransferKind.EXPIRE):
            return request.amount in (0, self.amount)
        if request.amount != self.amount:
            return False
        if self.kind in (TransferKind.SINGLE, TransferKind.PENDING):
            return (request.debit_account_id, request.credit_account_id) == (
                self.debit_account_id,
                self.credit_account_id,
            ) and request.expires_at == self.expires_at
        return True


class LedgerRefusal(Exception):
    """The ledger said no; ``reason`` is machine-readable."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class Entry:
    """One line of an account's history: what a transfer did to it, and the balances after."""

    account_id: uuid.UUID
    seq: int
    transfer_id: uuid.UUID
    code: str
    posted_delta: int  # on the account's normal side
    held_delta: int
    balance_after: int
    held_after: int
    created_at: datetime
    reference: str | None = None


@dataclass(frozen=True)
class Plan:
    """What creating a transfer does: the transfer, both accounts after it, the entries."""

    transfer: Transfer
    debit: Account
    credit: Account
    entries: tuple[Entry, ...]


def expected_accounts(
    request: TransferRequest, pending: Transfer | None
) -> tuple[uuid.UUID, uuid.UUID]:
    """The (debit, credit) accounts a request touches, so callers can lock them first."""
    if request.kind in RESOLVING:
        if pending is None:
            raise LedgerRefusal("pending_transfer_not_found", "no such pending transfer")
        return pending.debit_account_id, pending.credit_account_id
    if request.debit_account_id is None or request.credit_account_id is None:
        raise LedgerRefusal("accounts_required", "a transfer needs a debit and a credit account")
    return request.debit_account_id, request.credit_account_id


def plan_transfer(
    request: TransferRequest,
    debit: Account,
    credit: Account,
    *,
    pending: Transfer | None,
    resolved_by: Transfer | None,
    now: datetime,
) -> Plan:
    """Decide a new transfer (the caller already ruled out an existing one with this id)."""
    if request.amount < 0:
        raise LedgerRefusal("negative_amount", "amounts are never negative")
    if debit.id == credit.id:
        raise LedgerRefusal("accounts_must_be_different", "debit and credit are the same account")
    if not (debit.currency == credit.currency == request.currency):
        raise LedgerRefusal("currency_mismatch", "accounts and transfer differ in currency")
    d_pend = d_post = c_pend = c_post = 0
    amount = request.amount
    pending_id = None
    expires_at = request.expires_at
    if request.kind in (TransferKind.SINGLE, TransferKind.PENDING):
        if request.pending_id is not None:
            raise LedgerRefusal("pending_id_not_allowed", "only post/void/expire name a pending")
        if amount == 0:
            raise LedgerRefusal("amount_must_not_be_zero", "a transfer moves a positive amount")
        if request.kind is TransferKind.SINGLE:
            if expires_at is not None:
                raise LedgerRefusal("expiry_not_allowed", "only pending transfers expire")
            d_post = c_post = amount
        else:
            d_pend = c_pend = amount
    else:
        if pending is None or pending.id != request.pending_id:
            raise LedgerRefusal("pending_transfer_not_found", "no such pending transfer")
        if pending.kind is not TransferKind.PENDING:
            raise LedgerRefusal("pending_transfer_not_pending", "that transfer is not pending")
        if resolved_by is not None:
            raise LedgerRefusal(
                f"pending_transfer_already_{_past(resolved_by.kind)}",
                "a pending transfer is resolved exactly once",
            )
        if request.currency != pending.currency:
            raise LedgerRefusal("currency_mismatch", "currency differs from the pending transfer")
        expired = pending.expires_at is not None and now >= pending.expires_at
        if request.kind is TransferKind.POST:
            if expired:
                raise LedgerRefusal("pending_transfer_expired", "the hold has expired")
            if amount == 0 or amount > pending.amount:
                raise LedgerRefusal(
                    "exceeds_pending_transfer_amount",
                    "a post moves more than 0 and at most the pending amount",
                )
            d_post = c_post = amount
        else:
            if amount not in (0, pending.amount):
                raise LedgerRefusal(
                    "different_amount", "a void or expiry releases the whole pending amount"
                )
            if request.kind is TransferKind.EXPIRE and not expired:
                raise LedgerRefusal("pending_transfer_not_expired", "the hold has not expired yet")
            if request.kind is TransferKind.VOID and expired:
                raise LedgerRefusal("pending_transfer_expired", "the hold has expired")
            amount = pending.amount
        d_pend = c_pend = -pending.amount
        pending_id = pending.id
        expires_at = None
    new_debit = debit.changed(d_pend, d_post, 0, 0)
    new_credit = credit.changed(0, 0, c_pend, c_post)
    if new_debit.violates_rule() and _grows(new_debit, debit):
        raise LedgerRefusal("exceeds_credits", f"{debit.code} cannot cover {amount}")
    if new_credit.violates_rule() and _grows(new_credit, credit):
        raise LedgerRefusal("exceeds_debits", f"{credit.code} cannot take {amount}")
    transfer = Transfer(
        id=request.id,
        kind=request.kind,
        debit_account_id=debit.id,
        credit_account_id=credit.id,
        amount=amount,
        currency=request.currency,
        code=request.code,
        created_at=now,
        pending_id=pending_id,
        expires_at=expires_at,
        reference=request.reference,
    )
    return Plan(
        transfer,
        new_debit,
        new_credit,
        (_entry(debit, new_debit, transfer), _entry(credit, new_credit, transfer)),
    )


def _entry(before: Account, after: Account, transfer: Transfer) -> Entry:
    balance, held = after.balance, after.held
    return Entry(
        account_id=after.id,
        seq=after.entries,
        transfer_id=transfer.id,
        code=transfer.code,
        posted_delta=balance - before.balance,
        held_delta=held - before.held,
        balance_after=balance,
        held_after=held,
        created_at=transfer.created_at,
        reference=transfer.reference,
    )


CREATED = "created"
EXISTS = "exists"


@dataclass(frozen=True)
class TransferResult:
    """What became of one request of a batch: ``created``, ``exists`` (an idempotent retry of
    a stored transfer, which is returned) or refused (``status`` is the refusal's reason)."""

    id: uuid.UUID
    status: str
    transfer: Transfer | None = None
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.transfer is not None

    def unwrap(self) -> Transfer:
        """The transfer, or the refusal raised as ``LedgerRefusal``."""
        if self.transfer is None:
            raise LedgerRefusal(self.status, self.message)
        return self.transfer


@dataclass(frozen=True)
class BatchPlan:
    """What creating a batch does: a result per request (in order), the new transfers, every
    changed account as it is after the batch, and the history entries."""

    results: tuple[TransferResult, ...]
    transfers: tuple[Transfer, ...]
    accounts: tuple[Account, ...]
    entries: tuple[Entry, ...]


def plan_transfers(
    requests: Sequence[TransferRequest],
    accounts: Mapping[uuid.UUID, Account],
    *,
    stored: Mapping[uuid.UUID, Transfer],
    resolutions: Mapping[uuid.UUID, Transfer],
    now: datetime,
    pendings: Mapping[uuid.UUID, Transfer] | None = None,
) -> BatchPlan:
    """Decide a batch exactly as if its requests were created one by one, in order.

    ``accounts`` are the accounts the batch may touch (locked by the caller; any other is "not
    found"), ``stored`` the already stored transfers with the batch's ids, ``resolutions`` the
    stored resolutions of the pending transfers it names, by pending id, and ``pendings`` the
    stored transfers it may resolve (default: ``stored``). Later requests see earlier ones: a
    hold and its post may share a batch, and a repeated id in a batch is an idempotent retry.
    """
    pendings = stored if pendings is None else pendings
    state: dict[uuid.UUID, Account] = {}
    created: dict[uuid.UUID, Transfer] = {}
    resolved: dict[uuid.UUID, Transfer] = {}
    results: list[TransferResult] = []
    entries: list[Entry] = []
    for request in requests:
        existing = created.get(request.id) or stored.get(request.id)
        if existing is not None:
            if existing.matches(request):
                results.append(TransferResult(request.id, EXISTS, existing))
            else:
                results.append(
                    TransferResult(
                        request.id,
                        "exists_with_different_fields",
                        message="that transfer id names another transfer",
                    )
                )
            continue
        try:
            pending = None
            if request.pending_id is not None:
                pending = created.get(request.pending_id) or pendings.get(request.pending_id)
            debit_id, credit_id = expected_accounts(request, pending)
            debit = state.get(debit_id) or accounts.get(debit_id)
            credit = state.get(credit_id) or accounts.get(credit_id)
            if debit is None or credit is None:
                raise LedgerRefusal("account_not_found", "no such account")
            resolved_by = None
            if pending is not None:
                resolved_by = resolved.get(pending.id) or resolutions.get(pending.id)
            plan = plan_transfer(
                request, debit, credit, pending=pending, resolved_by=resolved_by, now=now
            )
        except LedgerRefusal as refusal:
            results.append(TransferResult(request.id, refusal.reason, message=refusal.message))
            continue
        state[plan.debit.id] = plan.debit
        state[plan.credit.id] = plan.credit
        created[plan.transfer.id] = plan.transfer
        if plan.transfer.pending_id is not None:
            resolved[plan.transfer.pending_id] = plan.transfer
        entries.extend(plan.entries)
        results.append(TransferResult(request.id, CREATED, plan.transfer))
    return BatchPlan(tuple(results), tuple(created.values()), tuple(state.values()), tuple(entries))


def _grows(after: Account, before: Account) -> bool:
    # Releasing a hold never fails, even on an account that was already in breach.
    exposure_after = after.debits_pending + after.debits_posted - after.credits_posted
    exposure_before = before.debits_pending + before.debits_posted - before.credits_posted
    if after.rule is BalanceRule.CREDITS_MUST_NOT_EXCEED_DEBITS:
        exposure_after = after.credits_pending + after.credits_posted - after.debits_posted
        exposure_before = before.credits_pending + before.credits_posted - before.debits_posted
    return exposure_after > exposure_before


def _past(kind: TransferKind) -> str:
    return {
        TransferKind.POST: "posted",
        TransferKind.VOID: "voided",
        TransferKind.EXPIRE: "expired",
    }.get(kind, "resolved")


@dataclass
class InMemoryLedger:
    """The ledger rules over dictionaries: a fake for unit tests and the property tests."""

    accounts: dict[uuid.UUID, Account] = field(default_factory=dict)
    transfers: dict[uuid.UUID, Transfer] = field(default_factory=dict)
    resolutions: dict[uuid.UUID, Transfer] = field(default_factory=dict)
    entries: list[Entry] = field(default_factory=list)

    def open(self, account: Account) -> Account:
        return self.accounts.setdefault(account.id, account)

    def create_transfer(self, request: TransferRequest, now: datetime) -> Transfer:
        existing = self.transfers.get(request.id)
        if existing is not None:
            if existing.matches(request):
                return existing
            raise LedgerRefusal("exists_with_different_fields", "that id names another transfer")
        pending = self.transfers.get(request.pending_id) if request.pending_id else None
        debit_id, credit_id = expected_accounts(request, pending)
        debit, credit = self.accounts.get(debit_id), self.accounts.get(credit_id)
        if debit is None or credit is None:
            raise LedgerRefusal("account_not_found", "no such account")
        plan = plan_transfer(
            request,
            debit,
            credit,
            pending=pending,
            resolved_by=self.resolutions.get(pending.id) if pending else None,
            now=now,
        )
        self.accounts[plan.debit.id] = plan.debit
        self.accounts[plan.credit.id] = plan.credit
        self.transfers[plan.transfer.id] = plan.transfer
        if plan.transfer.pending_id is not None:
            self.resolutions[plan.transfer.pending_id] = plan.transfer
        self.entries.extend(plan.entries)
        return plan.transfer

    def create_transfers(
        self, requests: Sequence[TransferRequest], now: datetime
    ) -> list[TransferResult]:
        plan = plan_transfers(
            requests,
            self.accounts,
            stored=self.transfers,
            resolutions=self.resolutions,
            now=now,
        )
        for account in plan.accounts:
            self.accounts[account.id] = account
        for transfer in plan.transfers:
            self.transfers[transfer.id] = transfer
            if transfer.pending_id is not None:
                self.resolutions[transfer.pending_id] = transfer
        self.entries.extend(plan.entries)
        return list(plan.results)

    def due_for_expiry(self, now: datetime) -> list[Transfer]:
        return [
            t
            for t in self.transfers.values()
            if t.kind is TransferKind.PENDING
            and t.id not in self.resolutions
            and t.expires_at is not None
            and t.expires_at <= now
        ]


def trial_balance(accounts: Iterable[Account]) -> dict[str, tuple[int, int, int, int]]:
    """Per currency: (debits posted, credits posted, debits pending, credits pending)."""
    sums: dict[str, tuple[int, int, int, int]] = {}
    for a in accounts:
        dp, cp, dq, cq = sums.get(a.currency, (0, 0, 0, 0))
        sums[a.currency] = (
            dp + a.debits_posted,
            cp + a.credits_posted,
            dq + a.debits_pending,
            cq + a.credits_pending,
        )
    return sums


# --- funding and settlement rules ---------------------------------------------------------

Funding = str  # "wallet" | "card" | "free"


@dataclass(frozen=True)
class HoldPolicy:
    """How much to reserve: wallet holds up to a cap, card pre-authorisations by power class."""

    wallet_hold_cap: int
    card_hold_ac: int
    card_hold_dc: int
    dc_threshold_w: int = 22_000

    def card_hold(self, max_power_w: int) -> int:
        return self.card_hold_dc if max_power_w > self.dc_threshold_w else self.card_hold_ac


@dataclass(frozen=True)
class FundingChoice:
    funding: Funding | None
    amount: int
    denial: str | None = None
    message: str = ""
    # A wallet hold with a card on file: what the card covers beyond it (charged at settling).
    beyond_from_card: int = 0

    @property
    def max_cost(self) -> int:
        """What the session may cost before its automatic stop: the driver's agreed maximum."""
        return self.amount + self.beyond_from_card


def choose_funding(
    *,
    free: bool,
    wallet_hold: int,
    wallet_buys_charging: bool,
    prefers_card: bool,
    has_card: bool,
    max_power_w: int,
    policy: HoldPolicy,
) -> FundingChoice:
    """Wallet first (``wallet_hold``: the free balance up to the cap); the default card when
    the driver prefers it or the wallet cannot buy any charging at this station. A wallet
    hold with a card on file does not lower the automatic stop to what the wallet holds: the
    card covers beyond it, up to what a card pre-authorisation would."""
    if free:
        return FundingChoice("free", 0)
    if prefers_card and has_card:
        return FundingChoice("card", policy.card_hold(max_power_w))
    if wallet_hold > 0 and wallet_buys_charging:
        beyond = policy.card_hold(max_power_w) if has_card else 0
        return FundingChoice("wallet", wallet_hold, beyond_from_card=beyond)
    if has_card:
        return FundingChoice("card", policy.card_hold(max_power_w))
    if prefers_card:
        return FundingChoice(None, 0, "no_payment_method", "Add a payment card to charge.")
    return FundingChoice(
        None, 0, "insufficient_funds", "Your balance is too low: top up or add a card."
    )


def decline_message(code: str) -> str:
    """What a driver or guest is told when the card pre-authorisation is refused."""
    if code == "authentication_required":
        # The hold is placed when the charger is ready, without the cardholder at hand: a card
        # whose bank insists on 3-D Secure for it cannot be used this way.
        return (
            "Your bank wants to confirm this payment (3-D Secure), which it cannot do for a "
            "charging pre-authorisation; use another card."
        )
    if code == "insufficient_funds":
        return "Your card was declined: not enough funds for the pre-authorisation."
    return f"Your card was declined ({code})."


@dataclass(frozen=True)
class ShortfallPlan:
    """How the part of a cost not covered by the hold is collected, in this order."""

    from_hold: int
    from_wallet: int
    from_card: int
    to_debt: int


def plan_shortfall(
    cost: int, hold_pending: int, wallet_available: int, card_available: bool
) -> ShortfallPlan:
    """Post what the hold covers; take the rest from the wallet's free balance, then the card,
    and record whatever is left as the driver's debt: a cost is never dropped."""
    from_hold = min(cost, hold_pending)
    rest = cost - from_hold
    from_wallet = min(rest, max(wallet_available, 0))
    rest -= from_wallet
    from_card = rest if card_available else 0
    return ShortfallPlan(from_hold, from_wallet, from_card, rest - from_card)


def needs_auto_topup(*, enabled: bool, available: int, threshold: int) -> bool:
    """Patent FIG. 3: top up from the card when the balance falls below a minimum."""
    return enabled and available < threshold


@dataclass(frozen=True)
class MoneyLimits:
    """Bounds on what a driver moves in one currency, in its minor units."""

    min_topup: int
    max_topup: int
    max_auto_topup: int
    max_wallet_balance: int


def topup_problem(
    amount: int, balance: int, limits: MoneyLimits, *, auto: bool = False
) -> tuple[str, str] | None:
    """Why a top-up of ``amount`` onto a wallet holding ``balance`` is refused, or None."""
    most = limits.max_auto_topup if auto else limits.max_topup
    if amount < limits.min_topup:
        return "amount_below_minimum", f"a top-up is at least {limits.min_topup} minor units"
    if amount > most:
        return "amount_above_maximum", f"a top-up is at most {most} minor units"
    if balance + amount > limits.max_wallet_balance:
        room = max(limits.max_wallet_balance - balance, 0)
        return (
            "balance_limit_exceeded",
            f"a wallet holds at most {limits.max_wallet_balance} minor units; "
            f"at most {room} more fit",
        )
    return None


def auto_topup_amount(configured: int, balance: int, limits: MoneyLimits) -> int:
    """What an auto top-up charges: the configured amount within the bounds (0: skip it)."""
    amount = min(configured, limits.max_auto_topup, limits.max_wallet_balance - balance)
    return amount if amount >= limits.min_topup else 0


@dataclass(frozen=True)
class CappedCost:
    """A final cost held to the maximum the driver agreed to before the start.

    ``payable`` is what the driver is charged (never above ``cap``), split into net and VAT in
    the proportion of the claimed cost; ``written_off`` is the operator's, not the driver's.
    """

    claimed: int
    cap: int
    payable: int
    payable_excl_vat: int
    payable_vat: int
    written_off: int


def cap_cost(total: int, total_excl_vat: int, total_vat: int, cap: int) -> CappedCost:
    """The promise on the price page ("stops automatically at X") as arithmetic."""
    payable = max(min(total, cap), 0)
    if payable == total:
        return CappedCost(total, cap, total, total_excl_vat, total_vat, 0)
    vat = payable * total_vat // total if total else 0
    return CappedCost(total, cap, payable, payable - vat, vat, total - payable)


@dataclass(frozen=True)
class ReviewAdjustment:
    """What an operator's decision on a held session moves: the driver pays ``target`` in
    total instead of ``billed``; ``charge`` more (``charge_vat`` of it VAT) or ``refund``."""

    billed: int
    target: int
    charge: int
    charge_vat: int
    refund: int


def review_adjustment(
    billed: int, billed_vat: int, target: int, authorised_max: int, vat_percent: Decimal
) -> ReviewAdjustment | str:
    """The money of a review decision, or why it may not be made: never above what the driver
    authorised before the start (``above_authorised_max``). VAT on an extra charge is in the
    proportion of what was billed, or at the tariff's rate when nothing was."""
    if target < 0 or billed < 0:
        return "invalid_amount"
    if target > authorised_max:
        return "above_authorised_max"
    if target >= billed:
        extra = target - billed
        if billed > 0:
            vat = extra * billed_vat // billed
        else:
            vat = int(Decimal(extra) * vat_percent / (100 + vat_percent))
        return ReviewAdjustment(billed, target, extra, vat, 0)
    return ReviewAdjustment(billed, target, 0, 0, billed - target)


# --- invoices and credit notes ---------------------------------------------------------------

DocumentSeries = Literal["invoice", "credit_note"]
# Credit notes have their own gapless series, marked in the number, so each series can be
# audited on its own and an invoice number never looks like a credit note's.
SERIES_MARK: Mapping[str, str] = {"invoice": "", "credit_note": "CN-"}
PREFIX_PATTERN = re.compile(r"^[A-Z0-9]{1,10}$")
VAT_ID_PATTERN = re.compile(r"^[A-Z]{2}[0-9A-Z+*.]{2,13}$")
DEFAULT_PREFIX = "INV"


def document_year(issued_at: datetime, time_zone: str | None) -> int:
    """The year an invoice is dated in: the station's calendar (the date printed on it)."""
    try:
        zone = ZoneInfo(time_zone) if time_zone else UTC
    except (ZoneInfoNotFoundError, ValueError):
        zone = UTC
    return issued_at.astimezone(zone).year


def document_number(prefix: str, series: DocumentSeries, year: int, number: int) -> str:
    """``INV-2026-000042`` / ``INV-CN-2026-000003``: prefix, series, year, then the number
    within that organisation's series and year (the prefix has no '-', so it is unambiguous)."""
    if number < 1:
        raise ValueError("document numbers start at 1")
    return f"{prefix}-{SERIES_MARK[series]}{year}-{number:06d}"


@dataclass
class DocumentCounters:
    """The numbering rule in memory (``document_counters`` + its row lock in PostgreSQL): each
    organisation, series and year counts 1, 2, 3...; a number taken in a transaction that is
    rolled back is given again, so committed numbers have no gaps and no duplicates."""

    last: dict[tuple[uuid.UUID, str, int], int] = field(default_factory=dict)

    def take(self, organisation_id: uuid.UUID, series: DocumentSeries, year: int) -> int:
        key = (organisation_id, series, year)
        self.last[key] = self.last.get(key, 0) + 1
        return self.last[key]


@dataclass(frozen=True)
class LegalProfile:
    """What an organisation's invoices say about the seller."""

    legal_name: str
    address: str
    vat_id: str
    invoice_prefix: str


# At most this many invoice mails per session on the payer's request (an address typed by a
# guest is not verified: the limit keeps the invoice mail from becoming a way to send spam).
INVOICE_MAILS_PER_SESSION = 3
EMAIL_PATTERN = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")


def buyer_problem(email: str, vat_id: str) -> tuple[str, str] | None:
    """What is wrong with the buyer details a payer typed (both already normalised)."""
    if len(email) > 254 or not EMAIL_PATTERN.fullmatch(email):
        return "invalid_email", "this is not a valid e-mail address"
    if vat_id and not VAT_ID_PATTERN.fullmatch(vat_id):
        return "invalid_vat_id", "a VAT id is a country code and 2 to 13 letters or digits"
    return None


def normalised_vat_id(vat_id: str) -> str:
    return re.sub(r"[\s.-]", "", vat_id).upper()


def legal_profile_problem(profile: LegalProfile) -> tuple[str, str] | None:
    """Why a legal profile cannot be kept (reason, message), or None."""
    if not profile.legal_name.strip():
        return "invalid_legal_name", "the legal name is required"
    if not profile.address.strip():
        return "invalid_address", "the address is required"
    if profile.vat_id and not VAT_ID_PATTERN.fullmatch(profile.vat_id):
        return "invalid_vat_id", "a VAT id is a country code and 2 to 13 letters or digits"
    if not PREFIX_PATTERN.fullmatch(profile.invoice_prefix):
        return "invalid_invoice_prefix", "an invoice prefix is 1 to 10 capital letters or digits"
    return None


# --- cards ---------------------------------------------------------------------------------

CARD_EXPIRY_NOTICE = timedelta(days=30)


def card_valid_until(exp_month: int, exp_year: int) -> datetime:
    """The first moment a card is no longer valid: it is good through its expiry month (UTC)."""
    if exp_month == 12:
        return datetime(exp_year + 1, 1, 1, tzinfo=UTC)
    return datetime(exp_year, exp_month + 1, 1, tzinfo=UTC)


def card_expiry_due(
    exp_month: int | None,
    exp_year: int | None,
    now: datetime,
    notice: timedelta = CARD_EXPIRY_NOTICE,
) -> bool:
    """Whether the driver should now be told the card expires (or has expired)."""
    if exp_month is None or exp_year is None:
        return False
    return card_valid_until(exp_month, exp_year) - now <= notice
