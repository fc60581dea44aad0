"""Structured JSON logs with the correlation id, and secrets scrubbed before they are written."""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
from datetime import UTC, datetime

from opentelemetry import trace

correlation_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "correlation_id", default=None
)
_websocket_denied: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "websocket_denied", default=False
)
_SPURIOUS_DENIAL_ERROR = "ASGI callable returned without completing handshake."

# Anything that looks like a credential is replaced, whoever logged it (libraries included).
_SECRET_PATTERNS = [
    (
        re.compile(r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?)(bearer|basic)\s+[^\s\"',]+"),
        r"\1\2 ***",
    ),
    (
        re.compile(
            r"(?i)((?:password|passwd|secret|token|refresh_token|access_token|card_number|cvc)[\"']?\s*[:=]\s*[\"']?)[^\s\"',&}]+"
        ),
        r"\1***",
    ),
    (re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"), "***jwt***"),
    (re.compile(r"\b\d{13,19}\b"), "***pan***"),
]


def scrub(text: str) -> str:
    """Remove passwords, tokens and card-number-like digits from a log message."""
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, correlation/trace ids, service."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "msg": scrub(record.getMessage()),
        }
        if cid := correlation_id.get():
            entry["correlation_id"] = cid
        # The span current when the line was logged: jump from a log line to its trace.
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            entry["trace_id"] = f"{span.trace_id:032x}"
            entry["span_id"] = f"{span.span_id:016x}"
        if record.exc_info:
            entry["exc"] = scrub(self.formatException(record.exc_info))
        return json.dumps(entry)


class ScrubbingFormatter(logging.Formatter):
    """Human-readable lines for a terminal, scrubbed like the JSON ones."""

    def format(self, record: logging.LogRecord) -> str:
        return scrub(super().format(record))


def configure_logging(service: str, *, level: str = "INFO", json_lines: bool = True) -> None:
    """Install the platform's log format on the root logger (idempotent)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter(service)
        if json_lines
        else ScrubbingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, root.level))


def mark_websocket_denied() -> None:
    """Call before refusing a WebSocket handshake with an HTTP denial response.

    uvicorn's websockets-sansio protocol logs a spurious ERROR after every denial response
    (Kludex/uvicorn#3138); ``install_denial_filter`` drops that line for this connection only,
    so a refused station is not an error while a real incomplete handshake still is.
    """
    _websocket_denied.set(True)


class _DenialFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (_websocket_denied.get() and record.getMessage() == _SPURIOUS_DENIAL_ERROR)


def install_denial_filter() -> None:
    """Drop uvicorn's spurious ERROR after a denial response (idempotent)."""
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _DenialFilter) for f in logger.filters):
        logger.addFilter(_DenialFilter())
