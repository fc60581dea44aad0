"""Pure rules: back-off, who gets what, SMTP addresses, settings, templates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from notification_svc import domain
from notification_svc.settings import Settings
from notification_svc.smtp import SmtpConfigError, SmtpTarget
from notification_svc.templates import MailRenderer
from plugpay_events.sealed import DEVELOPMENT_KEY, SealError, open_sealed, seal
from plugpay_events.types import Money
from plugpay_platform.settings import PlatformSettings
from pydantic import SecretStr, ValidationError

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def test_back_off_doubles_up_to_the_cap_then_gives_up() -> None:
    delays = [domain.retry_delay(n, 2.0, 60.0).total_seconds() for n in range(1, 8)]
    assert delays == [2, 4, 8, 16, 32, 60, 60]
    assert domain.after_failure(3, 5, NOW, 2.0, 60.0) == ("queued", NOW + timedelta(seconds=8))
    assert domain.after_failure(5, 5, NOW, 2.0, 60.0) == ("failed", None)


def test_only_receipts_can_be_switched_off() -> None:
    quiet = domain.Contact("u", "q@example.com", receipts=False)
    assert not domain.wanted("receipt", quiet)
    assert domain.wanted("top_up_declined", quiet)
    assert domain.wanted("password_changed", quiet)
    # Unknown yet: nothing was switched off (the mail waits for the address).
    assert domain.wanted("receipt", None)
    assert domain.wanted("top_up_done", domain.Contact("u", None))


def test_money_formatting() -> None:
    assert domain.format_money(Money(amount_minor=1234, currency="EUR")) == "12.34 EUR"
    assert domain.format_money(Money(amount_minor=5, currency="EUR")) == "0.05 EUR"
    assert domain.format_money(Money(amount_minor=-250, currency="EUR")) == "-2.50 EUR"
    assert domain.format_money(Money(amount_minor=500, currency="JPY")) == "500 JPY"


def test_smtp_urls() -> None:
    plain = SmtpTarget.parse("smtp://mail.example.com")
    assert (plain.host, plain.port, plain.implicit_tls, plain.username) == (
        "mail.example.com",
        587,
        False,
        None,
    )
    tls = SmtpTarget.parse("smtps://us%40er:p%3Ass@mail.example.com")
    assert (tls.port, tls.implicit_tls, tls.username, tls.password) == (465, True, "us@er", "p:ss")
    assert "p:ss" not in repr(tls)
    for bad in ("http://x", "smtp://", "smtp://host:99999"):
        with pytest.raises(SmtpConfigError):
            SmtpTarget.parse(bad)


def test_production_refuses_to_start_without_smtp_or_link_key() -> None:
    production = PlatformSettings(
        environment="production", kafka_bootstrap="k:9092", mail_link_key=SecretStr("A" * 43)
    )
    with pytest.raises(ValidationError, match="PLUGPAY_SMTP_URL"):
        Settings(database_url=SecretStr("postgresql://x@/y"), platform=production)
    no_key = PlatformSettings(environment="production", kafka_bootstrap="k:9092")
    with pytest.raises(ValidationError, match="PLUGPAY_MAIL_LINK_KEY"):
        Settings(
            database_url=SecretStr("postgresql://x@/y"),
            smtp_url=SecretStr("smtps://u:p@mail.example.com"),
            platform=no_key,
        )
    Settings(
        database_url=SecretStr("postgresql://x@/y"),
        smtp_url=SecretStr("smtps://u:p@mail.example.com"),
        platform=production,
    )
    with pytest.raises(ValidationError):
        Settings(database_url=SecretStr("postgresql://x@/y"), smtp_url=SecretStr("ftp://x"))


def test_html_is_escaped_text_is_not() -> None:
    mail = MailRenderer().render(
        "group_invitation", group="<b>&crew</b>", link="https://x/#/i/c", expires="soon"
    )
    assert "<b>&crew</b>" in mail.text
    assert "&lt;b&gt;&amp;crew&lt;/b&gt;" in mail.html
    assert mail.subject == "You are invited to the group <b>&crew</b> on Plugpay"


def test_sealed_codes_open_only_in_their_context() -> None:
    sealed = seal(DEVELOPMENT_KEY, "code", "PasswordResetRequested:u1")
    assert open_sealed(DEVELOPMENT_KEY, sealed, "PasswordResetRequested:u1") == "code"
    with pytest.raises(SealError):
        open_sealed(DEVELOPMENT_KEY, sealed, "PasswordResetRequested:u2")
    with pytest.raises(SealError):
        open_sealed(bytes(32), sealed, "PasswordResetRequested:u1")
    with pytest.raises(SealError):
        open_sealed(DEVELOPMENT_KEY, "not-sealed", "x")
