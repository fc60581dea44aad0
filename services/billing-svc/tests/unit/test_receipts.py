"""The receipt says what paid and what was capped, in plain words."""

from __future__ import annotations

import html
import uuid
from datetime import UTC, datetime
from types import SimpleNamespace

from billing_svc.receipts import receipt_document, render_html, render_pdf
from billing_svc.repository import PaymentMethod
from billing_svc.usecases.common import payment_label

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
