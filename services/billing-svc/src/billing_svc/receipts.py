"""A receipt as a document: JSON, HTML and PDF from the same data."""

from __future__ import annotations

import html
from decimal import Decimal
from typing import Any

from fpdf import FPDF
from plugpay_tariffs import MINOR_UNIT_EXPONENT

LINE_NAMES = {
    "ENERGY": "Energy",
    "TIME": "Charging time",
    "PARKING_TIME": "Parking time",
    "FLAT": "Session fee",
}


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


def receipt_document(row: Any, refunded: int, review: Any = None) -> dict[str, Any]:
    """The receipt's data (what the JSON answer is; HTML and PDF render it); ``review``: the
    session's review row when the gateway held its meter evidence."""
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

    return {
        "receipt_id": str(row.id),
        "session_id": str(row.session_id),
        "station_id": row.station_id,
        "issued_at": row.issued_at.isoformat(),
        "started_at": row.started_at.isoformat() if row.started_at else None,
        "ended_at": row.ended_at.isoformat() if row.ended_at else None,
        "energy_wh": row.energy_wh,
        "tariff": {"id": breakdown["tariff_id"], "version": breakdown["tariff_version"]},
        "lines": [
            {
                "description": LINE_NAMES.get(line["component_type"], line["component_type"]),
                "component_type": line["component_type"],
                "quantity": _quantity(line["component_type"], line["quantity"]),
                "unit_price_excl_vat": f"{line['unit_price']} {currency}",
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
        "authorised_max": money(row.authorised_max) if row.authorised_max is not None else None,
        "claimed_total": money(claimed),
        "capped": money(row.capped or 0),
        "review": None if review is None else review.status,
        "notes": notes,
    }


def render_html(doc: dict[str, Any]) -> str:
    e = html.escape
    rows = "".join(
        f"<tr><td>{e(x['description'])}</td><td>{e(x['quantity'])}</td>"
        f"<td>{e(x['unit_price_excl_vat'])}</td><td>{e(str(x['vat_percent']))} %</td>"
        f"<td>{e(x['amount_excl_vat']['text'])}</td><td>{e(x['vat']['text'])}</td>"
        f"<td>{e(x['amount_incl_vat']['text'])}</td></tr>"
        for x in doc["lines"]
    )
    facts = [
        ("Station", doc["station_id"]),
        ("Started", doc["started_at"] or "-"),
        ("Ended", doc["ended_at"] or "-"),
        ("Energy", f"{doc['energy_wh'] / 1000:.3f} kWh"),
        ("Payment", doc["payment_method"]),
    ]
    dl = "".join(f"<dt>{e(k)}</dt><dd>{e(str(v))}</dd>" for k, v in facts)
    extra = "".join(f"<p>{e(note)}</p>" for note in doc.get("notes", []))
    if doc["outstanding_debt"]["amount_minor"]:
        extra += f"<p>Still owed: {e(doc['outstanding_debt']['text'])}</p>"
    if doc["refunded"]["amount_minor"]:
        extra += f"<p>Refunded: {e(doc['refunded']['text'])}</p>"
    return (
        "<!doctype html><html lang=en><meta charset=utf-8>"
        f"<title>Receipt {e(doc['receipt_id'])}</title>"
        "<style>body{font-family:sans-serif;max-width:48rem;margin:2rem auto}"
        "td,th{padding:.2rem .5rem;text-align:right}td:first-child{text-align:left}</style>"
        f"<h1>Charging receipt</h1><p>Receipt {e(doc['receipt_id'])} · {e(doc['issued_at'])}</p>"
        f"<dl>{dl}</dl><table><tr><th>Item</th><th>Quantity</th><th>Unit price</th>"
        f"<th>VAT</th><th>Net</th><th>VAT</th><th>Total</th></tr>{rows}</table>"
        f"<p>Net {e(doc['total_excl_vat']['text'])} · VAT {e(doc['total_vat']['text'])}</p>"
        f"<p><strong>Total {e(doc['total_incl_vat']['text'])}</strong> · charged "
        f"{e(doc['charged']['text'])}</p>{extra}</html>"
    )


def _latin1(text: str) -> str:
    # The core PDF fonts are Latin-1: replace what they cannot draw instead of failing.
    return text.replace("•", "*").encode("latin-1", "replace").decode("latin-1")


def render_pdf(doc: dict[str, Any]) -> bytes:
    pdf = FPDF(format="A4")
    pdf.set_title(f"Receipt {doc['receipt_id']}")
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 16)
    pdf.cell(0, 10, "Charging receipt", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=10)
    for label, value in (
        ("Receipt", doc["receipt_id"]),
        ("Issued", doc["issued_at"]),
        ("Station", doc["station_id"]),
        ("Started", doc["started_at"] or "-"),
        ("Ended", doc["ended_at"] or "-"),
        ("Energy", f"{doc['energy_wh'] / 1000:.3f} kWh"),
        ("Payment", doc["payment_method"]),
    ):
        pdf.cell(0, 6, _latin1(f"{label}: {value}"), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    with pdf.table(text_align=("LEFT", "RIGHT", "RIGHT", "RIGHT", "RIGHT", "RIGHT")) as table:
        table.row(["Item", "Quantity", "VAT %", "Net", "VAT", "Total"])
        for x in doc["lines"]:
            table.row(
                [
                    x["description"],
                    x["quantity"],
                    str(x["vat_percent"]),
                    x["amount_excl_vat"]["text"],
                    x["vat"]["text"],
                    x["amount_incl_vat"]["text"],
                ]
            )
    pdf.ln(4)
    pdf.set_font("Helvetica", "B", 11)
    pdf.cell(
        0, 7, f"Total incl. VAT: {doc['total_incl_vat']['text']}", new_x="LMARGIN", new_y="NEXT"
    )
    pdf.set_font("Helvetica", size=10)
    pdf.cell(
        0,
        6,
        f"Net {doc['total_excl_vat']['text']}, VAT {doc['total_vat']['text']}, "
        f"charged {doc['charged']['text']}",
        new_x="LMARGIN",
        new_y="NEXT",
    )
    if doc["outstanding_debt"]["amount_minor"]:
        pdf.cell(
            0, 6, f"Still owed: {doc['outstanding_debt']['text']}", new_x="LMARGIN", new_y="NEXT"
        )
    if doc["refunded"]["amount_minor"]:
        pdf.cell(0, 6, f"Refunded: {doc['refunded']['text']}", new_x="LMARGIN", new_y="NEXT")
    for note in doc.get("notes", []):
        pdf.multi_cell(0, 6, _latin1(note), new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())
