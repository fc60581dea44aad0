"""Metrics and traces of a service built with the platform, on a real PostgreSQL and Kafka.

A tiny service (``obs-demo``) answers a scan request by writing ``SessionCodeScanned`` to its
outbox; one consumer group turns it into ``SessionDenied`` (a transactional handler, like
pricing-svc), a second one handles that (like session-svc). The trace must run from the HTTP
request through both hops of the bus, and ``/metrics`` must show all of it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Request
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from plugpay_events import serde, tracing
from plugpay_events.bus.port import Delivery
from plugpay_events.contracts.sessions import SessionCodeScanned, SessionDenied
from plugpay_events.envelope import Envelope
from plugpay_events.outbox import Outbox, define_outbox_tables, transactional_handler
from plugpay_events.topics import SESSIONS
from plugpay_events.types import utc_now
from plugpay_platform.app import build_service_app
from plugpay_platform.logging import JsonFormatter, correlation_id
from plugpay_platform.observability import Observability
from plugpay_platform.runtime import ConsumerSpec, ServiceRuntime
from plugpay_platform.settings import PlatformSettings, ServiceSettings
from plugpay_testing import eventually
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import MetaData, func, select
from sqlalchemy.ext.asyncio import AsyncSession

NAME = "obs-demo"
PREFIX = "/demo"
SCAN_ROUTE = "/demo/sessions/{session_id}/scan"
TABLES = define_outbox_tables(MetaData())

ENV_PY = """
from plugpay_platform.migrations import run_env
from sqlalchemy import MetaData

run_env(MetaData())
"""

FIRST_MIGRATION = '''
"""outbox and inbox"""
from alembic import op
from plugpay_events.outbox import define_outbox_tables
from plugpay_platform.migrations import create_platform_tables
from sqlalchemy import MetaData

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    tables = define_outbox_tables(MetaData())
    create_platform_tables(op, tables.outbox, tables.inbox)


def downgrade() -> None:
    pass
'''


# --- the demo service -----------------------------------------------------------------------


@dataclass
class Seen:
    """What the second group handled, and a flag to fail its first attempt once."""

    denied: list[Delivery] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    fail_once: bool = True


def write_migrations(root: Path) -> Path:
    (root / "versions").mkdir(parents=True)
    (root / "env.py").write_text(ENV_PY)
    (root / "versions" / "0001_outbox.py").write_text(FIRST_MIGRATION)
    return root


def scan_router() -> APIRouter:
    router = APIRouter(prefix=PREFIX)

    @router.post("/sessions/{session_id}/scan", status_code=202)
    async def scan(session_id: uuid.UUID, request: Request) -> dict[str, str]:
        runtime: ServiceRuntime = request.app.state.runtime
        now = utc_now()
        event = SessionCodeScanned(
            session_id=session_id,
            station_id="ST-0001",
            connector_id=1,
            session_started_at=now,
            scanned_at=now,
            user_id=uuid.uuid4(),
            code_kind="qr",
        )
        async with runtime.database.write() as session:
            await Outbox(TABLES).add(session, [Envelope.wrap(event, producer=NAME)])
        return {"session_id": str(session_id)}

    return router


def demo_app(
    database_url: str, topic_prefix: str, migrations: Path, *, kafka: str | None = None
) -> tuple[FastAPI, ServiceRuntime, Seen]:
    settings = ServiceSettings(
        database_url=database_url,  # type: ignore[arg-type]
        platform=PlatformSettings(
            environment="test",
            topic_prefix=topic_prefix,
            kafka_bootstrap=kafka,
            eventlog_database_url=None,
        ),
    )
    runtime = ServiceRuntime(
        name=NAME, settings=settings, migrations=migrations, outbox_tables=TABLES
    )
    seen = Seen()
    obs = runtime.observability
    # Domain metrics the way a service registers them (names from docs/observability.md).
    denied_total = obs.counter(
        "plugpay_sessions_denied", "Sessions denied, by reason.", ("reason",)
    )
    open_holds = obs.gauge("plugpay_open_holds", "Holds not yet captured or released.")

    async def count_unpublished() -> None:
        # Stands in for billing's "SELECT count(*) FROM holds WHERE open" before each scrape.
        async with runtime.database.read() as session:
            value = await session.scalar(select(func.count()).select_from(TABLES.inbox))
        open_holds.set(float(value or 0))

    obs.sample(count_unpublished)

    async def price(session: AsyncSession, envelope: Envelope) -> list[Envelope] | None:
        event = envelope.event()
        if not isinstance(event, SessionCodeScanned):
            return None
        denied_total.labels("access_denied").inc()
        denial = SessionDenied(
            session_id=event.session_id,
            station_id=event.station_id,
            connector_id=event.connector_id,
            user_id=event.user_id,
            reason="access_denied",
            message="not for you",
            denied_by=NAME,
            denied_at=utc_now(),
        )
        return [Envelope.wrap(denial, producer=NAME, caused_by=envelope)]

    async def follow(delivery: Delivery) -> None:
        if delivery.envelope.type != "SessionDenied":
            return
        if seen.fail_once:
            seen.fail_once = False
            raise RuntimeError("first attempt fails, the retry succeeds")
        logging.getLogger("obs-demo").info("denied %s", delivery.envelope.aggregate_id)
        seen.denied.append(delivery)
        seen.arrived.set()

    sessions = runtime.database.sessions
    runtime.consume(
        ConsumerSpec(
            "obs-demo.pricing",
            [SESSIONS],
            transactional_handler(sessions, TABLES, "obs-demo.pricing", price),
        )
    )
    runtime.consume(ConsumerSpec("obs-demo.sessions", [SESSIONS], follow))
    app = build_service_app(runtime, [scan_router()], title="obs demo", prefix=PREFIX)
    return app, runtime, seen


@pytest.fixture
def spans() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def make_demo(
    database_url: str, topic_prefix: str, tmp_path: Path, spans: InMemorySpanExporter
) -> Callable[..., tuple[FastAPI, ServiceRuntime, Seen]]:
    migrations = write_migrations(tmp_path / "migrations")

    def make(kafka: str | None = None) -> tuple[FastAPI, ServiceRuntime, Seen]:
        app, runtime, seen = demo_app(database_url, topic_prefix, migrations, kafka=kafka)
        runtime.observability.add_span_processor(SimpleSpanProcessor(spans))
        return app, runtime, seen

    return make


@pytest.fixture
async def running(
    make_demo: Callable[..., tuple[FastAPI, ServiceRuntime, Seen]],
) -> AsyncIterator[Callable[..., Any]]:
    stack: list[Any] = []

    async def start(kafka: str | None = None) -> tuple[httpx.AsyncClient, ServiceRuntime, Seen]:
        app, runtime, seen = make_demo(kafka)
        lifespan = app.router.lifespan_context(app)
        await lifespan.__aenter__()
        stack.append(lifespan)
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://demo.test"
        )
        stack.append(client)
        return client, runtime, seen

    yield start
    for item in reversed(stack):
        await item.__aexit__(None, None, None)


# --- helpers --------------------------------------------------------------------------------


def samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    return [
        (s.name, dict(s.labels), float(s.value))
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]


def value(text: str, name: str, **labels: str) -> float | None:
    """The sum of samples named ``name`` whose labels include ``labels`` (None: no sample)."""
    found = [v for n, ls, v in samples(text) if n == name and labels.items() <= ls.items()]
    return sum(found) if found else None


async def scrape(client: httpx.AsyncClient) -> str:
    response = await client.get(f"{PREFIX}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


def consumer_span(spans: InMemorySpanExporter, group: str, event_type: str) -> ReadableSpan | None:
    for span in spans.get_finished_spans():
        attributes = span.attributes or {}
        if (
            span.kind is SpanKind.CONSUMER
            and attributes.get("messaging.consumer.group.name") == group
            and attributes.get("plugpay.event.type") == event_type
        ):
            return span
    return None


async def scan_and_follow(
    client: httpx.AsyncClient,
    seen: Seen,
    spans: InMemorySpanExporter,
    topic_prefix: str,
    timeout_s: float,
) -> tuple[uuid.UUID, ReadableSpan, ReadableSpan, ReadableSpan]:
    session_id = uuid.uuid4()
    response = await client.post(f"{PREFIX}/sessions/{session_id}/scan")
    assert response.status_code == 202, response.text
    await asyncio.wait_for(seen.arrived.wait(), timeout_s)
    pricing = await eventually(
        lambda: consumer_span(spans, f"{topic_prefix}obs-demo.pricing", "SessionCodeScanned"), 5
    )
    following = await eventually(
        lambda: consumer_span(spans, f"{topic_prefix}obs-demo.sessions", "SessionDenied"), 5
    )
    servers = [s for s in spans.get_finished_spans() if s.kind is SpanKind.SERVER]
    assert [s.name for s in servers] == [f"POST {SCAN_ROUTE}"]
    return session_id, servers[0], pricing, following


def assert_one_trace(server: ReadableSpan, pricing: ReadableSpan, following: ReadableSpan) -> None:
    assert server.context is not None and pricing.context is not None
    assert following.context is not None
    # request -> (outbox, relay, bus) -> pricing handler -> (outbox, relay, bus) -> next handler
    assert pricing.context.trace_id == server.context.trace_id
    assert pricing.parent is not None and pricing.parent.span_id == server.context.span_id
    assert pricing.parent.is_remote
    assert following.context.trace_id == server.context.trace_id
    assert following.parent is not None and following.parent.span_id == pricing.context.span_id


# --- on the embedded bus ----------------------------------------------------------------------


async def test_metrics_and_one_trace_across_the_embedded_bus(
    running: Callable[..., Any], spans: InMemorySpanExporter, topic_prefix: str
) -> None:
    client, runtime, seen = await running()
    session_id, server, pricing, following = await scan_and_follow(
        client, seen, spans, topic_prefix, timeout_s=30
    )
    assert_one_trace(server, pricing, following)
    assert following.attributes is not None
    assert following.attributes["messaging.message.id"] == str(seen.denied[0].envelope.event_id)
    # The envelope carried the pricing span as its parent.
    assert seen.denied[0].envelope.trace_parent == tracing.current_traceparent(_context_of(pricing))

    pricing_group = f"{topic_prefix}obs-demo.pricing"
    sessions_group = f"{topic_prefix}obs-demo.sessions"
    topic = runtime.bus.topic_name(SESSIONS)
    text = await eventually(lambda: _scrape_when_idle(client), 10)
    scan = {"method": "POST", "route": SCAN_ROUTE, "status": "202", "service": NAME}
    assert value(text, "plugpay_http_requests_total", **scan) == 1
    assert value(text, "plugpay_http_request_duration_seconds_count", **scan) == 1
    assert (
        value(
            text,
            "plugpay_events_handled_total",
            group=pricing_group,
            topic=topic,
            type="SessionCodeScanned",
        )
        == 1
    )
    assert (
        value(text, "plugpay_events_handled_total", group=sessions_group, type="SessionDenied") == 1
    )
    assert (
        value(
            text,
            "plugpay_event_handler_failures_total",
            group=sessions_group,
            type="SessionDenied",
            error="RuntimeError",
        )
        == 1
    )
    assert value(text, "plugpay_event_handling_seconds_count", group=pricing_group) == 2
    assert value(text, "plugpay_event_age_seconds_count", group=sessions_group) == 2
    assert value(text, "plugpay_outbox_published_total", service=NAME) == 2
    assert value(text, "plugpay_outbox_backlog", service=NAME) == 0
    assert value(text, "plugpay_consumer_lag", group=pricing_group) == 0
    assert value(text, "plugpay_consumer_lag", group=sessions_group) == 0
    assert value(text, "plugpay_sessions_denied_total", reason="access_denied") == 1
    assert value(text, "plugpay_open_holds", service=NAME) == 2  # two events in the inbox
    assert all(labels.get("service") == NAME for _, labels, _ in samples(text))

    # A record nobody can decode is dead-lettered by each group, and counted.
    await runtime.bus.publish_raw(topic, str(session_id).encode(), b"not an envelope", [])
    text = await eventually(
        lambda: _scraped_when(
            client,
            lambda t: value(t, "plugpay_events_dead_lettered_total", reason="undecodable") == 2,
        ),
        15,
    )
    assert value(text, "plugpay_events_dead_lettered_total", group=pricing_group) == 1

    # With the relay stopped, what the next request writes waits in the outbox, and shows.
    await runtime.relay.stop()
    response = await client.post(f"{PREFIX}/sessions/{uuid.uuid4()}/scan")
    assert response.status_code == 202
    text = await scrape(client)
    assert value(text, "plugpay_outbox_backlog") == 1
    assert value(text, "plugpay_http_requests_total", **scan) == 2
    # The metrics endpoint is counted under its route, but never traced.
    assert value(text, "plugpay_http_requests_total", route="/demo/metrics") is not None
    assert not [s for s in spans.get_finished_spans() if s.name.endswith("/metrics")]
    unknown = await client.get("/nowhere")
    assert unknown.status_code == 404
    text = await scrape(client)
    assert value(text, "plugpay_http_requests_total", route="<unmatched>", status="404") == 1


async def _scrape_when_idle(client: httpx.AsyncClient) -> str | None:
    # Offsets commit just after the handler returns; wait until both groups caught up.
    text = await scrape(client)
    lags = [v for n, _, v in samples(text) if n == "plugpay_consumer_lag"]
    return text if lags and not any(lags) else None


async def _scraped_when(client: httpx.AsyncClient, check: Callable[[str], bool]) -> str | None:
    text = await scrape(client)
    return text if check(text) else None


def _context_of(span: ReadableSpan) -> Any:
    from opentelemetry import trace

    assert span.context is not None
    return trace.set_span_in_context(trace.NonRecordingSpan(span.context))


# --- on Kafka -------------------------------------------------------------------------------


@pytest.mark.kafka
async def test_one_trace_across_kafka_with_traceparent_headers(
    running: Callable[..., Any], spans: InMemorySpanExporter, topic_prefix: str, kafka: str
) -> None:
    client, runtime, seen = await running(kafka)
    _, server, pricing, following = await scan_and_follow(
        client, seen, spans, topic_prefix, timeout_s=90
    )
    assert_one_trace(server, pricing, following)

    # On the wire: each record carries a W3C traceparent header equal to the envelope's field.
    records = await runtime.bus.read_topic(runtime.bus.topic_name(SESSIONS))
    assert len(records) == 2
    for record in records:
        headers = dict(record.headers)
        envelope = serde.decode(record.value)
        assert envelope.trace_parent is not None
        assert headers[tracing.TRACEPARENT_HEADER].decode() == envelope.trace_parent
    scanned = next(serde.decode(r.value) for r in records if b"SessionCodeScanned" in r.value)
    assert scanned.trace_parent is not None
    assert scanned.trace_parent.split("-")[1] == f"{server.context.trace_id:032x}"  # type: ignore[union-attr]

    text = await eventually(lambda: _scrape_when_idle(client), 30)
    assert value(text, "plugpay_events_handled_total", type="SessionDenied") == 2  # both groups
    assert value(text, "plugpay_events_handled_total", type="SessionCodeScanned") == 2
    lag = [ls for n, ls, _ in samples(text) if n == "plugpay_consumer_lag"]
    # Kafka reports lag for every assigned partition of both groups.
    assert {ls["group"] for ls in lag} == {
        f"{topic_prefix}obs-demo.pricing",
        f"{topic_prefix}obs-demo.sessions",
    }
    assert len(lag) == 2 * SESSIONS.partitions


# --- without infrastructure ---------------------------------------------------------------------


def test_each_service_has_its_own_registry() -> None:
    # Two services in one process register the same names without colliding.
    a, b = Observability("svc-a"), Observability("svc-b")
    for obs in (a, b):
        obs.counter("plugpay_sessions_authorized", "Sessions authorised.").inc()
    text_a, text_b = a.exposition().decode(), b.exposition().decode()
    assert value(text_a, "plugpay_sessions_authorized_total", service="svc-a") == 1
    assert value(text_a, "plugpay_sessions_authorized_total", service="svc-b") is None
    assert value(text_b, "plugpay_sessions_authorized_total", service="svc-b") == 1
    assert value(text_a, "process_cpu_seconds_total", service="svc-a") is not None


def test_asking_for_a_metric_twice_returns_it_and_a_clash_is_refused() -> None:
    obs = Observability("svc")
    first = obs.counter("plugpay_sessions_denied", "Denied.", ("reason",))
    assert obs.counter("plugpay_sessions_denied", "Denied.", ("reason",)) is first
    with pytest.raises(ValueError, match="another type or labels"):
        obs.gauge("plugpay_sessions_denied", "Denied.", ("reason",))
    with pytest.raises(ValueError, match="service label"):
        obs.counter("plugpay_other", "Other.", ("service",))


def test_outbox_stamps_the_current_trace_and_headers_carry_it() -> None:
    obs = Observability("svc")
    event = SessionCodeScanned(
        session_id=uuid.uuid4(),
        station_id="ST-1",
        connector_id=1,
        session_started_at=utc_now(),
        scanned_at=utc_now(),
        user_id=uuid.uuid4(),
        code_kind="typed",
    )
    plain = Envelope.wrap(event, producer="svc")
    assert tracing.stamp(plain) is plain  # no span, nothing to record
    assert not [k for k, _ in serde.headers_for(plain) if k == "traceparent"]
    with obs.tracer.start_as_current_span("request") as span:
        stamped = tracing.stamp(plain)
    ids = span.get_span_context()
    flags = int(ids.trace_flags)
    assert stamped.trace_parent == f"00-{ids.trace_id:032x}-{ids.span_id:016x}-{flags:02x}"
    assert tracing.stamp(stamped) is stamped  # never overwritten
    assert ("traceparent", stamped.trace_parent.encode()) in serde.headers_for(stamped)
    assert serde.decode(serde.encode(stamped)) == stamped
    # Header first, then the field; a broken value starts a new trace instead of failing.
    assert tracing.traceparent_of(stamped, [("traceparent", b"00-x")]) == "00-x"
    assert tracing.traceparent_of(stamped) == stamped.trace_parent
    assert tracing.parent_context("00-x") is None
    assert tracing.parent_context(stamped.trace_parent) is not None


def test_json_log_lines_carry_trace_and_correlation_ids() -> None:
    obs = Observability("svc")
    formatter = JsonFormatter("svc")
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "token=abc hello", None, None)
    assert "trace_id" not in json.loads(formatter.format(record))
    token = correlation_id.set("cid-1")
    try:
        with obs.tracer.start_as_current_span("work") as span:
            line = json.loads(formatter.format(record))
    finally:
        correlation_id.reset(token)
    ids = span.get_span_context()
    assert line["trace_id"] == f"{ids.trace_id:032x}"
    assert line["span_id"] == f"{ids.span_id:016x}"
    assert line["correlation_id"] == "cid-1"
    assert line["msg"] == "token=*** hello"
