"""Metrics and traces for one service: a Prometheus registry and a tracer of its own.

Several services run in one process in the embedded mode, so nothing here is global: each
``ServiceRuntime`` owns one ``Observability`` (its ``CollectorRegistry`` and its OpenTelemetry
``TracerProvider``), every sample carries a ``service`` label, and every span the service's
``service.name``. ``build_service_app`` serves the registry at ``{prefix}/metrics`` and wraps
requests in server spans; the runtime wraps consumer handlers in consumer spans continued from
the event's ``traceparent`` (``plugpay_events.tracing``). Names are listed in
``docs/observability.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from fastapi import FastAPI, Request, Response
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from plugpay_events import tracing
from plugpay_events.bus.port import (
    BatchHandler,
    Consumer,
    Delivery,
    Handler,
    PoisonEvent,
    RawRecord,
)
from plugpay_events.outbox import OutboxRelay
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from plugpay_platform.logging import correlation_id

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import SpanProcessor

log = logging.getLogger(__name__)

M = TypeVar("M", bound=MetricWrapperBase)

# Request latency: sub-millisecond health checks up to slow scans behind a cold cache.
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Handling is one transaction; its age (occurred_at to handled) spans the whole relay hop.
HANDLING_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
AGE_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0)

# Probes and scrapes would drown the traces; they still count in the request metrics.
_UNTRACED_SUFFIXES = ("/healthz", "/readyz", "/metrics")
_UNMATCHED_ROUTE = "<unmatched>"
_SAMPLE_TIMEOUT_S = 2.0

_propagator = TraceContextTextMapPropagator()


class ServiceRegistry(CollectorRegistry):
    """A registry whose every sample carries ``service=<name>``, whoever registered the metric."""

    def __init__(self, service: str) -> None:
        super().__init__(auto_describe=True)
        self.service = service

    def collect(self) -> Iterable[Any]:
        for metric in super().collect():
            metric.samples = [
                s._replace(labels={"service": self.service, **s.labels}) for s in metric.samples
            ]
            yield metric


def build_tracer_provider(service: str) -> trace.TracerProvider:
    """A tracer provider for one service; exports over OTLP/HTTP only when an endpoint is set.

    The standard ``OTEL_*`` variables apply (``OTEL_EXPORTER_OTLP_ENDPOINT``,
    ``OTEL_TRACES_SAMPLER``/``_ARG``, ``OTEL_RESOURCE_ATTRIBUTES``); ``service.name`` is always
    the service's own name, so the embedded process still shows five services.
    """
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ModuleNotFoundError:  # an environment synced before the SDK was a dependency
        log.warning("opentelemetry-sdk is not installed: %s records no spans", service)
        return trace.NoOpTracerProvider()
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
    ):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider


class _RelayCollector(Collector):
    """``plugpay_outbox_published_total`` straight from the relay's own count."""

    def __init__(self, relays: list[OutboxRelay]) -> None:
        self.relays = relays

    def collect(self) -> Iterable[CounterMetricFamily]:
        family = CounterMetricFamily(
            "plugpay_outbox_published", "Events the outbox relay has published to the bus."
        )
        family.add_metric([], float(sum(r.published_total for r in self.relays)))
        yield family


class Observability:
    """One service's metrics registry, tracer, and the platform's own metrics."""

    def __init__(
        self, service: str, *, tracer_provider: trace.TracerProvider | None = None
    ) -> None:
        self.service = service
        self.registry = ServiceRegistry(service)
        self.tracer_provider = tracer_provider or build_tracer_provider(service)
        self.tracer = self.tracer_provider.get_tracer("plugpay_platform")
        self._metrics: dict[str, MetricWrapperBase] = {}
        self._samplers: list[Callable[[], Awaitable[None]]] = []
        self._relays: list[OutboxRelay] = []
        self._consumers: list[tuple[str, Consumer]] = []
        self._handled_up_to: dict[tuple[str, str, int], int] = {}
        self._lag_series: set[tuple[str, str, str]] = set()
        ProcessCollector(registry=self.registry)
        self.registry.register(_RelayCollector(self._relays))

        self.http_requests = self.counter(
            "plugpay_http_requests",
            "HTTP requests answered, by route template, method and status.",
            ("method", "route", "status"),
        )
        self.http_duration = self.histogram(
            "plugpay_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template, method and status.",
            ("method", "route", "status"),
            buckets=HTTP_BUCKETS,
        )
        self.http_in_flight = self.gauge(
            "plugpay_http_requests_in_flight", "HTTP requests being answered now."
        )
        self.events_handled = self.counter(
            "plugpay_events_handled",
            "Events a consumer group handled (its transaction committed).",
            ("group", "topic", "type"),
        )
        self.handler_failures = self.counter(
            "plugpay_event_handler_failures",
            "Handler attempts that raised (each retry counts), by exception class.",
            ("group", "topic", "type", "error"),
        )
        self.dead_lettered = self.counter(
            "plugpay_events_dead_lettered",
            "Records parked on the dead-letter topic: undecodable, rejected or handler_failed.",
            ("group", "topic", "reason"),
        )
        self.handling_duration = self.histogram(
            "plugpay_event_handling_seconds",
            "Time one handler attempt took, by group, topic and event type.",
            ("group", "topic", "type"),
            buckets=HANDLING_BUCKETS,
        )
        self.event_age = self.histogram(
            "plugpay_event_age_seconds",
            "Time from an event's occurred_at to the end of its handling (relay + lag + work).",
            ("group", "topic"),
            buckets=AGE_BUCKETS,
        )
        self.consumer_lag = self.gauge(
            "plugpay_consumer_lag",
            "Records not yet handled per assigned partition (end offset - next to handle).",
            ("group", "topic", "partition"),
        )
        self.outbox_backlog = self.gauge(
            "plugpay_outbox_backlog", "Events in the outbox not yet published to the bus."
        )

    # --- the API services use for their own (domain) metrics ---------------------------------

    def counter(self, name: str, documentation: str, labels: Sequence[str] = ()) -> Counter:
        """A counter in this service's registry (``_total`` is appended on exposition)."""
        return self._metric(Counter, name, documentation, labels)

    def gauge(self, name: str, documentation: str, labels: Sequence[str] = ()) -> Gauge:
        """A gauge in this service's registry; see ``sample`` to set it from the database."""
        return self._metric(Gauge, name, documentation, labels)

    def histogram(
        self,
        name: str,
        documentation: str,
        labels: Sequence[str] = (),
        *,
        buckets: Sequence[float] = Histogram.DEFAULT_BUCKETS,
    ) -> Histogram:
        """A histogram in this service's registry."""
        return self._metric(Histogram, name, documentation, labels, buckets=tuple(buckets))

    def sample(self, sampler: Callable[[], Awaitable[None]]) -> None:
        """Run ``sampler`` before each scrape (e.g. set ``plugpay_open_holds`` from a count)."""
        self._samplers.append(sampler)

    def _metric(
        self,
        kind: type[M],
        name: str,
        documentation: str,
        labels: Sequence[str],
        **options: Any,
    ) -> M:
        # Asking twice for the same metric returns it; asking with another shape is a bug.
        existing = self._metrics.get(name)
        if existing is not None:
            if not isinstance(existing, kind) or tuple(existing._labelnames) != tuple(labels):
                raise ValueError(f"metric {name} already registered with another type or labels")
            return existing
        if "service" in labels:
            raise ValueError("the service label is added by the registry")
        metric = kind(name, documentation, tuple(labels), registry=self.registry, **options)
        self._metrics[name] = metric
        return metric

    # --- traces -------------------------------------------------------------------------------

    def add_span_processor(self, processor: SpanProcessor) -> None:
        """Send this service's spans to one more processor (tests: an in-memory exporter)."""
        from opentelemetry.sdk.trace import TracerProvider

        if not isinstance(self.tracer_provider, TracerProvider):
            raise RuntimeError("spans are not recorded: opentelemetry-sdk is not installed")
        self.tracer_provider.add_span_processor(processor)

    def flush(self) -> None:
        """Export the spans still buffered (on shutdown)."""
        force_flush = getattr(self.tracer_provider, "force_flush", None)
        if callable(force_flush):
            force_flush()

    # --- what the runtime hands over -----------------------------------------------------------

    def watch_relay(self, relay: OutboxRelay) -> None:
        """Report this relay's backlog and published count."""
        self._relays.append(relay)

    def watch_consumer(self, group: str, consumer: Consumer) -> None:
        """Report this consumer's lag per assigned partition."""
        self._consumers.append((group, consumer))

    def forget_consumers(self) -> None:
        """The runtime stopped its consumers: drop them and their lag series."""
        self._consumers.clear()
        for labels in self._lag_series:
            with contextlib.suppress(KeyError):
                self.consumer_lag.remove(*labels)
        self._lag_series.clear()

    def observe_handler(self, group: str, handler: Handler) -> ObservedHandler:
        """Wrap a consumer handler with its span, metrics and correlation id."""
        return ObservedHandler(self, group, handler)

    def observe_batch_handler(self, group: str, handler: BatchHandler) -> ObservedBatchHandler:
        """Wrap a consumer's batch handler with its span and per-event metrics."""
        return ObservedBatchHandler(self, group, handler)

    # --- scraping -----------------------------------------------------------------------------

    async def refresh(self) -> None:
        """Sample what cannot be counted as it happens: backlog, lag, services' samplers."""
        jobs: list[Awaitable[None]] = [self._sample_backlog(), self._sample_lag()]
        jobs += [sampler() for sampler in self._samplers]
        results = await asyncio.gather(
            *(asyncio.wait_for(job, _SAMPLE_TIMEOUT_S) for job in jobs), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                log.warning("metrics sampler failed: %s: %s", type(result).__name__, result)

    def exposition(self) -> bytes:
        """The registry in the Prometheus text format."""
        return generate_latest(self.registry)

    async def _sample_backlog(self) -> None:
        if self._relays:
            self.outbox_backlog.set(sum([await relay.backlog() for relay in self._relays]))

    async def _sample_lag(self) -> None:
        seen: set[tuple[str, str, str]] = set()
        for group, consumer in list(self._consumers):
            for (topic, partition), lag in (await self._lag_of(group, consumer)).items():
                labels = (group, topic, str(partition))
                self.consumer_lag.labels(*labels).set(max(lag, 0))
                seen.add(labels)
        for labels in self._lag_series - seen:  # partitions that moved to another member
            with contextlib.suppress(KeyError):
                self.consumer_lag.remove(*labels)
        self._lag_series = seen

    async def _lag_of(self, group: str, consumer: Consumer) -> dict[tuple[str, int], int]:
        from plugpay_events.bus.embedded import EmbeddedConsumer
        from plugpay_events.bus.kafka import KafkaConsumer

        if isinstance(consumer, EmbeddedConsumer):
            # Offsets are committed after each record here, so head - committed is exact.
            owned = set(consumer.owned)
            if not owned:
                return {}
            rows = await consumer.bus.pool.fetch(
                "SELECT h.topic, h.partition, h.next_offset - COALESCE(o.next_offset, 0) AS lag"
                " FROM eventlog.partition_heads h LEFT JOIN eventlog.group_offsets o"
                " ON o.group_id = $1 AND o.topic = h.topic AND o.partition = h.partition"
                " WHERE h.topic = ANY($2::text[])",
                consumer.group,
                sorted({topic for topic, _ in owned}),
            )
            return {
                (r["topic"], r["partition"]): int(r["lag"])
                for r in rows
                if (r["topic"], r["partition"]) in owned
            }
        if isinstance(consumer, KafkaConsumer):
            # The adapter keeps its aiokafka client private; reading it is the only way to see
            # this member's assignment without a second group client.
            client = consumer._consumer
            if client is None:
                return {}
            assigned = list(client.assignment())
            if not assigned:
                return {}
            ends = await client.end_offsets(assigned)
            lags: dict[tuple[str, int], int] = {}
            for tp in assigned:
                handled = self._handled_up_to.get((group, tp.topic, tp.partition))
                if handled is None:
                    handled = await client.committed(tp) or 0
                lags[(tp.topic, tp.partition)] = int(ends[tp]) - handled
            return lags
        return {}


class ObservedHandler:
    """A consumer handler in a CONSUMER span continued from the event's trace, with metrics.

    Also a ``DeadLetterObserver``: ``deliver`` tells it when one of its records is parked.
    """

    def __init__(self, observability: Observability, group: str, handler: Handler) -> None:
        self.observability = observability
        self.group = group
        self.handler = handler

    async def __call__(self, delivery: Delivery) -> None:
        obs = self.observability
        envelope = delivery.envelope
        parent = tracing.parent_context(tracing.traceparent_of(envelope, delivery.headers))
        labels = (self.group, delivery.topic, envelope.type)
        token = correlation_id.set(str(envelope.correlation_id))
        started = time.perf_counter()
        try:
            with obs.tracer.start_as_current_span(
                f"process {envelope.type}",
                context=parent,
                kind=SpanKind.CONSUMER,
                record_exception=False,
                set_status_on_exception=False,
                attributes={
                    "messaging.operation.type": "process",
                    "messaging.destination.name": delivery.topic,
                    "messaging.consumer.group.name": self.group,
                    "messaging.destination.partition.id": str(delivery.partition),
                    "messaging.kafka.offset": delivery.offset,
                    "messaging.message.id": str(envelope.event_id),
                    "messaging.kafka.message.key": envelope.aggregate_id,
                    "plugpay.event.type": envelope.type,
                    "plugpay.correlation_id": str(envelope.correlation_id),
                },
            ) as span:
                try:
                    await self.handler(delivery)
                except PoisonEvent as poison:
                    span.set_status(Status(StatusCode.ERROR, f"rejected: {poison.reason}"))
                    self._handled(delivery)
                    raise
                except Exception as error:
                    span.record_exception(error)
                    span.set_status(Status(StatusCode.ERROR, type(error).__name__))
                    obs.handler_failures.labels(*labels, type(error).__name__).inc()
                    raise
                obs.events_handled.labels(*labels).inc()
                self._handled(delivery)
        finally:
            correlation_id.reset(token)
            obs.handling_duration.labels(*labels).observe(time.perf_counter() - started)

    def _handled(self, delivery: Delivery) -> None:
        key = (self.group, delivery.topic, delivery.partition)
        self.observability._handled_up_to[key] = delivery.offset + 1
        age = (datetime.now(UTC) - delivery.envelope.occurred_at).total_seconds()
        self.observability.event_age.labels(self.group, delivery.topic).observe(max(age, 0.0))

    def dead_lettered(self, group: str, record: RawRecord, reason: str) -> None:
        """Called by ``deliver`` once the record is on the dead-letter topic."""
        self.observability.dead_lettered.labels(self.group, record.topic, reason).inc()
        key = (self.group, record.topic, record.partition)
        self.observability._handled_up_to[key] = record.offset + 1


class ObservedBatchHandler:
    """A batch handler in one CONSUMER span; its events count as handled once it returned.

    A failed batch is counted once (type ``batch``); its records then go through the
    one-by-one handler, which observes each of them itself.
    """

    def __init__(self, observability: Observability, group: str, handler: BatchHandler) -> None:
        self.observability = observability
        self.group = group
        self.handler = handler

    async def __call__(self, deliveries: Sequence[Delivery]) -> None:
        if not deliveries:
            return
        obs = self.observability
        first = deliveries[0]
        started = time.perf_counter()
        with obs.tracer.start_as_current_span(
            f"process batch {first.topic}",
            kind=SpanKind.CONSUMER,
            record_exception=False,
            set_status_on_exception=False,
            attributes={
                "messaging.operation.type": "process",
                "messaging.destination.name": first.topic,
                "messaging.consumer.group.name": self.group,
                "messaging.destination.partition.id": str(first.partition),
                "messaging.kafka.offset": first.offset,
                "messaging.batch.message_count": len(deliveries),
            },
        ) as span:
            try:
                await self.handler(deliveries)
            except Exception as error:
                span.record_exception(error)
                span.set_status(Status(StatusCode.ERROR, type(error).__name__))
                obs.handler_failures.labels(
                    self.group, first.topic, "batch", type(error).__name__
                ).inc()
                raise
        # One attempt's time, shared by its events, so the histogram keeps per-event meaning.
        share = (time.perf_counter() - started) / len(deliveries)
        now = datetime.now(UTC)
        for delivery in deliveries:
            labels = (self.group, delivery.topic, delivery.envelope.type)
            obs.events_handled.labels(*labels).inc()
            obs.handling_duration.labels(*labels).observe(share)
            age = (now - delivery.envelope.occurred_at).total_seconds()
            obs.event_age.labels(self.group, delivery.topic).observe(max(age, 0.0))
        last = deliveries[-1]
        obs._handled_up_to[(self.group, last.topic, last.partition)] = last.offset + 1


def _route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    return str(path) if path else _UNMATCHED_ROUTE


class HttpObservabilityMiddleware:
    """Server span and request metrics per HTTP request, labelled by the route template.

    Pure ASGI (no response buffering); WebSocket and lifespan scopes pass through untouched.
    """

    def __init__(self, app: ASGIApp, observability: Observability) -> None:
        self.app = app
        self.observability = observability

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        obs = self.observability
        method = str(scope["method"])
        status = 500
        response_cid: str | None = None

        async def observe_send(message: Message) -> None:
            nonlocal status, response_cid
            if message["type"] == "http.response.start":
                status = int(message["status"])
                for key, value in message.get("headers", ()):
                    if key.lower() == b"x-correlation-id":
                        response_cid = value.decode("latin-1")
            await send(message)

        traced = not str(scope.get("path", "")).endswith(_UNTRACED_SUFFIXES)
        carrier = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", ())}
        span_cm = (
            obs.tracer.start_as_current_span(
                method,
                context=_propagator.extract(carrier),
                kind=SpanKind.SERVER,
                record_exception=False,
                set_status_on_exception=False,
                attributes={
                    "http.request.method": method,
                    "url.path": str(scope.get("path", "")),
                    "url.scheme": str(scope.get("scheme", "http")),
                },
            )
            if traced
            else contextlib.nullcontext(None)
        )
        obs.http_in_flight.inc()
        started = time.perf_counter()
        with span_cm as span:
            try:
                await self.app(scope, receive, observe_send)
            except Exception as error:
                status = 500
                if span is not None:
                    span.record_exception(error)
                raise
            finally:
                elapsed = time.perf_counter() - started
                obs.http_in_flight.dec()
                route = _route_template(scope)
                labels = (method, route, str(status))
                obs.http_requests.labels(*labels).inc()
                obs.http_duration.labels(*labels).observe(elapsed)
                if span is not None:
                    span.update_name(f"{method} {route}")
                    span.set_attribute("http.route", route)
                    span.set_attribute("http.response.status_code", status)
                    if response_cid:
                        span.set_attribute("plugpay.correlation_id", response_cid)
                    if status >= 500:
                        span.set_status(Status(StatusCode.ERROR, f"HTTP {status}"))


def install_observability(app: FastAPI, observability: Observability, *, prefix: str) -> None:
    """Serve ``{prefix}/metrics`` and observe every request (called by ``build_service_app``)."""
    app.add_middleware(HttpObservabilityMiddleware, observability=observability)

    async def metrics(request: Request) -> Response:
        await observability.refresh()
        return Response(observability.exposition(), media_type=CONTENT_TYPE_LATEST)

    app.add_api_route(f"{prefix}/metrics", metrics, methods=["GET"], include_in_schema=False)
