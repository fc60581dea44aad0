"""auth-svc and notification-svc together, mail through the embedded default's SMTP server
(aiosmtpd, read back from its mailbox): register → mail → link → verified; reset → mail → new
password → every old refresh token refused, and a "password changed" mail."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import httpx
import pytest
from auth_svc.app import create_app as create_auth
from auth_svc.settings import Settings as AuthSettings
from fastapi import FastAPI
from notification_svc.app import create_app as create_notification
from notification_svc.settings import Settings as NotificationSettings
from plugpay_app.devmail import DevMail, DevSmtpServer, mailbox_app
from plugpay_platform.settings import PlatformSettings
from plugpay_testing import eventually, scratch_database
from pydantic import SecretStr

pytestmark = pytest.mark.infra

PASSWORD = "a-long-first-password-93"
NEW_PASSWORD = "another-long-password-17"


class Accounts:
    def __init__(self, client: httpx.AsyncClient, smtp: DevSmtpServer) -> None:
        self.client = client
        self.smtp = smtp

    async def mail(self, to: str, subject: str, count: int = 1) -> DevMail:
        def found() -> list[DevMail]:
            hits = [m for m in self.smtp.mailbox.mails if to in m.to and m.subject == subject]
            return hits if len(hits) >= count else []

        return (await eventually(found, what=f"{subject!r} to {to}"))[0]  # newest first

    async def token(self, email: str, password: str) -> httpx.Response:
        return await self.client.post("/auth/token", data={"username": email, "password": password})


def link_code(mail: DevMail, page: str) -> str:
    match = re.search(rf"http://plugpay\.test/app/#/{page}/([A-Za-z0-9_-]+)", mail.text)
    assert match, mail.text
    return match.group(1)


@pytest.fixture
async def accounts(
    database_url: str, postgres_url: str, topic_prefix: str
) -> AsyncIterator[Accounts]:
    platform = PlatformSettings(
        eventlog_database_url=database_url,
        topic_prefix=topic_prefix,
        kafka_bootstrap=None,
        public_base_url="http://plugpay.test",
        environment="test",
    )
    smtp = DevSmtpServer()
    async with AsyncExitStack() as stack:
        # notification-svc's own database beside auth-svc's; the event log lives in auth-svc's.
        notifications_url = await stack.enter_async_context(
            scratch_database(postgres_url, prefix="n_")
        )
        smtp_url = await smtp.start()
        stack.push_async_callback(smtp.stop)
        auth: FastAPI = create_auth(
            AuthSettings(database_url=SecretStr(database_url), platform=platform)
        )
        await stack.enter_async_context(auth.router.lifespan_context(auth))
        notification = create_notification(
            NotificationSettings(
                database_url=SecretStr(notifications_url),
                smtp_url=SecretStr(smtp_url),
                poll_interval_s=0.05,
                platform=platform,
            ),
            key_source=auth.state.key_source,
        )
        await stack.enter_async_context(notification.router.lifespan_context(notification))
        client = await stack.enter_async_context(
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=auth), base_url="http://plugpay.test"
            )
        )
        yield Accounts(client, smtp)


async def test_register_mail_link_verified(accounts: Accounts) -> None:
    email = "nina@example.com"
    registered = await accounts.client.post(
        "/auth/register", json={"email": email, "password": PASSWORD}
    )
    assert registered.status_code == 202, registered.text
    mail = await accounts.mail(email, "Confirm your e-mail address for Plugpay")
    code = link_code(mail, "verify")
    verified = await accounts.client.post("/auth/verify", json={"token": code})
    assert verified.status_code == 200, verified.text
    tokens = (await accounts.token(email, PASSWORD)).json()
    me = await accounts.client.get(
        "/auth/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert me.json()["email_verified"] is True
    again = await accounts.client.post("/auth/verify", json={"token": code})
    assert again.json()["reason"] == "verification_used"
    # The dev mailbox page shows the mail with its link clickable.
    page = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=mailbox_app(accounts.smtp.mailbox)), base_url="http://t"
    )
    async with page:
        html = (await page.get("/dev/mailbox")).text
    assert f'<a href="http://plugpay.test/app/#/verify/{code}">' in html


async def test_reset_mail_new_password_old_refresh_tokens_refused(accounts: Accounts) -> None:
    email = "otto@example.com"
    await accounts.client.post("/auth/register", json={"email": email, "password": PASSWORD})
    await accounts.mail(email, "Confirm your e-mail address for Plugpay")
    phone = (await accounts.token(email, PASSWORD)).json()
    laptop = (await accounts.token(email, PASSWORD)).json()

    nobody = await accounts.client.post(
        "/auth/password/reset/request", json={"email": "nobody@example.com"}
    )
    asked = await accounts.client.post("/auth/password/reset/request", json={"email": email})
    assert asked.status_code == nobody.status_code == 202
    assert asked.json() == nobody.json()  # the same answer either way
    code = link_code(await accounts.mail(email, "Reset your Plugpay password"), "reset")

    weak = await accounts.client.post(
        "/auth/password/reset", json={"token": code, "new_password": "password"}
    )
    assert weak.status_code in (400, 422) and weak.json()["reason"]
    done = await accounts.client.post(
        "/auth/password/reset", json={"token": code, "new_password": NEW_PASSWORD}
    )
    assert done.status_code == 200, done.text
    used = await accounts.client.post(
        "/auth/password/reset", json={"token": code, "new_password": NEW_PASSWORD + "x"}
    )
    assert (used.status_code, used.json()["reason"]) == (400, "reset_used")
    for device in (phone, laptop):
        refused = await accounts.client.post(
            "/auth/refresh", json={"refresh_token": device["refresh_token"]}
        )
        assert refused.status_code in (400, 401), refused.text
    assert (await accounts.token(email, PASSWORD)).status_code in (400, 401)
    assert (await accounts.token(email, NEW_PASSWORD)).status_code == 200
    notice = await accounts.mail(email, "Your Plugpay password was changed")
    assert "every device was signed out" in notice.text
    # Nobody else got anything.
    assert not [m for m in accounts.smtp.mailbox.mails if "nobody@example.com" in m.to]


async def test_reset_requests_are_throttled_alike_for_every_address(accounts: Accounts) -> None:
    answers = [
        (
            await accounts.client.post(
                "/auth/password/reset/request", json={"email": "ghost@example.com"}
            )
        ).status_code
        for _ in range(5)
    ]
    assert answers[:3] == [202, 202, 202]
    assert answers[3] == 429  # whether or not the address has an account
    bad = await accounts.client.post("/auth/password/reset/request", json={"email": "x"})
    assert bad.status_code == 422
