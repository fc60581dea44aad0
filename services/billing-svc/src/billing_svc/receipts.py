"""A receipt as a document — the session's invoice, and a refund's credit note: JSON, HTML and
PDF from the same data. Times are shown in the station's time zone."""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fpdf import FPDF
from plugpay_tariffs import MINOR_UNIT_EXPONENT

LINE_NAMES = {
    "ENERGY": "Energy",
    "TIME": "Charging time",
    "PARKING_TIME": "Parking time",
    "FLAT": "Session fee",
}


# Per what the unit price is (the tariff's price, excl. VAT, in major units).
UNITS = {"ENERGY": "/kWh", "TIME": "/h", "PARKING_TIME": "/h", "FLAT": "/session"}
_NO_SELLER: dict[str, Any] = {"legal_name": None, "address": None, "vat_id": None}


def _zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def local_text(at: datetime | None, zone: ZoneInfo) -> str | None:
    """``2026-12-03 14:05 CET``: to the minute, in the station's zone, the zone named."""
    return at.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z") if at is not None else None


def duration_text(seconds: object) -> str:
    total = int(Decimal(str(seconds or 0)))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s"


def _card_label(payment_label: str) -> str | None:
    # "Wallet + visa •••• 4242" -> "visa •••• 4242"
    cards = [
        p for p in payment_label.split(" + ") if p not in ("Wallet", "Free", "Nothing charged")
    ]
    return cards[0] if cards else None


def money_text(amount_minor: int, currency: str) -> str:
    exponent = MINOR_UNIT_EXPONENT.get(currency, 2)
    value = Decimal(amount_minor).scaleb(-exponent)
    return f"{value:.{exponent}f} {currency}"


def _quantity(kind: str, quantity: str) -> str:
    q = Decimal(quantity)
    if kind == "ENERGY":
        return f"{q / 1000:.3f} kWh"
    if kind in ("TIME", "PARKING_TIME"):
        return f"{q / 60:.1f} min"
    return "1"


# A correction's reasons (the gateway's stable codes) in the driver's words.
_CORRECTIONS = {
    "start_before_authorisation": "the start was dated before you authorised it",
    "start_in_future": "the start was dated in the future",
    "stop_before_authorisation": "the stop was dated before you authorised the session",
    "stop_in_future": "the stop was dated in the future",
    "stop_before_start": "the stop was dated before the start",
    "sample_time_implausible": "readings were dated outside the session",
    "conflicting_samples": "two different readings were reported for one instant",
    "meter_start_mismatch": "the meter's start value disagreed with its readings",
    "meter_stop_below_register": "the meter's stop value was below its last reading",
    "meter_stop_jump": "the meter's stop value was beyond what the charger can deliver",
    "samples_disagree_with_transaction": "the readings disagreed with the start and stop values",
    "register_regression": "the meter went backwards",
    "idle_reported_as_charging": "parked time was reported as charging",
}


def receipt_document(
    row: Any, refunded: int, review: Any = None, refunds: Sequence[Any] = ()
) -> dict[str, Any]:
    """The receipt and invoice's data (what the JSON answer is; HTML and PDF render it);
    ``review``: the session's review row when the gateway held its meter evidence; ``refunds``:
    its posted refunds (each a credit note)."""
    currency = row.currency
    breakdown = row.breakdown

    def money(value: int) -> dict[str, Any]:
        return {"amount_minor": value, "currency": currency, "text": money_text(value, currency)}

    wallet_part, card_part = row.wallet_part, row.card_part
    if wallet_part is None or card_part is None:  # receipts issued before the split was kept
        wallet_part = row.charged if row.funding == "wallet" else 0
        card_part = row.charged if row.funding == "card" else 0
    claimed = row.claimed_total if row.claimed_total is not None else row.total_incl_vat
    notes = []
    if row.capped:
        notes.append(
            f"The station's final cost was {money_text(claimed, currency)}, above the "
            f"{money_text(row.authorised_max or 0, currency)} you agreed to before the start. "
            f"You pay {money_text(row.total_incl_vat, currency)}; the "
            f"{money_text(row.capped, currency)} above it is not charged to you."
        )
    if review is not None and review.status == "pending":
        notes.append(
            "The station's meter readings did not add up, so you were billed only the part "
            "they plausibly show. The operator is reviewing the session; this receipt will "
            "show the decision."
        )
    elif review is not None and review.status == "approved":
        notes.append(
            f"The station's meter readings did not add up. After review the operator approved "
            f"a total of {money_text(review.approved_total, currency)} (you had been billed "
            f"{money_text(review.billed_before, currency)})."
        )
    elif review is not None and review.status == "corrected":
        found = [
            _CORRECTIONS.get(reason, reason.replace("_", " "))
            for reason in review.judgement.get("reasons", ())
        ]
        notes.append(
            "The station's meter readings did not all add up ("
            + "; ".join(found)
            + "), so this session was billed from the readings we could verify."
        )
    elif review is not None and review.status == "voided":
        notes.append(
            "The station's meter readings did not add up. After review the operator voided "
            f"the session: the {money_text(review.billed_before, currency)} billed is refunded."
        )
    if card_part and wallet_part:
        notes.append(
            f"Paid {money_text(wallet_part, currency)} from your wallet and "
            f"{money_text(card_part, currency)} by card."
        )

    zone = _zone(getattr(row, "time_zone", None))
    card_label = _card_label(row.payment_method_label)
    return {
        "document": "invoice",
        "receipt_id": str(row.id),
        "invoice_number": getattr(row, "invoice_number", None),
        "seller": getattr(row, "seller", None) or _NO_SELLER,
        "buyer": {
            "email": getattr(row, "buyer_email", None),
            "vat_id": getattr(row, "buyer_vat_id", None),
        },
        "session_id": str(row.session_id),
        "station_id": row.station_id,
        "station": getattr(row, "station", None)
        or {"id": row.station_id, "name": None, "address": None},
        "time_zone": zone.key,
        "issued_at": row.issued_at.isoformat(),
        "started_at": row.started_at.isoformat() if row.started_at else None,
        "ended_at": row.ended_at.isoformat() if row.ended_at else None,
        "local_time": {
            "issued": local_text(row.issued_at, zone),
            "started": local_text(row.started_at, zone),
            "ended": local_text(row.ended_at, zone),
        },
        "energy_wh": row.energy_wh,
        "durations": {
            "charging_s": int(Decimal(str(breakdown.get("charging_s", 0)))),
            "idle_s": int(Decimal(str(breakdown.get("parking_s", 0)))),
            "charging": duration_text(breakdown.get("charging_s", 0)),
            "idle": duration_text(breakdown.get("parking_s", 0)),
        },
        "tariff": {"id": breakdown["tariff_id"], "version": breakdown["tariff_version"]},
        "lines": [
            {
                "description": LINE_NAMES.get(line["component_type"], line["component_type"]),
                "component_type": line["component_type"],
                "quantity": _quantity(line["component_type"], line["quantity"]),
                "unit_price_excl_vat": f"{line['unit_price']} {currency}"
                + UNITS.get(line["component_type"], ""),
                "vat_percent": line["vat_percent"],
                "amount_excl_vat": money(line["amount_excl_vat"]),
                "vat": money(line["vat"]),
                "amount_incl_vat": money(line["amount_incl_vat"]),
            }
            for line in breakdown["lines"]
        ],
        "total_excl_vat": money(row.total_excl_vat),
        "total_vat": money(row.total_vat),
        "total_incl_vat": money(row.total_incl_vat),
        "charged": money(row.charged),
        "outstanding_debt": money(row.debt),
        "refunded": money(refunded),
        "funding": row.funding,
        "payment_method": row.payment_method_label,
        "funding_split": {
            "wallet": money(wallet_part),
            "card": money(card_part),
            "refunded": money(refunded),
        },
        "card_label": card_label,
        "refunds": [
            {
                "credit_note_number": r.credit_note_number,
                "amount": money(r.amount),
                "reason": r.reason,
                "destination": r.destination,
                "issued_at": r.created_at.isoformat(),
                "issued_local": local_text(r.created_at, zone),
            }
            for r in refunds
        ],
        "authorised_max": money(row.authorised_max) if row.authorised_max is not None else None,
        "claimed_total": money(claimed),
        "capped": money(row.capped or 0),
        "review": None if review is None else review.status,
        "notes": notes,
    }


def credit_note_document(receipt: Any, refund: Any) -> dict[str, Any]:
    """A refund as its own document: the credit note, naming the invoice it corrects. The
    amount splits into net and VAT in the proportion the invoice collected them (as booked)."""
    currency = receipt.currency
    zone = _zone(getattr(receipt, "time_zone", None))
    vat = (
        refund.amount * receipt.total_vat // receipt.total_incl_vat if receipt.total_incl_vat else 0
    )

    def money(value: int) -> dict[str, Any]:
        return {"amount_minor": value, "currency": currency, "text": money_text(value, currency)}

    return {
        "document": "credit_note",
        "refund_id": str(refund.id),
        "credit_note_number": refund.credit_note_number,
        "invoice_number": getattr(receipt, "invoice_number", None),
        "seller": getattr(receipt, "seller", None) or _NO_SELLER,
        "buyer": {"email": getattr(receipt, "buyer_email", None)},
        "session_id": str(receipt.session_id),
        "station": getattr(receipt, "station", None)
        or {"id": receipt.station_id, "name": None, "address": None},
        "time_zone": zone.key,
        "issued_at": refund.created_at.isoformat(),
        "local_time": {"issued": local_text(refund.created_at, zone)},
        "reason": refund.reason,
        "destination": refund.destination,
        "status": refund.status,
        "amount_excl_vat": money(refund.amount - vat),
        "vat": money(vat),
        "amount_incl_vat": money(refund.amount),
    }


# --- rendering: one layout, as HTML and as PDF ------------------------------------------------


LINE_COLUMNS = ("Item", "Quantity", "Unit price excl. VAT", "VAT rate", "Net", "VAT", "Total")


def _layout(doc: dict[str, Any]) -> dict[str, Any]:
    """The document's parts in reading order (both renderers draw exactly these)."""
    seller = doc["seller"]
    seller_lines = [
        x
        for x in (
            seller.get("legal_name"),
            seller.get("address"),
            f"VAT id: {seller['vat_id']}" if seller.get("vat_id") else None,
        )
        if x
    ]
    station = doc["station"]
    station_text = ", ".join(
        x for x in (station.get("name") or station.get("id"), station.get("address")) if x
    )
    if doc["document"] == "credit_note":
        number = doc["credit_note_number"]
        return {
            "title": f"Credit note {number}" if number else "Credit note",
            "seller": seller_lines,
            "facts": [
                ("Credit note number", number or "-"),
                ("Date", doc["local_time"]["issued"]),
                ("Corrects invoice", doc["invoice_number"] or "-"),
                ("Buyer", doc["buyer"]["email"] or "-"),
                ("Station", station_text),
                ("Session", doc["session_id"]),
                ("Reason", doc["reason"]),
                ("Refunded to", "your wallet" if doc["destination"] == "wallet" else "your card"),
            ],
            "columns": ("Item", "Net", "VAT", "Total"),
            "rows": [
                (
                    "Refund",
                    doc["amount_excl_vat"]["text"],
                    doc["vat"]["text"],
                    doc["amount_incl_vat"]["text"],
                )
            ],
            "totals": [("Total credited incl. VAT", doc["amount_incl_vat"]["text"])],
            "paragraphs": [],
        }
    number = doc["invoice_number"]
    split = doc["funding_split"]
    paid = []
    if split["wallet"]["amount_minor"]:
        paid.append(f"wallet {split['wallet']['text']}")
    if split["card"]["amount_minor"]:
        card = (x for x in ("card", doc.get("card_label"), split["card"]["text"]) if x)
        paid.append(" ".join(card))
    paragraphs = [
        f"Credit note {r['credit_note_number'] or '-'} of {r['issued_local']}: refunded "
        f"{r['amount']['text']} to your {r['destination']} - reason: {r['reason']}"
        for r in doc["refunds"]
    ]
    if doc["outstanding_debt"]["amount_minor"]:
        paragraphs.append(f"Still owed: {doc['outstanding_debt']['text']}")
    paragraphs += doc.get("notes", [])
    return {
        "title": f"Invoice {number}" if number else "Charging receipt",
        "seller": seller_lines,
        "facts": [
            ("Invoice number", number or "-"),
            ("Date", doc["local_time"]["issued"]),
            ("Buyer", doc["buyer"]["email"] or "-"),
            *([("Buyer VAT ID", doc["buyer"]["vat_id"])] if doc["buyer"].get("vat_id") else []),
            ("Station", station_text),
            ("Started", doc["local_time"]["started"] or "-"),
            ("Ended", doc["local_time"]["ended"] or "-"),
            ("Energy", f"{doc['energy_wh'] / 1000:.3f} kWh"),
            ("Charging time", doc["durations"]["charging"]),
            ("Idle time", doc["durations"]["idle"]),
            ("Paid by", doc["payment_method"]),
        ],
        "columns": LINE_COLUMNS,
        "rows": [
            (
                x["description"],
                x["quantity"],
                x["unit_price_excl_vat"],
                f"{x['vat_percent']} %",
                x["amount_excl_vat"]["text"],
                x["vat"]["text"],
                x["amount_incl_vat"]["text"],
            )
            for x in doc["lines"]
        ],
        "totals": [
            ("Total excl. VAT", doc["total_excl_vat"]["text"]),
            ("VAT", doc["total_vat"]["text"]),
            ("Total incl. VAT", doc["total_incl_vat"]["text"]),
            ("Paid", ", ".join(paid) if paid else doc["payment_method"]),
            *([("Refunded", doc["refunded"]["text"])] if doc["refunded"]["amount_minor"] else []),
        ],
        "paragraphs": paragraphs,
    }


def render_html(doc: dict[str, Any]) -> str:
    e = html.escape
    part = _layout(doc)
    seller = "<br>".join(e(x) for x in part["seller"]) or "-"
    dl = "".join(f"<dt>{e(k)}</dt><dd>{e(str(v))}</dd>" for k, v in part["facts"])
    head = "".join(f'<th scope="col">{e(c)}</th>' for c in part["columns"])
    rows = "".join(
        "<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in row) + "</tr>" for row in part["rows"]
    )
    totals = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in part["totals"])
    extra = "".join(f"<p>{e(p)}</p>" for p in part["paragraphs"])
    return (
        "<!doctype html><html lang=en><meta charset=utf-8>"
        f"<title>{e(part['title'])}</title>"
        "<style>body{font-family:sans-serif;max-width:52rem;margin:2rem auto}"
        "td,th{padding:.2rem .5rem;text-align:right}td:first-child,th:first-child{text-align:left}"
        "dl{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem}dd{margin:0}"
        "dt{font-weight:bold}address{font-style:normal}.totals th{text-align:left}</style>"
        f"<h1>{e(part['title'])}</h1><section><h2>Seller</h2><address>{seller}</address>"
        f"</section><dl>{dl}</dl><table><tr>{head}</tr>{rows}</table>"
        f"<table class=totals>{totals}</table>{extra}</html>"
    )


def _latin1(text: str) -> str:
    # The core PDF fonts are Latin-1: a card's dots become middle dots, the rest is replaced
    # instead of failing.
    return text.replace("•", "·").encode("latin-1", "replace").decode("latin-1")


def render_pdf(doc: dict[str, Any]) -> bytes:
    part = _layout(doc)
    pdf = FPDF(format="A4")
    pdf.set_title(_latin1(part["title"]))
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 16)
    pdf.cell(0, 10, _latin1(part["title"]), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "B", 10)
    pdf.cell(0, 6, "Seller", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=10)
    for line in part["seller"] or ["-"]:
        pdf.multi_cell(0, 5, _latin1(line), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    for label, value in part["facts"]:
        pdf.multi_cell(0, 6, _latin1(f"{label}: {value}"), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    columns = part["columns"]
    pdf.set_font("Helvetica", size=9)
    with pdf.table(text_align=("LEFT", *("RIGHT",) * (len(columns) - 1))) as table:
        table.row([_latin1(c) for c in columns])
        for row in part["rows"]:
            table.row([_latin1(str(c)) for c in row])
    pdf.ln(4)
    pdf.set_font("Helvetica", size=10)
    for label, value in part["totals"]:
        bold = label.startswith("Total incl") or label.startswith("Total credited")
        pdf.set_font("Helvetica", "B" if bold else "", 11 if bold else 10)
        pdf.cell(0, 7 if bold else 6, _latin1(f"{label}: {value}"), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=10)
    for paragraph in part["paragraphs"]:
        pdf.multi_cell(0, 6, _latin1(paragraph), new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())
