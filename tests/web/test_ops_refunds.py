"""Refunds in the operator portal: a refused attempt's retry works without a reload (a new
Idempotency-Key per attempt), what is left is pre-filled, messages speak money, and the page
says where the money went and lists each refund's reason."""

from __future__ import annotations

import re
from typing import Any

import pytest
from ops_support import desktop_page, ops_login
from playwright.sync_api import expect
from web_support import charge_once, shot


@pytest.fixture
def desk(browser: Any, plugpay: Any) -> Any:
    with desktop_page(browser, plugpay) as page:
        yield page


def euros(minor: int) -> str:
    return f"€{minor // 100}.{minor % 100:02d}"


def test_refund_retry_remaining_amount_and_destination(
    desk: Any, plugpay: Any, stations: Any
) -> None:
    session_id = charge_once(plugpay, stations, "ST-0001", 1)
    driver = plugpay.token("driver@example.com")
    charged = plugpay.request("GET", f"/billing/receipts/{session_id}", token=driver)[1]["charged"]
    total = charged["amount_minor"]
    assert total >= 100, charged  # the demo tariff's session fee alone is 1.00 EUR

    ops_login(desk, "operator@example.com")
    desk.goto(f"/ops/#/refund/{session_id}")
    amount = desk.get_by_label(re.compile("Amount"))
    expect(amount).to_have_value(f"{total / 100:.2f}")
    expect(desk.get_by_label(re.compile("Reason"))).to_be_visible()
    expect(desk.locator("label", has_text="Reason")).to_contain_text("on the receipt")

    keys: list[str] = []
    desk.on(
        "request",
        lambda r: (
            keys.append(r.headers["idempotency-key"])
            if r.method == "POST" and r.url.endswith("/billing/operator/refunds")
            else None
        ),
    )
    # The first attempt gets no answer (the connection drops): the same refund is sent again
    # with the same key, so it can never be made twice.
    lost = {"left": 1}

    def drop_once(route: Any) -> None:
        if lost["left"] and route.request.method == "POST":
            lost["left"] -= 1
            route.abort()
        else:
            route.continue_()

    desk.route("**/billing/operator/refunds", drop_once)
    first = total // 4
    amount.fill(f"{first / 100:.2f}")
    desk.get_by_label(re.compile("Reason")).fill("connector cable was faulty")
    desk.get_by_role("button", name="Refund").click()
    expect(desk.get_by_role("alert")).to_contain_text("offline")
    expect(amount).to_have_value(f"{first / 100:.2f}")
    desk.get_by_role("button", name="Refund").click()
    # The demo driver pays from the wallet: the message says so (not "card").
    expect(desk.locator("#refunded")).to_have_text(
        f"Refunded {euros(first)} to the driver's Plugpay wallet."
    )
    expect(amount).to_have_value(f"{(total - first) / 100:.2f}")
    expect(desk.locator("#refund-list")).to_contain_text("connector cable was faulty")
    expect(desk.locator("#refundable")).to_have_text(euros(total - first))

    # Another operator refunds one cent meanwhile: this page's pre-filled amount is now too much.
    code, body = plugpay.request(
        "POST",
        "/billing/operator/refunds",
        token=plugpay.token("operator@example.com"),
        json_body={
            "session_id": session_id,
            "amount": {"amount_minor": 1, "currency": charged["currency"]},
            "reason": "goodwill from the phone line",
        },
        headers={"Idempotency-Key": f"other-desk-{session_id}"},
    )
    assert code == 201, body
    left = total - first - 1
    desk.get_by_label(re.compile("Reason")).fill("rest of the session, charger fault")
    desk.get_by_role("button", name="Refund").click()
    refused = desk.get_by_role("alert")
    expect(refused).to_contain_text(f"at most {left // 100}.{left % 100:02d} EUR")
    expect(refused).not_to_contain_text("minor units")
    # The page learnt what is left; the retry, without a reload, is a new request and succeeds.
    expect(amount).to_have_value(f"{left / 100:.2f}")
    desk.get_by_role("button", name="Refund").click()
    expect(desk.locator("#refunded")).to_have_text(
        f"Refunded {euros(left)} to the driver's Plugpay wallet."
    )
    expect(desk.locator("#nothing-left")).to_be_visible()
    # The lost attempt and its repeat share a key; every answered attempt had its own.
    assert len(keys) == 4 and keys[0] == keys[1], keys
    assert len(set(keys[1:])) == 3, keys
    expect(desk.locator("#refund-list li")).to_have_count(3)
    shot(desk, "ops-refund")
    receipt = plugpay.request("GET", f"/billing/receipts/{session_id}", token=driver)[1]
    assert receipt["refunded"]["amount_minor"] == total
    listed = plugpay.request(
        "GET",
        f"/billing/operator/refunds?session_id={session_id}",
        token=plugpay.token("operator@example.com"),
    )[1]
    assert [r["reason"] for r in listed["refunds"]] == [
        "connector cable was faulty",
        "goodwill from the phone line",
        "rest of the session, charger fault",
    ]
