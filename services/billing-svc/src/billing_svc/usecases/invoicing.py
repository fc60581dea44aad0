"""Invoices and credit notes: the organisation's legal profile, and the numbers and facts an
issued document keeps.

A number comes from the organisation's gapless yearly series (``document_counters``), taken in
the very transaction that books the money (settlement posting revenue and VAT; a refund's
reversal), after the organisation's revenue and VAT rows are locked: a rollback returns it,
and two settlements of one organisation take consecutive numbers one after the other.
The seller, station and buyer are copied onto the document when it is issued: an issued invoice
never changes when the profile does.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from plugpay_events.contracts.billing import (
    CreditNoteIssued,
    InvoiceIssued,
    InvoiceMailRequested,
)
from plugpay_events.types import Money
from plugpay_platform.errors import Refusal
from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncSession

from billing_svc.domain import (
    DEFAULT_PREFIX,
    INVOICE_MAILS_PER_SESSION,
    DocumentSeries,
    LegalProfile,
    buyer_problem,
    document_number,
    document_year,
    legal_profile_problem,
    normalised_vat_id,
)
from billing_svc.receipts import credit_note_document, receipt_document, render_pdf
from billing_svc.repository import BillingRepository


@dataclass(frozen=True)
class InvoiceFacts:
    """What a receipt keeps to be an invoice (the receipt's columns of the same names)."""

    invoice_number: str
    seller: dict[str, Any]
    station: dict[str, Any]
    time_zone: str | None
    buyer_email: str | None


def _seller(row: Any) -> dict[str, Any]:
    if row is None:
        return {"legal_name": None, "address": None, "vat_id": None}
    return {
        "legal_name": row.legal_name,
        "address": row.address or None,
        "vat_id": row.vat_id or None,
    }


async def issue_invoice(
    repo: BillingRepository, billing_session: Row[Any], *, issued_at: datetime
) -> InvoiceFacts:
    """Number and facts of a billing session's invoice; call after revenue and VAT are
    locked."""
    org, time_zone = billing_session.organisation_id, billing_session.time_zone
    profile = await repo.legal_profile(org)
    invoice_number = await _next_number(repo, profile, org, "invoice", issued_at, time_zone)
    station = await repo.station(billing_session.station_id)
    return InvoiceFacts(
        invoice_number=invoice_number,
        seller=_seller(profile),
        station={
            "id": billing_session.station_id,
            "name": station.name if station is not None else None,
            "address": station.address if station is not None else None,
        },
        time_zone=time_zone,
        buyer_email=await repo.email_of(billing_session.user_id),
    )


async def credit_note_number(
    repo: BillingRepository,
    organisation_id: uuid.UUID,
    time_zone: str | None,
    issued_at: datetime,
) -> str:
    """The number of a refund's credit note; call after revenue and VAT are locked."""
    profile = await repo.legal_profile(organisation_id)
    return await _next_number(repo, profile, organisation_id, "credit_note", issued_at, time_zone)


async def _next_number(
    repo: BillingRepository,
    profile: Any,
    organisation_id: uuid.UUID,
    series: DocumentSeries,
    issued_at: datetime,
    time_zone: str | None,
) -> str:
    """The organisation's next number in ``series`` for the year of ``issued_at``, with its
    legal profile's prefix."""
    prefix = profile.invoice_prefix if profile is not None else DEFAULT_PREFIX
    year = document_year(issued_at, time_zone)
    number = await repo.next_document_number(organisation_id, series, year)
    return document_number(prefix, series, year, number)


def profile_body(organisation_id: uuid.UUID, row: Any) -> dict[str, Any]:
    return {
        "organisation_id": str(organisation_id),
        "legal_name": row.legal_name if row is not None else "",
        "address": row.address if row is not None else "",
        "vat_id": row.vat_id if row is not None else "",
        "invoice_prefix": row.invoice_prefix if row is not None else DEFAULT_PREFIX,
        "updated_at": row.updated_at.isoformat() if row is not None else None,
    }


async def legal_profile(session: AsyncSession, organisation_id: uuid.UUID) -> dict[str, Any]:
    row = await BillingRepository(session).legal_profile(organisation_id)
    return profile_body(organisation_id, row)


async def put_legal_profile(
    session: AsyncSession,
    organisation_id: uuid.UUID,
    *,
    legal_name: str,
    address: str,
    vat_id: str,
    invoice_prefix: str,
    updated_by: uuid.UUID,
    now: datetime,
) -> dict[str, Any]:
    """Keep the organisation's legal profile; documents issued from now on name it."""
    profile = LegalProfile(
        legal_name=legal_name.strip(),
        address=address.strip(),
        vat_id=normalised_vat_id(vat_id),
        invoice_prefix=invoice_prefix.strip().upper(),
    )
    problem = legal_profile_problem(profile)
    if problem is not None:
        raise Refusal(problem[0], problem[1], status_code=422)
    repo = BillingRepository(session)
    await repo.put_legal_profile(organisation_id, profile, updated_by, now)
    return profile_body(organisation_id, await repo.legal_profile(organisation_id))


def _money(amount: int, currency: str) -> Money:
    return Money(amount_minor=amount, currency=currency)


def _pdf_base64(doc: dict[str, Any]) -> str:
    """A document's PDF as the events carry it."""
    return base64.b64encode(render_pdf(doc)).decode("ascii")


async def invoice_issued(repo: BillingRepository, session_id: uuid.UUID) -> InvoiceIssued:
    """The event of a just-issued invoice, its PDF rendered as issued (no refunds yet)."""
    row = await repo.receipt(session_id)
    assert row is not None and row.invoice_number is not None
    doc = receipt_document(row, 0)
    currency = row.currency
    return InvoiceIssued(
        user_id=row.user_id,
        session_id=row.session_id,
        receipt_id=row.id,
        organisation_id=row.organisation_id,
        invoice_number=row.invoice_number,
        seller_name=(row.seller or {}).get("legal_name"),
        total=_money(row.total_incl_vat, currency),
        charged=_money(row.charged, currency),
        wallet_charged=_money(row.wallet_part or 0, currency),
        card_charged=_money(row.card_part or 0, currency),
        card_label=doc["card_label"],
        balance_after=_money(row.balance_after, currency)
        if row.balance_after is not None
        else None,
        issued_at=row.issued_at,
        document_filename=f"invoice-{row.invoice_number}.pdf",
        document_pdf=_pdf_base64(doc),
    )


async def credit_note_issued(repo: BillingRepository, refund_id: uuid.UUID) -> CreditNoteIssued:
    """The event of a just-posted refund's credit note, with its PDF."""
    refund = await repo.refund_row(refund_id)
    assert refund is not None and refund.credit_note_number is not None
    receipt = await repo.receipt(refund.session_id)
    assert receipt is not None
    doc = credit_note_document(receipt, refund)
    return CreditNoteIssued(
        user_id=refund.user_id,
        refund_id=refund.id,
        session_id=refund.session_id,
        organisation_id=refund.organisation_id,
        credit_note_number=refund.credit_note_number,
        invoice_number=receipt.invoice_number,
        amount=_money(refund.amount, refund.currency),
        reason=refund.reason,
        destination=refund.destination,
        issued_at=refund.created_at,
        document_filename=f"credit-note-{refund.credit_note_number}.pdf",
        document_pdf=_pdf_base64(doc),
    )


async def mail_invoice(
    session: AsyncSession,
    user_id: uuid.UUID,
    session_id: uuid.UUID,
    *,
    email: str,
    vat_id: str,
    now: datetime,
) -> InvoiceMailRequested:
    """The payer's invoice mailed to an address they typed, naming their VAT id if they give
    one. An invoice without a buyer (a guest's) takes the address as its buyer; a VAT id is
    named once and then stays, as an issued invoice's facts do."""
    email, vat_id = email.strip().lower(), normalised_vat_id(vat_id)
    problem = buyer_problem(email, vat_id)
    if problem is not None:
        raise Refusal(problem[0], problem[1], status_code=422)
    repo = BillingRepository(session)
    row = await repo.receipt(session_id, lock=True)
    if row is None or row.user_id != user_id or row.invoice_number is None:
        raise Refusal("not_found", "no receipt for this session", status_code=404)
    if vat_id and row.buyer_vat_id and vat_id != row.buyer_vat_id:
        raise Refusal(
            "buyer_vat_id_set",
            f"this invoice already names the VAT id {row.buyer_vat_id}",
            status_code=409,
        )
    if row.mails_requested >= INVOICE_MAILS_PER_SESSION:
        raise Refusal(
            "too_many_invoice_mails",
            f"this invoice was mailed {INVOICE_MAILS_PER_SESSION} times already",
            status_code=429,
        )
    await repo.update_receipt(
        session_id,
        buyer_email=row.buyer_email or email,
        buyer_vat_id=row.buyer_vat_id or vat_id or None,
        mails_requested=row.mails_requested + 1,
    )
    row = await repo.receipt(session_id)
    assert row is not None and row.invoice_number is not None
    refund_rows = await repo.done_refunds(session_id)
    doc = receipt_document(
        row, await repo.refunded(session_id), await repo.review(session_id), refund_rows
    )
    currency = row.currency
    return InvoiceMailRequested(
        user_id=row.user_id,
        session_id=row.session_id,
        invoice_number=row.invoice_number,
        email=email,
        seller_name=(row.seller or {}).get("legal_name"),
        total=_money(row.total_incl_vat, currency),
        charged=_money(row.charged, currency),
        wallet_charged=_money(row.wallet_part or 0, currency),
        card_charged=_money(row.card_part or 0, currency),
        card_label=doc["card_label"],
        requested_at=now,
        document_filename=f"invoice-{row.invoice_number}.pdf",
        document_pdf=_pdf_base64(doc),
    )
