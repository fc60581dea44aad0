"""Mail auth-svc hands over after the commit: verification links and group invitations, both
credentials.

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


@dataclass(frozen=True)
class GroupInvitationMail:
    """An invitation to join an organisation's group, accepted by the driver while logged in."""

    user_id: uuid.UUID
    email: str
    group: str
    link: str


class Mailer(Protocol):
    """Delivers verification links and group invitations."""

    async def send_verification(self, mail: VerificationMail) -> None: ...

    async def send_group_invitation(self, mail: GroupInvitationMail) -> None: ...


class NoMailer:
    """No mail sender configured: the link is dropped (and, above all, not logged)."""

    async def send_verification(self, mail: VerificationMail) -> None:
        log.info("no mail sender configured: verification mail for user %s not sent", mail.user_id)

    async def send_group_invitation(self, mail: GroupInvitationMail) -> None:
        log.info("no mail sender configured: invitation for user %s not sent", mail.user_id)


class MailDirMailer:
    """Each mail as an RFC 5322 file in ``directory`` (mode 0600, the directory 0700)."""

    def __init__(self, directory: Path, sender: str = "Plugpay <no-reply@plugpay.invalid>") -> None:
        self.directory = directory
        self.sender = sender

    async def send_verification(self, mail: VerificationMail) -> None:
        await self._write(
            mail.user_id,
            mail.email,
            "verification",
            "Confirm your e-mail address for Plugpay",
            "Open this link to confirm your address (it works once, for a day):\n\n"
            f"{mail.link}\n\nIf you did not create a Plugpay account, ignore this mail.\n",
        )

    async def send_group_invitation(self, mail: GroupInvitationMail) -> None:
        await self._write(
            mail.user_id,
            mail.email,
            "invitation",
            f"You are invited to the group {mail.group} on Plugpay",
            f"Log in and open this link to join the group {mail.group} (it works once):\n\n"
            f"{mail.link}\n\nIf you do not want to join, ignore this mail.\n",
        )

    async def _write(self, user_id: uuid.UUID, to: str, kind: str, subject: str, body: str) -> None:
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = to
        message["Subject"] = subject
        message.set_content(body)
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        path = self.directory / f"{stamp}-{kind}-{user_id}.eml"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as file:
            file.write(message.as_bytes())
        log.info("%s mail for user %s written to %s", kind, user_id, self.directory)
