"""Helpers of the operator portal's browser tests: a desktop page, logging in."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from web_support import DESKTOP


@contextlib.contextmanager
def desktop_page(browser: Any, plugpay: Any) -> Iterator[Any]:
    context = browser.new_context(base_url=plugpay.base_url, **DESKTOP)
    context.set_default_timeout(15_000)
    try:
        yield context.new_page()
    finally:
        context.close()


def submit_ops_login(page: Any, email: str, password: str = "demo-password-1") -> None:
    page.goto("/ops/#/login")
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()


def ops_login(page: Any, email: str, password: str = "demo-password-1") -> None:
    """Log an operator in, as far as the portal's first page."""
    from playwright.sync_api import expect

    submit_ops_login(page, email, password)
    expect(page.get_by_role("heading", name="Stations")).to_be_visible()
