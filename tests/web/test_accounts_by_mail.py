"""A new driver registers, verifies and resets the password with nothing but the browser: the
mail goes to the embedded default's SMTP server and is read at the dev mailbox page linked from
the home page (docs/notifications.md)."""

from __future__ import annotations

import uuid
from typing import Any

from playwright.sync_api import expect
from plugpay_testing import eventually_blocking

PASSWORD = "my-first-long-password-58"
NEW_PASSWORD = "my-second-long-password-91"


def open_newest_mail_link(page: Any, to: str, subject: str) -> None:
    """Home page → Development mailbox → the newest such mail → its link."""
    page.goto("/")
    page.get_by_role("link", name="Development mailbox").click()
    expect(page.get_by_role("heading", name="Development mailbox")).to_be_visible()
    mail = page.locator("article.mail", has_text=to).filter(has_text=subject).first

    def arrived() -> bool:
        # The mail is sent after the commit (outbox, event log, notification-svc, SMTP): a
        # person reloads the page until it is there, and so does the test.
        if mail.count():
            return True
        page.reload()
        return False

    eventually_blocking(arrived, within=30, what=f"{subject!r} to {to} in the mailbox")
    mail.locator("pre a").first.click()


def test_register_verify_through_the_dev_mailbox_then_reset_the_password(phone: Any) -> None:
    email = f"new-{uuid.uuid4().hex[:8]}@example.com"
    phone.goto("/app/#/register")
    phone.get_by_label("E-mail").fill(email)
    phone.get_by_label("Password").fill(PASSWORD)
    phone.get_by_role("button", name="Create account").click()
    expect(phone.get_by_role("status")).to_contain_text("Check your e-mail.")

    open_newest_mail_link(phone, email, "Confirm your e-mail address for Plugpay")
    expect(phone.get_by_role("status")).to_contain_text("Your address is confirmed.")
    # The code left the address bar (and the history) as soon as the page read it.
    assert phone.url.endswith("#/verify")
    phone.get_by_role("link", name="Log in").click()
    phone.get_by_label("E-mail").fill(email)
    phone.get_by_label("Password").fill(PASSWORD)
    phone.get_by_role("button", name="Log in").click()
    expect(phone.get_by_role("heading", name="Charge")).to_be_visible()

    # Forgot the password: a link by mail, a new password, every device signed out.
    phone.evaluate("localStorage.clear()")
    phone.goto("/app/#/login")
    phone.get_by_role("link", name="Forgot your password?").click()
    phone.get_by_label("E-mail").fill(email)
    phone.get_by_role("button", name="Send me a reset link").click()
    expect(phone.get_by_role("status")).to_contain_text("Check your e-mail.")
    open_newest_mail_link(phone, email, "Reset your Plugpay password")
    expect(phone.get_by_role("heading", name="Choose a new password")).to_be_visible()
    reset_page = phone.url
    phone.get_by_label("New password").fill(NEW_PASSWORD)
    phone.get_by_role("button", name="Set the new password").click()
    expect(phone.get_by_role("status")).to_contain_text("Your password was changed.")

    # The same link again says it was used and offers a new one.
    open_newest_mail_link(phone, email, "Reset your Plugpay password")
    phone.get_by_label("New password").fill(NEW_PASSWORD + "-again")
    phone.get_by_role("button", name="Set the new password").click()
    expect(phone.get_by_role("alert")).to_contain_text("already used")
    expect(phone.get_by_role("button", name="Send me a new link")).to_be_visible()
    assert reset_page.endswith("#/reset")

    open_newest_mail_link(phone, email, "Your Plugpay password was changed")  # the notice came
    phone.goto("/app/#/login")
    phone.get_by_label("E-mail").fill(email)
    phone.get_by_label("Password").fill(NEW_PASSWORD)
    phone.get_by_role("button", name="Log in").click()
    expect(phone.get_by_role("heading", name="Charge")).to_be_visible()
