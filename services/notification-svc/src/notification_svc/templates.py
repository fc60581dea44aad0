"""Mail bodies from jinja2 templates (``templates/<kind>.txt.j2`` and ``.html.j2``): text for
every client, HTML (autoescaped) for those that show it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jinja2

from notification_svc.domain import MailKind

SUBJECTS: dict[MailKind, str] = {
    "verify_email": "Confirm your e-mail address for Plugpay",
    "password_reset": "Reset your Plugpay password",
    "password_changed": "Your Plugpay password was changed",
    "group_invitation": "You are invited to the group {group} on Plugpay",
    "receipt": "Your Plugpay invoice {invoice_number}: {amount}",
    "top_up_done": "Your Plugpay wallet was topped up: {amount}",
    "top_up_declined": "Your Plugpay top-up of {amount} was declined",
    "refund_issued": "Plugpay refunded {amount}: credit note {credit_note_number}",
    "session_held": "Your charging session at {station_id} is held for review",
    "session_reviewed": "Your charging session at {station_id} was reviewed: {outcome}",
    "card_expiring": "Your card {card} expires: {expiry}",
}


@dataclass(frozen=True)
class RenderedMail:
    subject: str
    text: str
    html: str


class MailRenderer:
    """Renders a mail of one kind from its context."""

    def __init__(self) -> None:
        # HTML templates are autoescaped; plain text is not HTML (escaping would show "&amp;").
        self._env = jinja2.Environment(
            loader=jinja2.PackageLoader("notification_svc", "templates"),
            autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",)),
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
        )

    def render(self, kind: MailKind, **context: Any) -> RenderedMail:
        subject = SUBJECTS[kind].format(**context)
        return RenderedMail(
            subject=subject,
            text=self._env.get_template(f"{kind}.txt.j2").render(subject=subject, **context),
            html=self._env.get_template(f"{kind}.html.j2").render(subject=subject, **context),
        )
