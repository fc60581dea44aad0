"""billing-svc's HTTP API: thin — parse, authorise, call the service, answer.

Money-moving calls (top-ups, refunds, saving a card) require an ``Idempotency-Key`` header: the
first answer is stored with the key in the same transaction as the effect, and a retry gets it
back (``Idempotent-Replayed: true``); the same key with another body is refused.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from plugpay_events.envelope import Event
from plugpay_events.outbox import Outbox
from plugpay_events.types import Money
from plugpay_platform.database import Database
from plugpay_platform.errors import Refusal
from plugpay_platform.security import (
    CurrentDriver,
    CurrentOperator,
    CurrentPayer,
    CurrentPrincipal,
    Principal,
)
from plugpay_tariffs import CURRENCIES
from pydantic import AfterValidator, BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from billing_svc import schemas
from billing_svc.domain import BIGINT_MAX, AccountKind, account_id
from billing_svc.processor import InvalidWebhook
from billing_svc.receipts import (
    credit_note_document,
    receipt_document,
    render_html,
    render_pdf,
)
from billing_svc.repository import BillingRepository, LedgerRepository
from billing_svc.tables import outbox_tables
from billing_svc.usecases import authorise, invoicing, payment_methods, top_up
from billing_svc.usecases import refund as refunds
from billing_svc.usecases import review as reviews
from billing_svc.usecases.common import (
    Billing,
    ProcessorCall,
    make_call,
    make_pending_calls,
    wrap_all,
)

router = APIRouter(prefix="/billing", tags=["billing"])
_outbox = Outbox(outbox_tables)
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)]


def _known_currency(code: str) -> str:
    # Three capitals is not enough: an unknown code used to reach Money() and answer 500.
    if code not in CURRENCIES:
        raise ValueError(f"unknown ISO-4217 currency {code!r}")
    return code


Currency = Annotated[str, Query(pattern=r"^[A-Z]{3}$"), AfterValidator(_known_currency)]


def _db(request: Request) -> Database:
    database: Database = request.app.state.runtime.database
    return database


async def require_verified_driver(request: Request, driver: CurrentDriver) -> Principal:
    """A driver whose e-mail is verified: the token says so, or billing learned it since
    (UserVerified) and the token predates it. Saving cards and topping up need it."""
    if driver.email_verified:
        return driver
    async with _db(request).read() as session:
        profile = await BillingRepository(session).ensure_profile_readonly(driver.user_id)
    if profile is not None and profile.verified:
        return driver
    raise Refusal(
        "account_unverified",
        "verify your e-mail address before adding a card or topping up",
        status_code=403,
    )


VerifiedDriver = Annotated[Principal, Depends(require_verified_driver)]


async def require_card_holder(request: Request, payer: CurrentPayer) -> Principal:
    """A verified driver, or a guest paying one session (its token bound to one code; session-
    svc counts guest scans per station and address, and each guest holds one card)."""
    if payer.is_guest:
        return payer
    return await require_verified_driver(request, payer)


CardHolder = Annotated[Principal, Depends(require_card_holder)]


def _client_address(request: Request) -> str | None:
    return request.client.host if request.client else None


def _billing(request: Request) -> Billing:
    billing: Billing = request.app.state.billing
    return billing


def _money(amount: int, currency: str) -> Money:
    return Money(amount_minor=amount, currency=currency)


Answer = tuple[int, Any, list[Event]]
Effect = Callable[[AsyncSession], Awaitable[Answer | ProcessorCall]]
Finish = Callable[[AsyncSession], Awaitable[Answer]]


async def _answer(session: AsyncSession, run: Callable[[], Awaitable[Any]]) -> tuple[int, Any]:
    """Run a step in a savepoint: its answer and events, or its refusal as the answer."""
    try:
        async with session.begin_nested():
            status, answer, events = await run()
            await _outbox.add(session, wrap_all(events))
    except Refusal as refusal:
        if refusal.status_code == 429:
            raise  # a throttle is not the request's answer: a later retry may succeed
        status, answer = refusal.status_code, {"reason": refusal.reason, "message": refusal.message}
    return status, json.loads(json.dumps(answer, default=str))


async def _idempotent(
    request: Request,
    principal: Principal,
    key: str | None,
    body: Any,
    effect: Effect,
    finish: Finish | None = None,
) -> JSONResponse:
    """Run a money-moving request once per Idempotency-Key. When ``effect`` returns a processor
    call, it is committed first, made with no transaction open, and ``finish`` posts its outcome
    in a second transaction. A retry while the first request is in flight (or after it crashed)
    resumes it: the call's key and the records' ids derive from the Idempotency-Key."""
    if not key:
        raise Refusal(
            "idempotency_key_required",
            "money-moving requests need an Idempotency-Key header",
            status_code=400,
        )
    fingerprint = hashlib.sha256(
        json.dumps([request.method, request.url.path, body], sort_keys=True, default=str).encode()
    ).hexdigest()
    database = _db(request)
    replayed: dict[str, str] = {}
    call: ProcessorCall | None = None
    async with database.write() as session:
        repo = BillingRepository(session)
        stored = await repo.claim_idempotency_key(principal.user_id, key, fingerprint)
        if stored is not None:
            if stored.request_hash != fingerprint:
                raise Refusal(
                    "idempotency_key_reused",
                    "this Idempotency-Key was used for a different request",
                    status_code=422,
                )
            replayed = {"Idempotent-Replayed": "true"}
            if stored.status_code is not None:
                return JSONResponse(
                    stored.response, status_code=stored.status_code, headers=replayed
                )

        async def first() -> Answer:
            nonlocal call
            outcome = await effect(session)
            if isinstance(outcome, ProcessorCall):
                call = outcome
                return 0, None, []
            return outcome

        status, answer = await _answer(session, first)
        if call is None:
            await repo.store_idempotent_response(principal.user_id, key, status, answer)
            return JSONResponse(answer, status_code=status, headers=replayed)
    assert finish is not None
    await make_call(_billing(request), database.write, call)
    async with database.write() as session:
        status, answer = await _answer(session, lambda: finish(session))
        await BillingRepository(session).store_idempotent_response(
            principal.user_id, key, status, answer
        )
    return JSONResponse(answer, status_code=status, headers=replayed)


async def _refunding(
    request: Request,
    principal: Principal,
    key: str | None,
    body: BaseModel,
    status_code: int,
    begin: Callable[[AsyncSession], Awaitable[refunds.RefundStep]],
    finish: Callable[[AsyncSession], Awaitable[refunds.RefundStep]],
) -> JSONResponse:
    """An operator's request that may refund a card (a refund, a review's decision), once per
    Idempotency-Key: ``begin`` answers, or names the processor call ``finish`` then posts."""

    def answered(step: refunds.RefundStep) -> Answer:
        if step.refusal is not None:  # an answer, not raised: the refund stays marked failed
            refused = step.refusal
            return refused.status_code, {"reason": refused.reason, "message": refused.message}, []
        assert step.body is not None
        return status_code, step.body, step.events

    async def effect(session: AsyncSession) -> Answer | ProcessorCall:
        step = await begin(session)
        return step.call if step.call is not None else answered(step)

    async def finished(session: AsyncSession) -> Answer:
        step = await finish(session)
        if step.call is not None:  # the processor did not answer: the sweeper finishes it
            raise Refusal("refund_pending", "the refund is being processed", status_code=409)
        return answered(step)

    return await _idempotent(
        request, principal, key, body.model_dump(mode="json"), effect, finished
    )


async def _write_with_events(
    request: Request, run: Callable[[AsyncSession], Awaitable[list[Event]]]
) -> None:
    async with _db(request).write() as session:
        await _outbox.add(session, wrap_all(await run(session)))


# --- the driver's account ---------------------------------------------------------------------


@router.get("/account", response_model=schemas.AccountView)
async def get_account(
    request: Request, driver: CurrentDriver, currency: Currency = "EUR"
) -> schemas.AccountView:
    async with _db(request).read() as session:
        repo, ledger = BillingRepository(session), LedgerRepository(session)
        profile = await repo.ensure_profile_readonly(driver.user_id)
        wallet = await ledger.account(account_id(AccountKind.WALLET, currency, driver.user_id))
        debt = await ledger.account(account_id(AccountKind.RECEIVABLE, currency, driver.user_id))
        holds = await ledger.pending_holds(wallet.id) if wallet else []
        methods = await repo.methods(driver.user_id)
    balance = wallet.balance if wallet else 0
    held = wallet.held if wallet else 0
    auto_currency = profile.auto_topup_currency if profile else currency
    return schemas.AccountView(
        user_id=driver.user_id,
        currency=currency,
        balance=_money(balance, currency),
        held=_money(held, currency),
        available=_money(balance - held, currency),
        debt=_money(debt.balance if debt else 0, currency),
        holds=[
            schemas.HoldView(
                hold_id=h.id,
                session_id=h.reference,
                amount=_money(h.amount, h.currency),
                expires_at=h.expires_at,
            )
            for h in holds
        ],
        prefers_card=bool(profile and profile.prefers_card),
        auto_topup=schemas.AutoTopUpView(
            enabled=bool(profile and profile.auto_topup_enabled),
            threshold=_money(profile.auto_topup_threshold if profile else 0, auto_currency),
            amount=_money(profile.auto_topup_amount if profile else 0, auto_currency),
            payment_method_id=profile.auto_topup_payment_method_id if profile else None,
        ),
        payment_methods=[schemas.PaymentMethodView.model_validate(m) for m in methods],
    )


@router.get("/ledger", response_model=schemas.LedgerPage)
async def get_ledger(
    request: Request,
    driver: CurrentDriver,
    currency: Currency = "EUR",
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    before: Annotated[int | None, Query(ge=1, le=BIGINT_MAX)] = None,
) -> schemas.LedgerPage:
    async with _db(request).read() as session:
        entries = await LedgerRepository(session).entries(
            account_id(AccountKind.WALLET, currency, driver.user_id), limit=limit, before_seq=before
        )
    return schemas.LedgerPage(
        currency=currency,
        lines=[
            schemas.LedgerLine(
                seq=e.seq,
                at=e.created_at,
                kind=e.code,
                reference=e.reference,
                amount=_money(e.posted_delta, currency),
                held_change=_money(e.held_delta, currency),
                balance_after=_money(e.balance_after, currency),
                available_after=_money(e.balance_after - e.held_after, currency),
            )
            for e in entries
        ],
        next_before=entries[-1].seq if len(entries) == limit and entries[-1].seq > 1 else None,
    )


@router.post("/topups", response_model=schemas.TopUpResponse, status_code=201)
async def post_topup(
    request: Request,
    driver: VerifiedDriver,
    body: schemas.TopUpRequest,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    billing = _billing(request)
    topup_id = uuid.uuid5(driver.user_id, f"topup:{idempotency_key}")

    async def effect(session: AsyncSession) -> Answer | ProcessorCall:
        repo = BillingRepository(session)
        if body.amount.amount_minor <= 0:
            raise Refusal("invalid_amount", "a top-up is a positive amount", status_code=422)
        method = (
            await repo.method(driver.user_id, body.payment_method_id)
            if body.payment_method_id
            else await repo.default_method(driver.user_id)
        )
        if method is None:
            raise Refusal("no_payment_method", "add a card first", status_code=409)
        call = await top_up.begin(
            billing,
            session,
            user_id=driver.user_id,
            topup_id=topup_id,
            amount=body.amount.amount_minor,
            currency=body.amount.currency,
            method=method,
            trigger="manual",
            client_address=_client_address(request),
        )
        return call if call is not None else await finish(session)

    async def finish(session: AsyncSession) -> Answer:
        result, events = await top_up.finish(billing, session, topup_id)
        answer = schemas.TopUpResponse(
            topup_id=result.topup_id,
            status=result.status,
            amount=_money(result.amount, result.currency),
            balance_after=_money(result.balance_after, result.currency),
            failure_reason=result.failure_reason,
        ).model_dump(mode="json")
        return (201 if result.status == "succeeded" else 402), answer, events

    return await _idempotent(
        request, driver, idempotency_key, body.model_dump(mode="json"), effect, finish
    )


# --- payment methods and settings -------------------------------------------------------------


@router.get("/payment-methods", response_model=list[schemas.PaymentMethodView])
async def list_methods(request: Request, driver: CurrentDriver) -> list[schemas.PaymentMethodView]:
    async with _db(request).read() as session:
        return [
            schemas.PaymentMethodView.model_validate(m)
            for m in await BillingRepository(session).methods(driver.user_id)
        ]


@router.post("/payment-methods", response_model=schemas.PaymentMethodView, status_code=201)
async def add_method(
    request: Request,
    driver: CardHolder,
    body: schemas.AddPaymentMethodRequest,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    billing = _billing(request)

    async def effect(session: AsyncSession) -> Answer | ProcessorCall:
        method, events = await payment_methods.add_payment_method(
            billing,
            session,
            driver.user_id,
            body.token,
            _client_address(request),
            guest=driver.is_guest,
        )
        return 201, schemas.PaymentMethodView.model_validate(method).model_dump(mode="json"), events

    return await _idempotent(request, driver, idempotency_key, body.model_dump(mode="json"), effect)


@router.delete("/payment-methods/{method_id}", status_code=204)
async def remove_method(request: Request, driver: CurrentDriver, method_id: uuid.UUID) -> Response:
    billing = _billing(request)
    await _write_with_events(
        request,
        lambda s: payment_methods.remove_payment_method(billing, s, driver.user_id, method_id),
    )
    return Response(status_code=204)


@router.put("/payment-methods/{method_id}/default", response_model=list[schemas.PaymentMethodView])
async def set_default(
    request: Request, driver: CurrentDriver, method_id: uuid.UUID
) -> list[schemas.PaymentMethodView]:
    billing = _billing(request)
    async with _db(request).write() as session:
        await payment_methods.set_default_method(billing, session, driver.user_id, method_id)
        return [
            schemas.PaymentMethodView.model_validate(m)
            for m in await BillingRepository(session).methods(driver.user_id)
        ]


@router.put("/auto-topup", response_model=schemas.AutoTopUpView)
async def put_auto_topup(
    request: Request, driver: CurrentDriver, body: schemas.AutoTopUpRequest
) -> schemas.AutoTopUpView:
    billing = _billing(request)
    await _write_with_events(
        request,
        lambda s: top_up.configure_auto_topup(
            billing,
            s,
            driver.user_id,
            enabled=body.enabled,
            threshold=body.threshold.money(),
            amount=body.amount.money(),
            method_id=body.payment_method_id,
        ),
    )
    return schemas.AutoTopUpView(
        enabled=body.enabled,
        threshold=body.threshold.money(),
        amount=body.amount.money(),
        payment_method_id=body.payment_method_id,
    )


@router.put("/funding-preference", status_code=204)
async def put_funding_preference(
    request: Request, driver: CurrentDriver, body: schemas.FundingPreferenceRequest
) -> Response:
    async with _db(request).write() as session:
        repo = BillingRepository(session)
        await repo.ensure_profile(driver.user_id)
        await repo.update_profile(driver.user_id, prefers_card=body.prefers_card)
    return Response(status_code=204)


# --- receipts ---------------------------------------------------------------------------------


def _document_response(
    request: Request, format: str | None, doc: dict[str, Any], filename: str
) -> Response:
    """The document in the ``format`` asked for, else the one the Accept header prefers."""
    chosen = format or _negotiate(request.headers.get("accept", ""))
    if chosen == "pdf":
        return Response(
            render_pdf(doc),
            media_type="application/pdf",
            headers={"Content-Disposition": f'inline; filename="{filename}.pdf"'},
        )
    if chosen == "html":
        return HTMLResponse(render_html(doc))
    return JSONResponse(doc)


def _may_read(principal: Principal, row: Any) -> bool:
    return (
        row.user_id == principal.user_id
        or principal.has("admin")
        or (principal.has("operator") and principal.organisation_id == row.organisation_id)
    )


DocumentFormat = Annotated[str | None, Query(pattern="^(json|html|pdf)$")]


@router.get("/receipts/{session_id}", response_model=None)
async def get_receipt(
    request: Request,
    principal: CurrentPrincipal,
    session_id: uuid.UUID,
    format: DocumentFormat = None,
) -> Response:
    """The session's receipt, which is its invoice (JSON, HTML or PDF)."""
    async with _db(request).read() as session:
        repo = BillingRepository(session)
        row = await repo.receipt(session_id)
        refunded = await repo.refunded(session_id) if row else 0
        review = await repo.review(session_id) if row else None
        refund_rows = await repo.done_refunds(session_id) if row else []
    if row is None or not _may_read(principal, row):
        raise Refusal("not_found", "no receipt for this session", status_code=404)
    doc = receipt_document(row, refunded, review, refund_rows)
    return _document_response(request, format, doc, f"invoice-{row.invoice_number or session_id}")


@router.post("/receipts/{session_id}/mail", status_code=202)
async def mail_receipt(
    request: Request,
    principal: CurrentPrincipal,
    session_id: uuid.UUID,
    body: schemas.MailInvoiceRequest,
) -> dict[str, str]:
    """The payer's own invoice mailed to an address they type (a guest has no account address),
    naming their VAT id if given; a few times per session at most."""
    now = _billing(request).clock()
    async with _db(request).write() as session:
        event = await invoicing.mail_invoice(
            session, principal.user_id, session_id, email=body.email, vat_id=body.vat_id, now=now
        )
        await _outbox.add(session, wrap_all([event]))
    return {"status": "queued", "email": event.email}


@router.get("/credit-notes/{refund_id}", response_model=None)
async def get_credit_note(
    request: Request,
    principal: CurrentPrincipal,
    refund_id: uuid.UUID,
    format: DocumentFormat = None,
) -> Response:
    """A posted refund's credit note (JSON, HTML or PDF)."""
    async with _db(request).read() as session:
        repo = BillingRepository(session)
        refund_row = await repo.refund_row(refund_id)
        receipt = await repo.receipt(refund_row.session_id) if refund_row is not None else None
    if (
        refund_row is None
        or receipt is None
        or refund_row.status != "done"
        or not _may_read(principal, receipt)
    ):
        raise Refusal("not_found", "no credit note with this id", status_code=404)
    doc = credit_note_document(receipt, refund_row)
    return _document_response(request, format, doc, f"credit-note-{refund_row.credit_note_number}")


def _negotiate(accept: str) -> str:
    ranked = []
    for part in accept.split(","):
        media, _, params = part.strip().partition(";")
        q = 1.0
        for p in params.split(";"):
            name, _, value = p.strip().partition("=")
            if name == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        ranked.append((q, media.strip().lower()))
    for _, media in sorted(ranked, key=lambda x: -x[0]):
        if media == "application/pdf":
            return "pdf"
        if media in ("text/html", "application/xhtml+xml"):
            return "html"
        if media in ("application/json", "*/*", "application/*"):
            return "json"
    return "json"


# --- operators --------------------------------------------------------------------------------


@router.get("/operator/revenue", response_model=schemas.RevenueReport)
async def revenue(
    request: Request,
    operator: CurrentOperator,
    start: Annotated[datetime | None, Query(alias="from")] = None,
    end: Annotated[datetime | None, Query(alias="to")] = None,
    organisation_id: uuid.UUID | None = None,
) -> schemas.RevenueReport:
    org = organisation_id if operator.has("admin") and organisation_id else operator.organisation_id
    if org is None:
        raise Refusal("no_organisation", "your account belongs to no organisation", status_code=403)
    end = (end or datetime.now(UTC)).astimezone(UTC)
    start = (start or end - timedelta(days=30)).astimezone(UTC)
    if start >= end:
        raise Refusal("invalid_period", "from must be before to", status_code=422)
    async with _db(request).read() as session:
        rows = await BillingRepository(session).revenue(org, start, end)
    return schemas.RevenueReport(
        organisation_id=org,
        period_start=start,
        period_end=end,
        stations=[
            schemas.StationRevenue(
                station_id=r.station_id,
                currency=r.currency,
                sessions=r.sessions,
                energy_wh=int(r.energy_wh or 0),
                revenue_excl_vat=_money(int(r.excl_vat or 0), r.currency),
                vat=_money(int(r.vat or 0), r.currency),
                total_incl_vat=_money(int(r.incl_vat or 0), r.currency),
                refunded=_money(int(r.refunded or 0), r.currency),
                outstanding_debt=_money(int(r.debt or 0), r.currency),
                pending_review_sessions=r.pending_sessions,
                pending_review=_money(int(r.pending_incl_vat), r.currency),
            )
            for r in rows
        ],
    )


def _operator_org(operator: Principal, organisation_id: uuid.UUID | None) -> uuid.UUID:
    org = organisation_id if operator.has("admin") and organisation_id else operator.organisation_id
    if org is None:
        raise Refusal("no_organisation", "your account belongs to no organisation", status_code=403)
    return org


@router.get("/operator/legal-profile", response_model=schemas.LegalProfileView)
async def get_legal_profile(
    request: Request, operator: CurrentOperator, organisation_id: uuid.UUID | None = None
) -> dict[str, Any]:
    """The seller's details the organisation's invoices and credit notes carry."""
    org = _operator_org(operator, organisation_id)
    async with _db(request).read() as session:
        return await invoicing.legal_profile(session, org)


@router.put("/operator/legal-profile", response_model=schemas.LegalProfileView)
async def put_legal_profile(
    request: Request,
    operator: CurrentOperator,
    body: schemas.LegalProfileRequest,
    organisation_id: uuid.UUID | None = None,
) -> dict[str, Any]:
    """Replace the seller's details; documents issued from now on carry them (issued ones keep
    what they were issued with)."""
    org = _operator_org(operator, organisation_id)
    async with _db(request).write() as session:
        return await invoicing.put_legal_profile(
            session,
            org,
            legal_name=body.legal_name,
            address=body.address,
            vat_id=body.vat_id,
            invoice_prefix=body.invoice_prefix,
            updated_by=operator.user_id,
            now=_billing(request).clock(),
        )


@router.get("/operator/refunds", response_model=schemas.SessionRefunds)
async def list_refunds(
    request: Request, operator: CurrentOperator, session_id: uuid.UUID
) -> schemas.SessionRefunds:
    """A session's refunds with their reasons and destinations, and what is still refundable."""
    async with _db(request).read() as session:
        repo = BillingRepository(session)
        receipt = await repo.receipt(session_id)
        rows = await repo.refunds_of(session_id) if receipt is not None else []
    if receipt is None or not (
        operator.has("admin") or receipt.organisation_id == operator.organisation_id
    ):
        # Another organisation's session answers as a missing one: no existence oracle.
        raise Refusal("not_found", "no receipt for this session", status_code=404)
    reserved = sum(r.amount for r in rows if r.status in ("done", "pending"))
    return schemas.SessionRefunds(
        session_id=session_id,
        charged=_money(receipt.charged, receipt.currency),
        refundable=_money(max(0, receipt.charged - reserved), receipt.currency),
        destination="card" if receipt.funding == "card" else "wallet",
        refunds=[
            schemas.RefundView(
                refund_id=r.id,
                amount=_money(r.amount, r.currency),
                destination=r.destination,
                reason=r.reason,
                status=r.status,
                issued_at=r.created_at,
            )
            for r in rows
        ],
    )


@router.post("/operator/refunds", status_code=201)
async def refund(
    request: Request,
    operator: CurrentOperator,
    body: schemas.RefundRequest,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    billing = _billing(request)
    refund_id = uuid.uuid5(operator.user_id, f"refund:{idempotency_key}")

    async def begin(session: AsyncSession) -> refunds.RefundStep:
        receipt = await BillingRepository(session).receipt(body.session_id)
        if receipt is not None and body.amount.currency != receipt.currency:
            raise Refusal("currency_mismatch", "refund in the session's currency", status_code=422)
        return await refunds.begin(
            billing,
            session,
            refund_id=refund_id,
            session_id=body.session_id,
            amount=body.amount.amount_minor,
            reason=body.reason,
            issued_by=operator.user_id,
            organisation_id=operator.organisation_id,
            any_organisation=operator.has("admin"),
        )

    async def finish(session: AsyncSession) -> refunds.RefundStep:
        return await refunds.finish(billing, session, refund_id)

    return await _refunding(request, operator, idempotency_key, body, 201, begin, finish)


@router.get("/operator/reviews", response_model=list[schemas.SessionReview])
async def list_reviews(
    request: Request,
    operator: CurrentOperator,
    status: Annotated[
        Literal["pending", "approved", "voided", "corrected"] | None, Query()
    ] = "pending",
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[dict[str, Any]]:
    """Sessions held for review — or with ``status=corrected``, corrected by rule — in the
    operator's organisation (all of them for an admin), with the evidence: the station's claim,
    the judgement's reasons and bound, what was billed."""
    org = None if operator.has("admin") else operator.organisation_id
    if org is None and not operator.has("admin"):
        raise Refusal("no_organisation", "your account belongs to no organisation", status_code=403)
    async with _db(request).read() as session:
        rows = await BillingRepository(session).reviews(org, status, limit)
    return [reviews.review_body(r) for r in rows]


@router.post("/operator/reviews/{session_id}", status_code=200)
async def decide_review(
    request: Request,
    session_id: uuid.UUID,
    operator: CurrentOperator,
    body: schemas.ReviewDecisionRequest,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Approve a held session up to a stated total (never above the authorised maximum) or
    void it; the difference to what was billed moves at once (see usecases/review.py)."""
    billing = _billing(request)

    async def decide(session: AsyncSession) -> refunds.RefundStep:
        return await reviews.decide(
            billing,
            session,
            session_id=session_id,
            decision=body.decision,
            amount=body.amount.money() if body.amount is not None else None,
            note=body.note,
            reviewer=operator.user_id,
            organisation_id=operator.organisation_id,
            any_organisation=operator.has("admin"),
        )

    async def finish(session: AsyncSession) -> refunds.RefundStep:
        return await reviews.finish(billing, session, session_id)

    return await _refunding(request, operator, idempotency_key, body, 200, decide, finish)


# --- processor webhooks -----------------------------------------------------------------------


@router.post("/webhooks/processor", status_code=200)
async def processor_webhook(request: Request) -> dict[str, Any]:
    payload = await request.body()
    billing = _billing(request)
    try:
        event = billing.processor.verify_webhook(payload, request.headers.get("stripe-signature"))
    except InvalidWebhook as error:
        raise Refusal(error.code, error.message, status_code=400) from error
    released_session = None
    async with _db(request).write() as session:
        repo = BillingRepository(session)
        first = await repo.record_processor_event(event.id, event.type, event.payload)
        if not first:
            return {"received": True, "duplicate": True}
        if event.type == "payment_intent.canceled" and event.object_id:
            # A card hold ended at the processor (e.g. it expired): release it in the ledger.
            row = await repo.session_by_intent(event.object_id)
            if row is not None and row.status == "authorized":
                released, _ = await authorise.release(billing, session, row.session_id)
                await _outbox.add(session, wrap_all(released))
                released_session = row.session_id
    if released_session is not None:  # the recorded cancel: a no-op answer at the processor
        await make_pending_calls(billing, _db(request).write, released_session)
    return {"received": True, "duplicate": False}
