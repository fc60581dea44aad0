"""On a real Kafka broker: a notification-svc killed mid-stream and started again, and every
event delivered again, still sends each mail exactly once."""

from __future__ import annotations

import uuid

import pytest
from plugpay_events import Envelope
from plugpay_testing import eventually
from plugpay_testing.tokens import TokenFactory

from ..events import billed, registered, verification
from ..smtp_server import SmtpServer
from .conftest import build_app, publish, running
from .test_mail import handled, mail_rows

pytestmark = [pytest.mark.infra, pytest.mark.kafka]


async def test_killed_and_restarted_consumer_sends_each_mail_once(
    database_url: str, topic_prefix: str, tokens: TokenFactory, kafka: str, smtp: SmtpServer
) -> None:
    users = [uuid.uuid4() for _ in range(5)]
    first = build_app(database_url, topic_prefix, tokens, smtp.url, kafka=kafka)
    envelopes: list[Envelope] = []
    async with running(first):
        for i, user in enumerate(users):
            envelopes += await publish(
                first,
                registered(user, f"d{i}@example.com"),
                verification(user, f"d{i}@example.com", f"code-{i}-" + "x" * 30),
                billed(user),
            )
        # Stopped as soon as the first mail is out: the rest is mid-flight (queued, claimed,
        # or not yet consumed).
        await eventually(lambda: smtp.mailbox.received)
    # Everything is delivered again (a producer retry, a consumer that lost its offsets),
    # and the service starts again on the same database.
    second = build_app(database_url, topic_prefix, tokens, smtp.url, kafka=kafka)
    async with running(second):
        await publish(second, *envelopes)
        sentinel = uuid.uuid4()
        (last,) = await publish(second, verification(sentinel, "last@example.com", "z" * 40))
        expected = 2 * len(users) + 1  # a verification mail and a receipt each, and the sentinel
        try:
            await eventually(lambda: len(smtp.mailbox.received) >= expected, within=60)
        except AssertionError as error:
            rows = [(r["to_address"], r["kind"], r["state"]) for r in await mail_rows(second)]
            received = [m.to for m in smtp.mailbox.received]
            raise AssertionError(f"received {received}; queue {rows}") from error
        # Both consumers have seen the whole stream again (the sentinel came after it).
        await eventually(lambda: handled(second, "notification-svc.identity", last))
        await eventually(lambda: handled(second, "notification-svc.billing", envelopes[-1]))
        backlog = second.state.mail_sender
        await eventually(lambda: _drained(backlog))
    per_address = sorted(to for m in smtp.mailbox.received for to in m.to)
    assert per_address == sorted(
        [f"d{i}@example.com" for i in range(len(users))] * 2 + ["last@example.com"]
    )


async def _drained(sender: object) -> bool:
    from notification_svc.repository import NotificationRepository

    async with sender.database.read() as session:  # type: ignore[attr-defined]
        return await NotificationRepository(session).backlog() == 0
