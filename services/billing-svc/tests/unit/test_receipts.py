"""The receipt says what paid and what was capped, in plain words."""

from __future__ import annotations

import html
import io
import uuid
from datetime import UTC, datetime
from types import SimpleNamespace

from billing_svc.receipts import credit_note_document, receipt_document, render_html, render_pdf
from billing_svc.repository import PaymentMethod
from billing_svc.usecases.common import payment_label
from pypdf import PdfReader

VISA = PaymentMethod(uuid.uuid4(), uuid.uuid4(), "pm_card_visa", "visa", "4242", 12, 2034, True)


def _row(**values: object) -> SimpleNamespace:
    base = {
        "id": uuid.uuid4(),
        "session_id": uuid.uuid4(),
        "station_id": "ST-1",
        "currency": "EUR",
        "issued_at": datetime.now(UTC),
        "started_at": None,
        "ended_at": None,
        "energy_wh": 50_000,
        "breakdown": {"tariff_id": "t", "tariff_version": 1, "lines": []},
        "total_excl_vat": 1681,
        "total_vat": 319,
        "total_incl_vat": 2000,
        "charged": 2000,
        "debt": 0,
        "funding": "wallet",
        "payment_method_label": "Wallet + visa •••• 4242",
        "wallet_part": 1200,
        "card_part": 800,
        "authorised_max": 2000,
        "claimed_total": 2380,
        "capped": 380,
    }
    return SimpleNamespace(**{**base, **values})


def test_the_label_names_every_source_and_never_calls_a_card_the_wallet() -> None:
    assert payment_label(wallet_part=1200, card_part=800, card=VISA) == "Wallet + visa •••• 4242"
    assert payment_label(wallet_part=0, card_part=800, card=VISA) == "visa •••• 4242"
    assert payment_label(wallet_part=500, card_part=0, card=VISA) == "Wallet"
    assert payment_label(wallet_part=0, card_part=0, card=None, free=True) == "Free"


def test_the_receipt_shows_the_split_and_the_cap_in_plain_words() -> None:
    doc = receipt_document(_row(), refunded=100)
    split = {k: v["amount_minor"] for k, v in doc["funding_split"].items()}
    assert split == {"wallet": 1200, "card": 800, "refunded": 100}
    assert doc["capped"]["amount_minor"] == 380 and doc["claimed_total"]["amount_minor"] == 2380
    cap_note, split_note = doc["notes"]
    assert "23.80 EUR" in cap_note and "20.00 EUR" in cap_note and "3.80 EUR" in cap_note
    assert split_note == "Paid 12.00 EUR from your wallet and 8.00 EUR by card."
    assert html.escape(cap_note) in render_html(doc)
    assert render_pdf(doc).startswith(b"%PDF")


def test_receipts_issued_before_the_split_was_kept_derive_it() -> None:
    old = _row(wallet_part=None, card_part=None, claimed_total=None, capped=0, funding="card")
    doc = receipt_document(old, refunded=0)
    assert doc["funding_split"]["card"]["amount_minor"] == 2000
    assert doc["funding_split"]["wallet"]["amount_minor"] == 0
    assert doc["claimed_total"]["amount_minor"] == 2000 and doc["notes"] == []


def _pdf_text(data: bytes) -> str:
    # Lines wrap where the page ends: compare with whitespace collapsed.
    text = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)
    return " ".join(text.split())


INVOICE = {
    "invoice_number": "ACME-2026-000007",
    "seller": {
        "legal_name": "ACME Charging GmbH",
        "address": "Hauptstr. 1, 10115 Berlin",
        "vat_id": "DE123456789",
    },
    "station": {"id": "ST-1", "name": "Marktplatz", "address": "Marktplatz 1, Berlin"},
    "time_zone": "Europe/Berlin",
    "buyer_email": "driver@example.com",
    "issued_at": datetime(2026, 7, 1, 10, 0, tzinfo=UTC),
    "started_at": datetime(2026, 7, 1, 8, 30, tzinfo=UTC),
    "ended_at": datetime(2026, 7, 1, 9, 45, tzinfo=UTC),
    "breakdown": {
        "tariff_id": "t",
        "tariff_version": 1,
        "charging_s": "3600",
        "parking_s": "900.5",
        "lines": [
            {
                "component_type": "ENERGY",
                "quantity": "50000",
                "unit_price": "0.2826",
                "vat_percent": "19",
                "amount_excl_vat": 1413,
                "vat": 268,
                "amount_incl_vat": 1681,
            },
            {
                "component_type": "PARKING_TIME",
                "quantity": "900.5",
                "unit_price": "1.20",
                "vat_percent": "19",
                "amount_excl_vat": 268,
                "vat": 51,
                "amount_incl_vat": 319,
            },
        ],
    },
}
REFUND = SimpleNamespace(
    id=uuid.uuid4(),
    credit_note_number="ACME-CN-2026-000002",
    amount=500,
    reason="connector fault",
    destination="wallet",
    status="done",
    created_at=datetime(2026, 7, 2, 22, 30, tzinfo=UTC),
)


def test_the_invoice_names_seller_buyer_station_local_times_columns_and_refunds() -> None:
    doc = receipt_document(_row(**INVOICE, capped=0, claimed_total=2000), 500, None, [REFUND])
    assert doc["invoice_number"] == "ACME-2026-000007"
    assert (
        doc["seller"]["vat_id"] == "DE123456789" and doc["buyer"]["email"] == "driver@example.com"
    )
    assert doc["station"]["name"] == "Marktplatz"
    # Berlin is UTC+2 in July
    assert doc["local_time"] == {
        "issued": "2026-07-01 12:00 CEST",
        "started": "2026-07-01 10:30 CEST",
        "ended": "2026-07-01 11:45 CEST",
    }
    assert (
        doc["durations"]["charging"] == "1 h 00 min" and doc["durations"]["idle"] == "15 min 00 s"
    )
    energy, idle = doc["lines"]
    assert energy["unit_price_excl_vat"] == "0.2826 EUR/kWh"
    assert idle["unit_price_excl_vat"] == "1.20 EUR/h" and idle["vat"]["text"] == "0.51 EUR"
    assert doc["card_label"] == "visa •••• 4242"
    [refund] = doc["refunds"]
    assert refund["credit_note_number"] == "ACME-CN-2026-000002"
    assert refund["issued_local"] == "2026-07-03 00:30 CEST"  # the next day, locally

    page = render_html(doc)
    for text in ("Invoice ACME-2026-000007", "ACME Charging GmbH", "VAT id: DE123456789",
                 "Marktplatz, Marktplatz 1, Berlin", "2026-07-01 10:30 CEST",
                 "Unit price excl. VAT", "VAT rate", "driver@example.com", "connector fault",
                 "card visa •••• 4242 8.00 EUR", "Idle time"):  # fmt: skip
        assert html.escape(text) in page, text
    text = _pdf_text(render_pdf(doc))
    for expected in ("Invoice ACME-2026-000007", "ACME Charging GmbH", "DE123456789",
                     "Marktplatz 1, Berlin", "Total incl. VAT: 20.00 EUR", "VAT rate",
                     "1.20 EUR/h", "driver@example.com", "ACME-CN-2026-000002",
                     "connector fault", "visa ···· 4242", "Idle time: 15 min 00 s"):  # fmt: skip
        assert expected in text, (expected, text)


def test_a_credit_note_names_the_invoice_it_corrects_and_splits_vat_as_booked() -> None:
    receipt = _row(**INVOICE)
    doc = credit_note_document(receipt, REFUND)
    assert doc["credit_note_number"] == "ACME-CN-2026-000002"
    assert doc["invoice_number"] == "ACME-2026-000007"
    # 500 of a 2000 invoice with 319 VAT: 79 VAT (floored, as the ledger reversed it)
    assert (doc["vat"]["amount_minor"], doc["amount_excl_vat"]["amount_minor"]) == (79, 421)
    text = _pdf_text(render_pdf(doc))
    for expected in (
        "Credit note ACME-CN-2026-000002",
        "Corrects invoice: ACME-2026-000007",
        "DE123456789",
        "connector fault",
        "Total credited incl. VAT: 5.00 EUR",
    ):
        assert expected in text, (expected, text)
