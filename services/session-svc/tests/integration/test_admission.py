"""Admission control on the scan route against real PostgreSQL: beyond capacity a scan is refused
fast with 503 + Retry-After and nothing done; a phone that asks again after the wait gets its
session, and every session is scanned exactly once (none lost, none twice). While scans wait too
long for their authorisation (pricing and billing behind), new ones are refused until they have
their answers."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from plugpay_testing import eventually
from plugpay_testing.tokens import TokenFactory
from session_harness import (
    client_for,
    events_of_type,
    make_settings,
    publish,
    running,
    station_online,
    status_of,
    wait_status,
)
from session_stories import Story

pytestmark = pytest.mark.infra

SCANS = 16


async def offer_codes(app: FastAPI, key: dict[str, Any], n: int, prefix: str) -> list[Story]:
    """``n`` stations online, each showing a code session-svc has learned."""
    stories = []
    for i in range(n):
        station = f"{prefix}-{i}"
        await station_online(app, station)
        story = Story(station_id=station)
        await publish(app, story.issued(key))
        stories.append(story)
    for story in stories:
        await eventually(lambda s=story: status_of(app, s.session_id), what="code registered")
    return stories


@pytest.fixture
async def app(
    database_url: str, topic_prefix: str, signing_key: dict[str, Any], tokens: TokenFactory
) -> AsyncIterator[FastAPI]:
    settings = make_settings(database_url, topic_prefix, signing_key, scan_backlog_late=0)
    settings.platform = settings.platform.model_copy(
        update={
            "admission_max_in_flight": 4,
            "admission_max_queue": 0,  # no queue: the fifth concurrent scan is refused at once
            "admission_retry_after_s": 1,
            "admission_max_loop_lag_ms": 0,  # the in-flight bound alone, whatever the load
        }
    )
    async with running(settings, tokens) as app:
        yield app


async def test_a_burst_of_scans_is_partly_refused_fast_then_every_one_scanned_once(
    app: FastAPI, signing_key: dict[str, Any], tokens: TokenFactory
) -> None:
    stories = await offer_codes(app, signing_key, SCANS, "ST")

    refusals: list[tuple[float, str | None]] = []

    async def phone(client: httpx.AsyncClient, story: Story) -> uuid.UUID:
        headers = tokens.headers(user_id=story.user_id)
        while True:
            started = time.perf_counter()
            response = await client.post(
                "/sessions/scan", json={"code": story.token}, headers=headers
            )
            if response.status_code != 503:
                assert response.status_code == 202, response.text
                return uuid.UUID(response.json()["session_id"])
            refusals.append((time.perf_counter() - started, response.headers.get("retry-after")))
            assert response.json()["reason"] == "busy"
            await asyncio.sleep(float(response.headers["retry-after"]))  # as the app does

    async with client_for(app) as client:
        accepted = await asyncio.gather(*(phone(client, s) for s in stories))

    assert accepted == [s.session_id for s in stories]
    assert refusals, "16 concurrent scans over 4 slots: some must have been refused"
    assert all(after == "1" for _, after in refusals)
    assert max(took for took, _ in refusals) < 0.1  # refused within 100 ms
    assert app.state.admission.in_flight == 0
    for story in stories:
        await wait_status(app, story.session_id, "scanned")
    scanned = [
        uuid.UUID(e.aggregate_id)
        for e in await events_of_type(app, "plugpay.sessions", "SessionCodeScanned")
    ]
    assert sorted(scanned) == sorted(s.session_id for s in stories)  # none lost, none twice


@pytest.fixture
async def backlog_app(
    database_url: str, topic_prefix: str, signing_key: dict[str, Any], tokens: TokenFactory
) -> AsyncIterator[FastAPI]:
    settings = make_settings(
        database_url,
        topic_prefix,
        signing_key,
        scan_backlog_late=2,
        scan_backlog_after_s=0.3,
        scan_backlog_interval_s=0.05,
    )
    settings.platform = settings.platform.model_copy(update={"admission_max_loop_lag_ms": 0})
    async with running(settings, tokens) as app:
        yield app


async def test_scans_waiting_too_long_for_authorisation_refuse_new_ones_until_answered(
    backlog_app: FastAPI, signing_key: dict[str, Any], tokens: TokenFactory
) -> None:
    app = backlog_app
    *waiting, later = await offer_codes(app, signing_key, 3, "BL")
    async with client_for(app) as client:
        for story in waiting:  # accepted: nothing is behind yet
            headers = tokens.headers(user_id=story.user_id)
            response = await client.post(
                "/sessions/scan", json={"code": story.token}, headers=headers
            )
            assert response.status_code == 202, response.text
        # Pricing never answers them: once both waited 0.3 s the probe reports a backlog.
        await eventually(lambda: app.state.admission.backlogged, what="backlog seen")
        headers = tokens.headers(user_id=later.user_id)
        started = time.perf_counter()
        refused = await client.post("/sessions/scan", json={"code": later.token}, headers=headers)
        assert refused.status_code == 503 and refused.json()["reason"] == "busy"
        assert refused.headers["retry-after"] == "1"
        assert time.perf_counter() - started < 0.1
        assert await status_of(app, later.session_id) == "code_issued"  # nothing was done
        # Their answers arrive (one authorised, one denied): the backlog clears.
        first, second = waiting
        await publish(app, first.scanned(), first.priced(), first.authorised())
        await publish(app, second.scanned(), second.priced(), second.denied())
        await wait_status(app, first.session_id, "authorised")
        await wait_status(app, second.session_id, "denied")
        await eventually(lambda: not app.state.admission.backlogged, what="backlog cleared")
        accepted = await client.post("/sessions/scan", json={"code": later.token}, headers=headers)
        assert accepted.status_code == 202, accepted.text
