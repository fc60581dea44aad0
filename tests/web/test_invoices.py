"""Invoices end to end on `plugpay run`: an operator fills in the organisation's invoicing
details in the portal; the next session's receipt is an invoice with that seller, a number
of the organisation's series and local times; the receipt mail carries it as a PDF (read back
from the development mailbox with pypdf)."""

from __future__ import annotations

import io
import re
import urllib.request
from typing import Any

import pytest
from playwright.sync_api import expect
from plugpay_testing import eventually_blocking
from pypdf import PdfReader
from web_support import DESKTOP, axe, charge_once


@pytest.fixture
def desk(browser: Any, plugpay: Any) -> Any:
    # bypass_csp: axe-core is injected as a script, as the portal's accessibility check does
    context = browser.new_context(base_url=plugpay.base_url, bypass_csp=True, **DESKTOP)
    context.set_default_timeout(15_000)
    page = context.new_page()
    yield page
    context.close()


def _pdf_text(data: bytes) -> str:
    text = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)
    return " ".join(text.split())


def test_invoicing_details_reach_the_invoice_and_its_pdf_in_the_receipt_mail(
    desk: Any, plugpay: Any, stations: Any
) -> None:
    desk.goto("/ops/#/login")
    desk.get_by_label("E-mail").fill("operator@example.com")
    desk.get_by_label("Password").fill("demo-password-1")
    desk.get_by_role("button", name="Log in").click()
    expect(desk.get_by_role("heading", name="Stations")).to_be_visible()
    desk.get_by_role("link", name="Invoicing").click()
    expect(desk.get_by_role("heading", name="Invoicing details")).to_be_visible()
    desk.get_by_label("Legal name").fill("Demo Charging GmbH")
    desk.get_by_label("Address").fill("Marktplatz 1, 10115 Berlin, Germany")
    desk.get_by_label("VAT id").fill("DE 123 456 789")
    desk.get_by_label("Invoice number prefix").fill("demo")
    desk.get_by_role("button", name="Save").click()
    expect(desk.locator("#invoicing-saved")).to_contain_text("DEMO-")
    expect(desk.get_by_label("VAT id")).to_have_value("DE123456789")
    bad = desk.get_by_label("VAT id")
    bad.fill("12")
    desk.get_by_role("button", name="Save").click()
    expect(desk.get_by_role("alert")).to_be_visible()
    desk.reload()
    expect(desk.get_by_label("VAT id")).to_have_value("DE123456789")  # the refused one not kept
    assert axe(desk) == []

    session_id = charge_once(plugpay, stations, "ST-0002", 1)
    token = plugpay.token("driver@example.com")
    status, doc = plugpay.request("GET", f"/billing/receipts/{session_id}", token=token)
    assert status == 200, doc
    number = doc["invoice_number"]
    assert re.fullmatch(r"DEMO-\d{4}-\d{6}", number), number
    assert doc["seller"] == {
        "legal_name": "Demo Charging GmbH",
        "address": "Marktplatz 1, 10115 Berlin, Germany",
        "vat_id": "DE123456789",
    }
    assert doc["buyer"]["email"] == "driver@example.com"
    assert doc["station"]["name"], doc["station"]  # learned from StationRegistered
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d \S+", doc["local_time"]["started"])

    def receipt_mail() -> dict[str, Any] | None:
        _, mails = plugpay.request("GET", "/dev/mailbox.json")
        for mail in mails:
            if "driver@example.com" in mail["to"] and number in mail["subject"]:
                return dict(mail)
        return None

    mail = eventually_blocking(receipt_mail, within=30, what=f"the mail of invoice {number}")
    [attachment] = mail["attachments"]
    assert attachment["filename"] == f"invoice-{number}.pdf"
    with urllib.request.urlopen(plugpay.base_url + attachment["url"], timeout=15) as res:
        text = _pdf_text(res.read())
    total = doc["total_incl_vat"]["text"]
    for expected in (f"Invoice {number}", "Demo Charging GmbH", "DE123456789", total):
        assert expected in text, (expected, text)
