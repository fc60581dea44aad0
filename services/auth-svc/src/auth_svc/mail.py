"""Mail that auth-svc hands over after the commit: verification links, which are credentials.

A link is never logged. ``NoMailer`` drops it; ``MailDirMailer`` writes each mail as an
``.eml`` file only its owner can read (development and test stacks, where nobody runs SMTP);
a real sender plugs in through ``create_app(mailer=)``.
"""

from __future__ import annotations

import logging
import os
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VerificationMail:
    """A verification link to deliver once the unit of work has committed."""

    user_id: uuid.UUID
    email: str
    link: str


class Mailer(Protocol):
    """Delivers verification links."""

    async def send_verification(self, mail: VerificationMail) -> None: ...


class NoMailer:
    """No mail sender configured: the link is dropped (and, above all, not logged)."""

    async def send_verification(self, mail: VerificationMail) -> None:
        log.info("no mail sender configured: verification mail for user %s not sent", mail.user_id)


class MailDirMailer:
    """Each mail as an RFC 5322 file in ``directory`` (mode 0600, the directory 0700)."""

    def __init__(self, directory: Path, sender: str = "Plugpay <no-reply@plugpay.invalid>") -> None:
        self.directory = directory
        self.sender = sender

    async def send_verification(self, mail: VerificationMail) -> None:
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = mail.email
        message["Subject"] = "Confirm your e-mail address for Plugpay"
        message.set_content(
            "Open this link to confirm your address (it works once, for a day):\n\n"
            f"{mail.link}\n\nIf you did not create a Plugpay account, ignore this mail.\n"
        )
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        path = self.directory / f"{stamp}-verification-{mail.user_id}.eml"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as file:
            file.write(message.as_bytes())
        log.info("verification mail for user %s written to %s", mail.user_id, self.directory)
