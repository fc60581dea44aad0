"""On real Kafka: every billing-relevant event delivered a second time changes no balance."""

from __future__ import annotations

import uuid

import pytest
from billing_kit import cost_for, priced, running, wrap
from billing_svc.seed import seed_demo
from plugpay_events.contracts.identity import UserRegistered
from plugpay_events.contracts.sessions import SessionFailed
from plugpay_events.types import utc_now
from plugpay_testing import eventually
from sqlalchemy import text

pytestmark = [pytest.mark.infra, pytest.mark.kafka]


async def test_replay_on_kafka_changes_no_balance(
    database_url: str, topic_prefix: str, kafka: str
) -> None:
    async with running(database_url, topic_prefix, kafka=kafka) as h:
        driver = uuid.uuid4()
        async with h.database.write() as session:
            await seed_demo(session, driver, uuid.uuid4())
        await h.publish(UserRegistered(user_id=driver, roles=("driver",), registered_at=utc_now()))
        billed, failed = priced(driver), priced(driver)
        await h.publish(billed, failed)
        await h.wait_for("SessionAuthorized", billed.session_id)
        await h.wait_for("SessionAuthorized", failed.session_id)
        await h.publish(cost_for(billed, 8_000))
        await h.publish(
            SessionFailed(session_id=failed.session_id, reason="fault", failed_at=utc_now())
        )
        await h.wait_for("SessionBilled", billed.session_id)
        await h.wait_for("SessionHoldReleased", failed.session_id)
        before = await h.balances()
        first = list(h.sent)
        await h.publish(*first, *[wrap(e.event()) for e in first])
        distinct = {e.event_id for e in h.sent}

        async def handled_all() -> bool:
            async with h.database.read() as session:
                n = await session.scalar(text("SELECT count(*) FROM inbox"))
            return int(n or 0) >= len(distinct)

        await eventually(handled_all, within=60, what="every replayed event handled")
        assert await h.balances() == before
        assert len(await h.emitted("SessionBilled")) == 1
        assert len(await h.emitted("SessionHoldReleased")) == 1
